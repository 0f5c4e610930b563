//! End to end: `tinyforge vocab count | merge | prune` on the real-text fixture corpus with the
//! committed SentencePiece-style fixture tokenizer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::tinyforge;
use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use assert_cmd::Command;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vocab/tests/fixtures")
        .join(name)
}

/// The fixture corpus as a documents folder of two parts with small row groups.
fn write_docs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let text = std::fs::read_to_string(fixture("corpus.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ]));
    for (part, chunk) in rows.chunks(rows.len().div_ceil(2)).enumerate() {
        let column = |key: &str| {
            Arc::new(StringArray::from_iter_values(
                chunk.iter().map(|r| r[key].as_str().unwrap().to_owned()),
            ))
        };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt64Array::from_iter_values(
                    chunk.iter().map(|r| r["id"].as_u64().unwrap()),
                )),
                column("text"),
                column("lang"),
                column("source"),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(30))
            .build();
        let file = std::fs::File::create(dir.join(format!("part-{part:05}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

fn json_stdout(cmd: &mut Command) -> serde_json::Value {
    let output = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&output).unwrap()
}

#[test]
fn count_merge_prune_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    write_docs(&docs);
    let tokenizer = fixture("spm_bpe.json");
    let counts = tmp.path().join("counts.parquet");

    let report = json_stdout(
        tinyforge()
            .args(["vocab", "count"])
            .arg(&docs)
            .arg("--tokenizer")
            .arg(&tokenizer)
            .arg("--out")
            .arg(&counts)
            .args(["--k", "300,600,1000"]),
    );
    let total = report["total_tokens"].as_u64().unwrap();
    assert!(total > 10_000, "{report}");
    assert_eq!(report["documents"].as_u64(), Some(295));
    assert_eq!(report["coverage"].as_array().unwrap().len(), 3);
    let used = report["distinct_tokens_used"].as_u64().unwrap();
    assert!(used > 300 && used <= 1756, "{report}");
    let svg = std::fs::read_to_string(tmp.path().join("counts.coverage.svg")).unwrap();
    assert!(svg.contains("<svg"));
    let csv = std::fs::read_to_string(tmp.path().join("counts.coverage.csv")).unwrap();
    assert!(csv.starts_with("k,coverage\n1,"));

    // Three shard tasks merged give the single run's table.
    let mut partials = Vec::new();
    for i in 0..3 {
        let part = tmp.path().join(format!("counts-{i}.parquet"));
        tinyforge()
            .args(["vocab", "count"])
            .arg(&docs)
            .arg("--tokenizer")
            .arg(&tokenizer)
            .arg("--out")
            .arg(&part)
            .args(["--shard", &format!("{i}/3")])
            .assert()
            .success();
        partials.push(part);
    }
    let merged = tmp.path().join("merged.parquet");
    let merge_report = json_stdout(
        tinyforge()
            .args(["vocab", "merge"])
            .args(&partials)
            .arg("--out")
            .arg(&merged),
    );
    assert_eq!(merge_report["total_tokens"].as_u64(), Some(total));
    let single = tinyforge_vocab::Counts::read(&counts).unwrap();
    let combined = tinyforge_vocab::Counts::read(&merged).unwrap();
    assert_eq!(single.counts, combined.counts);
    assert_eq!(single.documents, combined.documents);

    let out = tmp.path().join("compact");
    let prune_report = json_stdout(
        tinyforge()
            .args(["vocab", "prune", "--counts"])
            .arg(&merged)
            .arg("--tokenizer")
            .arg(&tokenizer)
            .args(["--size", "600", "--model", "pangu-1b-pro", "--out"])
            .arg(&out),
    );
    assert_eq!(prune_report["vocab_size"].as_u64(), Some(600));
    assert_eq!(prune_report["model"]["name"], "pangu-1b-pro");
    assert!(
        prune_report["model"]["embedding_head_share"]
            .as_f64()
            .unwrap()
            < 0.01
    );
    let pruned = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    assert_eq!(pruned.get_vocab_size(true), 600);
    let text = "天地玄黄 The Congress, fn main() {}";
    let ids = pruned.encode(text, false).unwrap();
    assert_eq!(pruned.decode(ids.get_ids(), false).unwrap(), text);
    assert!(out.join("id_map.json").is_file() && out.join("report.json").is_file());

    // --coverage picks the size itself.
    let by_coverage = json_stdout(
        tinyforge()
            .args(["vocab", "prune", "--counts"])
            .arg(&counts)
            .arg("--tokenizer")
            .arg(&tokenizer)
            .args([
                "--coverage",
                "0.95",
                "--model-dim",
                "64",
                "--model-layers",
                "2",
            ])
            .args(["--model-ffn", "192", "--out"])
            .arg(tmp.path().join("by-coverage")),
    );
    assert!(by_coverage["coverage"].as_f64().unwrap() >= 0.95);
}

#[test]
fn bad_inputs_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    write_docs(&docs);
    let tokenizer = fixture("spm_bpe.json");
    let counts = tmp.path().join("counts.parquet");
    tinyforge()
        .args(["vocab", "count"])
        .arg(&docs)
        .arg("--tokenizer")
        .arg(&tokenizer)
        .arg("--out")
        .arg(&counts)
        .assert()
        .success();

    let small = tinyforge()
        .args(["vocab", "prune", "--counts"])
        .arg(&counts)
        .arg("--tokenizer")
        .arg(&tokenizer)
        .args(["--size", "100", "--out"])
        .arg(tmp.path().join("x"))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&small.get_output().stderr).into_owned();
    assert!(stderr.contains("260"), "{stderr}");

    let unigram = tmp.path().join("unigram-tokenizer.json");
    std::fs::write(
        &unigram,
        r#"{"version":"1.0","model":{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0.0]]}}"#,
    )
    .unwrap();
    let broken = tmp.path().join("broken-tokenizer.json");
    std::fs::write(&broken, "{\"model\": [").unwrap();
    for (path, expected) in [(&unigram, "Unigram"), (&broken, "not a valid")] {
        let run = tinyforge()
            .args(["vocab", "count"])
            .arg(&docs)
            .arg("--tokenizer")
            .arg(path)
            .arg("--out")
            .arg(tmp.path().join("y.parquet"))
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn every_vocab_subcommand_has_an_example_in_its_help() {
    for sub in ["count", "merge", "prune"] {
        let output = tinyforge()
            .args(["vocab", sub, "--help"])
            .assert()
            .success();
        let help = String::from_utf8_lossy(&output.get_output().stdout).into_owned();
        assert!(help.contains("tinyforge vocab"), "{sub}: {help}");
    }
}
