//! Loss-aware selection of the next round (the paper's multiple-round training, §6.2).
//!
//! One streaming pass over the loss tables checks that every unit the previous plan trained on
//! has exactly one loss (a bitmap of one bit per unit, updated in cache-sized bins), and either scores units as they come or
//! sums them into their batches. Drawing k of N items without replacement with probabilities
//! proportional to `exp(loss/τ)` (successive sampling, `torch.multinomial(p, k, replacement=False)`)
//! is the same as keeping the k largest of `loss/τ + G`, G standard Gumbel noise (Gumbel-top-k).
//! The noise is a keyed hash of (seed, round, batch or unit id), so the draw is deterministic and
//! independent of the order of the rows.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::binned::Binned;
use crate::error::{Error, Result};
use crate::keyed::{Permutation, derive_key, gumbel, mix64, tag};
use crate::locate::Locator;
use crate::losses::{LossChunk, LossTableReader};
use crate::plan::{ListOrder, Plan, PlanHeader, PlanOrder, SelectionInfo, UnitRef, write_header};
use crate::topk::{Scored, TopK};

/// How items are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// p ∝ softmax(loss / τ), drawn without replacement (Gumbel-top-k).
    Softmax,
    /// The highest losses, deterministically.
    TopLoss,
    /// Uniform without replacement (ablation baseline).
    Uniform,
}

