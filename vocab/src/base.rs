//! The base tokenizer: a Hugging Face `tokenizer.json` read twice, once by the `tokenizers`
//! crate (to encode) and once as plain JSON (to prune). Pruning edits only `model.vocab`,
//! `model.merges`, the ids of `added_tokens` and the ids inside `post_processor` / `padding`;
//! every other part of the file is carried over untouched, so the pruned file keeps the base
//! normalizer, pre-tokenizer and decoder exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The two BPE families whose vocabularies can be pruned without losing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// GPT-2 / Qwen style: text is mapped to 256 printable byte characters before BPE, so the
    /// 256 single-byte tokens spell any text.
    ByteLevel,
    /// SentencePiece / LLaMA-2 style: characters missing from the vocabulary are spelled with
    /// the 256 `<0xNN>` byte-fallback tokens.
    ByteFallback,
}

/// How `model.merges` is written in the file; the pruned file uses the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MergesForm {
    /// `"a b"` (tokenizers < 0.20 and most files on the Hub).
    Strings,
    /// `["a", "b"]` (tokenizers >= 0.20, needed when tokens contain spaces).
    Pairs,
}

/// One BPE merge by token ids: `left + right -> result`, in rank order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Merge {
    pub left: u32,
    pub right: u32,
    pub result: u32,
}

/// An entry of `added_tokens`.
#[derive(Debug, Clone)]
pub struct AddedToken {
    pub id: u32,
    pub content: String,
    pub special: bool,
}

/// A base tokenizer ready to count with and to prune.
pub struct BaseTokenizer {
    pub(crate) path: PathBuf,
    pub(crate) json: Value,
    pub(crate) sha256: String,
    pub(crate) family: Family,
    pub(crate) tokenizer: tokenizers::Tokenizer,
    /// Token text by id over the whole id space (model vocabulary and added tokens); `None`
    /// for an id no token uses.
    pub(crate) tokens: Vec<Option<String>>,
    /// Which ids belong to `model.vocab` (the rest are added tokens outside it).
    pub(crate) in_model: Vec<bool>,
    pub(crate) added: Vec<AddedToken>,
    pub(crate) merges: Vec<Merge>,
    pub(crate) merges_form: MergesForm,
    /// Ids that spell any text: the 256 byte-level characters or the 256 `<0xNN>` tokens.
    pub(crate) alphabet: Vec<u32>,
    /// Ids referenced outside the vocabulary (`unk_token`, post-processor, padding); always kept.
    pub(crate) referenced: Vec<u32>,
}

impl std::fmt::Debug for BaseTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseTokenizer")
            .field("path", &self.path)
            .field("family", &self.family)
            .field("id_space", &self.tokens.len())
            .field("merges", &self.merges.len())
            .finish_non_exhaustive()
    }
}

