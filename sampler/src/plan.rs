//! Round plans: which units each step of a round trains on, in order.
//!
//! A plan is a JSON header (`round1.json`). Round 1 is a keyed permutation of every unit of
//! every pool, so the header is all there is; a selected round (2, 3, ...) also names a file of
//! little-endian unit ids in plan order (`round2.units`), read with positional reads so opening a
//! plan of any size costs nothing and a batch is one read.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::heldout::check_held_out;
use crate::mixture::{Mixture, weight_parts};
use crate::round_one::RoundOne;

pub const PLAN_FORMAT: &str = "tinyforge-plan";
pub const PLAN_VERSION: u32 = 1;

/// One unit of one pool: the unit-th training sequence (tokens `[unit·L, unit·L + L + 1)`) of
/// the pool's dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitRef {
    pub pool: u16,
    pub unit: u64,
}

impl From<u64> for UnitRef {
    /// A unit of pool 0, for single-pool plans.
    fn from(unit: u64) -> Self {
        UnitRef { pool: 0, unit }
    }
}

/// A source of units: one token dataset (or one slice of the corpus, such as a language).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    /// The dataset folder the units index, as given when the plan was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Units of the dataset (ids run over `[0, units)`), held-out ones included.
    pub units: u64,
    /// Relative share of every batch (round 1); any positive scale.
    pub weight: f64,
    /// Sorted unit ids that no plan draws (validation data, [`crate::HeldOut`]); round 1's
    /// permutation runs over the other `units - held_out.len()`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_out: Vec<u64>,
}

impl Pool {
    /// Units a round may draw: all but the held-out ones.
    pub fn drawable(&self) -> u64 {
        self.units - self.held_out.len() as u64
    }
}

/// What round 1 does when a pool has no units left before the round ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Exhausted {
    /// The round ends at the last whole batch before any pool runs out.
    #[default]
    Stop,
    /// A pool that runs out starts over in a new order keyed by its epoch; the round's default
    /// length is then until every unit of every pool was drawn at least once.
    Cycle,
}

/// How a selected round orders its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListOrder {
    /// A keyed permutation of the selected units (batches are formed anew).
    Shuffled,
    /// The order the units had in the previous round's plan.
    Kept,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PlanOrder {
    /// Every unit in a keyed pseudo-random order (round 1).
    Permutation { exhausted: Exhausted },
    /// Units listed in a file beside the header, `id_width` bytes each (4 or 8), little-endian,
    /// as global ids: pool `p`'s unit `u` is `Σ_{q<p} units_q + u`.
    List {
        file: String,
        id_width: u8,
        units: u64,
        order: ListOrder,
    },
}

/// How a selected round was drawn, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionInfo {
    pub method: String,
    pub level: String,
    pub fraction: f64,
    pub temperature: f64,
    pub seed: u64,
    pub from_plan: String,
    pub from_round: u16,
    pub loss_tables: Vec<String>,
    /// Batches (or units, at unit level) that could be drawn.
    pub candidates: u64,
    /// Batches (or units) drawn.
    pub selected: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanHeader {
    pub format: String,
    pub version: u32,
    pub seed: u64,
    pub round: u16,
    pub seq_len: u32,
    pub batch_units: u32,
    pub steps: u64,
    pub pools: Vec<Pool>,
    pub order: PlanOrder,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionInfo>,
}

/// What `Plan::create_round_one` needs.
#[derive(Debug, Clone)]
pub struct RoundOneSpec {
    pub seed: u64,
    pub round: u16,
    pub seq_len: u32,
    pub batch_units: u32,
    pub pools: Vec<Pool>,
    pub exhausted: Exhausted,
    /// Length of the round; by default as long as the pools allow (see [`Exhausted`]).
    pub steps: Option<u64>,
}

#[derive(Debug)]
enum Order {
    Permutation(RoundOne),
    List(ListFile),
}

#[derive(Debug)]
struct ListFile {
    path: PathBuf,
    file: std::fs::File,
    width: u8,
}

/// An open round plan. Cheap to open and to query from many threads (`&self` everywhere).
#[derive(Debug)]
pub struct Plan {
    path: PathBuf,
    header: PlanHeader,
    offsets: Vec<u64>,
    order: Order,
}

/// Units in a dataset of `total_tokens` tokens cut into units of `seq_len + 1` tokens that
/// overlap by one (the target of the last position is the first token of the next unit).
pub fn units_for_tokens(total_tokens: u64, seq_len: u32) -> u64 {
    if seq_len == 0 {
        0
    } else {
        total_tokens.saturating_sub(1) / seq_len as u64
    }
}

