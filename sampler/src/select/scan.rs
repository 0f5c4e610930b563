//! The one streaming pass of a selection over the previous round's loss tables. Every row is
//! checked (a unit the plan trains, a finite loss, exactly one loss per unit) and then either
//! scored for the unit-level draw or added to the sum of its batch.
//!
//! Three stages overlap: a reader thread decodes the next chunk; a scoring thread does the
//! per-row work that needs no order on every core (inverting the plan's permutation, two
//! logarithms for the Gumbel noise); the calling thread folds the scored rows in table order
//! (the exactly-once bitmap, the batch sums, the running top k), so errors name the first bad
//! row and sums come out as in a row-by-row pass.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use rayon::prelude::*;

use super::{Draw, Level, SelectConfig, SelectionKeys};
use crate::binned::Binned;
use crate::error::{Error, Result};
use crate::locate::Locator;
use crate::losses::{LossChunk, LossTableReader};
use crate::plan::{ListOrder, Plan, UnitRef};
use crate::topk::TopK;
use tinyforge_task::Reporter;

/// What the pass leaves for the draw.
pub(super) struct Scan {
    /// Loss rows read: one per distinct unit of the previous plan.
    pub(super) rows: u64,
    /// The sum of every row's loss.
    pub(super) loss_sum: f64,
    /// Batch level: the sum of each batch's unit losses, by step of the previous plan.
    pub(super) batch_sums: Vec<f64>,
    /// Unit level: the k units of highest key, each with its first plan position.
    pub(super) top: TopK,
}

/// Reads every row of `loss_tables` once, checks it against `previous` and scores it for the
/// draw; `reporter` counts the rows as each chunk is folded.
pub(super) fn scan_loss_tables(
    previous: &Plan,
    loss_tables: &[PathBuf],
    config: &SelectConfig,
    draw: &Draw,
    reporter: &dyn Reporter,
) -> Result<Scan> {
    let locator = Locator::new(previous)?;
    let pools: Vec<u64> = previous.pools().iter().map(|p| p.units).collect();
    let scorer = RowScorer {
        previous,
        locator: &locator,
        pools: &pools,
        keys: draw.keys,
        level: config.level,
        need_positions: needs_positions(previous, config),
    };
    let mut fold = Fold::new(previous, loss_tables, &locator, &pools, config.level, draw);
    let (readers, total_rows) = open_loss_tables(loss_tables)?;
    reporter.start("sample", total_rows);
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<(usize, Result<LossChunk>)>(2);
    // Scored chunks go to the fold below while the next chunk is scored; their buffers come
    // back through `spare_tx` to be reused.
    let (scored_tx, scored_rx) = crossbeam_channel::bounded::<Result<ScoredChunk>>(2);
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<RowScore>>(4);
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || read_chunks(readers, chunk_tx));
        let scorer = &scorer;
        scope.spawn(move || scorer.score_chunks(chunk_rx, scored_tx, spare_rx));
        // Returning early drops `scored_rx`, which stops the scoring thread and then the reader.
        for scored in scored_rx {
            let ScoredChunk {
                table,
                chunk,
                scores,
            } = scored?;
            fold.fold_chunk(&loss_tables[table], &chunk, &scores)?;
            reporter.advance(chunk.units.len() as u64);
            let _ = spare_tx.try_send(scores);
        }
        Ok(())
    })?;
    fold.finish()
}

/// Whether the rows need their plan positions. A shuffled unit-level draw needs none when the
/// previous plan trains every unit exactly once (a whole round-1 permutation): every valid unit
/// is in it. Skipping the permutation inverse per row halves the scan.
fn needs_positions(previous: &Plan, config: &SelectConfig) -> bool {
    config.level == Level::Batch
        || config.order == ListOrder::Kept
        || !(previous.is_permutation()
            && previous.distinct_units() == previous.total_units()
            && previous.num_positions() == previous.total_units())
}

/// Opens every table (so that a missing one fails before any work) and counts their rows.
fn open_loss_tables(loss_tables: &[PathBuf]) -> Result<(Vec<LossTableReader>, u64)> {
    let mut total_rows = 0u64;
    let mut readers = Vec::with_capacity(loss_tables.len());
    for path in loss_tables {
        let reader = LossTableReader::open(path)?;
        total_rows += reader.rows();
        readers.push(reader);
    }
    Ok((readers, total_rows))
}

