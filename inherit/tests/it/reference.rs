//! Teachers saved by `transformers` itself (save_pretrained: a Llama with grouped-query
//! attention and tied embeddings, a Qwen2 with q/k/v biases): tinyforge reads them exactly,
//! and `transformers` loads the student tinyforge writes and computes the same logits.

use std::path::Path;

use tch::{Device, Kind, Tensor};
use tinyforge_train::Model;

use crate::common::*;

/// transformers' logits on `dir` against tinyforge's, through train's reference script.
fn transformers_agrees(py: &Path, dir: &Path, work: &Path) {
    let model = Model::load_hf(dir, Device::Cpu, Kind::Float).unwrap();
    let ids = sample_ids(3, 41);
    let (logits, losses) = tch::no_grad(|| {
        (
            model.forward(&ids.narrow(1, 0, 40)),
            model.sequence_losses(&ids),
        )
    });
    let ours = work.join("ours.safetensors");
    Tensor::write_safetensors(
        &[("ids", ids), ("logits", logits), ("losses", losses)],
        &ours,
    )
    .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../train/tests/reference/hf_logits.py"
    );
    let out = std::process::Command::new(py)
        .args([
            script,
            dir.to_str().unwrap(),
            ours.to_str().unwrap(),
            "1e-4",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{}: {stdout}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "transformers disagrees on {}: {stdout}",
        dir.display()
    );
}

#[test]
fn transformers_teachers_in_transformers_students_out() {
    let Some(py) = venv_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let calib = calib_dataset(&tmp.path().join("calib"));
    for kind in ["llama-gqa-tied", "qwen2"] {
        let teacher = tmp.path().join(kind);
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/reference/make_teacher.py"
        );
        let st = std::process::Command::new(&py)
            .args([script, teacher.to_str().unwrap(), kind])
            .status()
            .unwrap();
        assert!(st.success(), "make_teacher.py {kind}");
        transformers_agrees(&py, &teacher, tmp.path());
        // 6 heads over 2 key/value heads -> 4 over 2; 96 -> 64 wide; 4 -> 3 layers.
        let out = tmp.path().join(format!("student-{kind}"));
        let mut cfg = config(&teacher, student_options(64, 3, 4, 2, 96), &calib, &out);
        cfg.criterion = tinyforge_inherit::Criterion::Taylor;
        let report = run(&cfg);
        assert_eq!(report.student.tied_embeddings, kind == "llama-gqa-tied");
        assert_eq!(report.kept_layers.first(), Some(&0));
        assert_eq!(report.kept_layers.last(), Some(&3));
        transformers_agrees(&py, &out, tmp.path());
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        let want = if kind == "qwen2" { "qwen2" } else { "llama" };
        assert_eq!(config["model_type"], want);
        assert_eq!(config["num_key_value_heads"], 2);
    }
}
