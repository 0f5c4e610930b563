//! The k best of a stream in O(k) memory and amortised O(1) per item: a buffer of at most
//! 1.5·k candidates is cut back to the best k (quickselect) whenever it fills, and the k-th best
//! seen so far becomes a floor that rejects most later items at the cost of one comparison.
//! This beats a binary heap when k is a large fraction of the stream (the sampler keeps half
//! of 10^9 units), where a heap would sift on a large share of the pushes.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored {
    pub key: f64,
    pub id: u64,
    /// Carried along, not ranked.
    pub payload: u64,
}

/// Higher key first; equal keys by lower id, so the result never depends on arrival order.
#[inline]
fn rank(a: &Scored, b: &Scored) -> Ordering {
    b.key.total_cmp(&a.key).then(a.id.cmp(&b.id))
}

pub(crate) struct TopK {
    k: usize,
    capacity: usize,
    items: Vec<Scored>,
    floor: Option<Scored>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> TopK {
        let capacity = k + (k / 2).max(4096);
        // Reserved once: the allocator maps pages as they are written, so RSS follows use, and
        // the buffer never doubles past 1.5·k.
        TopK {
            k,
            capacity,
            items: Vec::with_capacity(capacity),
            floor: None,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, key: f64, id: u64, payload: u64) {
        let item = Scored { key, id, payload };
        if let Some(floor) = &self.floor
            && rank(&item, floor) != Ordering::Less
        {
            return;
        }
        self.items.push(item);
        if self.items.len() >= self.capacity {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.k == 0 {
            self.items.clear();
            return;
        }
        if self.items.len() > self.k {
            self.items.select_nth_unstable_by(self.k - 1, rank);
            self.items.truncate(self.k);
        }
        if self.items.len() == self.k {
            self.floor = self.items.iter().copied().max_by(rank);
        }
    }

    /// Ids of the best k (or all, if fewer came), in no particular order.
    pub(crate) fn into_ids(mut self) -> Vec<u64> {
        self.cut();
        self.items.into_iter().map(|s| s.id).collect()
    }

    /// The best k (or all, if fewer came), in no particular order.
    pub(crate) fn into_items(mut self) -> Vec<Scored> {
        self.cut();
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_k_with_ties_by_id() {
        let keys: Vec<f64> = (0..20_000u64).map(|i| ((i * 7919) % 1000) as f64).collect();
        for k in [0, 1, 10, 5000, 19_999, 20_000, 30_000] {
            let mut top = TopK::new(k);
            for (i, &key) in keys.iter().enumerate() {
                top.push(key, i as u64, 0);
            }
            let mut got = top.into_ids();
            got.sort_unstable();
            let mut all: Vec<Scored> = keys
                .iter()
                .enumerate()
                .map(|(i, &key)| Scored {
                    key,
                    id: i as u64,
                    payload: 0,
                })
                .collect();
            all.sort_by(rank);
            let mut want: Vec<u64> = all.iter().take(k).map(|s| s.id).collect();
            want.sort_unstable();
            assert_eq!(got, want, "k={k}");
        }
    }
}
