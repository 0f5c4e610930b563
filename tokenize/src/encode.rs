//! The tokenizer side: load a Hugging Face `tokenizer.json`, find its EOS token, encode batches
//! of documents in parallel.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ahash::AHashMap;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tinyforge_pretok::Splitter;
use tokenizers::{Model, Tokenizer};

use crate::error::{Error, Result};
use crate::input::DocBatch;

/// A loaded tokenizer and what the dataset manifest records about it.
pub struct TokenizerInfo {
    pub tokenizer: Tokenizer,
    pub path: PathBuf,
    pub sha256: String,
    /// One past the largest id the tokenizer can emit (added tokens included).
    pub vocab_size: u32,
    pub eos_id: u32,
    pub eos_token: String,
    /// Where the EOS came from: `--eos`, `tokenizer_config.json` or the usual spellings.
    pub eos_source: &'static str,
    /// The `tokenizer_config.json` beside the tokenizer, when there is one.
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    /// The bytes of `tokenizer.json` (a dataset carries a copy).
    bytes: Vec<u8>,
    /// The fast pre-tokenizer, when the tokenizer has its layout (Qwen-style byte-level BPE).
    splitter: Option<Splitter>,
    /// Word caches (word → ids) of the encoding threads, kept between batches.
    caches: Mutex<Vec<WordCache>>,
}

/// Distinct words a thread's cache holds before it starts over (bounds memory: about 100 bytes
/// a word).
const WORD_CACHE: usize = 1 << 18;

/// One thread's words and their ids, plus scratch buffers.
#[derive(Default)]
struct WordCache {
    ids: AHashMap<String, Box<[u32]>>,
    normalized: String,
    input: String,
}

/// A cache taken from the pool for one rayon job; goes back when the job ends.
struct Lease<'a> {
    cache: Option<WordCache>,
    pool: &'a Mutex<Vec<WordCache>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.take() {
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cache);
        }
    }
}

impl TokenizerInfo {
    /// Loads `path`; `eos` names the EOS token (default: the `eos_token` of the
    /// `tokenizer_config.json` beside it, else the first of the usual spellings the vocabulary
    /// has).
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
        let config =
            tinyforge_model::read_tokenizer_config(path).map_err(|e| Error::Tokenizer {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let has = |token: &str| vocab.contains_key(token);
        let (eos_token, eos_source) = match eos {
            Some(name) => (name.to_owned(), "--eos"),
            None => tinyforge_model::default_eos(config.as_ref(), &has).ok_or_else(|| {
                Error::Tokenizer {
                    path: path.to_path_buf(),
                    message: format!(
                        "no EOS token: no {} beside it names one, and the vocabulary has none \
                         of {:?}; name one with --eos",
                        tinyforge_model::TOKENIZER_CONFIG_FILE,
                        tinyforge_model::EOS_CANDIDATES
                    ),
                }
            })?,
        };
        let eos_id = *vocab.get(&eos_token).ok_or_else(|| Error::Tokenizer {
            path: path.to_path_buf(),
            message: format!("EOS token {eos_token:?} ({eos_source}) is not in the vocabulary"),
        })?;
        let splitter = Splitter::new(&tokenizer);
        tracing::debug!(fast = splitter.is_some(), "pre-tokenizer");
        Ok(Self {
            tokenizer,
            path: path.to_path_buf(),
            sha256,
            vocab_size,
            eos_id,
            eos_token,
            eos_source,
            config,
            bytes,
            splitter,
            caches: Mutex::new(Vec::new()),
        })
    }

    /// Writes the tokenizer files into `dir` (a dataset folder): `tokenizer.json`, and its
    /// `tokenizer_config.json` and `special_tokens_map.json` with this EOS, so that the folder
    /// (and every checkpoint trained on it) loads in `AutoTokenizer.from_pretrained`.
    pub fn write_folder_files(&self, dir: &Path) -> Result<()> {
        tinyforge_task::write_atomic(&dir.join(tinyforge_model::TOKENIZER_FILE), &self.bytes)?;
        let id_of = |token: &str| self.tokenizer.token_to_id(token);
        tinyforge_model::write_tokenizer_config(
            dir,
            self.config.as_ref(),
            &self.eos_token,
            &id_of,
            &Some,
            None,
        )
        .map_err(|e| Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        Ok(())
    }

    /// Encodes every document of `batch` (no special tokens added; the writer appends EOS).
    /// Parallel over documents on the current rayon pool; the result keeps the batch order.
    pub fn encode_batch(&self, batch: &DocBatch) -> Result<Vec<Vec<u32>>> {
        batch
            .texts
            .par_iter()
            .enumerate()
            .map_init(
                || self.lease(),
                |lease, (i, text)| {
                    let fast = match (&self.splitter, lease.cache.as_mut()) {
                        (Some(splitter), Some(cache)) => self.encode_fast(splitter, cache, text),
                        _ => None,
                    };
                    match fast {
                        Some(ids) => ids,
                        None => self.encode(text),
                    }
                    .map_err(|message| Error::Encode {
                        path: batch.path.clone(),
                        row: batch.first_row + i as u64,
                        message,
                    })
                },
            )
            .collect()
    }

    fn lease(&self) -> Lease<'_> {
        let cache = self
            .caches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        Lease {
            cache: Some(cache),
            pool: &self.caches,
        }
    }

    /// The ids of `text` through the fast pre-tokenizer and the word cache: exactly those of
    /// [`TokenizerInfo::encode`] (BPE encodes each pre-tokenized word on its own). `None` when
    /// the text needs the full pipeline (it holds an added token).
    fn encode_fast(
        &self,
        splitter: &Splitter,
        cache: &mut WordCache,
        text: &str,
    ) -> Option<Result<Vec<u32>, String>> {
        if cache.ids.len() >= WORD_CACHE {
            cache.ids.clear();
        }
        let model = self.tokenizer.get_model();
        let mut ids = Vec::with_capacity(text.len() / 3);
        let mut failure = None;
        let WordCache {
            ids: words,
            normalized,
            input,
        } = cache;
        let split = splitter.split(text, normalized, |word| {
            if let Some(known) = words.get(word) {
                ids.extend_from_slice(known);
                return;
            }
            splitter.model_input(word, input);
            match model.tokenize(input) {
                Ok(tokens) => {
                    let word_ids: Box<[u32]> = tokens.iter().map(|t| t.id).collect();
                    ids.extend_from_slice(&word_ids);
                    words.insert(word.to_owned(), word_ids);
                }
                Err(e) => {
                    failure.get_or_insert_with(|| format!("word {word:?}: {e}"));
                }
            }
        });
        if !split {
            return None;
        }
        Some(match failure {
            Some(message) => Err(message),
            None => Ok(ids),
        })
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
