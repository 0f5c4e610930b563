//! End-to-end tests of `tinyforge train`, `score` and `model info` (need `--features train`:
//! libtorch from scripts/setup-python). CPU, the tiny config, real text.
#![cfg(feature = "train")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use tinyforge_shards::{DatasetHeader, DatasetWriter, Dtype, Manifest, ShardOptions};

fn fixture_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("train/tests/fixtures/sotu.txt"),
    )
    .unwrap()
}

/// Byte-level token dataset of the fixture text (vocab 257, EOS 256).
pub(crate) fn dataset(dir: &Path) -> PathBuf {
    let header = DatasetHeader {
        tokenizer_sha256: "0".repeat(64),
        vocab_size: 257,
        dtype: Dtype::U16,
        eos_id: 256,
        frame_tokens: 2048,
    };
    let mut w =
        DatasetWriter::new(dir, ShardOptions::from_header(&header), 16_000, vec![]).unwrap();
    for (i, para) in fixture_text()
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .enumerate()
    {
        w.push_document(i as u64, &para.bytes().map(u32::from).collect::<Vec<_>>())
            .unwrap();
    }
    Manifest::new(header, None, w.finish().unwrap())
        .write(dir)
        .unwrap();
    dir.to_path_buf()
}

pub(crate) fn config(dir: &Path, data: &Path, out: &Path) -> PathBuf {
    let path = dir.join(format!(
        "{}.toml",
        out.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &path,
        format!(
            "model = \"tiny\"\ndata = {data:?}\nout = {out:?}\nseq_len = 32\nbatch_size = 8\nmicro_batch = 4\n\
             lr = 3e-3\nref_batch_tokens = 256\ncheckpoint_every = 5\neval_every = 25\nval_units = 16\n\
             device = \"cpu\"\nrounds = [{{ fraction = 1.0 }}, {{ fraction = 0.5, select = \"softmax-loss\" }}]\n"
        ),
    )
    .unwrap();
    path
}

pub(crate) fn tinyforge() -> Command {
    let mut c = Command::cargo_bin("tinyforge").unwrap();
    // One OpenMP thread: the tiny model gains nothing from more, and spinning threads crawl on a
    // loaded machine.
    c.env_remove("LD_LIBRARY_PATH")
        .env("OMP_NUM_THREADS", "1")
        .args(["--progress", "none"]);
    c
}

/// `tinyforge train CONFIG ARGS…`, which must succeed: its JSON report.
pub(crate) fn train_report(config: &Path, args: &[&str]) -> serde_json::Value {
    json(
        &tinyforge()
            .arg("train")
            .arg(config)
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout,
    )
}

pub(crate) fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

pub(crate) fn final_model(out: &Path) -> Vec<u8> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    steps.sort();
    std::fs::read(steps.last().unwrap().join("model.safetensors")).unwrap()
}

#[test]
fn model_info_gives_the_paper_arithmetic() {
    let out = tinyforge()
        .args(["model", "info", "pangu-1b-pro"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v = json(&out);
    assert_eq!(v["params"], 951_983_872u64);
    assert_eq!(v["embedding_head_share"], 0.1807);
    let v = json(
        &tinyforge()
            .args(["model", "info", "tiny", "--vocab", "257"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(v["layers"], 2);
}

#[test]
fn train_killed_and_resumed_equals_straight_then_score() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(&tmp.path().join("shards"));
    let straight = tmp.path().join("straight");
    let resumed = tmp.path().join("resumed");

    let report = train_report(&config(tmp.path(), &data, &straight), &[]);
    assert_eq!(report["complete"], true);
    assert_eq!(report["rounds_done"], 2);
    assert!(
        report["last_loss"].as_f64().unwrap() < report["first_loss"].as_f64().unwrap() - 1.5,
        "{report}"
    );

    // A stop by step budget, then a real SIGKILL mid-run, then a resume to the end.
    let cfg = config(tmp.path(), &data, &resumed);
    let r = train_report(&cfg, &["--steps", "7"]);
    assert_eq!(r["complete"], false);
    assert_eq!(r["steps"], 7);
    let bin = assert_cmd::cargo::cargo_bin("tinyforge");
    let mut child = std::process::Command::new(bin)
        .env("OMP_NUM_THREADS", "1")
        .args(["--progress", "none", "train"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !resumed.join("checkpoints/step-00000020").exists()
        && t0.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let r = train_report(&cfg, &[]);
    assert_eq!(r["complete"], true);
    assert_eq!(r["steps"], report["steps"]);
    assert!(
        final_model(&straight) == final_model(&resumed),
        "resumed weights differ from the straight run"
    );

    // Score round 1's plan with the final checkpoint.
    let mut ckpts: Vec<PathBuf> = std::fs::read_dir(straight.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ckpts.sort();
    let table = tmp.path().join("scores.parquet");
    let s = json(
        &tinyforge()
            .args(["score", "--device", "cpu", "--checkpoint"])
            .arg(ckpts.last().unwrap())
            .arg("--data")
            .arg(&data)
            .arg("--plan")
            .arg(straight.join("plans/round-1.json"))
            .arg("--out")
            .arg(&table)
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(straight.join("plans/round-1.json")).unwrap())
            .unwrap();
    assert_eq!(s["units"], plan["steps"].as_u64().unwrap() * 8);
    assert!(table.exists());
    assert!(s["mean_loss"].as_f64().unwrap() < 4.0, "{s}");
}

#[test]
fn corrupt_checkpoint_is_refused_by_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(&tmp.path().join("shards"));
    let out = tmp.path().join("run");
    let cfg = config(tmp.path(), &data, &out);
    tinyforge()
        .arg("train")
        .arg(&cfg)
        .args(["--steps", "5"])
        .assert()
        .success();
    let model = out.join("checkpoints/step-00000005/model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    std::fs::write(&model, bytes).unwrap();
    let err = tinyforge()
        .arg("train")
        .arg(&cfg)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("corrupt") && err.contains("model.safetensors"),
        "{err}"
    );
}
