//! Fuzzing the plan and loss-table readers: a round-1 plan, the round-2 plan that selection
//! writes from it (a header and a units file) and a loss table, all made by the crate's own
//! writers, then one file mutated (bytes flipped, inserted, deleted, cut, repeated; numbers
//! of a plan header set to edge values) or replaced by random bytes. Whatever the damage:
//!
//! 1. opening a plan and reading its batches, reading a loss table and selecting the next
//!    round from it never panic;
//! 2. every error names the file it is about (and the row or position where the format has
//!    one), or, for losses missing from every table, the unit and its plan position;
//! 3. a plan that opens only yields units of its pools, never a held-out one;
//! 4. memory stays within a stated bound of the files' sizes and the plan's batch.
//!
//! Each test runs in a process of its own ([`in_own_process`]), where a counting allocator
//! measures it alone.

use std::path::Path;

use proptest::prelude::*;
use tinyforge_sampler::{
    Error, Exhausted, Level, ListOrder, LossTableReader, Method, Plan, Pool, RoundOneSpec,
    SelectConfig, select_next_round,
};
use tinyforge_testkit::{Mutation, fuzz_config, in_own_process, mutate, peak_during};

use crate::write_losses;

/// Cases per test: a few seconds each in the dev profile.
const CASES: u32 = 128;
/// The cases are the same on every run (CI must not flake on a newly drawn input); set
/// `PROPTEST_RNG_SEED` (and `PROPTEST_CASES`) to explore others.
const SEED: u64 = 0x5a3b_1e55;

/// Memory a plan may take whatever its header says: the parsed header's fixed part, the
/// mixture and permutation state of a few pools, the open units file.
const PLAN_FIXED: usize = 64 << 10;
/// Per byte of header: its text, then the text parsed into a `PlanHeader`, where a held-out
/// id of two bytes (`1,`) is a u64 of 8 in a vector that may have doubled its room while it
/// grew (16), and round 1's map around the held-out units keeps its own copy (8 more); a pool
/// is some dozens of bytes of JSON and takes a few hundred of state.
const PLAN_PER_HEADER_BYTE: usize = 32;
/// Per unit of a batch that is read: the ids as read and as `UnitRef`s.
const PLAN_PER_BATCH_UNIT: usize = 64;
/// Batches are read only up to this size: a batch is the caller's to hold, and a header may
/// rightly declare batches of billions of units.
const READ_BATCH_LIMIT: u32 = 4096;

/// Memory a loss-table read and a selection may take whatever the table holds: the Parquet
/// footer and reader state, one chunk of decoded columns (`CHUNK_ROWS` = 65,536 rows of 16
/// bytes, twice while a chunk is decoded and handed on), selection's per-unit tables for the
/// plan's few hundred units and its bounded channels of chunks between its three stages.
const LOSS_FIXED: usize = 12 << 20;
/// Per byte of the table file: Parquet holds at most a page or a column chunk of it at once,
/// decompressed; a generous factor, since the test's tables are a few kilobytes.
const LOSS_PER_FILE_BYTE: usize = 16;

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(any::<(u8, u32, u32, u16)>(), 1..4)
        .prop_map(|m| m.into_iter().map(Mutation::pick).collect())
}

fn select_config() -> SelectConfig {
    SelectConfig {
        method: Method::Softmax,
        level: Level::Batch,
        fraction: 0.5,
        temperature: 1.0,
        seed: 3,
        order: ListOrder::Kept,
    }
}

/// The files of a two-pool round 1 (one pool with held-out units), its loss table and the
/// round 2 selected from it, by name, and the folder they were written in.
struct Original {
    files: Vec<(String, Vec<u8>)>,
}

const ROUND_ONE: &str = "round1.json";
const LOSSES: &str = "losses.parquet";
const ROUND_TWO: &str = "round2.json";
/// The units file selection writes beside `round2.json`.
const ROUND_TWO_UNITS: &str = "round2.units";

