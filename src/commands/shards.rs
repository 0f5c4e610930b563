//! `tinyforge shards merge | verify | inspect`: work on token-shard datasets.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tinyforge_shards::{Dataset, merge, verify};
use tinyforge_tokenize::TokenizerInfo;

use crate::cli::GlobalArgs;
use crate::progress::{Progress, Unit};

#[derive(Debug, Args)]
pub struct ShardsArgs {
    #[command(subcommand)]
    pub command: ShardsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ShardsCommand {
    /// Join the datasets of `tokenize --shard i/n` tasks into one, without copying shard data:
    /// the new manifest names the tasks' files by relative paths.
    #[command(
        after_help = "Examples:\n  tinyforge shards merge tasks/t0 tasks/t1 tasks/t2 tasks/t3 --out tokens/\n  \
        tinyforge shards merge s3://corpus/tasks/t0 s3://corpus/tasks/t1 --out s3://corpus/tokens"
    )]
    Merge(MergeArgs),
    /// Check every checksum of every shard; name the shard and frame of any damage.
    #[command(
        after_help = "Example:\n  tinyforge shards verify tokens/   # exit status 1 when damaged"
    )]
    Verify(VerifyArgs),
    /// Print a dataset summary and decode a sample window back to text.
    #[command(
        after_help = "Example:\n  tinyforge shards inspect tokens/ --tokenizer compact/tokenizer.json --unit 10 --seq-len 64"
    )]
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Task output folders (any order: task outputs are sorted by their task index), or their
    /// object-store URLs, all in the bucket of --out.
    #[arg(required = true)]
    pub tasks: Vec<PathBuf>,
    /// Folder (or object-store URL) for the merged manifest.json.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Dataset folder, or its object-store URL (each shard read with one GET and checked in
    /// memory).
    pub dataset: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    pub dataset: PathBuf,
    /// tokenizer.json to decode the sample with (its SHA-256 must match the manifest's).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Training unit to show.
    #[arg(long, default_value_t = 0)]
    pub unit: u64,
    /// Sequence length of the sample window.
    #[arg(long, default_value_t = 64)]
    pub seq_len: usize,
}

pub fn run(args: ShardsArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        ShardsCommand::Merge(args) => {
            let manifest = merge(&args.tasks, &args.out, &tinyforge_model::TOKENIZER_FILES)
                .context("merge failed")?;
            let report = serde_json::json!({
                "out": args.out,
                "shards": manifest.shards.len(),
                "total_tokens": manifest.total_tokens,
                "documents": manifest.documents,
            });
            crate::output::json(&report)?;
            Ok(())
        }
        ShardsCommand::Verify(args) => {
            let shown = args.dataset.display().to_string();
            let progress = Progress::new(global, "verify", 0, Unit::Bytes);
            let report = verify(&args.dataset, &progress)?;
            progress.finish();
            crate::output::json(&report)?;
            if !report.ok() {
                let first = &report.problems[0];
                bail!(
                    "{} problem(s) in {}; first: {}",
                    report.problems.len(),
                    shown,
                    first.message
                );
            }
            Ok(())
        }
        ShardsCommand::Inspect(args) => inspect(args),
    }
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let dataset = Dataset::open(&args.dataset)?;
    let manifest = dataset.manifest();
    let bytes: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    let raw = manifest.total_tokens * manifest.dtype.width() as u64;
    let window = dataset
        .window(args.unit, args.seq_len)
        .with_context(|| format!("reading unit {} (seq_len {})", args.unit, args.seq_len))?;
    let document = dataset.document_at(args.unit * args.seq_len as u64)?;
    let text = match &args.tokenizer {
        Some(path) => {
            let tokenizer =
                TokenizerInfo::load(path, None, tinyforge_tokenize::DEFAULT_MAX_PRETOKEN_CHARS)?;
            if tokenizer.sha256 != manifest.tokenizer_sha256 {
                bail!(
                    "{} (sha256 {}) is not the tokenizer of this dataset (sha256 {})",
                    path.display(),
                    tokenizer.sha256,
                    manifest.tokenizer_sha256
                );
            }
            Some(tokenizer.decode(&window)?)
        }
        None => None,
    };
    let compression_ratio = if bytes == 0 {
        0.0
    } else {
        raw as f64 / bytes as f64
    };
    let report = serde_json::json!({
        "format": manifest.format,
        "version": manifest.version,
        "tokenizer_sha256": manifest.tokenizer_sha256,
        "vocab_size": manifest.vocab_size,
        "dtype": manifest.dtype,
        "eos_id": manifest.eos_id,
        "frame_tokens": manifest.frame_tokens,
        "total_tokens": manifest.total_tokens,
        "documents": manifest.documents,
        "shards": manifest.shards.len(),
        "bytes": bytes,
        "compression_ratio": compression_ratio,
        "units": { "seq_len": args.seq_len, "count": dataset.unit_count(args.seq_len) },
        "sample": {
            "unit": args.unit,
            "starts_in_document": document.index,
            "document_id": document.id,
            "tokens": window,
            "text": text,
        },
    });
    crate::output::json(&report)?;
    Ok(())
}
