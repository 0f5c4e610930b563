//! Data parallelism over a [`World`]: the optimizer step of plain data parallel (one all-reduce
//! of the flat gradient) and of ZeRO-1 (optimizer state sharded over the ranks), and each rank's
//! share of a plan's batches.
//!
//! Both give the single-process update: every rank's loss is divided by the *global* batch, so
//! the summed gradient is the gradient of the mean loss over the whole batch; clipping uses the
//! global norm; AdamW runs term by term as on one process (over a shard under ZeRO-1).

use std::time::Instant;

use tch::{Kind, Tensor};

use crate::checkpoint::Moments;
use crate::dist::World;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::{AdamW, AdamWConfig, clip_coef, clip_grad_norm};

/// How optimizer state is laid out over the ranks (`zero_stage` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharding {
    /// Every rank holds the whole AdamW state and updates every parameter.
    Replicated,
    /// ZeRO-1: rank r holds the moments of the r-th `ceil(N / world)` slice of the flat buffer;
    /// the gradient is reduce-scattered and the parameters all-gathered after the update.
    Zero1,
}

impl Sharding {
    pub fn from_stage(stage: u8) -> Result<Self> {
        match stage {
            0 => Ok(Sharding::Replicated),
            1 => Ok(Sharding::Zero1),
            s => Err(Error::Config(format!(
                "zero_stage {s} is not supported (0: plain data parallel, 1: ZeRO-1, sharded \
                 optimizer state)"
            ))),
        }
    }
}

/// ZeRO-1's buffers: this rank's gradient slice and a copy of its parameter slice to gather
/// from; `padded` buffers only when the flat buffer does not split evenly.
struct Zero {
    shard: i64,
    grad_shard: Tensor,
    own: Tensor,
    padded: Option<(Tensor, Tensor)>,
}

/// AdamW, clipping and gradient synchronisation for one rank.
pub struct Optimizer {
    pub adamw: AdamW,
    world: World,
    numel: i64,
    zero: Option<Zero>,
}

impl Optimizer {
    pub fn new(model: &Model, cfg: AdamWConfig, world: &World, sharding: Sharding) -> Self {
        let numel = model.numel();
        if world.size == 1 || sharding == Sharding::Replicated {
            return Self {
                adamw: AdamW::new(model, cfg),
                world: world.clone(),
                numel,
                zero: None,
            };
        }
        let w = world.size as i64;
        let shard = (numel + w - 1) / w;
        let start = (world.rank as i64 * shard).min(numel);
        let len = shard.min(numel - start);
        let opts = (Kind::Float, model.device());
        let padded = (shard * w != numel).then(|| {
            (
                Tensor::zeros([shard * w], opts),
                Tensor::zeros([shard * w], opts),
            )
        });
        Self {
            adamw: AdamW::over(model, cfg, start, len),
            world: world.clone(),
            numel,
            zero: Some(Zero {
                shard,
                grad_shard: Tensor::zeros([shard], opts),
                own: Tensor::zeros([shard], opts),
                padded,
            }),
        }
    }

    pub fn sharding(&self) -> Sharding {
        if self.zero.is_some() {
            Sharding::Zero1
        } else {
            Sharding::Replicated
        }
    }

    /// Optimizer bytes this rank holds: AdamW's moments and mask, plus ZeRO-1's buffers.
    pub fn bytes_per_rank(&self) -> u64 {
        let zero = self.zero.as_ref().map_or(0, |z| {
            let pad = z.padded.as_ref().map_or(0, |(g, _)| 2 * g.numel() as u64);
            (2 * z.shard as u64 + pad) * 4
        });
        self.adamw.state_bytes() + zero
    }

    /// Resume from a checkpoint's (full) moments.
    pub fn load(&mut self, m: &Moments, step: u64) -> Result<()> {
        Ok(self.adamw.load_moments(&m.exp_avg, &m.exp_avg_sq, step)?)
    }

