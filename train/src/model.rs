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
use tinyforge_model::{ModelConfig, Role, Weights, tensor_specs};

use crate::error::{Error, Result};

/// One named tensor inside the flat buffer.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Hugging Face LLaMA name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    pub name: String,
    pub shape: Vec<i64>,
    pub offset: i64,
    pub numel: i64,
    /// AdamW weight decay applies (matrices; not the RMSNorm weights or biases).
    pub decay: bool,
    pub role: Role,
    pub layer: Option<usize>,
}

impl ParamSpec {
    /// This tensor's view (its shape) into `flat`, a buffer of the model's layout.
    pub fn view(&self, flat: &Tensor) -> Tensor {
        flat.narrow(0, self.offset, self.numel)
            .view(self.shape.as_slice())
    }
}

/// Offsets of one layer's fused views.
#[derive(Debug, Clone, Copy)]
struct LayerOffsets {
    ln1: i64,
    qkv: i64,
    /// q, k, v biases (adjacent), when the model has them.
    qkv_bias: Option<i64>,
    o: i64,
    o_bias: Option<i64>,
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
    /// The LM head: the embedding's offset when tied.
    head: i64,
}

/// The layout of the flat buffer: the model crate's tensors in its canonical order (q, k, v
/// adjacent, their biases adjacent, gate and up adjacent), with offsets.
pub fn layout(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let mut offset = 0;
    tensor_specs(cfg)
        .into_iter()
        .map(|s| {
            let numel = s.numel() as i64;
            let spec = ParamSpec {
                shape: s.shape.iter().map(|&x| x as i64).collect(),
                offset,
                numel,
                decay: s.role.decays(),
                role: s.role,
                layer: s.layer,
                name: s.name,
            };
            offset += numel;
            spec
        })
        .collect()
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
                if s.role.is_norm() {
                    let _ = view.fill_(1.0);
                } else if s.role.is_bias() {
                    let _ = view.zero_();
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
        let find = |role: Role, layer: Option<usize>| {
            specs
                .iter()
                .find(|s| s.role == role && s.layer == layer)
                .map(|s| s.offset)
        };
        let layers = (0..cfg.layers)
            .map(|i| {
                let l = Some(i);
                LayerOffsets {
                    ln1: find(Role::InputNorm, l).expect("layout has every layer tensor"),
                    qkv: find(Role::Q, l).expect("layout has every layer tensor"),
                    qkv_bias: find(Role::QBias, l),
                    o: find(Role::O, l).expect("layout has every layer tensor"),
                    o_bias: find(Role::OBias, l),
                    ln2: find(Role::PostNorm, l).expect("layout has every layer tensor"),
                    gate_up: find(Role::Gate, l).expect("layout has every layer tensor"),
                    down: find(Role::Down, l).expect("layout has every layer tensor"),
                }
            })
            .collect();
        let embed = find(Role::Embed, None).expect("layout has an embedding");
        Ok(Self {
            embed,
            final_norm: find(Role::FinalNorm, None).expect("layout has a final norm"),
            head: find(Role::Head, None).unwrap_or(embed),
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
            .map(|s| (s.name.clone(), s.view(&flat)))
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

    /// A model from any Hugging Face LLaMA-family folder (`config.json` + `model.safetensors`
    /// or a sharded index; F32, BF16 or F16), every tensor checked against `config.json`;
    /// tensors are converted one at a time, so loading never holds two copies of the model.
    pub fn load_hf(dir: &std::path::Path, device: Device, compute: Kind) -> Result<Self> {
        let cfg = tinyforge_model::read_hf_config(dir)?;
        let weights = Weights::open(dir)?;
        weights.check(&cfg)?;
        let model = Self::zeros(&cfg, device, compute)?;
        let flat = model.flat.detach();
        for s in &model.specs {
            let shape: Vec<usize> = s.shape.iter().map(|&x| x as usize).collect();
            let values = weights.f32(&s.name, &shape)?;
            let mut dst = flat.narrow(0, s.offset, s.numel);
            tch::no_grad(|| dst.f_copy_(&Tensor::from_slice(&values).to_device(device)))?;
        }
        Ok(model)
    }

    /// Logits `[B, T, V]` in the compute dtype for token ids `[B, T]` (int64).
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        self.forward_with(ids, &Gates::default(), None, None)
    }

    /// The forward with inheritance's instruments (paper §5): multiplicative `gates` on hidden
    /// channels, query heads and FFN neurons (none is the plain forward; a zero removes the
    /// unit exactly as extracting the student without it would); `window` puts a separate leaf
    /// tensor in place of the flat buffer's elements `[start, start + numel)` (whole layers),
    /// so a backward pass computes the gradient of that window only; `taps` records the
    /// activations importance criteria read.
    #[expect(
        clippy::assign_op_pattern,
        reason = "tch's `+=` on tensors is in place; the forward pass must not mutate what autograd saved"
    )]
    pub fn forward_with(
        &self,
        ids: &Tensor,
        gates: &Gates,
        window: Option<(i64, &Tensor)>,
        mut taps: Option<&mut Taps>,
    ) -> Tensor {
        let (b, t) = ids.size2().expect("ids must be [batch, seq]");
        let c = &self.cfg;
        let (d, f, v) = (c.dim as i64, c.ffn_dim as i64, c.vocab_size as i64);
        let (nh, nkv, hd) = (c.heads as i64, c.kv_heads as i64, c.head_dim as i64);
        let (qd, kvd) = (nh * hd, nkv * hd);
        let eps = c.norm_eps;
        let params = Params::new(&self.flat, self.compute, window);
        let w = |off: i64, shape: &[i64]| params.w(off, shape);
        let (cos, sin) = self.rope(t);
        let cast = |g: &Option<Tensor>| g.as_ref().map(|g| g.to_kind(self.compute));
        let (hidden, heads, neurons) = (
            cast(&gates.hidden),
            cast(&gates.heads),
            cast(&gates.neurons),
        );
        // With a hidden gate, RMSNorm averages over the kept (gate-weighted) channels only: the
        // statistic the narrower student computes (Sheared-LLaMA trains its masks this way).
        let kept = gates
            .hidden
            .as_ref()
            .map(|z| z.to_kind(Kind::Float).sum(Kind::Float));
        let norm = |x: &Tensor, off: i64| match &kept {
            None => x.rms_norm([d], Some(w(off, &[d])), eps),
            Some(n) => {
                let x32 = x.to_kind(Kind::Float);
                let ms = x32.square().sum_dim_intlist(-1, true, Kind::Float) / n;
                (x32 * (ms + eps).rsqrt()).to_kind(self.compute) * w(off, &[d])
            }
        };
        let gate_hidden = |x: Tensor| match &hidden {
            Some(z) => x * z,
            None => x,
        };
        let record_hidden = |taps: &mut Option<&mut Taps>, x: &Tensor| {
            if let Some(taps) = taps.as_deref_mut() {
                let site = x.to_kind(Kind::Float).abs().mean_dim(1, false, Kind::Float);
                taps.hidden_act = Some(match taps.hidden_act.take() {
                    Some(sum) => sum + site,
                    None => site,
                });
            }
        };
        let embedded = Tensor::embedding(&w(self.embed, &[v, d]), ids, -1, false, false);
        let mut h = gate_hidden(embedded);
        for (i, l) in self.layers.iter().enumerate() {
            let h_in = taps.as_ref().map(|_| h.shallow_clone());
            let x = norm(&h, l.ln1);
            record_hidden(&mut taps, &x);
            let bias = l.qkv_bias.map(|off| w(off, &[qd + 2 * kvd]));
            let qkv = x.linear(&w(l.qkv, &[qd + 2 * kvd, d]), bias.as_ref());
            let parts = qkv.split_with_sizes([qd, kvd, kvd], -1);
            let heads_of = |x: &Tensor, n: i64| x.view([b, t, n, hd]).transpose(1, 2);
            let q = rotate(&heads_of(&parts[0], nh), &cos, &sin);
            let k = rotate(&heads_of(&parts[1], nkv), &cos, &sin);
            let vv = heads_of(&parts[2], nkv);
            // Grouped-query attention: query head h reads key/value head h / (nh / nkv), as
            // transformers' repeat_kv does.
            let mut att = Tensor::scaled_dot_product_attention::<Tensor>(
                &q,
                &k,
                &vv,
                None,
                0.0,
                true,
                None,
                nkv != nh,
            );
            if let Some(g) = &heads {
                att = att * g.get(i as i64).view([1, nh, 1, 1]);
            }
            if let Some(taps) = taps.as_deref_mut() {
                // Minitron's head activation: the o-projection input of each head, its norm
                // over the head's channels, averaged over the sequence.
                let per_head = att
                    .to_kind(Kind::Float)
                    .square()
                    .sum_dim_intlist(-1, false, Kind::Float)
                    .sqrt()
                    .mean_dim(-1, false, Kind::Float);
                taps.head_act.push(per_head);
            }
            let att = att.transpose(1, 2).reshape([b, t, qd]);
            let o_bias = l.o_bias.map(|off| w(off, &[d]));
            // Out of place on purpose: `+=` on a tch Tensor is an in-place add, which autograd
            // refuses on a value the backward pass still needs (hence the allow on this fn).
            h = h + gate_hidden(att.linear(&w(l.o, &[d, qd]), o_bias.as_ref()));
            let x = norm(&h, l.ln2);
            record_hidden(&mut taps, &x);
            let gu = x.linear::<Tensor>(&w(l.gate_up, &[2 * f, d]), None);
            let gu = gu.chunk(2, -1);
            let mut act = gu[0].silu() * &gu[1];
            if let Some(g) = &neurons {
                act = act * g.get(i as i64);
            }
            if let Some(taps) = taps.as_deref_mut() {
                let per_neuron = act
                    .to_kind(Kind::Float)
                    .abs()
                    .mean_dim(1, false, Kind::Float);
                taps.neuron_act.push(per_neuron);
            }
            h = h + gate_hidden(act.linear::<Tensor>(&w(l.down, &[d, f]), None));
            if let (Some(taps), Some(h_in)) = (taps.as_deref_mut(), h_in) {
                let cos = Tensor::cosine_similarity(
                    &h_in.to_kind(Kind::Float),
                    &h.to_kind(Kind::Float),
                    -1,
                    1e-8,
                );
                taps.block_cos.push(cos.mean_dim(-1, false, Kind::Float));
            }
        }
        let h = norm(&h, self.final_norm);
        record_hidden(&mut taps, &h);
        h.linear::<Tensor>(&w(self.head, &[v, d]), None)
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
        let hd = self.cfg.head_dim as i64;
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

/// Multiplicative gates on the units parameter inheritance selects (see [`Model::forward_with`]).
#[derive(Default)]
pub struct Gates {
    /// `[dim]`: hidden channels of the residual stream.
    pub hidden: Option<Tensor>,
    /// `[layers, heads]`: query heads, on their attention output before the o projection.
    pub heads: Option<Tensor>,
    /// `[layers, ffn_dim]`: FFN neurons, on the SwiGLU activation before the down projection.
    pub neurons: Option<Tensor>,
}

/// Activations a forward records, per sequence of the batch (fp32).
#[derive(Default)]
pub struct Taps {
    /// Per layer `[B]`: mean over tokens of cos(layer input, layer output) of the residual
    /// stream (block importance is one minus it).
    pub block_cos: Vec<Tensor>,
    /// Per layer `[B, heads]`: mean over tokens of the norm of each head's attention output.
    pub head_act: Vec<Tensor>,
    /// Per layer `[B, ffn_dim]`: mean over tokens of |SwiGLU activation| of each neuron.
    pub neuron_act: Vec<Tensor>,
    /// `[B, dim]`: mean over tokens of |RMSNorm output|, summed over every norm.
    pub hidden_act: Option<Tensor>,
}

/// The weights one forward reads: the flat buffer (cast once to the compute dtype), except for
/// an optional window of it that a separate leaf tensor stands in for.
struct Params {
    flat: Tensor,
    window: Option<(i64, i64, Tensor)>,
}

impl Params {
    fn new(flat: &Tensor, compute: Kind, window: Option<(i64, &Tensor)>) -> Self {
        // One cast of the whole buffer per forward; in fp32 it is the buffer itself.
        let cast = |t: &Tensor| {
            if compute == Kind::Float {
                t.shallow_clone()
            } else {
                t.to_kind(compute)
            }
        };
        Params {
            flat: cast(flat),
            window: window.map(|(start, leaf)| (start, start + leaf.numel() as i64, cast(leaf))),
        }
    }

    fn w(&self, offset: i64, shape: &[i64]) -> Tensor {
        let numel = shape.iter().product();
        match &self.window {
            Some((start, end, leaf)) if offset >= *start && offset < *end => {
                debug_assert!(offset + numel <= *end, "a fused view crosses the window");
                leaf.narrow(0, offset - start, numel).view(shape)
            }
            _ => self.flat.narrow(0, offset, numel).view(shape),
        }
    }
}
