//! A pure-Rust CPU forward of the LLaMA decoder that tinyforge-train writes (Hugging Face tensor
//! names in safetensors + `config.json`), so `tinyforge eval` scores checkpoints without
//! libtorch. It follows `transformers`' `LlamaForCausalLM` in float32: pre-RMSNorm, RoPE with
//! the rotate-half layout, grouped-query causal attention, SwiGLU, untied (or tied) head.
//! Matrix products go through `matrixmultiply`'s sgemm; requests run in parallel with rayon.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{LanguageModel, Request, request_window};

/// The fields of a Hugging Face `LlamaConfig` the forward needs.
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    pub num_hidden_layers: usize,
    pub vocab_size: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_positions() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
}

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
    #[allow(unsafe_code)]
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
    config: LlamaConfig,
    embed: Vec<f32>,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    head: Linear,
    inv_freq: Vec<f32>,
    max_length: usize,
}

/// Tensors by name from one or more safetensors files, converted to f32.
struct TensorSource {
    dir: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
    file_of: HashMap<String, String>,
}

impl TensorSource {
    fn open(dir: &Path) -> Result<Self> {
        let bad = |message: String| Error::Checkpoint {
            path: dir.to_path_buf(),
            message,
        };
        let index = dir.join("model.safetensors.index.json");
        let names: Vec<String> = if index.exists() {
            let json: serde_json::Value = serde_json::from_str(&fs_err::read_to_string(&index)?)
                .map_err(|e| bad(format!("model.safetensors.index.json: {e}")))?;
            let map = json["weight_map"]
                .as_object()
                .ok_or_else(|| bad("index has no weight_map".into()))?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            files.sort();
            files.dedup();
            files
        } else if dir.join("model.safetensors").exists() {
            vec!["model.safetensors".to_string()]
        } else {
            return Err(bad(
                "no model.safetensors (or model.safetensors.index.json)".into(),
            ));
        };
        let mut files = BTreeMap::new();
        let mut file_of = HashMap::new();
        for name in names {
            let bytes = fs_err::read(dir.join(&name))?;
            let tensors =
                SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("{name}: {e}")))?;
            for tensor in tensors.names() {
                file_of.insert(tensor.to_string(), name.clone());
            }
            files.insert(name, bytes);
        }
        Ok(TensorSource {
            dir: dir.to_path_buf(),
            files,
            file_of,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.file_of.contains_key(name)
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let bad = |message: String| Error::Checkpoint {
            path: self.dir.clone(),
            message,
        };
        let file = self
            .file_of
            .get(name)
            .ok_or_else(|| bad(format!("missing tensor {name}")))?;
        let tensors =
            SafeTensors::deserialize(&self.files[file]).map_err(|e| bad(format!("{file}: {e}")))?;
        let view = tensors
            .tensor(name)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        if view.shape() != shape {
            return Err(bad(format!(
                "tensor {name} has shape {:?}, config implies {shape:?}",
                view.shape()
            )));
        }
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(bad(format!(
                    "tensor {name} has dtype {other:?}; expected F32, BF16 or F16"
                )));
            }
        };
        Ok(values)
    }

    fn linear(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let weight = self.get(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias {
            Some(self.get(&format!("{prefix}.bias"), &[out])?)
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
}

impl LlamaModel {
    /// Loads `dir/config.json` and its safetensors weights. `max_length` caps the window
    /// (default: the config's `max_position_embeddings`).
    pub fn load(dir: &Path, max_length: Option<usize>) -> Result<Self> {
        let bad = |message: String| Error::Checkpoint {
            path: dir.to_path_buf(),
            message,
        };
        let config_text = fs_err::read_to_string(dir.join("config.json"))?;
        let config: LlamaConfig =
            serde_json::from_str(&config_text).map_err(|e| bad(format!("config.json: {e}")))?;
        if config.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "rope_scaling is not supported by the CPU forward".into()
            ));
        }
        if config.hidden_act != "silu" {
            return Err(bad(format!(
                "hidden_act {:?} (only silu is supported)",
                config.hidden_act
            )));
        }
        if !config.num_attention_heads.is_multiple_of(config.kv_heads()) {
            return Err(bad(
                "num_attention_heads is not a multiple of num_key_value_heads".into(),
            ));
        }
        let source = TensorSource::open(dir)?;
        let (d, f, v) = (
            config.hidden_size,
            config.intermediate_size,
            config.vocab_size,
        );
        let hd = config.head_dim();
        let (q_out, kv_out) = (config.num_attention_heads * hd, config.kv_heads() * hd);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let ab = config.attention_bias;
            let mb = config.mlp_bias;
            layers.push(Layer {
                input_norm: source.get(&format!("{p}.input_layernorm.weight"), &[d])?,
                q: source.linear(&format!("{p}.self_attn.q_proj"), q_out, d, ab)?,
                k: source.linear(&format!("{p}.self_attn.k_proj"), kv_out, d, ab)?,
                v: source.linear(&format!("{p}.self_attn.v_proj"), kv_out, d, ab)?,
                o: source.linear(&format!("{p}.self_attn.o_proj"), d, q_out, ab)?,
                post_norm: source.get(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
                gate: source.linear(&format!("{p}.mlp.gate_proj"), f, d, mb)?,
                up: source.linear(&format!("{p}.mlp.up_proj"), f, d, mb)?,
                down: source.linear(&format!("{p}.mlp.down_proj"), d, f, mb)?,
            });
        }
        let embed = source.get("model.embed_tokens.weight", &[v, d])?;
        let head = if source.has("lm_head.weight") {
            source.linear("lm_head", v, d, false)?
        } else if config.tie_word_embeddings {
            Linear {
                weight: embed.clone(),
                bias: None,
                out: v,
                inp: d,
            }
        } else {
            return Err(bad(
                "missing tensor lm_head.weight (and tie_word_embeddings is false)".into(),
            ));
        };
        let norm = source.get("model.norm.weight", &[d])?;
        // transformers computes the inverse frequencies in float32 from an int64 arange.
        let inv_freq = (0..hd / 2)
            .map(|i| (1.0 / config.rope_theta.powf((2 * i) as f64 / hd as f64)) as f32)
            .collect();
        let max_length = max_length
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
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

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    fn rms_norm(&self, x: &[f32], weight: &[f32]) -> Vec<f32> {
        let d = self.config.hidden_size;
        let eps = self.config.rms_norm_eps as f32;
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
        let hd = self.config.head_dim();
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
        let hd = self.config.head_dim();
        let heads = self.config.num_attention_heads;
        let kv_heads = self.config.kv_heads();
        let group = heads / kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0.0f32; t * heads * hd];
        let mut scores = vec![0.0f32; t * t];
        for h in 0..heads {
            let kvh = h / group;
            // scores = Q_h K_h^T over strided views of the packed [t, heads * hd] buffers.
            // SAFETY: q is t×(heads*hd) and k is t×(kv_heads*hd); the views read hd columns
            // starting at h*hd / kvh*hd, inside each row; scores is t×t.
            #[allow(unsafe_code)]
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
            #[allow(unsafe_code)]
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
        let d = self.config.hidden_size;
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
            self.rope(&mut q, t, self.config.num_attention_heads);
            self.rope(&mut k, t, self.config.kv_heads());
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
        let d = self.config.hidden_size;
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
}