/// What is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Whole batches of the previous plan, scored by the mean loss of their units (the paper).
    Batch,
    /// Single units, scored by their own loss.
    Unit,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Softmax => "softmax-loss",
            Method::TopLoss => "top-loss",
            Method::Uniform => "uniform",
        }
    }
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Batch => "batch",
            Level::Unit => "unit",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SelectConfig {
    pub method: Method,
    pub level: Level,
    /// Share r of the previous round's batches (or units) to draw.
    pub fraction: f64,
    /// τ in softmax(loss / τ).
    pub temperature: f64,
    pub seed: u64,
    pub order: ListOrder,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SelectReport {
    pub plan: PathBuf,
    pub units_file: PathBuf,
    pub round: u16,
    pub method: &'static str,
    pub level: &'static str,
    pub loss_rows: u64,
    /// Batches (or units) that could be drawn, and how many were.
    pub candidates: u64,
    pub selected: u64,
    pub steps: u64,
    pub units: u64,
    pub mean_loss_all: f64,
    /// Mean loss of the drawn batches (batch level only: the unit level keeps no losses).
    pub mean_loss_selected: Option<f64>,
}

/// Rows read so far and in all.
pub type ProgressFn<'a> = dyn FnMut(u64, u64) + 'a;

/// Draws the next round from `previous` and its loss tables, writing the plan header to `out`
/// and its unit list beside it (`out` with the extension `units`).
pub fn select_next_round(
    previous: &Plan,
    loss_tables: &[PathBuf],
    out: &Path,
    config: &SelectConfig,
    progress: &mut ProgressFn<'_>,
) -> Result<SelectReport> {
    if !(config.fraction > 0.0 && config.fraction <= 1.0) {
        return Err(Error::Config(format!(
            "fraction {} is not in (0, 1]",
            config.fraction
        )));
    }
    if !(config.temperature.is_finite() && config.temperature > 0.0) {
        return Err(Error::Config(format!(
            "temperature {} is not positive",
            config.temperature
        )));
    }
    if loss_tables.is_empty() {
        return Err(Error::Config("no loss table given".into()));
    }
    let round = previous
        .round()
        .checked_add(1)
        .ok_or_else(|| Error::Config("round 65535 is the last".into()))?;
    let batch = previous.batch_units() as u64;
    let steps = previous.num_steps();
    let distinct = previous.distinct_units();
    let (candidates, k) = match config.level {
        Level::Batch => (
            steps,
            ((config.fraction * steps as f64).round() as u64).min(steps),
        ),
        Level::Unit => (
            distinct,
            ((config.fraction * distinct as f64).floor() as u64 / batch) * batch,
        ),
    };
    if k == 0 {
        return Err(Error::Config(format!(
            "a fraction of {} of {candidates} {}s selects nothing{}",
            config.fraction,
            config.level.name(),
            if config.level == Level::Unit {
                format!(" (whole batches of {batch})")
            } else {
                String::new()
            }
        )));
    }
    let inverse_temperature = 1.0 / config.temperature;
    let gumbel_tag = if config.level == Level::Batch {
        tag::GUMBEL_BATCH
    } else {
        tag::GUMBEL_UNIT
    };
    let noise_key = derive_key(&[config.seed, round as u64, gumbel_tag]);
    let key_of = |loss: f64, id: u64| -> f64 {
        match config.method {
            Method::Softmax => loss * inverse_temperature + gumbel(mix64(noise_key ^ mix64(id))),
            Method::TopLoss => loss,
            Method::Uniform => gumbel(mix64(noise_key ^ mix64(id))),
        }
    };

    let started = std::time::Instant::now();
    let locator = Locator::new(previous)?;
    // A shuffled unit-level draw needs no plan positions when the previous plan trains every
    // unit exactly once (a whole round-1 permutation): every valid unit is in it. Skipping the
    // permutation inverse per row halves the scan.
    let need_positions = config.level == Level::Batch
        || config.order == ListOrder::Kept
        || !(previous.is_permutation()
            && previous.distinct_units() == previous.total_units()
            && previous.num_positions() == previous.total_units());
    let pools: Vec<u64> = previous.pools().iter().map(|p| p.units).collect();
    let mut seen = vec![0u64; previous.total_units().div_ceil(64) as usize];
    let mut batch_sums = if config.level == Level::Batch {
        vec![0f64; steps as usize]
    } else {
        Vec::new()
    };
    let mut top = TopK::new(if config.level == Level::Unit {
        k as usize
    } else {
        0
    });
    let mut positions = Vec::with_capacity(4);
    let mut rows = 0u64;
    let mut loss_sum = 0f64;
    let mut total_rows = 0u64;
    let mut readers = Vec::with_capacity(loss_tables.len());
    for path in loss_tables {
        let reader = LossTableReader::open(path)?;
        total_rows += reader.rows();
        readers.push(reader);
    }
    // The exactly-once check and the batch sums are random updates of tables of N bits and
    // N/batch floats: binned (see `binned`) so each update hits cache.
    let mut seen_updates = Binned::<()>::new(previous.total_units(), 1);
    let mut sum_updates = Binned::<f64>::new(steps, 64);
    // A second loss for a unit is found when its bin is applied, rows later; the error path
    // reads the tables again to name the rows.
    let mut mark_seen = |global: u64, (): ()| -> Result<()> {
        let (word, bit) = ((global / 64) as usize, 1u64 << (global % 64));
        if seen[word] & bit != 0 {
            return Err(duplicate_error(loss_tables, previous, global));
        }
        seen[word] |= bit;
        Ok(())
    };
    let mut add_to_batch = |b: u64, loss: f64| -> Result<()> {
        batch_sums[b as usize] += loss;
        Ok(())
    };
    // A reader thread decodes the next chunk while this one is checked and scored: the
    // per-row work (inverting the plan's permutation, two logarithms for the Gumbel noise) runs
    // on every core, then the rows are folded in order (bins, sums, the running top k).
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<(usize, Result<LossChunk>)>(2);
    // Scored chunks go to the folding loop below while the next chunk is scored; their
    // buffers come back through `spare_tx` to be reused.
    let (scored_tx, scored_rx) =
        crossbeam_channel::bounded::<Result<(usize, LossChunk, Vec<RowScore>)>>(2);
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<RowScore>>(4);
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || {
            for (table, reader) in readers.into_iter().enumerate() {
                for chunk in reader {
                    let failed = chunk.is_err();
                    if chunk_tx.send((table, chunk)).is_err() || failed {
                        return;
                    }
                }
            }
        });
        let need_positions = &need_positions;
        let locator = &locator;
        let pools = &pools;
        let key_of = &key_of;
        scope.spawn(move || {
            for (table, chunk) in chunk_rx {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(err) => {
                        let _ = scored_tx.send(Err(err));
                        return;
                    }
                };
                let mut scored = spare_rx.try_recv().unwrap_or_default();
                let need_positions = *need_positions;
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
                            let pool_units = pools.get(unit.pool as usize).copied().unwrap_or(0);
                            if unit.unit >= pool_units {
                                return RowScore::fault(RowFault::UnknownUnit);
                            }
                            let loss = losses[i];
                            if !loss.is_finite() {
                                return RowScore::fault(RowFault::NonFinite);
                            }
                            let global = previous.global_id(unit);
                            if !need_positions {
                                let key = key_of(loss as f64, global);
                                return RowScore {
                                    global,
                                    first: 0,
                                    key,
                                    fault: None,
                                    repeated: false,
                                };
                            }
                            positions.clear();
                            locator.positions_of(unit, positions);
                            let Some(&first) = positions.first() else {
                                return RowScore::fault(RowFault::NotInPlan);
                            };
                            let key = match config.level {
                                Level::Unit => key_of(loss as f64, global),
                                Level::Batch => 0.0,
                            };
                            RowScore {
                                global,
                                first,
                                key,
                                fault: None,
                                repeated: positions.len() > 1,
                            }
                        },
                    )
                    .collect_into_vec(&mut scored);
                if scored_tx.send(Ok((table, chunk, scored))).is_err() {
                    return;
                }
            }
        });
        for scored in scored_rx {
            let (table, chunk, scored) = scored?;
            let path = &loss_tables[table];
            let units = chunk.units.values();
            let losses = chunk.losses.values();
            for (i, score) in scored.iter().enumerate() {
                let row = chunk.first_row + i as u64;
                let unit = UnitRef {
                    pool: chunk.pool(i),
                    unit: units[i],
                };
                if score.fault.is_some() {
                    // Rows before this one are checked for duplicates first, as a row-by-row
                    // pass would.
                    seen_updates.flush(&mut mark_seen)?;
                }
                match score.fault {
                    None => {}
                    Some(RowFault::UnknownUnit) => {
                        return Err(Error::UnknownUnit {
                            path: path.clone(),
                            row,
                            pool: unit.pool as u32,
                            unit: unit.unit,
                            units: pools.get(unit.pool as usize).copied().unwrap_or(0),
                        });
                    }
                    Some(RowFault::NonFinite) => {
                        return Err(Error::NonFiniteLoss {
                            path: path.clone(),
                            row,
                            unit: unit.unit,
                            loss: losses[i],
                        });
                    }
                    Some(RowFault::NotInPlan) => {
                        mark_seen(score.global, ())?;
                        return Err(Error::UnitNotInPlan {
                            path: path.clone(),
                            row,
                            pool: unit.pool as u32,
                            unit: unit.unit,
                        });
                    }
                }
                seen_updates.push(score.global, (), &mut mark_seen)?;
                let loss = losses[i] as f64;
                loss_sum += loss;
                match config.level {
                    Level::Batch if score.repeated => {
                        positions.clear();
                        locator.positions_of(unit, &mut positions);
                        for &p in &positions {
                            sum_updates.push(p / batch, loss, &mut add_to_batch)?;
                        }
                    }
                    Level::Batch => {
                        sum_updates.push(score.first / batch, loss, &mut add_to_batch)?
                    }
                    // Keyed by the global unit id: the unit keeps its noise whatever its position.
                    Level::Unit => top.push(score.key, score.global, score.first),
                }
            }
            rows += chunk.len() as u64;
            progress(rows, total_rows);
            let _ = spare_tx.try_send(scored);
        }
        Ok(())
    })?;
    seen_updates.flush(&mut mark_seen)?;
    sum_updates.flush(&mut add_to_batch)?;
    if rows != distinct {
        return Err(first_missing(
            previous,
            &seen,
            distinct - rows.min(distinct),
        ));
    }

    tracing::info!(
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "loss tables scanned"
    );
    // Unit level keeps each selected unit's global id beside its position, so the output needs
    // no second pass through the previous plan's permutation.
    let (selected_positions, selected_ids, mean_loss_selected) = match config.level {
        Level::Batch => {
            let mut top = TopK::new(k as usize);
            for (b, &sum) in batch_sums.iter().enumerate() {
                top.push(key_of(sum / batch as f64, b as u64), b as u64, 0);
            }
            let mut chosen = top.into_ids();
            chosen.par_sort_unstable();
            let mean = chosen
                .iter()
                .map(|&b| batch_sums[b as usize] / batch as f64)
                .sum::<f64>()
                / chosen.len() as f64;
            (chosen, None, Some(mean))
        }
        // Unit level writes the selected units straight from (order key, global id) pairs:
        // kept in previous-plan order, or shuffled by sorting on a keyed hash of the unit,
        // which is a uniform permutation without the random gather a permutation of positions
        // would cost (that gather was a third of the run at 10^8 units).
        Level::Unit => {
            let chosen = top.into_items();
            tracing::debug!(seconds = started.elapsed().as_secs_f64(), "top k cut");
            (
                Vec::new(),
                Some(order_units(chosen, previous, config, round)),
                None,
            )
        }
    };
    drop(batch_sums);
    drop(seen);

    // Batch level: position j of the selection (ascending in the previous plan) → previous
    // plan position. Unit level has its ids in output order already.
    let units = k * if config.level == Level::Batch {
        batch
    } else {
        1
    };
    let previous_position =
        |j: u64| -> u64 { selected_positions[(j / batch) as usize] * batch + j % batch };
    let width: u8 = if previous.total_units() <= u32::MAX as u64 {
        4
    } else {
        8
    };
    let units_path = out.with_extension("units");
    let units_file = units_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Config(format!("{} has no file name", out.display())))?;
    let shuffle = Permutation::new(
        units,
        derive_key(&[config.seed, round as u64, tag::SHUFFLE]),
    );
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "selection made");
    let tmp = tinyforge_task::temp_path(&units_path);
    {
        let mut writer = BufWriter::with_capacity(1 << 20, fs_err::File::create(&tmp)?);
        const BLOCK: u64 = 1 << 20;
        let mut bytes: Vec<u8> = Vec::with_capacity(BLOCK.min(units) as usize * width as usize);
        let mut write_ids = |ids: &[u64]| -> Result<()> {
            bytes.clear();
            for &id in ids {
                if width == 4 {
                    bytes.extend_from_slice(&(id as u32).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&id.to_le_bytes());
                }
            }
            writer.write_all(&bytes)?;
            Ok(())
        };
        if let Some(ids) = &selected_ids {
            for block in ids.chunks(BLOCK as usize) {
                write_ids(block)?;
            }
        } else {
            // A list plan is read one unit at a time; gather its ids in selection order first
            // (sequential reads) instead of seeking per unit.
            let gathered: Option<Vec<u64>> = if previous.is_permutation() {
                None
            } else {
                let mut ids = Vec::with_capacity(units as usize);
                for j in 0..units {
                    ids.push(previous.global_id(previous.unit_at(previous_position(j))?));
                }
                Some(ids)
            };
            // Blocks of the output are computed on every core (a keyed permutation and a plan
            // lookup per unit), then written in order.
            for block in (0..units).step_by(BLOCK as usize) {
                let ids = (block..(block + BLOCK).min(units))
                    .into_par_iter()
                    .map(|i| {
                        let j = match config.order {
                            ListOrder::Kept => i,
                            ListOrder::Shuffled => shuffle.apply(i),
                        };
                        Ok(match &gathered {
                            Some(ids) => ids[j as usize],
                            None => previous.global_id(previous.unit_at(previous_position(j))?),
                        })
                    })
                    .collect::<Result<Vec<u64>>>()?;
                write_ids(&ids)?;
            }
        }
        writer.flush()?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "unit list written, syncing"
        );
        writer
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
    }
    fs_err::rename(&tmp, &units_path)?;
    tracing::info!(
        units,
        seconds = started.elapsed().as_secs_f64(),
        "unit list written"
    );

    let header = PlanHeader {
        format: crate::plan::PLAN_FORMAT.into(),
        version: crate::plan::PLAN_VERSION,
        seed: config.seed,
        round,
        seq_len: previous.seq_len(),
        batch_units: previous.batch_units(),
        steps: units / batch,
        pools: previous.pools().to_vec(),
        order: PlanOrder::List {
            file: units_file,
            id_width: width,
            units,
            order: config.order,
        },
        selection: Some(SelectionInfo {
            method: config.method.name().into(),
            level: config.level.name().into(),
            fraction: config.fraction,
            temperature: config.temperature,
            seed: config.seed,
            from_plan: previous.path().display().to_string(),
            from_round: previous.round(),
            loss_tables: loss_tables
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            candidates,
            selected: k,
        }),
    };
    write_header(out, &header)?;
    Ok(SelectReport {
        plan: out.to_path_buf(),
        units_file: units_path,
        round,
        method: config.method.name(),
        level: config.level.name(),
        loss_rows: rows,
        candidates,
        selected: k,
        steps: units / batch,
        units,
        mean_loss_all: loss_sum / rows as f64,
        mean_loss_selected,
    })
}

