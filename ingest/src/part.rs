//! Parquet parts of the documents contract: the schema, the batch of documents a worker hands
//! to the writer, and a part writer whose bytes depend only on the rows it is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};

/// `id`, `text`, `lang`, `source`, then the kept metadata columns (nullable text).
pub fn schema(keep: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ];
    fields.extend(
        keep.iter()
            .map(|name| Field::new(name, DataType::Utf8, true)),
    );
    Arc::new(Schema::new(fields))
}

/// Documents in column form, as a worker collects them. Texts go straight into the Arrow
/// column, one copy from the input.
#[derive(Debug, Default)]
pub struct Docs {
    pub ids: Vec<u64>,
    pub texts: StringBuilder,
    pub langs: Vec<&'static str>,
    pub sources: Vec<Arc<str>>,
    pub meta: Vec<StringBuilder>,
    pub hashes: Vec<u128>,
    pub text_bytes: usize,
}

impl Docs {
    /// Room for `rows` documents of `text_bytes` bytes in all before any reallocation.
    pub fn with_capacity(meta_columns: usize, rows: usize, text_bytes: usize) -> Docs {
        Docs {
            ids: Vec::with_capacity(rows),
            texts: StringBuilder::with_capacity(rows, text_bytes),
            langs: Vec::with_capacity(rows),
            sources: Vec::with_capacity(rows),
            meta: (0..meta_columns)
                .map(|_| StringBuilder::with_capacity(rows, rows * 8))
                .collect(),
            hashes: Vec::with_capacity(rows),
            text_bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The documents as a batch of `schema` (see [`schema`]); the builders are left empty.
    pub fn take_batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(std::mem::take(&mut self.ids))),
            Arc::new(self.texts.finish()),
            Arc::new(StringArray::from_iter_values(self.langs.iter())),
            Arc::new(StringArray::from_iter_values(
                self.sources.iter().map(|s| &**s),
            )),
        ];
        for column in &mut self.meta {
            columns.push(Arc::new(column.finish()));
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartInfo {
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub text_bytes: u64,
}

/// Writes one part to `.<name>.tmp-<pid>`, renamed to `<name>` by [`PartWriter::finish`].
/// Row groups are cut after the row that brings the group's text to `row_group_bytes`, and
/// each group is handed to the Parquet writer in one piece, so the file's bytes depend only on
/// the sequence of rows, never on how they arrived in batches.
pub struct PartWriter {
    schema: SchemaRef,
    final_path: PathBuf,
    tmp_path: PathBuf,
    writer: ArrowWriter<std::fs::File>,
    row_group_bytes: u64,
    pending: Vec<RecordBatch>,
    pending_bytes: u64,
    rows: u64,
    text_bytes: u64,
}

impl PartWriter {
    pub fn create(
        dir: &Path,
        name: &str,
        schema: &SchemaRef,
        zstd_level: i32,
        row_group_bytes: u64,
    ) -> Result<PartWriter> {
        let final_path = dir.join(name);
        let tmp_path = tinyforge_task::temp_path(&final_path);
        let file = fs_err::File::create(&tmp_path)?.into_parts().0;
        let level =
            ZstdLevel::try_new(zstd_level).map_err(|err| Error::Internal(err.to_string()))?;
        let text = ColumnPath::from("text");
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_created_by("tinyforge-ingest".to_owned())
            // The writer below decides where row groups end.
            .set_max_row_group_row_count(None)
            .set_max_row_group_bytes(None)
            // Text is neither repetitive nor useful as min/max statistics.
            .set_column_dictionary_enabled(text.clone(), false)
            .set_column_statistics_enabled(text, EnabledStatistics::None)
            // Ids are hashes: a dictionary of them never pays (the writer built one per row
            // group, then gave up on it), and they do not compress.
            .set_column_dictionary_enabled(ColumnPath::from("id"), false)
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|source| {
            Error::Parquet {
                path: tmp_path.clone(),
                source,
            }
        })?;
        Ok(PartWriter {
            schema: schema.clone(),
            final_path,
            tmp_path,
            writer,
            row_group_bytes,
            pending: Vec::new(),
            pending_bytes: 0,
            rows: 0,
            text_bytes: 0,
        })
    }

    /// Text bytes that complete the current row group.
    pub fn room(&self) -> u64 {
        self.row_group_bytes.saturating_sub(self.pending_bytes)
    }

    pub fn append(&mut self, batch: &RecordBatch) -> Result<()> {
        let texts = batch.column(1).as_string::<i32>();
        let mut start = 0;
        for row in 0..batch.num_rows() {
            let len = texts.value_length(row) as u64;
            self.pending_bytes += len;
            self.text_bytes += len;
            if self.pending_bytes >= self.row_group_bytes {
                self.pending.push(batch.slice(start, row + 1 - start));
                start = row + 1;
                self.write_row_group()?;
            }
        }
        if start < batch.num_rows() {
            self.pending
                .push(batch.slice(start, batch.num_rows() - start));
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn write_row_group(&mut self) -> Result<()> {
        let path = self.tmp_path.clone();
        let parquet_err = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        if !self.pending.is_empty() {
            let group = arrow::compute::concat_batches(&self.schema, &self.pending)?;
            self.writer.write(&group).map_err(parquet_err)?;
            self.writer.flush().map_err(parquet_err)?;
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Writes the last row group, syncs the file and renames it to its final name.
    pub fn finish(mut self) -> Result<PartInfo> {
        self.write_row_group()?;
        let tmp = self.tmp_path.clone();
        let file = self.writer.into_inner().map_err(|source| Error::Parquet {
            path: tmp.clone(),
            source,
        })?;
        file.sync_all()?;
        drop(file);
        let bytes = fs_err::metadata(&tmp)?.len();
        fs_err::rename(&tmp, &self.final_path)?;
        let file = self
            .final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(PartInfo {
            file,
            rows: self.rows,
            bytes,
            text_bytes: self.text_bytes,
        })
    }
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(tinyforge_task::write_atomic(path, bytes)?)
}
