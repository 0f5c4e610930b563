use tinyforge_sampler::{
    Level, ListOrder, LossTableReader, LossTableWriter, Method, SelectConfig, UnitRef,
};

use crate::{single_pool_plan, write_losses};

fn config() -> SelectConfig {
    SelectConfig {
        method: Method::Softmax,
        level: Level::Batch,
        fraction: 0.5,
        temperature: 1.0,
        seed: 1,
        order: ListOrder::Shuffled,
    }
}

#[test]
fn writer_and_reader_round_trip_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("losses.parquet");
    let mut writer = LossTableWriter::create(&path, 3).unwrap();
    let rows = 200_000u64;
    for i in 0..rows {
        writer
            .push(
                UnitRef {
                    pool: (i % 3) as u16,
                    unit: i * 5,
                },
                i as f32 * 0.25,
            )
            .unwrap();
    }
    assert!(!path.exists(), "the table appears only when finished");
    let report = writer.finish().unwrap();
    assert_eq!(report.rows, rows);
    let reader = LossTableReader::open(&path).unwrap();
    assert_eq!(reader.rows(), rows);
    let mut next = 0u64;
    for chunk in reader {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.first_row, next);
        for i in 0..chunk.len() {
            let row = next + i as u64;
            assert_eq!(chunk.units.value(i), row * 5);
            assert_eq!(chunk.losses.value(i), row as f32 * 0.25);
            assert_eq!(chunk.pool(i), (row % 3) as u16);
            assert_eq!(chunk.rounds.as_ref().unwrap().value(i), 3);
        }
        next += chunk.len() as u64;
    }
    assert_eq!(next, rows);
}

#[test]
fn non_finite_losses_are_refused_and_abandoned_writers_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.parquet");
    let mut writer = LossTableWriter::create(&path, 1).unwrap();
    writer.push(4u64, 1.0).unwrap();
    let err = writer.push(5u64, f32::NAN).unwrap_err().to_string();
    assert!(err.contains("unit 5"), "{err}");
    drop(writer);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_table_of_another_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-losses.parquet");
    std::fs::write(&path, b"PAR1 this is not parquet").unwrap();
    let Err(err) = LossTableReader::open(&path) else {
        panic!("a text file opened as a loss table")
    };
    assert!(err.to_string().contains("not-losses.parquet"), "{err}");
}

#[test]
fn missing_and_duplicated_units_are_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let plan = single_pool_plan(dir.path(), 100, 10, 9);
    let out = dir.path().join("round2.json");
    let progress = tinyforge_task::Silent;

    // Missing: every unit but the one at position 37.
    let skipped = plan.unit_at(37).unwrap();
    let path = dir.path().join("missing.parquet");
    let mut writer = LossTableWriter::create(&path, 1).unwrap();
    for position in 0..plan.num_positions() {
        let unit = plan.unit_at(position).unwrap();
        if unit != skipped {
            writer.push(unit, 1.0).unwrap();
        }
    }
    writer.finish().unwrap();
    let err = tinyforge_sampler::select_next_round(&plan, &[path], &out, &config(), &progress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("unit {} of pool 0", skipped.unit)) && err.contains("position 37"),
        "{err}"
    );

    // Duplicated: a full table, then the same unit once more in a second table.
    let full = write_losses(&plan, &dir.path().join("full.parquet"), |_, u| u as f32);
    let extra = dir.path().join("extra.parquet");
    let mut writer = LossTableWriter::create(&extra, 1).unwrap();
    writer.push(42u64, 0.5).unwrap();
    writer.finish().unwrap();
    let err = tinyforge_sampler::select_next_round(
        &plan,
        &[full.clone(), extra],
        &out,
        &config(),
        &progress,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("extra.parquet, row 0: unit 42 of pool 0 is listed twice"),
        "{err}"
    );

    // A unit beyond the pool.
    let beyond = dir.path().join("beyond.parquet");
    let mut writer = LossTableWriter::create(&beyond, 1).unwrap();
    writer.push(100u64, 0.5).unwrap();
    writer.finish().unwrap();
    let err = tinyforge_sampler::select_next_round(&plan, &[beyond], &out, &config(), &progress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unit 100 of pool 0 is not part of the plan"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "no plan is written when the losses are wrong"
    );
}
