//! Folders the Hugging Face ecosystem takes as they are: a compact tokenizer folder from `vocab
//! prune` of the real Qwen3 tokenizer, a token dataset, and a checkpoint trained on it, loaded by
//! the real `transformers` (`AutoTokenizer`, `AutoModelForCausalLM`, `pipeline`) from the
//! project venv.
#![cfg(feature = "train")]

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> serde_json::Value {
    let output = crate::tinyforge().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    crate::json(&output.stdout)
}

const CHECK: &str = r#"
import json, sys
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
vocab, tokens, checkpoint, docs = sys.argv[1:5]
texts = [json.loads(line)["text"][:2000] for line in open(docs, encoding="utf-8")][:40]
raw = Tokenizer.from_file(f"{vocab}/tokenizer.json")
out = {}
for name, folder in (("vocab", vocab), ("tokens", tokens), ("checkpoint", checkpoint)):
    tok = AutoTokenizer.from_pretrained(folder)
    same = all(tok(t, add_special_tokens=False)["input_ids"] == raw.encode(t, add_special_tokens=False).ids for t in texts)
    out[name] = {"class": type(tok).__name__, "eos": tok.eos_token, "eos_id": tok.eos_token_id,
                 "same_ids": same, "chat_template": bool(tok.chat_template),
                 "max_length": tok.model_max_length, "vocab": len(tok)}
model = AutoModelForCausalLM.from_pretrained(checkpoint)
generate = pipeline("text-generation", model=checkpoint, device="cpu")
text = generate("The state of the union", max_new_tokens=8, do_sample=False)[0]["generated_text"]
out["generation"] = {"eos_token_id": model.generation_config.eos_token_id,
                     "pad_token_id": model.generation_config.pad_token_id, "text": text}
print(json.dumps(out))
"#;

#[test]
fn vocab_folder_dataset_and_checkpoint_load_in_transformers() {
    let (Some(py), Some(qwen)) = (
        crate::venv_python("transformers, tokenizers, torch"),
        tinyforge_testkit::qwen3_tokenizer(),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).display().to_string();
    let docs = root().join("tokenize/tests/fixtures/docs");
    let docs = docs.to_str().unwrap();
    let qwen = qwen.to_str().unwrap();
    run(&[
        "vocab",
        "count",
        docs,
        "--tokenizer",
        qwen,
        "--out",
        &path("counts.parquet"),
    ]);
    let pruned = run(&[
        "vocab",
        "prune",
        "--counts",
        &path("counts.parquet"),
        "--tokenizer",
        qwen,
        "--size",
        "4000",
        "--out",
        &path("vocab"),
    ]);
    assert_eq!(pruned["outputs"]["eos_token"], "<|im_end|>", "{pruned}");
    let tokenized = run(&[
        "tokenize",
        docs,
        "--tokenizer",
        &path("vocab/tokenizer.json"),
        "--out",
        &path("tokens"),
    ]);
    let eos_id = tokenized["eos_id"].as_u64().unwrap();
    let config = crate::train::config(
        tmp.path(),
        &tmp.path().join("tokens"),
        &tmp.path().join("run"),
    );
    crate::train::train_report(&config, &["--steps", "6"]);
    let checkpoint = std::fs::read_dir(tmp.path().join("run/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    for name in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
    ] {
        assert!(
            checkpoint.join(name).is_file(),
            "{name} missing in {}",
            checkpoint.display()
        );
    }

    let output = Command::new(&py)
        .args(["-c", CHECK, &path("vocab"), &path("tokens")])
        .arg(&checkpoint)
        .arg(root().join("tokenize/tests/fixtures/docs.jsonl"))
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "transformers refused a folder: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for name in ["vocab", "tokens", "checkpoint"] {
        let folder = &got[name];
        assert_eq!(folder["same_ids"], true, "{name}: {folder}");
        assert_eq!(folder["eos"], "<|im_end|>", "{name}: {folder}");
        assert_eq!(folder["eos_id"], eos_id, "{name}: {folder}");
        assert_eq!(
            folder["chat_template"], true,
            "{name}: the base's chat template is gone"
        );
        assert_eq!(folder["vocab"], 4000, "{name}: {folder}");
    }
    assert_eq!(got["checkpoint"]["max_length"], 512, "the model's context");
    assert_eq!(got["generation"]["eos_token_id"], eos_id);
    let text = got["generation"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("The state of the union") && text.len() > 22,
        "{text}"
    );

    gguf_exports_load_in_gguf_py_and_transformers(&py, &tmp.path().join("run"), &checkpoint);
}

/// `tinyforge export gguf` in every type: gguf-py reads each file byte-exact against its own
/// encoding of the checkpoint, and transformers' GGUF loader gives the checkpoint's logits
/// (model/tests/check_gguf.py).
fn gguf_exports_load_in_gguf_py_and_transformers(py: &Path, run: &Path, checkpoint: &Path) {
    if crate::venv_python("gguf, accelerate").is_none() {
        return;
    }
    let mut files = Vec::new();
    for ty in ["f32", "f16", "bf16", "q8_0"] {
        // The run folder stands for its newest checkpoint; the default file lands in it.
        let report = crate::json(
            &crate::tinyforge()
                .args(["export", "gguf"])
                .arg(run)
                .args(["--type", ty])
                .assert()
                .success()
                .get_output()
                .stdout,
        );
        let file = checkpoint.join(format!("model-{ty}.gguf"));
        assert_eq!(report["path"], file.display().to_string(), "{report}");
        assert_eq!(report["vocab_size"], 4000);
        files.push(file);
    }
    let output = Command::new(py)
        .arg(root().join("model/tests/check_gguf.py"))
        .arg(checkpoint)
        .args(&files)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the GGUF consumer check failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let bad = crate::tinyforge()
        .args(["export", "gguf"])
        .arg(checkpoint)
        .args(["--type", "q4_k"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&bad.get_output().stderr).into_owned();
    assert!(stderr.contains("f32, f16, bf16, q8_0"), "{stderr}");
}
