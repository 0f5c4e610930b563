//! The crate's error type: every variant names what a person needs to act on it (the file, the
//! line or row, the item), and bad data is kept apart from bugs.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// A benchmark item that cannot be turned into a multiple-choice question. `location` is
    /// `line N` for text formats and `row N` for Arrow tables (both 1-based).
    #[error("{}:{location}: malformed item: {message}", path.display())]
    Malformed {
        path: PathBuf,
        location: String,
        message: String,
    },

    /// A file that cannot be parsed at all (broken JSON, an unreadable Arrow stream).
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },

    /// A benchmark file that is not where the data directory says it should be.
    #[error("{}: missing benchmark data ({hint})", path.display())]
    MissingData { path: PathBuf, hint: String },

    #[error("unknown task {name:?}; known tasks: {known}")]
    UnknownTask { name: String, known: String },

    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },

    /// A model folder the model crate refuses (config.json field, missing or misshapen tensor).
    #[error(transparent)]
    ModelFolder(#[from] tinyforge_model::Error),

    /// A checkpoint that does not hold the tensors or config a LLaMA decoder needs.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    #[error("invalid evaluation config: {0}")]
    Config(String),

    /// The model backend failed (shape mismatch, device error).
    #[error("model: {0}")]
    Model(String),

    /// A bug in tinyforge-eval, never bad input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn malformed(
        path: impl Into<PathBuf>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Malformed {
            path: path.into(),
            location: location.into(),
            message: message.into(),
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::Parse {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
