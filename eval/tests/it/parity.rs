//! The CPU forward scores like transformers' LlamaForCausalLM (float32) on the same checkpoint
//! and the same items: log-likelihoods within 1e-4, identical choices.

use std::path::Path;
use std::process::Command;

use tinyforge_eval::{
    ByteTokenizer, EvalOptions, LanguageModel, LlamaModel, Request, encode_pair, evaluate_task,
    load_task,
};

use crate::fixtures;

#[derive(serde::Deserialize)]
struct Reference {
    max_length: usize,
    requests: Vec<Request>,
    scores: Vec<(f64, bool)>,
}

fn harness_requests(task: &tinyforge_eval::Task) -> Vec<Request> {
    let mut requests = Vec::new();
    for item in &task.items {
        for (choice, continuation) in item.continuations.iter().enumerate() {
            requests.push(encode_pair(&ByteTokenizer, item.context(choice), continuation).unwrap());
        }
    }
    requests
}

/// transformers' scores for `requests`, computed now when the project venv has it.
fn live_reference(
    checkpoint: &Path,
    requests: &[Request],
    max_length: usize,
) -> Option<Vec<(f64, bool)>> {
    let python = tinyforge_testkit::venv_python("torch, transformers")?;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.json");
    fs_err::write(&path, serde_json::to_string(requests).unwrap()).unwrap();
    let output = Command::new(&python)
        .arg(fixtures().join("reference_loglik.py"))
        .arg(checkpoint)
        .arg(&path)
        .arg(max_length.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn cpu_forward_matches_transformers() {
    let checkpoint = fixtures().join("tiny-llama");
    let reference: Reference = serde_json::from_str(
        &fs_err::read_to_string(fixtures().join("parity-reference.json")).unwrap(),
    )
    .unwrap();
    let task = load_task(
        fixtures().join("parity-items.jsonl").to_str().unwrap(),
        &tinyforge_eval::DataDirs::from_env(),
    )
    .unwrap();
    let requests = harness_requests(&task);
    assert_eq!(
        requests, reference.requests,
        "the harness builds the requests the reference scored"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.0.len() + r.1.len() > reference.max_length + 1),
        "some request is truncated"
    );

    let model = LlamaModel::load(&checkpoint, Some(reference.max_length)).unwrap();
    let ours = model.loglikelihood(&requests).unwrap();
    let mut references = vec![reference.scores];
    references.extend(live_reference(&checkpoint, &requests, reference.max_length));
    for expected in &references {
        for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
            assert!(
                (a.0 - b.0).abs() < 1e-4,
                "request {i}: ours {} transformers {}",
                a.0,
                b.0
            );
            assert_eq!(a.1, b.1, "request {i}: greedy flag");
        }
    }

    // Identical choices: the harness's predictions equal the argmax over transformers' scores.
    let result = evaluate_task(
        &task,
        &model,
        &ByteTokenizer,
        &EvalOptions::default(),
        &tinyforge_task::Silent,
    )
    .unwrap();
    let mut offset = 0;
    for (item, outcome) in task.items.iter().zip(&result.outcomes) {
        let n = item.num_choices();
        let theirs: Vec<f64> = references[0][offset..offset + n]
            .iter()
            .map(|s| s.0)
            .collect();
        let best = (0..n).fold(0, |b, i| if theirs[i] > theirs[b] { i } else { b });
        assert_eq!(outcome.prediction, best, "item {}", item.id);
        offset += n;
    }
}

/// The CPU forward on teachers `transformers` itself saved: a Llama with grouped-query
/// attention and tied embeddings, a Qwen2 with q/k/v biases (inherit's reference script).
#[test]
fn cpu_forward_matches_transformers_on_gqa_tied_and_qwen2() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let task = load_task(
        fixtures().join("parity-items.jsonl").to_str().unwrap(),
        &tinyforge_eval::DataDirs::from_env(),
    )
    .unwrap();
    let requests = harness_requests(&task);
    let dir = tempfile::tempdir().unwrap();
    for kind in ["llama-gqa-tied", "qwen2"] {
        let checkpoint = dir.path().join(kind);
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../inherit/tests/reference/make_teacher.py");
        let made = python.exists()
            && Command::new(&python)
                .arg(&script)
                .arg(&checkpoint)
                .arg(kind)
                .output()
                .is_ok_and(|o| o.status.success());
        let Some(expected) = made
            .then(|| live_reference(&checkpoint, &requests, 64))
            .flatten()
        else {
            return tinyforge_testkit::skip_unless_required(
                &format!("the {kind} transformers reference"),
                "the project venv could not make the teacher (scripts/setup-python)",
            );
        };
        let model = LlamaModel::load(&checkpoint, Some(64)).unwrap();
        let ours = model.loglikelihood(&requests).unwrap();
        for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
            assert!(
                (a.0 - b.0).abs() < 1e-3,
                "{kind} request {i}: ours {} transformers {}",
                a.0,
                b.0
            );
        }
    }
}
