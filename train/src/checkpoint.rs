//! Checkpoints: a folder per step, written under a temporary name and renamed into place, so a
//! kill at any moment leaves either the old set of checkpoints or the new one, never a torn one.
//!
//! ```text
//! step-00000120/
//!   model.safetensors      Hugging Face LLaMA names, fp32 (transformers loads it as is)
//!   config.json            Hugging Face LlamaConfig
//!   optimizer.safetensors  AdamW moments `exp_avg`, `exp_avg_sq` (flat fp32)
//!   state.json             RunState: step, round, plan cursor, RNG, sha256 of the files above
//!   tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json
//!                          the dataset's tokenizer (when it carries one) and generation ids
//! ```
//!
//! Loading checks every file's sha256 against `state.json` before reading a tensor, so a
//! truncated or flipped file is refused with the file's name instead of training on garbage.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use tinyforge_model::{CONFIG_FILE, MODEL_FILE, ModelConfig};

use crate::error::{Error, Result};
use crate::model::Model;

pub const FORMAT: &str = "tinyforge-checkpoint";
pub const VERSION: u32 = 1;
const OPTIM_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";

/// Where a run stands: enough to continue at the exact next batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub format: String,
    pub version: u32,
    /// Optimizer steps done in the whole run (all rounds).
    pub step: u64,
    /// Index of the round in progress (0-based).
    pub round: usize,
    /// Steps of this round's plan done: the plan cursor.
    pub round_step: u64,
    /// Steps in this round's plan.
    pub round_steps: u64,
    pub tokens: u64,
    /// Seed of the run and position of its ChaCha stream (synthetic batches draw from it).
    pub seed: u64,
    pub rng_word_pos: u128,
    /// Loss of the last step (none before the first).
    pub last_loss: Option<f64>,
    pub model: ModelConfig,
    /// sha256 of every other file of the checkpoint.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

impl RunState {
    /// The state of a run that has taken no step yet.
    pub fn fresh(seed: u64, model: &ModelConfig) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            step: 0,
            round: 0,
            round_step: 0,
            round_steps: 0,
            tokens: 0,
            seed,
            rng_word_pos: 0,
            last_loss: None,
            model: model.clone(),
            files: Default::default(),
        }
    }

    pub fn round_done(&self) -> bool {
        self.round_step >= self.round_steps
    }
}

pub use tinyforge_model::{step_dir_name, step_of_dir_name};

/// The AdamW moments of the whole flat buffer (gathered from the ranks under ZeRO-1).
pub struct Moments {
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

/// Write a checkpoint of `model` (+ optimizer moments when given) into `dir/step-NNNNNNNN`,
/// atomically.
pub fn save(
    dir: &Path,
    model: &Model,
    optim: Option<&Moments>,
    state: &RunState,
    eos_id: Option<u32>,
    tokenizer: &[(String, Vec<u8>)],
) -> Result<PathBuf> {
    fs_err::create_dir_all(dir).map_err(Error::Io)?;
    let final_dir = dir.join(step_dir_name(state.step));
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        step_dir_name(state.step),
        std::process::id()
    ));
    if tmp.exists() {
        fs_err::remove_dir_all(&tmp).map_err(Error::Io)?;
    }
    fs_err::create_dir_all(&tmp).map_err(Error::Io)?;
    write_model_files(&tmp, model, eos_id)?;
    if let Some(eos) = eos_id {
        tinyforge_model::write_tokenizer_files(&tmp, tokenizer, model.config().max_seq_len, eos)?;
    }
    if let Some(o) = optim {
        let moments = [
            ("exp_avg", o.exp_avg.to_device(Device::Cpu)),
            ("exp_avg_sq", o.exp_avg_sq.to_device(Device::Cpu)),
        ];
        Tensor::write_safetensors(&moments, tmp.join(OPTIM_FILE))?;
    }
    let mut state = state.clone();
    state.files.clear();
    for name in [MODEL_FILE, OPTIM_FILE, CONFIG_FILE] {
        let p = tmp.join(name);
        if p.exists() {
            state.files.insert(name.to_string(), sha256_file(&p)?);
        }
    }
    fs_err::write(
        tmp.join(STATE_FILE),
        serde_json::to_vec_pretty(&state).expect("json"),
    )
    .map_err(Error::Io)?;
    for name in state.files.keys().map(String::as_str).chain([STATE_FILE]) {
        fs_err::File::open(tmp.join(name))
            .map_err(Error::Io)?
            .sync_all()
            .map_err(Error::Io)?;
    }
    if final_dir.exists() {
        // The same step written again (a resumed run that re-saves): replace it.
        fs_err::remove_dir_all(&final_dir).map_err(Error::Io)?;
    }
    fs_err::rename(&tmp, &final_dir).map_err(Error::Io)?;
    Ok(final_dir)
}

