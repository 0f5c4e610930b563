//! Sequential iteration and prefetching of training windows on background threads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};
use crate::reader::Dataset;

/// Tokens of a stream range, one frame (or the part of it inside the range) per item. Reads
/// frames directly, bypassing the shared cache, so a scan does not evict the training working set.
pub struct Chunks<'a> {
    dataset: &'a Dataset,
    pos: u64,
    end: u64,
    failed: bool,
}

impl Dataset {
    /// Iterates over tokens [start, end) in order.
    pub fn chunks(&self, start: u64, end: u64) -> Chunks<'_> {
        let end = end.min(self.total_tokens());
        Chunks {
            dataset: self,
            pos: start.min(end),
            end,
            failed: false,
        }
    }

    /// Iterates over the whole stream.
    pub fn iter_chunks(&self) -> Chunks<'_> {
        self.chunks(0, self.total_tokens())
    }

    /// Reads `units` (training windows of `seq_len`) on `options.threads` background threads,
    /// yielding `(unit, tokens)` in the order of `units`. `units` may be lazy (a round plan that
    /// is never materialised); at most `options.depth` windows are in flight.
    pub fn prefetch<I>(
        self: &Arc<Self>,
        units: I,
        seq_len: usize,
        options: PrefetchOptions,
    ) -> Prefetch
    where
        I: IntoIterator<Item = u64>,
        I::IntoIter: Send + 'static,
    {
        Prefetch::start(self.clone(), Box::new(units.into_iter()), seq_len, options)
    }
}

impl Iterator for Chunks<'_> {
    type Item = Result<Vec<u32>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let result = self.next_chunk();
        self.failed = result.is_err();
        Some(result)
    }
}

impl Chunks<'_> {
    fn next_chunk(&mut self) -> Result<Vec<u32>> {
        let dataset = self.dataset;
        let shard = dataset.shard_of(self.pos);
        let index = dataset.index(shard)?;
        let local = self.pos - dataset.shard_start(shard);
        let frame = index.frame_starts.partition_point(|&s| s <= local) - 1;
        let skip = (local - index.frame_starts[frame]) as usize;
        let take = (index.frames[frame].tokens as usize - skip).min((self.end - self.pos) as usize);
        let mut out = vec![0u32; take];
        dataset.with_frame(shard, frame, &index, |bytes| {
            dataset.dtype().decode_frame(bytes, skip, &mut out)
        })?;
        self.pos += take as u64;
        Ok(out)
    }
}

/// Settings of [`Dataset::prefetch`].
#[derive(Debug, Clone, Copy)]
pub struct PrefetchOptions {
    pub threads: usize,
    /// Windows read ahead of the consumer (bounds memory).
    pub depth: usize,
}

impl Default for PrefetchOptions {
    fn default() -> Self {
        Self {
            threads: 2,
            depth: 64,
        }
    }
}

type UnitSource = Box<dyn Iterator<Item = u64> + Send>;
/// (position in the plan, unit, its window).
type Fetched = (u64, u64, Result<Vec<u32>>);

/// Yields `Result<(unit, tokens)>` in plan order; stops after the first error.
pub struct Prefetch {
    results: Option<Receiver<Fetched>>,
    credits: Option<Sender<()>>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<u64, (u64, Result<Vec<u32>>)>,
    next: u64,
    failed: bool,
}

impl Prefetch {
    fn start(
        dataset: Arc<Dataset>,
        units: UnitSource,
        seq_len: usize,
        options: PrefetchOptions,
    ) -> Self {
        let depth = options.depth.max(1);
        let (result_tx, result_rx) = crossbeam_channel::bounded(depth);
        // A worker takes a credit before it claims a unit and the consumer returns one per item
        // it yields, so claimed-but-unconsumed windows never exceed `depth` even when one slow
        // read holds up the reordering.
        let (credit_tx, credit_rx) = crossbeam_channel::bounded(depth);
        for _ in 0..depth {
            let _ = credit_tx.send(());
        }
        let source = Arc::new(Mutex::new((0u64, units)));
        let workers = (0..options.threads.max(1))
            .map(|_| {
                let dataset = dataset.clone();
                let source = source.clone();
                let credits = credit_rx.clone();
                let results = result_tx.clone();
                std::thread::spawn(move || {
                    while credits.recv().is_ok() {
                        let claimed = {
                            let mut guard = source.lock().unwrap_or_else(|p| p.into_inner());
                            let (position, units) = &mut *guard;
                            units.next().map(|unit| {
                                *position += 1;
                                (*position - 1, unit)
                            })
                        };
                        let Some((position, unit)) = claimed else {
                            break;
                        };
                        let window = dataset.window(unit, seq_len);
                        if results.send((position, unit, window)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Self {
            results: Some(result_rx),
            credits: Some(credit_tx),
            workers,
            pending: BTreeMap::new(),
            next: 0,
            failed: false,
        }
    }
}

impl Iterator for Prefetch {
    type Item = Result<(u64, Vec<u32>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some((unit, window)) = self.pending.remove(&self.next) {
                self.next += 1;
                if let Some(credits) = &self.credits {
                    let _ = credits.send(());
                }
                self.failed = window.is_err();
                return Some(window.map(|tokens| (unit, tokens)));
            }
            match self.results.as_ref()?.recv() {
                Ok((position, unit, window)) => {
                    self.pending.insert(position, (unit, window));
                }
                // Every worker is gone: either the plan is exhausted or a worker panicked.
                Err(_) if self.pending.is_empty() => return None,
                Err(_) => {
                    self.failed = true;
                    return Some(Err(Error::Internal(format!(
                        "prefetch lost window {} of the plan (a reader thread died)",
                        self.next
                    ))));
                }
            }
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing both channels wakes every worker, whether it waits for a credit or to send.
        self.credits.take();
        self.results.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
