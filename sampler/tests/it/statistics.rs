//! The draw matches successive weighted sampling without replacement exactly: on a small N the
//! empirical frequency of every selected set, over many seeds, fits the exact probabilities
//! (computed by enumerating every order of drawing) by a chi-square test. Seeds are fixed, so
//! the test is deterministic; a wrong sampler (with replacement, proportional to loss instead of
//! exp(loss), Gumbel noise of the wrong sign...) fails it by a wide margin.

use std::collections::HashMap;

use tinyforge_sampler::{Level, ListOrder, Method, Plan, SelectConfig};

use crate::{single_pool_plan, write_losses};

const LOSSES: [f64; 6] = [0.0, 0.3, 0.6, 0.9, 1.2, 1.5];

/// Probability that successive sampling of 3 of 6 items, each draw ∝ weight among the rest,
/// yields each 3-set (as a bit mask).
fn exact_set_probabilities(weights: &[f64]) -> HashMap<u32, f64> {
    let mut out = HashMap::new();
    fn walk(weights: &[f64], taken: u32, depth: usize, p: f64, out: &mut HashMap<u32, f64>) {
        if depth == 3 {
            *out.entry(taken).or_insert(0.0) += p;
            return;
        }
        let rest: f64 = (0..weights.len())
            .filter(|i| taken & (1 << i) == 0)
            .map(|i| weights[i])
            .sum();
        for i in 0..weights.len() {
            if taken & (1 << i) == 0 {
                walk(
                    weights,
                    taken | (1 << i),
                    depth + 1,
                    p * weights[i] / rest,
                    out,
                );
            }
        }
    }
    walk(weights, 0, 0, 1.0, &mut out);
    out
}

fn chi_square(
    level: Level,
    method: Method,
    temperature: f64,
    draws: u64,
) -> (f64, HashMap<u32, f64>, HashMap<u32, u64>) {
    let dir = tempfile::tempdir().unwrap();
    // Batches of one unit, so batch-level and unit-level draws see the same six items.
    let plan = single_pool_plan(dir.path(), 6, 1, 1);
    let losses = write_losses(&plan, &dir.path().join("l.parquet"), |_, u| {
        LOSSES[u as usize] as f32
    });
    let weights: Vec<f64> = LOSSES
        .iter()
        .map(|&l| {
            if method == Method::Uniform {
                1.0
            } else {
                (l / temperature).exp()
            }
        })
        .collect();
    let exact = exact_set_probabilities(&weights);
    assert_eq!(exact.len(), 20);
    let mut counts: HashMap<u32, u64> = HashMap::new();
    let out = dir.path().join("next.json");
    for seed in 0..draws {
        let config = SelectConfig {
            method,
            level,
            fraction: 0.5,
            temperature,
            seed,
            order: ListOrder::Kept,
        };
        let progress = tinyforge_task::Silent;
        tinyforge_sampler::select_next_round(
            &plan,
            std::slice::from_ref(&losses),
            &out,
            &config,
            &progress,
        )
        .unwrap();
        let next = Plan::open(&out).unwrap();
        let mask = (0..next.num_positions())
            .map(|i| 1u32 << next.unit_at(i).unwrap().unit)
            .fold(0, |a, b| a | b);
        assert_eq!(mask.count_ones(), 3);
        *counts.entry(mask).or_insert(0) += 1;
    }
    let statistic = exact
        .iter()
        .map(|(mask, &p)| {
            let expected = p * draws as f64;
            let observed = *counts.get(mask).unwrap_or(&0) as f64;
            (observed - expected).powi(2) / expected
        })
        .sum();
    (statistic, exact, counts)
}

/// 99.9% quantile of chi-square with 19 degrees of freedom (20 possible sets).
const CRITICAL_19_DF: f64 = 43.82;

#[test]
fn batch_softmax_matches_successive_sampling() {
    let (statistic, exact, counts) = chi_square(Level::Batch, Method::Softmax, 1.0, 2500);
    assert!(
        statistic < CRITICAL_19_DF,
        "chi-square {statistic:.2}; exact {exact:?}, observed {counts:?}"
    );
    // Per-item inclusion frequencies follow too: item 5 (highest loss) most, item 0 least.
    let inclusion = |item: u32| {
        counts
            .iter()
            .filter(|(m, _)| *m & (1 << item) != 0)
            .map(|(_, c)| c)
            .sum::<u64>()
    };
    assert!(
        inclusion(5) > inclusion(0) + 500,
        "{} vs {}",
        inclusion(5),
        inclusion(0)
    );
}

#[test]
fn unit_softmax_with_temperature_matches_successive_sampling() {
    let (statistic, exact, counts) = chi_square(Level::Unit, Method::Softmax, 0.5, 2500);
    assert!(
        statistic < CRITICAL_19_DF,
        "chi-square {statistic:.2}; exact {exact:?}, observed {counts:?}"
    );
}

#[test]
fn uniform_matches_equal_weights() {
    let (statistic, exact, counts) = chi_square(Level::Batch, Method::Uniform, 1.0, 1500);
    assert!(
        statistic < CRITICAL_19_DF,
        "chi-square {statistic:.2}; exact {exact:?}, observed {counts:?}"
    );
}

/// The test has power: probabilities proportional to the loss itself (a plausible bug) are
/// rejected against the same observations.
#[test]
fn the_test_rejects_a_wrong_distribution() {
    let (_, _, counts) = chi_square(Level::Batch, Method::Softmax, 1.0, 2500);
    let wrong = exact_set_probabilities(&LOSSES.iter().map(|l| l + 0.1).collect::<Vec<_>>());
    let statistic: f64 = wrong
        .iter()
        .map(|(mask, &p)| {
            let expected = p * 2500.0;
            (*counts.get(mask).unwrap_or(&0) as f64 - expected).powi(2) / expected
        })
        .sum();
    assert!(
        statistic > CRITICAL_19_DF * 3.0,
        "chi-square {statistic:.2} against a wrong model"
    );
}
