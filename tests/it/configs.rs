//! Every file shipped in `configs/` is read the way its users read it, so a renamed or retyped
//! field breaks this test and not a user's job: pipeline configs through `tinyforge run
//! --dry-run`, ingest configs and training configs through their crates' strict loaders (unknown
//! keys are errors) and validation, model shapes through the model crate, the cluster's shell
//! scripts through `bash -n` and its Kubernetes manifest through PyYAML. A file of a kind this
//! test does not know fails it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &Path) -> Vec<PathBuf> {
    crate::walk_files(dir)
        .into_iter()
        .map(|rel| dir.join(rel))
        .collect()
}

#[test]
fn every_shipped_config_parses_and_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let configs = root.join("configs");
    let mut checked = Vec::new();
    for path in files(&configs) {
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kind = if rel.starts_with("configs/models/") {
            let shape = tinyforge_model::ModelOptions::load(path.to_str().unwrap())
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            shape
                .resolve(Some(8000))
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            "model"
        } else if name.starts_with("ingest-") && name.ends_with(".toml") {
            let options = tinyforge_ingest::IngestOptions::from_file(&path)
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            options
                .resolve(&rel, Default::default())
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            "ingest"
        } else if name.starts_with("train-") && name.ends_with(".toml") {
            check_train(&path, &rel);
            "train"
        } else if name.ends_with(".sh") || name.ends_with(".sbatch") {
            let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            succeeded(&rel, &out);
            "shell"
        } else if name.ends_with(".yaml") {
            let Some(py) = crate::venv_python("yaml") else {
                continue;
            };
            let out = Command::new(py)
                .args([
                    "-c",
                    "import sys, yaml; print(len(list(yaml.safe_load_all(open(sys.argv[1])))))",
                ])
                .arg(&path)
                .output()
                .unwrap();
            succeeded(&rel, &out);
            "yaml"
        } else if name.ends_with(".toml")
            && std::fs::read_to_string(&path).unwrap().contains("work_dir")
        {
            // A pipeline config: `tinyforge run` parses it and lays out every stage.
            let out = crate::tinyforge()
                .current_dir(root)
                .args(["run", &rel, "--dry-run"])
                .output()
                .unwrap();
            succeeded(&rel, &out);
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("tinyforge ingest "));
            "pipeline"
        } else {
            panic!("{rel}: a config of a kind this test does not check; teach it");
        };
        checked.push((rel, kind));
    }
    let kinds: std::collections::BTreeSet<&str> = checked.iter().map(|(_, k)| *k).collect();
    for kind in ["model", "ingest", "pipeline", "shell"] {
        assert!(
            kinds.contains(kind),
            "no {kind} config checked: {checked:?}"
        );
    }
    #[cfg(feature = "train")]
    assert!(kinds.contains("train"));
}

/// Panics with the command's stderr when it failed on config `rel`.
fn succeeded(rel: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{rel}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "train")]
fn check_train(path: &Path, rel: &str) {
    let options =
        tinyforge_train::TrainOptions::load(path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    options
        .resolve(Some(8000))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
}

#[cfg(not(feature = "train"))]
fn check_train(_: &Path, rel: &str) {
    eprintln!("{rel}: not checked (the train feature is off)");
}
