//! Errors of the trainer. Every variant names the file (and where useful the step or tensor)
//! so that a failed cluster job says what to look at.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {source}")]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error(transparent)]
    Model(#[from] tinyforge_model::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("data: {0}")]
    Data(String),
    #[error(
        "non-finite loss ({loss}) at step {step} of round {round}; training stopped. The last \
         good state is the checkpoint at {checkpoint}; lower the learning rate or check the data \
         of this step's units"
    )]
    NonFinite {
        step: u64,
        round: usize,
        loss: f64,
        checkpoint: String,
    },
    /// A collective, the rendezvous store or the process group failed (the text names the
    /// ranks that stopped answering, and the backend's own message).
    #[error("distributed: {0}")]
    Dist(String),
    #[error("drawing {what}: {reason}")]
    Plot { what: String, reason: String },
    #[error("interrupted after step {step} (checkpoint written)")]
    Interrupted { step: u64 },
}

impl Error {
    pub(crate) fn ckpt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// fs-err already puts the path in the message; keep it as the source, with the path
/// extracted where fs-err gives one.
impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            path: PathBuf::new(),
            source,
        }
    }
}
