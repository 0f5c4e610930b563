//! The tokenizer side: load a Hugging Face `tokenizer.json`, find its EOS token, encode batches
//! of documents in parallel.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ahash::AHashMap;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tinyforge_pretok::Splitter;
use tokenizers::{Model, OffsetType, PreTokenizer, Token, Tokenizer};

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
    /// Characters of one pre-token the model encodes at a time (see [`TokenizerInfo::load`]).
    max_pretoken_chars: usize,
}

/// The default of [`TokenizerInfo::load`]'s `max_pretoken_chars`: 64 Ki characters, which for a
/// byte-level tokenizer is 64 KiB of text without a break the pre-tokenizer's regex recognises
/// (a run of 21,845 Han characters with no punctuation, say). Llama 3's reference tokenizer
/// cuts such runs at 25,000 characters for the same reason.
pub const DEFAULT_MAX_PRETOKEN_CHARS: usize = 1 << 16;

/// Bytes a thread's word cache holds (words, their ids and a per-entry overhead) before it starts
/// over.
const WORD_CACHE_BYTES: usize = 32 << 20;

/// Words longer than this are encoded every time, never cached: long words rarely repeat, and
/// `tokenizers`' own BPE cache stops at the same length.
const CACHED_WORD_BYTES: usize = 256;

/// One thread's words and their ids, plus scratch buffers.
#[derive(Default)]
struct WordCache {
    ids: AHashMap<String, Box<[u32]>>,
    /// What `ids` holds, by [`WORD_CACHE_BYTES`]'s measure.
    bytes: usize,
    normalized: String,
    input: String,
}

