//! End-to-end tests that drive the real `tinyforge` binary, one module per stage. They are one
//! test binary, not one per file: each links the whole dependency graph (DataFusion, libtorch),
//! and linking eight of them was minutes of every CI run.

mod cli;
mod cluster;
mod configs;
mod depcheck;
mod dist;
mod eval;
mod hf_folders;
mod ingest;
mod inherit;
mod objects;
mod report;
mod run;
mod sampler;
mod stats;
mod study;
mod tokenize;
mod train;
mod vocab;

pub(crate) use tinyforge_testkit::{skip_unless_required, venv_python};

/// The `tinyforge` binary as every test runs it: no progress, one OpenMP thread (the tiny
/// models gain nothing from more, and spinning threads crawl on a loaded machine), and none of
/// the environment a developer's shell or another test could leak into it.
pub(crate) fn tinyforge() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("tinyforge").unwrap();
    command
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("TINYFORGE_TEST_KILL_AFTER_CHUNKS")
        .env("OMP_NUM_THREADS", "1")
        .args(["--progress", "none"]);
    command
}

/// The `error:` line a failed command printed on stderr (the test fails without one).
pub(crate) fn error_line(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in {stderr}"))
        .to_owned()
}

/// A command's stdout as JSON, or a panic that shows what it printed instead.
pub(crate) fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
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
