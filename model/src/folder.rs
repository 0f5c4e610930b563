//! The checkpoint folder (docs/FORMAT.md, "Checkpoints"): the file names every reader and writer
//! uses, and how a training run folder's newest checkpoint is found.

use std::path::{Path, PathBuf};

use crate::error::Result;

/// The weights, Hugging Face names (transformers loads the folder as it is).
pub const MODEL_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint (`weight_map`: tensor name -> shard file).
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Hugging Face `config.json`.
pub const CONFIG_FILE: &str = "config.json";

/// `step-NNNNNNNN`: the folder of the checkpoint after `step` optimizer steps.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The step of a checkpoint folder named `step-N` (none for any other name, temporary ones
/// included).
pub fn step_of_dir_name(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// The newest complete checkpoint `step-N` in `dir` (temporary folders are ignored), if any.
pub fn newest_step(dir: &Path) -> Result<Option<PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(step) = step_of_dir_name(&name)
            && best.as_ref().is_none_or(|(b, _)| step > *b)
        {
            best = Some((step, entry.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}
