//! The model shape: the TOML files in `configs/models/` (built in, so `--model pangu-1b-pro`
//! works from any folder), validation, and the parameter arithmetic of paper.md §3-4.

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

/// The names of the built-in configs.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// Which projections carry a bias. LLaMA has none (or, with `attention_bias`, all four of the
/// attention projections); Qwen2 has them on q, k and v only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionBias {
    #[default]
    None,
    /// q, k, v (Qwen2).
    Qkv,
    /// q, k, v and o (LLaMA's `attention_bias: true`).
    All,
}

impl AttentionBias {
    pub fn qkv(self) -> bool {
        self != AttentionBias::None
    }
    pub fn o(self) -> bool {
        self == AttentionBias::All
    }
}

/// A model TOML as written: every field optional, unknown fields refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOptions {
    pub name: Option<String>,
    pub dim: Option<usize>,
    pub layers: Option<usize>,
    pub heads: Option<usize>,
    /// Key/value heads (grouped-query attention); default: as many as `heads`.
    pub kv_heads: Option<usize>,
    /// Default: `dim / heads`.
    pub head_dim: Option<usize>,
    pub ffn_dim: Option<usize>,
    pub vocab_size: Option<usize>,
    pub max_seq_len: Option<usize>,
    pub rope_theta: Option<f64>,
    pub norm_eps: Option<f64>,
    pub init_std: Option<f64>,
    /// The LM head shares the embedding matrix.
    pub tied_embeddings: Option<bool>,
    pub attention_bias: Option<AttentionBias>,
}

/// A validated model shape: the LLaMA block (pre-RMSNorm, SwiGLU, RoPE in the rotate-half
/// layout), with grouped-query attention, optional q/k/v(/o) biases and an optionally tied head.
/// This is the one description of a model that vocab, train, eval and inherit share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredConfig")]
pub struct ModelConfig {
    pub name: String,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub max_seq_len: usize,
    pub rope_theta: f64,
    pub norm_eps: f64,
    /// Std of the normal init of every matrix (same in every layer: paper.md §4).
    pub init_std: f64,
    pub tied_embeddings: bool,
    pub attention_bias: AttentionBias,
}

/// `ModelConfig` as stored in a checkpoint's `state.json`: checkpoints written before GQA, tied
/// embeddings and biases existed lack those fields and mean MHA, untied, no bias.
#[derive(Deserialize)]
struct StoredConfig {
    name: String,
    dim: usize,
    layers: usize,
    heads: usize,
    kv_heads: Option<usize>,
    head_dim: Option<usize>,
    ffn_dim: usize,
    vocab_size: usize,
    max_seq_len: usize,
    rope_theta: f64,
    norm_eps: f64,
    init_std: f64,
    #[serde(default)]
    tied_embeddings: bool,
    #[serde(default)]
    attention_bias: AttentionBias,
}

