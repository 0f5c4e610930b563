//! A small least-recently-used map, shared by the frame cache and the open-file cache.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;

/// Not thread-safe on its own; [`SharedLru`] puts it behind a mutex.
pub(crate) struct Lru<K, V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let (value, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.clone());
        Some(value.clone())
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if let Some((_, used)) = self.entries.insert(key.clone(), (value, self.tick)) {
            self.order.remove(&used);
        }
        self.order.insert(self.tick, key);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// An [`Lru`] behind a mutex, cloned values out (values are `Arc`s, so clones are cheap).
pub(crate) struct SharedLru<K, V>(Mutex<Lru<K, V>>);

impl<K: Hash + Eq + Clone, V: Clone> SharedLru<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Mutex::new(Lru::new(capacity)))
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(key)
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert(1, "a");
        lru.insert(2, "b");
        assert_eq!(lru.get(&1), Some("a"));
        lru.insert(3, "c");
        assert_eq!(lru.get(&2), None, "2 was the least recently used");
        assert_eq!(lru.get(&1), Some("a"));
        assert_eq!(lru.get(&3), Some("c"));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut lru = Lru::new(0);
        lru.insert(1, 1);
        assert_eq!(lru.get(&1), None);
    }
}
