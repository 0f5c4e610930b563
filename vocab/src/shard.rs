//! `--shard i/n`: which part of the input one cluster task reads.

use std::fmt;
use std::str::FromStr;

/// Task `index` of `count` (0-based). The default, `0/1`, is the whole input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Whether work unit number `unit` (a row group in input order) belongs to this task.
    /// Round-robin rather than contiguous ranges keeps tasks balanced when files differ in size.
    pub fn owns(&self, unit: usize) -> bool {
        unit % self.count as usize == self.index as usize
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("shard {s:?} is not i/n with 0 <= i < n (for example 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let shard: Shard = "2/4".parse().unwrap();
        assert_eq!(shard, Shard { index: 2, count: 4 });
        assert_eq!(shard.to_string(), "2/4");
        assert!("4/4".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn shards_partition_units() {
        for unit in 0..20 {
            let owners = (0..3)
                .filter(|&i| Shard { index: i, count: 3 }.owns(unit))
                .count();
            assert_eq!(owners, 1);
        }
    }
}
