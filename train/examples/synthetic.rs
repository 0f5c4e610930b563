//! The throughput benchmark of `tinyforge train --synthetic` without the `tinyforge` binary (which
//! also links the data stages): random tokens at a model's shape through the real training loop.
//!
//!   cargo run -p tinyforge-train --example synthetic -- MODEL SEQ BATCH MICRO STEPS DEVICE
//!   cargo run -p tinyforge-train --example synthetic -- pangu-1b-pro 2048 8 8 13 cuda
//!
//! Prints the JSON report (median step time, tokens/s, model FLOP/s over the steps after the
//! first 3) on stdout, like `tinyforge train --synthetic`.

use tinyforge_train::{NoCallbacks, TrainOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let steps: u64 = arg(4, "13").parse()?;
    let opts = TrainOptions {
        model: Some(arg(0, "tiny")),
        data: Some("(synthetic)".into()),
        out: Some(std::env::temp_dir().join(format!("tinyforge-synthetic-{}", std::process::id()))),
        seq_len: Some(arg(1, "256").parse()?),
        batch_size: Some(arg(2, "16").parse()?),
        micro_batch: Some(arg(3, "16").parse()?),
        device: Some(arg(5, "auto").parse()?),
        ..Default::default()
    };
    let cfg = opts.resolve(Some(256))?;
    let report = tinyforge_train::synthetic_run(
        &cfg.run,
        steps,
        3u64.min(steps.saturating_sub(1)),
        &mut NoCallbacks,
    )?;
    let _ = std::fs::remove_dir_all(&cfg.run.out);
    let mut v = serde_json::to_value(&report)?;
    v["runtime"] = tinyforge_train::runtime_info();
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
