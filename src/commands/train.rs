//! `tinyforge train` (a config of rounds over a token dataset, or `--synthetic` for throughput)
//! and `tinyforge model info`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tinyforge_train::{Callbacks, Device, Event, Precision, StepMetrics, TrainOptions};

use crate::cli::GlobalArgs;
use crate::commands::launch::{self, DistArgs};
use crate::progress::{Progress, Unit};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
tinyforge train configs/train-tiny.toml\n  \
tinyforge train configs/train-tiny.toml --steps 50 --out out/try\n  \
tinyforge train --synthetic --model pangu-1b-pro --seq-len 2048 --batch-size 8 --steps 13 --device cuda\n  \
tinyforge train configs/train-tiny.toml --nproc 4                  # 4 local ranks (Gloo on CPU, NCCL on GPUs)\n  \
torchrun --no-python --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint head:29400 \\\n    \
tinyforge train configs/train-pangu-1b-pro.toml\n  \
srun --ntasks-per-node 8 tinyforge train configs/train-pangu-1b-pro.toml      # Slurm, no torchrun\n\n\
Several ranks split every batch evenly (batch_size must divide by the world size); the run \
folder must be on storage all of them see; rank 0 writes it and prints the report.\n\n\
A run folder holds checkpoints/ (Hugging Face safetensors + config.json, optimizer, state), \
losses/ (per-unit loss tables), metrics.jsonl, loss.svg and report.json. Running the same \
command again resumes from the newest checkpoint at the exact next batch.")]
pub struct TrainArgs {
    /// Train config (configs/train-*.toml); the flags below override its fields.
    pub config: Option<PathBuf>,
    /// Built-in model (tiny, pangu-1b, pangu-1b-pro, pangu-1.5b-pro) or a model TOML.
    #[arg(long)]
    pub model: Option<String>,
    /// Token dataset folder (from `tinyforge tokenize`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Sequences per optimizer step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Sequences per forward/backward (gradient accumulation = batch / micro).
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Peak learning rate at the reference batch (scaled by sqrt(batch tokens / ref)).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Stop after this many optimizer steps of the whole run (with a checkpoint); a later run
    /// without it continues.
    #[arg(long)]
    pub steps: Option<u64>,
    /// auto, cpu, cuda, cuda:N.
    #[arg(long)]
    pub device: Option<Device>,
    /// auto (bf16 on CUDA, fp32 on CPU), bf16, fp32.
    #[arg(long)]
    pub precision: Option<Precision>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Start from this checkpoint's weights (e.g. inherited from a larger model).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Optimizer state over the ranks: 0 replicated (plain data parallel), 1 ZeRO-1 (sharded,
    /// the paper's setting; default).
    #[arg(long)]
    pub zero_stage: Option<u8>,
    /// Benchmark mode: random tokens at the model's shape, no dataset, no checkpoints; prints the
    /// median step time, tokens/s and model FLOP/s over the steps after the first 3.
    #[arg(long)]
    pub synthetic: bool,
    #[command(flatten)]
    pub dist: DistArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tinyforge model info pangu-1b-pro\n  tinyforge model info out/train/checkpoints/step-00000200"
)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Parameter count and embedding + head share of a model config or checkpoint.
    #[command(after_help = "Example:\n  tinyforge model info pangu-1b-pro --vocab 48000")]
    Info {
        /// Built-in name, model TOML, or checkpoint folder.
        model: String,
        /// Vocabulary size for a config that leaves it to the dataset.
        #[arg(long)]
        vocab: Option<usize>,
    },
}

pub fn run(args: TrainArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let mut opts = match &args.config {
        Some(p) => TrainOptions::load(p)?,
        None => TrainOptions::default(),
    };
    // A flag given replaces the file's value (docs/ARCHITECTURE.md, "Configuration").
    opts.model = args.model.or(opts.model);
    opts.data = args.data.or(opts.data);
    opts.out = args.out.or(opts.out);
    opts.seq_len = args.seq_len.or(opts.seq_len);
    opts.batch_size = args.batch_size.or(opts.batch_size);
    opts.micro_batch = args.micro_batch.or(opts.micro_batch);
    opts.lr = args.lr.or(opts.lr);
    opts.max_steps = args.steps.or(opts.max_steps);
    opts.device = args.device.or(opts.device);
    opts.precision = args.precision.or(opts.precision);
    opts.seed = args.seed.or(opts.seed);
    opts.checkpoint_every = args.checkpoint_every.or(opts.checkpoint_every);
    opts.eval_every = args.eval_every.or(opts.eval_every);
    opts.init_from = args.init_from.or(opts.init_from);
    opts.zero_stage = args.zero_stage.or(opts.zero_stage);
    if let Some(n) = args.dist.spawns() {
        return launch::spawn_local(n, &args.dist);
    }
    tracing::info!(runtime = %tinyforge_train::runtime_info(), "libtorch");
    let device = tinyforge_train::torch_device(opts.device.unwrap_or_default());
    let (world, device) = launch::join(&args.dist, device)?;
    // Each rank trains on the device it joined with (cuda:LOCAL_RANK on several GPUs).
    opts.device = Some(tinyforge_train::device_name(device));
    let global = &launch::rank_globals(&world, global);
    if args.synthetic {
        return synthetic(opts, &world, global);
    }
    let report =
        tinyforge_train::train_from_options(&opts, &world, &mut TrainProgress::new(global))?;
    if world.is_main() {
        crate::output::json(&report)?;
    }
    Ok(())
}

