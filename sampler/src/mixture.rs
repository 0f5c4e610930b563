//! Per-batch apportionment of a mixture of pools, in closed form.
//!
//! Pool `p` has integer weight parts `a_p` out of `D = Σ a_p`; a batch holds `B` units. Pool `p`
//! gets `floor(a_p·B / D)` units of every batch plus, in some batches, one extra: with
//! `f_p = (a_p·B mod D) / D` and prefix sums `F_p = Σ_{q<p} f_q`, the number of units pool `p`
//! has received before step `s` is
//!
//! `C_p(s) = s·floor(a_p·B / D) + floor(s·F_{p+1}) - floor(s·F_p)`.
//!
//! Every batch sums to exactly `B` (the prefix sums telescope), and pool `p`'s running total
//! never drifts by a whole unit: `|C_p(s) - s·w_p·B| < 1` for every `s`. **Tolerance:** a batch,
//! or any run of consecutive batches, holds within 2 units (exclusive) of its exact share
//! `w_p·B·batches` of pool `p`, and the round as a whole within 1. It is a pure
//! function of `s`, so any step is computed in O(pools) without replaying the earlier ones.

use crate::error::{Error, Result};

/// Integer weights resolution when weights are not whole numbers: 10^9 parts, so that
/// decimal weights are exact.
const FRACTION_PARTS: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct Mixture {
    batch: u64,
    denominator: u128,
    base: Vec<u64>,
    /// `F_p` numerators over `denominator`, with one more entry at the end (`F_P = extras·D`).
    prefix: Vec<u128>,
    parts: Vec<u64>,
}

/// Turns weights into integer parts: whole-number weights are kept exactly (so 1:1 or unit counts
/// are exact); others are scaled to 10^9 parts (nearest, then largest remainder).
pub(crate) fn weight_parts(weights: &[f64]) -> Result<Vec<u64>> {
    if weights.is_empty() {
        return Err(Error::Config("a plan needs at least one pool".into()));
    }
    for (i, &w) in weights.iter().enumerate() {
        if !(w.is_finite() && w > 0.0) {
            return Err(Error::Config(format!(
                "pool {i} has weight {w}; weights must be positive finite numbers"
            )));
        }
    }
    if weights
        .iter()
        .all(|&w| w.fract() == 0.0 && w <= (1u64 << 50) as f64)
    {
        return Ok(weights.iter().map(|&w| w as u64).collect());
    }
    let total: f64 = weights.iter().sum();
    let quotas: Vec<f64> = weights
        .iter()
        .map(|w| w / total * FRACTION_PARTS as f64)
        .collect();
    // Nearest integer first, so decimal weights (0.7, 0.15, ...) come out exact at 10^9 parts;
    // then the sum is fixed by the largest (or smallest) remainders, lower pool index first.
    let mut parts: Vec<u64> = quotas.iter().map(|q| q.round() as u64).collect();
    let assigned: u64 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (quotas[a] - parts[a] as f64, quotas[b] - parts[b] as f64);
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    if assigned < FRACTION_PARTS {
        for &i in order.iter().take((FRACTION_PARTS - assigned) as usize) {
            parts[i] += 1;
        }
    } else {
        for &i in order
            .iter()
            .rev()
            .take((assigned - FRACTION_PARTS) as usize)
        {
            parts[i] = parts[i].saturating_sub(1);
        }
    }
    if let Some(i) = parts.iter().position(|&p| p == 0) {
        return Err(Error::Config(format!(
            "pool {i} has a weight too small to ever be drawn"
        )));
    }
    Ok(parts)
}

impl Mixture {
    pub(crate) fn new(parts: &[u64], batch: u64) -> Mixture {
        let denominator: u128 = parts.iter().map(|&a| a as u128).sum();
        let mut base = Vec::with_capacity(parts.len());
        let mut prefix = Vec::with_capacity(parts.len() + 1);
        let mut acc = 0u128;
        prefix.push(0);
        for &a in parts {
            let share = a as u128 * batch as u128;
            base.push((share / denominator) as u64);
            acc += share % denominator;
            prefix.push(acc);
        }
        Mixture {
            batch,
            denominator,
            base,
            prefix,
            parts: parts.to_vec(),
        }
    }

    /// The first pool whose share is under one unit per batch, with that share in units. The
    /// allocation is monotone (every batch holds a whole, non-negative number of each pool's
    /// units, within 2 of weight x batch) only when there is none: a pool's per-step count is
    /// its `base` share plus or minus one extra.
    pub(crate) fn pool_under_one_unit(&self) -> Option<(usize, f64)> {
        let p = self.base.iter().position(|&b| b == 0)?;
        let share = self.parts[p] as f64 * self.batch as f64 / self.denominator as f64;
        Some((p, share))
    }

