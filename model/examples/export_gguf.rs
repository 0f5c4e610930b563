//! Writes a checkpoint folder as a GGUF file and prints the report as JSON, for the consumer
//! check (`model/tests/check_gguf.py`):
//!
//! ```text
//! cargo run -p tinyforge-model --example export_gguf -- CHECKPOINT OUT.gguf [f32|f16|bf16|q8_0]
//! ```

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: export_gguf CHECKPOINT OUT.gguf [f32|f16|bf16|q8_0]";
    let checkpoint = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let out = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let ty = match args.next() {
        Some(name) => name.parse()?,
        None => tinyforge_model::GgufType::F16,
    };
    let report = tinyforge_model::export_gguf(&checkpoint, &out, ty)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
