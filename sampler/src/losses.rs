//! Loss tables: Parquet files of (`unit_id` u64, `loss` f32, `round` u16, `pool` u16), one row
//! per unit, written by training and scoring, read back by the sampler one row group at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array, RecordBatch, UInt16Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::plan::UnitRef;

/// Rows per Parquet row group: big enough to compress well, small enough that a reader holds
/// only a few MB at a time.
pub const ROW_GROUP_ROWS: usize = 1 << 20;
/// Rows buffered before they are handed to the Parquet encoder.
const CHUNK_ROWS: usize = 1 << 16;

pub fn loss_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("unit_id", DataType::UInt64, false),
        Field::new("loss", DataType::Float32, false),
        Field::new("round", DataType::UInt16, false),
        Field::new("pool", DataType::UInt16, false),
    ]))
}

/// Streams (unit, loss) rows into a loss table. The file appears under its name only when
/// [`LossTableWriter::finish`] succeeds; until then it is a hidden temporary beside it.
pub struct LossTableWriter {
    path: PathBuf,
    tmp: PathBuf,
    round: u16,
    writer: Option<ArrowWriter<fs_err::File>>,
    units: Vec<u64>,
    losses: Vec<f32>,
    pools: Vec<u16>,
    rows: u64,
}

/// What a finished loss table holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LossTableReport {
    pub path: PathBuf,
    pub rows: u64,
    pub round: u16,
}

impl LossTableWriter {
    /// Starts a loss table for round `round` at `path`.
    pub fn create(path: impl AsRef<Path>, round: u16) -> Result<LossTableWriter> {
        let path = path.as_ref().to_path_buf();
        let tmp = tinyforge_task::temp_path(&path);
        let file = fs_err::File::create(&tmp)?;
        // Unit ids of a round arrive in plan order, which is random: delta coding gains little,
        // so plain + zstd. Losses are noise in the low mantissa bits: byte-stream-split groups
        // the compressible exponent bytes. The round and pool columns are constant runs.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1")))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled(ColumnPath::from("round"), true)
            .set_column_dictionary_enabled(ColumnPath::from("pool"), true)
            .set_column_encoding(ColumnPath::from("loss"), Encoding::BYTE_STREAM_SPLIT)
            .build();
        let writer = ArrowWriter::try_new(file, loss_schema(), Some(props))
            .map_err(|e| Error::parquet(&tmp, e))?;
        Ok(LossTableWriter {
            path,
            tmp,
            round,
            writer: Some(writer),
            units: Vec::with_capacity(CHUNK_ROWS),
            losses: Vec::with_capacity(CHUNK_ROWS),
            pools: Vec::with_capacity(CHUNK_ROWS),
            rows: 0,
        })
    }

    /// Records the loss of one unit (a `u64` means a unit of pool 0). A NaN or infinite loss is
    /// refused: it would poison the softmax of the next selection.
    pub fn push(&mut self, unit: impl Into<UnitRef>, loss: f32) -> Result<()> {
        let unit = unit.into();
        if !loss.is_finite() {
            return Err(Error::NonFiniteLossPushed {
                pool: unit.pool as u32,
                unit: unit.unit,
                loss,
            });
        }
        self.units.push(unit.unit);
        self.losses.push(loss);
        self.pools.push(unit.pool);
        self.rows += 1;
        if self.units.len() >= CHUNK_ROWS {
            self.flush_chunk()?;
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn flush_chunk(&mut self) -> Result<()> {
        if self.units.is_empty() {
            return Ok(());
        }
        let n = self.units.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(std::mem::take(&mut self.units))),
            Arc::new(Float32Array::from(std::mem::take(&mut self.losses))),
            Arc::new(UInt16Array::from(vec![self.round; n])),
            Arc::new(UInt16Array::from(std::mem::take(&mut self.pools))),
        ];
        let batch =
            RecordBatch::try_new(loss_schema(), columns).map_err(|e| Error::arrow(&self.tmp, e))?;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::Internal("writer finished".into()))?;
        writer
            .write(&batch)
            .map_err(|e| Error::parquet(&self.tmp, e))?;
        self.units.reserve(CHUNK_ROWS);
        self.losses.reserve(CHUNK_ROWS);
        self.pools.reserve(CHUNK_ROWS);
        Ok(())
    }

    /// Writes the last rows and the footer, then renames the file into place.
    pub fn finish(mut self) -> Result<LossTableReport> {
        self.flush_chunk()?;
        let writer = self
            .writer
            .take()
            .ok_or_else(|| Error::Internal("writer finished".into()))?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::parquet(&self.tmp, e))?;
        file.sync_all()?;
        drop(file);
        fs_err::rename(&self.tmp, &self.path)?;
        Ok(LossTableReport {
            path: self.path.clone(),
            rows: self.rows,
            round: self.round,
        })
    }
}

