//! `tinyforge score`: a frozen checkpoint computes every unit's loss for a round plan, in
//! inference mode, into a loss table. The next round's selection reads that table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

use crate::data::{self, RoundPlan, UnitSource};
use crate::dist::World;
use crate::error::Result;
use crate::losses;
use crate::model::Model;
use crate::parallel::gather_shares;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreReport {
    pub table: PathBuf,
    pub round: u16,
    pub batches: u64,
    pub units: u64,
    pub mean_loss: f64,
    pub seconds: f64,
    pub tokens_per_s: f64,
}

/// Score the units of `plan`'s steps (all of them, or the first `limit_batches`), `micro_batch`
/// sequences per forward, and write the loss table `table` (Parquet: unit_id, loss, round).
///
/// On several ranks each scores its share of every batch and rank 0 writes the table of them
/// all, one row per unit in plan order.
#[expect(
    clippy::too_many_arguments,
    reason = "the score stage's inputs, each a different concept; a struct would only rename them"
)]
pub fn score_plan(
    world: &World,
    model: &Model,
    data: Arc<dyn UnitSource>,
    plan: Arc<dyn RoundPlan>,
    seq_len: usize,
    micro_batch: usize,
    limit_batches: Option<u64>,
    round: u16,
    table: &Path,
    reporter: &dyn tinyforge_task::Reporter,
) -> Result<ScoreReport> {
    let _guard = tch::no_grad_guard();
    let t0 = Instant::now();
    let total = limit_batches.map_or(plan.steps(), |l| l.min(plan.steps()));
    // The count is batches.
    reporter.start("score", total);
    let (mut units, mut values) = (Vec::new(), Vec::new());
    let rx = data::prefetch(data, plan, world, 0, seq_len, model.config().vocab_size, 4);
    for batch in rx.iter().take(total as usize) {
        let batch = batch?;
        let mut batch_values = Vec::with_capacity(batch.units.len());
        let n = batch.windows.size()[0];
        let mut start = 0;
        while start < n {
            let len = (micro_batch as i64).min(n - start);
            let w = data::to_device(&batch.windows.narrow(0, start, len), model.device());
            let l = model
                .sequence_losses(&w)
                .to_kind(Kind::Float)
                .to_device(Device::Cpu);
            batch_values.extend(Vec::<f32>::try_from(&l)?);
            start += len;
        }
        // Every rank's share, in rank order: the plan's order of the batch.
        let all = gather_shares(world, &batch_values, batch.units.len(), "the score gather")?;
        values.extend(all);
        units.extend_from_slice(&batch.units);
        reporter.advance(1);
    }
    if world.is_main() {
        losses::write_table(table, &units, &values, round)?;
    }
    world.barrier("the score table")?;
    let secs = t0.elapsed().as_secs_f64();
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64;
    Ok(ScoreReport {
        table: table.to_path_buf(),
        round,
        batches: total,
        units: units.len() as u64,
        mean_loss: mean,
        seconds: secs,
        tokens_per_s: (units.len() * seq_len) as f64 / secs.max(1e-9),
    })
}
