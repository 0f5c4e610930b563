//! A pure-Rust CPU forward of the LLaMA decoder that tinyforge-train writes (Hugging Face tensor
//! names in safetensors + `config.json`), so `tinyforge eval` scores checkpoints without
//! libtorch. It follows `transformers`' `LlamaForCausalLM` in float32: pre-RMSNorm, RoPE with
//! the rotate-half layout, grouped-query causal attention, SwiGLU, untied (or tied) head.
//! Matrix products go through `matrixmultiply`'s sgemm; requests run in parallel with rayon.

use std::path::Path;

use rayon::prelude::*;
use tinyforge_model::{ModelConfig, Weights};

use crate::error::{Error, Result};
use crate::model::{LanguageModel, Request, request_window};

/// A dense layer `y = x W^T (+ b)` with `W` stored `[out, in]` row-major as in PyTorch.
struct Linear {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    out: usize,
    inp: usize,
}

impl Linear {
    /// `x` is `[rows, inp]`; returns `[rows, out]`.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * self.out];
        matmul_transposed(x, rows, self.inp, &self.weight, self.out, &mut y);
        if let Some(bias) = &self.bias {
            for row in y.chunks_mut(self.out) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
        }
        y
    }
}

/// `y[m, n] = x[m, k] · w[n, k]^T`.
fn matmul_transposed(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, y: &mut [f32]) {
    assert!(
        x.len() >= m * k && w.len() >= n * k && y.len() >= m * n,
        "matmul shapes"
    );
    // SAFETY: the assert above bounds every index sgemm touches: x is m×k with row stride k,
    // w^T is read as k×n with strides (1, k) over w's n×k storage, y is m×n with row stride n.
    #[expect(
        unsafe_code,
        reason = "sgemm reads the slices through raw pointers; the sizes above are checked"
    )]
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            x.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            1,
            k as isize,
            0.0,
            y.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