/// Bits that hold every value in `[0, n)`.
fn bits_below(n: u64) -> u32 {
    64 - n.saturating_sub(1).leading_zeros()
}

/// The global ids of the selected units in the next round's order: kept in previous-plan
/// order, or shuffled by a keyed hash of the unit (a uniform order without the random gather a
/// permutation of positions costs: that gather was a third of the run at 10^8 units). Each unit
/// becomes one `u64`, order key in the high bits and id in the low bits, sorted in cache-sized
/// buckets. Hashes whose high bits tie order by id.
fn order_units(
    chosen: Vec<Scored>,
    previous: &Plan,
    config: &SelectConfig,
    round: u16,
) -> Vec<u64> {
    let id_bits = bits_below(previous.total_units());
    let position_bits = bits_below(previous.num_positions());
    let hash_key = derive_key(&[config.seed, round as u64, tag::SHUFFLE]);
    let hash = |id: u64| mix64(hash_key ^ mix64(id));
    let packable = match config.order {
        ListOrder::Kept => id_bits + position_bits <= 64,
        ListOrder::Shuffled => id_bits <= 40,
    };
    if !packable {
        let mut pairs: Vec<(u64, u64)> = chosen
            .par_iter()
            .map(|s| match config.order {
                ListOrder::Kept => (s.payload, s.id),
                ListOrder::Shuffled => (hash(s.id), s.id),
            })
            .collect();
        drop(chosen);
        pairs.par_sort_unstable();
        return pairs.into_iter().map(|(_, id)| id).collect();
    }
    let (key_bits, mut packed): (u32, Vec<u64>) = match config.order {
        ListOrder::Kept => (
            position_bits + id_bits,
            chosen
                .par_iter()
                .map(|s| (s.payload << id_bits) | s.id)
                .collect(),
        ),
        ListOrder::Shuffled => (
            64,
            chosen
                .par_iter()
                .map(|s| ((hash(s.id) >> id_bits) << id_bits) | s.id)
                .collect(),
        ),
    };
    drop(chosen);
    packed = sort_spread(packed, key_bits);
    let mask = if id_bits == 64 {
        u64::MAX
    } else {
        (1u64 << id_bits) - 1
    };
    packed.par_iter_mut().for_each(|v| *v &= mask);
    packed
}

