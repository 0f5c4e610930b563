//! This crate's test binaries link libtorch (through tinyforge-train): give them the rpath to
//! libtorch's folder that train/build.rs finds, so they run without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TINYFORGE_LIBTORCH_LIB_DIR");
    if let Ok(lib) = std::env::var("DEP_TINYFORGE_LIBTORCH_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
