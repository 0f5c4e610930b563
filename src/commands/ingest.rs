//! `tinyforge ingest`: raw corpora to a folder of clean Parquet documents.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use tinyforge_ingest::{Format, IngestOptions, InputOptions, OnError, OneOrMany, RunOptions};
use tinyforge_store::FileKind;
use tinyforge_task::ShardSpec;

use crate::cli::GlobalArgs;
use crate::progress::{AbortAfter, Progress, Unit};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tinyforge ingest --config configs/ingest-demo.toml --out out/docs
  tinyforge ingest 'corpus/*.jsonl.zst' --text-field content --source web --out docs/
  tinyforge ingest poems/ --text-fields title,paragraphs --keep author --where \"lang = 'zh'\" --out docs/
  tinyforge ingest --config c.toml --out docs/ --shard 3/8     (one of 8 cluster tasks)
  tinyforge ingest --config c.toml --out docs/ --merge         (after all 8: cross-task dedup + manifest)

At scale, as Slurm arrays (configs/cluster/ingest.sbatch runs the four steps with dependencies):
  tinyforge ingest -c c.toml --out docs/ --shard auto          (array of n: the chunks)
  tinyforge ingest -c c.toml --out docs/ --dedup-bucket auto   (array of B: duplicates by hash bucket)
  tinyforge ingest -c c.toml --out docs/ --dedup-rewrite auto  (array: chunks without their duplicates)
  tinyforge ingest -c c.toml --out docs/ --merge --dedup-buckets B   (one task: the manifest)

Inputs: files, folders (searched recursively) and globs of JSONL (.jsonl/.ndjson, plain, .gz
or .zst), JSON arrays of records (.json), Parquet, plain text (.txt, .md, source code) and
HTML (one document per file). The summary is JSON on stdout; malformed records go to
<out>/_rejects.jsonl. A rerun of the same command resumes where a killed run stopped.")]
pub struct IngestArgs {
    /// Input files, folders or glob patterns (one input; use --config for several).
    pub inputs: Vec<String>,
    /// TOML config listing `[[input]]` tables and options (see configs/ingest-demo.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output folder of Parquet parts, or its object-store URL (s3://, gs://, az://, file://):
    /// staged in $TINYFORGE_CACHE, uploaded when each step is done.
    #[arg(long, short)]
    pub out: Option<String>,
    /// Format of the inputs given on the command line (default: from each extension).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Field or Parquet column holding the text (default: text).
    #[arg(long)]
    pub text_field: Option<String>,
    /// Fields joined by newlines into the text, e.g. title,paragraphs.
    #[arg(long, value_delimiter = ',')]
    pub text_fields: Option<Vec<String>>,
    /// Field identifying a record (hashed into `id`; default: file and position).
    #[arg(long)]
    pub id_field: Option<String>,
    /// `source` label of the documents (default: the input's folder or file name).
    #[arg(long)]
    pub source: Option<String>,
    /// Fields kept as metadata columns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub keep: Option<Vec<String>>,
    /// SQL predicate documents must satisfy, e.g. "lang IN ('zh','en') AND length(text) > 200".
    #[arg(long = "where")]
    pub where_sql: Option<String>,
    /// Do only task i of n (0-based), e.g. 3/8: every n-th chunk of the input. `auto` takes i and n from an array job (SLURM_ARRAY_TASK_ID and _COUNT; JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX with `auto/N`).
    #[arg(long)]
    pub shard: Option<ShardSpec>,
    /// Only finalize a folder whose chunks n tasks have written: cross-task dedup (each hash
    /// bucket not already done, one at a time), then the manifest.
    #[arg(long, conflicts_with_all = ["shard", "dedup_bucket", "dedup_rewrite"])]
    pub merge: bool,
    /// Hash buckets of the cross-chunk dedup [default: as many as the bucket files already
    /// written, else 1]: each holds 16 bytes per document / B in memory.
    #[arg(long)]
    pub dedup_buckets: Option<u32>,
    /// After every chunk is done: find the duplicates of hash bucket b of B, e.g. 3/16 or auto
    /// (one task of an array of B). Then `--dedup-rewrite` tasks or `--merge`.
    #[arg(long, conflicts_with_all = ["shard", "dedup_rewrite"])]
    pub dedup_bucket: Option<ShardSpec>,
    /// After every bucket is done: rewrite chunks i, i+n, ... without their duplicates, e.g.
    /// 0/8 or auto. Then `--merge` writes the manifest.
    #[arg(long, conflicts_with = "shard")]
    pub dedup_rewrite: Option<ShardSpec>,
    /// What a malformed record does: skip (count it, write it to the rejects file) or fail.
    #[arg(long, value_parser = parse_on_error())]
    pub on_error: Option<OnError>,
    /// Target part size in MiB of input.
    #[arg(long)]
    pub part_size_mb: Option<f64>,
    /// Target row group size in MiB of text.
    #[arg(long)]
    pub row_group_mb: Option<f64>,
    /// Drop documents shorter than this many characters.
    #[arg(long)]
    pub min_chars: Option<usize>,
    /// Reject records (a JSONL line, a JSON element, a text or HTML file, a Parquet cell) over
    /// this many MiB, by file, offset and size, without holding them [default: 32].
    #[arg(long)]
    pub max_record_mb: Option<f64>,
    /// Reject HTML pages whose elements nest deeper than this [default: 512].
    #[arg(long)]
    pub max_html_depth: Option<usize>,
    /// Keep exact duplicates.
    #[arg(long)]
    pub no_dedup: bool,
    /// Worker threads (default: all cores).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Delete this folder's earlier parts and state and start over.
    #[arg(long)]
    pub force: bool,
}

