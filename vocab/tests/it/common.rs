//! Fixtures and helpers shared by the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use tinyforge_vocab::{BaseTokenizer, IdMap};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub struct Doc {
    pub id: u64,
    pub text: String,
    pub lang: String,
    pub source: String,
}

/// The real-text corpus fixture (Chinese poetry, English speeches, Rust source, edge cases).
pub fn corpus() -> Vec<Doc> {
    let text = std::fs::read_to_string(fixture("corpus.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            Doc {
                id: v["id"].as_u64().unwrap(),
                text: v["text"].as_str().unwrap().to_owned(),
                lang: v["lang"].as_str().unwrap().to_owned(),
                source: v["source"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

/// Writes `docs` as a documents folder: `files` Parquet parts with row groups of `group_rows`.
pub fn write_docs(dir: &Path, docs: &[Doc], files: usize, group_rows: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ]));
    let per_file = docs.len().div_ceil(files);
    for (i, chunk) in docs.chunks(per_file).enumerate() {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt64Array::from_iter_values(chunk.iter().map(|d| d.id))),
                Arc::new(StringArray::from_iter_values(chunk.iter().map(|d| &d.text))),
                Arc::new(StringArray::from_iter_values(chunk.iter().map(|d| &d.lang))),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|d| &d.source),
                )),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group_rows))
            .build();
        let file = std::fs::File::create(dir.join(format!("part-{i:05}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

/// Counts by encoding every document with the plain `tokenizers` API: the reference the
/// word-deduplicating counter must match.
pub fn reference_counts(base: &BaseTokenizer, texts: &[&str]) -> Vec<u64> {
    let mut counts = vec![0u64; base.id_space()];
    for text in texts {
        let encoding = base.tokenizer().encode(*text, false).unwrap();
        for &id in encoding.get_ids() {
            counts[id as usize] += 1;
        }
    }
    counts
}

/// The checks every pruned tokenizer must pass on `texts`; returns how many lines were
/// checked for agreement (so callers can require the check was not vacuous).
pub fn check_pruned(base: &BaseTokenizer, out: &Path, texts: &[&str]) -> usize {
    let pruned = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let map = IdMap::read(&out.join("id_map.json")).unwrap();
    let size = pruned.get_vocab_size(true);
    assert_eq!(size, map.vocab_size as usize);
    assert!(map.monotone, "ids keep their original order");
    let old_to_new = map.old_to_new_table();

    let mut agreements = 0;
    for text in texts {
        // Lossless, and never an id outside the vocabulary.
        let encoding = pruned.encode(*text, false).unwrap();
        assert!(
            encoding.get_ids().iter().all(|&id| (id as usize) < size),
            "id out of range for {text:?}"
        );
        let decoded = pruned.decode(encoding.get_ids(), false).unwrap();
        assert_eq!(&decoded, text, "pruned tokenizer is not lossless");

        // Agreement, line by line: where the base encoding uses only kept tokens, the pruned
        // encoding is the base encoding mapped through the id map.
        for line in text.lines().filter(|l| !l.is_empty()) {
            let base_ids = base.tokenizer().encode(line, false).unwrap();
            let mapped: Option<Vec<u32>> = base_ids
                .get_ids()
                .iter()
                .map(|&id| old_to_new[id as usize])
                .collect();
            if let Some(mapped) = mapped {
                let ids = pruned.encode(line, false).unwrap();
                assert_eq!(ids.get_ids(), &mapped[..], "disagreement on {line:?}");
                agreements += 1;
            }
        }
    }
    agreements
}

/// A 64-wide, 2-layer model with FFN 192: the shape the prune reports' parameter shares use.
pub fn tiny_model() -> tinyforge_model::ModelConfig {
    tinyforge_model::ModelOptions {
        name: Some("tiny".into()),
        dim: Some(64),
        layers: Some(2),
        heads: Some(4),
        ffn_dim: Some(192),
        vocab_size: Some(1),
        ..Default::default()
    }
    .resolve(None)
    .unwrap()
}
