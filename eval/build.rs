//! With the `torch` feature this crate's test binaries link libtorch (through tinyforge-train):
//! give them the rpath to libtorch's folder that train/build.rs finds, so they run without
//! LD_LIBRARY_PATH. Without the feature this does nothing.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TINYFORGE_LIBTORCH_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    if let Ok(lib) = std::env::var("DEP_TINYFORGE_LIBTORCH_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