fn original() -> Original {
    let dir = tempfile::tempdir().unwrap();
    let spec = RoundOneSpec {
        seed: 9,
        round: 1,
        seq_len: 16,
        batch_units: 8,
        pools: vec![
            Pool {
                name: "en".into(),
                dataset: Some("tokens/en".into()),
                units: 300,
                weight: 0.7,
                held_out: vec![3, 50, 299],
            },
            Pool {
                name: "zh".into(),
                dataset: None,
                units: 120,
                weight: 0.3,
                held_out: vec![],
            },
        ],
        exhausted: Exhausted::Cycle,
        steps: Some(40),
    };
    let plan = Plan::create_round_one(&dir.path().join(ROUND_ONE), &spec).unwrap();
    write_losses(&plan, &dir.path().join(LOSSES), |pool, unit| {
        (pool as u64 * 7 + unit % 13) as f32 / 4.0
    });
    let progress = tinyforge_task::Silent;
    select_next_round(
        &plan,
        &[dir.path().join(LOSSES)],
        &dir.path().join(ROUND_TWO),
        &select_config(),
        &progress,
    )
    .unwrap();
    let files = [ROUND_ONE, LOSSES, ROUND_TWO, ROUND_TWO_UNITS]
        .iter()
        .map(|name| {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            ((*name).to_owned(), bytes)
        })
        .collect();
    Original { files }
}

/// Damage to one file.
#[derive(Debug, Clone)]
enum Damage {
    /// Byte mutations of file `file` (of the four above).
    Bytes { file: u8, mutations: Vec<Mutation> },
    /// A number of a plan header set to an edge value.
    Number {
        round_two: bool,
        field: u8,
        value: u64,
    },
    /// A file replaced by random bytes.
    Random { file: u8, bytes: Vec<u8> },
}

fn edge_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(7),
        Just(u16::MAX as u64 + 1),
        Just(u32::MAX as u64),
        Just(u32::MAX as u64 + 1),
        Just(1 << 53),
        Just(u64::MAX),
        0u64..1000,
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => (any::<u8>(), mutations()).prop_map(|(file, mutations)| Damage::Bytes { file, mutations }),
        2 => (any::<bool>(), any::<u8>(), edge_value()).prop_map(|(round_two, field, value)| {
            Damage::Number { round_two, field, value }
        }),
        1 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..400))
            .prop_map(|(file, bytes)| Damage::Random { file, bytes }),
    ]
}

/// The fields of a plan header that hold numbers, as JSON pointers.
const NUMBERS: &[&str] = &[
    "/version",
    "/seed",
    "/round",
    "/seq_len",
    "/batch_units",
    "/steps",
    "/pools/0/units",
    "/pools/1/units",
    "/pools/0/weight",
    "/pools/1/weight",
    "/pools/0/held_out/0",
    "/pools/0/held_out/2",
    "/order/units",
    "/order/id_width",
    "/selection/candidates",
];

fn damaged(original: &Original, damage: &Damage) -> Vec<(String, Vec<u8>)> {
    let mut files = original.files.clone();
    let count = files.len();
    match damage {
        Damage::Bytes { file, mutations } => {
            let file = *file as usize % count;
            files[file].1 = mutate(files[file].1.clone(), mutations, 1 << 20);
        }
        Damage::Number {
            round_two,
            field,
            value,
        } => {
            let file = if *round_two { 2 } else { 0 };
            let mut header: serde_json::Value = serde_json::from_slice(&files[file].1).unwrap();
            let pointer = NUMBERS[*field as usize % NUMBERS.len()];
            if let Some(slot) = header.pointer_mut(pointer) {
                *slot = (*value).into();
            }
            files[file].1 = serde_json::to_vec_pretty(&header).unwrap();
        }
        Damage::Random { file, bytes } => {
            files[*file as usize % count].1 = bytes.clone();
        }
    }
    files
}

/// Whether an error names one of the files in `dir`, or, for losses missing from every table,
/// the unit it misses.
fn names_its_place(error: &Error, dir: &Path) -> bool {
    let text = error.to_string();
    text.contains(&dir.display().to_string())
        || matches!(error, Error::MissingUnits { .. }) && text.contains("plan position")
}

