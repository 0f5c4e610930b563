//! How a stage tells whoever runs it how far it has got, in one shape for every stage (uv's
//! `Reporter` is the model): a trait of callbacks with empty defaults, counts as increments,
//! callable from any thread. The command draws it (an indicatif bar, JSON lines for cluster
//! logs, or nothing); a library caller that wants nothing passes [`Silent`].

/// What a long-running stage reports while it works.
pub trait Reporter: Sync {
    /// A phase begins with `total` units of work ahead (0 while unknown). A stage of one phase
    /// calls it once, when it knows its total; each later call starts the next phase, its count
    /// from zero.
    fn start(&self, phase: &str, total: u64) {
        let _ = (phase, total);
    }

    /// `n` more units of the current phase are done (an increment, never a running total).
    fn advance(&self, n: u64) {
        let _ = n;
    }

    /// A short note beside the count: what is being done, what a resumed run skipped.
    fn note(&self, message: &str) {
        let _ = message;
    }

    /// Unit `index` of the stage's output (an ingest chunk, a tokenize shard) is complete on
    /// disk: a run killed from here on resumes at it or after it, never before.
    fn committed(&self, index: u64) {
        let _ = index;
    }
}

/// The reporter that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Count(AtomicU64);

    impl Reporter for Count {
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[test]
    fn increments_add_up_across_threads() {
        let count = Count::default();
        let reporter: &dyn Reporter = &count;
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| (0..1000).for_each(|_| reporter.advance(2)));
            }
        });
        assert_eq!(count.0.load(Ordering::Relaxed), 8000);
        // The defaults do nothing, and Silent is all defaults.
        Silent.start("phase", 10);
        Silent.note("nothing");
        Silent.committed(0);
    }
}
