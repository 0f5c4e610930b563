//! The tokenizer files of a Hugging Face folder: `tokenizer.json` beside the
//! `tokenizer_config.json` and `special_tokens_map.json` that `AutoTokenizer.from_pretrained`
//! reads first (without them it looks for a `config.json` with a `model_type` and fails), and a
//! checkpoint's `generation_config.json`. A compact tokenizer folder, a token dataset and every
//! checkpoint carry the same three tokenizer files, written here.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// The tokenizer itself (the `tokenizers` library's format).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The settings transformers reads first: the class, special tokens, maximum length, chat template.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// The special tokens by role.
pub const SPECIAL_TOKENS_MAP_FILE: &str = "special_tokens_map.json";
/// A checkpoint's generation defaults: EOS, BOS and padding ids.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";
/// The files a folder needs for `AutoTokenizer.from_pretrained`, in the order they are copied.
pub const TOKENIZER_FILES: [&str; 3] = [
    TOKENIZER_FILE,
    TOKENIZER_CONFIG_FILE,
    SPECIAL_TOKENS_MAP_FILE,
];

/// EOS spellings tried in order when neither the user nor a `tokenizer_config.json` names one
/// (Qwen/GPT, LLaMA-2, LLaMA-3, Gemma, ChatML).
pub const EOS_CANDIDATES: &[&str] = &[
    "<|endoftext|>",
    "</s>",
    "<|end_of_text|>",
    "<eos>",
    "<|im_end|>",
];

/// The EOS a tokenizer folder declares: its config's `eos_token`, else the first of
/// [`EOS_CANDIDATES`] the vocabulary has (`has(token)`), with where it came from.
pub fn default_eos(
    config: Option<&Map<String, Value>>,
    has: &dyn Fn(&str) -> bool,
) -> Option<(String, &'static str)> {
    if let Some(token) = config.and_then(|c| configured_token(c, "eos_token")) {
        return Some((token.to_owned(), TOKENIZER_CONFIG_FILE));
    }
    EOS_CANDIDATES
        .iter()
        .find(|c| has(c))
        .map(|c| ((*c).to_owned(), "the usual spellings"))
}

/// The roles transformers gives special tokens, as `tokenizer_config.json` names them.
const ROLES: [&str; 4] = ["bos_token", "eos_token", "pad_token", "unk_token"];

/// The `tokenizer_config.json` beside a `tokenizer.json` file, parsed, if there is one.
pub fn read_tokenizer_config(tokenizer_json: &Path) -> Result<Option<Map<String, Value>>> {
    let path = tokenizer_json
        .parent()
        .unwrap_or(Path::new("."))
        .join(TOKENIZER_CONFIG_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs_err::read_to_string(&path)?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(Error::checkpoint(&path, "is not a JSON object")),
        Err(source) => Err(Error::Json { path, source }),
    }
}

/// A special token as `tokenizer_config.json` spells it: a string, or an `AddedToken` object
/// with a `content`.
fn token_text(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        Value::Object(map) => map.get("content").and_then(Value::as_str),
        _ => None,
    }
}

/// The token `config` names for `role` (`eos_token`, `bos_token`, ...), if any.
pub fn configured_token<'a>(config: &'a Map<String, Value>, role: &str) -> Option<&'a str> {
    config.get(role).and_then(token_text)
}

/// The special tokens a tokenizer folder's configs declare, with their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    pub eos: (String, u32),
    pub bos: Option<(String, u32)>,
    pub pad: Option<(String, u32)>,
}

