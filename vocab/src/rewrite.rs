//! Writing the pruned `tokenizer.json`: the base JSON with the vocabulary, merges and token ids
//! replaced, everything else carried over as is.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use crate::base::{BaseTokenizer, MergesForm};

/// Adds every token id the post-processor refers to (TemplateProcessing's `special_tokens`,
/// Bert/Roberta's `sep` and `cls`, nested `Sequence`s).
pub(crate) fn collect_ids(value: &Value, out: &mut Vec<u32>) {
    visit_ids(&mut value.clone(), &mut |id| {
        out.push(id);
        Some(id)
    });
}

/// Rewrites the ids in a post-processor with `map`; `None` from `map` is an internal error
/// (every referenced id is kept).
fn remap_ids(value: &mut Value, map: &mut dyn FnMut(u32) -> Option<u32>) -> bool {
    let mut ok = true;
    visit_ids(value, &mut |id| {
        let new = map(id);
        ok &= new.is_some();
        new
    });
    ok
}

fn visit_ids(value: &mut Value, f: &mut dyn FnMut(u32) -> Option<u32>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match key.as_str() {
                    // TemplateProcessing: {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
                    "special_tokens" => {
                        if let Value::Object(specials) = item {
                            for special in specials.values_mut() {
                                if let Some(Value::Array(ids)) = special.get_mut("ids") {
                                    ids.iter_mut().for_each(|id| replace_id(id, f));
                                }
                            }
                        }
                    }
                    // BertProcessing / RobertaProcessing: "sep": ["</s>", 2]
                    "sep" | "cls" => {
                        if let Value::Array(pair) = item
                            && pair.len() == 2
                        {
                            replace_id(&mut pair[1], f);
                        }
                    }
                    _ => visit_ids(item, f),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| visit_ids(item, f)),
        _ => {}
    }
}

fn replace_id(value: &mut Value, f: &mut dyn FnMut(u32) -> Option<u32>) {
    if let Some(id) = value.as_u64().and_then(|id| u32::try_from(id).ok())
        && let Some(new) = f(id)
    {
        *value = Value::from(new);
    }
}

/// Builds the pruned JSON. `new_id[old]` is the new id of each kept old id.
pub(crate) fn pruned_json(
    base: &BaseTokenizer,
    new_id: &[Option<u32>],
    kept_merges: &[usize],
) -> Result<PrunedJson, String> {
    let mut json = base.json.clone();
    let map = |id: u32| new_id.get(id as usize).copied().flatten();

    let mut vocab: Vec<(String, u32)> = Vec::new();
    for (old, token) in base.tokens.iter().enumerate() {
        if let (true, Some(token), Some(new)) = (base.in_model[old], token, map(old as u32)) {
            vocab.push((token.clone(), new));
        }
    }
    let merges: Vec<(String, String)> = kept_merges
        .iter()
        .map(|&i| {
            let m = base.merges[i];
            let name = |id: u32| base.tokens[id as usize].clone().unwrap_or_default();
            (name(m.left), name(m.right))
        })
        .collect();

    if let Some(Value::Array(added)) = json.get_mut("added_tokens") {
        for entry in added.iter_mut() {
            let old = entry.get("id").and_then(Value::as_u64).unwrap_or(u64::MAX);
            let new = u32::try_from(old)
                .ok()
                .and_then(map)
                .ok_or_else(|| format!("added token with id {old} was not kept"))?;
            entry["id"] = Value::from(new);
        }
        // `tokenizers` gives added tokens outside the vocabulary consecutive ids in file order.
        added.sort_by_key(|entry| entry.get("id").and_then(Value::as_u64));
    }
    if let Some(post) = json.get_mut("post_processor")
        && !remap_ids(post, &mut |id| map(id))
    {
        return Err("post_processor refers to a dropped token".into());
    }
    if let Some(pad) = json.pointer_mut("/padding/pad_id") {
        let old = pad.as_u64().and_then(|id| u32::try_from(id).ok());
        let new = old
            .and_then(map)
            .ok_or("padding.pad_id refers to a dropped token")?;
        *pad = Value::from(new);
    }
    // Replaced at serialization time, so that the vocabulary is written in id order whatever
    // map type serde_json was built with.
    if let Some(model) = json.get_mut("model").and_then(Value::as_object_mut) {
        model.insert("vocab".into(), Value::Null);
        model.insert("merges".into(), Value::Null);
    }
    Ok(PrunedJson {
        json,
        vocab,
        merges,
        merges_form: base.merges_form,
    })
}

pub(crate) struct PrunedJson {
    json: Value,
    vocab: Vec<(String, u32)>,
    merges: Vec<(String, String)>,
    merges_form: MergesForm,
}

impl PrunedJson {
    pub(crate) fn to_bytes(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(self)?;
        out.push(b'\n');
        Ok(out)
    }
}

impl Serialize for PrunedJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let top = self.json.as_object().expect("tokenizer JSON is an object");
        let mut map = serializer.serialize_map(Some(top.len()))?;
        for (key, value) in top {
            if key == "model" {
                map.serialize_entry(key, &ModelOut(self, value))?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

struct ModelOut<'a>(&'a PrunedJson, &'a Value);

impl Serialize for ModelOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(model) = self.1.as_object() else {
            return self.1.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(model.len()))?;
        for (key, value) in model {
            match key.as_str() {
                "vocab" => map.serialize_entry(key, &VocabOut(&self.0.vocab))?,
                "merges" => map.serialize_entry(key, &MergesOut(self.0))?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

struct VocabOut<'a>(&'a [(String, u32)]);

impl Serialize for VocabOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (token, id) in self.0 {
            map.serialize_entry(token, id)?;
        }
        map.end()
    }
}

struct MergesOut<'a>(&'a PrunedJson);

impl Serialize for MergesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let merges = &self.0.merges;
        let mut seq = serializer.serialize_seq(Some(merges.len()))?;
        for (left, right) in merges {
            match self.0.merges_form {
                MergesForm::Strings => seq.serialize_element(&format!("{left} {right}"))?,
                MergesForm::Pairs => seq.serialize_element(&[left, right])?,
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_processing_ids_are_remapped() {
        let mut post = serde_json::json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        });
        let mut seen = Vec::new();
        collect_ids(&post, &mut seen);
        assert_eq!(seen, vec![1]);
        assert!(remap_ids(&mut post, &mut |id| Some(id + 10)));
        assert_eq!(post["special_tokens"]["<s>"]["ids"][0], 11);
    }

    #[test]
    fn roberta_and_sequence_ids_are_remapped() {
        let mut post = serde_json::json!({
            "type": "Sequence",
            "processors": [{"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}]
        });
        let mut seen = Vec::new();
        collect_ids(&post, &mut seen);
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 2]);
        assert!(!remap_ids(&mut post, &mut |id| (id != 2).then_some(id)));
    }
}
