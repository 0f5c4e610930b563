//! Errors of the tokenize stage; each names the file (and row) it is about.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error(transparent)]
    Lock(#[from] tinyforge_task::LockError),

    #[error(transparent)]
    Shards(#[from] tinyforge_shards::Error),

    #[error("{path}: cannot load tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },

    #[error("{path}: row {row}: {message}")]
    Document {
        path: PathBuf,
        row: u64,
        message: String,
    },

    #[error("{path}: row {row}: tokenizer failed: {message}")]
    Encode {
        path: PathBuf,
        row: u64,
        message: String,
    },

    #[error("{0}")]
    Config(String),

    /// The output folder holds the partial work of a different run.
    #[error(
        "{path}: holds a run with other inputs or settings ({detail}); remove it or choose another --out"
    )]
    OtherRun { path: PathBuf, detail: String },

    #[error("internal error: {0}")]
    Internal(String),
}
