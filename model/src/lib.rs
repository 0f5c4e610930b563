//! The one description of a tinyforge model, without libtorch: the shape ([`ModelConfig`],
//! from built-in or TOML configs), Hugging Face `config.json` in both directions (LLaMA, Qwen2
//! and Mistral blocks; anything else refused by field and value), the tensor names and roles
//! ([`tensor_specs`]), safetensors I/O ([`Weights`]: single file or sharded index), parameter
//! counting, the checkpoint folder's file names, the tokenizer and generation configs that
//! make a folder load in transformers as it is, GGUF export for llama.cpp ([`export_gguf`]),
//! and where a model runs ([`Device`], [`Precision`]: the spellings of flags and configs).
//! vocab, train, eval and inherit use it.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod device;
mod error;
mod folder;
mod gguf;
mod hf;
mod tensors;
mod tokenizer;
mod weights;

pub use config::{AttentionBias, ModelConfig, ModelOptions, builtin_names};
pub use device::{Device, Precision};
pub use error::{Error, Result};
pub use folder::{
    CONFIG_FILE, INDEX_FILE, MODEL_FILE, newest_step, step_dir_name, step_of_dir_name,
};
pub use gguf::{GgufReport, GgufType, export_gguf};
pub use hf::{SUPPORTED_MODEL_TYPES, eos_token_id, from_hf_config, read_hf_config};
pub use tensors::{Role, TensorSpec, tensor_specs};
pub use tokenizer::{
    EOS_CANDIDATES, GENERATION_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, SpecialTokens,
    TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, TOKENIZER_FILES, added_token_id, configured_token,
    default_eos, read_tokenizer_config, write_tokenizer_config, write_tokenizer_files,
};
pub use weights::{Weights, write_safetensors};
