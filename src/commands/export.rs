//! `tinyforge export`: a checkpoint in the formats other runtimes load (GGUF for llama.cpp and
//! the on-device runtimes built on it).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tinyforge_model::{GgufType, export_gguf};

use crate::cli::GlobalArgs;
use crate::commands::eval::resolve_checkpoint;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub format: ExportFormat,
}

#[derive(Debug, Subcommand)]
pub enum ExportFormat {
    /// One GGUF file (llama.cpp's `llama` architecture) with the tokenizer embedded.
    Gguf(GgufArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tinyforge export gguf out/demo/train                        # newest checkpoint, f16, into its folder
  tinyforge export gguf CKPT --type q8_0 --out tiny-q8_0.gguf
  llama-cli -m tiny-q8_0.gguf -p 'The state of the union'     # llama.cpp runs it as it is

Types: f32, f16, bf16 (norms and biases stay f32, as llama.cpp keeps them) and q8_0 (blocks of 32
int8 values with an f16 scale; a matrix whose rows are not whole blocks is written as f16 and
listed in the report). The tokenizer (tokenizer.json, tokenizer_config.json) is embedded as a
GPT-2-style BPE vocabulary: tokens, token types, merges, EOS/BOS/padding ids and the chat template.
transformers reads the file too: AutoModelForCausalLM.from_pretrained(dir, gguf_file=name).")]
pub struct GgufArgs {
    /// Checkpoint folder (config.json, model.safetensors, tokenizer.json), or a training run
    /// folder (its newest checkpoint).
    pub checkpoint: PathBuf,
    /// The GGUF file (default: CHECKPOINT/model-TYPE.gguf).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Element type of the matrices: f32, f16, bf16 or q8_0.
    #[arg(long = "type", default_value = "f16")]
    pub ty: GgufType,
}

pub fn run(args: ExportArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    match args.format {
        ExportFormat::Gguf(args) => {
            let checkpoint = resolve_checkpoint(&args.checkpoint)?;
            let out = args
                .out
                .unwrap_or_else(|| checkpoint.join(format!("model-{}.gguf", args.ty)));
            let report = export_gguf(&checkpoint, &out, args.ty)
                .with_context(|| format!("exporting {} as GGUF", checkpoint.display()))?;
            crate::output::json(&report)?;
            Ok(())
        }
    }
}