/// Units of a token dataset folder, read from its `manifest.json` (`total_tokens`).
pub fn dataset_units(dataset: &Path, seq_len: u32) -> Result<u64> {
    let path = dataset.join("manifest.json");
    let text = fs_err::read_to_string(&path)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: not JSON: {e}", path.display())))?;
    let total = value
        .get("total_tokens")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| {
            Error::Config(format!(
                "{}: no unsigned integer `total_tokens`",
                path.display()
            ))
        })?;
    Ok(units_for_tokens(total, seq_len))
}

impl Plan {
    /// Writes a round-1 plan header (atomically) and opens it.
    pub fn create_round_one(path: &Path, spec: &RoundOneSpec) -> Result<Plan> {
        if spec.batch_units == 0 {
            return Err(Error::Config("batch_units must be at least 1".into()));
        }
        if spec.pools.len() > u16::MAX as usize {
            return Err(Error::Config("at most 65535 pools".into()));
        }
        for pool in &spec.pools {
            if pool.units == 0 {
                return Err(Error::Config(format!("pool `{}` has no units", pool.name)));
            }
            check_held_out(&pool.name, pool.units, &pool.held_out).map_err(Error::Config)?;
        }
        let weights: Vec<f64> = spec.pools.iter().map(|p| p.weight).collect();
        let parts = weight_parts(&weights)?;
        let units: Vec<u64> = spec.pools.iter().map(Pool::drawable).collect();
        let batch = spec.batch_units as u64;
        if let Some((p, share)) = Mixture::new(&parts, batch).pool_under_one_unit() {
            let pool = &spec.pools[p];
            return Err(Error::Config(format!(
                "pool `{}`: weight {} gives {share:.2} units per batch of {batch}; every pool \
                 needs at least 1 (raise its weight or the batch size, or merge small pools)",
                pool.name, pool.weight
            )));
        }
        let limit = match spec.exhausted {
            Exhausted::Stop => RoundOne::steps_until_exhausted(&parts, &units, batch),
            Exhausted::Cycle => u64::MAX,
        };
        let steps = match (spec.steps, spec.exhausted) {
            (Some(steps), _) if steps > limit => {
                return Err(Error::Config(format!(
                    "{steps} steps asked, but a pool runs out after {limit} steps \
                     (use the cycle policy to repeat small pools)"
                )));
            }
            (Some(steps), _) => steps,
            (None, Exhausted::Stop) => limit,
            (None, Exhausted::Cycle) => RoundOne::steps_until_all_seen(&parts, &units, batch),
        };
        if steps == 0 {
            return Err(Error::Config(format!(
                "the pools hold fewer units than one batch of {batch}; no step can be planned"
            )));
        }
        let header = PlanHeader {
            format: PLAN_FORMAT.into(),
            version: PLAN_VERSION,
            seed: spec.seed,
            round: spec.round,
            seq_len: spec.seq_len,
            batch_units: spec.batch_units,
            steps,
            pools: spec.pools.clone(),
            order: PlanOrder::Permutation {
                exhausted: spec.exhausted,
            },
            selection: None,
        };
        write_header(path, &header)?;
        Plan::open(path)
    }

