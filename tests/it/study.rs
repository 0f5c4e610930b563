//! bench/reproduce (the paper's four findings) at its toy size, end to end: every arm at one seed
//! on the real demo corpus. Checks the report's structure and that every number in it is the
//! one a run folder it names holds.
#![cfg(feature = "train")]

use std::path::{Path, PathBuf};

use serde_json::Value;

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_study_runs_every_arm_and_each_number_comes_from_its_run() {
    if crate::venv_python("pyarrow, numpy").is_none() {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("study");
    let study = || {
        std::process::Command::new(root.join("bench/reproduce/run.sh"))
            .args(["--preset", "toy", "--work"])
            .arg(&work)
            .env("TINYFORGE_BIN", assert_cmd::cargo::cargo_bin("tinyforge"))
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap()
    };
    let out = study();
    assert!(
        out.status.success(),
        "the study failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read(&work.join("report.json"));
    let arms = report["arms"].as_object().unwrap();
    let mut names: Vec<&str> = arms.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["architecture", "inheritance", "rounds", "tokenizer"]
    );
    let markdown = std::fs::read_to_string(work.join("report.md")).unwrap();
    for (name, arm) in arms {
        assert!(
            markdown.contains(&format!("## {name}")),
            "report.md lacks {name}"
        );
        let svg = std::fs::read_to_string(work.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for row in arm["rows"].as_array().unwrap() {
            if row.get("skipped").is_some() {
                continue;
            }
            let values = row["bits_per_byte"]["values"].as_array().unwrap();
            let runs = row["runs"].as_array().unwrap();
            assert_eq!(values.len(), runs.len());
            for (value, run) in values.iter().zip(runs) {
                let run = Path::new(run.as_str().unwrap());
                let eval = read(&run.join("eval/report.json"));
                assert_eq!(
                    &eval["perplexity"]["bits_per_byte"], value,
                    "{name}/{}: the report's number is not its run's",
                    row["variant"]
                );
                assert_eq!(
                    &eval["perplexity"]["unigram"]["bits_per_byte"], &row["unigram_bits_per_byte"],
                    "{name}/{}: the unigram baseline is not its run's",
                    row["variant"]
                );
                let train = read(&run.join("train/report.json"));
                assert_eq!(train["params"], row["params"]);
                assert!(markdown.contains(&format!("{:.4}", value.as_f64().unwrap())));
            }
        }
    }
    let variants = |arm: &str| -> Vec<String> {
        arms[arm]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["variant"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        variants("inheritance"),
        ["random", "l1", "l2", "taylor", "activation", "mask"]
    );
    assert_eq!(
        variants("rounds"),
        [
            "one-round",
            "two-rounds-softmax",
            "two-rounds-uniform",
            "three-rounds-softmax"
        ]
    );
    assert!(variants("architecture").len() >= 8);
    let corr = &arms["architecture"]["spearman_with_bits_per_byte"];
    for key in ["layers", "width", "ratio", "params"] {
        let rho = corr[key].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&rho), "{key}: {rho}");
    }
    // Same compute: the two-round arms and the one-round arm take the same optimizer steps.
    let steps: Vec<&Value> = arms["rounds"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["steps"])
        .collect();
    assert_eq!(steps[0], steps[1]);
    assert_eq!(steps[1], steps[2]);
    let forgetting = arms["rounds"]["forgetting"]["points"].as_array().unwrap();
    assert!(forgetting.len() >= 2);
    for point in forgetting {
        assert!(Path::new(point["checkpoint"].as_str().unwrap()).is_dir());
    }
    // A rerun reuses every finished run: no training, only the report.
    let again = study();
    assert!(again.status.success());
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        !log.contains("  train "),
        "a finished run was trained again:\n{log}"
    );
}