/// The ids of one document and how many of its pre-tokens were longer than the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Pre-tokens of more than `max_pretoken_chars` characters: each was encoded in pieces.
    pub long_pretokens: u32,
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
    ///
    /// `max_pretoken_chars` bounds the work of one pre-token: the BPE model receives a longer one
    /// (more characters of model input: for byte-level tokenizers, one per byte of text) as
    /// consecutive pieces of that many characters, each encoded on its own. `tokenizers` merges
    /// a pre-token in memory and time that grow with its length (a 20 MB one took 1.5 GB and
    /// 17 s), so this keeps both bounded by the limit whatever the document; the ids differ from
    /// `tokenizers`' only inside such a pre-token, near the cuts.
    pub fn load(path: &Path, eos: Option<&str>, max_pretoken_chars: usize) -> Result<Self> {
        if max_pretoken_chars == 0 {
            return Err(Error::Config("max_pretoken_chars must be positive".into()));
        }
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
            max_pretoken_chars,
        })
    }

    /// Characters of one pre-token the model encodes at a time.
    pub fn max_pretoken_chars(&self) -> usize {
        self.max_pretoken_chars
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
    pub fn encode_batch(&self, batch: &DocBatch) -> Result<Vec<Encoded>> {
        batch
            .texts
            .par_iter()
            .enumerate()
            .map_init(
                || self.lease(),
                |lease, (i, text)| {
                    // A panic (a bug, or `tokenizers` on input it cannot take) fails the
                    // document by file and row, and the shards finished before it stay done.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        fail::fail_point!("tokenize::document");
                        let fast = match (&self.splitter, lease.cache.as_mut()) {
                            (Some(splitter), Some(cache)) => {
                                self.encode_fast(splitter, cache, text)
                            }
                            _ => None,
                        };
                        match fast {
                            Some(encoded) => encoded,
                            None => self.encode_bounded(text),
                        }
                    }))
                    .unwrap_or_else(|payload| Err(panic_message(&*payload)))
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
    /// [`TokenizerInfo::encode_bounded`] (BPE encodes each pre-tokenized word on its own).
    /// `None` when the text needs the full pipeline (it holds an added token).
    fn encode_fast(
        &self,
        splitter: &Splitter,
        cache: &mut WordCache,
        text: &str,
    ) -> Option<Result<Encoded, String>> {
        if cache.bytes >= WORD_CACHE_BYTES {
            cache.ids.clear();
            cache.bytes = 0;
        }
        let model = self.tokenizer.get_model();
        let mut encoded = Encoded {
            ids: Vec::with_capacity(text.len() / 3),
            long_pretokens: 0,
        };
        let mut failure = None;
        let WordCache {
            ids: words,
            bytes,
            normalized,
            input,
        } = cache;
        let split = splitter.split(text, normalized, |word| {
            // The model input has one character per byte of the word.
            if word.len() > self.max_pretoken_chars {
                encoded.long_pretokens += 1;
            }
            if let Some(known) = words.get(word) {
                encoded.ids.extend_from_slice(known);
                return;
            }
            splitter.model_input(word, input);
            let start = encoded.ids.len();
            let result = tokenize_in_pieces(model, input, self.max_pretoken_chars, |tokens| {
                encoded.ids.extend(tokens.iter().map(|t| t.id));
            });
            match result {
                Ok(()) if word.len() <= CACHED_WORD_BYTES => {
                    let word_ids: Box<[u32]> = encoded.ids[start..].into();
                    *bytes += word.len() + 4 * word_ids.len() + 64;
                    words.insert(word.to_owned(), word_ids);
                }
                Ok(()) => {}
                Err(e) => {
                    failure.get_or_insert_with(|| {
                        format!("word {:?}: {e}", truncate_for_message(word))
                    });
                }
            }
        });
        if !split {
            return None;
        }
        Some(match failure {
            Some(message) => Err(message),
            None => Ok(encoded),
        })
    }

    /// The ids of `text` through `tokenizers`' own pipeline (added tokens, normalizer,
    /// pre-tokenizer, model, post-processor without special tokens), with each pre-token longer
    /// than `max_pretoken_chars` given to the model in pieces. Without such a pre-token the ids
    /// are [`TokenizerInfo::encode`]'s.
    pub fn encode_bounded(&self, text: &str) -> Result<Encoded, String> {
        let tokenizer = &self.tokenizer;
        let model = tokenizer.get_model();
        let mut pretokenized = tokenizer
            .get_added_vocabulary()
            .extract_and_normalize(tokenizer.get_normalizer(), text);
        if let Some(pre_tokenizer) = tokenizer.get_pre_tokenizer() {
            pre_tokenizer
                .pre_tokenize(&mut pretokenized)
                .map_err(|e| e.to_string())?;
        }
        let long_pretokens = std::cell::Cell::new(0u32);
        pretokenized
            .tokenize(|normalized| {
                let input = normalized.get();
                if input.len() > self.max_pretoken_chars
                    && input.chars().count() > self.max_pretoken_chars
                {
                    long_pretokens.set(long_pretokens.get() + 1);
                }
                let mut tokens = Vec::new();
                tokenize_in_pieces(model, input, self.max_pretoken_chars, |piece| {
                    tokens.extend_from_slice(piece);
                })
                .map_err(|e| format!("word {:?}: {e}", truncate_for_message(input)))?;
                Ok(tokens)
            })
            .map_err(|e| e.to_string())?;
        let encoding = pretokenized
            .into_encoding(None, 0, OffsetType::None)
            .and_then(|encoding| tokenizer.post_process(encoding, None, false))
            .map_err(|e| e.to_string())?;
        Ok(Encoded {
            ids: encoding.get_ids().to_vec(),
            long_pretokens: long_pretokens.get(),
        })
    }

    /// Encodes one text exactly as `tokenizers`' `encode_fast(text, false)` does: the reference
    /// the dataset's ids are tested against. Its memory and time grow with the longest
    /// pre-token; [`TokenizerInfo::encode_batch`] bounds them.
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

/// Runs `model` over `input` in consecutive pieces of at most `limit` characters (one piece
/// when it is no longer), handing each piece's tokens to `tokens` with offsets into `input`.
fn tokenize_in_pieces(
    model: &impl Model,
    input: &str,
    limit: usize,
    mut tokens: impl FnMut(&[Token]),
) -> tokenizers::Result<()> {
    // Bytes bound characters from above: a short input needs no count.
    if input.len() <= limit {
        tokens(&model.tokenize(input)?);
        return Ok(());
    }
    let mut start = 0;
    while start < input.len() {
        let end = input[start..]
            .char_indices()
            .nth(limit)
            .map_or(input.len(), |(offset, _)| start + offset);
        let mut piece = model.tokenize(&input[start..end])?;
        for token in &mut piece {
            token.offsets = (token.offsets.0 + start, token.offsets.1 + start);
        }
        tokens(&piece);
        start = end;
    }
    Ok(())
}

/// What a caught panic said, as an encode failure.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let message = tinyforge_task::panic_message(payload);
    format!(
        "panicked: {message}; the shards finished before this document are kept, and a rerun \
         resumes from them"
    )
}

/// The head of a word, for an error message about it.
fn truncate_for_message(word: &str) -> &str {
    let mut end = word.len().min(80);
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    &word[..end]
}
