//! Errors of the ingest stage. Bad input data is normally counted and written to the rejects
//! file; it becomes an [`Error::BadInput`] only under `--on-error fail`.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in an input file something went wrong, as precisely as the format allows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// The whole file (unreadable, corrupt footer, invalid UTF-8 in a text file...).
    File,
    /// A line of a JSONL file: 1-based line number and the byte offset of its start in the
    /// (decompressed) stream.
    Line { line: u64, offset: u64 },
    /// Where a JSON parser stopped (1-based line and column).
    LineColumn { line: u64, column: u64 },
    /// A byte offset in the (decompressed) stream.
    Offset { offset: u64 },
    /// An element of a JSON array (0-based), with the line and column where parsing stopped
    /// when known.
    Record { record: u64 },
    /// A row of a Parquet file: row group and 0-based row inside the file.
    Row { row_group: usize, row: u64 },
    /// A row group of a Parquet file.
    RowGroup { row_group: usize },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => write!(f, "file"),
            Location::Line { line, offset } => write!(f, "line {line} (byte {offset})"),
            Location::LineColumn { line, column } => write!(f, "line {line}, column {column}"),
            Location::Offset { offset } => write!(f, "byte {offset}"),
            Location::Record { record } => write!(f, "record {record}"),
            Location::Row { row_group, row } => write!(f, "row {row} (row group {row_group})"),
            Location::RowGroup { row_group } => write!(f, "row group {row_group}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error(transparent)]
    Lock(#[from] tinyforge_task::LockError),

    #[error("{file}: {key}: {message}")]
    Config {
        file: String,
        key: String,
        message: String,
    },

    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },

    #[error("input `{pattern}` matches no file{hint}")]
    NoInput { pattern: String, hint: String },

    #[error("bad input {path}, {location}: {reason}")]
    BadInput {
        path: PathBuf,
        location: Location,
        reason: String,
    },

    #[error("{path}: {message}")]
    State { path: PathBuf, message: String },

    #[error("{path}: parquet: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("SQL: {0}")]
    Sql(#[from] tinyforge_sql::Error),

    /// A bug in tinyforge, not a problem with the data.
    #[error("internal error: {0}")]
    Internal(String),
}
