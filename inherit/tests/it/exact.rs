//! The student is exactly the teacher with the dropped units removed: keeping everything gives
//! the teacher's logits; dropping heads, neurons and hidden channels gives the logits of the
//! teacher with those units gated to zero (RMSNorm over the kept channels); the vocabulary
//! gather gives the teacher's logits at the mapped ids.

use tch::{Device, Kind, Tensor};
use tinyforge_inherit::Criterion;
use tinyforge_model::AttentionBias;
use tinyforge_train::{Gates, Model};

use crate::common::*;

fn load(dir: &std::path::Path) -> Model {
    Model::load_hf(dir, Device::Cpu, Kind::Float).unwrap()
}

#[test]
fn keeping_every_unit_reproduces_the_teacher() {
    let tmp = tempfile::tempdir().unwrap();
    let calib = calib_dataset(&tmp.path().join("calib"));
    for (i, (kv, tied, bias)) in [
        (2, true, AttentionBias::None),
        (2, false, AttentionBias::Qkv),
        (6, false, AttentionBias::All),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = teacher_config(kv, tied, bias);
        let teacher = random_teacher(&tmp.path().join(format!("teacher-{i}")), &cfg, 3);
        for criterion in [Criterion::L1, Criterion::Taylor] {
            let out = tmp.path().join(format!("student-{i}-{criterion:?}"));
            let student = student_options(96, 4, 6, kv, 160);
            let mut c = config(&teacher, student, &calib, &out);
            c.criterion = criterion;
            let report = run(&c);
            assert_eq!(report.kept_layers, vec![0, 1, 2, 3]);
            assert_eq!(report.student_params, report.teacher_params);
            let ids = sample_ids(2, 40);
            let (t, s) = tch::no_grad(|| (load(&teacher).forward(&ids), load(&out).forward(&ids)));
            let diff = max_diff(&t, &s);
            assert!(
                diff < 1e-5,
                "{criterion:?} layout {i}: max |teacher - student| = {diff}"
            );
        }
    }
}

/// Gates of the teacher that keep exactly what the report says the student kept.
fn gates_of(report: &tinyforge_inherit::InheritReport, teacher: &Model) -> Gates {
    let c = teacher.config();
    let mut hidden = vec![0f32; c.dim];
    for &i in &report.kept.hidden {
        hidden[i as usize] = 1.0;
    }
    let mut heads = vec![0f32; c.layers * c.heads];
    let mut neurons = vec![0f32; c.layers * c.ffn_dim];
    for l in 0..c.layers {
        for &h in &report.kept.heads[l] {
            heads[l * c.heads + h as usize] = 1.0;
        }
        for &n in &report.kept.neurons[l] {
            neurons[l * c.ffn_dim + n as usize] = 1.0;
        }
    }
    Gates {
        hidden: Some(Tensor::from_slice(&hidden)),
        heads: Some(Tensor::from_slice(&heads).view([c.layers as i64, c.heads as i64])),
        neurons: Some(Tensor::from_slice(&neurons).view([c.layers as i64, c.ffn_dim as i64])),
    }
}

#[test]
fn dropping_units_equals_gating_them_to_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let calib = calib_dataset(&tmp.path().join("calib"));
    let cfg = teacher_config(2, true, AttentionBias::Qkv);
    let teacher_dir = random_teacher(&tmp.path().join("teacher"), &cfg, 5);
    let teacher = load(&teacher_dir);
    for criterion in [
        Criterion::L1,
        Criterion::L2,
        Criterion::Taylor,
        Criterion::Activation,
        Criterion::Mask,
    ] {
        let out = tmp.path().join(format!("student-{criterion:?}"));
        // Narrower everywhere: 64 of 96 channels, 4 of 6 query heads (2 per key/value head,
        // both groups kept), 96 of 160 neurons; every layer.
        let mut c = config(&teacher_dir, student_options(64, 4, 4, 2, 96), &calib, &out);
        c.criterion = criterion;
        let report = run(&c);
        let student = load(&out);
        let s = student.config();
        assert_eq!((s.dim, s.heads, s.kv_heads, s.ffn_dim), (64, 4, 2, 96));
        for l in 0..4 {
            assert_eq!(report.kept.heads[l].len(), 4);
            // Query heads stay inside their key/value groups: two from each group of three.
            for g in 0..2 {
                let inside = report.kept.heads[l].iter().filter(|&&h| h / 3 == g).count();
                assert_eq!(
                    inside, 2,
                    "{criterion:?} layer {l}: {:?}",
                    report.kept.heads[l]
                );
            }
        }
        let ids = sample_ids(2, 40);
        let gates = gates_of(&report, &teacher);
        let (t, st) = tch::no_grad(|| {
            (
                teacher.forward_with(&ids, &gates, None, None),
                student.forward(&ids),
            )
        });
        let diff = max_diff(&t, &st);
        assert!(
            diff < 1e-4,
            "{criterion:?}: max |gated teacher - student| = {diff}"
        );
        assert!(t.abs().max().double_value(&[]) > 0.5, "non-trivial logits");
    }
}

