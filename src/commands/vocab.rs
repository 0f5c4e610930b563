//! `tinyforge vocab count | merge | prune`: the compact tokenizer (PanGu-π Pro §3).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tinyforge_task::ShardSpec;
use tinyforge_vocab::{
    BaseTokenizer, CountConfig, Counts, CoverageCurve, DEFAULT_KS, PruneConfig, Target,
};

use crate::cli::GlobalArgs;
use crate::progress::{Progress, Unit};

#[derive(Debug, Args)]
pub struct VocabArgs {
    #[command(subcommand)]
    pub command: VocabCommand,
}

#[derive(Debug, Subcommand)]
pub enum VocabCommand {
    /// Count how often each base token occurs in a documents folder.
    #[command(
        after_help = "Example:\n  tinyforge vocab count docs/ --out counts.parquet\n  \
        tinyforge vocab count docs/ --shard 0/4 --out counts-0.parquet   # one cluster task"
    )]
    Count(CountArgs),
    /// Sum partial counts written by `vocab count --shard i/n` tasks (in one process, or as an
    /// array of hash buckets joined after).
    #[command(
        after_help = "Examples:\n  tinyforge vocab merge counts-*.parquet --out counts.parquet\n  \
        tinyforge vocab merge s3://corpus/counts/c-0.parquet s3://corpus/counts/c-1.parquet --out s3://corpus/counts.parquet\n  \
        tinyforge vocab merge counts-*.parquet --bucket auto --out sums/b-$SLURM_ARRAY_TASK_ID.parquet   # an array of B\n  \
        tinyforge vocab merge sums/b-*.parquet --out counts.parquet                                  # joins the B buckets"
    )]
    Merge(MergeArgs),
    /// Keep the most frequent tokens and write a smaller tokenizer plus the old->new id map.
    #[command(
        after_help = "Examples:\n  tinyforge vocab prune --counts counts.parquet --size 48000 \
        --model pangu-1b-pro --out compact/\n  tinyforge vocab prune --counts counts.parquet \
        --coverage 0.98 --out compact/"
    )]
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CountArgs {
    /// Documents folder (every *.parquet in it, sorted by name; a `text` column), or its
    /// object-store URL (s3://, gs://, az://, file://; downloaded into $TINYFORGE_CACHE first).
    pub docs: PathBuf,
    /// Base Hugging Face tokenizer.json [default: Qwen3's, from the data cache].
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Counts table to write (Parquet: token_id, token, count), or its object URL.
    #[arg(long)]
    pub out: PathBuf,
    /// Count only this task's part of the input, `i/n`: row groups i, i+n, i+2n, ... `auto` takes i and n from an array job (SLURM_ARRAY_TASK_ID and _COUNT; JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX with `auto/N`).
    #[arg(long, default_value = "0/1")]
    pub shard: ShardSpec,
    /// k at which coverage is reported (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<usize>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Partial counts tables (paths or object URLs: s3://bucket/counts/c-0.parquet).
    #[arg(required = true)]
    pub partials: Vec<PathBuf>,
    /// Merged counts table to write, or its object URL.
    #[arg(long)]
    pub out: PathBuf,
    /// Sum only the token ids of hash bucket b of B (id mod B = b), e.g. 3/8 or `auto` (one
    /// task of an array of B); then `vocab merge` of the B bucket tables joins them.
    #[arg(long)]
    pub bucket: Option<ShardSpec>,
    /// k at which coverage is reported (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<usize>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Counts table from `vocab count` / `vocab merge` (a path or an object URL).
    #[arg(long)]
    pub counts: PathBuf,
    /// Base tokenizer.json the counts were made with [default: Qwen3's, from the data cache].
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// New vocabulary size, special and added tokens included.
    #[arg(
        long,
        conflicts_with = "coverage",
        required_unless_present = "coverage"
    )]
    pub size: Option<usize>,
    /// Keep the fewest tokens covering this share of the counted tokens (0 < c <= 1).
    #[arg(long)]
    pub coverage: Option<f64>,
    /// Output folder: tokenizer.json, id_map.json, report.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Model shape for the embedding + head share: a built-in model config (tiny, pangu-1b,
    /// pangu-1b-pro, pangu-1.5b-pro) or a model TOML file ...
    #[arg(long, conflicts_with_all = ["model_dim", "model_layers", "model_ffn"])]
    pub model: Option<String>,
    /// ... or the hidden width,
    #[arg(long, requires_all = ["model_layers", "model_ffn"])]
    pub model_dim: Option<u64>,
    /// the number of layers
    #[arg(long, requires_all = ["model_dim", "model_ffn"])]
    pub model_layers: Option<u64>,
    /// and the SwiGLU inner width.
    #[arg(long, requires_all = ["model_dim", "model_layers"])]
    pub model_ffn: Option<u64>,
}

pub fn run(args: VocabArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        VocabCommand::Count(args) => count(args, global),
        VocabCommand::Merge(args) => merge(args),
        VocabCommand::Prune(args) => prune(args),
    }
}

/// Qwen3's tokenizer as `scripts/fetch-data` leaves it.
fn default_tokenizer() -> anyhow::Result<PathBuf> {
    let data = match std::env::var_os("TINYFORGE_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join(".cache/tinyforge"),
    };
    let path = data.join("raw/qwen3-tokenizer/package/models/tokenizer.json");
    if !path.is_file() {
        bail!(
            "no --tokenizer given and the default base tokenizer {} is missing (run \
             scripts/fetch-data)",
            path.display()
        );
    }
    Ok(path)
}

fn load_base(path: Option<PathBuf>) -> anyhow::Result<BaseTokenizer> {
    let path = match path {
        Some(path) => path,
        None => default_tokenizer()?,
    };
    Ok(BaseTokenizer::load(&path)?)
}

