//! Documents (Parquet) to token shards, encoding in parallel.
//!
//! [`tokenize`] reads every `*.parquet` of a documents folder (sorted by name, rows in order,
//! the `text` column), encodes with a Hugging Face `tokenizer.json` on a rayon pool and writes a
//! `tinyforge-shards` dataset through a bounded reader → encoder → writer pipeline.
//! `--shard i/n` tasks take contiguous row-group ranges, so their outputs merged in task order
//! hold the single-run token stream. Finished shards are recorded in `_progress.json`; a rerun
//! resumes after the last one.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod encode;
mod error;
mod input;
mod pipeline;
mod report;

pub use encode::{DEFAULT_MAX_PRETOKEN_CHARS, Encoded, TokenizerInfo};
pub use error::{Error, Result};
pub use input::{DocBatch, Inputs, RowGroup};
pub use pipeline::{PROGRESS_FILE, TokenizeConfig, tokenize};
pub use report::{LongPretokens, Quantiles, TokenizeReport, document_lengths};
