//! GGUF export: a checkpoint folder (config.json, safetensors, tokenizer.json) as one GGUF v3
//! file for llama.cpp's `llama` architecture, with the metadata, tensor names and Q/K row
//! order that llama.cpp's `convert_hf_to_gguf.py` writes for a LLaMA model, so llama.cpp and
//! transformers' GGUF loader (which undo that order) run the same model.
//!
//! Norms and biases stay F32 in every type, as llama.cpp keeps them. Q8_0 needs rows that are
//! whole 32-value blocks; a matrix whose rows are not is written as F16 instead (and listed in
//! the report), as `convert_hf_to_gguf.py` falls back.

mod format;
mod vocab;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::hf::read_hf_config;
use crate::tensors::{Role, TensorSpec};
use crate::weights::Weights;
use format::{ALIGNMENT, GgmlType, Q8_0_BLOCK, TensorInfo, Value, align};

/// The element type of a GGUF file's matrices (`--type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum GgufType {
    #[serde(rename = "f32")]
    F32,
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "bf16")]
    BF16,
    #[serde(rename = "q8_0")]
    Q8_0,
}

impl GgufType {
    /// Every type, by its command-line name.
    pub const ALL: [GgufType; 4] = [GgufType::F32, GgufType::F16, GgufType::BF16, GgufType::Q8_0];