/// Writes `tokenizer_config.json` and `special_tokens_map.json` into `dir`, for the
/// `tokenizer.json` there (written already), and returns its special tokens.
///
/// With `base`, the base folder's `tokenizer_config.json`, everything it sets is carried over
/// (class, chat template, added-token and cleanup settings), its `added_tokens_decoder`
/// renumbered through `new_id` (a token the new tokenizer dropped is left out, and so is a
/// role whose token it dropped). Without one, the folder gets `PreTrainedTokenizerFast` and
/// `eos` as its EOS (and padding) token. `model_max_length`, when given, replaces the base's
/// (a checkpoint's is its context length).
pub fn write_tokenizer_config(
    dir: &Path,
    base: Option<&Map<String, Value>>,
    eos: &str,
    id_of: &dyn Fn(&str) -> Option<u32>,
    new_id: &dyn Fn(u32) -> Option<u32>,
    model_max_length: Option<usize>,
) -> Result<SpecialTokens> {
    let mut config = match base {
        Some(base) => base.clone(),
        None => {
            let mut config = Map::new();
            config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
            config.insert("clean_up_tokenization_spaces".into(), false.into());
            config.insert("pad_token".into(), eos.into());
            config
        }
    };
    config.insert("eos_token".into(), eos.into());
    if let Some(Value::Object(decoder)) = config.remove("added_tokens_decoder") {
        let mut renumbered: Vec<(u32, Value)> = decoder
            .into_iter()
            .filter_map(|(old, entry)| {
                let new = new_id(old.parse().ok()?)?;
                Some((new, entry))
            })
            .collect();
        renumbered.sort_by_key(|(id, _)| *id);
        let decoder: Map<String, Value> = renumbered
            .into_iter()
            .map(|(id, entry)| (id.to_string(), entry))
            .collect();
        config.insert("added_tokens_decoder".into(), Value::Object(decoder));
    }
    for role in ROLES {
        let gone = configured_token(&config, role).is_some_and(|token| id_of(token).is_none());
        if gone {
            config.insert(role.into(), Value::Null);
        }
    }
    if let Some(Value::Array(extra)) = config.get("additional_special_tokens").cloned() {
        let kept: Vec<Value> = extra
            .into_iter()
            .filter(|token| token_text(token).is_some_and(|t| id_of(t).is_some()))
            .collect();
        config.insert("additional_special_tokens".into(), Value::Array(kept));
    }
    if let Some(length) = model_max_length {
        config.insert("model_max_length".into(), length.into());
    }
    let mut map = Map::new();
    for role in ROLES {
        if let Some(token) = configured_token(&config, role) {
            map.insert(role.into(), token.into());
        }
    }
    if let Some(extra) = config.get("additional_special_tokens") {
        map.insert("additional_special_tokens".into(), extra.clone());
    }
    let role_token = |role: &str| {
        let token = configured_token(&config, role)?;
        Some((token.to_owned(), id_of(token)?))
    };
    let eos_id = id_of(eos).ok_or_else(|| {
        Error::checkpoint(
            dir.join(TOKENIZER_FILE),
            format!("the EOS token {eos:?} is not in the vocabulary"),
        )
    })?;
    let special = SpecialTokens {
        eos: (eos.to_owned(), eos_id),
        bos: role_token("bos_token"),
        pad: role_token("pad_token"),
    };
    write_json(&dir.join(TOKENIZER_CONFIG_FILE), &Value::Object(config))?;
    write_json(&dir.join(SPECIAL_TOKENS_MAP_FILE), &Value::Object(map))?;
    Ok(special)
}

/// The id `config`'s `added_tokens_decoder` gives `token`, if it lists it.
pub fn added_token_id(config: &Map<String, Value>, token: &str) -> Option<u32> {
    let decoder = config.get("added_tokens_decoder")?.as_object()?;
    decoder
        .iter()
        .find(|(_, entry)| token_text(entry) == Some(token))
        .and_then(|(id, _)| id.parse().ok())
}