fn synthetic(
    mut opts: TrainOptions,
    world: &tinyforge_train::dist::World,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    let steps = opts.max_steps.take().unwrap_or(13);
    if opts.data.is_none() {
        opts.data = Some("(synthetic)".into());
    }
    if opts.out.is_none() {
        let dir = format!("tinyforge-synthetic-{}", std::process::id());
        opts.out = Some(std::env::temp_dir().join(dir));
    }
    // Random tokens need no tokenizer: a model config without a vocabulary gets a byte-sized one.
    let mut cfg = opts.resolve(Some(256))?;
    cfg.run.world = world.clone();
    let mut reporter = TrainProgress::new(global);
    reporter.progress.set_total(steps);
    let report = tinyforge_train::synthetic_run(
        &cfg.run,
        steps,
        3u64.min(steps.saturating_sub(1)),
        &mut reporter,
    )?;
    reporter.progress.finish();
    let _ = fs_err::remove_dir_all(&cfg.run.out);
    let mut v = serde_json::to_value(&report)?;
    v["runtime"] = tinyforge_train::runtime_info();
    if world.is_main() {
        crate::output::json(&v)?;
    }
    Ok(())
}

pub fn run_model(args: ModelArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        ModelCommand::Info { model, vocab } => {
            let path = std::path::Path::new(&model);
            let cfg = if path.join("config.json").exists() {
                tinyforge_train::checkpoint::model_config(path)?
            } else {
                tinyforge_train::ModelOptions::load(&model)?
                    .resolve(vocab)
                    .with_context(|| {
                        format!("model {model}: pass --vocab for a config without vocab_size")
                    })?
            };
            let v = serde_json::json!({
                "model": cfg.name,
                "dim": cfg.dim,
                "layers": cfg.layers,
                "heads": cfg.heads,
                "kv_heads": cfg.kv_heads,
                "head_dim": cfg.head_dim,
                "tied_embeddings": cfg.tied_embeddings,
                "ffn_dim": cfg.ffn_dim,
                "vocab_size": cfg.vocab_size,
                "params": cfg.param_count(),
                "params_billions": (cfg.param_count() as f64 / 1e9 * 1000.0).round() / 1000.0,
                "layer_params": cfg.layer_params(),
                "embedding_head_params": cfg.embedding_params(),
                "embedding_head_share": (cfg.embedding_share() * 1e4).round() / 1e4,
                "train_flops_per_token_at_2048": cfg.train_flops_per_token(2048),
            });
            crate::output::json(&v)?;
            Ok(())
        }
    }
}

/// Progress bar (or JSON lines) on stderr for steps, plus one line per event.
pub(crate) struct TrainProgress {
    pub progress: Progress,
    quiet: bool,
}

impl TrainProgress {
    pub fn new(global: &GlobalArgs) -> Self {
        Self {
            progress: Progress::new(global, "train", 0, Unit::Items("steps")),
            quiet: global.quiet,
        }
    }
}

impl Callbacks for TrainProgress {
    fn on_step(&mut self, m: &StepMetrics) {
        self.progress.inc(1);
        self.progress.message(format!(
            "round {} loss {:.4} lr {:.2e} {:.0} tok/s",
            m.round + 1,
            m.loss,
            m.lr,
            m.tokens_per_s
        ));
    }

    fn reporter(&self) -> &dyn tinyforge_task::Reporter {
        &self.progress
    }

    fn on_event(&mut self, e: &Event) {
        match e {
            Event::RoundStart { steps, start, .. } => {
                // From zero: scoring between rounds counts batches on the same bar.
                self.progress.restart("train", *steps);
                if *start > 0 {
                    self.progress.inc(*start);
                }
            }
            Event::RoundEnd { .. } => self.progress.finish(),
            _ => {}
        }
        if !self.quiet {
            tracing::info!("{e:?}");
        }
    }
}