    pub fn name(self) -> &'static str {
        match self {
            GgufType::F32 => "f32",
            GgufType::F16 => "f16",
            GgufType::BF16 => "bf16",
            GgufType::Q8_0 => "q8_0",
        }
    }

    fn ggml(self) -> GgmlType {
        match self {
            GgufType::F32 => GgmlType::F32,
            GgufType::F16 => GgmlType::F16,
            GgufType::BF16 => GgmlType::BF16,
            GgufType::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`).
    fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
            GgufType::BF16 => 32,
        }
    }
}

impl fmt::Display for GgufType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GgufType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        GgufType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::Unsupported {
                path: PathBuf::from("<command line>"),
                field: "type".into(),
                value: format!("{s:?}"),
                message: "expected one of f32, f16, bf16, q8_0".into(),
            })
    }
}

/// What [`export_gguf`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct GgufReport {
    pub path: PathBuf,
    #[serde(rename = "type")]
    pub ty: GgufType,
    pub tensors: usize,
    pub parameters: u64,
    /// The file's size.
    pub bytes: u64,
    /// The model's vocabulary size, and how many of those ids the tokenizer defines (the rest
    /// are `[PAD{id}]` entries).
    pub vocab_size: usize,
    pub vocab_defined: usize,
    /// GGUF names of the matrices written as F16 under Q8_0 (rows not a multiple of 32).
    pub f16_fallback: Vec<String>,
}

/// One tensor of the file: where its values come from and how they are written.
struct Planned<'a> {
    spec: &'a TensorSpec,
    info: TensorInfo,
    /// Heads whose rows get llama.cpp's Q/K permutation.
    permute_heads: Option<usize>,
}

/// Writes the checkpoint folder `checkpoint` as the GGUF file `out` (atomically: readers see
/// the old file or the whole new one), its matrices as `ty`.
pub fn export_gguf(checkpoint: &Path, out: &Path, ty: GgufType) -> Result<GgufReport> {
    let cfg = read_hf_config(checkpoint)?;
    let weights = Weights::open(checkpoint)?;
    let specs = weights.check(&cfg)?;
    let vocab = vocab::read_vocab(checkpoint, &cfg)?;

    let mut planned = Vec::with_capacity(specs.len());
    let mut f16_fallback = Vec::new();
    let mut offset = 0;
    for spec in &specs {
        let name = gguf_name(spec);
        let tensor_ty = if spec.shape.len() < 2 {
            GgmlType::F32
        } else if ty == GgufType::Q8_0 && !spec.shape[1].is_multiple_of(Q8_0_BLOCK) {
            f16_fallback.push(name.clone());
            GgmlType::F16
        } else {
            ty.ggml()
        };
        let dims: Vec<u64> = spec.shape.iter().rev().map(|d| *d as u64).collect();
        let permute_heads = match spec.role {
            Role::Q | Role::QBias => Some(cfg.heads),
            Role::K | Role::KBias => Some(cfg.kv_heads),
            _ => None,
        };
        let info = TensorInfo {
            name,
            dims,
            ty: tensor_ty,
            offset,
        };
        offset = align(offset + tensor_ty.bytes(spec.numel() as u64));
        planned.push(Planned {
            spec,
            info,
            permute_heads,
        });
    }

    let mut metadata = model_metadata(&cfg, ty)?;
    metadata.extend(vocab.metadata);
    let infos: Vec<TensorInfo> = planned.iter().map(|p| p.info.clone()).collect();
    let header = format::header(&metadata, &infos)?;

    let mut file = tinyforge_task::AtomicFile::create(out)?;
    file.write_all(&header)?;
    let mut written = 0u64;
    for p in &planned {
        let mut values = weights.f32(&p.spec.name, &p.spec.shape)?;
        if let Some(heads) = p.permute_heads {
            let cols = p.spec.shape.get(1).copied().unwrap_or(1);
            values = permute_rows(&values, p.spec.shape[0], cols, heads);
        }
        let bytes = p.info.ty.encode(&values);
        if written != p.info.offset || bytes.len() as u64 != p.info.ty.bytes(p.spec.numel() as u64)
        {
            return Err(Error::Internal(format!(
                "GGUF tensor {} planned at {} with {} bytes, written at {written} with {}",
                p.info.name,
                p.info.offset,
                p.info.ty.bytes(p.spec.numel() as u64),
                bytes.len()
            )));
        }
        file.write_all(&bytes)?;
        let padded = align(bytes.len() as u64);
        file.write_all(&vec![0; (padded - bytes.len() as u64) as usize])?;
        written += padded;
    }
    file.commit()?;
    Ok(GgufReport {
        path: out.to_path_buf(),
        ty,
        tensors: planned.len(),
        parameters: specs.iter().map(|s| s.numel() as u64).sum(),
        bytes: header.len() as u64 + written,
        vocab_size: cfg.vocab_size,
        vocab_defined: vocab.defined,
        f16_fallback,
    })
}

/// The `llama.*` and `general.*` keys, as convert_hf_to_gguf.py writes them for LLaMA.
fn model_metadata(cfg: &ModelConfig, ty: GgufType) -> Result<Vec<(String, Value)>> {
    let mut too_large = None;
    let mut u32_of = |n: usize| {
        Value::U32(u32::try_from(n).unwrap_or_else(|_| {
            too_large = Some(n);
            u32::MAX
        }))
    };
    let mut m = vec![
        ("general.architecture", Value::Str("llama".into())),
        ("general.type", Value::Str("model".into())),
        ("general.name", Value::Str(cfg.name.clone())),
        ("general.alignment", Value::U32(ALIGNMENT as u32)),
        ("general.file_type", Value::U32(ty.file_type())),
        ("general.quantization_version", Value::U32(2)),
        ("llama.context_length", u32_of(cfg.max_seq_len)),
        ("llama.embedding_length", u32_of(cfg.dim)),
        ("llama.block_count", u32_of(cfg.layers)),
        ("llama.feed_forward_length", u32_of(cfg.ffn_dim)),
        ("llama.attention.head_count", u32_of(cfg.heads)),
        ("llama.attention.head_count_kv", u32_of(cfg.kv_heads)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(cfg.norm_eps as f32),
        ),
        ("llama.rope.freq_base", Value::F32(cfg.rope_theta as f32)),
        ("llama.rope.dimension_count", u32_of(cfg.head_dim)),
        ("llama.vocab_size", u32_of(cfg.vocab_size)),
    ];
    if cfg.head_dim * cfg.heads != cfg.dim {
        m.push(("llama.attention.key_length", u32_of(cfg.head_dim)));
        m.push(("llama.attention.value_length", u32_of(cfg.head_dim)));
    }
    if let Some(n) = too_large {
        return Err(Error::shape(
            &cfg.name,
            format!("{n} does not fit GGUF's 32-bit hyperparameters"),
        ));
    }
    Ok(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// llama.cpp's name for a tensor.
fn gguf_name(spec: &TensorSpec) -> String {
    let block = |name: &str| format!("blk.{}.{name}", spec.layer.unwrap_or(0));
    match spec.role {
        Role::Embed => "token_embd.weight".into(),
        Role::FinalNorm => "output_norm.weight".into(),
        Role::Head => "output.weight".into(),
        Role::InputNorm => block("attn_norm.weight"),
        Role::Q => block("attn_q.weight"),
        Role::K => block("attn_k.weight"),
        Role::V => block("attn_v.weight"),
        Role::QBias => block("attn_q.bias"),
        Role::KBias => block("attn_k.bias"),
        Role::VBias => block("attn_v.bias"),
        Role::O => block("attn_output.weight"),
        Role::OBias => block("attn_output.bias"),
        Role::PostNorm => block("ffn_norm.weight"),
        Role::Gate => block("ffn_gate.weight"),
        Role::Up => block("ffn_up.weight"),
        Role::Down => block("ffn_down.weight"),
    }
}

/// convert_hf_to_gguf.py's `LlamaModel.permute`: within each of `heads` heads, the rows of
/// the rotate-half layout (first halves of the rotary pairs, then second halves) interleaved
/// so the two rows of a pair are adjacent, the layout llama.cpp's RoPE rotates. `values` is a
/// row-major `[rows, cols]` matrix (a bias is `cols == 1`).
fn permute_rows(values: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0.0; values.len()];
    for head in 0..heads {
        let base = head * head_dim;
        for j in 0..half {
            for i in 0..2 {
                let (src, dst) = (base + i * half + j, base + 2 * j + i);
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
