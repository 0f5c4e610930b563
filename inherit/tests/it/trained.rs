//! The real effect (paper §5): a student inherited from a teacher that tinyforge trained on
//! real text starts far below a random init of the same shape on held-out text, and is still
//! below it after the same training steps; `tinyforge train --init-from` starts from the folder.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use tinyforge_inherit::Criterion;
use tinyforge_model::ModelConfig;
use tinyforge_shards::Dataset;
use tinyforge_train::{Model, NoCallbacks, TrainOptions};

use crate::common::*;

const SEQ: usize = 32;

fn train(data: &Path, out: &Path, extra: &str, steps: u64) -> PathBuf {
    let opts: TrainOptions = toml::from_str(&format!(
        r#"
        {extra}
        seq_len = {SEQ}
        batch_size = 8
        micro_batch = 8
        lr = 3e-3
        ref_batch_tokens = 256
        checkpoint_every = 1000
        eval_every = 1000
        val_units = 8
        max_steps = {steps}
        device = "cpu"
        seed = 4
        "#
    ))
    .unwrap();
    let opts = TrainOptions {
        data: Some(data.into()),
        out: Some(out.into()),
        ..opts
    };
    let report =
        tinyforge_train::train_from_options(&opts, &Default::default(), &mut NoCallbacks).unwrap();
    // At most `steps`: one pass over the data ends a run earlier.
    assert!(report.steps > 0 && report.steps <= steps, "{report:?}");
    tinyforge_model::newest_step(&out.join("checkpoints"))
        .unwrap()
        .expect("a checkpoint")
}

/// Mean next-token loss over every window of the held-out dataset.
fn held_out_loss(model: &Model, held_out: &Path) -> f64 {
    let data = Dataset::open(held_out).unwrap();
    let n = data.unit_count(SEQ).min(64);
    let mut ids = Vec::new();
    for u in 0..n {
        ids.extend(data.window(u, SEQ).unwrap().into_iter().map(i64::from));
    }
    let windows = Tensor::from_slice(&ids).view([n as i64, SEQ as i64 + 1]);
    tch::no_grad(|| {
        model
            .sequence_losses(&windows)
            .mean(Kind::Float)
            .double_value(&[])
    })
}

#[test]
fn inheriting_from_a_trained_teacher_beats_random_init() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let (train_text, val_text) = split_fixture();
    let refs = |v: &[String]| v.iter().map(String::to_string).collect::<Vec<_>>();
    let train_refs = refs(&train_text);
    let val_refs = refs(&val_text);
    let sha = "0".repeat(64);
    let data = dataset(
        &tmp.path().join("train"),
        &train_refs.iter().map(String::as_str).collect::<Vec<_>>(),
        &sha,
        257,
    );
    let held_out = dataset(
        &tmp.path().join("val"),
        &val_refs.iter().map(String::as_str).collect::<Vec<_>>(),
        &sha,
        257,
    );
    // The teacher: 96 wide, 4 layers, GQA 6/2, trained by tinyforge on the text.
    let teacher_cfg = ModelConfig {
        vocab_size: 257,
        init_std: 0.02,
        ..teacher_config(2, false, tinyforge_model::AttentionBias::None)
    };
    let teacher_toml = tmp.path().join("teacher.toml");
    std::fs::write(&teacher_toml, teacher_cfg.to_toml()).unwrap();
    let teacher = train(
        &data,
        &tmp.path().join("teacher-run"),
        &format!("model = {:?}", teacher_toml.to_str().unwrap()),
        150,
    );
    // The student: 64 wide, 2 layers (the first and last), 4 heads over 2, FFN 96.
    let student_dir = tmp.path().join("student");
    let mut cfg = config(
        &teacher,
        student_options(64, 2, 4, 2, 96),
        &data,
        &student_dir,
    );
    cfg.criterion = Criterion::Taylor;
    cfg.calib_sequences = 32;
    let report = run(&cfg);
    let inherited = Model::load_hf(&student_dir, Device::Cpu, Kind::Float).unwrap();
    let random = Model::new(inherited.config(), Device::Cpu, Kind::Float, 4).unwrap();
    let (inherited0, random0) = (
        held_out_loss(&inherited, &held_out),
        held_out_loss(&random, &held_out),
    );
    let teacher_loss = held_out_loss(
        &Model::load_hf(&teacher, Device::Cpu, Kind::Float).unwrap(),
        &held_out,
    );
    eprintln!(
        "held-out loss: teacher {teacher_loss:.3}, inherited {inherited0:.3}, random \
         {random0:.3} (calibration {:?})",
        report.calibration
    );
    assert!(
        inherited0 < random0 - 0.5,
        "inherited {inherited0} vs random {random0}"
    );

    // The same 40 steps from each start; the inherited run starts from the folder.
    let steps = 40;
    let from_inherited = train(
        &data,
        &tmp.path().join("student-run"),
        &format!("init_from = {:?}", student_dir.to_str().unwrap()),
        steps,
    );
    let student_toml = tmp.path().join("student.toml");
    std::fs::write(&student_toml, inherited.config().to_toml()).unwrap();
    let from_random = train(
        &data,
        &tmp.path().join("random-run"),
        &format!("model = {:?}", student_toml.to_str().unwrap()),
        steps,
    );
    let load = |dir: &Path| Model::load_hf(dir, Device::Cpu, Kind::Float).unwrap();
    let (inherited_k, random_k) = (
        held_out_loss(&load(&from_inherited), &held_out),
        held_out_loss(&load(&from_random), &held_out),
    );
    eprintln!("after {steps} steps: inherited {inherited_k:.3}, random {random_k:.3}");
    assert!(
        inherited_k < random_k,
        "inherited {inherited_k} vs random {random_k}"
    );
}
