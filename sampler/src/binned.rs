//! Random updates of a large table, applied in cache-sized bins.
//!
//! The loss rows of a round-1 plan arrive in permuted order, so marking each row's unit in the
//! one-bit-per-unit "seen" map (or adding its loss to its batch's sum) is a random access into
//! a table of 10^8-10^9 entries: one cache and TLB miss per row, which measured as half of the
//! selection time at 10^8 units. Instead each update waits in the bin of its slice of the table
//! (a slice small enough to stay in cache) and a bin is applied when it fills. Updates to the
//! same index keep their arrival order, so sums come out bit for bit as in row order.

pub(crate) struct Binned<T> {
    shift: u32,
    capacity: usize,
    /// Per bin: the offsets (index minus the bin's first index) and values of its updates.
    /// An update of the one-bit table carries no value and takes 4 bytes.
    bins: Vec<Vec<(u32, T)>>,
}

/// Table bytes one bin covers: an L1 cache, so that a bin's updates share cache lines (4096
/// updates over 512 lines) instead of each missing.
const BIN_TABLE_BYTES: u64 = 32 << 10;
/// Updates a bin holds before it is applied.
const BIN_UPDATES: usize = 4096;

impl<T: Copy> Binned<T> {
    /// Bins over indices `[0, len)` of a table whose entries take `bits_per_entry` bits.
    pub(crate) fn new(len: u64, bits_per_entry: u64) -> Binned<T> {
        let per_bin = (BIN_TABLE_BYTES * 8 / bits_per_entry.max(1)).max(1);
        let shift = per_bin.ilog2();
        let bins = (len >> shift) as usize + 1;
        Binned {
            shift,
            capacity: BIN_UPDATES,
            bins: (0..bins).map(|_| Vec::new()).collect(),
        }
    }

    /// Queues an update of `index`; applies the bin (all its updates, in arrival order) when it
    /// is full.
    #[inline]
    pub(crate) fn push<E>(
        &mut self,
        index: u64,
        value: T,
        apply: &mut impl FnMut(u64, T) -> Result<(), E>,
    ) -> Result<(), E> {
        let number = index >> self.shift;
        let bin = &mut self.bins[number as usize];
        if bin.capacity() == 0 {
            bin.reserve_exact(self.capacity);
        }
        bin.push(((index & ((1 << self.shift) - 1)) as u32, value));
        if bin.len() == self.capacity {
            let base = number << self.shift;
            for (offset, value) in bin.drain(..) {
                apply(base | offset as u64, value)?;
            }
        }
        Ok(())
    }

    /// Applies every queued update.
    pub(crate) fn flush<E>(
        &mut self,
        apply: &mut impl FnMut(u64, T) -> Result<(), E>,
    ) -> Result<(), E> {
        for (number, bin) in self.bins.iter_mut().enumerate() {
            let base = (number as u64) << self.shift;
            for (offset, value) in bin.drain(..) {
                apply(base | offset as u64, value)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_every_update_once_in_arrival_order_per_index() {
        let len = 3_000_000u64;
        let mut binned = Binned::<u64>::new(len, 64);
        let mut log: Vec<Vec<u64>> = vec![Vec::new(); 7];
        let mut seen = 0u64;
        let mut apply = |index: u64, value: u64| -> Result<(), ()> {
            seen += 1;
            if index < 7 {
                log[index as usize].push(value);
            }
            Ok(())
        };
        for i in 0..200_000u64 {
            let index = (i * 2_654_435_761) % len;
            binned.push(index, i, &mut apply).unwrap();
            binned.push(i % 7, i, &mut apply).unwrap();
        }
        binned.flush(&mut apply).unwrap();
        assert_eq!(seen, 400_000);
        for (index, values) in log.iter().enumerate() {
            let mut sorted = values.clone();
            sorted.sort_unstable();
            assert_eq!(values, &sorted, "index {index} out of order");
        }
    }
}
