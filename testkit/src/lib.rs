//! What every crate's test suite shares, so that a test needing something outside the repository
//! (the project venv's Python packages, the fetched real data, a real engine such as Slurm or an
//! S3 server) finds it one way and, when it is missing, says so in one way:
//!
//! - with `TINYFORGE_REQUIRE_REFERENCES` set (`scripts/test` and CI set it), a missing reference
//!   **fails** the test, so a suite cannot pass by skipping what it exists to check;
//! - without it (a developer running one crate), the test prints `SKIP: …` and returns.
//!
//! It also holds what the fuzz tests share: byte mutations of a valid file (`mutate.rs`), and a
//! counting global allocator with a way to run one test alone in a process of its own, to hold
//! a reader to a stated memory bound (`alloc.rs`).
//!
//! A dev-dependency only, on std and proptest (which the fuzzing suites build anyway), so it
//! costs the test builds nothing.

mod alloc;
mod mutate;

pub use alloc::{CountingAllocator, in_own_process, peak_during};
pub use mutate::{Mutation, mutate};

/// A fuzz test's proptest settings: `cases` cases drawn from the fixed `seed`, so CI never flakes
/// on a newly drawn input. `PROPTEST_CASES` and `PROPTEST_RNG_SEED` still override both, to
/// explore others.
pub fn fuzz_config(cases: u32, seed: u64) -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(seed);
    }
    config
}

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable that turns every skip into a failure.
pub const REQUIRE: &str = "TINYFORGE_REQUIRE_REFERENCES";

/// Records that `what` is unavailable (`why`): panics when [`REQUIRE`] is set, else prints a
/// `SKIP` line. Callers return right after.
#[track_caller]
pub fn skip_unless_required(what: &str, why: &str) {
    skip_or_fail(std::env::var_os(REQUIRE).is_some(), what, why);
}

#[track_caller]
fn skip_or_fail(required: bool, what: &str, why: &str) {
    assert!(!required, "{what} is required ({REQUIRE} is set): {why}");
    eprintln!("SKIP: no {what}: {why}");
}

/// The repository's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the root")
        .to_path_buf()
}

/// The project venv's Python (`.venv/bin/python`, made by `scripts/setup-python`) when it
/// imports `modules` (comma-separated, as in an `import` line); else `None` after
/// [`skip_unless_required`].
#[track_caller]
pub fn venv_python(modules: &str) -> Option<PathBuf> {
    let py = workspace_root().join(".venv/bin/python");
    match Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .output()
    {
        Ok(out) if out.status.success() => Some(py),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or("").trim();
            skip_unless_required(
                &format!("{modules} in the project venv (scripts/setup-python)"),
                &format!("{} cannot import {modules}: {last}", py.display()),
            );
            None
        }
        Err(err) => {
            skip_unless_required(
                &format!("{modules} in the project venv (scripts/setup-python)"),
                &format!("{}: {err}", py.display()),
            );
            None
        }
    }
}

/// The data cache `scripts/fetch-data` fills: `$TINYFORGE_DATA`, default `~/.cache/tinyforge`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TINYFORGE_DATA") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME or TINYFORGE_DATA is set");
    PathBuf::from(home).join(".cache/tinyforge")
}

/// `relative` inside the data cache when it was fetched; else `None` after
/// [`skip_unless_required`].
#[track_caller]
pub fn fetched(relative: &str) -> Option<PathBuf> {
    let path = data_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    skip_unless_required(
        &format!("fetched {relative}"),
        &format!("{} is absent; run scripts/fetch-data", path.display()),
    );
    None
}

/// The real Qwen3 tokenizer (151,669 tokens) from the data cache, the base the tests prune.
#[track_caller]
pub fn qwen3_tokenizer() -> Option<PathBuf> {
    fetched("raw/qwen3-tokenizer/package/models/tokenizer.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "torch is required (TINYFORGE_REQUIRE_REFERENCES is set): gone")]
    fn a_required_reference_fails_the_test() {
        skip_or_fail(true, "torch", "gone");
    }

    #[test]
    fn without_the_switch_a_missing_reference_skips() {
        skip_or_fail(false, "torch", "gone");
    }

    #[test]
    fn a_package_no_python_has_is_missing() {
        if std::env::var_os(REQUIRE).is_some() {
            let result = std::panic::catch_unwind(|| venv_python("no_such_module_tinyforge"));
            assert!(result.is_err(), "a missing module passed under {REQUIRE}");
        } else {
            assert_eq!(venv_python("no_such_module_tinyforge"), None);
        }
    }
}
