//! The counts table: Parquet with `token_id` UInt32, `token` Utf8, `count` UInt64, one row per
//! token of the base tokenizer (zero counts included), sorted by id. File metadata records the
//! tokenizer's SHA-256, the shard and the documents/bytes counted, so that `merge` can check
//! partials belong together and `prune` can refuse counts of another tokenizer.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::base::BaseTokenizer;
use crate::error::{Error, Result};
use tinyforge_task::Shard;

const KEY_SHA: &str = "tinyforge.tokenizer_sha256";
const KEY_SHARD: &str = "tinyforge.shard";
const KEY_DOCUMENTS: &str = "tinyforge.documents";
const KEY_BYTES: &str = "tinyforge.bytes";
const KEY_BUCKET: &str = "tinyforge.bucket";

/// Token counts over the base tokenizer's id space.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    /// `counts[id]`; ids no token has stay 0.
    pub counts: Vec<u64>,
    /// `tokens[id]`, the token text.
    pub tokens: Vec<Option<String>>,
    pub tokenizer_sha256: String,
    pub shard: Shard,
    /// A bucket of a partitioned merge (`vocab merge --bucket b/B`): only the ids `i` with
    /// `i % B == b`, summed over every partial; `documents` and `bytes` are then the whole
    /// run's. `None` for every other table.
    pub bucket: Option<Shard>,
    pub documents: u64,
    pub bytes: u64,
}

