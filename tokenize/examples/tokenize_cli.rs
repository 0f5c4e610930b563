//! The library call behind `tinyforge tokenize`, without the rest of the binary: for timing the
//! stage on a machine where the whole `tinyforge` command is not built yet.
//!
//!     cargo run -p tinyforge-tokenize --example tokenize_cli -- DOCS --tokenizer T --out DIR [--threads N]

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let docs = args
        .first()
        .ok_or("usage: tokenize_cli DOCS --tokenizer T --out DIR [--threads N]")?;
    let tokenizer = value("--tokenizer").ok_or("--tokenizer is required")?;
    let out = value("--out").ok_or("--out is required")?;
    let mut config =
        tinyforge_tokenize::TokenizeConfig::new(docs.into(), PathBuf::from(tokenizer), out.into());
    if let Some(threads) = value("--threads") {
        config.threads = threads.parse()?;
    }
    let report = tinyforge_tokenize::tokenize(&config, &tinyforge_task::Silent)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