impl Drop for LossTableWriter {
    fn drop(&mut self) {
        // An abandoned writer leaves no partial table behind.
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// One chunk of rows of a loss table.
#[derive(Debug, Clone)]
pub struct LossChunk {
    /// Row number (0-based, within its file) of the chunk's first row.
    pub first_row: u64,
    pub units: UInt64Array,
    pub losses: Float32Array,
    /// Absent in tables written without pools: every unit is of pool 0.
    pub pools: Option<UInt16Array>,
    pub rounds: Option<UInt16Array>,
}

impl LossChunk {
    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    #[inline]
    pub fn pool(&self, i: usize) -> u16 {
        self.pools.as_ref().map_or(0, |p| p.value(i))
    }
}

/// Streams a loss table in chunks; memory is one row group at a time, whatever the file size.
pub struct LossTableReader {
    path: PathBuf,
    rows: u64,
    next_row: u64,
    reader: ParquetRecordBatchReader,
    /// Set by the first error: the reader stops there (after a panic its state is unknown).
    failed: bool,
}

impl LossTableReader {
    pub fn open(path: impl AsRef<Path>) -> Result<LossTableReader> {
        let path = path.as_ref().to_path_buf();
        let file = fs_err::File::open(&path)?;
        let file_len = file.metadata()?.len();
        // The column types come from the Parquet schema, which says all a loss table needs
        // (unsigned 64 and 16-bit integers, floats); the Arrow schema the writer embeds is
        // skipped, because its decoder panics on a damaged one.
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let builder = guarded(&path, "reading the footer", || {
            ParquetRecordBatchReaderBuilder::try_new_with_options(file.into_parts().0, options)
                .map_err(|e| Error::parquet(&path, e))
        })?;
        check_column_chunks(builder.metadata(), file_len, &path)?;
        let schema = builder.schema().clone();
        let bad = |message: String| Error::LossSchema {
            path: path.clone(),
            message,
        };
        let expect = |name: &str, ty: DataType, required: bool| -> Result<()> {
            match schema.field_with_name(name) {
                Ok(f) if *f.data_type() == ty => Ok(()),
                Ok(f) => Err(bad(format!(
                    "column `{name}` is {}, expected {ty}",
                    f.data_type()
                ))),
                Err(_) if required => Err(bad(format!("no column `{name}` ({ty})"))),
                Err(_) => Ok(()),
            }
        };
        expect("unit_id", DataType::UInt64, true)?;
        expect("loss", DataType::Float32, true)?;
        expect("round", DataType::UInt16, false)?;
        expect("pool", DataType::UInt16, false)?;
        let rows = builder.metadata().file_metadata().num_rows() as u64;
        let reader = guarded(&path, "reading the footer", || {
            builder
                .with_batch_size(CHUNK_ROWS)
                .build()
                .map_err(|e| Error::parquet(&path, e))
        })?;
        Ok(LossTableReader {
            path,
            rows,
            next_row: 0,
            reader,
            failed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows in the file, from its footer.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// Runs a call into the Parquet reader, which panics on some damaged files (an index past a
/// page's buffer, an assertion on a footer's offsets): bad data, so the panic becomes an error
/// that names the file and what was being read.
fn guarded<T>(path: &Path, doing: &str, call: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|payload| {
        let message = tinyforge_task::panic_message(&*payload);
        let source = parquet::errors::ParquetError::General(format!(
            "the Parquet reader failed {doing}, on damaged data: {message}"
        ));
        Err(Error::parquet(path, source))
    })
}

/// Checks that every column chunk the footer lists lies inside the file. The Parquet reader
/// asserts it (a panic, on a damaged footer) only when it reaches the chunk.
fn check_column_chunks(
    metadata: &parquet::file::metadata::ParquetMetaData,
    file_len: u64,
    path: &Path,
) -> Result<()> {
    for (group, row_group) in metadata.row_groups().iter().enumerate() {
        for chunk in row_group.columns() {
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or_else(|| chunk.data_page_offset());
            let len = chunk.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(start, len)| start.checked_add(len))
                .is_some_and(|end| end <= file_len);
            if !inside {
                let message = format!(
                    "row group {group}, column `{}`: {len} bytes at offset {start} are not \
                     inside the file of {file_len} bytes (a damaged footer)",
                    chunk.column_path().string()
                );
                let source = parquet::errors::ParquetError::General(message);
                return Err(Error::parquet(path, source));
            }
        }
    }
    Ok(())
}

impl Iterator for LossTableReader {
    type Item = Result<LossChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let at = format!("decoding rows from row {}", self.next_row);
        let next = guarded(&self.path, &at, || {
            self.reader
                .next()
                .transpose()
                .map_err(|e| Error::arrow(&self.path, e))
        });
        let batch = match next {
            Ok(batch) => batch?,
            Err(error) => {
                self.failed = true;
                return Some(Err(error));
            }
        };
        let column = |name: &str| batch.column_by_name(name).cloned();
        let first_row = self.next_row;
        self.next_row += batch.num_rows() as u64;
        let units =
            column("unit_id").and_then(|c| c.as_any().downcast_ref::<UInt64Array>().cloned());
        let losses =
            column("loss").and_then(|c| c.as_any().downcast_ref::<Float32Array>().cloned());
        let pools = column("pool").and_then(|c| c.as_any().downcast_ref::<UInt16Array>().cloned());
        let rounds =
            column("round").and_then(|c| c.as_any().downcast_ref::<UInt16Array>().cloned());
        let (Some(units), Some(losses)) = (units, losses) else {
            return Some(Err(Error::Internal(
                "loss table columns vanished after the schema check".into(),
            )));
        };
        let null_row = [units.nulls(), losses.nulls()]
            .into_iter()
            .flatten()
            .find_map(|n| (0..n.len()).find(|&i| n.is_null(i)));
        if let Some(i) = null_row {
            return Some(Err(Error::LossSchema {
                path: self.path.clone(),
                message: format!("row {}: null unit_id or loss", first_row + i as u64),
            }));
        }
        Some(Ok(LossChunk {
            first_row,
            units,
            losses,
            pools,
            rounds,
        }))
    }
}
