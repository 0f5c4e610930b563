//! End-to-end: `tinyforge train` a teacher, `tinyforge inherit` a student from it, and
//! `tinyforge train --init-from` the student folder; `tinyforge run` places the stage.
#![cfg(feature = "train")]

use std::path::Path;

use crate::train::{dataset, train_report};
use crate::{json, tinyforge};

fn train_config(path: &Path, model: Option<&str>, data: &Path, out: &Path, steps: u64) {
    let model = model
        .map(|m| format!("model = {m:?}\n"))
        .unwrap_or_default();
    std::fs::write(
        path,
        format!(
            "{model}data = {data:?}\nout = {out:?}\nseq_len = 32\nbatch_size = 8\n\
             micro_batch = 8\nlr = 3e-3\nref_batch_tokens = 256\ncheckpoint_every = 1000\n\
             eval_every = 1000\nval_units = 8\nmax_steps = {steps}\ndevice = \"cpu\"\n"
        ),
    )
    .unwrap();
}

#[test]
fn train_inherit_then_train_from_the_student() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(&tmp.path().join("shards"));
    let teacher_run = tmp.path().join("teacher");
    let cfg = tmp.path().join("teacher.toml");
    train_config(&cfg, Some("tiny"), &data, &teacher_run, 60);
    tinyforge().arg("train").arg(&cfg).assert().success();
    let teacher = teacher_run.join("checkpoints/step-00000060");

    let student_toml = tmp.path().join("student.toml");
    std::fs::write(
        &student_toml,
        "dim = 48\nlayers = 2\nheads = 3\nffn_dim = 96\n",
    )
    .unwrap();
    let student = tmp.path().join("student");
    let inherit = |extra: &[&str]| {
        let mut c = tinyforge();
        c.arg("inherit")
            .arg("--teacher")
            .arg(&teacher)
            .arg("--student")
            .arg(&student_toml)
            .arg("--calib")
            .arg(&data)
            .args([
                "--calib-sequences",
                "16",
                "--calib-len",
                "32",
                "--device",
                "cpu",
            ])
            .args(extra)
            .arg("--out")
            .arg(&student);
        c.assert()
    };
    let report = json(
        &inherit(&["--criterion", "activation"])
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(report["student"]["dim"], 48);
    assert_eq!(report["kept_layers"], serde_json::json!([0, 1]));
    assert_eq!(report["kept"]["hidden"].as_array().unwrap().len(), 48);
    let cal = &report["calibration"];
    assert!(cal["student_loss"].as_f64().unwrap() < 5.0, "{report}");
    for file in [
        "config.json",
        "model.safetensors",
        "inherit.json",
        "scores.safetensors",
        "layer-scores.svg",
    ] {
        assert!(student.join(file).is_file(), "{file} missing");
    }
    // Never over an existing student, unless asked.
    let again = inherit(&[]).failure();
    let stderr = String::from_utf8_lossy(&again.get_output().stderr).into_owned();
    assert!(stderr.contains("exists"), "{stderr}");

    // A run that names no model trains the student's shape from its weights.
    let cfg = tmp.path().join("student-train.toml");
    let run = tmp.path().join("student-run");
    train_config(&cfg, None, &data, &run, 10);
    let trained = train_report(&cfg, &["--init-from", student.to_str().unwrap()]);
    let first = trained["first_loss"].as_f64().unwrap();
    assert!(
        (first - cal["student_loss"].as_f64().unwrap()).abs() < 0.5,
        "the first step's loss {first} is the inherited model's, not a random init's: {trained}"
    );
}

#[test]
fn run_places_inherit_between_tokenize_and_train() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("pipeline.toml");
    std::fs::write(
        &config,
        "work_dir = \"w\"\n[ingest]\nconfig = \"configs/ingest-demo.toml\"\n[vocab]\nsize = 8000\n\
         [inherit]\nteacher = \"teacher\"\nstudent = \"tiny\"\ncriterion = \"l2\"\n\
         [train]\nconfig = \"configs/train-demo.toml\"\n",
    )
    .unwrap();
    let out = tinyforge()
        .arg("run")
        .arg(&config)
        .arg("--dry-run")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let at = |stage: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(&format!("tinyforge {stage}")))
            .unwrap_or_else(|| panic!("no {stage} in {lines:?}"))
    };
    assert!(at("tokenize") < at("inherit") && at("inherit") < at("train"));
    let inherit = &lines[at("inherit")];
    assert!(
        inherit.contains("--id-map w/vocab/id_map.json") && inherit.contains("--criterion l2"),
        "{inherit}"
    );
    assert!(
        lines[at("train")].contains("--init-from w/inherit"),
        "{lines:?}"
    );
}