/// The Hugging Face part of a model folder: `model.safetensors` (f32, Hugging Face names) and
/// `config.json`, into the existing folder `dir` (checkpoints and inherited students alike).
pub fn write_model_files(dir: &Path, model: &Model, eos_id: Option<u32>) -> Result<()> {
    let named: Vec<(String, Tensor)> = model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.to_device(Device::Cpu).contiguous()))
        .collect();
    Tensor::write_safetensors(&named, dir.join(MODEL_FILE))?;
    let cfg = serde_json::to_vec_pretty(&model.config().hf_config(eos_id)).expect("json");
    fs_err::write(dir.join(CONFIG_FILE), cfg).map_err(Error::Io)?;
    Ok(())
}

/// The newest complete checkpoint in `dir` (folders `step-N`; temporary ones are ignored).
pub fn latest(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(tinyforge_model::newest_step(dir)?)
}

/// Keep the newest `keep` checkpoints of `dir`, delete older ones.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut steps: Vec<(u64, PathBuf)> = fs_err::read_dir(dir)
        .map_err(Error::Io)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            tinyforge_model::step_of_dir_name(&e.file_name().to_string_lossy())
                .map(|s| (s, e.path()))
        })
        .collect();
    steps.sort();
    let drop = steps.len().saturating_sub(keep.max(1));
    for (_, p) in steps.into_iter().take(drop) {
        fs_err::remove_dir_all(p).map_err(Error::Io)?;
    }
    Ok(())
}

/// Read and verify `state.json` and the checksums of the files it lists.
pub fn read_state(ckpt: &Path) -> Result<RunState> {
    let path = ckpt.join(STATE_FILE);
    if !path.exists() {
        return Err(Error::ckpt(
            ckpt,
            "no state.json: not a tinyforge checkpoint, or an incomplete one",
        ));
    }
    let text = fs_err::read(&path).map_err(Error::Io)?;
    let state: RunState = serde_json::from_slice(&text)
        .map_err(|e| Error::ckpt(&path, format!("unreadable state: {e}")))?;
    if state.format != FORMAT || state.version != VERSION {
        return Err(Error::ckpt(
            &path,
            format!(
                "format {} v{}, expected {FORMAT} v{VERSION}",
                state.format, state.version
            ),
        ));
    }
    if !state.files.contains_key(MODEL_FILE) {
        return Err(Error::ckpt(&path, "lists no model.safetensors"));
    }
    for (name, want) in &state.files {
        let p = ckpt.join(name);
        if !p.exists() {
            return Err(Error::ckpt(&p, "missing"));
        }
        let got = sha256_file(&p)?;
        if &got != want {
            return Err(Error::ckpt(
                &p,
                format!("corrupt: sha256 {got} does not match {want} recorded in state.json"),
            ));
        }
    }
    Ok(state)
}

/// Load a verified checkpoint's model onto `device`, computing in `compute`.
pub fn load_model(ckpt: &Path, device: Device, compute: Kind) -> Result<(Model, RunState)> {
    let state = read_state(ckpt)?;
    let mut model = Model::zeros(&state.model, device, compute)?;
    let path = ckpt.join(MODEL_FILE);
    let tensors = Tensor::read_safetensors(&path).map_err(|e| Error::ckpt(&path, e.to_string()))?;
    model.load_named(&tensors, &path)?;
    Ok((model, state))
}

/// The optimizer moments of a checkpoint (the whole flat buffer, whatever world size wrote it),
/// checked against the model's `numel` elements.
pub fn load_moments(ckpt: &Path, state: &RunState, numel: i64) -> Result<Moments> {
    let path = ckpt.join(OPTIM_FILE);
    if !state.files.contains_key(OPTIM_FILE) {
        return Err(Error::ckpt(
            ckpt,
            "holds no optimizer state (a model-only checkpoint cannot resume)",
        ));
    }
    let tensors = Tensor::read_safetensors(&path).map_err(|e| Error::ckpt(&path, e.to_string()))?;
    let take = |name: &str| -> Result<Tensor> {
        let (_, t) = tensors
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::ckpt(&path, format!("missing {name}")))?;
        if t.size() != [numel] {
            return Err(Error::ckpt(
                &path,
                format!("{name}: shape {:?}, expected [{numel}]", t.size()),
            ));
        }
        Ok(t.shallow_clone())
    };
    Ok(Moments {
        exp_avg: take("exp_avg")?,
        exp_avg_sq: take("exp_avg_sq")?,
    })
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs_err::File::open(path).map_err(Error::Io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Error::Io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// A checkpoint's model config without loading tensors (for `tinyforge model info`, eval).
pub fn model_config(ckpt: &Path) -> Result<ModelConfig> {
    Ok(tinyforge_model::read_hf_config(ckpt)?)
}
