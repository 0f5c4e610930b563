//! Errors of inheritance: each names the file, field or dimension to fix.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The teacher or student folder (config.json field, tensor) as the model crate reads it.
    #[error(transparent)]
    Model(#[from] tinyforge_model::Error),
    #[error(transparent)]
    Train(#[from] tinyforge_train::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("calibration data: {0}")]
    Shards(#[from] tinyforge_shards::Error),
    #[error(transparent)]
    Vocab(#[from] tinyforge_vocab::Error),
    /// A student that cannot be cut from this teacher, or an impossible option.
    #[error("{0}")]
    Config(String),
    /// Files that do not belong together: an id map of another tokenizer, calibration data in
    /// another vocabulary.
    #[error("{path}: {message}", path = path.display())]
    Mismatch { path: PathBuf, message: String },
    #[error("{path}: {reason}", path = path.display())]
    Output { path: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn mismatch(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Mismatch {
            path: path.into(),
            message: message.into(),
        }
    }
}
