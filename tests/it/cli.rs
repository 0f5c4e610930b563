//! The command as a shell user meets it.

use std::process::Stdio;

/// `tinyforge … | head`: a reader that closes stdout early ends the command normally (exit 0,
/// no panic message), as it does `cat` or `rg`.
#[test]
fn a_closed_stdout_is_a_normal_end() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("tinyforge"));
    let mut child = command
        .current_dir(root)
        .args(["run", "configs/demo.toml", "--dry-run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the command writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
