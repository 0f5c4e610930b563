//! `tinyforge sample`: the next round's plan from the previous plan and its loss tables.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tinyforge_sampler::{Level, ListOrder, Method, Plan, SelectConfig};

use crate::cli::GlobalArgs;
use crate::progress::{Progress, Unit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SelectArg {
    /// Batches with p = softmax(batch loss / τ), without replacement (the paper's default).
    SoftmaxLoss,
    /// Units with p = softmax(unit loss / τ), without replacement.
    UnitSoftmax,
    /// The batches (or units, with --level unit) of highest loss.
    TopLoss,
    /// Uniformly without replacement (ablation baseline).
    Uniform,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LevelArg {
    Batch,
    Unit,
}

/// Draw the next round from a plan and its loss tables (multiple-round training).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tinyforge sample --plan out/round1.json --losses out/losses-r1.parquet --out out/round2.json
  tinyforge sample --plan out/round1.json --losses out/losses-r1-rank*.parquet \\
      --out out/round2.json --fraction 0.5 --select softmax-loss --temperature 1.0 --seed 7

The paper's recipe (PanGu-π Pro §6.2): a batch's loss is the mean of its units' losses (batches
as the previous plan formed them); r·N of the N batches are drawn without replacement with
p = softmax(loss / τ), by Gumbel-top-k with noise keyed by (seed, round, batch), so the result
does not depend on the order of the loss rows. Every unit of the previous plan must have exactly
one loss: a missing or duplicated unit is an error that names it. The selected units become the
next plan (shuffled by the seed, or in their previous order with --keep-order), written as
OUT (JSON) and OUT with the extension .units (little-endian ids).")]
pub struct SampleArgs {
    /// The previous round's plan.
    #[arg(long)]
    pub plan: PathBuf,
    /// Loss tables of the previous round (Parquet: unit_id, loss, round, pool).
    #[arg(long, num_args = 1.., required = true)]
    pub losses: Vec<PathBuf>,
    /// The next round's plan file (JSON).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Share r of the batches (or units) to draw.
    #[arg(long, default_value_t = 0.5)]
    pub fraction: f64,
    #[arg(long, value_enum, default_value_t = SelectArg::SoftmaxLoss)]
    pub select: SelectArg,
    /// Draw batches or single units (default: batches, units for unit-softmax).
    #[arg(long, value_enum)]
    pub level: Option<LevelArg>,
    /// τ in softmax(loss / τ).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Seed of the draw and of the next round's order (default: the previous plan's seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep the selected units in the previous round's order instead of shuffling them.
    #[arg(long)]
    pub keep_order: bool,
}

pub fn run(args: SampleArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let previous = Plan::open(&args.plan)?;
    let (method, default_level) = match args.select {
        SelectArg::SoftmaxLoss => (Method::Softmax, Level::Batch),
        SelectArg::UnitSoftmax => (Method::Softmax, Level::Unit),
        SelectArg::TopLoss => (Method::TopLoss, Level::Batch),
        SelectArg::Uniform => (Method::Uniform, Level::Batch),
    };
    let level = match (args.select, args.level) {
        (SelectArg::UnitSoftmax, Some(LevelArg::Batch)) => {
            anyhow::bail!("--select unit-softmax draws units; use softmax-loss for batches")
        }
        (SelectArg::SoftmaxLoss, Some(LevelArg::Unit)) => Level::Unit,
        (_, Some(LevelArg::Unit)) => Level::Unit,
        (_, Some(LevelArg::Batch)) => Level::Batch,
        (_, None) => default_level,
    };
    let config = SelectConfig {
        method,
        level,
        fraction: args.fraction,
        temperature: args.temperature,
        seed: args.seed.unwrap_or(previous.header().seed),
        order: if args.keep_order {
            ListOrder::Kept
        } else {
            ListOrder::Shuffled
        },
    };
    let progress = Progress::new(global, "sample", 0, Unit::Items("rows"));
    let report = tinyforge_sampler::select_next_round(
        &previous,
        &args.losses,
        &args.out,
        &config,
        &progress,
    )?;
    progress.finish();
    crate::output::json(&report)?;
    Ok(())
}
