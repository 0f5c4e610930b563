//! `manifest.json`: the only file a reader parses when it opens a dataset.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::{Dtype, FORMAT_NAME, FORMAT_VERSION};

pub const MANIFEST_FILE: &str = "manifest.json";

/// The dataset description (see docs/FORMAT.md, "Token shards").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always "tinyforge-shards".
    pub format: String,
    /// Bumped on any change a version-1 reader would misread.
    pub version: u32,
    /// Hex SHA-256 of the `tokenizer.json` bytes the tokens came from.
    pub tokenizer_sha256: String,
    pub vocab_size: u32,
    pub dtype: Dtype,
    /// Appended after every document.
    pub eos_id: u32,
    pub total_tokens: u64,
    pub documents: u64,
    /// Tokens per zstd frame (the last frame of a shard may hold fewer).
    pub frame_tokens: u32,
    /// Set on the output of one `--shard i/n` task; merged datasets have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskInfo>,
    /// Shards in stream order.
    pub shards: Vec<ShardEntry>,
}

/// Which slice of a scaled-out run a dataset is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub index: u32,
    pub count: u32,
    /// A fingerprint of the inputs and settings shared by all tasks of the run; merge refuses
    /// tasks of different runs.
    pub run: String,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Path relative to the folder of the manifest, `/`-separated (may start with `../` in a
    /// merged dataset).
    pub file: String,
    pub tokens: u64,
    pub documents: u64,
    pub frames: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// "xxh3-64:<16 hex digits>" of the whole file.
    pub checksum: String,
}

impl Manifest {
    /// A manifest for `shards`, with the totals summed from them.
    pub fn new(header: DatasetHeader, task: Option<TaskInfo>, shards: Vec<ShardEntry>) -> Self {
        Self {
            format: FORMAT_NAME.to_owned(),
            version: FORMAT_VERSION,
            tokenizer_sha256: header.tokenizer_sha256,
            vocab_size: header.vocab_size,
            dtype: header.dtype,
            eos_id: header.eos_id,
            total_tokens: shards.iter().map(|s| s.tokens).sum(),
            documents: shards.iter().map(|s| s.documents).sum(),
            frame_tokens: header.frame_tokens,
            task,
            shards,
        }
    }

    pub fn header(&self) -> DatasetHeader {
        DatasetHeader {
            tokenizer_sha256: self.tokenizer_sha256.clone(),
            vocab_size: self.vocab_size,
            dtype: self.dtype,
            eos_id: self.eos_id,
            frame_tokens: self.frame_tokens,
        }
    }

    /// Reads and checks `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = fs_err::read(&path)?;
        Self::parse(&bytes, &path)
    }

    /// Parses and checks the bytes of a manifest; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        manifest.validate(&path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        if self.format != FORMAT_NAME || self.version != FORMAT_VERSION {
            return Err(Error::Version {
                path: path.to_path_buf(),
                found: format!("format {:?} version {}", self.format, self.version),
                supported: FORMAT_VERSION,
            });
        }
        let bad = |message: String| Error::Manifest {
            path: path.to_path_buf(),
            message,
        };
        if self.dtype == Dtype::U16 && self.vocab_size > 1 << 16 {
            return Err(bad(format!(
                "dtype u16 cannot hold a vocabulary of {}",
                self.vocab_size
            )));
        }
        if self.eos_id >= self.vocab_size {
            return Err(bad(format!(
                "eos_id {} is outside the vocabulary of {}",
                self.eos_id, self.vocab_size
            )));
        }
        if self.frame_tokens == 0 {
            return Err(bad("frame_tokens is 0".into()));
        }
        // Summed with checks: counts near u64::MAX would overflow (a panic, or a wrapped total
        // that a later sum trusts).
        let sum = |count: fn(&ShardEntry) -> u64| {
            self.shards
                .iter()
                .try_fold(0u64, |sum, shard| sum.checked_add(count(shard)))
        };
        let (Some(tokens), Some(documents)) = (sum(|s| s.tokens), sum(|s| s.documents)) else {
            return Err(bad(
                "the shards' token or document counts overflow a 64-bit total".into(),
            ));
        };
        if tokens != self.total_tokens || documents != self.documents {
            return Err(bad(format!(
                "shards hold {tokens} tokens and {documents} documents, the totals say {} and {}",
                self.total_tokens, self.documents
            )));
        }
        Ok(())
    }

    /// Reads and checks the `manifest.json` of a folder or an object-store folder (URL).
    pub fn read_any(dir: &Path) -> Result<Self> {
        match dir.to_str().filter(|text| tinyforge_store::is_url(text)) {
            None => Self::read(dir),
            Some(url) => {
                let bytes = tinyforge_store::Remote::open(url)?.get(MANIFEST_FILE)?;
                Self::parse(&bytes, &dir.join(MANIFEST_FILE))
            }
        }
    }

    /// The manifest as written: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut json =
            serde_json::to_vec_pretty(self).map_err(|e| Error::Internal(e.to_string()))?;
        json.push(b'\n');
        Ok(json)
    }

    /// Writes `dir/manifest.json` atomically (temporary name, fsync, rename).
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(MANIFEST_FILE);
        tinyforge_task::write_atomic(&path, &self.to_bytes()?)?;
        Ok(path)
    }
}

/// The settings every shard of a dataset shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetHeader {
    pub tokenizer_sha256: String,
    pub vocab_size: u32,
    pub dtype: Dtype,
    pub eos_id: u32,
    pub frame_tokens: u32,
}