/// The reader thread: every chunk of the tables in order, with its table's index. Stops after
/// the first error, or when nobody listens any more.
fn read_chunks(readers: Vec<LossTableReader>, chunks: Sender<(usize, Result<LossChunk>)>) {
    for (table, reader) in readers.into_iter().enumerate() {
        for chunk in reader {
            let failed = chunk.is_err();
            if chunks.send((table, chunk)).is_err() || failed {
                return;
            }
        }
    }
}

/// A chunk of a loss table with the scores of its rows.
struct ScoredChunk {
    /// Index of the chunk's table in the selection's list.
    table: usize,
    chunk: LossChunk,
    scores: Vec<RowScore>,
}

/// One loss row after the parallel pass: its unit's global id, first plan position and
/// selection key, or what is wrong with it.
#[derive(Debug, Clone, Copy)]
struct RowScore {
    global: u64,
    first: u64,
    key: f64,
    fault: Option<RowFault>,
    /// The plan trains the unit at more than one position (a cycled pool).
    repeated: bool,
}

#[derive(Debug, Clone, Copy)]
enum RowFault {
    UnknownUnit,
    NonFinite,
    NotInPlan,
}

impl RowScore {
    fn fault(fault: RowFault) -> RowScore {
        RowScore {
            global: 0,
            first: 0,
            key: 0.0,
            fault: Some(fault),
            repeated: false,
        }
    }
}

impl RowFault {
    /// The error for the row `row` of the table at `path`, of `unit` with `loss`.
    fn error(self, path: &Path, row: u64, unit: UnitRef, loss: f32, pools: &[u64]) -> Error {
        match self {
            RowFault::UnknownUnit => Error::UnknownUnit {
                path: path.to_path_buf(),
                row,
                pool: unit.pool as u32,
                unit: unit.unit,
                units: pools.get(unit.pool as usize).copied().unwrap_or(0),
            },
            RowFault::NonFinite => Error::NonFiniteLoss {
                path: path.to_path_buf(),
                row,
                unit: unit.unit,
                loss,
            },
            RowFault::NotInPlan => Error::UnitNotInPlan {
                path: path.to_path_buf(),
                row,
                pool: unit.pool as u32,
                unit: unit.unit,
            },
        }
    }
}

/// The per-row work that needs no order, run on every core: is the row's unit one of the plan,
/// where does the plan train it, and (unit level) its selection key.
struct RowScorer<'a> {
    previous: &'a Plan,
    locator: &'a Locator<'a>,
    /// Units of each pool of the previous plan.
    pools: &'a [u64],
    keys: SelectionKeys,
    level: Level,
    need_positions: bool,
}

impl RowScorer<'_> {
    /// The scoring thread: scores each chunk that arrives and sends it on, reusing the buffers
    /// of folded chunks. A read error is passed on and ends the thread.
    fn score_chunks(
        &self,
        chunks: Receiver<(usize, Result<LossChunk>)>,
        scored: Sender<Result<ScoredChunk>>,
        spares: Receiver<Vec<RowScore>>,
    ) {
        for (table, chunk) in chunks {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    let _ = scored.send(Err(err));
                    return;
                }
            };
            let mut scores = spares.try_recv().unwrap_or_default();
            self.score_chunk(&chunk, &mut scores);
            let sent = scored.send(Ok(ScoredChunk {
                table,
                chunk,
                scores,
            }));
            if sent.is_err() {
                return;
            }
        }
    }

    /// Scores every row of `chunk` into `scores`, in row order.
    fn score_chunk(&self, chunk: &LossChunk, scores: &mut Vec<RowScore>) {
        let units = chunk.units.values();
        let losses = chunk.losses.values();
        (0..chunk.len())
            .into_par_iter()
            .with_min_len(4096)
            .map_init(
                || Vec::with_capacity(4),
                |positions, i| {
                    let unit = UnitRef {
                        pool: chunk.pool(i),
                        unit: units[i],
                    };
                    self.score_row(unit, losses[i], positions)
                },
            )
            .collect_into_vec(scores);
    }

    /// The score of one row; `positions` is scratch space.
    #[inline]
    fn score_row(&self, unit: UnitRef, loss: f32, positions: &mut Vec<u64>) -> RowScore {
        let pool_units = self.pools.get(unit.pool as usize).copied().unwrap_or(0);
        if unit.unit >= pool_units {
            return RowScore::fault(RowFault::UnknownUnit);
        }
        if !loss.is_finite() {
            return RowScore::fault(RowFault::NonFinite);
        }
        let global = self.previous.global_id(unit);
        if !self.need_positions {
            return RowScore {
                global,
                first: 0,
                key: self.keys.of(loss as f64, global),
                fault: None,
                repeated: false,
            };
        }
        positions.clear();
        self.locator.positions_of(unit, positions);
        let Some(&first) = positions.first() else {
            return RowScore::fault(RowFault::NotInPlan);
        };
        let key = match self.level {
            Level::Unit => self.keys.of(loss as f64, global),
            Level::Batch => 0.0,
        };
        RowScore {
            global,
            first,
            key,
            fault: None,
            repeated: positions.len() > 1,
        }
    }
}