impl From<StoredConfig> for ModelConfig {
    fn from(s: StoredConfig) -> Self {
        ModelConfig {
            kv_heads: s.kv_heads.unwrap_or(s.heads),
            head_dim: s.head_dim.unwrap_or(s.dim / s.heads.max(1)),
            name: s.name,
            dim: s.dim,
            layers: s.layers,
            heads: s.heads,
            ffn_dim: s.ffn_dim,
            vocab_size: s.vocab_size,
            max_seq_len: s.max_seq_len,
            rope_theta: s.rope_theta,
            norm_eps: s.norm_eps,
            init_std: s.init_std,
            tied_embeddings: s.tied_embeddings,
            attention_bias: s.attention_bias,
        }
    }
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
            return Err(Error::shape(
                name_or_path,
                format!(
                    "neither a built-in config ({}) nor a file",
                    builtin_names().join(", ")
                ),
            ));
        }
        let text = fs_err::read_to_string(path)?;
        toml::from_str(&text).map_err(|source| Error::Toml {
            path: path.into(),
            source,
        })
    }

    /// Validate; `vocab_size` falls back to `default_vocab` (the dataset's) when not set.
    pub fn resolve(&self, default_vocab: Option<usize>) -> Result<ModelConfig> {
        let name = self.name.clone().unwrap_or_else(|| "custom".into());
        let need = |v: Option<usize>, what: &str| {
            v.ok_or_else(|| Error::shape(&name, format!("the config lacks `{what}`")))
        };
        let dim = need(self.dim, "dim")?;
        let heads = need(self.heads, "heads")?;
        let cfg = ModelConfig {
            dim,
            layers: need(self.layers, "layers")?,
            heads,
            kv_heads: self.kv_heads.unwrap_or(heads),
            head_dim: self.head_dim.unwrap_or(dim / heads.max(1)),
            // InternEvo's rule: 8/3 x dim rounded up to a multiple of 256 (paper.md §12).
            ffn_dim: self
                .ffn_dim
                .unwrap_or_else(|| (dim * 8 / 3).div_ceil(256) * 256),
            vocab_size: need(self.vocab_size.or(default_vocab), "vocab_size")?,
            max_seq_len: self.max_seq_len.unwrap_or(2048),
            rope_theta: self.rope_theta.unwrap_or(10_000.0),
            norm_eps: self.norm_eps.unwrap_or(1e-5),
            init_std: self.init_std.unwrap_or(0.02),
            tied_embeddings: self.tied_embeddings.unwrap_or(false),
            attention_bias: self.attention_bias.unwrap_or_default(),
            name,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl ModelConfig {
    pub fn builtin(name: &str) -> Result<Self> {
        ModelOptions::load(name)?.resolve(None)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::shape(&self.name, m));
        if self.dim == 0
            || self.layers == 0
            || self.heads == 0
            || self.kv_heads == 0
            || self.head_dim == 0
            || self.ffn_dim == 0
            || self.vocab_size == 0
        {
            return bad(
                "dim, layers, heads, kv_heads, head_dim, ffn_dim and vocab_size must \
                        be > 0"
                    .into(),
            );
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!(
                "heads {} is not a multiple of kv_heads {}",
                self.heads, self.kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("head dim {} must be even for RoPE", self.head_dim));
        }
        if !(self.norm_eps > 0.0 && self.rope_theta > 0.0) {
            return bad("norm_eps and rope_theta must be > 0".into());
        }
        Ok(())
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Width of the query projection's output (`heads x head_dim`).
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Width of each of the key and value projections' outputs.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Parameters of one decoder layer: q, k, v, o (and their biases); gate, up, down; two
    /// RMSNorm weights.
    pub fn layer_params(&self) -> u64 {
        let (d, f) = (self.dim as u64, self.ffn_dim as u64);
        let (q, kv) = (self.q_dim() as u64, self.kv_dim() as u64);
        let attention = d * q + 2 * d * kv + q * d;
        let bias = match self.attention_bias {
            AttentionBias::None => 0,
            AttentionBias::Qkv => q + 2 * kv,
            AttentionBias::All => q + 2 * kv + d,
        };
        attention + bias + 3 * d * f + 2 * d
    }

    /// Embedding plus LM head (one matrix when tied).
    pub fn embedding_params(&self) -> u64 {
        let one = (self.vocab_size as u64) * (self.dim as u64);
        if self.tied_embeddings { one } else { 2 * one }
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
        6.0 * self.param_count() as f64 + 6.0 * (self.layers * self.q_dim() * seq) as f64
    }

    /// The config as a model TOML that [`ModelOptions::load`] reads back to this config.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a model config serializes to TOML")
    }

    /// The same architecture (everything that decides the weights' meaning), ignoring the name,
    /// the init std and the window length.
    pub fn same_architecture(&self, other: &ModelConfig) -> bool {
        let key = |c: &ModelConfig| {
            (
                c.dim,
                c.layers,
                c.heads,
                c.kv_heads,
                c.head_dim,
                c.ffn_dim,
                c.vocab_size,
                c.tied_embeddings,
                c.attention_bias,
            )
        };
        key(self) == key(other)
            && self.rope_theta == other.rope_theta
            && self.norm_eps == other.norm_eps
    }
}

/// The tiny config in each attention layout (MHA untied without bias, GQA tied with q/k/v
/// biases, MQA with every attention bias), for the crate's tests.
#[cfg(test)]
pub(crate) fn test_layouts() -> Vec<ModelConfig> {
    [
        (4, false, AttentionBias::None),
        (2, true, AttentionBias::Qkv),
        (1, false, AttentionBias::All),
    ]
    .into_iter()
    .map(|(kv, tied, bias)| {
        ModelOptions {
            kv_heads: Some(kv),
            tied_embeddings: Some(tied),
            attention_bias: Some(bias),
            ..ModelOptions::load("tiny").unwrap()
        }
        .resolve(Some(300))
        .unwrap()
    })
    .collect()
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
        let deeper = ModelConfig {
            layers: 21,
            ..pro.clone()
        };
        assert_eq!(format!("{:.3}", deeper.param_count() as f64 / 1e9), "0.991");
        // §4: 1.5B Pro with FFN 5632 would be only 1.33B; our FFN 7168 gives ~1.53B.
        let p15 = ModelConfig::builtin("pangu-1.5b-pro").unwrap();
        let small_ffn = ModelConfig {
            ffn_dim: 5632,
            ..p15.clone()
        };
        assert_eq!(
            format!("{:.2}", small_ffn.param_count() as f64 / 1e9),
            "1.33"
        );
        assert_eq!(format!("{:.2}", p15.param_count() as f64 / 1e9), "1.53");
        assert_eq!(p15.head_dim, 128);
        let base = ModelConfig::builtin("pangu-1b").unwrap();
        assert_eq!(
            (base.dim, base.layers, base.heads, base.vocab_size),
            (2048, 12, 16, 100_883)
        );
        assert_eq!((pro.kv_heads, pro.head_dim), (14, 128));
    }

    #[test]
    fn gqa_tied_and_bias_counts() {
        // Qwen2.5-0.5B: 896 wide, 24 layers, 14 heads of 64, 2 KV heads, FFN 4864, V 151,936,
        // tied, q/k/v biases: 494,032,768 parameters (its model card says 0.49B).
        let qwen = ModelOptions {
            name: Some("qwen2.5-0.5b".into()),
            dim: Some(896),
            layers: Some(24),
            heads: Some(14),
            kv_heads: Some(2),
            ffn_dim: Some(4864),
            vocab_size: Some(151_936),
            tied_embeddings: Some(true),
            attention_bias: Some(AttentionBias::Qkv),
            ..Default::default()
        }
        .resolve(None)
        .unwrap();
        assert_eq!(qwen.param_count(), 494_032_768);
        let bad = ModelOptions {
            kv_heads: Some(3),
            ..ModelOptions::load("tiny").unwrap()
        };
        let err = bad.resolve(Some(10)).unwrap_err().to_string();
        assert!(err.contains("kv_heads 3"), "{err}");
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

    #[test]
    fn old_state_json_configs_read_as_mha_untied() {
        let old = r#"{"name":"tiny","dim":64,"layers":2,"heads":4,"ffn_dim":176,
            "vocab_size":300,"max_seq_len":512,"rope_theta":10000.0,"norm_eps":1e-5,
            "init_std":0.02}"#;
        let cfg: ModelConfig = serde_json::from_str(old).unwrap();
        assert_eq!(
            cfg,
            ModelOptions::load("tiny")
                .unwrap()
                .resolve(Some(300))
                .unwrap()
        );
        let back: ModelConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }
}