    pub(crate) fn pools(&self) -> usize {
        self.base.len()
    }

    /// Units of pool `p` in steps `0..s`.
    #[inline]
    pub(crate) fn cumulative(&self, p: usize, s: u64) -> u64 {
        let s128 = s as u128;
        let hi = s128 * self.prefix[p + 1] / self.denominator;
        let lo = s128 * self.prefix[p] / self.denominator;
        s * self.base[p] + (hi - lo) as u64
    }

    /// Units of pool `p` in batch `s`.
    #[inline]
    pub(crate) fn count(&self, p: usize, s: u64) -> u64 {
        self.cumulative(p, s + 1) - self.cumulative(p, s)
    }

    /// The step whose batch holds the `k`-th unit (0-based) of pool `p`'s stream, and the
    /// unit's offset inside the pool's part of that batch.
    pub(crate) fn locate(&self, p: usize, k: u64) -> (u64, u64) {
        // `C_p(s)` is within 1 of `s·w_p·B`, so the answer is next to `k / (w_p·B)`.
        let rate = self.parts[p] as u128 * self.batch as u128;
        let mut s = ((k as u128 * self.denominator) / rate) as u64;
        s = s.saturating_sub(2);
        while self.cumulative(p, s + 1) <= k {
            s += 1;
        }
        while s > 0 && self.cumulative(p, s) > k {
            s -= 1;
        }
        (s, k - self.cumulative(p, s))
    }

    /// The number of whole steps before some pool would need more than `units[p]` units.
    pub(crate) fn steps_until_exhausted(&self, units: &[u64]) -> u64 {
        (0..self.pools())
            .map(|p| self.steps_until_pool_exhausted(p, units[p]))
            .min()
            .unwrap_or(0)
    }

    /// The largest `s` with `C_p(s) <= units`.
    pub(crate) fn steps_until_pool_exhausted(&self, p: usize, units: u64) -> u64 {
        let rate = self.parts[p] as u128 * self.batch as u128;
        let mut hi =
            (((units as u128 + 2) * self.denominator) / rate + 2).min(u64::MAX as u128) as u64;
        let mut lo = 0u64;
        // Invariant: C_p(lo) <= units < C_p(hi).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.cumulative(p, mid) <= units {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_floor_or_ceil_and_sum_to_the_batch() {
        for (weights, batch) in [
            (vec![1.0, 1.0], 8u64),
            (vec![1.0, 1.0, 1.0], 8),
            (vec![0.7, 0.2, 0.1], 10),
            (vec![0.5, 0.3, 0.15, 0.05], 7),
            (vec![3.0, 1000.0], 5),
        ] {
            let parts = weight_parts(&weights).unwrap();
            let mix = Mixture::new(&parts, batch);
            let total: f64 = weights.iter().sum();
            for s in 0..500 {
                let mut sum = 0;
                for (p, weight) in weights.iter().enumerate() {
                    let exact = weight / total * batch as f64;
                    let c = mix.count(p, s);
                    assert!(
                        (c as f64 - exact).abs() < 2.0 - 1e-9,
                        "pool {p} step {s}: {c} for {exact}"
                    );
                    let drift = mix.cumulative(p, s + 1) as f64 - exact * (s + 1) as f64;
                    assert!(drift.abs() < 1.0 + 1e-6, "drift {drift}");
                    sum += c;
                }
                assert_eq!(sum, batch);
            }
        }
    }

    #[test]
    fn locate_inverts_cumulative() {
        let mix = Mixture::new(&weight_parts(&[0.6, 0.3, 0.1]).unwrap(), 9);
        for p in 0..3 {
            for k in 0..2000 {
                let (s, offset) = mix.locate(p, k);
                assert!(offset < mix.count(p, s));
                assert_eq!(mix.cumulative(p, s) + offset, k);
            }
        }
    }

    #[test]
    fn exhaustion() {
        let mix = Mixture::new(&[1, 1], 4);
        assert_eq!(mix.steps_until_exhausted(&[10, 100]), 5);
        assert_eq!(mix.steps_until_pool_exhausted(1, 100), 50);
    }

    #[test]
    fn bad_weights_are_refused() {
        assert!(weight_parts(&[]).is_err());
        assert!(weight_parts(&[1.0, 0.0]).is_err());
        assert!(weight_parts(&[1.0, f64::NAN]).is_err());
    }
}