fn parse_format(text: &str) -> Result<Format, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("one of {}", Format::NAMES))
}

/// `--on-error`, its spellings listed in the help.
fn parse_on_error() -> impl TypedValueParser<Value = OnError> {
    PossibleValuesParser::new(["skip", "fail"]).map(|text| match text.as_str() {
        "fail" => OnError::Fail,
        _ => OnError::Skip,
    })
}

pub fn run(args: IngestArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (mut options, origin) = match &args.config {
        Some(path) => (IngestOptions::from_file(path)?, path.display().to_string()),
        None => (IngestOptions::default(), "command line".to_owned()),
    };
    let per_input = args.format.is_some()
        || args.text_field.is_some()
        || args.text_fields.is_some()
        || args.id_field.is_some()
        || args.source.is_some()
        || args.keep.is_some();
    if args.inputs.is_empty() {
        anyhow::ensure!(
            !per_input,
            "--format, --text-field, --text-fields, --id-field, --source and --keep describe inputs given on the command line; give some, or set them per [[input]] in the config"
        );
    } else {
        options.input.push(InputOptions {
            path: Some(OneOrMany::Many(args.inputs.clone())),
            format: args.format,
            text: args.text_field.clone(),
            text_fields: args.text_fields.clone(),
            id: args.id_field.clone(),
            source: args.source.clone(),
            keep: args.keep.clone(),
        });
    }
    // A flag given replaces the file's value (docs/ARCHITECTURE.md, "Configuration").
    options.out = args.out.clone().or(options.out);
    // An object-store output: the stage writes a local staging folder, made to hold first the
    // remote state this step needs, and uploads what changed when done, markers last.
    let output = match options
        .out
        .as_deref()
        .filter(|out| tinyforge_store::is_url(out))
    {
        Some(url) => {
            anyhow::ensure!(
                !args.force,
                "--force cannot clear an object-store output; delete {url} with the store's own \
                 tool (e.g. `aws s3 rm --recursive {url}`) or write to another --out"
            );
            let output = crate::remote::Output::new(std::path::Path::new(url))?;
            options.out = Some(output.local.display().to_string());
            Some(output)
        }
        None => None,
    };
    options.where_sql = args.where_sql.clone().or(options.where_sql);
    options.part_size_mb = args.part_size_mb.or(options.part_size_mb);
    options.row_group_mb = args.row_group_mb.or(options.row_group_mb);
    options.min_chars = args.min_chars.or(options.min_chars);
    options.max_record_mb = args.max_record_mb.or(options.max_record_mb);
    options.max_html_depth = args.max_html_depth.or(options.max_html_depth);
    options.threads = args.threads.or(options.threads);
    options.dedup_buckets = args.dedup_buckets.or(options.dedup_buckets);
    if args.no_dedup {
        options.dedup = Some(false);
    }
    options.on_error = args.on_error.or(options.on_error);
    let shard = args.shard.unwrap_or_default().resolve()?;
    let mut config = options.resolve(&origin, shard)?;
    if let Some(output) = &output {
        config.out_name = output.name();
    }
    let run_options = RunOptions {
        force: args.force,
        merge_only: args.merge,
        dedup_bucket: args.dedup_bucket.map(|s| s.resolve()).transpose()?,
        dedup_rewrite: args.dedup_rewrite.map(|s| s.resolve()).transpose()?,
        fetch: output.as_ref().and_then(|o| o.fetcher()),
    };

    let progress = Progress::new(global, "ingest", 0, Unit::Bytes);
    let pulled = match &output {
        Some(output) => output.pull(&progress, |name| {
            needed_before(name, config.shard, &run_options)
        })?,
        None => None,
    };
    let reporter = AbortAfter::from_env(&progress, "TINYFORGE_TEST_KILL_AFTER_CHUNKS");
    let shown = config.out_name.clone();
    let report = tinyforge_ingest::ingest(&config, &run_options, &reporter)
        .with_context(|| format!("ingest into {shown}"))?;
    let mut report = serde_json::to_value(&report)?;
    if let Some(output) = &output {
        let uploaded = output.publish_with(&upload_kind, &progress)?;
        report["staging"] = output.local.display().to_string().into();
        if let Some(pulled) = &pulled {
            report["downloaded"] = crate::remote::transfer_json(pulled);
        }
        if let Some(uploaded) = &uploaded {
            report["uploaded"] = crate::remote::transfer_json(uploaded);
        }
    }
    progress.finish();
    crate::output::json(&report)?;
    Ok(())
}

