//! Loss-aware selection of the next round (the paper's multiple-round training, §6.2).
//!
//! One streaming pass over the loss tables checks that every unit the previous plan trained on
//! has exactly one loss (a bitmap of one bit per unit, updated in cache-sized bins), and either
//! scores units as they come or sums them into their batches. Drawing k of N items without
//! replacement with probabilities proportional to `exp(loss/τ)` (successive sampling,
//! `torch.multinomial(p, k, replacement=False)`) is the same as keeping the k largest of
//! `loss/τ + G`, G standard Gumbel noise (Gumbel-top-k). The noise is a keyed hash of (seed,
//! round, batch or unit id), so the draw is deterministic and independent of the order of the
//! rows.
//!
//! [`select_next_round`] takes the steps in order: `check_draw` refuses a configuration that
//! cannot draw and sizes the draw (k of how many batches or units); `scan::scan_loss_tables`
//! makes the pass; `choose_batches` (batch level) or `order_units` (unit level) keeps the k;
//! `write_unit_list` writes the next round's units and `next_header` its plan header.

mod scan;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::keyed::{Permutation, derive_key, gumbel, mix64, tag};
use crate::plan::{ListOrder, Plan, PlanHeader, PlanOrder, SelectionInfo, write_header};
use crate::topk::{Scored, TopK};
use scan::{Scan, scan_loss_tables};

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

/// Draws the next round from `previous` and its loss tables, writing the plan header to `out`
/// and its unit list beside it (`out` with the extension `units`).
pub fn select_next_round(
    previous: &Plan,
    loss_tables: &[PathBuf],
    out: &Path,
    config: &SelectConfig,
    reporter: &dyn tinyforge_task::Reporter,
) -> Result<SelectReport> {
    let draw = check_draw(previous, loss_tables, config)?;
    let started = Instant::now();
    let Scan {
        rows,
        loss_sum,
        batch_sums,
        top,
    } = scan_loss_tables(previous, loss_tables, config, &draw, reporter)?;
    tracing::info!(
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "loss tables scanned"
    );
    let (selection, mean_loss_selected) = match config.level {
        Level::Batch => {
            let (chosen, mean) = choose_batches(&batch_sums, &draw);
            (Selection::Batches(chosen), Some(mean))
        }
        Level::Unit => {
            let chosen = top.into_items();
            tracing::debug!(seconds = started.elapsed().as_secs_f64(), "top k cut");
            let ids = order_units(chosen, previous, config, draw.round);
            (Selection::Units(ids), None)
        }
    };
    drop(batch_sums);

    let units = draw.k
        * match config.level {
            Level::Batch => draw.batch,
            Level::Unit => 1,
        };
    let list = UnitList::beside(out, previous, units)?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "selection made");
    write_unit_list(&list, &selection, previous, config, &draw, started)?;
    tracing::info!(
        units,
        seconds = started.elapsed().as_secs_f64(),
        "unit list written"
    );
    write_header(
        out,
        &next_header(previous, loss_tables, config, &draw, &list),
    )?;
    Ok(SelectReport {
        plan: out.to_path_buf(),
        units_file: list.path,
        round: draw.round,
        method: config.method.name(),
        level: config.level.name(),
        loss_rows: rows,
        candidates: draw.candidates,
        selected: draw.k,
        steps: units / draw.batch,
        units,
        mean_loss_all: loss_sum / rows as f64,
        mean_loss_selected,
    })
}

/// A configuration checked against the previous plan: the round it draws, and k of how many
/// candidates (batches or units) it keeps.
struct Draw {
    round: u16,
    /// Units per batch, the same in both rounds.
    batch: u64,
    /// Batches (or units) that can be drawn.
    candidates: u64,
    /// Batches (or units) drawn; at unit level a whole number of batches' worth.
    k: u64,
    keys: SelectionKeys,
}

/// Refuses a configuration that cannot draw a round from `previous`, or that draws nothing.
fn check_draw(previous: &Plan, loss_tables: &[PathBuf], config: &SelectConfig) -> Result<Draw> {
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
    Ok(Draw {
        round,
        batch,
        candidates,
        k,
        keys: SelectionKeys::new(config, round),
    })
}

