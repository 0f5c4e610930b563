//! tinyforge-ingest: raw corpora (JSONL plain/gz/zst, JSON arrays, Parquet, text, HTML) to the
//! documents contract: a folder of zstd Parquet parts with `id`, `text`, `lang`, `source` and
//! kept metadata columns, cleaned (NFC, no control characters, no blank or short documents),
//! deduplicated exactly, language-tagged, optionally filtered by SQL; resumable and splittable
//! into `--shard i/n` tasks whose merged output equals one run's, byte for byte.
//!
//! ```no_run
//! use tinyforge_ingest::{IngestOptions, RunOptions, Shard, ingest};
//! let options = IngestOptions::from_file("configs/ingest-demo.toml".as_ref())?;
//! let config = options.resolve("configs/ingest-demo.toml", Shard::ALL)?;
//! let report = ingest(&config, &RunOptions::default(), &tinyforge_task::Silent)?;
//! println!("{} documents", report.documents_out);
//! # Ok::<(), tinyforge_ingest::Error>(())
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod clean;
mod config;
mod dedup;
mod error;
mod filter;
mod finalize;
mod part;
mod plan;
mod read;
mod remote;
mod report;
mod run;
mod state;
mod stats;

pub use clean::{Cleaned, clean, clean_document, detect_lang, iso639_1};
pub use config::{
    Format, IngestConfig, IngestOptions, InputOptions, InputSpec, OnError, OneOrMany, Shard,
    TextSpec, expand,
};
pub use dedup::{BucketStats, bucket_of, drops_file_name, find_duplicates};
pub use error::{Error, Location, Result};
pub use finalize::DedupSummary;
pub use part::{PartInfo, schema};
pub use report::{Counts, Dropped, LangCount, Report, SourceCount};
pub use run::{RunOptions, ingest};
pub use state::{Fetch, MANIFEST, REJECTS, STATE_DIR, chunk_of_file};
pub use stats::{SUMMARY_QUERIES, query, summary, to_json_rows, to_table};

/// HTML to plain text, as the HTML reader does it.
pub use read::html_to_text;
