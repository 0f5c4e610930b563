//! `tinyforge tokenize` and `tinyforge shards merge | verify | inspect`, driven through the real
//! binary on the committed real-document fixture (tokenize/tests/fixtures).

use std::path::{Path, PathBuf};

use crate::{error_line, tinyforge};
use assert_cmd::Command;
use tinyforge_shards::{Dataset, Manifest};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tokenize/tests/fixtures")
}

/// `tinyforge tokenize` of the fixture documents into `out`, with small shards and frames.
fn tokenize_command(out: &Path) -> Command {
    let mut command = tinyforge();
    command
        .arg("tokenize")
        .arg(fixtures().join("docs"))
        .arg("--tokenizer")
        .arg(fixtures().join("tokenizer.json"))
        .arg("--out")
        .arg(out)
        .args(["--shard-tokens", "2500", "--frame-tokens", "200"]);
    command
}

/// Runs [`tokenize_command`] with `extra`, which must succeed; returns the JSON report.
fn tokenize(out: &Path, extra: &[&str]) -> serde_json::Value {
    let output = tokenize_command(out).args(extra).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stream(dir: &Path) -> Vec<u32> {
    let dataset = Dataset::open(dir).unwrap();
    dataset
        .read_range(0, dataset.total_tokens() as usize)
        .unwrap()
}

/// Every file of a dataset folder, by name, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "tfs" || e == "json")
                && !p.ends_with("_progress.json")
        })
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
fn tokenize_then_verify_and_inspect() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("tokens");
    // Level 3: at the default fast level, frames of only 200 u16 ids hardly compress.
    let level = ["--zstd-level", "3"];
    let report = tokenize(&out, &level);
    assert_eq!(report["documents"], 81);
    assert_eq!(report["dtype"], "u16");
    assert!(report["shards"].as_u64().unwrap() > 3);
    assert!(report["compression_ratio"].as_f64().unwrap() > 1.0);
    assert!(report["tokens_per_document"]["p50"].as_u64().unwrap() > 1);

    tinyforge()
        .args(["shards", "verify"])
        .arg(&out)
        .assert()
        .success();

    let output = tinyforge()
        .args(["shards", "inspect"])
        .arg(&out)
        .arg("--tokenizer")
        .arg(fixtures().join("tokenizer.json"))
        .args(["--unit", "0", "--seq-len", "12"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inspect: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(inspect["sample"]["tokens"].as_array().unwrap().len(), 13);
    let text = inspect["sample"]["text"].as_str().unwrap();
    assert!(text.starts_with("Madam Speaker"), "{text}");

    // A rerun of a finished job does no work and reports the same dataset.
    let again = tokenize(&out, &level);
    assert_eq!(again["tokens"], report["tokens"]);
    assert_eq!(again["run"]["text_bytes"], 0);
}

#[test]
fn four_tasks_merged_hold_the_single_run_stream() {
    let root = tempfile::tempdir().unwrap();
    let single = root.path().join("single");
    tokenize(&single, &[]);
    let mut tasks = Vec::new();
    for i in 0..4u32 {
        let dir = root.path().join(format!("tasks/t{i}"));
        if i % 2 == 0 {
            tokenize(&dir, &["--shard", &format!("{i}/4")]);
        } else {
            // As a Slurm `--array=1-4` task would run it.
            let output = tokenize_command(&dir)
                .args(["--shard", "auto"])
                .env("SLURM_ARRAY_TASK_ID", (i + 1).to_string())
                .env("SLURM_ARRAY_TASK_MIN", "1")
                .env("SLURM_ARRAY_TASK_MAX", "4")
                .env("SLURM_ARRAY_TASK_COUNT", "4")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tasks.push(dir);
    }
    let merged = root.path().join("merged");
    tinyforge()
        .args(["shards", "merge"])
        .args(tasks.iter().rev())
        .arg("--out")
        .arg(&merged)
        .assert()
        .success();
    assert_eq!(stream(&merged), stream(&single));
    let manifest = Manifest::read(&merged).unwrap();
    assert_eq!(manifest.documents, 81);
    assert!(
        manifest
            .shards
            .iter()
            .all(|s| s.file.starts_with("../tasks/t"))
    );
    tinyforge()
        .args(["shards", "verify"])
        .arg(&merged)
        .assert()
        .success();
}

#[test]
fn resume_after_a_kill_gives_the_same_bytes() {
    let root = tempfile::tempdir().unwrap();
    let clean = root.path().join("clean");
    tokenize(&clean, &[]);

    let out = root.path().join("killed");
    // Dies right after shard 2 is renamed into place, before it is recorded as finished.
    let killed = tokenize_command(&out)
        .env("TINYFORGE_TEST_ABORT_AFTER_SHARDS", "2")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    assert!(
        !out.join("manifest.json").exists(),
        "no manifest before the run completes"
    );
    assert!(out.join("shard-000001.tfs").exists());
    // A half-written file from the moment of the kill must not survive either.
    std::fs::write(out.join(".shard-000002.tfs.tmp-999"), b"partial").unwrap();

    let report = tokenize(&out, &[]);
    assert_eq!(
        report["resumed_shards"], 1,
        "shard 0 was recorded, shard 1 was not"
    );
    assert_eq!(files(&out), files(&clean));
    assert!(!out.join(".shard-000002.tfs.tmp-999").exists());
}

#[test]
fn a_panic_while_encoding_names_the_document_and_the_rerun_resumes() {
    let root = tempfile::tempdir().unwrap();
    let clean = root.path().join("clean");
    let documents = tokenize(&clean, &[])["documents"].as_u64().unwrap();

    // One encoder thread, so the document that panics is the same one every run.
    let out = root.path().join("failed");
    let failed = tokenize_command(&out)
        .args(["--threads", "1", "--batch-rows", "8"])
        .env(
            "FAILPOINTS",
            format!(
                "tokenize::document={}*off->panic(injected fault)",
                documents * 3 / 4
            ),
        )
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let line = error_line(&failed.stderr);
    assert!(
        line.contains(".parquet: row ")
            && line.contains("panicked: injected fault")
            && line.contains("a rerun resumes"),
        "{line}"
    );
    assert!(!out.join("manifest.json").exists());

    let report = tokenize(&out, &["--threads", "1", "--batch-rows", "8"]);
    assert!(report["resumed_shards"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(files(&out), files(&clean));
}

#[test]
fn a_second_writer_of_a_task_is_told_who_holds_it() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("t1");
    let shard = tinyforge_task::Shard { index: 1, count: 4 };
    let held = tinyforge_task::TaskLock::acquire(&out, "tokenize", shard).unwrap();
    let output = tokenize_command(&out)
        .args(["--shard", "1/4"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("being written by another task")
            && stderr.contains(&format!("pid {}", std::process::id()))
            && stderr.contains("t1"),
        "{stderr}"
    );
    drop(held);
    // Once the holder lets go, the task runs.
    tokenize(&out, &["--shard", "1/4"]);

    let output = tinyforge()
        .args([
            "tokenize",
            "docs",
            "--tokenizer",
            "t.json",
            "--out",
            "x",
            "--shard",
            "auto",
        ])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no array index in the environment"),
        "{stderr}"
    );
}

#[test]
fn a_flipped_byte_is_caught_by_verify_and_reads() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("tokens");
    tokenize(&out, &[]);
    let manifest = Manifest::read(&out).unwrap();
    let victim = out.join(&manifest.shards[1].file);
    let mut bytes = std::fs::read(&victim).unwrap();
    // Byte 100 is inside the first frame (the header is 24 bytes; frames are a few hundred).
    bytes[100] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();

    let output = tinyforge()
        .args(["shards", "verify"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == manifest.shards[1].file.as_str() && p["frame"] == 0),
        "{problems:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("shard-000001.tfs"), "{stderr}");

    let dataset = Dataset::open(&out).unwrap();
    let error = dataset
        .read_range(dataset.shard_start(1), 10)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("shard-000001.tfs") && error.contains("frame 0"),
        "{error}"
    );
}