/// Opens a plan and reads it as a trainer does: the first and last batches, a rank's slice,
/// units at scattered positions. Checks every unit against the plan's pools.
fn read_plan(path: &Path, dir: &Path) -> Result<(), TestCaseError> {
    let plan = match Plan::open(path) {
        Ok(plan) => plan,
        Err(error) => {
            prop_assert!(names_its_place(&error, dir), "{error}");
            return Ok(());
        }
    };
    let check = |unit: tinyforge_sampler::UnitRef| -> Result<(), TestCaseError> {
        let pool = plan.pools().get(unit.pool as usize);
        prop_assert!(pool.is_some(), "unit {:?} of no pool", unit);
        let pool = pool.unwrap();
        prop_assert!(unit.unit < pool.units, "unit {:?} beyond its pool", unit);
        prop_assert!(
            pool.held_out.binary_search(&unit.unit).is_err(),
            "held-out unit {:?} drawn",
            unit
        );
        Ok(())
    };
    let steps = plan.num_steps();
    let _ = (plan.distinct_units(), plan.total_units());
    if plan.batch_units() <= READ_BATCH_LIMIT {
        for step in [0, steps / 2, steps - 1] {
            match plan.batch(step) {
                Ok(units) => units.into_iter().try_for_each(check)?,
                Err(error) => prop_assert!(names_its_place(&error, dir), "{error}"),
            }
        }
        match plan.rank_slice(steps - 1, 1, 3) {
            Ok(units) => units.into_iter().try_for_each(check)?,
            Err(error) => prop_assert!(names_its_place(&error, dir), "{error}"),
        }
    }
    let positions = plan.num_positions();
    for position in [0, 1, positions / 3, positions - 1] {
        if position >= positions {
            continue;
        }
        let _ = plan.is_repeat(position);
        match plan.unit_at(position) {
            Ok(unit) => check(unit)?,
            Err(error) => prop_assert!(names_its_place(&error, dir), "{error}"),
        }
    }
    Ok(())
}

fn write_all(files: &[(String, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn check_plans(original: &Original, damage: &Damage) -> Result<(), TestCaseError> {
    let files = damaged(original, damage);
    let dir = write_all(&files);
    for (header, units) in [(ROUND_ONE, None), (ROUND_TWO, Some(ROUND_TWO_UNITS))] {
        let path = dir.path().join(header);
        let header_bytes = files.iter().find(|(n, _)| n == header).unwrap().1.len();
        let (read, peak) = peak_during(|| read_plan(&path, dir.path()));
        read?;
        // The batch read, when the header still parses: what the header declares.
        let batch = Plan::open(&path).map_or(0, |p| p.batch_units().min(READ_BATCH_LIMIT));
        let bound =
            PLAN_FIXED + PLAN_PER_HEADER_BYTE * header_bytes + PLAN_PER_BATCH_UNIT * batch as usize;
        prop_assert!(
            peak <= bound,
            "{} took {} bytes at once, over its bound of {} (units file {:?})",
            header,
            peak,
            bound,
            units
        );
    }
    Ok(())
}

/// Reads a loss table chunk by chunk, then selects the next round from it.
fn read_losses(dir: &Path) -> Result<(), TestCaseError> {
    let table = dir.join(LOSSES);
    match LossTableReader::open(&table) {
        Ok(reader) => {
            prop_assert_eq!(reader.path(), table.as_path());
            let mut next = 0;
            for chunk in reader {
                match chunk {
                    Ok(chunk) => {
                        prop_assert_eq!(chunk.first_row, next);
                        next += chunk.len() as u64;
                    }
                    Err(error) => {
                        prop_assert!(names_its_place(&error, dir), "{error}");
                        break;
                    }
                }
            }
        }
        Err(error) => prop_assert!(names_its_place(&error, dir), "{error}"),
    }
    // The round-1 plan is undamaged here unless the damage hit it: then it may not open.
    let Ok(plan) = Plan::open(dir.join(ROUND_ONE)) else {
        return Ok(());
    };
    let out = dir.join("next.json");
    let progress = tinyforge_task::Silent;
    match select_next_round(&plan, &[table], &out, &select_config(), &progress) {
        Ok(_) => {}
        Err(error) => prop_assert!(names_its_place(&error, dir), "{error}"),
    }
    Ok(())
}

/// Damage to the loss table alone (file 1).
fn loss_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => mutations().prop_map(|mutations| Damage::Bytes { file: 1, mutations }),
        1 => prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|bytes| Damage::Random { file: 1, bytes }),
    ]
}

