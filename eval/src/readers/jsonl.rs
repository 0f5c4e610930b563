//! tinyforge's own task format for anything without a dedicated reader: one JSON object per
//! line, `{"context": "...", "choices": [" a", " b"], "gold": 0}` with optional `"id"` and
//! `"group"`. Choices are scored exactly as written, so include the separator (a leading space
//! for English).

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::item::McItem;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    group: Option<String>,
    context: String,
    choices: Vec<String>,
    gold: usize,
}

pub fn read_jsonl(path: &Path) -> Result<Vec<McItem>> {
    let reader = BufReader::new(fs_err::File::open(path)?);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("jsonl")
        .to_string();
    let mut items = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let location = format!("line {}", index + 1);
        let line = line.map_err(|e| Error::malformed(path, &location, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|e| Error::malformed(path, &location, e.to_string()))?;
        let item = McItem {
            id: parsed.id.unwrap_or_else(|| format!("{stem}:{}", index + 1)),
            group: parsed.group.unwrap_or_default(),
            preamble: String::new(),
            contexts: vec![parsed.context],
            continuations: parsed.choices,
            gold: parsed.gold,
        };
        item.validate()
            .map_err(|m| Error::malformed(path, &location, m))?;
        items.push(item);
    }
    Ok(items)
}