/// The key of a batch or unit in the draw: the k largest keys are drawn.
#[derive(Debug, Clone, Copy)]
struct SelectionKeys {
    method: Method,
    inverse_temperature: f64,
    /// Seeds the Gumbel noise of this round and level.
    noise_key: u64,
}

impl SelectionKeys {
    fn new(config: &SelectConfig, round: u16) -> SelectionKeys {
        let gumbel_tag = if config.level == Level::Batch {
            tag::GUMBEL_BATCH
        } else {
            tag::GUMBEL_UNIT
        };
        SelectionKeys {
            method: config.method,
            inverse_temperature: 1.0 / config.temperature,
            noise_key: derive_key(&[config.seed, round as u64, gumbel_tag]),
        }
    }

    /// The key of the batch or unit `id` with (mean) loss `loss`: `loss/τ + G` for softmax,
    /// the loss for top-loss, G alone for uniform, where G is the keyed Gumbel noise of `id`.
    #[inline]
    fn of(&self, loss: f64, id: u64) -> f64 {
        match self.method {
            Method::Softmax => {
                loss * self.inverse_temperature + gumbel(mix64(self.noise_key ^ mix64(id)))
            }
            Method::TopLoss => loss,
            Method::Uniform => gumbel(mix64(self.noise_key ^ mix64(id))),
        }
    }
}

/// What the draw kept.
enum Selection {
    /// Batch level: the chosen steps of the previous plan, ascending.
    Batches(Vec<u64>),
    /// Unit level: the chosen units' global ids, already in the next round's order. Each unit
    /// kept its global id beside its position, so the output needs no second pass through the
    /// previous plan's permutation.
    Units(Vec<u64>),
}

/// Batch level: the k batches of highest key, scored by their mean loss, ascending; and the
/// mean loss of the chosen batches.
fn choose_batches(batch_sums: &[f64], draw: &Draw) -> (Vec<u64>, f64) {
    let batch = draw.batch as f64;
    let mut top = TopK::new(draw.k as usize);
    for (b, &sum) in batch_sums.iter().enumerate() {
        top.push(draw.keys.of(sum / batch, b as u64), b as u64, 0);
    }
    let mut chosen = top.into_ids();
    chosen.par_sort_unstable();
    let mean = chosen
        .iter()
        .map(|&b| batch_sums[b as usize] / batch)
        .sum::<f64>()
        / chosen.len() as f64;
    (chosen, mean)
}

/// The next round's unit list: its path beside the plan header, its file name as the header
/// records it, the width of its ids and their count.
struct UnitList {
    path: PathBuf,
    file: String,
    id_width: u8,
    units: u64,
}

impl UnitList {
    fn beside(out: &Path, previous: &Plan, units: u64) -> Result<UnitList> {
        let id_width: u8 = if previous.total_units() <= u32::MAX as u64 {
            4
        } else {
            8
        };
        let path = out.with_extension("units");
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Config(format!("{} has no file name", out.display())))?;
        Ok(UnitList {
            path,
            file,
            id_width,
            units,
        })
    }
}

/// Ids go to the unit list in blocks of this many.
const BLOCK: u64 = 1 << 20;

/// Writes the selection's unit list through a temporary file, synced, then renamed into place.
fn write_unit_list(
    list: &UnitList,
    selection: &Selection,
    previous: &Plan,
    config: &SelectConfig,
    draw: &Draw,
    started: Instant,
) -> Result<()> {
    let tmp = tinyforge_task::temp_path(&list.path);
    let mut writer = IdWriter::create(&tmp, list)?;
    match selection {
        Selection::Units(ids) => {
            for block in ids.chunks(BLOCK as usize) {
                writer.write(block)?;
            }
        }
        Selection::Batches(chosen) => {
            let batches = ChosenBatches {
                previous,
                chosen,
                batch: draw.batch,
            };
            let shuffle = Permutation::new(
                list.units,
                derive_key(&[config.seed, draw.round as u64, tag::SHUFFLE]),
            );
            batches.write(&mut writer, list.units, config.order, &shuffle)?;
        }
    }
    writer.finish(started)?;
    fs_err::rename(&tmp, &list.path)?;
    Ok(())
}