/// What Parquet says when a page decompressed to less than its header claimed.
const CLAIMED_PAGE_SIZE: &str = "Actual decompressed size doesn't match the expected one";

fn check_losses(original: &Original, damage: &Damage) -> Result<(), TestCaseError> {
    let files = damaged(original, damage);
    let dir = write_all(&files);
    let (read, peak) = peak_during(|| read_losses(dir.path()));
    read?;
    // Parquet reserves the uncompressed size a page header claims (up to 2 GiB) before it
    // decompresses the page, and a damaged header claims any size: four bytes inserted into a
    // 2 KiB table reserved 1.1 GB. The reservation is address space the short page never
    // touches, and the reader cannot see a page header before Parquet does, so a case that
    // ends in that error is held to the other properties only (see
    // `a_page_claiming_a_huge_size_is_an_error`).
    let claimed = LossTableReader::open(dir.path().join(LOSSES))
        .and_then(|mut reader| reader.try_for_each(|chunk| chunk.map(|_| ())))
        .is_err_and(|error| error.to_string().contains(CLAIMED_PAGE_SIZE));
    if claimed {
        return Ok(());
    }
    let bound = LOSS_FIXED + LOSS_PER_FILE_BYTE * files[1].1.len();
    prop_assert!(
        peak <= bound,
        "reading the loss table and selecting took {} bytes at once, over the bound of {}",
        peak,
        bound
    );
    Ok(())
}

#[test]
fn damaged_plans_fail_by_name_within_bounds() {
    in_own_process("fuzz::damaged_plans_fail_by_name_within_bounds", || {
        let original = original();
        proptest!(fuzz_config(CASES, SEED), |(damage in damage())| {
            check_plans(&original, &damage)?;
        });
    });
}

#[test]
fn damaged_loss_tables_fail_by_name_within_bounds() {
    in_own_process(
        "fuzz::damaged_loss_tables_fail_by_name_within_bounds",
        || {
            let original = original();
            proptest!(fuzz_config(CASES, SEED), |(damage in loss_damage())| {
                check_losses(&original, &damage)?;
            });
        },
    );
}

/// The undamaged files pass every check (the properties above are not vacuous).
#[test]
fn the_originals_read_back_within_bounds() {
    in_own_process("fuzz::the_originals_read_back_within_bounds", || {
        let original = original();
        let damage = Damage::Bytes {
            file: 0,
            mutations: Vec::new(),
        };
        check_plans(&original, &damage).unwrap();
        check_losses(&original, &damage).unwrap();
        let dir = write_all(&original.files);
        for name in [ROUND_ONE, ROUND_TWO] {
            Plan::open(dir.path().join(name)).unwrap();
        }
        let rows: usize = LossTableReader::open(dir.path().join(LOSSES))
            .unwrap()
            .map(|chunk| chunk.unwrap().len())
            .sum();
        assert!(rows > 200, "{rows} rows");
    });
}

// Inputs that once broke a reader, kept as cases of their own.

/// The loss table with one mutation; the error its reading ends with.
fn loss_table_error(mutation: Mutation) -> String {
    let original = original();
    let damage = Damage::Bytes {
        file: 1,
        mutations: vec![mutation],
    };
    check_losses(&original, &damage).unwrap();
    let dir = write_all(&damaged(&original, &damage));
    let error = LossTableReader::open(dir.path().join(LOSSES))
        .and_then(|mut reader| reader.try_for_each(|chunk| chunk.map(|_| ())))
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains(LOSSES), "{message}");
    message
}

