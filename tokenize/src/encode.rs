//! The tokenizer side: load a Hugging Face `tokenizer.json`, find its EOS token, encode batches
//! of documents in parallel.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::input::DocBatch;

/// EOS spellings tried in order when the caller names none (Qwen/GPT, LLaMA-2, LLaMA-3, Gemma).
const EOS_CANDIDATES: &[&str] = &[
    "<|endoftext|>",
    "</s>",
    "<|end_of_text|>",
    "<eos>",
    "<|im_end|>",
];

/// A loaded tokenizer and what the dataset manifest records about it.
pub struct TokenizerInfo {
    pub tokenizer: Tokenizer,
    pub path: PathBuf,
    pub sha256: String,
    /// One past the largest id the tokenizer can emit (added tokens included).
    pub vocab_size: u32,
    pub eos_id: u32,
    pub eos_token: String,
}

impl TokenizerInfo {
    /// Loads `path`; `eos` names the EOS token (default: the first of the usual spellings the
    /// vocabulary has).
    pub fn load(path: &Path, eos: Option<&str>) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let vocab = tokenizer.get_vocab(true);
        let vocab_size = vocab.values().copied().max().map_or(0, |m| m + 1);
        let vocab_size = vocab_size.max(tokenizer.get_vocab_size(true) as u32);
        let eos_token = match eos {
            Some(name) => name.to_owned(),
            None => EOS_CANDIDATES
                .iter()
                .find(|c| vocab.contains_key(**c))
                .map(|c| (*c).to_owned())
                .ok_or_else(|| Error::Tokenizer {
                    path: path.to_path_buf(),
                    message: format!("no EOS token among {EOS_CANDIDATES:?}; name one with --eos"),
                })?,
        };
        let eos_id = *vocab.get(&eos_token).ok_or_else(|| Error::Tokenizer {
            path: path.to_path_buf(),
            message: format!("EOS token {eos_token:?} is not in the vocabulary"),
        })?;
        Ok(Self {
            tokenizer,
            path: path.to_path_buf(),
            sha256,
            vocab_size,
            eos_id,
            eos_token,
        })
    }

    /// Encodes every document of `batch` (no special tokens added; the writer appends EOS).
    /// Parallel over documents on the current rayon pool; the result keeps the batch order.
    pub fn encode_batch(&self, batch: &DocBatch) -> Result<Vec<Vec<u32>>> {
        batch
            .texts
            .par_iter()
            .enumerate()
            .map(|(i, text)| {
                self.encode(text).map_err(|message| Error::Encode {
                    path: batch.path.clone(),
                    row: batch.first_row + i as u64,
                    message,
                })
            })
            .collect()
    }

    /// Encodes one text without offsets (`encode_fast`): the ids are those of `encode`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }

    /// Ids back to text (special tokens kept, so EOS shows where documents end).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }
}
