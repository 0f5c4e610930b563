//! Errors of the model crate: each names the file and, where there is one, the field or tensor.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path}: invalid TOML: {source}", path = path.display())]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: invalid JSON: {source}", path = path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An impossible or inconsistent model shape.
    #[error("model {name}: {message}")]
    Shape { name: String, message: String },
    /// A `config.json` field this decoder does not implement, with its value.
    #[error("{path}: `{field}` = {value}: {message}", path = path.display())]
    Unsupported {
        path: PathBuf,
        field: String,
        value: String,
        message: String,
    },
    /// A checkpoint folder or safetensors file that does not hold what the config implies.
    #[error("{path}: {message}", path = path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// A flag or config value outside its allowed spellings (a device, a precision).
    #[error("unknown {what} `{value}` (expected one of: {allowed})")]
    UnknownValue {
        what: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// A bug in this crate (not bad input).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn shape(name: &str, message: impl Into<String>) -> Self {
        Error::Shape {
            name: name.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}