/// Sorts values that spread evenly over `[0, 2^key_bits)`: one counting pass deals them into
/// buckets by their high bits, then every bucket is sorted on its own, in cache and in
/// parallel. Same result as a full sort, in a fraction of the time at 10^7-10^9 values.
fn sort_spread(values: Vec<u64>, key_bits: u32) -> Vec<u64> {
    const PER_BUCKET: usize = 1 << 16;
    let bucket_bits = (values.len() / PER_BUCKET).clamp(1, 1 << 10).ilog2();
    let shift = key_bits.saturating_sub(bucket_bits);
    let buckets = 1usize << bucket_bits;
    let bucket_of = |v: u64| -> usize {
        if shift >= 64 {
            0
        } else {
            ((v >> shift) as usize).min(buckets - 1)
        }
    };
    let mut starts = vec![0usize; buckets + 1];
    for &v in &values {
        starts[bucket_of(v) + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let mut sorted = vec![0u64; values.len()];
    let mut next = starts.clone();
    for v in values {
        let b = bucket_of(v);
        sorted[next[b]] = v;
        next[b] += 1;
    }
    let mut rest: &mut [u64] = &mut sorted;
    let mut slices = Vec::with_capacity(buckets);
    for b in 0..buckets {
        let (head, tail) = rest.split_at_mut(starts[b + 1] - starts[b]);
        slices.push(head);
        rest = tail;
    }
    slices
        .into_par_iter()
        .for_each(|bucket| bucket.sort_unstable());
    sorted
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_spread_is_a_full_sort() {
        for (n, key_bits) in [
            (0u64, 4u32),
            (1, 0),
            (5000, 13),
            (100_000, 40),
            (300_000, 64),
        ] {
            let values: Vec<u64> = (0..n)
                .map(|i| {
                    if key_bits == 64 {
                        mix64(i)
                    } else {
                        mix64(i) & ((1u64 << key_bits) - 1)
                    }
                })
                .collect();
            let mut want = values.clone();
            want.sort_unstable();
            assert_eq!(sort_spread(values, key_bits), want, "n={n} bits={key_bits}");
        }
    }
}
