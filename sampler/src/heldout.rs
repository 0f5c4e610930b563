//! Held-out units: a seeded sample spread over a pool, which no round's plan ever draws.
//!
//! The sample is stratified: the pool's `n` units are cut into `k` equal runs and one unit is
//! drawn from each, keyed by (seed, run). The token stream of a dataset is the concatenation of
//! its sources in ingest order (poetry, then help pages, then speeches, then code, say), so a
//! tail or a plain prefix represents one source; one unit per `n / k` units represents each
//! source by its share of the stream, whatever the order. A pool records its held-out ids
//! ([`crate::Pool::held_out`]); round 1's permutation runs over the other units, and later rounds
//! select among units round 1 drew, so the held-out ones are never trained on.
//!
//! [`HeldOut`] is the run folder's record of the sample (`heldout.json`): what validation loss
//! during training and `tinyforge eval --held-out` afterwards score.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keyed::{derive_key, tag};

pub const HELD_OUT_FORMAT: &str = "tinyforge.heldout";
pub const HELD_OUT_VERSION: u32 = 1;
/// The record's file name inside a training run folder.
pub const HELD_OUT_FILE: &str = "heldout.json";

/// `k` unit ids of `[0, n)`, sorted, one drawn from each of `k` equal runs (`k <= n`; fewer
/// asked than 1 gives none).
pub fn stratified_sample(n: u64, k: u64, seed: u64) -> Vec<u64> {
    let k = k.min(n);
    (0..k)
        .map(|i| {
            let lo = (u128::from(i) * u128::from(n) / u128::from(k)) as u64;
            let hi = (u128::from(i + 1) * u128::from(n) / u128::from(k)) as u64;
            lo + derive_key(&[seed, tag::HELD_OUT, i]) % (hi - lo)
        })
        .collect()
}

/// The map between a pool's drawable units (indices `[0, n - held)`) and its unit ids, skipping
/// the held-out ids. O(log held) each way.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Skip {
    /// Sorted, distinct held-out unit ids.
    held: Vec<u64>,
}

impl Skip {
    pub(crate) fn new(held: &[u64]) -> Skip {
        Skip {
            held: held.to_vec(),
        }
    }

    /// The unit id of drawable index `i`: `i` plus the held-out ids at or before it.
    #[inline]
    pub(crate) fn unit(&self, i: u64) -> u64 {
        // held[j] - j drawable units come before held[j], a non-decreasing sequence; every
        // held-out id with held[j] - j <= i lies before the answer.
        let (mut lo, mut hi) = (0, self.held.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.held[mid] - mid as u64 <= i {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        i + lo as u64
    }

    /// The drawable index of unit `u`, or None when it is held out.
    #[inline]
    pub(crate) fn index(&self, u: u64) -> Option<u64> {
        match self.held.binary_search(&u) {
            Ok(_) => None,
            Err(before) => Some(u - before as u64),
        }
    }
}

/// Checks that `held` is a sorted set of ids below `units` that leaves some unit to draw.
pub(crate) fn check_held_out(
    pool: &str,
    units: u64,
    held: &[u64],
) -> std::result::Result<(), String> {
    if let Some(w) = held.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "pool `{pool}`: held_out is not sorted and distinct ({} then {})",
            w[0], w[1]
        ));
    }
    if let Some(&last) = held.last()
        && last >= units
    {
        return Err(format!(
            "pool `{pool}`: held-out unit {last} is beyond its {units} units"
        ));
    }
    if held.len() as u64 >= units {
        return Err(format!(
            "pool `{pool}`: all {units} units are held out; none is left to train on"
        ));
    }
    Ok(())
}

/// A training run's held-out units (`heldout.json` in the run folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOut {
    pub format: String,
    pub version: u32,
    /// The token dataset the ids index, as the run was given it.
    pub dataset: String,
    /// Tokens per unit: unit `u` is tokens `[u·seq_len, u·seq_len + seq_len + 1)`.
    pub seq_len: u32,
    pub seed: u64,
    /// Units of the dataset at `seq_len`.
    pub units: u64,
    /// Sorted held-out unit ids ([`stratified_sample`]).
    pub held_out: Vec<u64>,
}

impl HeldOut {
    /// A stratified sample of `count` of the `units` units of `dataset`.
    pub fn draw(dataset: &str, seq_len: u32, units: u64, count: u64, seed: u64) -> HeldOut {
        HeldOut {
            format: HELD_OUT_FORMAT.into(),
            version: HELD_OUT_VERSION,
            dataset: dataset.to_owned(),
            seq_len,
            seed,
            units,
            held_out: stratified_sample(units, count, seed),
        }
    }

    pub fn read(path: &Path) -> Result<HeldOut> {
        let text = fs_err::read_to_string(path)?;
        let bad = |message: String| Error::HeldOutRecord {
            path: path.to_path_buf(),
            message,
        };
        let held: HeldOut = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if held.format != HELD_OUT_FORMAT || held.version != HELD_OUT_VERSION {
            return Err(bad(format!(
                "format `{}` version {}, expected `{HELD_OUT_FORMAT}` version {HELD_OUT_VERSION}",
                held.format, held.version
            )));
        }
        check_held_out("held-out", held.units, &held.held_out).map_err(bad)?;
        Ok(held)
    }

    /// Writes the record atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("held-out record serializes");
        Ok(tinyforge_task::write_atomic(path, text.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unit_from_each_run_sorted_and_seeded() {
        let sample = stratified_sample(1000, 10, 7);
        assert_eq!(sample.len(), 10);
        for (i, &u) in sample.iter().enumerate() {
            assert!(
                (i as u64 * 100..(i as u64 + 1) * 100).contains(&u),
                "{u} in run {i}"
            );
        }
        assert_eq!(sample, stratified_sample(1000, 10, 7));
        assert_ne!(sample, stratified_sample(1000, 10, 8));
        assert_eq!(stratified_sample(5, 9, 1), vec![0, 1, 2, 3, 4]);
        assert!(stratified_sample(5, 0, 1).is_empty());
    }

    #[test]
    fn skip_maps_drawable_indices_to_every_other_unit() {
        let held = [0, 3, 4, 9];
        let skip = Skip::new(&held);
        let units: Vec<u64> = (0..6).map(|i| skip.unit(i)).collect();
        assert_eq!(units, vec![1, 2, 5, 6, 7, 8]);
        for (i, &u) in units.iter().enumerate() {
            assert_eq!(skip.index(u), Some(i as u64));
        }
        for h in held {
            assert_eq!(skip.index(h), None);
        }
        assert_eq!(skip.unit(6), 10);
        let none = Skip::default();
        assert_eq!((none.unit(5), none.index(5)), (5, Some(5)));
    }

    #[test]
    fn bad_held_out_lists_are_named() {
        assert!(check_held_out("p", 10, &[1, 4]).is_ok());
        assert!(
            check_held_out("p", 10, &[4, 1])
                .unwrap_err()
                .contains("not sorted")
        );
        assert!(
            check_held_out("p", 10, &[2, 10])
                .unwrap_err()
                .contains("beyond its 10")
        );
        assert!(
            check_held_out("p", 2, &[0, 1])
                .unwrap_err()
                .contains("none is left")
        );
    }
}
