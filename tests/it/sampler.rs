//! End to end through the `tinyforge` binary: `plan new` over token datasets (a mixture of two
//! pools), a loss table as the trainer writes it, `sample` for round 2, `plan show` with its
//! histogram picture, and the errors a user meets.

use std::path::Path;

use crate::{json, tinyforge};
use tinyforge_sampler::{LossTableWriter, Plan};

/// A dataset folder as `tinyforge tokenize` writes it, as far as the sampler reads it.
fn dataset(dir: &Path, name: &str, total_tokens: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    let manifest = serde_json::json!({
        "format": "tinyforge-shards", "version": 1, "dtype": "u16", "eos_id": 0,
        "total_tokens": total_tokens, "documents": 10, "shards": [],
    });
    std::fs::write(path.join("manifest.json"), manifest.to_string()).unwrap();
    path
}

#[test]
fn plan_train_sample_show() {
    let dir = tempfile::tempdir().unwrap();
    let zh = dataset(dir.path(), "zh", 32 * 300 + 1);
    let en = dataset(dir.path(), "en", 32 * 900 + 1);
    let round1 = dir.path().join("round1.json");
    let out = tinyforge()
        .args([
            "plan",
            "new",
            "--seq-len",
            "32",
            "--batch-units",
            "16",
            "--seed",
            "5",
        ])
        .arg("--pool")
        .arg(format!("zh={}", zh.display()))
        .arg("--pool")
        .arg(format!("en={}", en.display()))
        .args(["--weight", "zh=1", "--weight", "en=1", "--out"])
        .arg(&round1)
        .assert()
        .success();
    let report = json(&out.get_output().stdout);
    // 50/50 of batches of 16: zh (300 units) runs out after 37 steps.
    assert_eq!(report["steps"], 37);
    assert_eq!(report["pools"][0]["pool_units"], 300);
    assert_eq!(report["pools"][0]["share"], 0.5);

    // The trainer's side: the plan through the library, one loss per unit.
    let plan = Plan::open(&round1).unwrap();
    let losses = dir.path().join("losses-r1.parquet");
    let mut writer = LossTableWriter::create(&losses, 1).unwrap();
    for step in 0..plan.num_steps() {
        for unit in plan.batch(step).unwrap() {
            // Chinese is harder for this imaginary model.
            let loss = if unit.pool == 0 { 3.0 } else { 2.0 } + (unit.unit % 10) as f32 / 10.0;
            writer.push(unit, loss).unwrap();
        }
    }
    writer.finish().unwrap();

    let round2 = dir.path().join("round2.json");
    let out = tinyforge()
        .args([
            "sample",
            "--fraction",
            "0.5",
            "--select",
            "unit-softmax",
            "--seed",
            "9",
            "--plan",
        ])
        .arg(&round1)
        .arg("--losses")
        .arg(&losses)
        .arg("--out")
        .arg(&round2)
        .assert()
        .success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["round"], 2);
    assert_eq!(report["units"], 288);
    assert!(dir.path().join("round2.units").exists());

    let svg = dir.path().join("hist.svg");
    let out = tinyforge()
        .args(["plan", "show"])
        .arg(&round2)
        .arg("--losses")
        .arg(&losses)
        .arg("--svg")
        .arg(&svg)
        .assert()
        .success();
    let show = json(&out.get_output().stdout);
    assert_eq!(show["steps"], 18);
    assert_eq!(show["losses"]["selected_units"], 288);
    assert_eq!(show["losses"]["all_units"], 592);
    // The harder pool gains share, and the selected units' mean loss is above the mean of all.
    assert!(show["pools"][0]["share"].as_f64().unwrap() > 0.6, "{show}");
    assert!(
        show["losses"]["mean_selected"].as_f64().unwrap()
            > show["losses"]["mean_all"].as_f64().unwrap()
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(
        picture.starts_with("<svg") && picture.contains("selected (288"),
        "{}",
        &picture[..200]
    );

    // The paper's default (batch-level softmax-loss) on the same table, and round 3 from round 2.
    let batch_level = dir.path().join("round2b.json");
    tinyforge()
        .args(["sample", "--plan"])
        .arg(&round1)
        .arg("--losses")
        .arg(&losses)
        .arg("--out")
        .arg(&batch_level)
        .assert()
        .success();
    assert_eq!(Plan::open(&batch_level).unwrap().num_steps(), 19);
}

#[test]
fn sample_names_the_missing_unit() {
    let dir = tempfile::tempdir().unwrap();
    let round1 = dir.path().join("round1.json");
    tinyforge()
        .args([
            "plan",
            "new",
            "--units",
            "100",
            "--batch-units",
            "10",
            "--out",
        ])
        .arg(&round1)
        .assert()
        .success();
    let plan = Plan::open(&round1).unwrap();
    let losses = dir.path().join("l.parquet");
    let mut writer = LossTableWriter::create(&losses, 1).unwrap();
    for position in 1..plan.num_positions() {
        writer.push(plan.unit_at(position).unwrap(), 1.0).unwrap();
    }
    writer.finish().unwrap();
    let missing = plan.unit_at(0).unwrap().unit;
    let out = tinyforge()
        .args(["sample", "--plan"])
        .arg(&round1)
        .arg("--losses")
        .arg(&losses)
        .arg("--out")
        .arg(dir.path().join("round2.json"))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "first is unit {missing} of pool 0 (plan position 0)"
        )),
        "{stderr}"
    );
}

#[test]
fn help_has_examples() {
    for args in [
        vec!["sample", "--help"],
        vec!["plan", "new", "--help"],
        vec!["plan", "show", "--help"],
    ] {
        let out = tinyforge().args(&args).assert().success();
        assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("Examples:"));
    }
}
