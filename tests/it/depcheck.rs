//! The dependency rules of docs/ARCHITECTURE.md, checked against `cargo metadata` (in the spirit
//! of DataFusion's depcheck): a data engineer must be able to build every data stage without
//! libtorch, and stages share files, not types. Also the build's own promises: no DataFusion
//! crate compiles optimised, and no library crate prints.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each workspace crate and the workspace crates it may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("tinyforge-task", &[]),
    // Test support only (a dev-dependency of the suites).
    ("tinyforge-testkit", &[]),
    ("tinyforge-store", &["tinyforge-task"]),
    ("tinyforge-model", &["tinyforge-task"]),
    ("tinyforge-sql", &[]),
    (
        "tinyforge-ingest",
        &["tinyforge-task", "tinyforge-store", "tinyforge-sql"],
    ),
    ("tinyforge-pretok", &[]),
    (
        "tinyforge-vocab",
        &[
            "tinyforge-task",
            "tinyforge-model",
            "tinyforge-pretok",
            "tinyforge-sql",
        ],
    ),
    ("tinyforge-shards", &["tinyforge-task", "tinyforge-store"]),
    (
        "tinyforge-tokenize",
        &[
            "tinyforge-task",
            "tinyforge-model",
            "tinyforge-shards",
            "tinyforge-pretok",
        ],
    ),
    ("tinyforge-sampler", &["tinyforge-task"]),
    (
        "tinyforge-train",
        &[
            "tinyforge-task",
            "tinyforge-model",
            "tinyforge-shards",
            "tinyforge-sampler",
        ],
    ),
    (
        "tinyforge-inherit",
        &[
            "tinyforge-task",
            "tinyforge-model",
            "tinyforge-train",
            "tinyforge-shards",
            "tinyforge-vocab",
        ],
    ),
    (
        "tinyforge-eval",
        &[
            "tinyforge-task",
            "tinyforge-model",
            "tinyforge-shards",
            "tinyforge-sampler",
            "tinyforge-train",
        ],
    ),
];

/// Crates that may reach libtorch (`tch`, `torch-sys`), directly or through another crate.
const TORCH_ALLOWED: &[&str] = &["tinyforge-train", "tinyforge-inherit", "tinyforge-eval"];

struct Workspace {
    /// Workspace crate name -> its direct normal dependencies (all crates, by name).
    direct: BTreeMap<String, BTreeSet<String>>,
    /// Every package name -> its normal dependencies, for transitive closure.
    graph: BTreeMap<String, BTreeSet<String>>,
}

fn workspace() -> Workspace {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--all-features"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    let mut id_to_name = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        id_to_name.insert(
            package["id"].as_str().unwrap().to_owned(),
            package["name"].as_str().unwrap().to_owned(),
        );
    }
    let mut direct = BTreeMap::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap();
        let name = id_to_name[id].clone();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|dep| {
                dep["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|kind| kind["kind"].is_null())
            })
            .map(|dep| id_to_name[dep["pkg"].as_str().unwrap()].clone())
            .collect();
        if members.contains(id) {
            direct.insert(name.clone(), deps.clone());
        }
        graph.entry(name).or_default().extend(deps);
    }
    Workspace { direct, graph }
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, target: &str) -> bool {
    let mut stack = vec![from.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(name) = stack.pop() {
        if name == target {
            return true;
        }
        if seen.insert(name.clone()) {
            stack.extend(graph.get(&name).into_iter().flatten().cloned());
        }
    }
    false
}

#[test]
fn stage_crates_depend_only_on_the_crates_they_may() {
    let ws = workspace();
    for (name, deps) in &ws.direct {
        if name == "tinyforge" {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(crate_name, _)| crate_name == name)
            .unwrap_or_else(|| panic!("{name} is not listed in depcheck's ALLOWED table"))
            .1;
        for dep in deps.iter().filter(|dep| dep.starts_with("tinyforge")) {
            assert!(
                allowed.contains(&dep.as_str()),
                "{name} depends on {dep}, which docs/ARCHITECTURE.md does not allow"
            );
        }
    }
}

#[test]
fn only_train_inherit_and_eval_link_libtorch() {
    let ws = workspace();
    for name in ws.direct.keys() {
        if name == "tinyforge" || TORCH_ALLOWED.contains(&name.as_str()) {
            continue;
        }
        assert!(
            !reaches(&ws.graph, name, "torch-sys"),
            "{name} reaches libtorch (torch-sys); only {TORCH_ALLOWED:?} may"
        );
    }
}

#[test]
fn the_data_stages_build_without_libtorch() {
    // Without the `train` feature, the command itself must not reach libtorch.
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "tinyforge",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        !tree
            .lines()
            .any(|line| line.starts_with("torch-sys ") || line.starts_with("tch ")),
        "the default `tinyforge` build reaches libtorch"
    );
}

/// Every DataFusion crate (and sqlparser) in Cargo.lock is at opt-level 0 in the dev profile:
/// a new one from an upgrade would otherwise fall under `"*" = { opt-level = 3 }` and add
/// minutes to every fresh build, silently (the measured reasons are in Cargo.toml).
#[test]
fn no_datafusion_crate_compiles_optimised() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(root.join(name)).unwrap()).unwrap()
    };
    let lock = read("Cargo.lock");
    let manifest = read("Cargo.toml");
    let levels = manifest["profile"]["dev"]["package"].as_table().unwrap();
    let mut checked = 0;
    for package in lock["package"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        if !(name.starts_with("datafusion") || name.starts_with("sqlparser")) {
            continue;
        }
        let level = levels
            .get(name)
            .and_then(|p| p.get("opt-level"))
            .and_then(toml::Value::as_integer);
        assert_eq!(
            level,
            Some(0),
            "{name} is in Cargo.lock but not at opt-level 0 in [profile.dev.package] of Cargo.toml"
        );
        checked += 1;
    }
    assert!(
        checked > 20,
        "only {checked} DataFusion crates in Cargo.lock"
    );
}

/// "Library crates never print": every library crate denies `print!`/`eprint!` at its root
/// (data goes to the caller, progress through its events); only the binary prints.
#[test]
fn library_crates_deny_printing() {
    let ws = workspace();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ws.direct.keys() {
        if name == "tinyforge" || name == "tinyforge-testkit" {
            continue;
        }
        let dir = name.strip_prefix("tinyforge-").unwrap();
        let lib = std::fs::read_to_string(root.join(dir).join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("#![deny(clippy::print_stdout, clippy::print_stderr)]"),
            "{dir}/src/lib.rs lacks #![deny(clippy::print_stdout, clippy::print_stderr)]"
        );
    }
}