/// The in-order half of the pass: the scored rows, folded in table order.
struct Fold<'a> {
    locator: &'a Locator<'a>,
    /// Units of each pool of the previous plan.
    pools: &'a [u64],
    level: Level,
    /// Units per batch.
    batch: u64,
    seen: SeenOnce<'a>,
    sums: BatchSums,
    top: TopK,
    /// Scratch for the positions of a unit the plan repeats.
    positions: Vec<u64>,
    rows: u64,
    loss_sum: f64,
}

impl<'a> Fold<'a> {
    fn new(
        previous: &'a Plan,
        loss_tables: &'a [PathBuf],
        locator: &'a Locator<'a>,
        pools: &'a [u64],
        level: Level,
        draw: &Draw,
    ) -> Fold<'a> {
        let (batches, top_k) = match level {
            Level::Batch => (previous.num_steps(), 0),
            Level::Unit => (0, draw.k as usize),
        };
        Fold {
            locator,
            pools,
            level,
            batch: draw.batch,
            seen: SeenOnce::new(previous, loss_tables),
            sums: BatchSums::new(batches),
            top: TopK::new(top_k),
            positions: Vec::with_capacity(4),
            rows: 0,
            loss_sum: 0.0,
        }
    }

    /// Folds the rows of `chunk` (of the table at `path`) with their `scores`.
    fn fold_chunk(&mut self, path: &Path, chunk: &LossChunk, scores: &[RowScore]) -> Result<()> {
        let units = chunk.units.values();
        let losses = chunk.losses.values();
        for (i, score) in scores.iter().enumerate() {
            let unit = UnitRef {
                pool: chunk.pool(i),
                unit: units[i],
            };
            if let Some(fault) = score.fault {
                // Rows before this one are checked for duplicates first, as a row-by-row pass
                // would.
                self.seen.flush()?;
                let row = chunk.first_row + i as u64;
                return Err(fault.error(path, row, unit, losses[i], self.pools));
            }
            self.seen.push(score.global)?;
            let loss = losses[i] as f64;
            self.loss_sum += loss;
            match self.level {
                Level::Batch if score.repeated => {
                    self.positions.clear();
                    self.locator.positions_of(unit, &mut self.positions);
                    for &p in &self.positions {
                        self.sums.add(p / self.batch, loss);
                    }
                }
                Level::Batch => self.sums.add(score.first / self.batch, loss),
                // Keyed by the global unit id: the unit keeps its noise whatever its position.
                Level::Unit => self.top.push(score.key, score.global, score.first),
            }
        }
        self.rows += chunk.len() as u64;
        Ok(())
    }

    /// Applies what waits in the bins and checks that no unit lacks its loss.
    fn finish(mut self) -> Result<Scan> {
        self.seen.flush()?;
        let batch_sums = self.sums.finish();
        self.seen.check_complete(self.rows)?;
        Ok(Scan {
            rows: self.rows,
            loss_sum: self.loss_sum,
            batch_sums,
            top: self.top,
        })
    }
}

/// The exactly-once check: one bit per unit of the previous plan, set when its loss arrives.
/// The bits are a table of N bits updated at random, so the updates wait in cache-sized bins
/// (see `binned`); a second loss for a unit is found when its bin is applied, rows later.
struct SeenOnce<'a> {
    bits: Vec<u64>,
    pending: Binned<()>,
    previous: &'a Plan,
    /// Read again on the error path, to name the rows of a duplicate.
    loss_tables: &'a [PathBuf],
}

