//! Errors of the vocab stage. Each variant names the file (and where useful the token or row)
//! so that a person can act on it without a debugger.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error("{path}: not a valid tokenizer JSON file: {source}")]
    TokenizerJson {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[error("{path}: Hugging Face tokenizers cannot load this file: {message}")]
    TokenizerLoad { path: PathBuf, message: String },

    #[error(
        "{path}: unsupported tokenizer model type {model_type:?}; vocab pruning supports BPE \
         (byte-level, as in GPT-2/Qwen, or with byte_fallback, as in LLaMA-2)"
    )]
    UnsupportedModel { path: PathBuf, model_type: String },

    #[error("{path}: malformed tokenizer: {message}")]
    MalformedTokenizer { path: PathBuf, message: String },

    #[error("{path}: encoding failed in row {row}: {message}")]
    Encode {
        path: PathBuf,
        row: u64,
        message: String,
    },

    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    Documents { path: PathBuf, message: String },

    #[error("{path}: counts table is invalid: {message}")]
    Counts { path: PathBuf, message: String },

    #[error(
        "counts do not belong to the same tokenizer: {first} has tokenizer {first_sha}, \
         {other} has {other_sha}"
    )]
    TokenizerMismatch {
        first: PathBuf,
        first_sha: String,
        other: PathBuf,
        other_sha: String,
    },

    #[error(
        "--size {requested} is below the smallest possible vocabulary: {minimum} tokens \
         ({specials} special/added tokens + {alphabet} alphabet tokens must always be kept)"
    )]
    SizeTooSmall {
        requested: usize,
        minimum: usize,
        specials: usize,
        alphabet: usize,
    },

    #[error("invalid option: {0}")]
    InvalidOption(String),

    #[error("SQL over counts failed: {0}")]
    DataFusion(String),

    #[error("{path}: writing the coverage plot failed: {message}")]
    Plot { path: PathBuf, message: String },

    /// A bug in this crate, not bad input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn parquet(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        Self::Parquet {
            path: path.into(),
            message: err.to_string(),
        }
    }
}
