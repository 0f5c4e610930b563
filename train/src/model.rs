//! The LLaMA-style decoder over ONE flat fp32 parameter buffer.
//!
//! Every weight is a view (`narrow` + `view`) into `flat`, a single leaf tensor; backward
//! therefore fills ONE flat gradient buffer, and AdamW, clipping (and later an all-reduce) are a
//! handful of whole-buffer kernels instead of a loop over ~200 tensors (tch 0.24 binds no
//! fused/foreach optimizer kernels). The layout puts q, k, v of a layer next to each other and
//! gate, up next to each other, so a layer runs ONE [3d, d] and ONE [2f, d] matmul, while the
//! checkpoint still names them separately as Hugging Face LLaMA does.
//!
//! Mixed precision: on CUDA the forward casts the whole flat buffer to bf16 once per micro-batch
//! (one kernel; autograd casts the gradient back to fp32 into the master buffer); on CPU it runs
//! in fp32, which the tests use.

use tch::{Device, Kind, Tensor};

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// One named tensor inside the flat buffer.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Hugging Face LLaMA name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    pub name: String,
    pub shape: Vec<i64>,
    pub offset: i64,
    pub numel: i64,
    /// AdamW weight decay applies (everything but the RMSNorm weights).
    pub decay: bool,
}

/// Offsets of one layer's fused views.
#[derive(Debug, Clone, Copy)]
struct LayerOffsets {
    ln1: i64,
    qkv: i64,
    o: i64,
    ln2: i64,
    gate_up: i64,
    down: i64,
}

pub struct Model {
    cfg: ModelConfig,
    device: Device,
    compute: Kind,
    flat: Tensor,
    specs: Vec<ParamSpec>,
    layers: Vec<LayerOffsets>,
    embed: i64,
    final_norm: i64,
    head: i64,
}

/// The layout of the flat buffer: names, shapes, offsets.
pub fn layout(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (d, f, v) = (cfg.dim as i64, cfg.ffn_dim as i64, cfg.vocab_size as i64);
    let mut specs = Vec::with_capacity(4 + 9 * cfg.layers);
    let mut offset = 0;
    let mut push = |name: String, shape: Vec<i64>, decay: bool| {
        let numel = shape.iter().product();
        specs.push(ParamSpec {
            name,
            shape,
            offset,
            numel,
            decay,
        });
        offset += numel;
    };
    push("model.embed_tokens.weight".into(), vec![v, d], true);
    for i in 0..cfg.layers {
        let p = format!("model.layers.{i}");
        push(format!("{p}.input_layernorm.weight"), vec![d], false);
        for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            push(format!("{p}.self_attn.{m}.weight"), vec![d, d], true);
        }
        push(
            format!("{p}.post_attention_layernorm.weight"),
            vec![d],
            false,
        );
        push(format!("{p}.mlp.gate_proj.weight"), vec![f, d], true);
        push(format!("{p}.mlp.up_proj.weight"), vec![f, d], true);
        push(format!("{p}.mlp.down_proj.weight"), vec![d, f], true);
    }
    push("model.norm.weight".into(), vec![d], false);
    push("lm_head.weight".into(), vec![v, d], true);
    specs
}

impl Model {
    /// A freshly initialised model: N(0, init_std) matrices, unit norms, seeded by `seed`
    /// (deterministic on CPU).
    pub fn new(cfg: &ModelConfig, device: Device, compute: Kind, seed: u64) -> Result<Self> {
        let mut model = Self::zeros(cfg, device, compute)?;
        tch::manual_seed(seed as i64);
        tch::no_grad(|| {
            for s in &model.specs {
                let mut view = model.flat.narrow(0, s.offset, s.numel);
                if s.shape.len() == 1 {
                    let _ = view.fill_(1.0);
                } else {
                    let _ = view.normal_(0.0, cfg.init_std);
                }
            }
        });
        model.flat = model.flat.detach().set_requires_grad(true);
        Ok(model)
    }