impl BaseTokenizer {
    /// Reads and checks `path`. Unsupported model types and broken JSON are errors naming it.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let json: Value =
            serde_json::from_slice(&bytes).map_err(|source| Error::TokenizerJson {
                path: path.to_owned(),
                source,
            })?;
        let malformed = |message: String| Error::MalformedTokenizer {
            path: path.to_owned(),
            message,
        };
        let model = json
            .get("model")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed("no \"model\" object".into()))?;
        // HF accepts a model without "type" and guesses it from its fields; BPE is the one with
        // merges.
        let model_type = match model.get("type").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None if model.contains_key("merges") => "BPE".to_owned(),
            None => "unknown".to_owned(),
        };
        if model_type != "BPE" {
            return Err(Error::UnsupportedModel {
                path: path.to_owned(),
                model_type,
            });
        }
        // Only now hand the file to `tokenizers`: its own errors are less specific.
        let tokenizer =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::TokenizerLoad {
                path: path.to_owned(),
                message: e.to_string(),
            })?;

        let vocab_obj = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed("model.vocab is not an object".into()))?;
        let mut vocab: HashMap<&str, u32> = HashMap::with_capacity(vocab_obj.len());
        for (token, id) in vocab_obj {
            let id = id
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| malformed(format!("model.vocab[{token:?}] is not a u32 id")))?;
            vocab.insert(token.as_str(), id);
        }
        let added = parse_added(&json).map_err(malformed)?;
        let id_space = vocab
            .values()
            .chain(added.iter().map(|t| &t.id))
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut tokens: Vec<Option<String>> = vec![None; id_space];
        let mut in_model = vec![false; id_space];
        for (&token, &id) in &vocab {
            tokens[id as usize] = Some(token.to_owned());
            in_model[id as usize] = true;
        }
        for t in &added {
            match &tokens[t.id as usize] {
                Some(existing) if existing != &t.content => {
                    return Err(malformed(format!(
                        "added token {:?} has id {} which model.vocab gives to {existing:?}",
                        t.content, t.id
                    )));
                }
                _ => tokens[t.id as usize] = Some(t.content.clone()),
            }
        }

        let (merges, merges_form) = parse_merges(model, &vocab).map_err(malformed)?;
        let byte_fallback = model.get("byte_fallback").and_then(Value::as_bool) == Some(true);
        let byte_level = ["pre_tokenizer", "decoder"]
            .iter()
            .any(|key| json.get(key).is_some_and(mentions_byte_level));
        let (family, alphabet) = if byte_level {
            let alphabet = byte_level_alphabet()
                .iter()
                .map(|c| {
                    vocab.get(c.as_str()).copied().ok_or_else(|| {
                        malformed(format!(
                            "byte-level tokenizer lacks the byte token {c:?} in model.vocab"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (Family::ByteLevel, alphabet)
        } else if byte_fallback {
            let alphabet = (0..=255u8)
                .map(|b| {
                    let piece = format!("<0x{b:02X}>");
                    vocab.get(piece.as_str()).copied().ok_or_else(|| {
                        malformed(format!(
                            "byte_fallback is on but {piece} is not in model.vocab"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // LLaMA-2's decoder turns the "▁" *piece* into a space before it fuses byte
            // pieces, so a "▁" spelled as <0xE2><0x96><0x81> would decode as "▁": keep it.
            let mut alphabet = alphabet;
            alphabet.extend(vocab.get("\u{2581}").copied());
            (Family::ByteFallback, alphabet)
        } else {
            return Err(Error::UnsupportedModel {
                path: path.to_owned(),
                model_type: "BPE without byte-level pre-tokenizer or byte_fallback (pruning it \
                             would make some text unencodable)"
                    .into(),
            });
        };

        let mut referenced = Vec::new();
        if let Some(unk) = model.get("unk_token").and_then(Value::as_str)
            && let Some(id) = tokenizer.token_to_id(unk)
        {
            referenced.push(id);
        }
        if let Some(post) = json.get("post_processor") {
            crate::rewrite::collect_ids(post, &mut referenced);
        }
        if let Some(id) = json.pointer("/padding/pad_id").and_then(Value::as_u64) {
            referenced.push(id as u32);
        }
        for &id in &referenced {
            if id as usize >= id_space || tokens[id as usize].is_none() {
                return Err(malformed(format!(
                    "post_processor, padding or unk_token refers to id {id}, which no token has"
                )));
            }
        }

        Ok(Self {
            path: path.to_owned(),
            json,
            sha256,
            family,
            tokenizer,
            tokens,
            in_model,
            added,
            merges,
            merges_form,
            alphabet,
            referenced,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the file's bytes, recorded in counts so that prune can refuse foreign counts.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Size of the id space (largest id + 1), the length of a dense counts vector.
    pub fn id_space(&self) -> usize {
        self.tokens.len()
    }

    /// The token text of `id`, if some token has it.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize)?.as_deref()
    }

    /// The `tokenizers` tokenizer, for encoding.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    pub fn added_tokens(&self) -> &[AddedToken] {
        &self.added
    }

    pub fn alphabet(&self) -> &[u32] {
        &self.alphabet
    }

    pub fn merge_count(&self) -> usize {
        self.merges.len()
    }
}

fn parse_added(json: &Value) -> std::result::Result<Vec<AddedToken>, String> {
    let Some(list) = json.get("added_tokens") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| "added_tokens is not an array".to_owned())?;
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let id = entry
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| format!("added_tokens[{i}] has no u32 \"id\""))?;
            let content = entry
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("added_tokens[{i}] has no \"content\""))?
                .to_owned();
            let special = entry
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(AddedToken {
                id,
                content,
                special,
            })
        })
        .collect()
}

fn parse_merges(
    model: &serde_json::Map<String, Value>,
    vocab: &HashMap<&str, u32>,
) -> std::result::Result<(Vec<Merge>, MergesForm), String> {
    let list = match model.get("merges") {
        None | Some(Value::Null) => return Ok((Vec::new(), MergesForm::Pairs)),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("model.merges is not an array".into()),
    };
    // The result of a merge is `left + right` with right's continuing-subword prefix removed,
    // exactly as `tokenizers` builds it.
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(Value::as_str)
        .unwrap_or("");
    let form = match list.first() {
        Some(Value::String(_)) | None => MergesForm::Strings,
        Some(_) => MergesForm::Pairs,
    };
    let id_of = |token: &str, i: usize| {
        vocab
            .get(token)
            .copied()
            .ok_or_else(|| format!("merge {i}: token {token:?} is not in model.vocab"))
    };
    let mut merges = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let (left, right): (&str, &str) = match entry {
            Value::String(s) => s
                .split_once(' ')
                .filter(|(_, r)| !r.contains(' '))
                .ok_or_else(|| format!("merge {i} ({s:?}) is not two tokens"))?,
            Value::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                (Value::String(l), Value::String(r)) => (l.as_str(), r.as_str()),
                _ => return Err(format!("merge {i} is not a pair of strings")),
            },
            _ => return Err(format!("merge {i} is neither \"a b\" nor [\"a\", \"b\"]")),
        };
        let tail = right.strip_prefix(prefix).unwrap_or(right);
        let result = format!("{left}{tail}");
        merges.push(Merge {
            left: id_of(left, i)?,
            right: id_of(right, i)?,
            result: id_of(&result, i)?,
        });
    }
    Ok((merges, form))
}

fn mentions_byte_level(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.get("type").and_then(Value::as_str) == Some("ByteLevel")
                || map.values().any(mentions_byte_level)
        }
        Value::Array(items) => items.iter().any(mentions_byte_level),
        _ => false,
    }
}

/// GPT-2's byte-to-character table: printable bytes map to themselves, the others to U+0100
/// onwards in byte order. `tokenizers`' ByteLevel pre-tokenizer uses the same table.
pub(crate) fn byte_level_alphabet() -> Vec<String> {
    tinyforge_pretok::byte_level_alphabet()
        .iter()
        .map(|c| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_matches_gpt2_table() {
        let alphabet = byte_level_alphabet();
        assert_eq!(alphabet.len(), 256);
        assert_eq!(alphabet[b' ' as usize], "Ġ");
        assert_eq!(alphabet[b'\n' as usize], "Ċ");
        assert_eq!(alphabet[b'a' as usize], "a");
        assert_eq!(alphabet[0], "Ā");
        let distinct: std::collections::HashSet<_> = alphabet.iter().collect();
        assert_eq!(distinct.len(), 256);
    }
}
