//! Agreement with the Python `tokenizers` package (the paper's toolchain). Skipped, with a
//! printed reason, when Python or the package is missing; a failure then under
//! `TINYFORGE_REQUIRE_REFERENCES` (CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;

use tinyforge_vocab::{BaseTokenizer, PruneConfig, Target, prune};

use crate::common::{corpus, fixture};
use crate::pruning::corpus_counts;

/// A Python with `tokenizers`: `$TINYFORGE_PYTHON`, the project venv, or `python3`.
pub fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let candidates = [
        std::env::var_os("TINYFORGE_PYTHON").map(PathBuf::from),
        venv.is_file().then_some(venv),
        Some(PathBuf::from("python3")),
    ];
    for candidate in candidates.into_iter().flatten() {
        let ok = Command::new(&candidate)
            .args(["-c", "import tokenizers"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(candidate);
        }
    }
    tinyforge_testkit::skip_unless_required(
        "the Python package `tokenizers`",
        "not importable from $TINYFORGE_PYTHON, the project venv or python3 (scripts/setup-python)",
    );
    None
}

/// Runs `script` with `args`; its stdout is JSON.
pub fn run_python(python: &Path, script: &str, args: &[&Path]) -> serde_json::Value {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Encodes every corpus document with a tokenizer file: `[[ids...], ...]`.
pub const ENCODE: &str = r#"
import json, sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
texts = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")]
print(json.dumps([e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]))
"#;

/// The paper's way of counting: encode, then `collections.Counter` over the ids.
pub const COUNT: &str = r#"
import collections, json, sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
texts = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")]
counter = collections.Counter()
for e in tok.encode_batch(texts, add_special_tokens=False):
    counter.update(e.ids)
print(json.dumps({str(k): v for k, v in counter.items()}))
"#;

/// Python loads the pruned file unchanged and produces the ids tinyforge's `tokenizers` does.
pub fn assert_python_matches(python: &Path, tokenizer_json: &Path) {
    let pruned = tokenizers::Tokenizer::from_file(tokenizer_json).unwrap();
    let from_python = run_python(python, ENCODE, &[tokenizer_json, &fixture("corpus.jsonl")]);
    let docs = corpus();
    assert_eq!(from_python.as_array().unwrap().len(), docs.len());
    for (doc, ids) in docs.iter().zip(from_python.as_array().unwrap()) {
        let ours: Vec<u64> = pruned
            .encode(doc.text.as_str(), false)
            .unwrap()
            .get_ids()
            .iter()
            .map(|&id| id as u64)
            .collect();
        let theirs: Vec<u64> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(ours, theirs, "document {}", doc.id);
    }
}

#[test]
fn python_tokenizers_loads_the_pruned_file_and_gives_the_same_ids() {
    let Some(python) = python() else { return };
    for (name, k) in [("bytelevel_bpe.json", 500), ("spm_bpe.json", 600)] {
        let base = BaseTokenizer::load(&fixture(name)).unwrap();
        let counts = corpus_counts(&base);
        let tmp = tempfile::tempdir().unwrap();
        let config = PruneConfig {
            target: Target::Size(k),
            model: Some(crate::common::tiny_model()),
        };
        prune(&base, &counts, &config, tmp.path()).unwrap();
        assert_python_matches(&python, &tmp.path().join("tokenizer.json"));
    }
}

#[test]
fn counts_agree_with_python_tokenizers_and_a_counter() {
    let Some(python) = python() else { return };
    for name in ["bytelevel_bpe.json", "spm_bpe.json"] {
        let base = BaseTokenizer::load(&fixture(name)).unwrap();
        let counts = corpus_counts(&base);
        let theirs = run_python(&python, COUNT, &[&fixture(name), &fixture("corpus.jsonl")]);
        let mut expected = vec![0u64; base.id_space()];
        for (id, count) in theirs.as_object().unwrap() {
            expected[id.parse::<usize>().unwrap()] = count.as_u64().unwrap();
        }
        assert_eq!(counts.counts, expected, "{name}");
    }
}
