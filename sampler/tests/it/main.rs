//! Integration tests of tinyforge-sampler: plans, loss tables and selection through the public
//! API, on real files in a temporary folder.

mod fuzz;
mod losses;
mod plans;
mod selection;
mod statistics;

/// Counts the bytes live, for the memory bounds of the fuzz tests (measured in a process of
/// their own); the other tests only pay an atomic add per allocation.
#[global_allocator]
static ALLOCATOR: tinyforge_testkit::CountingAllocator = tinyforge_testkit::CountingAllocator;

use std::path::{Path, PathBuf};

use tinyforge_sampler::{Exhausted, LossTableWriter, Plan, Pool, RoundOneSpec};

/// A single-pool round-1 plan of `units` units.
pub fn single_pool_plan(dir: &Path, units: u64, batch: u32, seed: u64) -> Plan {
    let spec = RoundOneSpec {
        seed,
        round: 1,
        seq_len: 16,
        batch_units: batch,
        pools: vec![Pool {
            name: "all".into(),
            dataset: None,
            units,
            weight: 1.0,
            held_out: vec![],
        }],
        exhausted: Exhausted::Stop,
        steps: None,
    };
    Plan::create_round_one(
        &dir.join(format!("round1-{units}-{batch}-{seed}.json")),
        &spec,
    )
    .unwrap()
}

/// Writes a loss table with one row per unit the plan trains on, loss = `loss(unit)`.
pub fn write_losses(plan: &Plan, path: &Path, loss: impl Fn(u16, u64) -> f32) -> PathBuf {
    let mut writer = LossTableWriter::create(path, plan.round()).unwrap();
    for step in 0..plan.num_steps() {
        for (slot, unit) in plan.batch(step).unwrap().into_iter().enumerate() {
            let position = step * plan.batch_units() as u64 + slot as u64;
            if !plan.is_repeat(position) {
                writer.push(unit, loss(unit.pool, unit.unit)).unwrap();
            }
        }
    }
    writer.finish().unwrap();
    path.to_path_buf()
}
