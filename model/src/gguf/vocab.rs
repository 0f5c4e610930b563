//! The tokenizer a GGUF file carries, from a checkpoint's `tokenizer.json` (and its
//! `tokenizer_config.json` and `config.json`), as llama.cpp's `convert_hf_to_gguf.py` writes a
//! byte-level BPE vocabulary (`tokenizer.ggml.model = "gpt2"`): every id of the model's
//! vocabulary in order, gaps filled with `[PAD{id}]`, the merges as `"a b"` strings, token
//! types, the special-token ids and the chat template.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::format::Value;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::{CONFIG_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE};
use crate::{added_token_id, configured_token, default_eos, read_tokenizer_config};

/// The pre-tokenizer regex of Qwen2 and Qwen3 (and of the compact tokenizers pruned from them),
/// llama.cpp's `qwen2` pre-tokenizer.
pub(crate) const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `llama_token_type` values.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// The tokenizer metadata, and what the report says about it.
pub(crate) struct Vocab {
    pub metadata: Vec<(String, Value)>,
    /// Ids the tokenizer defines (the rest of the model's vocabulary is padding).
    pub defined: usize,
}

/// Reads `dir`'s tokenizer files for a model of `cfg.vocab_size` ids.
pub(crate) fn read_vocab(dir: &Path, cfg: &ModelConfig) -> Result<Vocab> {
    let path = dir.join(TOKENIZER_FILE);
    if !path.is_file() {
        return Err(Error::checkpoint(
            &path,
            "missing: a GGUF file carries its tokenizer; copy the dataset's tokenizer.json \
             (and tokenizer_config.json) into the checkpoint",
        ));
    }
    let json = read_json(&path)?;
    let unsupported = |field: &str, value: &Json, message: &str| Error::Unsupported {
        path: path.clone(),
        field: field.to_string(),
        value: short(value),
        message: message.to_string(),
    };
    let model = json
        .get("model")
        .and_then(Json::as_object)
        .ok_or_else(|| Error::checkpoint(&path, "lacks the `model` object"))?;
    let kind = model.get("type").unwrap_or(&Json::Null);
    if kind.as_str() != Some("BPE") {
        return Err(unsupported(
            "model.type",
            kind,
            "only byte-level BPE tokenizers (GPT-2, Qwen) can be embedded",
        ));
    }
    let pre = json.get("pre_tokenizer").unwrap_or(&Json::Null);
    let byte_level = |v: &Json| v.get("type").and_then(Json::as_str) == Some("ByteLevel");
    let pieces: Vec<&Json> = match pre.get("pretokenizers").and_then(Json::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![pre],
    };
    let Some(byte_level_step) = pieces.iter().find(|p| byte_level(p)) else {
        return Err(unsupported(
            "pre_tokenizer",
            pre,
            "only byte-level BPE tokenizers (a ByteLevel pre-tokenizer) can be embedded",
        ));
    };
    if model.get("byte_fallback").and_then(Json::as_bool) == Some(true) {
        return Err(unsupported(
            "model.byte_fallback",
            &Json::Bool(true),
            "byte-fallback BPE is SentencePiece-style, not byte-level",
        ));
    }
    let regex = pieces.iter().find_map(|p| {
        (p.get("type")?.as_str()? == "Split")
            .then(|| p.get("pattern")?.get("Regex")?.as_str())
            .flatten()
    });
    let pre_name = match regex {
        Some(QWEN2_REGEX) => "qwen2",
        // A lone ByteLevel step with its own regex is GPT-2's pre-tokenizer.
        None if pieces.len() == 1
            && byte_level_step.get("use_regex").and_then(Json::as_bool) != Some(false) =>
        {
            "gpt-2"
        }
        _ => "default",
    };

    let n = cfg.vocab_size;
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut types = vec![NORMAL; n];
    let mut place = |id: &Json, token: &str, ty: i32, field: &str| -> Result<()> {
        let id = id
            .as_u64()
            .ok_or_else(|| unsupported(field, id, "expected a non-negative integer id"))?;
        let slot = usize::try_from(id).ok().filter(|i| *i < n).ok_or_else(|| {
            Error::checkpoint(
                &path,
                format!(
                    "`{field}`: token {token:?} has id {id}, but the model's vocab_size is \
                     {n} ({CONFIG_FILE}): the vocabulary is larger than the model"
                ),
            )
        })?;
        tokens[slot] = Some(token.to_string());
        types[slot] = ty;
        Ok(())
    };
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| Error::checkpoint(&path, "lacks the `model.vocab` object"))?;
    for (token, id) in vocab {
        place(id, token, NORMAL, "model.vocab")?;
    }
    if let Some(added) = json.get("added_tokens") {
        let added = added
            .as_array()
            .ok_or_else(|| unsupported("added_tokens", added, "expected an array"))?;
        for entry in added {
            let content = entry
                .get("content")
                .and_then(Json::as_str)
                .ok_or_else(|| unsupported("added_tokens[].content", entry, "expected a string"))?;
            let special = entry.get("special").and_then(Json::as_bool) == Some(true);
            let ty = if special { CONTROL } else { USER_DEFINED };
            place(
                entry.get("id").unwrap_or(&Json::Null),
                content,
                ty,
                "added_tokens[].id",
            )?;
        }
    }
    let defined = tokens.iter().filter(|t| t.is_some()).count();
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| {
            t.unwrap_or_else(|| {
                types[id] = UNUSED;
                format!("[PAD{id}]")
            })
        })
        .collect();

    let merges = match model.get("merges") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, m)| {
                merge_text(m).ok_or_else(|| {
                    unsupported(
                        &format!("model.merges[{i}]"),
                        m,
                        "expected \"a b\" or [\"a\", \"b\"]",
                    )
                })
            })
            .collect::<Result<_>>()?,
        Some(other) => return Err(unsupported("model.merges", other, "expected an array")),
    };

    let config_path = dir.join(TOKENIZER_CONFIG_FILE);
    let tokenizer_config = read_tokenizer_config(&path)?;
    let hf_config_path = dir.join(CONFIG_FILE);
    let hf_config = read_json(&hf_config_path)?;
    let id_of = |token: &str| -> Option<u32> {
        tokenizer_config
            .as_ref()
            .and_then(|c| added_token_id(c, token))
            .or_else(|| tokens.iter().position(|t| t == token).map(|i| i as u32))
    };
    let roles = SpecialIds {
        tokenizer_config: tokenizer_config.as_ref(),
        config_path: &config_path,
        hf_config: &hf_config,
        hf_config_path: &hf_config_path,
        vocab_size: n,
        id_of: &id_of,
    };

    let mut metadata = vec![
        (
            "tokenizer.ggml.model".to_string(),
            Value::Str("gpt2".into()),
        ),
        (
            "tokenizer.ggml.pre".to_string(),
            Value::Str(pre_name.into()),
        ),
        (
            "tokenizer.ggml.tokens".to_string(),
            Value::Strs(tokens.clone()),
        ),
        ("tokenizer.ggml.token_type".to_string(), Value::I32s(types)),
        ("tokenizer.ggml.merges".to_string(), Value::Strs(merges)),
    ];
    let eos = match roles.id("eos_token")? {
        Some(id) => Some(id),
        None => default_eos(None, &|t| id_of(t).is_some()).and_then(|(t, _)| id_of(&t)),
    };
    // Without a BOS llama.cpp assumes id 11 for a gpt2 vocabulary, and transformers' GGUF
    // tokenizer for `llama` fails; the EOS is what separates documents in tinyforge's training
    // data, so it stands in (never added: add_bos_token stays false).
    let bos = roles.id("bos_token")?.or(eos);
    for (key, id) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("unknown_token_id", roles.id("unk_token")?),
        ("padding_token_id", roles.id("pad_token")?),
    ] {
        if let Some(id) = id {
            metadata.push((format!("tokenizer.ggml.{key}"), Value::U32(id)));
        }
    }
    let config = tokenizer_config.as_ref();
    for flag in ["add_bos_token", "add_eos_token"] {
        let value = config.and_then(|c| c.get(flag)).and_then(Json::as_bool);
        // No BOS unless the tokenizer asks for one (tinyforge's never do): llama.cpp's own
        // default for a gpt2 vocabulary would add one.
        if let Some(value) = value.or((flag == "add_bos_token").then_some(false)) {
            metadata.push((format!("tokenizer.ggml.{flag}"), Value::Bool(value)));
        }
    }
    match config.and_then(|c| c.get("chat_template")) {
        None | Some(Json::Null) => {}
        Some(Json::String(template)) => metadata.push((
            "tokenizer.chat_template".to_string(),
            Value::Str(template.clone()),
        )),
        // Named templates, as convert_hf_to_gguf.py writes them.
        Some(Json::Array(named)) => {
            for entry in named {
                let (Some(name), Some(template)) = (
                    entry.get("name").and_then(Json::as_str),
                    entry.get("template").and_then(Json::as_str),
                ) else {
                    return Err(Error::Unsupported {
                        path: config_path.clone(),
                        field: "chat_template[]".into(),
                        value: short(entry),
                        message: "expected {\"name\": ..., \"template\": ...}".into(),
                    });
                };
                let key = if name == "default" {
                    "tokenizer.chat_template".to_string()
                } else {
                    format!("tokenizer.chat_template.{name}")
                };
                metadata.push((key, Value::Str(template.to_string())));
            }
        }
        Some(other) => {
            return Err(Error::Unsupported {
                path: config_path.clone(),
                field: "chat_template".into(),
                value: short(other),
                message: "expected a string".into(),
            });
        }
    }
    Ok(Vocab { metadata, defined })
}