    /// A model whose buffer is all zeros (to be filled from a checkpoint).
    pub fn zeros(cfg: &ModelConfig, device: Device, compute: Kind) -> Result<Self> {
        let specs = layout(cfg);
        let total = specs.last().map(|s| s.offset + s.numel).unwrap_or(0);
        debug_assert_eq!(total as u64, cfg.param_count());
        let flat = Tensor::f_zeros([total], (Kind::Float, device))?.set_requires_grad(true);
        let find = |name: &str| {
            specs
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.offset)
                .unwrap()
        };
        let layers = (0..cfg.layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                LayerOffsets {
                    ln1: find(&format!("{p}.input_layernorm.weight")),
                    qkv: find(&format!("{p}.self_attn.q_proj.weight")),
                    o: find(&format!("{p}.self_attn.o_proj.weight")),
                    ln2: find(&format!("{p}.post_attention_layernorm.weight")),
                    gate_up: find(&format!("{p}.mlp.gate_proj.weight")),
                    down: find(&format!("{p}.mlp.down_proj.weight")),
                }
            })
            .collect();
        Ok(Self {
            embed: find("model.embed_tokens.weight"),
            final_norm: find("model.norm.weight"),
            head: find("lm_head.weight"),
            cfg: cfg.clone(),
            device,
            compute,
            flat,
            specs,
            layers,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }
    pub fn device(&self) -> Device {
        self.device
    }
    pub fn compute_kind(&self) -> Kind {
        self.compute
    }
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }
    /// The flat fp32 master buffer (a leaf that requires grad).
    pub fn flat(&self) -> &Tensor {
        &self.flat
    }
    pub fn flat_mut(&mut self) -> &mut Tensor {
        &mut self.flat
    }
    pub fn numel(&self) -> i64 {
        self.flat.size()[0]
    }

    /// The named tensors (detached fp32 views) for a checkpoint, in layout order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let flat = self.flat.detach();
        self.specs
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    flat.narrow(0, s.offset, s.numel).view(s.shape.as_slice()),
                )
            })
            .collect()
    }

    /// Fill the buffer from named tensors: every name of the layout must be present with its
    /// exact shape, and nothing else.
    pub fn load_named(
        &mut self,
        tensors: &[(String, Tensor)],
        origin: &std::path::Path,
    ) -> Result<()> {
        let bad = |r: String| Error::ckpt(origin, r);
        if tensors.len() != self.specs.len() {
            return Err(bad(format!(
                "holds {} tensors, the model has {}",
                tensors.len(),
                self.specs.len()
            )));
        }
        let flat = self.flat.detach();
        for s in &self.specs {
            let (_, t) = tensors
                .iter()
                .find(|(n, _)| *n == s.name)
                .ok_or_else(|| bad(format!("missing tensor {}", s.name)))?;
            if t.size() != s.shape {
                return Err(bad(format!(
                    "{}: shape {:?}, expected {:?}",
                    s.name,
                    t.size(),
                    s.shape
                )));
            }
            let mut dst = flat.narrow(0, s.offset, s.numel);
            tch::no_grad(|| {
                dst.f_copy_(&t.to_kind(Kind::Float).to_device(self.device).reshape([-1]))
            })?;
        }
        Ok(())
    }

    fn w(&self, p: &Tensor, offset: i64, shape: &[i64]) -> Tensor {
        p.narrow(0, offset, shape.iter().product()).view(shape)
    }

    /// Logits `[B, T, V]` in the compute dtype for token ids `[B, T]` (int64).
    #[allow(clippy::assign_op_pattern)]
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let (b, t) = ids.size2().expect("ids must be [batch, seq]");
        let (d, f, v) = (
            self.cfg.dim as i64,
            self.cfg.ffn_dim as i64,
            self.cfg.vocab_size as i64,
        );
        let (nh, hd) = (self.cfg.heads as i64, self.cfg.head_dim() as i64);
        let eps = self.cfg.norm_eps;
        // One cast of the whole buffer per forward; in fp32 it is the buffer itself.
        let p = if self.compute == Kind::Float {
            self.flat.shallow_clone()
        } else {
            self.flat.to_kind(self.compute)
        };
        let (cos, sin) = self.rope(t);
        let norm = |x: &Tensor, off: i64| x.rms_norm([d], Some(self.w(&p, off, &[d])), eps);
        let mut h = Tensor::embedding(&self.w(&p, self.embed, &[v, d]), ids, -1, false, false);
        for l in &self.layers {
            let x = norm(&h, l.ln1);
            let qkv = x.linear::<Tensor>(&self.w(&p, l.qkv, &[3 * d, d]), None);
            let qkv = qkv.view([b, t, 3, nh, hd]).permute([2, 0, 3, 1, 4]);
            let (q, k, vv) = (qkv.get(0), qkv.get(1), qkv.get(2));
            let (q, k) = (rotate(&q, &cos, &sin), rotate(&k, &cos, &sin));
            let att = Tensor::scaled_dot_product_attention::<Tensor>(
                &q, &k, &vv, None, 0.0, true, None, false,
            );
            let att = att.transpose(1, 2).reshape([b, t, d]);
            // Out of place on purpose: `+=` on a tch Tensor is an in-place add, which autograd
            // refuses on a value the backward pass still needs (hence the allow on this fn).
            h = h + att.linear::<Tensor>(&self.w(&p, l.o, &[d, d]), None);
            let x = norm(&h, l.ln2);
            let gu = x.linear::<Tensor>(&self.w(&p, l.gate_up, &[2 * f, d]), None);
            let gu = gu.chunk(2, -1);
            let act = gu[0].silu() * &gu[1];
            h = h + act.linear::<Tensor>(&self.w(&p, l.down, &[d, f]), None);
        }
        let h = norm(&h, self.final_norm);
        h.linear::<Tensor>(&self.w(&p, self.head, &[v, d]), None)
    }

    /// Mean next-token cross-entropy of each sequence, `[B]` fp32, for windows `[B, T + 1]`
    /// (the training units): this is both the training loss and the loss-table entry.
    pub fn sequence_losses(&self, windows: &Tensor) -> Tensor {
        let (b, t1) = windows.size2().expect("windows must be [batch, seq + 1]");
        let t = t1 - 1;
        let input = windows.narrow(1, 0, t);
        let target = windows.narrow(1, 1, t).reshape([-1]);
        let logits = self
            .forward(&input)
            .to_kind(Kind::Float)
            .reshape([b * t, -1]);
        logits
            .cross_entropy_loss::<Tensor>(&target, None, tch::Reduction::None, -100, 0.0)
            .view([b, t])
            .mean_dim(1, false, Kind::Float)
    }

    /// RoPE tables `[T, head_dim]` in Hugging Face's `rotate_half` layout: the frequencies are
    /// repeated (`cat(freqs, freqs)`), not interleaved.
    fn rope(&self, t: i64) -> (Tensor, Tensor) {
        let hd = self.cfg.head_dim() as i64;
        let opts = (Kind::Float, self.device);
        let exponent = Tensor::arange_start_step(0, hd, 2, (Kind::Int64, self.device))
            .to_kind(Kind::Float)
            / hd as f64;
        // In fp32 like transformers: 1 / base^(2i / hd), then positions x frequencies.
        let inv_freq = Tensor::scalar_tensor(self.cfg.rope_theta, opts)
            .pow(&exponent)
            .reciprocal();
        let pos = Tensor::arange(t, opts);
        let freqs = pos.outer(&inv_freq);
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        (
            emb.cos().to_kind(self.compute),
            emb.sin().to_kind(self.compute),
        )
    }
}

/// `x * cos + rotate_half(x) * sin` on `[B, H, T, hd]`.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let halves = x.chunk(2, -1);
    let rotated = Tensor::cat(&[&(-&halves[1]), &halves[0]], -1);
    x * cos + rotated * sin
}