fn count(args: CountArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let base = load_base(args.tokenizer)?;
    let shard = args.shard.resolve()?;
    let config = CountConfig {
        shard,
        ..CountConfig::default()
    };
    let fetch = Progress::new(global, "vocab count", 0, Unit::Bytes);
    let docs = crate::remote::input_folder(&args.docs, &fetch, |name| {
        !name.contains('/') && name.ends_with(".parquet")
    })?;
    fetch.finish();
    let progress = Progress::new(global, "vocab count", 0, Unit::Items("documents"));
    let count_start = Instant::now();
    let counts = tinyforge_vocab::count_documents(&docs, &base, &config, &progress)?;
    let count_seconds = count_start.elapsed().as_secs_f64();
    progress.finish();
    let seconds = start.elapsed().as_secs_f64();
    let mut report = write_counts(&counts, &args.out, &args.k)?;
    report["tokenizer"] = base.path().display().to_string().into();
    report["threads"] = tinyforge_vocab::worker_threads().into();
    report["elapsed_s"] = round3(seconds).into();
    // Throughput of the counting itself (read + encode + count), without loading the
    // tokenizer or writing the outputs.
    report["count_s"] = round3(count_seconds).into();
    report["mb_per_s"] = round3(counts.bytes as f64 / 1e6 / count_seconds).into();
    report["tokens_per_s"] = (counts.total() as f64 / count_seconds).round().into();
    crate::output::json(&report)?;
    Ok(())
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let partials = args
        .partials
        .iter()
        .map(|path| crate::remote::input_file(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bucket = args.bucket.map(|spec| spec.resolve()).transpose()?;
    let counts = tinyforge_vocab::merge_counts(&partials, bucket)?;
    let mut report = write_counts(&counts, &args.out, &args.k)?;
    report["bucket"] = bucket.map(|b| b.to_string()).into();
    report["partials"] = args.partials.len().into();
    crate::output::json(&report)?;
    Ok(())
}

/// Writes a counts table to `out` (a path or an object URL) with its coverage curve as CSV and
/// SVG next to it (uploaded before the table, which marks the task done); returns the report.
fn write_counts(counts: &Counts, out: &Path, ks: &[usize]) -> anyhow::Result<serde_json::Value> {
    let target = crate::remote::OutputFile::new(out)?;
    counts.write(&target.local)?;
    let mut report = count_report(counts, &target.local, ks)?;
    let beside = [&report["coverage_csv"], &report["coverage_svg"]]
        .map(|path| PathBuf::from(path.as_str().unwrap_or_default()));
    target.publish(&beside)?;
    report["out"] = target.name_of(&target.local).into();
    report["coverage_csv"] = target.name_of(&beside[0]).into();
    report["coverage_svg"] = target.name_of(&beside[1]).into();
    Ok(report)
}

/// Totals and coverage of a counts table; writes its coverage curve as CSV and SVG next to it.
fn count_report(counts: &Counts, out: &Path, ks: &[usize]) -> anyhow::Result<serde_json::Value> {
    let ks = if ks.is_empty() { DEFAULT_KS } else { ks };
    let curve = CoverageCurve::new(&counts.counts);
    let stem = out.with_extension("");
    let csv = PathBuf::from(format!("{}.coverage.csv", stem.display()));
    let svg = PathBuf::from(format!("{}.coverage.svg", stem.display()));
    curve.write_csv(&csv, ks)?;
    let title = format!(
        "Coverage of the top-k base tokens ({} tokens counted)",
        counts.total()
    );
    curve.write_svg(&svg, &title, ks)?;
    Ok(serde_json::json!({
        "out": out,
        "shard": counts.shard.to_string(),
        "tokenizer_sha256": counts.tokenizer_sha256,
        "documents": counts.documents,
        "bytes": counts.bytes,
        "total_tokens": counts.total(),
        "vocab_size": counts.tokens.iter().filter(|t| t.is_some()).count(),
        "distinct_tokens_used": counts.distinct_used(),
        "coverage": curve.points(ks),
        "k_for_coverage": curve.k_for_targets(),
        "coverage_csv": csv,
        "coverage_svg": svg,
    }))
}

fn prune(args: PruneArgs) -> anyhow::Result<()> {
    let target = match (args.size, args.coverage) {
        (Some(size), _) => Target::Size(size),
        (None, Some(coverage)) => Target::Coverage(coverage),
        (None, None) => bail!("give --size K or --coverage C"),
    };
    let model = match (
        args.model,
        args.model_dim,
        args.model_layers,
        args.model_ffn,
    ) {
        // A built-in model config or a model TOML; its vocabulary is the pruned one.
        (Some(name), ..) => Some(
            tinyforge_model::ModelOptions::load(&name)?
                .resolve(Some(1))
                .with_context(|| format!("--model {name}"))?,
        ),
        (None, Some(dim), Some(layers), Some(ffn)) => Some(
            tinyforge_model::ModelOptions {
                name: Some("custom".into()),
                dim: Some(dim as usize),
                layers: Some(layers as usize),
                // One head as wide as the model: the head split does not change the count.
                heads: Some(1),
                ffn_dim: Some(ffn as usize),
                vocab_size: Some(1),
                ..Default::default()
            }
            .resolve(None)?,
        ),
        _ => None,
    };
    let base = load_base(args.tokenizer)?;
    let counts_path = crate::remote::input_file(&args.counts)?;
    let mut counts = Counts::read(&counts_path)?;
    counts.check_against(&counts_path, &base)?;
    let report = tinyforge_vocab::prune(&base, &counts, &PruneConfig { target, model }, &args.out)?;
    crate::output::json(&report)?;
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
