//! What the harness needs from a model and a tokenizer, as traits, so the harness logic is
//! tested with a pure-Rust toy model and runs unchanged over the libtorch model.

use std::path::Path;

use crate::error::{Error, Result};

/// One scoring request: context tokens and the continuation tokens to score after them.
pub type Request = (Vec<u32>, Vec<u32>);

/// A causal language model that scores continuations.
pub trait LanguageModel: Sync {
    /// The longest token sequence one forward pass takes; longer requests keep the whole
    /// continuation and lose context from the left (as lm-evaluation-harness does).
    fn max_length(&self) -> usize;

    /// For each request, the summed natural-log probability of the continuation given the
    /// context, and whether every continuation token was the model's greedy (argmax) choice.
    /// Requests come sorted longest first so an implementation can pad them into one batch.
    fn loglikelihood(&self, requests: &[Request]) -> Result<Vec<(f64, bool)>>;

    /// The logits of the token after `tokens` (at most [`LanguageModel::max_length`] of them),
    /// for generation. Models that only score say so.
    fn next_token_logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let _ = tokens;
        Err(Error::Config(
            "this model scores but does not generate".into(),
        ))
    }
}

/// The token window a request is scored over: the last `max_length + 1` tokens of
/// context + continuation, and how many of its trailing tokens are scored. The model feeds
/// `window[..len - 1]` and reads the predictions for `window[len - scored..]`.
pub fn request_window(
    context: &[u32],
    continuation: &[u32],
    max_length: usize,
) -> Result<(Vec<u32>, usize)> {
    if continuation.is_empty() {
        return Err(Error::Internal("empty continuation".into()));
    }
    if context.is_empty() {
        return Err(Error::Internal(
            "empty context (the prefix token was not added)".into(),
        ));
    }
    if continuation.len() > max_length {
        return Err(Error::Config(format!(
            "a continuation of {} tokens does not fit the model's {max_length}-token window",
            continuation.len()
        )));
    }
    let total = context.len() + continuation.len();
    let keep = total.min(max_length + 1);
    let mut window = Vec::with_capacity(keep);
    let skip = total - keep;
    window.extend(context.iter().chain(continuation).skip(skip).copied());
    Ok((window, continuation.len()))
}

/// Text to token ids and back.
pub trait TextEncoder: Sync {
    /// Encodes without special tokens (no BOS): the harness decides what precedes a text.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    fn decode(&self, ids: &[u32]) -> Result<String>;
    /// The token an empty context becomes (lm-evaluation-harness uses end-of-text), and the
    /// first context token of every perplexity window.
    fn prefix_token(&self) -> u32;
}

/// A Hugging Face `tokenizer.json`.
pub struct HfTokenizer {
    tokenizer: tokenizers::Tokenizer,
    prefix: u32,
}

/// End-of-text spellings, in the order they are looked for.
const END_OF_TEXT: &[&str] = &[
    "<|endoftext|>",
    "</s>",
    "<eos>",
    "<|end_of_text|>",
    "<|im_end|>",
];

impl HfTokenizer {
    /// Loads `path`; the prefix token is `prefix` when given, else the first end-of-text token
    /// the vocabulary has.
    pub fn from_file(path: &Path, prefix: Option<u32>) -> Result<Self> {
        let tokenizer = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let prefix = match prefix {
            Some(id) => id,
            None => END_OF_TEXT
                .iter()
                .find_map(|t| tokenizer.token_to_id(t))
                .ok_or_else(|| Error::Tokenizer {
                    path: path.to_path_buf(),
                    message: format!(
                        "no end-of-text token ({END_OF_TEXT:?}); pass the prefix token id"
                    ),
                })?,
        };
        Ok(HfTokenizer { tokenizer, prefix })
    }
}

impl TextEncoder for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Model(format!("tokenizer: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| Error::Model(format!("tokenizer: {e}")))
    }

    fn prefix_token(&self) -> u32 {
        self.prefix
    }
}

/// Each UTF-8 byte is a token (ids 0..256) and 256 is the prefix token: a tokenizer for tests
/// and for models trained on raw bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl TextEncoder for ByteTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(text.bytes().map(u32::from).collect())
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        let bytes: Vec<u8> = ids.iter().filter_map(|&id| u8::try_from(id).ok()).collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn prefix_token(&self) -> u32 {
        256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_truncates_context_from_the_left() {
        let (window, scored) = request_window(&[1, 2, 3, 4], &[5, 6], 4).unwrap();
        assert_eq!(window, vec![2, 3, 4, 5, 6]);
        assert_eq!(scored, 2);
        let (window, _) = request_window(&[1], &[5, 6], 8).unwrap();
        assert_eq!(window, vec![1, 5, 6]);
        assert!(request_window(&[1], &[5, 6, 7], 2).is_err());
    }
}
