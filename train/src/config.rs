//! Model configuration: the TOML files in `configs/models/` (built in, so `--model pangu-1b-pro`
//! works from any folder), the parameter arithmetic of paper.md §3-4, and the Hugging Face
//! `config.json` a checkpoint carries so `transformers` loads it as `LlamaForCausalLM`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Built-in model configs, by name (the files in `configs/models/`).
const BUILTIN: &[(&str, &str)] = &[
    ("tiny", include_str!("../../configs/models/tiny.toml")),
    (
        "pangu-1b",
        include_str!("../../configs/models/pangu-1b.toml"),
    ),
    (
        "pangu-1b-pro",
        include_str!("../../configs/models/pangu-1b-pro.toml"),
    ),
    (
        "pangu-1.5b-pro",
        include_str!("../../configs/models/pangu-1.5b-pro.toml"),
    ),
];

/// A model TOML as written: every field optional, unknown fields refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOptions {
    pub name: Option<String>,
    pub dim: Option<usize>,
    pub layers: Option<usize>,
    pub heads: Option<usize>,
    pub ffn_dim: Option<usize>,
    pub vocab_size: Option<usize>,
    pub max_seq_len: Option<usize>,
    pub rope_theta: Option<f64>,
    pub norm_eps: Option<f64>,
    pub init_std: Option<f64>,
}

/// A validated model shape. LLaMA block: pre-RMSNorm, SwiGLU, RoPE, untied embedding and head,
/// as many key/value heads as query heads, no biases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub max_seq_len: usize,
    pub rope_theta: f64,
    pub norm_eps: f64,
    /// Std of the normal init of every matrix (same in every layer: paper.md §4).
    pub init_std: f64,
}

