//! Tokenize end to end through the library: real documents, a real (small) BPE tokenizer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use tinyforge_shards::{Dataset, Dtype, merge, verify};
use tinyforge_tokenize::{DEFAULT_MAX_PRETOKEN_CHARS, TokenizeConfig, TokenizerInfo, tokenize};

mod long;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The committed real documents (see fixtures/make_fixtures.py).
fn fixture_docs() -> Vec<(u64, String)> {
    std::fs::read_to_string(fixtures().join("docs.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                value["id"].as_u64().unwrap(),
                value["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Writes `docs` as `files` Parquet parts with row groups of `group_rows` rows.
fn write_docs(dir: &Path, docs: &[(u64, String)], files: usize, group_rows: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
    ]));
    let per_file = docs.len().div_ceil(files);
    for (n, part) in docs.chunks(per_file).enumerate() {
        let file = std::fs::File::create(dir.join(format!("part-{n:05}.parquet"))).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group_rows))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt64Array::from_iter_values(part.iter().map(|d| d.0))),
                Arc::new(StringArray::from_iter_values(
                    part.iter().map(|d| d.1.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(part.iter().map(|_| "und"))),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

fn config(docs: &Path, tokenizer: &Path, out: &Path) -> TokenizeConfig {
    TokenizeConfig {
        shard_tokens: 3_000,
        frame_tokens: 256,
        // At the default fast level frames this small hardly compress.
        zstd_level: 3,
        batch_rows: 7,
        ..TokenizeConfig::new(
            docs.to_path_buf(),
            tokenizer.to_path_buf(),
            out.to_path_buf(),
        )
    }
}

fn all_tokens(dir: &Path) -> Vec<u32> {
    let dataset = Dataset::open(dir).unwrap();
    dataset
        .read_range(0, dataset.total_tokens() as usize)
        .unwrap()
}

/// decode(tokens) split at EOS gives back every document, in order.
fn assert_round_trip(dataset_dir: &Path, tokenizer: &TokenizerInfo, docs: &[(u64, String)]) {
    let tokens = all_tokens(dataset_dir);
    let pieces: Vec<&[u32]> = tokens.split(|&t| t == tokenizer.eos_id).collect();
    assert_eq!(pieces.len(), docs.len() + 1, "one EOS per document");
    assert!(pieces[docs.len()].is_empty(), "the stream ends with EOS");
    for (piece, (id, text)) in pieces.iter().zip(docs) {
        assert_eq!(tokenizer.decode(piece).unwrap(), *text, "document {id}");
        assert_eq!(
            piece.to_vec(),
            tokenizer.encode(text).unwrap(),
            "ids of document {id}"
        );
    }
    let dataset = Dataset::open(dataset_dir).unwrap();
    let mut start = 0;
    for (i, (id, _)) in docs.iter().enumerate() {
        let found = dataset.document_at(start).unwrap();
        assert_eq!((found.index, found.id), (i as u64, *id));
        start = found.end;
    }
}

#[test]
fn real_documents_round_trip_through_u16_shards() {
    let root = tempfile::tempdir().unwrap();
    let docs = fixture_docs();
    write_docs(&root.path().join("docs"), &docs, 3, 10);
    let tokenizer_path = fixtures().join("tokenizer.json");
    let out = root.path().join("tokens");
    let report = tokenize(
        &config(&root.path().join("docs"), &tokenizer_path, &out),
        &tinyforge_task::Silent,
    )
    .unwrap();
    let tokenizer = TokenizerInfo::load(&tokenizer_path, None, DEFAULT_MAX_PRETOKEN_CHARS).unwrap();
    assert_eq!(report.documents, docs.len() as u64);
    assert_eq!(report.dtype, "u16");
    assert!(
        report.shards > 3,
        "small shards so the test crosses shard boundaries"
    );
    assert!(report.compression_ratio > 1.0);
    assert_eq!(
        report.text_bytes,
        docs.iter().map(|d| d.1.len() as u64).sum::<u64>()
    );
    assert_eq!(Dataset::open(&out).unwrap().dtype(), Dtype::U16);
    assert_round_trip(&out, &tokenizer, &docs);
    assert!(verify(&out, &tinyforge_task::Silent).unwrap().ok());
}

#[test]
fn output_is_byte_identical_across_runs_threads_and_task_counts() {
    let root = tempfile::tempdir().unwrap();
    let docs_dir = root.path().join("docs");
    write_docs(&docs_dir, &fixture_docs(), 4, 6);
    let tokenizer = fixtures().join("tokenizer.json");
    let one = root.path().join("one");
    tokenize(
        &TokenizeConfig {
            threads: 1,
            ..config(&docs_dir, &tokenizer, &one)
        },
        &tinyforge_task::Silent,
    )
    .unwrap();
    let again = root.path().join("again");
    tokenize(
        &TokenizeConfig {
            threads: 2,
            batch_rows: 3,
            ..config(&docs_dir, &tokenizer, &again)
        },
        &tinyforge_task::Silent,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(one.join("manifest.json")).unwrap(),
        std::fs::read(again.join("manifest.json")).unwrap()
    );
    let manifest = tinyforge_shards::Manifest::read(&one).unwrap();
    for shard in &manifest.shards {
        assert_eq!(
            std::fs::read(one.join(&shard.file)).unwrap(),
            std::fs::read(again.join(&shard.file)).unwrap()
        );
    }

    let mut tasks = Vec::new();
    for i in 0..4 {
        let dir = root.path().join(format!("tasks/t{i}"));
        tokenize(
            &TokenizeConfig {
                task: tinyforge_task::Shard { index: i, count: 4 },
                ..config(&docs_dir, &tokenizer, &dir)
            },
            &tinyforge_task::Silent,
        )
        .unwrap();
        tasks.push(dir);
    }
    let merged = root.path().join("merged");
    let manifest_merged = merge(&tasks, &merged, &[]).unwrap();
    assert_eq!(manifest_merged.documents, manifest.documents);
    assert_eq!(all_tokens(&merged), all_tokens(&one));
}

#[test]
fn qwen3_tokenizer_writes_u32_shards_when_present() {
    let Some(qwen) = tinyforge_testkit::qwen3_tokenizer() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let docs = fixture_docs();
    write_docs(&root.path().join("docs"), &docs, 2, 16);
    let out = root.path().join("tokens");
    let report = tokenize(
        &config(&root.path().join("docs"), &qwen, &out),
        &tinyforge_task::Silent,
    )
    .unwrap();
    assert_eq!(report.dtype, "u32");
    // The EOS is the one Qwen3's tokenizer_config.json names (as transformers, Megatron and
    // MosaicML take it), not the first usual spelling (<|endoftext|>, 151643).
    let tokenizer = TokenizerInfo::load(&qwen, None, DEFAULT_MAX_PRETOKEN_CHARS).unwrap();
    assert_eq!(
        (tokenizer.eos_token.as_str(), tokenizer.eos_id),
        ("<|im_end|>", 151_645)
    );
    assert_eq!(tokenizer.eos_source, "tokenizer_config.json");
    assert_eq!(report.eos_token, "<|im_end|>");
    let without = root.path().join("bare/tokenizer.json");
    std::fs::create_dir_all(without.parent().unwrap()).unwrap();
    std::fs::copy(&qwen, &without).unwrap();
    let bare = TokenizerInfo::load(&without, None, DEFAULT_MAX_PRETOKEN_CHARS).unwrap();
    assert_eq!(
        (bare.eos_id, bare.eos_source),
        (151_643, "the usual spellings")
    );
    // The dataset carries the tokenizer and its configs.
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(&qwen).unwrap()
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("tokenizer_config.json")).unwrap()).unwrap();
    assert_eq!(config["eos_token"], "<|im_end|>");
    assert!(config["chat_template"].is_string());
    assert_round_trip(&out, &tokenizer, &docs);
}

#[test]
fn a_folder_without_a_text_column_names_the_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("docs");
    std::fs::create_dir_all(&dir).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("body", DataType::Utf8, false)]));
    let file = std::fs::File::create(dir.join("part-00000.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["x"]))]).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let error = tokenize(
        &config(
            &dir,
            &fixtures().join("tokenizer.json"),
            &root.path().join("out"),
        ),
        &tinyforge_task::Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("part-00000.parquet") && error.contains("text"),
        "{error}"
    );
}
