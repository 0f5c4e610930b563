//! Data-parallel training over PyTorch's own engine, c10d: a TCPStore for rendezvous, Gloo on CPU
//! tensors and NCCL on CUDA tensors, reached through a small C++ shim (`csrc/dist.cpp`).
//!
//! - [`Launch`] says who this process is (rank, world, local rank, where the store is), from
//!   explicit flags, else torchrun's variables, else Slurm's.
//! - [`World`] is the trainer's handle: a world of one holds no group and every collective is a
//!   no-op, so the single-device path is exactly what it was. A larger world runs collectives on
//!   its [`Group`], and a failed collective becomes an error that names the ranks that stopped
//!   answering (each rank beats a heartbeat key in the store once a second).
//!
//! Every call of the shim returns the backend's error text instead of throwing or aborting, and
//! every collective waits at most the world's timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tch::Tensor;

use crate::error::{Error, Result};

mod ffi;
mod launch;

pub use ffi::{Backend, Group, Store};
pub use launch::{Launch, LaunchFlags, first_host};

/// The trainer's view of the job: a world of one (no collectives at all) or a process group.
#[derive(Clone)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    pub local_rank: usize,
    inner: Option<Arc<Inner>>,
}

struct Inner {
    group: Group,
    /// Each rank's last heartbeat (ms since the epoch), key = rank.
    beats: Store,
    /// The store as created: on rank 0 without an agent it owns the server, which lives as
    /// long as this (its clones are clients only).
    _root: Store,
    backend: Backend,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "World(rank {} of {})", self.rank, self.size)
    }
}

impl Default for World {
    fn default() -> Self {
        Self::single()
    }
}

