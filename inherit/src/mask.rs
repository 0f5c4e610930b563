//! The learned mask (Sheared-LLaMA's `L0Module`, INHERIT.md): a hard-concrete gate per hidden
//! channel, query head and FFN neuron, trained on the LM loss of the calibration data with a
//! Lagrangian λ1|ŝ − t| + λ2(ŝ − t)² per family that pulls the expected kept count ŝ to the
//! target t (ramped in over the first 20% of steps; λ by gradient ascent, so both only grow
//! while a gap remains). Sheared-LLaMA's signed λ1(ŝ − t) let λ1 change sign and ŝ overshoot
//! the target on small calibration data (its users report the same; CoFi's |ŝ − t| is steadier). The teacher's
//! weights stay frozen (so no weight gradient is ever held; Sheared-LLaMA also trains them).
//! The student keeps each family's top-k by log α, which hits the requested shape exactly
//! whether or not the Lagrangian converged; the report says how close ŝ came.

use serde::Serialize;
use tch::{Device, Kind, Tensor};
use tinyforge_model::ModelConfig;
use tinyforge_train::{Gates, Model};

use crate::calib::Calibration;
use crate::error::Result;
use crate::scores::{OnProgress, UnitScores, lm_loss};

/// Hard-concrete temperature and stretch (Louizos et al.; Sheared-LLaMA's values).
const BETA: f64 = 2.0 / 3.0;
const LOW: f64 = -0.1;
const HIGH: f64 = 1.1;
/// Initial log α: every unit on with probability ≈ 0.99.
const INIT_LOG_ALPHA: f64 = 3.0;
const LOG_ALPHA_LIMIT: f64 = 4.6;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct MaskOptions {
    /// Optimizer steps (one calibration batch each, cycling).
    pub steps: usize,
    /// Adam learning rate of the gates' log α.
    pub lr: f64,
    /// Gradient-ascent rate of the Lagrange multipliers.
    pub lambda_lr: f64,
}

impl Default for MaskOptions {
    fn default() -> Self {
        MaskOptions {
            steps: 200,
            lr: 0.1,
            lambda_lr: 1.0,
        }
    }
}

/// How one family's gates ended.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyOutcome {
    pub family: &'static str,
    pub units: usize,
    pub target: usize,
    /// Expected kept count ŝ at the end (the sum of P(gate > 0)).
    pub expected: f64,
    pub lambda1: f64,
    pub lambda2: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaskReport {
    pub options: MaskOptions,
    pub first_loss: f64,
    pub last_loss: f64,
    pub families: Vec<FamilyOutcome>,
}

struct Family {
    name: &'static str,
    log_alpha: Tensor,
    target: f64,
    units: f64,
    lambda1: f64,
    lambda2: f64,
    m: Tensor,
    v: Tensor,
}

impl Family {
    fn new(name: &'static str, shape: &[i64], target: usize, device: Device) -> Self {
        let log_alpha = (Tensor::ones(shape, (Kind::Float, device)) * INIT_LOG_ALPHA
            + Tensor::randn(shape, (Kind::Float, device)) * 0.01)
            .set_requires_grad(true);
        let units = shape.iter().product::<i64>() as f64;
        Family {
            name,
            m: Tensor::zeros(shape, (Kind::Float, device)),
            v: Tensor::zeros(shape, (Kind::Float, device)),
            log_alpha,
            target: target as f64,
            units,
            lambda1: 0.0,
            lambda2: 0.0,
        }
    }

    /// A stretched, clamped hard-concrete sample of every gate.
    fn sample(&self) -> Tensor {
        let u = Tensor::rand_like(&self.log_alpha).clamp(1e-6, 1.0 - 1e-6);
        let s = ((u.log() - (-&u + 1.0).log() + &self.log_alpha) / BETA).sigmoid();
        (s * (HIGH - LOW) + LOW).clamp(0.0, 1.0)
    }

    /// Expected number of non-zero gates.
    fn expected(&self) -> Tensor {
        (&self.log_alpha - BETA * (-LOW / HIGH).ln())
            .sigmoid()
            .sum(Kind::Float)
    }
}

