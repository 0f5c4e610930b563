//! Errors of the trainer. Every variant names the file (and where useful the step or tensor)
//! so that a failed cluster job says what to look at.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system call through fs-err (or a buffered writer over an fs-err file), whose
    /// message names the operation and the path. There is deliberately no `From` conversion:
    /// each site says that its error comes from fs-err, and an I/O error that names no file
    /// needs a variant of its own.
    #[error(transparent)]
    Io(std::io::Error),
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
    /// The token dataset in `dir`, through tinyforge-shards (whose error names the shard file,
    /// and the frame for damaged data).
    #[error("data: {dir}: {source}")]
    Dataset {
        dir: PathBuf,
        #[source]
        source: tinyforge_shards::Error,
    },
    /// The window of training unit `unit` in the token dataset.
    #[error("data: unit {unit}: {source}")]
    Unit {
        unit: u64,
        #[source]
        source: tinyforge_shards::Error,
    },
    /// A plan or held-out record of tinyforge-sampler (its error names the file).
    #[error("data: sampler: {0}")]
    Sampler(#[from] tinyforge_sampler::Error),
    /// Writing the loss table `path` through tinyforge-sampler.
    #[error("data: {path}: {source}")]
    LossTable {
        path: PathBuf,
        #[source]
        source: tinyforge_sampler::Error,
    },
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_damaged_frame_keeps_its_file_and_frame_and_stays_the_source() {
        let err = Error::Unit {
            unit: 7,
            source: tinyforge_shards::Error::CorruptFrame {
                file: "data/shard-00001.tfs".into(),
                frame: 3,
                detail: "zstd: unknown frame descriptor".into(),
            },
        };
        let text = err.to_string();
        assert!(
            text.starts_with("data: unit 7: data/shard-00001.tfs: frame 3:"),
            "{text}"
        );
        let source = err.source().expect("a source");
        assert!(matches!(
            source.downcast_ref::<tinyforge_shards::Error>(),
            Some(tinyforge_shards::Error::CorruptFrame { frame: 3, .. })
        ));
    }
}
