//! Integration tests of tinyforge-ingest: every input format, determinism across runs and
//! task counts, every kind of bad input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tinyforge_ingest::{
    IngestConfig, IngestOptions, InputOptions, OnError, OneOrMany, RunOptions, Shard, ingest,
};

type Result<T = ()> = anyhow::Result<T>;

/// A row read back from a documents folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Doc {
    id: u64,
    text: String,
    lang: String,
    source: String,
    meta: Vec<Option<String>>,
}

fn read_docs(dir: &Path) -> Result<Vec<Doc>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::result::Result<_, _>>()?;
    names.retain(|p| p.extension().is_some_and(|e| e == "parquet"));
    names.sort();
    let mut docs = Vec::new();
    for path in names {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path)?)?.build()?;
        for batch in reader {
            let batch = batch?;
            let ids = batch
                .column(0)
                .as_primitive::<arrow::datatypes::UInt64Type>();
            let texts = batch.column(1).as_string::<i32>();
            let langs = batch.column(2).as_string::<i32>();
            let sources = batch.column(3).as_string::<i32>();
            for row in 0..batch.num_rows() {
                let meta = (4..batch.num_columns())
                    .map(|c| {
                        let col = batch.column(c).as_string::<i32>();
                        (!col.is_null(row)).then(|| col.value(row).to_owned())
                    })
                    .collect();
                docs.push(Doc {
                    id: ids.value(row),
                    text: texts.value(row).to_owned(),
                    lang: langs.value(row).to_owned(),
                    source: sources.value(row).to_owned(),
                    meta,
                });
            }
        }
    }
    Ok(docs)
}

fn input(path: &Path) -> InputOptions {
    InputOptions {
        path: Some(OneOrMany::One(path.display().to_string())),
        ..InputOptions::default()
    }
}

fn config(inputs: Vec<InputOptions>, out: &Path) -> IngestOptions {
    IngestOptions {
        out: Some(out.display().to_string()),
        min_chars: Some(1),
        threads: Some(2),
        input: inputs,
        ..IngestOptions::default()
    }
}

fn run(options: IngestOptions) -> Result<tinyforge_ingest::Report> {
    run_shard(options, Shard::ALL)
}

fn run_shard(options: IngestOptions, shard: Shard) -> Result<tinyforge_ingest::Report> {
    let config: IngestConfig = options.resolve("test", shard)?;
    Ok(ingest(
        &config,
        &RunOptions::default(),
        &tinyforge_task::Silent,
    )?)
}

/// `--merge` of a folder whose `--shard` tasks are done.
fn merge(options: IngestOptions) -> Result<tinyforge_ingest::Report> {
    let config: IngestConfig = options.resolve("test", Shard::ALL)?;
    let merge_only = RunOptions {
        merge_only: true,
        ..RunOptions::default()
    };
    Ok(ingest(&config, &merge_only, &tinyforge_task::Silent)?)
}

/// The records of a folder's `_rejects.jsonl`.
fn rejects(out: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(out.join("_rejects.jsonl"))?;
    Ok(text
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?)
}

/// The Parquet parts and the rejects of a folder, by name.
fn folder_bytes(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".parquet") || name == "_rejects.jsonl" {
            files.push((name, std::fs::read(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const EN: &str =
    "The farmer watches from the porch while the children walk along the river to school.";
const ZH: &str = "床前明月光，疑是地上霜。举头望明月，低头思故乡。";

fn jsonl_lines() -> String {
    format!(
        "{}\n{}\n\n{}\n",
        serde_json::json!({"text": EN, "url": "a", "n": 1}),
        serde_json::json!({"text": ZH, "url": "b", "extra": {"deep": [1, 2]}}),
        serde_json::json!({"text": "  \u{0}Second\r\nline\u{7} of english text for the reader here.  ", "url": null}),
    )
}

mod bad_input;
mod determinism;
mod formats;
mod fuzz;
mod limits;
mod zstd_frames;

/// Counts the bytes live, for the memory bounds of the fuzz tests (measured in a process of
/// their own); the other tests only pay an atomic add per allocation.
#[global_allocator]
static ALLOCATOR: tinyforge_testkit::CountingAllocator = tinyforge_testkit::CountingAllocator;
