//! The one description of a tinyforge model, without libtorch: the shape ([`ModelConfig`],
//! from built-in or TOML configs), Hugging Face `config.json` in both directions (LLaMA, Qwen2
//! and Mistral blocks; anything else refused by field and value), the tensor names and roles
//! ([`tensor_specs`]), safetensors I/O ([`Weights`]: single file or sharded index), parameter
//! counting, and the checkpoint folder's file names. vocab, train, eval and inherit use it.

mod config;
mod error;
mod folder;
mod hf;
mod tensors;
mod weights;

pub use config::{AttentionBias, ModelConfig, ModelOptions, builtin_names};
pub use error::{Error, Result};
pub use folder::{
    CONFIG_FILE, INDEX_FILE, MODEL_FILE, newest_step, step_dir_name, step_of_dir_name,
};
pub use hf::{SUPPORTED_MODEL_TYPES, eos_token_id, from_hf_config, read_hf_config};
pub use tensors::{Role, TensorSpec, tensor_specs};
pub use weights::{Weights, write_safetensors};