/// A flipped bit in a page of the byte-stream-split `loss` column: Parquet's decoder indexed
/// past its buffer and panicked, in the sampler's reader thread. Now an error naming the rows.
#[test]
fn a_damaged_loss_page_is_an_error_not_a_panic() {
    in_own_process("fuzz::a_damaged_loss_page_is_an_error_not_a_panic", || {
        let message = loss_table_error(Mutation::Flip {
            at: 2381885091,
            bit: 1,
        });
        assert!(message.contains("decoding rows from row 320"), "{message}");
    });
}

/// A flipped bit in the Arrow schema the writer embeds in the footer: arrow-ipc panicked on
/// an integer type of width 0 while the reader opened. That schema is no longer read.
#[test]
fn a_damaged_embedded_schema_is_not_read() {
    in_own_process("fuzz::a_damaged_embedded_schema_is_not_read", || {
        let original = original();
        let damage = Damage::Bytes {
            file: 1,
            mutations: vec![Mutation::Flip {
                at: 2120003375,
                bit: 1,
            }],
        };
        check_losses(&original, &damage).unwrap();
    });
}

/// A byte of the footer set to 0xFF made a column chunk's offset negative: Parquet asserted
/// (a panic) when it reached the chunk. Now refused when the table opens, by row group and
/// column.
#[test]
fn a_column_chunk_outside_the_file_is_refused_by_name() {
    in_own_process(
        "fuzz::a_column_chunk_outside_the_file_is_refused_by_name",
        || {
            let message = loss_table_error(Mutation::Set {
                at: 4191098693,
                byte: 255,
            });
            assert!(
                message.contains("row group 0, column `loss`: -384 bytes at offset 584"),
                "{message}"
            );
        },
    );
}

/// Pools repeated in a round-1 header until each one's share of a batch fell under one unit:
/// the closed-form count of a pool's units in a batch went below zero (a subtraction
/// overflow) on the first read. `Plan::open` now refuses such a header, as creating one does.
#[test]
fn a_header_with_a_pool_under_one_unit_per_batch_is_refused() {
    let original = original();
    let damage = Damage::Bytes {
        file: 0,
        mutations: vec![Mutation::Repeat {
            at: 2104361495,
            len: 167,
            times: 18,
        }],
    };
    let dir = write_all(&damaged(&original, &damage));
    let message = Plan::open(dir.path().join(ROUND_ONE))
        .unwrap_err()
        .to_string();
    assert!(message.contains(ROUND_ONE), "{message}");
    assert!(message.contains("units per batch of 8"), "{message}");
}

/// A list plan of 2^61 positions of 8-byte ids: the size its units file must have overflowed
/// (a panic) before the file's size was compared with it.
#[test]
fn a_list_plan_too_large_for_any_file_is_refused() {
    let original = original();
    let mut header: serde_json::Value = serde_json::from_slice(&original.files[2].1).unwrap();
    header["steps"] = (1u64 << 58).into();
    header["batch_units"] = 8.into();
    header["order"]["units"] = (1u64 << 61).into();
    header["order"]["id_width"] = 8.into();
    let mut files = original.files.clone();
    files[2].1 = serde_json::to_vec(&header).unwrap();
    let dir = write_all(&files);
    let message = Plan::open(dir.path().join(ROUND_TWO))
        .unwrap_err()
        .to_string();
    assert!(message.contains(ROUND_TWO_UNITS), "{message}");
}

/// Four bytes inserted into a page header of the loss table made it claim 1.1 GB uncompressed:
/// Parquet reserves that much before it decompresses the page (not bounded by the reader: see
/// `check_losses`). The read ends in an error that names the table.
#[test]
fn a_page_claiming_a_huge_size_is_an_error() {
    in_own_process("fuzz::a_page_claiming_a_huge_size_is_an_error", || {
        let message = loss_table_error(Mutation::Insert {
            at: 3694676813,
            byte: 204,
            count: 4,
        });
        assert!(message.contains(CLAIMED_PAGE_SIZE), "{message}");
    });
}
