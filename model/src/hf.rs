//! Hugging Face `config.json`: read the LLaMA family (`llama`, `qwen2`, `mistral`), refusing
//! every field whose value this decoder does not implement, and write the config that
//! `transformers` loads as `LlamaForCausalLM` (or `Qwen2ForCausalLM` for q/k/v biases).

use std::path::Path;

use serde_json::{Value, json};

use crate::config::{AttentionBias, ModelConfig};
use crate::error::{Error, Result};

/// The `model_type`s whose block is the LLaMA block (RMSNorm, SwiGLU, RoPE).
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["llama", "qwen2", "mistral"];

/// Parse `config.json` text; `path` names the file in errors.
pub fn from_hf_config(v: &Value, path: &Path) -> Result<ModelConfig> {
    let unsupported = |field: &str, value: &Value, message: &str| Error::Unsupported {
        path: path.to_path_buf(),
        field: field.to_string(),
        value: value.to_string(),
        message: message.to_string(),
    };
    let missing = |field: &str| Error::checkpoint(path, format!("lacks integer `{field}`"));
    let int = |k: &str| -> Result<Option<usize>> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| unsupported(k, x, "expected a non-negative integer")),
        }
    };
    let float = |k: &str, default: f64| -> Result<f64> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x
                .as_f64()
                .ok_or_else(|| unsupported(k, x, "expected a number")),
        }
    };
    let flag = |k: &str| -> Result<Option<bool>> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_bool()
                .map(Some)
                .ok_or_else(|| unsupported(k, x, "expected true or false")),
        }
    };
    let model_type = match v.get("model_type") {
        Some(Value::String(s)) if SUPPORTED_MODEL_TYPES.contains(&s.as_str()) => s.clone(),
        Some(other) => {
            return Err(unsupported(
                "model_type",
                other,
                &format!(
                    "only the LLaMA block is implemented (model_type {})",
                    SUPPORTED_MODEL_TYPES.join(", ")
                ),
            ));
        }
        None => return Err(Error::checkpoint(path, "lacks `model_type`")),
    };
    if let Some(act) = v.get("hidden_act")
        && act.as_str() != Some("silu")
    {
        return Err(unsupported(
            "hidden_act",
            act,
            "only SwiGLU (silu) is implemented",
        ));
    }
    if let Some(scaling) = v.get("rope_scaling")
        && !scaling.is_null()
    {
        return Err(unsupported(
            "rope_scaling",
            scaling,
            "RoPE scaling is not implemented (plain RoPE only)",
        ));
    }
    for moe in ["num_local_experts", "num_experts", "n_routed_experts"] {
        if let Some(x) = v.get(moe)
            && !x.is_null()
            && x.as_u64() != Some(0)
        {
            return Err(unsupported(
                moe,
                x,
                "mixture-of-experts layers are not implemented",
            ));
        }
    }
    if flag("mlp_bias")? == Some(true) {
        return Err(unsupported(
            "mlp_bias",
            &json!(true),
            "biases on the MLP are not implemented",
        ));
    }
    let attention_bias = match model_type.as_str() {
        // transformers' Qwen2Attention: bias on q, k and v, never on o.
        "qwen2" => AttentionBias::Qkv,
        _ if flag("attention_bias")? == Some(true) => AttentionBias::All,
        _ => AttentionBias::None,
    };
    let dim = int("hidden_size")?.ok_or_else(|| missing("hidden_size"))?;
    let heads = int("num_attention_heads")?.ok_or_else(|| missing("num_attention_heads"))?;
    let default_positions = match model_type.as_str() {
        "qwen2" => 32_768,
        "mistral" => 4096 * 32,
        _ => 2048,
    };
    let mut max_seq_len = int("max_position_embeddings")?.unwrap_or(default_positions);
    // Sliding-window attention equals full attention on windows no longer than the slide, so
    // such a model is exact here up to that length.
    let sliding = match model_type.as_str() {
        "qwen2" if flag("use_sliding_window")? == Some(true) => int("sliding_window")?,
        "mistral" => int("sliding_window")?,
        _ => None,
    };
    if let Some(window) = sliding {
        max_seq_len = max_seq_len.min(window);
    }
    let cfg = ModelConfig {
        name: v
            .get("tinyforge_model")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                v.get("_name_or_path")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| model_type.clone()),
        dim,
        layers: int("num_hidden_layers")?.ok_or_else(|| missing("num_hidden_layers"))?,
        heads,
        kv_heads: int("num_key_value_heads")?.unwrap_or(heads),
        head_dim: int("head_dim")?.unwrap_or(dim / heads.max(1)),
        ffn_dim: int("intermediate_size")?.ok_or_else(|| missing("intermediate_size"))?,
        vocab_size: int("vocab_size")?.ok_or_else(|| missing("vocab_size"))?,
        max_seq_len,
        // transformers' defaults for all three model types.
        rope_theta: float("rope_theta", 10_000.0)?,
        norm_eps: float("rms_norm_eps", 1e-6)?,
        init_std: float("initializer_range", 0.02)?,
        tied_embeddings: flag("tie_word_embeddings")?.unwrap_or(false),
        attention_bias,
    };
    cfg.validate()
        .map_err(|e| Error::checkpoint(path, e.to_string()))?;
    Ok(cfg)
}

