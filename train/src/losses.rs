//! Loss tables (the contract in DESIGN.md: Parquet `unit_id` u64, `loss` f32, `round` u16), written
//! as parts so that a resumed run can drop exactly the records past its checkpoint.
//!
//! Training writes one part per checkpoint interval, `part-<first step>-<last step>.parquet`
//! (steps of the whole run); on resume from step s every part whose last step is past s is
//! deleted, so each unit trained before the checkpoint appears once and the redone steps write
//! theirs again. Scoring writes one part per round of scoring, `part-00000000-<steps>.parquet`.

use std::path::{Path, PathBuf};

use arrow::array::{Float32Array, UInt64Array};

use crate::error::{Error, Result};

/// Buffers (unit, loss) records between checkpoints and writes them as Parquet parts.
pub struct LossRecorder {
    dir: PathBuf,
    round: u16,
    first_step: u64,
    units: Vec<u64>,
    losses: Vec<f32>,
}

impl LossRecorder {
    /// Open `dir` for round `round` (0-based) resuming after global step `done_steps`: parts
    /// that end after it are removed (their steps will be trained again).
    pub fn open(dir: &Path, round: u16, done_steps: u64) -> Result<Self> {
        fs_err::create_dir_all(dir).map_err(Error::Io)?;
        for entry in fs_err::read_dir(dir).map_err(Error::Io)? {
            let entry = entry.map_err(Error::Io)?;
            let name = entry.file_name().to_string_lossy().to_string();
            let last = name
                .strip_suffix(".parquet")
                .and_then(|s| s.rsplit('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if name.starts_with('.') || last.is_some_and(|l| l > done_steps) {
                fs_err::remove_file(entry.path()).map_err(Error::Io)?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            round,
            first_step: done_steps + 1,
            units: vec![],
            losses: vec![],
        })
    }

    pub fn record(&mut self, units: &[u64], losses: &[f32]) {
        self.units.extend_from_slice(units);
        self.losses.extend_from_slice(losses);
    }

    /// Write the buffered records as the part ending at global step `last_step`.
    pub fn flush(&mut self, last_step: u64) -> Result<()> {
        if self.units.is_empty() {
            self.first_step = last_step + 1;
            return Ok(());
        }
        let name = format!("part-{:08}-{:08}.parquet", self.first_step, last_step);
        write_table(&self.dir.join(name), &self.units, &self.losses, self.round)?;
        self.units.clear();
        self.losses.clear();
        self.first_step = last_step + 1;
        Ok(())
    }
}

/// Write one loss table file through tinyforge-sampler's writer (the contract's schema; the file
/// appears under its name only when complete).
pub fn write_table(path: &Path, units: &[u64], losses: &[f32], round: u16) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(Error::Io)?;
    }
    let err = |source| Error::LossTable {
        path: path.to_owned(),
        source,
    };
    let mut w = tinyforge_sampler::LossTableWriter::create(path, round).map_err(err)?;
    for (&u, &l) in units.iter().zip(losses) {
        w.push(u, l).map_err(err)?;
    }
    w.finish().map_err(err)?;
    Ok(())
}

/// Read every part of a loss-table folder (or one file): (unit, loss) pairs in file order.
pub fn read_table(path: &Path) -> Result<Vec<(u64, f32)>> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut files: Vec<PathBuf> = if path.is_dir() {
        fs_err::read_dir(path)
            .map_err(Error::Io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                n.ends_with(".parquet") && !n.starts_with('.')
            })
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    let mut out = vec![];
    for f in files {
        let file = fs_err::File::open(&f).map_err(Error::Io)?.into_parts().0;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| Error::Data(format!("{}: {e}", f.display())))?;
        for batch in reader {
            let batch = batch.map_err(|e| Error::Data(format!("{}: {e}", f.display())))?;
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::Data(format!("{}: no column {name}", f.display())))
            };
            let u = col("unit_id")?
                .as_any()
                .downcast_ref::<UInt64Array>()
                .cloned();
            let l = col("loss")?
                .as_any()
                .downcast_ref::<Float32Array>()
                .cloned();
            let (Some(u), Some(l)) = (u, l) else {
                return Err(Error::Data(format!(
                    "{}: unit_id must be u64 and loss f32",
                    f.display()
                )));
            };
            out.extend(u.values().iter().copied().zip(l.values().iter().copied()));
        }
    }
    Ok(out)
}