#[test]
fn depth_keeps_the_first_and_last_layers_and_copies_them_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let calib = calib_dataset(&tmp.path().join("calib"));
    let cfg = teacher_config(2, false, AttentionBias::None);
    let teacher_dir = random_teacher(&tmp.path().join("teacher"), &cfg, 9);
    for layers in ["block", "uniform", "1,2"] {
        let out = tmp.path().join(format!("student-{layers}"));
        let mut c = config(
            &teacher_dir,
            student_options(96, 2, 6, 2, 160),
            &calib,
            &out,
        );
        c.depth = layers.parse().unwrap();
        let report = run(&c);
        assert_eq!(report.layer_scores.len(), 4, "every layer is scored");
        let want = if layers == "1,2" {
            vec![1, 2]
        } else {
            vec![0, 3]
        };
        assert_eq!(report.kept_layers, want);
        let teacher = Tensor::read_safetensors(teacher_dir.join("model.safetensors")).unwrap();
        let student = Tensor::read_safetensors(out.join("model.safetensors")).unwrap();
        let get = |set: &[(String, Tensor)], name: &str| {
            set.iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .shallow_clone()
        };
        for (s, &t) in want.iter().enumerate() {
            for part in [
                "self_attn.q_proj.weight",
                "mlp.down_proj.weight",
                "input_layernorm.weight",
            ] {
                let a = get(&student, &format!("model.layers.{s}.{part}"));
                let b = get(&teacher, &format!("model.layers.{t}.{part}"));
                assert!(
                    a.equal(&b),
                    "student layer {s} {part} is not teacher layer {t}'s"
                );
            }
        }
    }
}

#[test]
fn the_vocabulary_gather_gives_the_teachers_logits_at_the_mapped_ids() {
    use sha2::{Digest, Sha256};
    let tmp = tempfile::tempdir().unwrap();
    let cfg = teacher_config(2, true, AttentionBias::None);
    let teacher_dir = random_teacher(&tmp.path().join("teacher"), &cfg, 11);
    // The teacher's tokenizer (any bytes: only its hash is checked) and a compact map of 280
    // of its 300 ids that keeps every byte and the EOS, as `vocab prune` would.
    std::fs::write(teacher_dir.join("tokenizer.json"), b"{\"teacher\": true}").unwrap();
    let base_sha = hex::encode(Sha256::digest(b"{\"teacher\": true}"));
    let mut new_to_old: Vec<u32> = (0..257).collect();
    new_to_old.extend(260..283);
    let compact_sha = "c".repeat(64);
    let map = serde_json::json!({"format": "tinyforge-id-map", "version": 1,
        "base_tokenizer_sha256": base_sha, "tokenizer_sha256": compact_sha,
        "base_vocab_size": 300, "vocab_size": new_to_old.len(), "monotone": true,
        "new_to_old": new_to_old});
    let vocab_dir = tmp.path().join("vocab");
    std::fs::create_dir_all(&vocab_dir).unwrap();
    std::fs::write(vocab_dir.join("id_map.json"), map.to_string()).unwrap();
    let (train, _) = split_fixture();
    let refs: Vec<&str> = train.iter().map(String::as_str).collect();
    let calib = dataset(&tmp.path().join("calib"), &refs, &compact_sha, 280);
    let out = tmp.path().join("student");
    let mut c = config(
        &teacher_dir,
        student_options(96, 4, 6, 2, 160),
        &calib,
        &out,
    );
    c.id_map = Some(vocab_dir.join("id_map.json"));
    let report = run(&c);
    assert_eq!(report.student.vocab_size, 280);
    let ids = sample_ids(2, 40);
    let rows = Tensor::from_slice(&new_to_old.iter().map(|&x| i64::from(x)).collect::<Vec<_>>());
    let (t, s) = tch::no_grad(|| {
        (
            load(&teacher_dir).forward(&ids).index_select(-1, &rows),
            load(&out).forward(&ids),
        )
    });
    let diff = max_diff(&t, &s);
    assert!(diff < 1e-5, "max |teacher[mapped] - student| = {diff}");
    // The student's calibration loss is the teacher's over the kept vocabulary.
    let cal = &report.calibration;
    let restricted = cal.teacher_loss_student_vocab.unwrap();
    assert!((cal.student_loss - restricted).abs() < 1e-4, "{cal:?}");
}