/// Ids into a unit list file, little-endian at the list's width, through a large buffer.
struct IdWriter {
    writer: BufWriter<fs_err::File>,
    bytes: Vec<u8>,
    width: u8,
}

impl IdWriter {
    fn create(path: &Path, list: &UnitList) -> Result<IdWriter> {
        let width = list.id_width;
        Ok(IdWriter {
            writer: BufWriter::with_capacity(1 << 20, fs_err::File::create(path)?),
            bytes: Vec::with_capacity(BLOCK.min(list.units) as usize * width as usize),
            width,
        })
    }

    fn write(&mut self, ids: &[u64]) -> Result<()> {
        self.bytes.clear();
        for &id in ids {
            if self.width == 4 {
                self.bytes.extend_from_slice(&(id as u32).to_le_bytes());
            } else {
                self.bytes.extend_from_slice(&id.to_le_bytes());
            }
        }
        self.writer.write_all(&self.bytes)?;
        Ok(())
    }

    /// Flushes the buffer and syncs the file to disk.
    fn finish(mut self, started: Instant) -> Result<()> {
        self.writer.flush()?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "unit list written, syncing"
        );
        self.writer
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        Ok(())
    }
}

/// Batch level's unit list: position j of the selection (ascending in the previous plan) is
/// unit j % batch of the (j / batch)-th chosen batch.
struct ChosenBatches<'a> {
    previous: &'a Plan,
    /// Chosen steps of the previous plan, ascending.
    chosen: &'a [u64],
    batch: u64,
}

impl ChosenBatches<'_> {
    /// The previous plan's position of position `j` of the selection.
    fn previous_position(&self, j: u64) -> u64 {
        self.chosen[(j / self.batch) as usize] * self.batch + j % self.batch
    }

    /// The global id of the unit at position `j` of the selection.
    fn id_at(&self, j: u64) -> Result<u64> {
        let previous = self.previous;
        Ok(previous.global_id(previous.unit_at(self.previous_position(j))?))
    }

    /// Writes the `units` units of the selection, kept in order or at the positions `shuffle`
    /// gives them.
    fn write(
        &self,
        writer: &mut IdWriter,
        units: u64,
        order: ListOrder,
        shuffle: &Permutation,
    ) -> Result<()> {
        // A list plan is read one unit at a time; gather its ids in selection order first
        // (sequential reads) instead of seeking per unit.
        let gathered: Option<Vec<u64>> = if self.previous.is_permutation() {
            None
        } else {
            let mut ids = Vec::with_capacity(units as usize);
            for j in 0..units {
                ids.push(self.id_at(j)?);
            }
            Some(ids)
        };
        // Blocks of the output are computed on every core (a keyed permutation and a plan
        // lookup per unit), then written in order.
        for block in (0..units).step_by(BLOCK as usize) {
            let ids = (block..(block + BLOCK).min(units))
                .into_par_iter()
                .map(|i| {
                    let j = match order {
                        ListOrder::Kept => i,
                        ListOrder::Shuffled => shuffle.apply(i),
                    };
                    match &gathered {
                        Some(ids) => Ok(ids[j as usize]),
                        None => self.id_at(j),
                    }
                })
                .collect::<Result<Vec<u64>>>()?;
            writer.write(&ids)?;
        }
        Ok(())
    }
}

/// The next round's plan header: the unit list `list`, drawn from `previous` as `config` says.
fn next_header(
    previous: &Plan,
    loss_tables: &[PathBuf],
    config: &SelectConfig,
    draw: &Draw,
    list: &UnitList,
) -> PlanHeader {
    PlanHeader {
        format: crate::plan::PLAN_FORMAT.into(),
        version: crate::plan::PLAN_VERSION,
        seed: config.seed,
        round: draw.round,
        seq_len: previous.seq_len(),
        batch_units: previous.batch_units(),
        steps: list.units / draw.batch,
        pools: previous.pools().to_vec(),
        order: PlanOrder::List {
            file: list.file.clone(),
            id_width: list.id_width,
            units: list.units,
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
            candidates: draw.candidates,
            selected: draw.k,
        }),
    }
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