    pub fn open(path: impl AsRef<Path>) -> Result<Plan> {
        let path = path.as_ref().to_path_buf();
        let text = fs_err::read_to_string(&path)?;
        let bad = |message: String| Error::PlanHeader {
            path: path.clone(),
            message,
        };
        let header: PlanHeader = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if header.format != PLAN_FORMAT {
            return Err(bad(format!(
                "format is `{}`, expected `{PLAN_FORMAT}`",
                header.format
            )));
        }
        if header.version != PLAN_VERSION {
            return Err(bad(format!(
                "version {} (this build reads version {PLAN_VERSION})",
                header.version
            )));
        }
        if header.batch_units == 0 || header.pools.is_empty() || header.steps == 0 {
            return Err(bad("batch_units, pools and steps must be non-empty".into()));
        }
        if header.pools.iter().any(|p| p.units == 0) {
            return Err(bad("a pool has no units".into()));
        }
        for pool in &header.pools {
            check_held_out(&pool.name, pool.units, &pool.held_out).map_err(bad)?;
        }
        let mut offsets = Vec::with_capacity(header.pools.len() + 1);
        let mut acc = 0u64;
        offsets.push(0);
        for pool in &header.pools {
            acc = acc
                .checked_add(pool.units)
                .ok_or_else(|| bad("unit counts overflow".into()))?;
            offsets.push(acc);
        }
        let batch = header.batch_units as u64;
        let positions = header
            .steps
            .checked_mul(batch)
            .ok_or_else(|| bad("steps × batch_units overflows".into()))?;
        let order = match &header.order {
            PlanOrder::Permutation { exhausted } => {
                let weights: Vec<f64> = header.pools.iter().map(|p| p.weight).collect();
                let parts = weight_parts(&weights).map_err(|e| bad(e.to_string()))?;
                let units: Vec<u64> = header.pools.iter().map(Pool::drawable).collect();
                // As `create_round_one` refuses: the closed-form apportionment counts a pool's
                // units per batch as its whole share plus or minus one, which needs a share of
                // at least one unit (else a count goes below zero).
                if let Some((p, share)) = Mixture::new(&parts, batch).pool_under_one_unit() {
                    return Err(bad(format!(
                        "pool `{}` gets {share:.2} units per batch of {batch}; every pool needs \
                         at least 1",
                        header.pools[p].name
                    )));
                }
                if *exhausted == Exhausted::Stop {
                    let limit = RoundOne::steps_until_exhausted(&parts, &units, batch);
                    if header.steps > limit {
                        return Err(bad(format!(
                            "{} steps, but the pools run out after {limit}",
                            header.steps
                        )));
                    }
                }
                Order::Permutation(RoundOne::new(
                    header.seed,
                    header.round,
                    batch,
                    header.steps,
                    *exhausted,
                    &header.pools,
                    &parts,
                ))
            }
            PlanOrder::List {
                file,
                id_width,
                units,
                ..
            } => {
                if *id_width != 4 && *id_width != 8 {
                    return Err(bad(format!("id_width {id_width}; expected 4 or 8")));
                }
                if *units != positions {
                    return Err(bad(format!(
                        "{units} listed units is not steps × batch_units = {positions}"
                    )));
                }
                let list_path = path.parent().unwrap_or(Path::new(".")).join(file);
                let (file, list_path) = fs_err::File::open(&list_path)?.into_parts();
                let len = file.metadata()?.len();
                // Checked: a header may list more units than any file could hold.
                let expected = units.checked_mul(u64::from(*id_width));
                if expected != Some(len) {
                    let expected = expected.map_or("more than 2^64".into(), |n| n.to_string());
                    return Err(Error::PlanUnits {
                        path: list_path,
                        message: format!(
                            "{len} bytes, expected {units} ids × {id_width} bytes = {expected}"
                        ),
                    });
                }
                Order::List(ListFile {
                    path: list_path,
                    file,
                    width: *id_width,
                })
            }
        };
        Ok(Plan {
            path,
            header,
            offsets,
            order,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &PlanHeader {
        &self.header
    }

    pub fn pools(&self) -> &[Pool] {
        &self.header.pools
    }

    pub fn round(&self) -> u16 {
        self.header.round
    }

    pub fn seq_len(&self) -> u32 {
        self.header.seq_len
    }

    pub fn batch_units(&self) -> u32 {
        self.header.batch_units
    }

    pub fn num_steps(&self) -> u64 {
        self.header.steps
    }

    /// Plan positions: steps × batch_units.
    pub fn num_positions(&self) -> u64 {
        self.header.steps * self.header.batch_units as u64
    }

    /// Units over all pools; global ids run over `[0, total_units)`.
    pub fn total_units(&self) -> u64 {
        *self.offsets.last().unwrap_or(&0)
    }

    /// The global id of a unit: its pool's offset plus the unit.
    pub fn global_id(&self, unit: UnitRef) -> u64 {
        self.offsets[unit.pool as usize] + unit.unit
    }

    /// The unit of a global id.
    pub fn unit_of_global(&self, id: u64) -> UnitRef {
        let pool = self.offsets.partition_point(|&o| o <= id) - 1;
        UnitRef {
            pool: pool as u16,
            unit: id - self.offsets[pool],
        }
    }

    /// Whether the order is a keyed permutation (round 1) rather than a list file.
    pub fn is_permutation(&self) -> bool {
        matches!(self.order, Order::Permutation(_))
    }

    /// Distinct units the plan trains on (fewer than the positions when the cycle policy
    /// repeats a pool).
    pub fn distinct_units(&self) -> u64 {
        match &self.order {
            Order::Permutation(r) => r.distinct_units(),
            Order::List(_) => self.num_positions(),
        }
    }

    /// The unit at a plan position (`step · batch_units + slot`).
    pub fn unit_at(&self, position: u64) -> Result<UnitRef> {
        if position >= self.num_positions() {
            return Err(Error::StepOutOfRange {
                step: position / self.header.batch_units as u64,
                steps: self.header.steps,
            });
        }
        match &self.order {
            Order::Permutation(r) => Ok(r.unit_at(position)),
            Order::List(list) => {
                let mut ids = [0u64; 1];
                self.read_list(list, position, &mut ids)?;
                self.check_id(list, position, ids[0])?;
                Ok(self.unit_of_global(ids[0]))
            }
        }
    }

    /// The units of step `step`, in order.
    pub fn batch(&self, step: u64) -> Result<Vec<UnitRef>> {
        self.range(step, 0, self.header.batch_units as u64)
    }

    /// Rank `rank`'s slice of step `step`'s batch when `world` data-parallel ranks share it: the
    /// batch is cut into `world` contiguous slices whose sizes differ by at most one (equal when
    /// `world` divides `batch_units`); the slices of all ranks, in rank order, are the batch.
    pub fn rank_slice(&self, step: u64, rank: u32, world: u32) -> Result<Vec<UnitRef>> {
        if rank >= world {
            return Err(Error::BadRank { rank, world });
        }
        let (start, end) = rank_bounds(self.header.batch_units, rank, world);
        self.range(step, start, end)
    }

    /// Whether the unit at `position` was already drawn earlier in the round (only the cycle
    /// policy repeats units). A trainer records one loss per distinct unit: it skips repeats.
    pub fn is_repeat(&self, position: u64) -> bool {
        match &self.order {
            Order::Permutation(r) => position < self.num_positions() && r.is_repeat(position),
            Order::List(_) => false,
        }
    }

    fn range(&self, step: u64, start: u64, end: u64) -> Result<Vec<UnitRef>> {
        if step >= self.header.steps {
            return Err(Error::StepOutOfRange {
                step,
                steps: self.header.steps,
            });
        }
        let first = step * self.header.batch_units as u64;
        match &self.order {
            Order::Permutation(r) => {
                Ok((first + start..first + end).map(|i| r.unit_at(i)).collect())
            }
            Order::List(list) => {
                let mut ids = vec![0u64; (end - start) as usize];
                self.read_list(list, first + start, &mut ids)?;
                let mut out = Vec::with_capacity(ids.len());
                for (i, &id) in ids.iter().enumerate() {
                    self.check_id(list, first + start + i as u64, id)?;
                    out.push(self.unit_of_global(id));
                }
                Ok(out)
            }
        }
    }

    fn read_list(&self, list: &ListFile, position: u64, ids: &mut [u64]) -> Result<()> {
        let width = list.width as usize;
        let mut bytes = vec![0u8; ids.len() * width];
        list.file
            .read_exact_at(&mut bytes, position * width as u64)
            .map_err(|e| Error::PlanUnits {
                path: list.path.clone(),
                message: format!("reading position {position}: {e}"),
            })?;
        for (id, chunk) in ids.iter_mut().zip(bytes.chunks_exact(width)) {
            *id = if width == 4 {
                u32::from_le_bytes(chunk.try_into().expect("4 bytes")) as u64
            } else {
                u64::from_le_bytes(chunk.try_into().expect("8 bytes"))
            };
        }
        Ok(())
    }

    fn check_id(&self, list: &ListFile, position: u64, id: u64) -> Result<()> {
        if id >= self.total_units() {
            return Err(Error::PlanUnits {
                path: list.path.clone(),
                message: format!(
                    "position {position} holds unit id {id}, beyond the {} units of the pools",
                    self.total_units()
                ),
            });
        }
        Ok(())
    }

    /// For the sampler: appends the plan positions of `unit` (none when the plan does not train
    /// on it). Needs a [`Locator`] for list plans.
    pub(crate) fn round_one(&self) -> Option<&RoundOne> {
        match &self.order {
            Order::Permutation(r) => Some(r),
            Order::List(_) => None,
        }
    }
}

/// Slot bounds `[start, end)` of `rank` in a batch of `batch` units shared by `world` ranks.
pub fn rank_bounds(batch: u32, rank: u32, world: u32) -> (u64, u64) {
    let b = batch as u64;
    (
        b * rank as u64 / world as u64,
        b * (rank as u64 + 1) / world as u64,
    )
}

pub(crate) fn write_header(path: &Path, header: &PlanHeader) -> Result<()> {
    let mut text = serde_json::to_string_pretty(header)
        .map_err(|e| Error::Internal(format!("serialising a plan header: {e}")))?;
    text.push('\n');
    Ok(tinyforge_task::write_atomic(path, text.as_bytes())?)
}
