//! Token shard format: zstd-framed token files, manifest, checksums and a random-access reader.
//!
//! A dataset is a folder with `manifest.json` and shard files (see docs/FORMAT.md, "Token
//! shards"). Writers: [`ShardWriter`] (one file) and [`DatasetWriter`] (a folder, rolling over
//! to a new shard at a token budget). Reader: [`Dataset`] (`open` parses only the manifest;
//! `window`, `read_range`, `chunks`, `prefetch`). [`verify`] checks every byte; [`merge`] joins
//! the outputs of `--shard i/n` tasks without copying data.
//!
//! This crate is linked by the trainer and the sampler, so it stays light: no tokenizer, no
//! Parquet, no DataFusion.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod error;
mod format;
mod iter;
mod manifest;
mod merge;
mod reader;
mod verify;
mod writer;

pub use error::{Error, Result};
pub use format::{
    DEFAULT_ZSTD_LEVEL, DocEntry, Dtype, FORMAT_NAME, FORMAT_VERSION, checksum, checksum_string,
};
pub use iter::{Chunks, Prefetch, PrefetchOptions};
pub use manifest::{DatasetHeader, MANIFEST_FILE, Manifest, ShardEntry, TaskInfo};
pub use merge::merge;
pub use reader::{Dataset, DocumentRef, ReaderOptions};
pub use verify::{Problem, VerifyReport, verify};
pub use writer::{DatasetWriter, ShardOptions, ShardWriter, shard_file_name};