/// Heartbeat keys older than this name a rank as gone.
const STALE: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl World {
    pub fn single() -> Self {
        Self {
            rank: 0,
            size: 1,
            local_rank: 0,
            inner: None,
        }
    }

    /// Join the job `launch` describes: connect to (or, on rank 0 without an agent, serve) the
    /// store, start the heartbeat and the process group. A world of one creates nothing.
    pub fn join(launch: &Launch, backend: Backend, timeout: Duration) -> Result<Self> {
        if launch.world == 1 {
            return Ok(Self::single());
        }
        Self::join_group(launch, backend, timeout)
    }

    /// As [`World::join`], but a world of one gets a real group too (a check that the backend
    /// works at all, e.g. a one-rank NCCL communicator on a machine with one GPU).
    pub fn join_group(launch: &Launch, backend: Backend, timeout: Duration) -> Result<Self> {
        let server = !launch.agent_store && launch.rank == 0;
        let prefix = if launch.agent_store {
            format!("/worker/attempt_{}", launch.restart)
        } else {
            String::new()
        };
        let root = Store::tcp(
            &launch.master_addr,
            launch.master_port,
            server,
            timeout,
            &prefix,
        )?;
        // Our keys apart from the launcher's (a relaunch gets a fresh attempt prefix above).
        // c10d's PrefixStore joins prefix and key with a `/`.
        let store = root.prefixed("tinyforge")?;
        let stop = Arc::new(AtomicBool::new(false));
        let beats = store.prefixed("heartbeat")?;
        let beat = store.prefixed("heartbeat")?;
        let (rank, flag) = (launch.rank, stop.clone());
        beat.set(&rank.to_string(), now_ms().to_string().as_bytes())?;
        let heartbeat = std::thread::Builder::new()
            .name("tinyforge-heartbeat".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    if beat
                        .set(&rank.to_string(), now_ms().to_string().as_bytes())
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Dist(format!("cannot start the heartbeat thread: {e}")))?;
        let group = Group::new(&store, backend, launch.rank, launch.world, timeout)?;
        Ok(Self {
            rank: launch.rank,
            size: launch.world,
            local_rank: launch.local_rank,
            inner: Some(Arc::new(Inner {
                group,
                beats,
                _root: root,
                backend,
                timeout,
                stop,
                heartbeat: Some(heartbeat),
            })),
        })
    }

    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    pub fn backend(&self) -> Option<Backend> {
        self.inner.as_ref().map(|i| i.backend)
    }

    /// The error of a failed collective, naming the ranks whose heartbeat stopped. A peer that
    /// just died still looks alive for a moment: the heartbeats are read again for up to
    /// `STALE` and a little more before the answer is "nobody".
    fn failed(&self, inner: &Inner, op: &str, detail: String) -> Error {
        let t0 = std::time::Instant::now();
        let (gone, unreachable) = loop {
            let (gone, unreachable) = self.silent_ranks(inner);
            if !gone.is_empty() || unreachable.is_some() || t0.elapsed() > STALE + STALE / 4 {
                break (gone, unreachable);
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        inner.group.abort();
        let who = if let Some(e) = unreachable {
            format!(
                "the rendezvous store is unreachable, so its host (rank 0, or the launcher's \
                 agent) may have stopped: {e}"
            )
        } else if gone.is_empty() {
            format!(
                "every other rank still beats its heartbeat; a rank may have failed on its own \
                 (see its log) or the network between ranks is down (timeout {} s)",
                inner.timeout.as_secs()
            )
        } else {
            format!("stopped: {}", gone.join(", "))
        };
        Error::Dist(format!(
            "rank {} of {}: {op} failed ({who}). Relaunching resumes from the last checkpoint. \
             Backend: {detail}",
            self.rank, self.size
        ))
    }

    /// The other ranks whose heartbeat is older than `STALE`, or the store's error.
    fn silent_ranks(&self, inner: &Inner) -> (Vec<String>, Option<String>) {
        let mut gone = vec![];
        let now = now_ms();
        for r in (0..self.size).filter(|&r| r != self.rank) {
            let key = r.to_string();
            let beat = inner.beats.check(&key).and_then(|ok| {
                if ok {
                    inner.beats.get(&key)
                } else {
                    Ok(b"0".to_vec())
                }
            });
            match beat {
                Ok(v) => {
                    let t: u64 = String::from_utf8_lossy(&v).parse().unwrap_or(0);
                    if now.saturating_sub(t) > STALE.as_millis() as u64 {
                        gone.push(if t == 0 {
                            format!("rank {r} (never joined)")
                        } else {
                            format!("rank {r} (silent for {:.0} s)", (now - t) as f64 / 1e3)
                        });
                    }
                }
                Err(e) => return (gone, Some(e.to_string())),
            }
        }
        (gone, None)
    }

    fn run(
        &self,
        op: &str,
        f: impl FnOnce(&Group) -> std::result::Result<(), String>,
    ) -> Result<()> {
        match &self.inner {
            None => Ok(()),
            Some(inner) => f(&inner.group).map_err(|e| self.failed(inner, op, e)),
        }
    }

    /// Sum `t` over the ranks, in place (a no-op in a world of one).
    pub fn all_reduce_sum(&self, t: &Tensor, what: &str) -> Result<()> {
        self.run(what, |g| g.all_reduce_sum(t))
    }

    pub fn reduce_scatter(&self, out: &Tensor, input: &Tensor, what: &str) -> Result<()> {
        self.run(what, |g| g.reduce_scatter(out, input))
    }

    pub fn all_gather(&self, out: &Tensor, input: &Tensor, what: &str) -> Result<()> {
        self.run(what, |g| g.all_gather(out, input))
    }

    pub fn broadcast(&self, t: &Tensor, root: usize, what: &str) -> Result<()> {
        self.run(what, |g| g.broadcast(t, root))
    }

    pub fn barrier(&self, what: &str) -> Result<()> {
        self.run(what, |g| g.barrier())
    }

    /// Sum of a few f64 values over the ranks (losses, counts, flags).
    pub fn sum_f64(&self, values: &[f64], what: &str) -> Result<Vec<f64>> {
        if self.inner.is_none() {
            return Ok(values.to_vec());
        }
        let t = Tensor::from_slice(values).to_device(self.device());
        self.all_reduce_sum(&t, what)?;
        Ok(Vec::<f64>::try_from(&t.to_device(tch::Device::Cpu))?)
    }

    /// Rank 0's `flag`, on every rank (decisions on what rank 0 sees of the run folder).
    pub fn agree(&self, flag: bool, what: &str) -> Result<bool> {
        let mine = if self.is_main() && flag { 1.0 } else { 0.0 };
        Ok(self.sum_f64(&[mine], what)?[0] > 0.0)
    }

    /// Every rank's `values` (the same length on every rank), in rank order.
    pub fn gather_f32(&self, values: &[f32], what: &str) -> Result<Vec<f32>> {
        if self.inner.is_none() {
            return Ok(values.to_vec());
        }
        let input = Tensor::from_slice(values).to_device(self.device());
        let out = Tensor::zeros(
            [(values.len() * self.size) as i64],
            (tch::Kind::Float, self.device()),
        );
        self.all_gather(&out, &input, what)?;
        Ok(Vec::<f32>::try_from(&out.to_device(tch::Device::Cpu))?)
    }

    /// The device collectives of small host values run on (NCCL needs CUDA tensors).
    fn device(&self) -> tch::Device {
        match self.backend() {
            Some(Backend::Nccl) => tch::Device::Cuda(self.local_rank),
            _ => tch::Device::Cpu,
        }
    }

    /// This rank's contiguous share `[start, end)` of `n` items.
    pub fn share(&self, n: usize) -> std::ops::Range<usize> {
        Self::share_of(self.rank, self.size, n)
    }

    /// Rank `rank`'s share of `n` items in a world of `size`: contiguous, in rank order, sizes
    /// differing by at most one.
    pub fn share_of(rank: usize, size: usize, n: usize) -> std::ops::Range<usize> {
        let per = n / size;
        let extra = n % size;
        let start = rank * per + rank.min(extra);
        let len = per + usize::from(rank < extra);
        start..start + len
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}

/// How long a collective or the store may wait: `TINYFORGE_DIST_TIMEOUT` seconds, else 600.
pub fn default_timeout() -> Duration {
    std::env::var("TINYFORGE_DIST_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(Duration::from_secs(600), Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_item_once() {
        for size in 1..6 {
            let mut all = vec![];
            for rank in 0..size {
                let w = World {
                    rank,
                    size,
                    local_rank: rank,
                    inner: None,
                };
                all.extend(w.share(13));
            }
            assert_eq!(all, (0..13).collect::<Vec<_>>());
        }
    }
}
