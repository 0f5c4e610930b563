//! Round plans given by a keyed permutation: every unit of every pool in a seeded order that is
//! never materialised. Position `i` (step `i / B`, slot `i % B`) maps to a unit in O(pools), and a
//! unit maps back to its position(s) just as fast, which is what the sampler needs to group a
//! loss table into batches.

use crate::heldout::Skip;
use crate::keyed::{Permutation, derive_key, tag};
use crate::mixture::Mixture;
use crate::plan::{Exhausted, Pool, UnitRef};

#[derive(Debug, Clone)]
pub(crate) struct RoundOne {
    seed: u64,
    round: u16,
    batch: u64,
    exhausted: Exhausted,
    /// Drawable units of each pool (held-out ones excluded).
    units: Vec<u64>,
    /// Each pool's map from drawable index to unit id, around its held-out units.
    skips: Vec<Skip>,
    mixture: Mixture,
    /// Epoch-0 permutation of each pool; later epochs (cycle policy) are keyed by the epoch too.
    first_epoch: Vec<Permutation>,
    /// Units drawn from each pool over the round (counting repeats), cached for the hot path.
    drawn: Vec<u64>,
}

impl RoundOne {
    pub(crate) fn new(
        seed: u64,
        round: u16,
        batch: u64,
        steps: u64,
        exhausted: Exhausted,
        pools: &[Pool],
        parts: &[u64],
    ) -> RoundOne {
        let units: Vec<u64> = pools.iter().map(Pool::drawable).collect();
        let skips = pools.iter().map(|p| Skip::new(&p.held_out)).collect();
        let mixture = Mixture::new(parts, batch);
        let first_epoch = (0..units.len())
            .map(|p| pool_permutation(seed, round, p, 0, units[p]))
            .collect();
        let drawn = (0..units.len())
            .map(|p| mixture.cumulative(p, steps))
            .collect();
        RoundOne {
            seed,
            round,
            batch,
            exhausted,
            units,
            skips,
            mixture,
            first_epoch,
            drawn,
        }
    }

    /// Steps a round may have before the first pool runs out (the `stop` policy's length).
    pub(crate) fn steps_until_exhausted(parts: &[u64], units: &[u64], batch: u64) -> u64 {
        Mixture::new(parts, batch).steps_until_exhausted(units)
    }

    /// Steps until every unit of every pool has been drawn at least once (the `cycle` policy's
    /// default length: smaller pools are repeated meanwhile).
    pub(crate) fn steps_until_all_seen(parts: &[u64], units: &[u64], batch: u64) -> u64 {
        let mix = Mixture::new(parts, batch);
        (0..units.len())
            .map(|p| {
                let s = mix.steps_until_pool_exhausted(p, units[p]);
                if mix.cumulative(p, s) < units[p] {
                    s + 1
                } else {
                    s
                }
            })
            .max()
            .unwrap_or(0)
    }

    fn permutation(&self, pool: usize, epoch: u64) -> Permutation {
        if epoch == 0 {
            self.first_epoch[pool].clone()
        } else {
            pool_permutation(self.seed, self.round, pool, epoch, self.units[pool])
        }
    }

    fn slots(&self, step: u64) -> Permutation {
        Permutation::new(
            self.batch,
            derive_key(&[self.seed, self.round as u64, tag::SLOTS, step]),
        )
    }

    /// Pool and index in that pool's stream of plan position `position`.
    #[inline]
    fn stream_index(&self, position: u64) -> (usize, u64) {
        if self.mixture.pools() == 1 {
            return (0, position);
        }
        let step = position / self.batch;
        // Shuffle the slots inside the batch so every rank's slice mixes the pools too.
        let slot = self.slots(step).apply(position % self.batch);
        let mut start = 0;
        for p in 0..self.mixture.pools() {
            let count = self.mixture.count(p, step);
            if slot < start + count {
                return (p, self.mixture.cumulative(p, step) + slot - start);
            }
            start += count;
        }
        unreachable!("batch counts sum to the batch size")
    }

    #[inline]
    pub(crate) fn unit_at(&self, position: u64) -> UnitRef {
        let (pool, k) = self.stream_index(position);
        let n = self.units[pool];
        let (epoch, index) = (k / n, k % n);
        let unit = if epoch == 0 {
            self.first_epoch[pool].apply(index)
        } else {
            self.permutation(pool, epoch).apply(index)
        };
        UnitRef {
            pool: pool as u16,
            unit: self.skips[pool].unit(unit),
        }
    }

    /// Whether the position repeats a unit already drawn earlier in the round (cycle policy).
    pub(crate) fn is_repeat(&self, position: u64) -> bool {
        let (pool, k) = self.stream_index(position);
        k >= self.units[pool]
    }

    /// Units of pool `p` that the round draws (counting repeats).
    pub(crate) fn drawn(&self, pool: usize) -> u64 {
        self.drawn[pool]
    }

    /// Distinct units the round trains on.
    pub(crate) fn distinct_units(&self) -> u64 {
        (0..self.units.len())
            .map(|p| self.drawn(p).min(self.units[p]))
            .sum()
    }

    /// Appends every position at which `unit` is trained (none if the round skips it).
    #[inline]
    pub(crate) fn positions_of(&self, unit: UnitRef, out: &mut Vec<u64>) {
        let pool = unit.pool as usize;
        let Some(drawable) = self.skips[pool].index(unit.unit) else {
            return; // held out
        };
        let n = self.units[pool];
        let drawn = self.drawn(pool);
        let epochs = if self.exhausted == Exhausted::Stop {
            1
        } else {
            drawn.div_ceil(n).max(1)
        };
        for epoch in 0..epochs {
            let index = if epoch == 0 {
                self.first_epoch[pool].invert(drawable)
            } else {
                self.permutation(pool, epoch).invert(drawable)
            };
            let k = epoch * n + index;
            if k >= drawn {
                continue;
            }
            if self.mixture.pools() == 1 {
                out.push(k);
                continue;
            }
            let (step, offset) = self.mixture.locate(pool, k);
            let start: u64 = (0..pool).map(|q| self.mixture.count(q, step)).sum();
            let slot = self.slots(step).invert(start + offset);
            out.push(step * self.batch + slot);
        }
    }
}

fn pool_permutation(seed: u64, round: u16, pool: usize, epoch: u64, units: u64) -> Permutation {
    Permutation::new(
        units,
        derive_key(&[seed, round as u64, tag::POOL_ORDER, pool as u64, epoch]),
    )
}
