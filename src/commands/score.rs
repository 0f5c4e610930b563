//! `tinyforge score`: a frozen checkpoint's loss of every unit of a round plan, into a loss table.

use std::path::PathBuf;

use clap::Args;
use tinyforge_train::Device;

use crate::cli::GlobalArgs;
use crate::commands::launch::{self, DistArgs};
use crate::progress::{Progress, Unit};

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
tinyforge score --checkpoint out/train/checkpoints/step-00000400 --data out/shards \\\n    \
--plan out/train/plans/round-1.json --out out/losses/score-round-1.parquet\n\n\
Then `tinyforge sample` draws the next round from the table (the train command does all of \
this itself when its config has several rounds). `--nproc N` (or torchrun / srun) splits every \
batch over the ranks; rank 0 writes the table.")]
pub struct ScoreArgs {
    /// Checkpoint folder (from `tinyforge train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Token dataset folder the plan indexes.
    #[arg(long)]
    pub data: PathBuf,
    /// Round plan (from `tinyforge plan` / `tinyforge sample`, or a run's plans/round-N.json).
    #[arg(long)]
    pub plan: PathBuf,
    /// Loss table to write (Parquet: unit_id, loss, round, pool).
    #[arg(long)]
    pub out: PathBuf,
    /// Score only the first N batches of the plan.
    #[arg(long)]
    pub limit_batches: Option<u64>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 16)]
    pub micro_batch: usize,
    /// auto, cpu, cuda, cuda:N.
    #[arg(long, default_value_t = Device::Auto)]
    pub device: Device,
    #[command(flatten)]
    pub dist: DistArgs,
}

pub fn run(args: ScoreArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Some(n) = args.dist.spawns() {
        return launch::spawn_local(n, &args.dist);
    }
    let device = tinyforge_train::torch_device(args.device);
    let (world, device) = launch::join(&args.dist, device)?;
    let global = &launch::rank_globals(&world, global);
    let progress = Progress::new(global, "score", 0, Unit::Items("batches"));
    let report = tinyforge_train::score_checkpoint(
        &world,
        &args.checkpoint,
        &args.data,
        &args.plan,
        &args.out,
        device,
        args.micro_batch,
        args.limit_batches,
        &progress,
    )?;
    progress.finish();
    if world.is_main() {
        crate::output::json(&report)?;
    }
    Ok(())
}