/// The files of an object-store output a step reads before it starts (the rest, the parts and
/// hash files of other tasks' chunks, are fetched when the dedup steps or the merge read them):
/// the plan, the chunk records (a chunk task's own), and the drops files and rejects the dedup
/// steps and the merge use.
fn needed_before(name: &str, shard: tinyforge_task::Shard, options: &RunOptions) -> bool {
    let Some(state) = name.strip_prefix("_state/") else {
        return false;
    };
    let chunk_step = options.dedup_bucket.is_none()
        && options.dedup_rewrite.is_none()
        && !options.merge_only
        && shard.count > 1;
    if state == "plan.json" {
        return true;
    }
    if state.starts_with("chunk-") && state.ends_with(".json") {
        let chunk = tinyforge_ingest::chunk_of_file(name);
        return !chunk_step || chunk.is_some_and(|c| shard.owns(c));
    }
    if state.starts_with("dedup-") {
        return match options.dedup_bucket {
            // A bucket task needs only its own (to know it is done).
            Some(bucket) => state == tinyforge_ingest::drops_file_name(bucket),
            None => !chunk_step,
        };
    }
    // The rejects of every chunk go into the merged `_rejects.jsonl`.
    let merge_step = options.dedup_bucket.is_none() && options.dedup_rewrite.is_none();
    state.ends_with(".rejects.jsonl") && merge_step && !chunk_step
}

/// Upload order of an ingest folder: data first, then the chunk records and drops files that
/// mark a chunk or bucket done, the manifest last. Any file may be rewritten by a later step
/// (the dedup rewrites parts, hashes and records), so none is write-once.
fn upload_kind(name: &str) -> FileKind {
    let rank = if name == tinyforge_ingest::MANIFEST {
        2
    } else if name.starts_with("_state/")
        && (name.ends_with(".drops") || (name.contains("/chunk-") && name.ends_with(".json")))
    {
        1
    } else {
        0
    };
    FileKind {
        rank,
        write_once: false,
    }
}
