//! The old→new id map written next to the pruned tokenizer (`id_map.json`). Parameter
//! inheritance reads it to gather the teacher's embedding and head rows: row `new` of the
//! compact model is row `new_to_old[new]` of the base model.

use std::path::Path;

use crate::error::{Error, Result};

pub const ID_MAP_FORMAT: &str = "tinyforge-id-map";
pub const ID_MAP_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMap {
    pub format: String,
    pub version: u32,
    /// SHA-256 of the base `tokenizer.json`.
    pub base_tokenizer_sha256: String,
    /// SHA-256 of the pruned `tokenizer.json`.
    pub tokenizer_sha256: String,
    /// Id space of the base tokenizer (largest id + 1).
    pub base_vocab_size: u32,
    /// Vocabulary size of the pruned tokenizer, added tokens included.
    pub vocab_size: u32,
    /// True when `new_to_old` is increasing (ids keep their original order), so old→new is a
    /// binary search.
    pub monotone: bool,
    /// `new_to_old[new] = old`, one entry per pruned id.
    pub new_to_old: Vec<u32>,
}

impl IdMap {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let map: Self = serde_json::from_slice(&bytes).map_err(|e| Error::Counts {
            path: path.to_owned(),
            message: format!("not a valid id map: {e}"),
        })?;
        if map.format != ID_MAP_FORMAT || map.version != ID_MAP_VERSION {
            return Err(Error::Counts {
                path: path.to_owned(),
                message: format!(
                    "id map format {:?} version {} is not {ID_MAP_FORMAT:?} version \
                     {ID_MAP_VERSION}",
                    map.format, map.version
                ),
            });
        }
        Ok(map)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec(self).map_err(|e| Error::Internal(e.to_string()))?;
        bytes.push(b'\n');
        crate::prune::write_atomic(path, &bytes)
    }

    /// The new id of base id `old`, or `None` when it was pruned.
    pub fn old_to_new(&self, old: u32) -> Option<u32> {
        if self.monotone {
            self.new_to_old.binary_search(&old).ok().map(|i| i as u32)
        } else {
            self.new_to_old
                .iter()
                .position(|&o| o == old)
                .map(|i| i as u32)
        }
    }

    /// `table[old]` = new id, over the whole base id space.
    pub fn old_to_new_table(&self) -> Vec<Option<u32>> {
        let mut table = vec![None; self.base_vocab_size as usize];
        for (new, &old) in self.new_to_old.iter().enumerate() {
            if let Some(slot) = table.get_mut(old as usize) {
                *slot = Some(new as u32);
            }
        }
        table
    }
}