    /// After backward: sum the gradient over the ranks and clip it to `max_norm` by its global
    /// norm. Returns the norm before clipping and the seconds spent in collectives.
    pub fn reduce_and_clip(&mut self, model: &Model, max_norm: f64) -> Result<(f64, f64)> {
        let grad = model.flat().grad();
        let t0 = Instant::now();
        let Some(z) = &mut self.zero else {
            // A world of one has nothing to sum, nor a collective to time.
            if self.world.size > 1 {
                self.world.all_reduce_sum(&grad, "gradient all-reduce")?;
                sync(model);
            }
            let comm = t0.elapsed().as_secs_f64();
            return Ok((clip_grad_norm(model, max_norm), comm));
        };
        let input = match &z.padded {
            Some((g, _)) => {
                tch::no_grad(|| g.narrow(0, 0, self.numel).copy_(&grad));
                g.shallow_clone()
            }
            None => grad,
        };
        self.world
            .reduce_scatter(&z.grad_shard, &input, "gradient reduce-scatter")?;
        let mine = z.grad_shard.narrow(0, 0, self.adamw.len);
        let local = mine.square().sum(Kind::Double).double_value(&[]);
        let norm = self.world.sum_f64(&[local], "gradient norm")?[0].sqrt();
        let comm = t0.elapsed().as_secs_f64();
        let coef = clip_coef(norm, max_norm);
        if coef < 1.0 {
            tch::no_grad(|| {
                let _ = z.grad_shard.g_mul_scalar_(coef);
            });
        }
        Ok((norm, comm))
    }

    /// The AdamW update at `lr` (then, under ZeRO-1, the all-gather of the parameters).
    /// Returns the seconds spent in collectives.
    pub fn step(&mut self, model: &mut Model, lr: f64) -> Result<f64> {
        let Some(z) = &self.zero else {
            self.adamw.update(model, lr);
            return Ok(0.0);
        };
        let mut flat = model.flat().detach();
        let (start, len) = (self.adamw.start, self.adamw.len);
        let grad = z.grad_shard.narrow(0, 0, len);
        self.adamw
            .update_slice(&flat.narrow(0, start, len), &grad, lr);
        let t0 = Instant::now();
        tch::no_grad(|| z.own.narrow(0, 0, len).copy_(&flat.narrow(0, start, len)));
        match &z.padded {
            Some((_, p)) => {
                self.world.all_gather(p, &z.own, "parameter all-gather")?;
                tch::no_grad(|| flat.copy_(&p.narrow(0, 0, self.numel)));
            }
            None => self
                .world
                .all_gather(&flat, &z.own, "parameter all-gather")?,
        }
        sync(model);
        Ok(t0.elapsed().as_secs_f64())
    }

    /// The moments of the whole buffer (a collective under ZeRO-1: every rank calls it, and
    /// gets them on the host).
    pub fn moments(&self) -> Result<Moments> {
        let Some(z) = &self.zero else {
            return Ok(Moments {
                exp_avg: self.adamw.exp_avg.shallow_clone(),
                exp_avg_sq: self.adamw.exp_avg_sq.shallow_clone(),
            });
        };
        let gather = |m: &Tensor, what: &str| -> Result<Tensor> {
            let own = Tensor::zeros([z.shard], (Kind::Float, m.device()));
            tch::no_grad(|| own.narrow(0, 0, self.adamw.len).copy_(m));
            let out = Tensor::zeros(
                [z.shard * self.world.size as i64],
                (Kind::Float, m.device()),
            );
            self.world.all_gather(&out, &own, what)?;
            // To host at once: the device holds one whole moment at a time, never both.
            Ok(out.narrow(0, 0, self.numel).to_device(tch::Device::Cpu))
        };
        Ok(Moments {
            exp_avg: gather(&self.adamw.exp_avg, "optimizer all-gather (exp_avg)")?,
            exp_avg_sq: gather(&self.adamw.exp_avg_sq, "optimizer all-gather (exp_avg_sq)")?,
        })
    }
}

/// Wait for queued CUDA work so step timings and collectives' clocks mean something.
pub(crate) fn sync(model: &Model) {
    if let tch::Device::Cuda(i) = model.device() {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Every rank's `values` of one batch (`share(n)` of them per rank, in rank order): the `n`
/// values of the whole batch.
pub fn gather_shares(world: &World, values: &[f32], n: usize, what: &str) -> Result<Vec<f32>> {
    if world.size == 1 {
        return Ok(values.to_vec());
    }
    let most = n.div_ceil(world.size);
    let mut padded = values.to_vec();
    padded.resize(most, f32::NAN);
    let all = world.gather_f32(&padded, what)?;
    let mut out = Vec::with_capacity(n);
    for r in 0..world.size {
        let len = World::share_of(r, world.size, n).len();
        out.extend_from_slice(&all[r * most..r * most + len]);
    }
    Ok(out)
}
