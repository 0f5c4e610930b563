//! The crate's error type: every variant names what a person needs to act on it (the file,
//! the unit, the step).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },

    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },

    #[error("{path}: not a valid plan header: {message}")]
    PlanHeader { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    PlanUnits { path: PathBuf, message: String },

    #[error("{path}: not a valid held-out record: {message}")]
    HeldOutRecord { path: PathBuf, message: String },

    #[error("{path}: not a loss table: {message}")]
    LossSchema { path: PathBuf, message: String },

    #[error("{path}, row {row}: unit {unit} of pool {pool} is listed twice in the loss tables")]
    DuplicateUnit {
        path: PathBuf,
        row: u64,
        pool: u32,
        unit: u64,
    },

    #[error(
        "{path}, row {row}: unit {unit} of pool {pool} is not part of the plan (pool has {units} units)"
    )]
    UnknownUnit {
        path: PathBuf,
        row: u64,
        pool: u32,
        unit: u64,
        units: u64,
    },

    #[error("{path}, row {row}: unit {unit} of pool {pool} is not trained by the plan")]
    UnitNotInPlan {
        path: PathBuf,
        row: u64,
        pool: u32,
        unit: u64,
    },

    #[error(
        "the loss tables miss {missing} unit(s) of the plan; the first is unit {unit} of pool {pool} (plan position {position})"
    )]
    MissingUnits {
        missing: u64,
        pool: u32,
        unit: u64,
        position: u64,
    },

    #[error("{path}, row {row}: loss of unit {unit} is {loss}, not a finite number")]
    NonFiniteLoss {
        path: PathBuf,
        row: u64,
        unit: u64,
        loss: f32,
    },

    #[error("loss of unit {unit} of pool {pool} is {loss}, not a finite number")]
    NonFiniteLossPushed { pool: u32, unit: u64, loss: f32 },

    #[error("step {step} is past the end of the plan ({steps} steps)")]
    StepOutOfRange { step: u64, steps: u64 },

    #[error("rank {rank} is not below the world size {world}")]
    BadRank { rank: u32, world: u32 },

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("drawing {what}: {message}")]
    Plot { what: String, message: String },

    /// A bug in this crate, not bad input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn arrow(path: impl Into<PathBuf>, source: arrow::error::ArrowError) -> Self {
        Error::Arrow {
            path: path.into(),
            source,
        }
    }
}