/// Copies a dataset's tokenizer `files` (name, bytes) into a model folder `dir`, with
/// `model_max_length` set to the model's context, and writes `generation_config.json` (EOS
/// `eos_id`, the dataset's; padding and BOS from the tokenizer config). Nothing without a
/// `tokenizer.json` among them.
pub fn write_tokenizer_files(
    dir: &Path,
    files: &[(String, Vec<u8>)],
    model_max_length: usize,
    eos_id: u32,
) -> Result<()> {
    if !files.iter().any(|(name, _)| name == TOKENIZER_FILE) {
        return Ok(());
    }
    let mut config = None;
    for (name, bytes) in files {
        let path = dir.join(name);
        if name == TOKENIZER_CONFIG_FILE {
            let mut parsed: Map<String, Value> =
                serde_json::from_slice(bytes).map_err(|source| Error::Json {
                    path: path.clone(),
                    source,
                })?;
            parsed.insert("model_max_length".into(), model_max_length.into());
            write_json(&path, &Value::Object(parsed.clone()))?;
            config = Some(parsed);
        } else {
            tinyforge_task::write_atomic(&path, bytes)?;
        }
    }
    let id_in = |role: &str| {
        let config = config.as_ref()?;
        added_token_id(config, configured_token(config, role)?)
    };
    let mut generation = json!({
        "eos_token_id": eos_id,
        "pad_token_id": id_in("pad_token").unwrap_or(eos_id),
    });
    if let Some(bos) = id_in("bos_token") {
        generation["bos_token_id"] = bos.into();
    }
    write_json(&dir.join(GENERATION_CONFIG_FILE), &generation)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    tinyforge_task::write_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_configs_are_carried_over_and_renumbered() {
        let tmp = tempfile::tempdir().unwrap();
        let base: Map<String, Value> = serde_json::from_value(json!({
            "tokenizer_class": "Qwen2Tokenizer",
            "chat_template": "{{ messages }}",
            "eos_token": "<|im_end|>",
            "pad_token": {"content": "<|endoftext|>", "special": true},
            "bos_token": null,
            "unk_token": "<dropped>",
            "model_max_length": 131072,
            "additional_special_tokens": ["<|im_start|>", "<dropped>"],
            "added_tokens_decoder": {
                "100": {"content": "<|endoftext|>", "special": true},
                "101": {"content": "<|im_start|>", "special": true},
                "102": {"content": "<|im_end|>", "special": true},
                "103": {"content": "<dropped>", "special": true},
            },
        }))
        .unwrap();
        let ids = [
            ("<|endoftext|>", 10),
            ("<|im_start|>", 11),
            ("<|im_end|>", 12),
        ];
        let id_of = |token: &str| ids.iter().find(|(t, _)| *t == token).map(|(_, id)| *id);
        let new_id = |old: u32| (100..103).contains(&old).then(|| old - 90);
        let special = write_tokenizer_config(
            tmp.path(),
            Some(&base),
            "<|im_end|>",
            &id_of,
            &new_id,
            Some(512),
        )
        .unwrap();
        assert_eq!(special.eos, ("<|im_end|>".into(), 12));
        assert_eq!(special.pad, Some(("<|endoftext|>".into(), 10)));
        assert_eq!(special.bos, None);
        let config: Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join(TOKENIZER_CONFIG_FILE)).unwrap())
                .unwrap();
        assert_eq!(config["chat_template"], "{{ messages }}");
        assert_eq!(config["tokenizer_class"], "Qwen2Tokenizer");
        assert_eq!(config["model_max_length"], 512);
        assert_eq!(config["unk_token"], Value::Null);
        assert_eq!(config["additional_special_tokens"], json!(["<|im_start|>"]));
        let decoder = config["added_tokens_decoder"].as_object().unwrap();
        assert_eq!(decoder.keys().collect::<Vec<_>>(), ["10", "11", "12"]);
        assert_eq!(decoder["12"]["content"], "<|im_end|>");
        let map: Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join(SPECIAL_TOKENS_MAP_FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!(map["eos_token"], "<|im_end|>");
        assert_eq!(map["pad_token"], "<|endoftext|>");
        assert_eq!(
            default_eos(Some(&base), &|_| true),
            Some(("<|im_end|>".into(), TOKENIZER_CONFIG_FILE))
        );
        assert_eq!(
            default_eos(None, &|t| t == "</s>"),
            Some(("</s>".into(), "the usual spellings"))
        );

        // Into a checkpoint: the context length, and the generation ids from the decoder.
        let files: Vec<(String, Vec<u8>)> = TOKENIZER_FILES
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    std::fs::read(tmp.path().join(name)).unwrap_or_default(),
                )
            })
            .collect();
        let ckpt = tmp.path().join("ckpt");
        std::fs::create_dir_all(&ckpt).unwrap();
        write_tokenizer_files(&ckpt, &files, 256, 12).unwrap();
        let config: Value =
            serde_json::from_slice(&std::fs::read(ckpt.join(TOKENIZER_CONFIG_FILE)).unwrap())
                .unwrap();
        assert_eq!(config["model_max_length"], 256);
        let generation: Value =
            serde_json::from_slice(&std::fs::read(ckpt.join(GENERATION_CONFIG_FILE)).unwrap())
                .unwrap();
        assert_eq!(generation, json!({"eos_token_id": 12, "pad_token_id": 10}));
        assert_eq!(special.pad.map(|p| p.1), Some(10));
    }

    #[test]
    fn without_a_base_the_folder_is_a_fast_tokenizer_with_its_eos() {
        let tmp = tempfile::tempdir().unwrap();
        let id_of = |token: &str| (token == "</s>").then_some(2);
        let special =
            write_tokenizer_config(tmp.path(), None, "</s>", &id_of, &Some, None).unwrap();
        assert_eq!(special.pad, Some(("</s>".into(), 2)));
        let config: Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join(TOKENIZER_CONFIG_FILE)).unwrap())
                .unwrap();
        assert_eq!(config["tokenizer_class"], "PreTrainedTokenizerFast");
        let err = write_tokenizer_config(tmp.path(), None, "<eos>", &id_of, &Some, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"<eos>\" is not in the vocabulary"), "{err}");
    }
}