/// Learn gates on `model` (the teacher cut to the student's depth) and return log α as the
/// unit scores, with what the Lagrangian reached.
pub fn learn(
    model: &Model,
    student: &ModelConfig,
    calib: &Calibration,
    batch: usize,
    opts: MaskOptions,
    progress: OnProgress,
) -> Result<(UnitScores, MaskReport)> {
    let c = model.config();
    let device = model.device();
    let (l, h, f) = (c.layers as i64, c.heads as i64, c.ffn_dim as i64);
    let mut families = [
        Family::new("hidden", &[c.dim as i64], student.dim, device),
        Family::new("heads", &[l, h], c.layers * student.heads, device),
        Family::new("neurons", &[l, f], c.layers * student.ffn_dim, device),
    ];
    let batches = calib.batches(batch, device);
    let ramp = (opts.steps as f64 * 0.2).max(1.0);
    let (mut first_loss, mut last_loss) = (f64::NAN, f64::NAN);
    progress.start("mask training", opts.steps as u64);
    for step in 0..opts.steps {
        let (_, ids) = &batches[step % batches.len()];
        let gates = Gates {
            hidden: Some(families[0].sample()),
            heads: Some(families[1].sample()),
            neurons: Some(families[2].sample()),
        };
        let t = ids.size()[1];
        let logits = model.forward_with(&ids.narrow(1, 0, t - 1), &gates, None, None);
        let lm = lm_loss(&logits, ids);
        let progress_of_ramp = ((step + 1) as f64 / ramp).min(1.0);
        let mut total = lm.shallow_clone();
        let mut gaps = Vec::with_capacity(families.len());
        for fam in &families {
            let target = fam.units - (fam.units - fam.target) * progress_of_ramp;
            // The gap as a share of the family, so one λ scale fits every family size.
            let gap = (fam.expected() - target) / fam.units;
            gaps.push(gap.double_value(&[]));
            total = total + gap.abs() * fam.lambda1 + gap.square() * fam.lambda2;
        }
        for fam in &mut families {
            fam.log_alpha.zero_grad();
        }
        total.f_backward()?;
        let loss = lm.double_value(&[]);
        if step == 0 {
            first_loss = loss;
        }
        last_loss = loss;
        tch::no_grad(|| {
            let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
            let k = step as i32 + 1;
            for (fam, gap) in families.iter_mut().zip(&gaps) {
                let g = fam.log_alpha.grad();
                fam.m = &fam.m * b1 + &g * (1.0 - b1);
                fam.v = &fam.v * b2 + g.square() * (1.0 - b2);
                let m_hat = &fam.m / (1.0 - b1.powi(k));
                let v_hat = &fam.v / (1.0 - b2.powi(k));
                let update = m_hat / (v_hat.sqrt() + eps) * opts.lr;
                let _ = fam.log_alpha.f_sub_(&update);
                let _ = fam.log_alpha.clamp_(-LOG_ALPHA_LIMIT, LOG_ALPHA_LIMIT);
                // Gradient ascent on the multipliers: they grow while the gap persists.
                fam.lambda1 += opts.lambda_lr * gap.abs();
                fam.lambda2 += opts.lambda_lr * gap * gap;
            }
        });
        progress.advance(1);
    }
    let to_cpu = |t: &Tensor| t.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    let scores = UnitScores {
        hidden: to_cpu(&families[0].log_alpha),
        heads: to_cpu(&families[1].log_alpha),
        // Groups are ranked by their query heads' gates alone.
        kv: Tensor::zeros([l, c.kv_heads as i64], (Kind::Double, Device::Cpu)),
        neurons: to_cpu(&families[2].log_alpha),
    };
    let report = MaskReport {
        options: opts,
        first_loss,
        last_loss,
        families: families
            .iter()
            .map(|fam| FamilyOutcome {
                family: fam.name,
                units: fam.units as usize,
                target: fam.target as usize,
                expected: tch::no_grad(|| fam.expected().double_value(&[])),
                lambda1: fam.lambda1,
                lambda2: fam.lambda2,
            })
            .collect(),
    };
    Ok((scores, report))
}