/// Read and parse `dir/config.json`.
pub fn read_hf_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join(crate::CONFIG_FILE);
    from_hf_config(&read_json(&path)?, &path)
}

/// `eos_token_id` of `dir/config.json`, when it names one id.
pub fn eos_token_id(dir: &Path) -> Option<u32> {
    let v = read_json(&dir.join(crate::CONFIG_FILE)).ok()?;
    v.get("eos_token_id")?
        .as_u64()
        .and_then(|x| u32::try_from(x).ok())
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs_err::read(path)?;
    serde_json::from_slice(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

impl ModelConfig {
    /// Hugging Face `config.json`: `LlamaForCausalLM`, or `Qwen2ForCausalLM` when q/k/v carry
    /// biases without o (the one layout transformers' Qwen2 has).
    pub fn hf_config(&self, eos_id: Option<u32>) -> Value {
        let mut v = json!({
            "hidden_size": self.dim,
            "intermediate_size": self.ffn_dim,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_seq_len,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": null,
            "hidden_act": "silu",
            "tie_word_embeddings": self.tied_embeddings,
            "initializer_range": self.init_std,
            "torch_dtype": "float32",
            "tinyforge_model": self.name,
        });
        if self.attention_bias == AttentionBias::Qkv {
            v["architectures"] = json!(["Qwen2ForCausalLM"]);
            v["model_type"] = json!("qwen2");
            v["use_sliding_window"] = json!(false);
            v["sliding_window"] = Value::Null;
            v["max_window_layers"] = json!(self.layers);
        } else {
            v["architectures"] = json!(["LlamaForCausalLM"]);
            v["model_type"] = json!("llama");
            v["attention_bias"] = json!(self.attention_bias == AttentionBias::All);
            v["mlp_bias"] = json!(false);
        }
        if let Some(eos) = eos_id {
            v["eos_token_id"] = eos.into();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<ModelConfig> {
        from_hf_config(&v, Path::new("t/config.json"))
    }

    #[test]
    fn round_trips_every_layout() {
        for cfg in crate::config::test_layouts() {
            assert_eq!(parse(cfg.hf_config(Some(0))).unwrap(), cfg);
        }
    }

    #[test]
    fn reads_transformers_defaults_and_refuses_what_it_cannot_run() {
        let base = json!({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 100});
        let cfg = parse(base.clone()).unwrap();
        assert_eq!((cfg.kv_heads, cfg.head_dim, cfg.norm_eps), (2, 16, 1e-6));
        assert_eq!(cfg.max_seq_len, 2048);
        let with = |k: &str, x: Value| {
            let mut v = base.clone();
            v[k] = x;
            parse(v).map(|_| ()).unwrap_err().to_string()
        };
        let e = with("model_type", json!("gemma"));
        assert!(e.contains("`model_type` = \"gemma\""), "{e}");
        let e = with("hidden_act", json!("gelu"));
        assert!(e.contains("`hidden_act` = \"gelu\""), "{e}");
        let e = with(
            "rope_scaling",
            json!({"rope_type": "llama3", "factor": 8.0}),
        );
        assert!(e.contains("`rope_scaling`") && e.contains("llama3"), "{e}");
        let e = with("num_local_experts", json!(8));
        assert!(e.contains("num_local_experts"), "{e}");
        let e = with("num_key_value_heads", json!(3));
        assert!(e.contains("kv_heads 3"), "{e}");
        // Mistral's sliding window caps the exact window length.
        let mut m = base.clone();
        m["model_type"] = json!("mistral");
        m["sliding_window"] = json!(1024);
        m["max_position_embeddings"] = json!(32768);
        assert_eq!(parse(m).unwrap().max_seq_len, 1024);
        let mut q = base;
        q["model_type"] = json!("qwen2");
        assert_eq!(parse(q).unwrap().attention_bias, AttentionBias::Qkv);
    }
}
