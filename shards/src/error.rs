//! Errors of the shard format. Every variant names the file (and the frame, for data damage) so a
//! person can find the broken shard without a debugger.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error; `fs-err` already put the path in the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error(transparent)]
    Lock(#[from] tinyforge_task::LockError),

    /// An object-store request of a dataset opened by URL; the error names the object.
    #[error(transparent)]
    Store(#[from] tinyforge_store::Error),

    /// `manifest.json` is missing a field, has a wrong type, or contradicts itself.
    #[error("{path}: invalid manifest: {message}")]
    Manifest { path: PathBuf, message: String },

    /// A manifest of another format or a version this build cannot read.
    #[error(
        "{path}: unsupported dataset {found} (this build reads format \"tinyforge-shards\" version {supported}; rerun `tinyforge tokenize` to rewrite it)"
    )]
    Version {
        path: PathBuf,
        found: String,
        supported: u32,
    },

    /// The decompressed bytes of a frame do not hash to the checksum in the index.
    #[error(
        "{file}: frame {frame}: checksum mismatch (index says {expected:016x}, data hashes to {actual:016x})"
    )]
    FrameChecksum {
        file: PathBuf,
        frame: u64,
        expected: u64,
        actual: u64,
    },

    /// A frame that does not decompress, or decompresses to the wrong length.
    #[error("{file}: frame {frame}: corrupt data: {detail}")]
    CorruptFrame {
        file: PathBuf,
        frame: u64,
        detail: String,
    },

    /// The header, index or trailer of a shard is damaged or inconsistent with the manifest.
    #[error("{file}: corrupt shard: {detail}")]
    CorruptShard { file: PathBuf, detail: String },

    /// The whole-file checksum in the manifest does not match the shard's bytes.
    #[error("{file}: file checksum mismatch (manifest says {expected}, file hashes to {actual})")]
    FileChecksum {
        file: PathBuf,
        expected: String,
        actual: String,
    },

    /// A read past the end of the token stream.
    #[error("token range {start}..{end} is outside the dataset ({total} tokens)")]
    OutOfRange { start: u64, end: u64, total: u64 },

    /// A token id that does not fit the dataset's vocabulary (or its dtype).
    #[error(
        "token id {token} is outside the vocabulary of {vocab_size} tokens (document {document})"
    )]
    TokenOutOfRange {
        token: u32,
        vocab_size: u32,
        document: u64,
    },

    /// Datasets that cannot be merged (different tokenizers, missing tasks...).
    #[error("cannot merge: {0}")]
    Merge(String),

    /// A caller passed an impossible setting (zero frame size, zero sequence length...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A bug in this crate, not bad data.
    #[error("internal error: {0}")]
    Internal(String),
}
