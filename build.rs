//! With the `train` feature the binary links libtorch (through tinyforge-train): give it the
//! same rpath to libtorch's folder and the same forced `libtorch_cuda.so` that the train crate's
//! build script gives its own tests (see train/build.rs), so `tinyforge` runs without
//! LD_LIBRARY_PATH and sees the GPU. Without the feature this does nothing.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TINYFORGE_LIBTORCH_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_TRAIN").is_none() {
        return;
    }
    let Ok(lib) = std::env::var("DEP_TINYFORGE_LIBTORCH_LIB_DIR") else {
        return;
    };
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{lib}");
    println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        for arg in ["-Wl,--no-as-needed", "-ltorch_cuda", "-Wl,--as-needed"] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}
