//! The selection step of `tinyforge sample` through the library alone, for benchmarking where
//! the full command is not built: `select_losses PLAN LOSSES OUT unit|batch [FRACTION]`.

use tinyforge_sampler::{Level, ListOrder, Method, Plan, SelectConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 5,
        "usage: select_losses PLAN LOSSES OUT unit|batch [FRACTION]"
    );
    let plan = Plan::open(&args[1])?;
    let config = SelectConfig {
        method: Method::Softmax,
        level: if args[4] == "unit" {
            Level::Unit
        } else {
            Level::Batch
        },
        fraction: args.get(5).map_or(Ok(0.5), |f| f.parse())?,
        temperature: 1.0,
        seed: 7,
        order: ListOrder::Shuffled,
    };
    let progress = tinyforge_task::Silent;
    let report = tinyforge_sampler::select_next_round(
        &plan,
        &[args[2].clone().into()],
        args[3].as_ref(),
        &config,
        &progress,
    )?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
