//! `tinyforge plan new|show`: round-1 plans over token datasets, and what a plan trains on.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use tinyforge_sampler::{Exhausted, Plan, Pool, RoundOneSpec};

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub command: PlanCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    New(PlanNewArgs),
    Show(PlanShowArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExhaustedArg {
    /// End the round at the last whole batch before any pool runs out.
    Stop,
    /// Start a pool that runs out over, in a new order (small pools are repeated).
    Cycle,
}

/// Write a round-1 plan: every unit of the datasets once, in a seeded order.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tinyforge plan new out/tokens --seq-len 2048 --batch-units 1024 --seed 1 --out out/round1.json
  tinyforge plan new --pool zh=out/tokens-zh --pool en=out/tokens-en --weight zh=1 --weight en=1 \\
      --seq-len 512 --batch-units 64 --out out/round1.json
  tinyforge plan new --units 1000000 --batch-units 64 --out /tmp/round1.json

A unit is one training sequence: tokens [u*L, u*L + L + 1) of a dataset of T tokens, which holds
(T - 1) / L units (L = --seq-len). The order is a keyed permutation of the units: nothing is
materialised, and step s is the same for any number of data-parallel ranks. With several pools,
every batch holds floor or ceil of weight x batch-units units of each pool.")]
pub struct PlanNewArgs {
    /// Token dataset folders (from `tinyforge tokenize`), one pool each, named by folder.
    pub datasets: Vec<PathBuf>,
    /// A named pool: NAME=DATASET_FOLDER (repeat for a mixture).
    #[arg(long = "pool", value_name = "NAME=DIR")]
    pub pools: Vec<String>,
    /// A single synthetic pool of this many units, without a dataset (tests, benchmarks).
    #[arg(long, conflicts_with_all = ["datasets", "pools"])]
    pub units: Option<u64>,
    /// Share of each batch for a pool: NAME=WEIGHT (any positive scale; default: the pools'
    /// unit counts, the natural mixture).
    #[arg(long = "weight", value_name = "NAME=WEIGHT")]
    pub weights: Vec<String>,
    /// Tokens per unit (the model's context length).
    #[arg(long, default_value_t = 2048)]
    pub seq_len: u32,
    /// Units per global batch (one optimizer step).
    #[arg(long, default_value_t = 1024)]
    pub batch_units: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 1)]
    pub round: u16,
    /// Steps in the round (default: as many as the pools allow).
    #[arg(long)]
    pub steps: Option<u64>,
    /// What happens when a pool runs out of units.
    #[arg(long, value_enum, default_value_t = ExhaustedArg::Stop)]
    pub exhausted: ExhaustedArg,
    /// The plan file to write (JSON).
    #[arg(long, short)]
    pub out: PathBuf,
}

/// Counts, per-pool shares and (with loss tables) a loss histogram of a plan.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tinyforge plan show out/round1.json
  tinyforge plan show out/round2.json --losses out/losses-r1.parquet --svg out/round2-losses.svg

With --losses (the previous round's loss tables), compares the loss distribution of all their
units with that of the units this plan trains on, in the JSON report and as an SVG picture
(default: the plan's path with the extension .losses.svg).")]
pub struct PlanShowArgs {
    pub plan: PathBuf,
    /// Loss tables to histogram against the plan.
    #[arg(long, num_args = 1..)]
    pub losses: Vec<PathBuf>,
    /// Where to draw the histogram picture.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    #[arg(long, default_value_t = 40)]
    pub bins: usize,
}

pub fn run(args: PlanArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        PlanCommand::New(args) => run_new(args, global),
        PlanCommand::Show(args) => run_show(args, global),
    }
}

fn split_pair<'a>(text: &'a str, what: &str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once('=')
        .with_context(|| format!("{what} `{text}` is not NAME=VALUE"))
}

fn run_new(args: PlanNewArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let mut named: Vec<(String, Option<PathBuf>, u64)> = Vec::new();
    if let Some(units) = args.units {
        named.push(("units".into(), None, units));
    }
    let mut folders: Vec<(String, PathBuf)> = Vec::new();
    for dataset in &args.datasets {
        let name = dataset
            .canonicalize()
            .unwrap_or_else(|_| dataset.clone())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dataset.display().to_string());
        folders.push((name, dataset.clone()));
    }
    for pool in &args.pools {
        let (name, dir) = split_pair(pool, "--pool")?;
        folders.push((name.to_owned(), PathBuf::from(dir)));
    }
    for (name, dir) in folders {
        let units = tinyforge_sampler::dataset_units(&dir, args.seq_len)?;
        named.push((name, Some(dir), units));
    }
    if named.is_empty() {
        bail!("no pool: give dataset folders, --pool NAME=DIR or --units N");
    }
    for (i, (name, ..)) in named.iter().enumerate() {
        if named[..i].iter().any(|(other, ..)| other == name) {
            bail!("two pools are named `{name}`; name them with --pool NAME=DIR");
        }
    }
    let mut weights: Vec<Option<f64>> = vec![None; named.len()];
    for weight in &args.weights {
        let (name, value) = split_pair(weight, "--weight")?;
        let index = named
            .iter()
            .position(|(n, ..)| n == name)
            .with_context(|| {
                let names: Vec<&str> = named.iter().map(|(n, ..)| n.as_str()).collect();
                format!("--weight names pool `{name}`; the pools are {names:?}")
            })?;
        weights[index] = Some(
            value
                .parse()
                .with_context(|| format!("--weight {weight}: not a number"))?,
        );
    }
    if !args.weights.is_empty() && weights.iter().any(Option::is_none) {
        bail!("give a --weight for every pool or for none");
    }
    let pools = named
        .into_iter()
        .zip(weights)
        .map(|((name, dir, units), weight)| Pool {
            name,
            dataset: dir.map(|d| d.display().to_string()),
            units,
            weight: weight.unwrap_or(units as f64),
            held_out: vec![],
        })
        .collect();
    let spec = RoundOneSpec {
        seed: args.seed,
        round: args.round,
        seq_len: args.seq_len,
        batch_units: args.batch_units,
        pools,
        exhausted: match args.exhausted {
            ExhaustedArg::Stop => Exhausted::Stop,
            ExhaustedArg::Cycle => Exhausted::Cycle,
        },
        steps: args.steps,
    };
    let plan = Plan::create_round_one(&args.out, &spec)?;
    let summary = tinyforge_sampler::summarize(&plan, &[], 1)?;
    crate::output::json(&summary)?;
    Ok(())
}

fn run_show(args: PlanShowArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let plan = Plan::open(&args.plan)?;
    let summary = tinyforge_sampler::summarize(&plan, &args.losses, args.bins)?;
    let mut report = serde_json::to_value(&summary)?;
    if let Some(histogram) = &summary.losses {
        let svg = args
            .svg
            .clone()
            .unwrap_or_else(|| args.plan.with_extension("losses.svg"));
        let title = format!(
            "round {} plan vs all units: loss distribution",
            plan.round()
        );
        tinyforge_sampler::write_histogram_svg(histogram, &title, &svg)?;
        report["svg"] = serde_json::Value::String(svg.display().to_string());
    }
    crate::output::json(&report)?;
    Ok(())
}
