//! Link-time wiring for libtorch (the PyTorch wheel in `.venv`, see `.cargo/config.toml`):
//!
//! - an rpath to libtorch's `lib/` so test binaries run without `LD_LIBRARY_PATH`;
//! - `libtorch_cuda.so` forced into DT_NEEDED: torch-sys links it, but the default `--as-needed`
//!   drops it because no symbol is referenced directly, and then CUDA silently looks absent
//!   (tch issues #907, #980);
//! - the folder handed on (`links` metadata) to the `tinyforge` binary's build script, which
//!   needs the same two link arguments for its own executable.
//!
//! The folder is found the way torch-sys finds it: `LIBTORCH_LIB` or `LIBTORCH` (+ `/lib`), else
//! the Python torch when `LIBTORCH_USE_PYTORCH` is set.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    for var in [
        "LIBTORCH",
        "LIBTORCH_LIB",
        "LIBTORCH_USE_PYTORCH",
        "VIRTUAL_ENV",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let Some(lib) = libtorch_lib_dir() else {
        println!(
            "cargo:warning=libtorch not found: run scripts/setup-python (torch-sys needs it too)"
        );
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:lib_dir={}", lib.display());
}

fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Ok(lib) = env::var("LIBTORCH_LIB") {
        return Some(PathBuf::from(lib).join("lib"));
    }
    if let Ok(root) = env::var("LIBTORCH") {
        // Not canonicalised: the rpath follows .venv/libtorch when setup-python re-points it.
        return Some(PathBuf::from(root).join("lib"));
    }
    if env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let python = if env::var_os("VIRTUAL_ENV").is_some() {
            "python"
        } else {
            "python3"
        };
        let out = Command::new(python)
            .args([
                "-c",
                "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
            ])
            .output()
            .ok()?;
        let path = String::from_utf8(out.stdout).ok()?;
        return Some(PathBuf::from(path.trim()));
    }
    None
}
