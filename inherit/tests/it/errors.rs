//! Bad input: each a clear error naming what to fix, and nothing written under the output name.

use tinyforge_model::{AttentionBias, ModelOptions};

use crate::common::*;

fn fails(cfg: &tinyforge_inherit::InheritConfig, needle: &str) {
    let err = tinyforge_inherit::inherit(cfg, &tinyforge_task::Silent)
        .err()
        .unwrap_or_else(|| panic!("expected an error containing {needle:?}"))
        .to_string();
    assert!(err.contains(needle), "error {err:?} lacks {needle:?}");
    assert!(!cfg.out.exists(), "{} was written", cfg.out.display());
    let parent = cfg.out.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary folders left: {leftovers:?}"
    );
}

#[test]
fn bad_requests_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let calib = calib_dataset(&tmp.path().join("calib"));
    let cfg = teacher_config(2, false, AttentionBias::None);
    let teacher = random_teacher(&tmp.path().join("teacher"), &cfg, 1);
    let out = tmp.path().join("out").join("student");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let with = |student: ModelOptions| config(&teacher, student, &calib, &out);

    fails(
        &with(student_options(128, 2, 4, 2, 96)),
        "dim 128 is larger than the teacher's 96",
    );
    fails(
        &with(student_options(64, 6, 4, 2, 96)),
        "layers 6 is larger",
    );
    fails(
        &with(student_options(64, 2, 4, 2, 320)),
        "ffn_dim 320 is larger",
    );
    fails(
        &with(ModelOptions {
            head_dim: Some(32),
            ..student_options(64, 2, 2, 2, 96)
        }),
        "head_dim 32 differs from the teacher's 16",
    );
    fails(
        &with(student_options(64, 2, 4, 1, 96)),
        "raise kv_heads to at least 2",
    );
    let mut list = with(student_options(64, 2, 4, 2, 96));
    list.depth = "0,9".parse().unwrap();
    fails(&list, "name 2 distinct teacher layers in 0..4");

    // An architecture the decoder does not implement, named by field and value.
    let gemma = tmp.path().join("gemma");
    std::fs::create_dir_all(&gemma).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(teacher.join("config.json")).unwrap()).unwrap();
    json["model_type"] = "gemma".into();
    std::fs::write(gemma.join("config.json"), json.to_string()).unwrap();
    std::fs::copy(
        teacher.join("model.safetensors"),
        gemma.join("model.safetensors"),
    )
    .unwrap();
    fails(
        &config(&gemma, student_options(64, 2, 4, 2, 96), &calib, &out),
        "`model_type` = \"gemma\"",
    );
    json["model_type"] = "llama".into();
    json["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 32.0});
    std::fs::write(gemma.join("config.json"), json.to_string()).unwrap();
    fails(
        &config(&gemma, student_options(64, 2, 4, 2, 96), &calib, &out),
        "`rope_scaling`",
    );

    // An id map pruned from another tokenizer than the teacher's.
    std::fs::write(teacher.join("tokenizer.json"), b"{\"teacher\": 1}").unwrap();
    let map = |base: &str| {
        let dir = tmp.path().join(format!("vocab-{}", &base[..4]));
        std::fs::create_dir_all(&dir).unwrap();
        let new_to_old: Vec<u32> = (0..280).collect();
        let json = serde_json::json!({"format": "tinyforge-id-map", "version": 1,
            "base_tokenizer_sha256": base, "tokenizer_sha256": "c".repeat(64),
            "base_vocab_size": 300, "vocab_size": 280, "monotone": true,
            "new_to_old": new_to_old});
        std::fs::write(dir.join("id_map.json"), json.to_string()).unwrap();
        dir.join("id_map.json")
    };
    let mut other = with(student_options(64, 2, 4, 2, 96));
    other.id_map = Some(map(&"a".repeat(64)));
    fails(&other, "was pruned from the tokenizer with sha256 aaaa");

    // A calibration set tokenized with another tokenizer than the student's.
    use sha2::{Digest, Sha256};
    let teacher_sha = hex::encode(Sha256::digest(b"{\"teacher\": 1}"));
    let mut wrong_vocab = with(student_options(64, 2, 4, 2, 96));
    wrong_vocab.id_map = Some(map(&teacher_sha));
    fails(
        &wrong_vocab,
        "calibration tokens come from the tokenizer with sha256 0000",
    );

    // The output exists: never overwritten.
    std::fs::create_dir_all(&out).unwrap();
    let err = tinyforge_inherit::inherit(
        &with(student_options(64, 2, 4, 2, 96)),
        &tinyforge_task::Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("exists"), "{err}");
}
