//! Benchmark input: a loss table for every unit of a plan, in plan order (as a trainer writes
//! it), with losses drawn deterministically per unit (1 + Exp(1) nats: a long right tail, like
//! real per-sequence losses). Used by `bench/sampler/run.sh`.
//!
//! `cargo run -p tinyforge-sampler --example gen_losses -- PLAN OUT.parquet`

use std::time::Instant;

use tinyforge_sampler::{LossTableWriter, Plan};

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: gen_losses PLAN OUT.parquet");
    let plan = Plan::open(&args[1])?;
    let start = Instant::now();
    let mut writer = LossTableWriter::create(&args[2], plan.round())?;
    for step in 0..plan.num_steps() {
        for unit in plan.batch(step)? {
            let u = ((splitmix(unit.unit) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            writer.push(unit, (1.0 - u.ln()) as f32)?;
        }
    }
    let report = writer.finish()?;
    eprintln!(
        "wrote {} rows in {:.1} s",
        report.rows,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
