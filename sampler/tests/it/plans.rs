use std::collections::HashSet;

use proptest::prelude::*;
use tinyforge_sampler::{Exhausted, HeldOut, Plan, Pool, RoundOneSpec, UnitRef, stratified_sample};

use crate::single_pool_plan;

fn mixture_spec(
    units: &[u64],
    weights: &[f64],
    batch: u32,
    seed: u64,
    exhausted: Exhausted,
) -> RoundOneSpec {
    RoundOneSpec {
        seed,
        round: 1,
        seq_len: 8,
        batch_units: batch,
        pools: units
            .iter()
            .zip(weights)
            .enumerate()
            .map(|(i, (&units, &weight))| Pool {
                name: format!("p{i}"),
                dataset: None,
                units,
                weight,
                held_out: vec![],
            })
            .collect(),
        exhausted,
        steps: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn round_one_is_a_permutation(units in 1u64..3000, batch in 1u32..40, seed in any::<u64>()) {
        prop_assume!(units >= batch as u64);
        let dir = tempfile::tempdir().unwrap();
        let plan = single_pool_plan(dir.path(), units, batch, seed);
        prop_assert_eq!(plan.num_steps(), units / batch as u64);
        let mut seen = HashSet::new();
        for step in 0..plan.num_steps() {
            for unit in plan.batch(step).unwrap() {
                prop_assert!(unit.unit < units);
                prop_assert!(seen.insert(unit.unit), "unit {} twice", unit.unit);
            }
        }
        // Every unit when the batch divides the count; only the remainder is left for the round.
        prop_assert_eq!(seen.len() as u64, plan.num_positions());
        prop_assert_eq!(plan.distinct_units(), plan.num_positions());
        // The locator inverts the order.
        let locator = tinyforge_sampler::Locator::new(&plan).unwrap();
        let mut positions = Vec::new();
        for position in (0..plan.num_positions()).step_by(7) {
            positions.clear();
            locator.positions_of(plan.unit_at(position).unwrap(), &mut positions);
            prop_assert_eq!(&positions, &vec![position]);
        }
    }

    #[test]
    fn rank_slices_partition_each_batch(batch in 1u32..50, world in 1u32..12, seed in any::<u64>()) {
        let dir = tempfile::tempdir().unwrap();
        let plan = single_pool_plan(dir.path(), 500, batch, seed);
        for step in [0, plan.num_steps() / 2, plan.num_steps() - 1] {
            let mut joined = Vec::new();
            for rank in 0..world {
                let slice = plan.rank_slice(step, rank, world).unwrap();
                let size = slice.len() as u32;
                prop_assert!(size == batch / world || size == batch.div_ceil(world));
                joined.extend(slice);
            }
            prop_assert_eq!(joined, plan.batch(step).unwrap());
        }
        prop_assert!(plan.rank_slice(0, world, world).is_err());
    }

    #[test]
    fn same_seed_same_plan(seed in any::<u64>()) {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one = single_pool_plan(a.path(), 777, 8, seed);
        let two = single_pool_plan(b.path(), 777, 8, seed);
        let other = single_pool_plan(b.path(), 777, 8, seed ^ 1);
        let all = |p: &Plan| (0..p.num_steps()).flat_map(|s| p.batch(s).unwrap()).collect::<Vec<_>>();
        prop_assert_eq!(all(&one), all(&two));
        prop_assert_ne!(all(&one), all(&other));
    }

    #[test]
    fn mixture_weights_hold_per_batch(
        units in proptest::collection::vec(200u64..3000, 2..5),
        raw_weights in proptest::collection::vec(0.05f64..1.0, 5),
        batch in 4u32..64,
        seed in any::<u64>(),
    ) {
        let weights = &raw_weights[..units.len()];
        let dir = tempfile::tempdir().unwrap();
        let spec = mixture_spec(&units, weights, batch, seed, Exhausted::Stop);
        let Ok(plan) = Plan::create_round_one(&dir.path().join("mix.json"), &spec) else {
            // Refused when a pool's share is under one unit per batch, or it cannot fill one batch.
            return Ok(());
        };
        let total: f64 = weights.iter().sum();
        let mut seen = HashSet::new();
        let mut running = vec![0f64; units.len()];
        for step in 0..plan.num_steps() {
            let units_of_batch = plan.batch(step).unwrap();
            for (p, &w) in weights.iter().enumerate() {
                let count = units_of_batch.iter().filter(|u| u.pool as usize == p).count() as f64;
                let exact = w / total * batch as f64;
                // The stated tolerance: within 2 units of weight × batch in every batch...
                prop_assert!((count - exact).abs() < 2.0 - 1e-9,
                    "step {} pool {}: {} units for {:.3}", step, p, count, exact);
            }
            // ...and within 1 unit over every prefix of the round.
            for (p, &w) in weights.iter().enumerate() {
                running[p] += units_of_batch.iter().filter(|u| u.pool as usize == p).count() as f64;
                let exact = w / total * batch as f64 * (step + 1) as f64;
                prop_assert!((running[p] - exact).abs() < 1.0 + 1e-6, "prefix drift {}", running[p] - exact);
            }
            for unit in units_of_batch {
                prop_assert!(unit.unit < units[unit.pool as usize]);
                prop_assert!(seen.insert(unit), "{:?} twice under the stop policy", unit);
            }
        }
    }
}

#[test]
fn mixture_positions_round_trip_and_cycle_repeats_small_pools() {
    let dir = tempfile::tempdir().unwrap();
    let spec = mixture_spec(&[50, 400], &[1.0, 1.0], 10, 3, Exhausted::Cycle);
    let plan = Plan::create_round_one(&dir.path().join("cycle.json"), &spec).unwrap();
    // Every unit of the large pool at least once: 400 units at 5 per batch.
    assert_eq!(plan.num_steps(), 80);
    let locator = tinyforge_sampler::Locator::new(&plan).unwrap();
    let mut visits = std::collections::HashMap::<UnitRef, Vec<u64>>::new();
    for position in 0..plan.num_positions() {
        visits
            .entry(plan.unit_at(position).unwrap())
            .or_default()
            .push(position);
    }
    assert_eq!(visits.len(), 450);
    let mut positions = Vec::new();
    for (unit, expected) in &visits {
        positions.clear();
        locator.positions_of(*unit, &mut positions);
        positions.sort_unstable();
        assert_eq!(&positions, expected, "{unit:?}");
        // The small pool is drawn 400 times: 8 epochs of its 50 units.
        assert_eq!(expected.len(), if unit.pool == 0 { 8 } else { 1 });
        assert!(!plan.is_repeat(expected[0]));
        assert!(expected[1..].iter().all(|&p| plan.is_repeat(p)));
    }
    assert_eq!(plan.distinct_units(), 450);

    // Under the stop policy the round ends when the small pool runs out.
    let spec = mixture_spec(&[50, 400], &[1.0, 1.0], 10, 3, Exhausted::Stop);
    let stop = Plan::create_round_one(&dir.path().join("stop.json"), &spec).unwrap();
    assert_eq!(stop.num_steps(), 10);
    let mut too_long = spec.clone();
    too_long.steps = Some(11);
    let err = Plan::create_round_one(&dir.path().join("long.json"), &too_long).unwrap_err();
    assert!(err.to_string().contains("runs out after 10 steps"), "{err}");
}

#[test]
fn held_out_units_are_never_drawn_and_the_rest_are_drawn_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = mixture_spec(&[300, 700], &[3.0, 7.0], 10, 5, Exhausted::Cycle);
    spec.pools[0].held_out = stratified_sample(300, 30, 5);
    spec.pools[1].held_out = stratified_sample(700, 70, 5);
    let plan = Plan::create_round_one(&dir.path().join("held.json"), &spec).unwrap();
    // The header records the held-out ids; a reopened plan draws the same units.
    let reopened = Plan::open(plan.path()).unwrap();
    assert_eq!(reopened.pools(), &spec.pools[..]);
    let locator = tinyforge_sampler::Locator::new(&plan).unwrap();
    let mut seen = HashSet::new();
    let mut positions = Vec::new();
    for position in 0..plan.num_positions() {
        let unit = plan.unit_at(position).unwrap();
        assert_eq!(unit, reopened.unit_at(position).unwrap());
        let pool = &spec.pools[unit.pool as usize];
        assert!(unit.unit < pool.units);
        assert!(
            pool.held_out.binary_search(&unit.unit).is_err(),
            "{unit:?} is held out"
        );
        if seen.insert(unit) {
            positions.clear();
            locator.positions_of(unit, &mut positions);
            assert!(positions.contains(&position), "{unit:?} at {position}");
        }
    }
    // Every drawable unit of both pools (900 of 1,000), each first seen once.
    assert_eq!(seen.len(), 900);
    for (p, pool) in spec.pools.iter().enumerate() {
        for &h in &pool.held_out {
            positions.clear();
            locator.positions_of(
                UnitRef {
                    pool: p as u16,
                    unit: h,
                },
                &mut positions,
            );
            assert!(positions.is_empty());
        }
    }

    // A record of the sample round-trips; a damaged one is refused by name.
    let record = HeldOut::draw("tokens", 8, 300, 30, 5);
    assert_eq!(record.held_out, spec.pools[0].held_out);
    let path = dir.path().join("heldout.json");
    record.write(&path).unwrap();
    assert_eq!(HeldOut::read(&path).unwrap(), record);
    let mut bad = spec.clone();
    bad.pools[1].held_out = vec![5, 700];
    let err = Plan::create_round_one(&dir.path().join("bad.json"), &bad).unwrap_err();
    assert!(
        err.to_string()
            .contains("pool `p1`: held-out unit 700 is beyond"),
        "{err}"
    );
}

#[test]
fn opening_damaged_plans_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let plan = single_pool_plan(dir.path(), 100, 10, 1);
    let text = std::fs::read_to_string(plan.path()).unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, text.replace("tinyforge-plan", "other")).unwrap();
    let err = Plan::open(&path).unwrap_err().to_string();
    assert!(err.contains("bad.json") && err.contains("format"), "{err}");
    std::fs::write(&path, text.replace("\"steps\": 10", "\"steps\": 11")).unwrap();
    let err = Plan::open(&path).unwrap_err().to_string();
    assert!(err.contains("run out after 10"), "{err}");
    assert!(plan.batch(10).is_err());
}