impl<'a> SeenOnce<'a> {
    fn new(previous: &'a Plan, loss_tables: &'a [PathBuf]) -> SeenOnce<'a> {
        SeenOnce {
            bits: vec![0u64; previous.total_units().div_ceil(64) as usize],
            pending: Binned::new(previous.total_units(), 1),
            previous,
            loss_tables,
        }
    }

    /// Queues the bit of the unit with global id `global`.
    fn push(&mut self, global: u64) -> Result<()> {
        self.pending.push(global, (), &mut |global, ()| {
            set_once(&mut self.bits, global, self.previous, self.loss_tables)
        })
    }

    /// Sets every queued bit.
    fn flush(&mut self) -> Result<()> {
        self.pending.flush(&mut |global, ()| {
            set_once(&mut self.bits, global, self.previous, self.loss_tables)
        })
    }

    /// After a flush, with `rows` rows read (each a different unit): the error for units of the
    /// plan without a loss, if any.
    fn check_complete(&self, rows: u64) -> Result<()> {
        let distinct = self.previous.distinct_units();
        if rows != distinct {
            return Err(first_missing(
                self.previous,
                &self.bits,
                distinct - rows.min(distinct),
            ));
        }
        Ok(())
    }
}

/// Sets the bit of `global`, or names the second row of its unit if it was set already.
fn set_once(bits: &mut [u64], global: u64, previous: &Plan, loss_tables: &[PathBuf]) -> Result<()> {
    let (word, bit) = ((global / 64) as usize, 1u64 << (global % 64));
    if bits[word] & bit != 0 {
        return Err(duplicate_error(loss_tables, previous, global));
    }
    bits[word] |= bit;
    Ok(())
}

/// Batch level: the sum of each batch's unit losses. The sums are a table of N/batch floats
/// updated at random, so the additions wait in cache-sized bins (see `binned`), which keep the
/// row order of the additions to one batch: the sums are bit for bit those of a row-by-row pass.
struct BatchSums {
    sums: Vec<f64>,
    pending: Binned<f64>,
}

impl BatchSums {
    fn new(batches: u64) -> BatchSums {
        BatchSums {
            sums: vec![0f64; batches as usize],
            pending: Binned::new(batches, 64),
        }
    }

    /// Queues the addition of `loss` to batch `batch`.
    fn add(&mut self, batch: u64, loss: f64) {
        let sums = &mut self.sums;
        let Ok(()) = self
            .pending
            .push(batch, loss, &mut |batch, loss| add_to(sums, batch, loss));
    }

    /// Every batch's sum, with the queued additions made.
    fn finish(mut self) -> Vec<f64> {
        let sums = &mut self.sums;
        let Ok(()) = self
            .pending
            .flush(&mut |batch, loss| add_to(sums, batch, loss));
        self.sums
    }
}

fn add_to(sums: &mut [f64], batch: u64, loss: f64) -> Result<(), Infallible> {
    sums[batch as usize] += loss;
    Ok(())
}

/// The error for a unit with more than one loss: reads the tables again for its second row.
fn duplicate_error(loss_tables: &[PathBuf], plan: &Plan, global: u64) -> Error {
    let unit = plan.unit_of_global(global);
    let mut found = 0;
    for path in loss_tables {
        let reader = match LossTableReader::open(path) {
            Ok(reader) => reader,
            Err(err) => return err,
        };
        for chunk in reader {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => return err,
            };
            for (i, &id) in chunk.units.values().iter().enumerate() {
                if id == unit.unit && chunk.pool(i) == unit.pool {
                    found += 1;
                    if found == 2 {
                        return Error::DuplicateUnit {
                            path: path.clone(),
                            row: chunk.first_row + i as u64,
                            pool: unit.pool as u32,
                            unit: unit.unit,
                        };
                    }
                }
            }
        }
    }
    Error::Internal(format!(
        "unit {} of pool {} was seen twice but is in the tables once",
        unit.unit, unit.pool
    ))
}

/// The error for loss tables that miss `missing` units: names the first in plan order.
fn first_missing(plan: &Plan, seen: &[u64], missing: u64) -> Error {
    for position in 0..plan.num_positions() {
        let Ok(unit) = plan.unit_at(position) else {
            break;
        };
        let global = plan.global_id(unit);
        if seen[(global / 64) as usize] & (1u64 << (global % 64)) == 0 {
            return Error::MissingUnits {
                missing,
                pool: unit.pool as u32,
                unit: unit.unit,
                position,
            };
        }
    }
    Error::Internal(format!(
        "{missing} units missing but none found in the plan"
    ))
}
