//! Link-time wiring for libtorch (the PyTorch wheel in `.venv`, see `.cargo/config.toml`):
//!
//! - an rpath to libtorch's `lib/` so test binaries run without `LD_LIBRARY_PATH`;
//! - `libtorch_cuda.so` forced into DT_NEEDED: torch-sys links it, but the default `--as-needed`
//!   drops it because no symbol is referenced directly, and then CUDA silently looks absent
//!   (tch issues #907, #980);
//! - the folder handed on (`links` metadata) to the `tinyforge` binary's build script, which
//!   needs the same two link arguments for its own executable.
//!
//! - the C++ shim over c10d (`csrc/dist.cpp`, see `src/dist.rs`) compiled against the wheel's
//!   headers: Gloo always, NCCL when the wheel is a CUDA build. The headers the wheel lacks come
//!   from `scripts/setup-python`: Gloo's (Debian's libgloo-dev, unpacked into
//!   `site-packages/tinyforge-gloo/include`) and CUDA's `crt/` and `nv/` (PyPI nvidia-cuda-crt and
//!   nvidia-cuda-cccl, into `site-packages/nvidia/cu13/include`). `TINYFORGE_GLOO_INCLUDE`
//!   points elsewhere for a standalone libtorch.
//!
//! The folder is found the way torch-sys finds it: `LIBTORCH_LIB` or `LIBTORCH` (+ `/lib`), else
//! the Python torch when `LIBTORCH_USE_PYTORCH` is set.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for var in [
        "LIBTORCH",
        "LIBTORCH_LIB",
        "LIBTORCH_USE_PYTORCH",
        "VIRTUAL_ENV",
        "TINYFORGE_GLOO_INCLUDE",
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
    compile_shim(&lib);
}

/// Build `csrc/dist.cpp` into a static library linked into this crate.
fn compile_shim(lib: &Path) {
    println!("cargo:rerun-if-changed=csrc/dist.cpp");
    let torch = lib.join("..");
    // site-packages, where pip put torch and the nvidia-* wheels (through .venv/libtorch's link).
    let site = fs::canonicalize(&torch)
        .ok()
        .and_then(|t| t.parent().map(Path::to_path_buf));
    let gloo = env::var_os("TINYFORGE_GLOO_INCLUDE")
        .map(PathBuf::from)
        .or_else(|| {
            site.as_ref()
                .map(|s| s.join("tinyforge-gloo").join("include"))
        });
    let Some(gloo) = gloo.filter(|g| g.join("gloo").join("algorithm.h").exists()) else {
        fail(
            "Gloo's headers are missing (they shape c10d's classes): run scripts/setup-python, \
              or set TINYFORGE_GLOO_INCLUDE to a folder holding gloo/algorithm.h",
        );
    };
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/dist.cpp")
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .include(&gloo)
        .warnings(false)
        .flag("-w");
    let cuda = site.as_ref().map(|s| s.join("nvidia"));
    if lib.join("libtorch_cuda.so").exists() {
        let Some(nvidia) = cuda.filter(|n| n.join("cu13/include/crt/host_config.h").exists())
        else {
            fail(
                "this PyTorch is a CUDA build but CUDA's crt/ headers are missing: run \
                  scripts/setup-python (it installs nvidia-cuda-crt and nvidia-cuda-cccl)",
            );
        };
        build
            .define("USE_C10D_NCCL", None)
            .include(nvidia.join("cu13/include"))
            .include(nvidia.join("nccl/include"));
    }
    build.compile("tinyforge_dist");
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
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
