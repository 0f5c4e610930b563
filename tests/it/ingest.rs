//! End to end: the real `tinyforge ingest` binary on slices of the real corpus
//! (ingest/tests/fixtures/real, cut by make-fixtures.sh), sharded, killed and resumed.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::{error_line, tinyforge};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/fixtures/real")
}

/// A config over every fixture format, with tiny parts so there are several chunks.
pub(crate) fn write_config(dir: &Path) -> PathBuf {
    write_config_reading(dir, &fixtures().display().to_string())
}

/// The fixture config, reading the fixture corpus from `real` (a folder or an object-store
/// URL holding a copy of it).
pub(crate) fn write_config_reading(dir: &Path, real: &str) -> PathBuf {
    let config = format!(
        r#"part_size_mb = 0.01
row_group_mb = 0.004
min_chars = 16

[[input]]
path = "{real}/songci/*.json"
text_fields = ["rhythmic", "paragraphs"]
source = "songci"
keep = ["author"]

[[input]]
path = "{real}/sotu/sotu.jsonl"
source = "sotu"
id = "year"
keep = ["name"]

[[input]]
path = ["{real}/help/zh-CN", "{real}/help/en-US"]
source = "help"
keep = ["path"]

[[input]]
path = "{real}/rust/*.rs"
source = "rust"
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn ingest(config: &Path, out: &Path, extra: &[&str]) -> Value {
    let output = tinyforge()
        .arg("ingest")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `ingest` with one worker (so chunks finish in order) and `var` set, which stops it early:
/// its output, whatever its status.
fn ingest_one_worker(config: &Path, out: &Path, (var, value): (&str, &str)) -> Output {
    tinyforge()
        .env(var, value)
        .args(["ingest", "-j", "1", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn parts(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn ingests_real_slices_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = dir.path().join("docs");
    let report = ingest(&config, &out, &[]);
    assert_eq!(report["complete"], true);
    assert_eq!(report["files"], 10);
    // 41 ci (one an exact duplicate), 2 speeches, 6 help pages, 2 Rust files.
    assert_eq!(report["documents_in"], 51);
    assert!(report["dropped"]["duplicate"].as_u64().unwrap() >= 1);
    assert!(
        report["by_lang"]["zh"]["documents"].as_u64().unwrap() >= 40,
        "{report}"
    );
    assert!(
        report["by_lang"]["en"]["documents"].as_u64().unwrap() >= 2,
        "{report}"
    );
    assert_eq!(report["by_source"]["sotu"]["documents"], 2);
    assert_eq!(report["by_source"]["help"]["records"], 6);
    assert!(out.join("_manifest.json").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("_manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["columns"],
        serde_json::json!(["id", "text", "lang", "source", "author", "name", "path"])
    );
    assert_eq!(manifest["documents"], report["documents_out"]);
    assert!(manifest["parts"].as_array().unwrap().len() > 3);

    // The same command into another folder gives the same bytes.
    let again = dir.path().join("again");
    ingest(&config, &again, &[]);
    assert_eq!(parts(&out), parts(&again));
}

#[test]
fn four_tasks_then_merge_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let single = dir.path().join("single");
    let one = ingest(&config, &single, &[]);
    let sharded = dir.path().join("sharded");
    for task in 0..4 {
        let report = ingest(&config, &sharded, &["--shard", &format!("{task}/4")]);
        assert_eq!(report["complete"], false);
    }
    let merged = ingest(&config, &sharded, &["--merge"]);
    assert_eq!(merged["complete"], true);
    assert_eq!(merged["documents_out"], one["documents_out"]);
    assert_eq!(merged["by_lang"], one["by_lang"]);
    assert_eq!(parts(&sharded), parts(&single));
}

#[test]
fn resumes_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let reference = dir.path().join("reference");
    let full = ingest(&config, &reference, &[]);
    let chunks = full["chunks_total"].as_u64().unwrap();
    assert!(chunks >= 4, "{chunks} chunks");

    let out = dir.path().join("out");
    let killed = ingest_one_worker(&config, &out, ("TINYFORGE_TEST_KILL_AFTER_CHUNKS", "2"));
    assert!(!killed.status.success(), "the run should have been killed");
    assert!(!out.join("_manifest.json").exists());
    let committed = std::fs::read_dir(out.join("_state"))
        .unwrap()
        .filter(|e| {
            let name = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            name.starts_with("chunk-") && name.ends_with(".json")
        })
        .count() as u64;
    assert!(
        (2..chunks).contains(&committed),
        "{committed} of {chunks} chunks committed"
    );

    let resumed = ingest(&config, &out, &[]);
    assert_eq!(resumed["chunks_resumed"].as_u64().unwrap(), committed);
    assert_eq!(resumed["documents_out"], full["documents_out"]);
    assert_eq!(parts(&out), parts(&reference));
}

#[test]
fn a_panicking_worker_names_its_chunk_and_the_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let reference = dir.path().join("reference");
    let full = ingest(&config, &reference, &[]);

    // The third chunk a single worker takes panics, as a library might on input it cannot take.
    let out = dir.path().join("out");
    let failed = ingest_one_worker(
        &config,
        &out,
        ("FAILPOINTS", "ingest::chunk=2*off->panic(injected fault)"),
    );
    assert_eq!(failed.status.code(), Some(1));
    let line = error_line(&failed.stderr);
    assert!(
        line.contains("a worker panicked on chunk 2 (") && line.contains("injected fault"),
        "{line}"
    );
    // The chunk's first input, as its path under its input's root, is a file of the corpus.
    let named = line
        .split("chunk 2 (")
        .nth(1)
        .and_then(|rest| rest.split([',', ')']).next())
        .and_then(|first| first.split(" row group ").next())
        .and_then(|first| first.split(" bytes ").next())
        .unwrap_or_default();
    assert!(
        !named.is_empty() && corpus_has_file_ending_with(&fixtures(), named),
        "{named:?} names no fixture file: {line}"
    );

    let resumed = ingest(&config, &out, &[]);
    assert_eq!(resumed["chunks_resumed"], 2, "{resumed}");
    assert_eq!(resumed["documents_out"], full["documents_out"]);
    assert_eq!(parts(&out), parts(&reference));
}

fn corpus_has_file_ending_with(dir: &Path, tail: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            corpus_has_file_ending_with(&path, tail)
        } else {
            path.to_string_lossy().ends_with(tail)
        }
    })
}

#[test]
fn bad_input_is_rejected_or_fails_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"a perfectly fine document of some length\"}\n{\"text\": oops}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = tinyforge()
        .arg("ingest")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["dropped"]["malformed"], 1);
    let rejects = std::fs::read_to_string(out.join("_rejects.jsonl")).unwrap();
    assert!(
        rejects.contains("in.jsonl") && rejects.contains("\"line\":2"),
        "{rejects}"
    );

    let output = tinyforge()
        .arg("ingest")
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out2"))
        .args(["--on-error", "fail"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in.jsonl") && stderr.contains("line 2"),
        "{stderr}"
    );

    let output = tinyforge()
        .args(["ingest", "--config"])
        .arg(dir.path().join("nope.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    std::fs::write(
        dir.path().join("typo.toml"),
        "out = 'x'\n[[input]]\npath = 'a'\ntext_feild = 'b'\n",
    )
    .unwrap();
    let output = tinyforge()
        .args(["ingest", "--config"])
        .arg(dir.path().join("typo.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("typo.toml") && stderr.contains("text_feild"),
        "{stderr}"
    );
}

#[test]
fn help_has_an_example() {
    let output = tinyforge().args(["ingest", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("tinyforge ingest --config"));
}
