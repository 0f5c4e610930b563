//! End-to-end tests of `tinyforge train`, `score` and `model info` (need `--features train`:
//! libtorch from scripts/setup-python). CPU, the tiny config, real text.
#![cfg(feature = "train")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{json, tinyforge};
use tinyforge_sampler::{HeldOut, Plan};
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

    held_out_is_a_spread_sample_no_plan_draws(&straight, &resumed);
    tensorboard_reads_the_metrics_back(&resumed);
    let eval = eval_scores_the_held_out_units(&straight, &tmp.path().join("eval"));
    crate::report::run_report_renders_in_chromium(&straight, &eval);

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

/// Both runs hold out the same 16 units, one from each sixteenth of the dataset, and neither
/// round's plan draws one.
fn held_out_is_a_spread_sample_no_plan_draws(straight: &Path, resumed: &Path) {
    let held = HeldOut::read(&straight.join("heldout.json")).unwrap();
    assert_eq!(held, HeldOut::read(&resumed.join("heldout.json")).unwrap());
    let (n, k) = (held.units, held.held_out.len() as u64);
    assert_eq!(k, 16);
    for (i, &u) in (0..).zip(&held.held_out) {
        assert!(
            (i * n / k..(i + 1) * n / k).contains(&u),
            "unit {u} outside run {i}"
        );
    }
    for round in [1, 2] {
        let plan = Plan::open(straight.join(format!("plans/round-{round}.json"))).unwrap();
        assert_eq!(plan.pools()[0].held_out, held.held_out);
        for step in 0..plan.num_steps() {
            for unit in plan.batch(step).unwrap() {
                assert!(
                    held.held_out.binary_search(&unit.unit).is_err(),
                    "round {round} step {step} trains on held-out unit {}",
                    unit.unit
                );
            }
        }
    }
}

/// TensorBoard's own reader gives each step's logged values once, though the killed run logged
/// steps past its last checkpoint that the resumed run logged again.
fn tensorboard_reads_the_metrics_back(run: &Path) {
    let Some(py) = crate::venv_python("tensorboard") else {
        return;
    };
    let script = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
tags = acc.Tags()["scalars"]
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags}))
"#;
    let out = std::process::Command::new(py)
        .args(["-c", script])
        .arg(run.join("tensorboard"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scalars = json(&out.stdout);
    let records: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let train: Vec<&serde_json::Value> = records.iter().filter(|r| r["kind"] == "train").collect();
    for (tag, field) in [
        ("train/loss", "loss"),
        ("train/lr", "lr"),
        ("train/grad_norm", "grad_norm"),
        ("train/tokens_per_s", "tokens_per_s"),
    ] {
        let logged = scalars[tag]
            .as_array()
            .unwrap_or_else(|| panic!("no {tag}: {scalars}"));
        assert_eq!(logged.len(), train.len(), "{tag}: one value per step");
        for (event, record) in logged.iter().zip(&train) {
            assert_eq!(event[0], record["step"], "{tag}");
            let (a, b) = (event[1].as_f64().unwrap(), record[field].as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                "{tag} at {}: {a} vs {b}",
                event[0]
            );
        }
    }
    let val: Vec<&serde_json::Value> = records.iter().filter(|r| r["kind"] == "val").collect();
    assert!(!val.is_empty());
    assert_eq!(scalars["val/loss"].as_array().unwrap().len(), val.len());
}

/// `tinyforge eval --held-out RUN` scores exactly the run's held-out units, beside the unigram
/// baseline of the same tokens.
fn eval_scores_the_held_out_units(run: &Path, out: &Path) -> PathBuf {
    let tokenizer =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/tests/fixtures/byte-tokenizer.json");
    let report = json(
        &tinyforge()
            .args(["eval", "--tasks", "none", "--checkpoint"])
            .arg(run)
            .arg("--tokenizer")
            .arg(&tokenizer)
            .arg("--held-out")
            .arg(run)
            .arg("--out")
            .arg(out)
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    let p = &report["perplexity"];
    assert_eq!(p["windows"], 16, "{p}");
    assert_eq!(p["tokens"], 16 * 32);
    // Byte-level ids of ASCII text: every token is one byte, but the few end-of-document
    // tokens (4 documents) spell none.
    let bytes = p["bytes"].as_u64().unwrap();
    assert!((16 * 32 - 4..=16 * 32).contains(&bytes), "{p}");
    let unigram = p["unigram"]["bits_per_byte"].as_f64().unwrap();
    assert!(unigram > 2.0 && unigram < 8.0, "{p}");
    // The trained byte model uses context: below the unigram entropy of the same bytes.
    assert!(p["bits_per_byte"].as_f64().unwrap() < unigram, "{p}");
    out.to_path_buf()
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
