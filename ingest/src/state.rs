//! What is on disk besides the parts: `_state/plan.json` (the plan's fingerprint),
//! `_state/chunk-N.json` (a finished chunk: its parts and counts; writing it is the commit
//! point of the chunk), `_state/chunk-N.hashes` (content hashes of the chunk's documents in row
//! order, for the cross-chunk deduplication) and `_state/chunk-N.rejects.jsonl`.

use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::part::{PartInfo, write_atomic};
use crate::plan::Plan;
use crate::report::Counts;

pub const STATE_DIR: &str = "_state";
pub const MANIFEST: &str = "_manifest.json";
pub const REJECTS: &str = "_rejects.jsonl";

/// A set of document content hashes. They are xxh3-128 digests, uniform already, so their
/// low 64 bits serve as the table's hash with no hashing of their own.
pub(crate) type HashSet128 = std::collections::HashSet<u128, BuildHasherDefault<LowBits>>;

#[derive(Default)]
pub(crate) struct LowBits(u64);

impl Hasher for LowBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; anything else still hashes (FNV-1a).
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

/// Makes a file of the output folder present before a step reads it, given the file's name
/// relative to the folder (`part-0003.parquet`, `_state/chunk-0003.hashes`): for a folder
/// staged from an object store, downloads it. See [`crate::RunOptions::fetch`].
pub type Fetch = std::sync::Arc<dyn Fn(&str) -> std::io::Result<()> + Send + Sync>;

/// The chunk a file of an output folder belongs to, from its name: `part-0003.parquet`,
/// `part-0003_001.parquet` and `_state/chunk-0003.json` (`.hashes`, `.rejects.jsonl`) are
/// chunk 3's; `None` for the folder's other files.
pub fn chunk_of_file(name: &str) -> Option<usize> {
    let rest = match name.strip_prefix("_state/") {
        Some(state) => state.strip_prefix("chunk-")?,
        None => name.strip_prefix("part-")?,
    };
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanRecord {
    pub fingerprint: String,
    pub chunks: usize,
}

/// A finished chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub fingerprint: String,
    pub chunk: usize,
    pub parts: Vec<PartInfo>,
    pub counts: Counts,
    pub rejects: u64,
    /// True once cross-chunk duplicates were removed by the final merge.
    #[serde(default)]
    pub merged: bool,
}

pub struct State {
    pub out: PathBuf,
    pub dir: PathBuf,
    width: usize,
    fingerprint: String,
    fetch: Option<Fetch>,
}

impl State {
    /// Opens (or starts) the state of an output folder; a folder made with another plan is an
    /// error, so that a resume never mixes two configurations.
    pub fn open(out: &Path, plan: &Plan) -> Result<State> {
        let dir = out.join(STATE_DIR);
        fs_err::create_dir_all(&dir)?;
        let path = dir.join("plan.json");
        let record = PlanRecord {
            fingerprint: plan.fingerprint.clone(),
            chunks: plan.chunks.len(),
        };
        if path.exists() {
            let found: PlanRecord = read_json(&path)?;
            if found.fingerprint != record.fingerprint {
                return Err(Error::State {
                    path,
                    message: "this output folder was written with other inputs or options; use a new --out, or --force to start over".into(),
                });
            }
        } else {
            write_atomic(
                &path,
                &serde_json::to_vec_pretty(&record).map_err(internal)?,
            )?;
        }
        Ok(State {
            out: out.to_owned(),
            dir,
            width: plan.width,
            fingerprint: plan.fingerprint.clone(),
            fetch: None,
        })
    }

    /// Files this run reads are first made present by `fetch`.
    pub fn with_fetch(self, fetch: Option<Fetch>) -> State {
        State { fetch, ..self }
    }

    /// Makes `path` (inside the output folder) present, when the run was given a fetch.
    pub fn fetch(&self, path: &Path) -> Result<()> {
        let Some(fetch) = &self.fetch else {
            return Ok(());
        };
        let rel = path.strip_prefix(&self.out).unwrap_or(path);
        let name: Vec<_> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect();
        fetch(&name.join("/")).map_err(|err| Error::State {
            path: path.to_owned(),
            message: format!("cannot fetch: {err}"),
        })
    }

    fn file(&self, chunk: usize, suffix: &str) -> PathBuf {
        let width = self.width;
        self.dir.join(format!("chunk-{chunk:0width$}.{suffix}"))
    }

    pub fn record_path(&self, chunk: usize) -> PathBuf {
        self.file(chunk, "json")
    }

    pub fn hashes_path(&self, chunk: usize) -> PathBuf {
        self.file(chunk, "hashes")
    }

    pub fn rejects_path(&self, chunk: usize) -> PathBuf {
        self.file(chunk, "rejects.jsonl")
    }

    /// The record of a finished chunk, if there is one for this plan.
    pub fn finished(&self, chunk: usize) -> Result<Option<ChunkRecord>> {
        let path = self.record_path(chunk);
        if !path.exists() {
            return Ok(None);
        }
        let record: ChunkRecord = read_json(&path)?;
        Ok((record.fingerprint == self.fingerprint).then_some(record))
    }

    pub fn commit(&self, record: &ChunkRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(internal)?;
        write_atomic(&self.record_path(record.chunk), &bytes)
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn write_hashes(&self, chunk: usize, hashes: &[u128]) -> Result<()> {
        let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.to_le_bytes()).collect();
        write_atomic(&self.hashes_path(chunk), &bytes)
    }

    pub fn read_hashes(&self, chunk: usize) -> Result<Vec<u128>> {
        let path = self.hashes_path(chunk);
        self.fetch(&path)?;
        let bytes = fs_err::read(&path)?;
        if bytes.len() % 16 != 0 {
            return Err(Error::State {
                path,
                message: "truncated hash file".into(),
            });
        }
        Ok(bytes
            .chunks_exact(16)
            .map(|b| u128::from_le_bytes(b.try_into().unwrap_or([0; 16])))
            .collect())
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs_err::read(path)?;
    serde_json::from_slice(&bytes).map_err(|err| Error::State {
        path: path.to_owned(),
        message: format!("unreadable: {err}"),
    })
}

fn internal(err: serde_json::Error) -> Error {
    Error::Internal(err.to_string())
}

/// Removes what a previous run of this plan may have left: temporary files, and with `all`
/// every part, state and manifest (for `--force`).
pub fn clean_output(out: &Path, all: bool) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    for dir in [out.to_owned(), out.join(STATE_DIR)] {
        if !dir.exists() {
            continue;
        }
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let temp = tinyforge_task::temp_target(&name);
            let target = temp.unwrap_or(&name);
            let ours = target.starts_with("part-")
                || target.starts_with("chunk-")
                || target.starts_with("dedup-")
                || target == MANIFEST
                || target == REJECTS
                || target == "plan.json";
            if ours && path.is_file() && (all || temp.is_some()) {
                fs_err::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::chunk_of_file;

    #[test]
    fn files_name_their_chunk() {
        assert_eq!(chunk_of_file("part-0003.parquet"), Some(3));
        assert_eq!(chunk_of_file("part-0012_001.parquet"), Some(12));
        assert_eq!(chunk_of_file("_state/chunk-0007.json"), Some(7));
        assert_eq!(chunk_of_file("_state/chunk-0007.rejects.jsonl"), Some(7));
        assert_eq!(chunk_of_file("_state/plan.json"), None);
        assert_eq!(chunk_of_file("_state/dedup-0-of-4.drops"), None);
        assert_eq!(chunk_of_file("_manifest.json"), None);
        assert_eq!(chunk_of_file("part-.parquet"), None);
    }
}
