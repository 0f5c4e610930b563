//! `tinyforge tokenize`: documents (Parquet) -> token shards.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tinyforge_shards::{MANIFEST_FILE, Manifest};
use tinyforge_task::ShardSpec;
use tinyforge_tokenize::{TokenizeConfig, tokenize};

use crate::cli::GlobalArgs;
use crate::progress::{AbortAfter, Progress, Unit};
use crate::remote::Output;

/// Encode a documents folder into a token-shard dataset (zstd frames, manifest, checksums).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tinyforge tokenize docs/ --tokenizer compact/tokenizer.json --out tokens/\n  \
    tinyforge tokenize docs/ --tokenizer tokenizer.json --shard 2/8 --out tasks/t2   # one cluster task\n  \
    tinyforge shards merge tasks/t* --out tokens/                                    # then join them\n  \
    tinyforge tokenize s3://corpus/docs --tokenizer t.json --shard auto --out s3://corpus/tokens/t3"
)]
pub struct TokenizeArgs {
    /// Documents folder: every *.parquet in it, sorted by name, rows in order, column `text`. Or
    /// an object-store URL (s3://, gs://, az://, file://): downloaded into $TINYFORGE_CACHE
    /// (default ~/.cache/tinyforge/objects) first; objects already there are not fetched again.
    pub docs: PathBuf,
    /// Hugging Face tokenizer.json.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Dataset folder to write (manifest.json + shard files). A rerun resumes in it. Or a URL:
    /// written to a staging folder in the cache, then uploaded, manifest.json last; a task whose
    /// manifest is already there is done, and a rerun after a kill uploads what is missing.
    #[arg(long)]
    pub out: PathBuf,
    /// This task's part of the documents, `i/n` (0-based): a contiguous range of row groups,
    /// so `shards merge` of the tasks in order is the one-process stream. `auto` takes i and n from an array job (SLURM_ARRAY_TASK_ID and _COUNT; JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX with `auto/N`).
    #[arg(long, default_value = "0/1")]
    pub shard: ShardSpec,
    /// Start a new shard file after this many tokens (documents never straddle shards).
    #[arg(long, default_value_t = 1 << 28)]
    pub shard_tokens: u64,
    /// Tokens per independently compressed zstd frame: smaller reads random windows faster,
    /// larger compresses better.
    #[arg(long, default_value_t = 2048)]
    pub frame_tokens: u32,
    /// zstd level of the frames (negative: faster). The default stores near-random bytes raw,
    /// so random windows decode fast; 3 makes frames about 10% smaller and reads about a third slower.
    #[arg(long, default_value_t = tinyforge_shards::DEFAULT_ZSTD_LEVEL, allow_negative_numbers = true)]
    pub zstd_level: i32,
    /// Encoder threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Documents per batch handed to the encoder threads.
    #[arg(long, default_value_t = 1024)]
    pub batch_rows: usize,
    /// The EOS token appended after each document (default: the `eos_token` of the
    /// tokenizer_config.json beside the tokenizer, else the first of `<|endoftext|>`, `</s>`, ...
    /// that the vocabulary has).
    #[arg(long)]
    pub eos: Option<String>,
    /// Characters of one pre-token the BPE model encodes at a time (for byte-level tokenizers
    /// such as Qwen's, bytes of text): a longer pre-token ("aaaa…", a base64 blob, a run of
    /// letters with no break) is encoded as consecutive pieces of this many, so memory and time
    /// stay bounded; its ids differ from `tokenizers`' only near the cuts. The report counts them.
    #[arg(long, default_value_t = tinyforge_tokenize::DEFAULT_MAX_PRETOKEN_CHARS)]
    pub max_pretoken_chars: usize,
}

pub fn run(args: TokenizeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let task = args.shard.resolve()?;
    let output = Output::new(&args.out)?;
    if let Some(marker) = output.finished(MANIFEST_FILE)? {
        // The task's marker is in the object store: it finished before.
        let manifest: Manifest = serde_json::from_slice(&marker)
            .with_context(|| format!("{}/{MANIFEST_FILE}", output.name()))?;
        let report = serde_json::json!({
            "out": output.name(),
            "complete": true,
            "already_done": true,
            "shards": manifest.shards.len(),
            "documents": manifest.documents,
            "total_tokens": manifest.total_tokens,
        });
        crate::output::json(&report)?;
        return Ok(());
    }
    let progress = Progress::new(global, "tokenize", 0, Unit::Items("docs"));
    let docs = crate::remote::input_folder(&args.docs, &progress, |name| {
        !name.contains('/') && name.ends_with(".parquet")
    })?;
    let config = TokenizeConfig {
        task,
        shard_tokens: args.shard_tokens,
        frame_tokens: args.frame_tokens,
        zstd_level: args.zstd_level,
        threads: args.threads,
        batch_rows: args.batch_rows,
        eos: args.eos,
        max_pretoken_chars: args.max_pretoken_chars,
        ..TokenizeConfig::new(docs, args.tokenizer, output.local.clone())
    };
    // Lets the end-to-end test simulate a kill at the worst moment: a shard renamed into place
    // but not yet recorded as finished.
    let reporter = AbortAfter::from_env(&progress, "TINYFORGE_TEST_ABORT_AFTER_SHARDS");
    let report = tokenize(&config, &reporter).context("tokenize failed")?;
    let uploaded = output.publish(MANIFEST_FILE, &progress)?;
    progress.finish();
    let mut report = serde_json::to_value(&report)?;
    if let Some(uploaded) = uploaded {
        report["out"] = output.name().into();
        report["staging"] = output.local.display().to_string().into();
        report["uploaded"] = crate::remote::transfer_json(&uploaded);
    }
    crate::output::json(&report)?;
    Ok(())
}