/// Where a special token's id comes from: `tokenizer_config.json`'s token for the role (as
/// convert_hf_to_gguf.py's `SpecialVocab` reads it), else `config.json`'s `{role}_id`.
struct SpecialIds<'a> {
    tokenizer_config: Option<&'a Map<String, Json>>,
    config_path: &'a Path,
    hf_config: &'a Json,
    hf_config_path: &'a Path,
    vocab_size: usize,
    id_of: &'a dyn Fn(&str) -> Option<u32>,
}

impl SpecialIds<'_> {
    fn id(&self, role: &str) -> Result<Option<u32>> {
        if let Some(token) = self
            .tokenizer_config
            .and_then(|c| configured_token(c, role))
        {
            return (self.id_of)(token).map(Some).ok_or_else(|| {
                Error::checkpoint(
                    self.config_path,
                    format!("`{role}` {token:?} is not in {TOKENIZER_FILE}'s vocabulary"),
                )
            });
        }
        let field = format!("{role}_id");
        let value = match self.hf_config.get(&field) {
            // A list of EOS ids (LLaMA-3 style): the first is the one a GGUF file holds.
            Some(Json::Array(list)) => list.first(),
            other => other,
        };
        match value {
            None | Some(Json::Null) => Ok(None),
            Some(v) => {
                let id = v
                    .as_u64()
                    .and_then(|id| u32::try_from(id).ok())
                    .filter(|id| (*id as usize) < self.vocab_size);
                id.map(Some).ok_or_else(|| Error::Unsupported {
                    path: self.hf_config_path.to_path_buf(),
                    field,
                    value: short(v),
                    message: format!("expected a token id below vocab_size {}", self.vocab_size),
                })
            }
        }
    }
}

/// A merge as GGUF stores it: `"a b"` (tokenizer.json writes either that or `["a", "b"]`).
fn merge_text(merge: &Json) -> Option<String> {
    match merge {
        Json::String(s) if s.contains(' ') => Some(s.clone()),
        Json::Array(pair) => match pair.as_slice() {
            [Json::String(a), Json::String(b)] => Some(format!("{a} {b}")),
            _ => None,
        },
        _ => None,
    }
}

fn read_json(path: &PathBuf) -> Result<Json> {
    serde_json::from_slice(&fs_err::read(path)?).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })
}

/// A JSON value for an error message, cut to a readable length.
fn short(value: &Json) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
