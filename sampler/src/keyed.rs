//! Keyed pseudo-randomness that needs no state: a mixing hash, a keyed bijective permutation of
//! `[0, n)` (a balanced Feistel network with cycle-walking) and Gumbel noise. Everything the
//! sampler draws is a pure function of a key derived from (seed, round, ...), so a plan is never
//! materialised, any position is computed in O(1), and results do not depend on the order in
//! which loss rows arrive.

/// The splitmix64 finaliser: a fast bijective 64-bit mixer with full avalanche.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derives one key from a list of parts (seed, round, a domain tag, ...). Each part goes through
/// the mixer so that (a, b) and (b, a) give unrelated keys.
pub(crate) fn derive_key(parts: &[u64]) -> u64 {
    let mut h = 0x6a09_e667_f3bc_c909_u64;
    for &p in parts {
        h = mix64(h ^ mix64(p.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    h
}

/// Domain tags keep the keys of different uses apart even with the same seed and round.
pub(crate) mod tag {
    pub const POOL_ORDER: u64 = 0x706f_6f6c; // "pool"
    pub const SLOTS: u64 = 0x736c_6f74; // "slot"
    pub const GUMBEL_BATCH: u64 = 0x6762_6174; // "gbat"
    pub const GUMBEL_UNIT: u64 = 0x6775_6e69; // "guni"
    pub const SHUFFLE: u64 = 0x7368_7566; // "shuf"
    pub const HELD_OUT: u64 = 0x6865_6c64; // "held"
}

/// Six rounds: four already give a pseudo-random permutation for a random round function
/// (Luby-Rackoff); two more buy margin against the weak structure of a cheap round function.
const ROUNDS: usize = 6;

/// A keyed bijection of `[0, n)`. Encrypting with a Feistel network over the smallest even
/// number of bits that holds `n - 1` gives a bijection of `[0, 2^bits)`; cycle-walking (apply
/// again until the value falls below `n`) restricts it to a bijection of `[0, n)`. The domain is
/// less than `4n`, so a walk takes under four steps on average.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    half_mask: u64,
    round_keys: [u64; ROUNDS],
}

impl Permutation {
    pub fn new(n: u64, key: u64) -> Self {
        let bits = if n <= 1 {
            2
        } else {
            64 - (n - 1).leading_zeros()
        };
        let half_bits = bits.div_ceil(2).max(1);
        let half_mask = if half_bits >= 64 {
            u64::MAX
        } else {
            (1u64 << half_bits) - 1
        };
        let mut round_keys = [0u64; ROUNDS];
        for (i, k) in round_keys.iter_mut().enumerate() {
            *k = derive_key(&[key, i as u64]);
        }
        Permutation {
            n,
            half_bits,
            half_mask,
            round_keys,
        }
    }

    /// The size of the domain.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    #[inline]
    fn round_fn(&self, round: usize, half: u64) -> u64 {
        mix64(half ^ self.round_keys[round]) & self.half_mask
    }

    #[inline]
    fn encrypt(&self, x: u64) -> u64 {
        let mut left = x >> self.half_bits;
        let mut right = x & self.half_mask;
        for round in 0..ROUNDS {
            let next = left ^ self.round_fn(round, right);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }

    #[inline]
    fn decrypt(&self, y: u64) -> u64 {
        let mut left = y >> self.half_bits;
        let mut right = y & self.half_mask;
        for round in (0..ROUNDS).rev() {
            let previous = right ^ self.round_fn(round, left);
            right = left;
            left = previous;
        }
        (left << self.half_bits) | right
    }

    /// The value at index `x` (`x < n`).
    #[inline]
    pub fn apply(&self, x: u64) -> u64 {
        debug_assert!(x < self.n, "index {x} outside a permutation of {}", self.n);
        let mut y = self.encrypt(x);
        while y >= self.n {
            y = self.encrypt(y);
        }
        y
    }

    /// The index whose value is `y` (`y < n`): the inverse of [`Permutation::apply`].
    #[inline]
    pub fn invert(&self, y: u64) -> u64 {
        debug_assert!(y < self.n, "value {y} outside a permutation of {}", self.n);
        let mut x = self.decrypt(y);
        while x >= self.n {
            x = self.decrypt(x);
        }
        x
    }
}

/// A uniform number in the open interval (0, 1) from 53 bits of a hash.
#[inline]
pub(crate) fn unit_interval(hash: u64) -> f64 {
    ((hash >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// Standard Gumbel noise, `-ln(-ln U)`, keyed by a hash so it is reproducible and independent
/// of the order in which items are seen.
#[inline]
pub(crate) fn gumbel(hash: u64) -> f64 {
    -(-unit_interval(hash).ln()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_permutations_are_bijections() {
        for n in 0..300u64 {
            let p = Permutation::new(n, derive_key(&[7, n]));
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.apply(x);
                assert!(y < n);
                assert!(!seen[y as usize], "n={n}: {y} twice");
                seen[y as usize] = true;
                assert_eq!(p.invert(y), x);
            }
        }
    }

    #[test]
    fn large_domains_round_trip() {
        for n in [1u64 << 32, (1 << 40) + 17, u64::MAX / 3, u64::MAX] {
            let p = Permutation::new(n, 99);
            for x in [0, 1, n / 2, n - 1] {
                let y = p.apply(x);
                assert!(y < n);
                assert_eq!(p.invert(y), x);
            }
        }
    }

    #[test]
    fn different_keys_give_different_orders() {
        let a = Permutation::new(1000, 1);
        let b = Permutation::new(1000, 2);
        let same = (0..1000).filter(|&x| a.apply(x) == b.apply(x)).count();
        // Two independent random permutations agree in about one place.
        assert!(same < 10, "{same} fixed agreements");
    }

    #[test]
    fn gumbel_mean_is_euler_gamma() {
        let n = 200_000u64;
        let mean = (0..n).map(|i| gumbel(mix64(i))).sum::<f64>() / n as f64;
        assert!((mean - 0.577_215_66).abs() < 0.01, "mean {mean}");
    }
}