struct Layer {
    input_norm: Vec<f32>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Vec<f32>,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A LLaMA checkpoint loaded for CPU scoring.
pub struct LlamaModel {
    config: ModelConfig,
    embed: Vec<f32>,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    head: Linear,
    inv_freq: Vec<f32>,
    max_length: usize,
}

/// A dense layer read from `weights`: `prefix.weight` `[out, inp]` and, when `bias`,
/// `prefix.bias` `[out]`.
fn linear(weights: &Weights, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
    let weight = weights.f32(&format!("{prefix}.weight"), &[out, inp])?;
    let bias = if bias {
        Some(weights.f32(&format!("{prefix}.bias"), &[out])?)
    } else {
        None
    };
    Ok(Linear {
        weight,
        bias,
        out,
        inp,
    })
}

impl LlamaModel {
    /// Loads `dir/config.json` and its safetensors weights. `max_length` caps the window
    /// (default: the config's `max_position_embeddings`).
    pub fn load(dir: &Path, max_length: Option<usize>) -> Result<Self> {
        // config.json through the model crate: the LLaMA, Qwen2 and Mistral blocks, anything
        // else refused by field and value; then every tensor checked against it.
        let config = tinyforge_model::read_hf_config(dir)?;
        let weights = Weights::open(dir)?;
        weights.check(&config)?;
        let (d, f, v) = (config.dim, config.ffn_dim, config.vocab_size);
        let (q_out, kv_out) = (config.q_dim(), config.kv_dim());
        let (qkv_bias, o_bias) = (config.attention_bias.qkv(), config.attention_bias.o());
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = format!("model.layers.{i}");
            let w = &weights;
            layers.push(Layer {
                input_norm: w.f32(&format!("{p}.input_layernorm.weight"), &[d])?,
                q: linear(w, &format!("{p}.self_attn.q_proj"), q_out, d, qkv_bias)?,
                k: linear(w, &format!("{p}.self_attn.k_proj"), kv_out, d, qkv_bias)?,
                v: linear(w, &format!("{p}.self_attn.v_proj"), kv_out, d, qkv_bias)?,
                o: linear(w, &format!("{p}.self_attn.o_proj"), d, q_out, o_bias)?,
                post_norm: w.f32(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
                gate: linear(w, &format!("{p}.mlp.gate_proj"), f, d, false)?,
                up: linear(w, &format!("{p}.mlp.up_proj"), f, d, false)?,
                down: linear(w, &format!("{p}.mlp.down_proj"), d, f, false)?,
            });
        }
        let embed = weights.f32("model.embed_tokens.weight", &[v, d])?;
        let head = if config.tied_embeddings {
            Linear {
                weight: embed.clone(),
                bias: None,
                out: v,
                inp: d,
            }
        } else {
            linear(&weights, "lm_head", v, d, false)?
        };
        let norm = weights.f32("model.norm.weight", &[d])?;
        let hd = config.head_dim;
        // transformers computes the inverse frequencies in float32 from an int64 arange.
        let inv_freq = (0..hd / 2)
            .map(|i| (1.0 / config.rope_theta.powf((2 * i) as f64 / hd as f64)) as f32)
            .collect();
        let max_length = max_length
            .unwrap_or(config.max_seq_len)
            .min(config.max_seq_len);
        Ok(LlamaModel {
            config,
            embed,
            layers,
            norm,
            head,
            inv_freq,
            max_length,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn rms_norm(&self, x: &[f32], weight: &[f32]) -> Vec<f32> {
        let d = self.config.dim;
        let eps = self.config.norm_eps as f32;
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks(d) {
            let variance = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let scale = 1.0 / (variance + eps).sqrt();
            out.extend(row.iter().zip(weight).map(|(v, w)| w * (v * scale)));
        }
        out
    }

    /// Rotates each head of `x` (`[t, heads * hd]`) in place, rotate-half layout.
    fn rope(&self, x: &mut [f32], t: usize, heads: usize) {
        let hd = self.config.head_dim;
        let half = hd / 2;
        for pos in 0..t {
            for (i, &freq) in self.inv_freq.iter().enumerate() {
                let angle = pos as f32 * freq;
                let (sin, cos) = (f64::from(angle).sin() as f32, f64::from(angle).cos() as f32);
                for h in 0..heads {
                    let base = pos * heads * hd + h * hd;
                    let (a, b) = (x[base + i], x[base + i + half]);
                    x[base + i] = a * cos - b * sin;
                    x[base + i + half] = b * cos + a * sin;
                }
            }
        }
    }

    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], t: usize) -> Vec<f32> {
        let hd = self.config.head_dim;
        let heads = self.config.heads;
        let kv_heads = self.config.kv_heads;
        let group = heads / kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0.0f32; t * heads * hd];
        let mut scores = vec![0.0f32; t * t];
        for h in 0..heads {
            let kvh = h / group;
            // scores = Q_h K_h^T over strided views of the packed [t, heads * hd] buffers.
            // SAFETY: q is t×(heads*hd) and k is t×(kv_heads*hd); the views read hd columns
            // starting at h*hd / kvh*hd, inside each row; scores is t×t.
            #[expect(
                unsafe_code,
                reason = "sgemm reads the slices through raw pointers; the sizes above are checked"
            )]
            unsafe {
                matrixmultiply::sgemm(
                    t,
                    hd,
                    t,
                    scale,
                    q.as_ptr().add(h * hd),
                    (heads * hd) as isize,
                    1,
                    k.as_ptr().add(kvh * hd),
                    1,
                    (kv_heads * hd) as isize,
                    0.0,
                    scores.as_mut_ptr(),
                    t as isize,
                    1,
                );
            }
            for i in 0..t {
                let row = &mut scores[i * t..(i + 1) * t];
                let max = row[..=i].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for value in &mut row[..=i] {
                    *value = (*value - max).exp();
                    sum += *value;
                }
                for value in &mut row[..=i] {
                    *value /= sum;
                }
                row[i + 1..].fill(0.0);
            }
            // SAFETY: scores is t×t, v is t×(kv_heads*hd) read at column kvh*hd for hd
            // columns, out is t×(heads*hd) written at column h*hd for hd columns.
            #[expect(
                unsafe_code,
                reason = "sgemm reads the slices through raw pointers; the sizes above are checked"
            )]
            unsafe {
                matrixmultiply::sgemm(
                    t,
                    t,
                    hd,
                    1.0,
                    scores.as_ptr(),
                    t as isize,
                    1,
                    v.as_ptr().add(kvh * hd),
                    (kv_heads * hd) as isize,
                    1,
                    0.0,
                    out.as_mut_ptr().add(h * hd),
                    (heads * hd) as isize,
                    1,
                );
            }
        }
        out
    }

    /// Final hidden states `[t, hidden]` of a token sequence.
    fn hidden(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let d = self.config.dim;
        let t = tokens.len();
        let mut x = Vec::with_capacity(t * d);
        for &id in tokens {
            let id = id as usize;
            if id >= self.config.vocab_size {
                return Err(Error::Model(format!(
                    "token id {id} outside the vocabulary of {}",
                    self.config.vocab_size
                )));
            }
            x.extend_from_slice(&self.embed[id * d..(id + 1) * d]);
        }
        for layer in &self.layers {
            let h = self.rms_norm(&x, &layer.input_norm);
            let mut q = layer.q.forward(&h, t);
            let mut k = layer.k.forward(&h, t);
            let v = layer.v.forward(&h, t);
            self.rope(&mut q, t, self.config.heads);
            self.rope(&mut k, t, self.config.kv_heads);
            let attended = self.attention(&q, &k, &v, t);
            let o = layer.o.forward(&attended, t);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let h = self.rms_norm(&x, &layer.post_norm);
            let gate = layer.gate.forward(&h, t);
            let up = layer.up.forward(&h, t);
            let act: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = layer.down.forward(&act, t);
            x.iter_mut().zip(&down).for_each(|(a, b)| *a += b);
        }
        Ok(self.rms_norm(&x, &self.norm))
    }

    /// Log-probabilities of `window[len - scored..]`, each given everything before it, and
    /// whether each was the argmax.
    pub fn score_window(&self, window: &[u32], scored: usize) -> Result<Vec<(f64, bool)>> {
        let d = self.config.dim;
        let input = &window[..window.len() - 1];
        let hidden = self.hidden(input)?;
        let first = input.len() - scored;
        let logits = self.head.forward(&hidden[first * d..], scored);
        let v = self.config.vocab_size;
        Ok(logits
            .chunks(v)
            .zip(&window[window.len() - scored..])
            .map(|(row, &target)| {
                let (mut best, mut max) = (0, f32::NEG_INFINITY);
                for (i, &l) in row.iter().enumerate() {
                    if l > max {
                        (best, max) = (i, l);
                    }
                }
                let sum: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
                let logprob = f64::from(row[target as usize] - max) - sum.ln();
                (logprob, best == target as usize)
            })
            .collect())
    }
}

impl LanguageModel for LlamaModel {
    fn max_length(&self) -> usize {
        self.max_length
    }

    fn loglikelihood(&self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        requests
            .par_iter()
            .map(|(context, continuation)| {
                let (window, scored) = request_window(context, continuation, self.max_length)?;
                let tokens = self.score_window(&window, scored)?;
                Ok((tokens.iter().map(|t| t.0).sum(), tokens.iter().all(|t| t.1)))
            })
            .collect()
    }

    fn next_token_logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::Config(
                "generation needs at least one prompt token".into(),
            ));
        }
        let d = self.config.dim;
        let hidden = self.hidden(tokens)?;
        Ok(self.head.forward(&hidden[(tokens.len() - 1) * d..], 1))
    }
}
