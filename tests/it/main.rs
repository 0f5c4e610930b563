//! End-to-end tests that drive the real `tinyforge` binary, one module per stage. They are one
//! test binary, not one per file: each links the whole dependency graph (DataFusion, libtorch),
//! and linking eight of them was minutes of every CI run.

mod cluster;
mod depcheck;
mod dist;
mod eval;
mod hf_folders;
mod ingest;
mod inherit;
mod objects;
mod report;
mod sampler;
mod stats;
mod study;
mod tokenize;
mod train;
mod vocab;

/// A test whose real engine or reference (Slurm, moto, torchrun) is not available here: fails
/// when `TINYFORGE_REQUIRE_REFERENCES` is set (as `scripts/test` sets it), else says it skips.
pub(crate) fn skip_unless_required(what: &str, why: &str) {
    assert!(
        std::env::var_os("TINYFORGE_REQUIRE_REFERENCES").is_none(),
        "{what} is required (TINYFORGE_REQUIRE_REFERENCES is set): {why}"
    );
    eprintln!("SKIP: no {what}: {why}");
}

/// Every plain file of a folder (hidden ones, locks and temporaries, left out), by name, with
/// its bytes.
pub(crate) fn plain_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Every file under `dir`, recursively, as `/`-separated paths relative to it; sorted.
pub(crate) fn walk_files(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// The project venv's Python when it imports `modules` (comma-separated, as in an `import`
/// line), or `None` after [`skip_unless_required`].
pub(crate) fn venv_python(modules: &str) -> Option<std::path::PathBuf> {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = std::process::Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip_unless_required(
            &format!("{modules} (scripts/setup-python)"),
            &format!("{} cannot import {modules}", py.display()),
        );
        return None;
    }
    Some(py)
}
