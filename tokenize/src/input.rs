//! The documents side: list the Parquet parts, split their row groups among tasks, and stream
//! the `text` (and `id`) column in order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tinyforge_task::Shard;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, UInt64Type};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaData;

use crate::error::{Error, Result};

/// One row group of one Parquet file: the unit of work splitting.
#[derive(Debug, Clone)]
pub struct RowGroup {
    pub file: usize,
    pub group: usize,
    pub rows: u64,
    /// Row number of its first row inside the file (for error messages).
    pub first_row: u64,
    pub compressed_bytes: u64,
}

/// Every Parquet part of a documents folder.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub files: Vec<PathBuf>,
    pub groups: Vec<RowGroup>,
    metadata: Vec<Arc<ParquetMetaData>>,
}

impl Inputs {
    /// Lists `*.parquet` in `dir`, sorted by name, and reads their footers.
    pub fn list(dir: &Path) -> Result<Self> {
        let mut files: Vec<PathBuf> = fs_err::read_dir(dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "parquet") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Config(format!(
                "{}: no *.parquet files",
                dir.display()
            )));
        }
        let mut groups = Vec::new();
        let mut metadata = Vec::new();
        for (index, path) in files.iter().enumerate() {
            let file = fs_err::File::open(path)?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_file())
                .map_err(|e| parquet_error(path, e))?;
            let meta = builder.metadata().clone();
            let mut first_row = 0;
            for (group, rg) in meta.row_groups().iter().enumerate() {
                let rows = rg.num_rows() as u64;
                groups.push(RowGroup {
                    file: index,
                    group,
                    rows,
                    first_row,
                    compressed_bytes: rg.compressed_size() as u64,
                });
                first_row += rows;
            }
            metadata.push(meta);
        }
        Ok(Self {
            files,
            groups,
            metadata,
        })
    }

    pub fn rows(&self) -> u64 {
        self.groups.iter().map(|g| g.rows).sum()
    }

    /// The row groups of task `shard`: a contiguous run ([`Shard::range`] of the rows), chosen
    /// by where each group's first row falls, so tasks get similar row counts and their outputs
    /// concatenated in task order are the single-run order.
    pub fn task_groups(&self, shard: Shard) -> Vec<RowGroup> {
        let rows = shard.range(self.rows());
        let last = shard.index + 1 == shard.count;
        let mut start = 0u64;
        let mut picked = Vec::new();
        for group in &self.groups {
            // Empty row groups go with the task owning the next row, so none is lost or doubled.
            if rows.contains(&start) || (last && start >= rows.end) {
                picked.push(group.clone());
            }
            start += group.rows;
        }
        picked
    }

    /// Streams the documents of `groups` after skipping the first `skip` of them, in batches of
    /// up to `batch_rows` rows. `sink` returns false to stop early.
    pub fn read(
        &self,
        groups: &[RowGroup],
        mut skip: u64,
        batch_rows: usize,
        mut sink: impl FnMut(DocBatch) -> Result<bool>,
    ) -> Result<()> {
        for group in groups {
            if skip >= group.rows {
                skip -= group.rows;
                continue;
            }
            let path = &self.files[group.file];
            let meta = &self.metadata[group.file];
            let schema = meta.file_metadata().schema_descr();
            let column = |name: &str| {
                schema
                    .root_schema()
                    .get_fields()
                    .iter()
                    .position(|f| f.name() == name)
            };
            let text = column("text").ok_or_else(|| Error::Parquet {
                path: path.clone(),
                message: "no `text` column".into(),
            })?;
            let id = column("id");
            let roots: Vec<usize> = std::iter::once(text).chain(id).collect();
            let file = fs_err::File::open(path)?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_file())
                .map_err(|e| parquet_error(path, e))?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            let reader = builder
                .with_row_groups(vec![group.group])
                .with_projection(mask)
                .with_offset(skip as usize)
                .with_batch_size(batch_rows)
                .build()
                .map_err(|e| parquet_error(path, e))?;
            let mut row = group.first_row + skip;
            skip = 0;
            for batch in reader {
                let batch = batch.map_err(|e| Error::Parquet {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                let docs = DocBatch::from_record_batch(&batch, path, row)?;
                row += batch.num_rows() as u64;
                if !sink(docs)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Documents read from one file, in order.
#[derive(Debug, Default)]
pub struct DocBatch {
    pub texts: Vec<String>,
    pub ids: Vec<u64>,
    pub path: PathBuf,
    pub first_row: u64,
    pub bytes: u64,
}

impl DocBatch {
    fn from_record_batch(batch: &RecordBatch, path: &Path, first_row: u64) -> Result<Self> {
        let text = batch
            .column_by_name("text")
            .ok_or_else(|| Error::Internal("text column not projected".into()))?;
        let bad = |row: usize, message: &str| Error::Document {
            path: path.to_path_buf(),
            row: first_row + row as u64,
            message: message.into(),
        };
        let texts: Vec<String> = match text.data_type() {
            DataType::Utf8 => collect_strings(text.as_string::<i32>().iter(), bad)?,
            DataType::LargeUtf8 => collect_strings(text.as_string::<i64>().iter(), bad)?,
            DataType::Utf8View => collect_strings(text.as_string_view().iter(), bad)?,
            other => {
                return Err(Error::Parquet {
                    path: path.to_path_buf(),
                    message: format!("`text` is {other}, not a string column"),
                });
            }
        };
        // Without an `id` column (or with a null id) the document's row number is its id.
        let ids = match batch.column_by_name("id") {
            Some(ids) if ids.data_type() == &DataType::UInt64 => {
                let ids = ids.as_primitive::<UInt64Type>();
                (0..ids.len())
                    .map(|i| {
                        if ids.is_null(i) {
                            first_row + i as u64
                        } else {
                            ids.value(i)
                        }
                    })
                    .collect()
            }
            _ => (0..texts.len() as u64).map(|i| first_row + i).collect(),
        };
        let bytes = texts.iter().map(|t| t.len() as u64).sum();
        Ok(Self {
            texts,
            ids,
            path: path.to_path_buf(),
            first_row,
            bytes,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

fn collect_strings<'a>(
    values: impl Iterator<Item = Option<&'a str>>,
    bad: impl Fn(usize, &str) -> Error,
) -> Result<Vec<String>> {
    values
        .enumerate()
        .map(|(row, value)| {
            value
                .map(str::to_owned)
                .ok_or_else(|| bad(row, "`text` is null"))
        })
        .collect()
}

fn parquet_error(path: &Path, error: parquet::errors::ParquetError) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}