/// What a counts file's metadata records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CountsMeta {
    pub sha: String,
    pub shard: Shard,
    pub bucket: Option<Shard>,
    pub documents: u64,
    pub bytes: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Number of distinct tokens that occur at least once.
    pub fn distinct_used(&self) -> usize {
        self.counts.iter().filter(|&&c| c > 0).count()
    }

    /// Writes the table atomically (a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs_err::create_dir_all(parent)?;
        }
        let schema = Arc::new(schema());
        let (mut ids, mut tokens, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        for (id, token) in self.tokens.iter().enumerate() {
            if let Some(token) = token {
                ids.push(id as u32);
                tokens.push(token.as_str());
                counts.push(self.counts[id]);
            }
        }
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt32Array::from(ids)),
                Arc::new(StringArray::from(tokens)),
                Arc::new(UInt64Array::from(counts)),
            ],
        )
        .map_err(|e| Error::parquet(path, e))?;
        let mut metadata = vec![
            KeyValue::new(KEY_SHA.into(), self.tokenizer_sha256.clone()),
            KeyValue::new(KEY_SHARD.into(), self.shard.to_string()),
            KeyValue::new(KEY_DOCUMENTS.into(), self.documents.to_string()),
            KeyValue::new(KEY_BYTES.into(), self.bytes.to_string()),
        ];
        if let Some(bucket) = self.bucket {
            metadata.push(KeyValue::new(KEY_BUCKET.into(), bucket.to_string()));
        }
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_key_value_metadata(Some(metadata))
            .build();
        let file = tinyforge_task::AtomicFile::create(path)?;
        let mut writer =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| Error::parquet(path, e))?;
        writer.write(&batch).map_err(|e| Error::parquet(path, e))?;
        writer
            .into_inner()
            .map_err(|e| Error::parquet(path, e))?
            .commit()?;
        Ok(())
    }

    /// Reads a counts table written by `write` (or by `merge`).
    pub fn read(path: &Path) -> Result<Self> {
        let invalid = |message: String| Error::Counts {
            path: path.to_owned(),
            message,
        };
        let file = fs_err::File::open(path)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
            .map_err(|e| Error::parquet(path, e))?;
        let meta = Self::read_metadata(path, builder.metadata().file_metadata())?;
        let reader = builder.build().map_err(|e| Error::parquet(path, e))?;
        let mut counts: Vec<u64> = Vec::new();
        let mut tokens: Vec<Option<String>> = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| Error::parquet(path, e))?;
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| invalid(format!("no column {name:?}")))
            };
            let ids = column("token_id")?
                .as_any()
                .downcast_ref::<UInt32Array>()
                .ok_or_else(|| invalid("token_id is not UInt32".into()))?;
            let texts = column("token")?
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| invalid("token is not Utf8".into()))?;
            let values = column("count")?
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or_else(|| invalid("count is not UInt64".into()))?;
            if ids.null_count() + texts.null_count() + values.null_count() > 0 {
                return Err(invalid("null values".into()));
            }
            for row in 0..batch.num_rows() {
                let id = ids.value(row) as usize;
                if id >= counts.len() {
                    counts.resize(id + 1, 0);
                    tokens.resize(id + 1, None);
                }
                if tokens[id].is_some() {
                    return Err(invalid(format!("token_id {id} appears twice")));
                }
                tokens[id] = Some(texts.value(row).to_owned());
                counts[id] = values.value(row);
            }
        }
        Ok(Self {
            counts,
            tokens,
            tokenizer_sha256: meta.sha,
            shard: meta.shard,
            bucket: meta.bucket,
            documents: meta.documents,
            bytes: meta.bytes,
        })
    }

    /// The tokenizer hash, shard, bucket, documents and bytes recorded in a counts file's
    /// metadata.
    pub(crate) fn read_metadata(
        path: &Path,
        meta: &parquet::file::metadata::FileMetaData,
    ) -> Result<CountsMeta> {
        let invalid = |message: String| Error::Counts {
            path: path.to_owned(),
            message,
        };
        let kv = key_values(meta.key_value_metadata());
        let get = |key: &str| kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let sha = get(KEY_SHA).ok_or_else(|| {
            invalid(format!(
                "no {KEY_SHA} metadata (not written by `tinyforge vocab count`?)"
            ))
        })?;
        let shard_at = |key: &str| {
            get(key)
                .map(|s| {
                    s.parse::<Shard>()
                        .map_err(|e| invalid(format!("{key}: {e}")))
                })
                .transpose()
        };
        let number = |key: &str| get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(CountsMeta {
            sha,
            shard: shard_at(KEY_SHARD)?.unwrap_or_default(),
            bucket: shard_at(KEY_BUCKET)?,
            documents: number(KEY_DOCUMENTS),
            bytes: number(KEY_BYTES),
        })
    }

    /// Checks that these counts were made with `base` and pads them to its id space.
    pub fn check_against(&mut self, path: &Path, base: &BaseTokenizer) -> Result<()> {
        let invalid = |message: String| Error::Counts {
            path: path.to_owned(),
            message,
        };
        if let Some(bucket) = self.bucket {
            return Err(invalid(format!(
                "bucket {bucket} of a partitioned merge holds only some tokens; join all {} \
                 buckets with `vocab merge` first",
                bucket.count
            )));
        }
        if self.tokenizer_sha256 != base.sha256() {
            return Err(invalid(format!(
                "counted with tokenizer {} but {} has sha256 {}",
                self.tokenizer_sha256,
                base.path().display(),
                base.sha256()
            )));
        }
        if self.counts.len() > base.id_space() {
            return Err(invalid(format!(
                "token_id {} is outside the tokenizer's {} ids",
                self.counts.len() - 1,
                base.id_space()
            )));
        }
        self.counts.resize(base.id_space(), 0);
        self.tokens.resize(base.id_space(), None);
        for (id, token) in self.tokens.iter().enumerate() {
            if let Some(token) = token
                && base.token(id as u32) != Some(token.as_str())
            {
                return Err(invalid(format!(
                    "token_id {id} is {token:?} here but {:?} in the tokenizer",
                    base.token(id as u32)
                )));
            }
        }
        Ok(())
    }
}

pub(crate) fn schema() -> Schema {
    Schema::new(vec![
        Field::new("token_id", DataType::UInt32, false),
        Field::new("token", DataType::Utf8, false),
        Field::new("count", DataType::UInt64, false),
    ])
}

fn key_values(kv: Option<&Vec<KeyValue>>) -> Vec<(String, String)> {
    kv.map(|list| {
        list.iter()
            .filter_map(|k| Some((k.key.clone(), k.value.clone()?)))
            .collect()
    })
    .unwrap_or_default()
}