impl ModelOptions {
    /// A built-in config name (`tiny`, `pangu-1b`, `pangu-1b-pro`, `pangu-1.5b-pro`) or a path
    /// to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Self> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return toml::from_str(text).map_err(|source| Error::Toml {
                path: format!("<built-in {name_or_path}>").into(),
                source,
            });
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
            return Err(Error::Config(format!(
                "model `{name_or_path}` is neither a built-in config ({}) nor a file",
                names.join(", ")
            )));
        }
        let text = fs_err::read_to_string(path)?;
        toml::from_str(&text).map_err(|source| Error::Toml {
            path: path.into(),
            source,
        })
    }

    /// Validate; `vocab_size` falls back to `default_vocab` (the dataset's) when not set.
    pub fn resolve(&self, default_vocab: Option<usize>) -> Result<ModelConfig> {
        let need = |v: Option<usize>, what: &str| {
            v.ok_or_else(|| Error::Config(format!("model config lacks `{what}`")))
        };
        let dim = need(self.dim, "dim")?;
        let heads = need(self.heads, "heads")?;
        let cfg = ModelConfig {
            name: self.name.clone().unwrap_or_else(|| "custom".into()),
            dim,
            layers: need(self.layers, "layers")?,
            heads,
            // InternEvo's rule: 8/3 x dim rounded up to a multiple of 256 (paper.md §12).
            ffn_dim: self
                .ffn_dim
                .unwrap_or_else(|| (dim * 8 / 3).div_ceil(256) * 256),
            vocab_size: need(self.vocab_size.or(default_vocab), "vocab_size")?,
            max_seq_len: self.max_seq_len.unwrap_or(2048),
            rope_theta: self.rope_theta.unwrap_or(10_000.0),
            norm_eps: self.norm_eps.unwrap_or(1e-5),
            init_std: self.init_std.unwrap_or(0.02),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl ModelConfig {
    pub fn builtin(name: &str) -> Result<Self> {
        ModelOptions::load(name)?.resolve(None)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.dim == 0 || self.layers == 0 || self.heads == 0 || self.vocab_size == 0 {
            return bad(format!(
                "{}: dim, layers, heads and vocab_size must be > 0",
                self.name
            ));
        }
        if !self.dim.is_multiple_of(self.heads) {
            return bad(format!(
                "{}: dim {} is not a multiple of heads {}",
                self.name, self.dim, self.heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "{}: head dim {} must be even for RoPE",
                self.name,
                self.head_dim()
            ));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Parameters of one decoder layer: q, k, v, o; gate, up, down; two RMSNorm weights.
    pub fn layer_params(&self) -> u64 {
        let (d, f) = (self.dim as u64, self.ffn_dim as u64);
        4 * d * d + 3 * d * f + 2 * d
    }

    /// Embedding plus (untied) LM head.
    pub fn embedding_params(&self) -> u64 {
        2 * (self.vocab_size as u64) * (self.dim as u64)
    }

    pub fn param_count(&self) -> u64 {
        self.embedding_params() + self.layers as u64 * self.layer_params() + self.dim as u64
    }

    /// Share of the parameters in embedding + head (the paper's rule: below 20%).
    pub fn embedding_share(&self) -> f64 {
        self.embedding_params() as f64 / self.param_count() as f64
    }

    /// Model FLOPs of one training token at sequence length `seq`: 6 x parameters plus causal
    /// attention (forward + backward), the same count as the PyTorch peer
    /// (`bench/train-gpu/torch_peer.py`) so the two FLOP/s figures compare.
    pub fn train_flops_per_token(&self, seq: usize) -> f64 {
        6.0 * self.param_count() as f64 + 6.0 * (self.layers * self.dim * seq) as f64
    }

    /// Hugging Face `config.json` for `LlamaForCausalLM`.
    pub fn hf_config(&self, eos_id: Option<u32>) -> serde_json::Value {
        let mut v = serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.dim,
            "intermediate_size": self.ffn_dim,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.heads,
            "head_dim": self.head_dim(),
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_seq_len,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "tie_word_embeddings": false,
            "initializer_range": self.init_std,
            "torch_dtype": "float32",
            "tinyforge_model": self.name,
        });
        if let Some(eos) = eos_id {
            v["eos_token_id"] = eos.into();
        }
        v
    }

    /// Read back a Hugging Face `config.json` written by [`ModelConfig::hf_config`] (or by
    /// `transformers` for a LLaMA model of the same family).
    pub fn from_hf_config(v: &serde_json::Value) -> Result<Self> {
        let get = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| Error::Config(format!("config.json lacks integer `{k}`")))
        };
        if v.get("tie_word_embeddings").and_then(|x| x.as_bool()) == Some(true) {
            return Err(Error::Config("tied embeddings are not supported".into()));
        }
        let heads = get("num_attention_heads")?;
        if get("num_key_value_heads").unwrap_or(heads) != heads {
            return Err(Error::Config(
                "grouped-query attention is not supported".into(),
            ));
        }
        let cfg = ModelConfig {
            name: v
                .get("tinyforge_model")
                .and_then(|x| x.as_str())
                .unwrap_or("hf")
                .to_string(),
            dim: get("hidden_size")?,
            layers: get("num_hidden_layers")?,
            heads,
            ffn_dim: get("intermediate_size")?,
            vocab_size: get("vocab_size")?,
            max_seq_len: get("max_position_embeddings")?,
            rope_theta: v
                .get("rope_theta")
                .and_then(|x| x.as_f64())
                .unwrap_or(10_000.0),
            norm_eps: v
                .get("rms_norm_eps")
                .and_then(|x| x.as_f64())
                .unwrap_or(1e-5),
            init_std: v
                .get("initializer_range")
                .and_then(|x| x.as_f64())
                .unwrap_or(0.02),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_arithmetic() {
        // paper.md §3: d=1792, 20 layers, FFN 4864, V=48,000: 0.952B, 18.07% embedding + head.
        let pro = ModelConfig::builtin("pangu-1b-pro").unwrap();
        assert_eq!(pro.param_count(), 951_983_872);
        assert_eq!(format!("{:.2}", 100.0 * pro.embedding_share()), "18.07");
        // §4: 39.0M per layer, 172.0M embedding + head.
        assert_eq!(format!("{:.1}", pro.layer_params() as f64 / 1e6), "39.0");
        assert_eq!(
            format!("{:.1}", pro.embedding_params() as f64 / 1e6),
            "172.0"
        );
        // §3: V = 100,864, 15 layers at the same width: 38.19%, 0.946B.
        let sweep = ModelConfig {
            vocab_size: 100_864,
            layers: 15,
            ..pro.clone()
        };
        assert_eq!(format!("{:.2}", 100.0 * sweep.embedding_share()), "38.19");
        assert_eq!(format!("{:.3}", sweep.param_count() as f64 / 1e9), "0.946");
        // §4: 21 layers give 0.991B.
        let deeper = ModelConfig { layers: 21, ..pro };
        assert_eq!(format!("{:.3}", deeper.param_count() as f64 / 1e9), "0.991");
        // §4: 1.5B Pro with FFN 5632 would be only 1.33B; our FFN 7168 gives ~1.53B.
        let p15 = ModelConfig::builtin("pangu-1.5b-pro").unwrap();
        assert_eq!(
            format!(
                "{:.2}",
                ModelConfig {
                    ffn_dim: 5632,
                    ..p15.clone()
                }
                .param_count() as f64
                    / 1e9
            ),
            "1.33"
        );
        assert_eq!(format!("{:.2}", p15.param_count() as f64 / 1e9), "1.53");
        assert_eq!(p15.head_dim(), 128);
        let base = ModelConfig::builtin("pangu-1b").unwrap();
        assert_eq!(
            (base.dim, base.layers, base.heads, base.vocab_size),
            (2048, 12, 16, 100_883)
        );
    }

    #[test]
    fn tiny_takes_the_dataset_vocab_and_hf_round_trips() {
        let opts = ModelOptions::load("tiny").unwrap();
        assert!(opts.resolve(None).is_err());
        let cfg = opts.resolve(Some(300)).unwrap();
        assert_eq!(cfg.vocab_size, 300);
        assert_eq!(
            ModelConfig::from_hf_config(&cfg.hf_config(Some(0))).unwrap(),
            cfg
        );
        assert!(ModelOptions::load("no-such-model").is_err());
    }

    #[test]
    fn default_ffn_follows_internevo_rounding() {
        let o = ModelOptions {
            dim: Some(1792),
            layers: Some(1),
            heads: Some(14),
            vocab_size: Some(8),
            ..Default::default()
        };
        assert_eq!(o.resolve(None).unwrap().ffn_dim, 4864);
        let o = ModelOptions {
            dim: Some(2048),
            heads: Some(16),
            ..o
        };
        assert_eq!(o.resolve(None).unwrap().ffn_dim, 5632);
    }
}
