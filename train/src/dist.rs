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
//!
//! This module is the trainer's one FFI boundary, hence `unsafe_code` allowed here only.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tch::Tensor;

use crate::error::{Error, Result};

unsafe extern "C" {
    fn tf_dist_free_string(s: *mut c_char);
    fn tf_dist_store_tcp(
        host: *const c_char,
        port: u16,
        is_server: bool,
        world: c_int,
        timeout_ms: i64,
        prefix: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    fn tf_dist_store_prefixed(
        store: *mut c_void,
        prefix: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    fn tf_dist_store_port(store: *mut c_void) -> u16;
    fn tf_dist_store_free(store: *mut c_void);
    fn tf_dist_store_set(
        store: *mut c_void,
        key: *const c_char,
        value: *const u8,
        len: usize,
        err: *mut *mut c_char,
    ) -> c_int;
    fn tf_dist_store_check(store: *mut c_void, key: *const c_char, err: *mut *mut c_char) -> c_int;
    fn tf_dist_store_get(
        store: *mut c_void,
        key: *const c_char,
        out: *mut *mut u8,
        len: *mut usize,
        err: *mut *mut c_char,
    ) -> c_int;
    fn tf_dist_group_new(
        store: *mut c_void,
        backend: *const c_char,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    fn tf_dist_group_free(group: *mut c_void);
    fn tf_dist_group_abort(group: *mut c_void);
    fn tf_dist_all_reduce(
        group: *mut c_void,
        t: *mut c_void,
        op: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn tf_dist_reduce_scatter(
        group: *mut c_void,
        out: *mut c_void,
        input: *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn tf_dist_all_gather(
        group: *mut c_void,
        out: *mut c_void,
        input: *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn tf_dist_broadcast(
        group: *mut c_void,
        t: *mut c_void,
        root: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn tf_dist_barrier(group: *mut c_void, err: *mut *mut c_char) -> c_int;
}

/// The error text the shim handed back (the C++ exception's `what()`), first lines only: c10d
/// appends a C++ backtrace that says nothing to a user.
fn take_err(err: *mut c_char) -> String {
    if err.is_null() {
        return "unknown error".into();
    }
    // SAFETY: the shim returns a NUL-terminated string from strdup, freed exactly once here.
    let text = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { tf_dist_free_string(err) };
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Exception raised from") && !l.contains("frame #"))
        .collect();
    lines.join("\n").trim().to_string()
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new(s.replace('\0', "")).expect("no NUL"))
}

fn dist_err(what: impl Into<String>, detail: String) -> Error {
    Error::Dist(format!("{}: {detail}", what.into()))
}

/// A c10d key-value store (TCPStore, optionally under a key prefix).
pub struct Store {
    ptr: *mut c_void,
    host: String,
}

// SAFETY: c10d's TCPStore serialises its client calls with its own lock.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

impl Store {
    /// The store server (listening on `port`, 0 for any free port), or a client of the one at
    /// `host:port`, keys under `prefix`.
    pub fn tcp(
        host: &str,
        port: u16,
        server: bool,
        timeout: Duration,
        prefix: &str,
    ) -> Result<Self> {
        let (h, p) = (cstr(host), cstr(prefix));
        let mut err = std::ptr::null_mut();
        // SAFETY: valid C strings; the shim owns nothing of them after the call.
        let ptr = unsafe {
            tf_dist_store_tcp(
                h.as_ptr(),
                port,
                server,
                0,
                timeout.as_millis() as i64,
                p.as_ptr(),
                &mut err,
            )
        };
        if ptr.is_null() {
            let role = if server { "serve" } else { "reach" };
            return Err(dist_err(
                format!("cannot {role} the rendezvous store at {host}:{port}"),
                take_err(err),
            ));
        }
        Ok(Self {
            ptr,
            host: host.into(),
        })
    }

    /// The port the server listens on (the one picked when asked for 0).
    pub fn port(&self) -> u16 {
        // SAFETY: ptr is a live store.
        unsafe { tf_dist_store_port(self.ptr) }
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port())
    }

    /// Another view of the same store with keys under `prefix`.
    pub fn prefixed(&self, prefix: &str) -> Result<Self> {
        let p = cstr(prefix);
        let mut err = std::ptr::null_mut();
        // SAFETY: ptr is a live store; the new one holds its own reference.
        let ptr = unsafe { tf_dist_store_prefixed(self.ptr, p.as_ptr(), &mut err) };
        if ptr.is_null() {
            return Err(dist_err("store", take_err(err)));
        }
        Ok(Self {
            ptr,
            host: self.host.clone(),
        })
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let k = cstr(key);
        let mut err = std::ptr::null_mut();
        // SAFETY: value is a valid slice for the call.
        let rc = unsafe {
            tf_dist_store_set(self.ptr, k.as_ptr(), value.as_ptr(), value.len(), &mut err)
        };
        if rc != 0 {
            return Err(dist_err(format!("store set {key}"), take_err(err)));
        }
        Ok(())
    }

    /// Whether `key` is set, without waiting.
    pub fn check(&self, key: &str) -> Result<bool> {
        let k = cstr(key);
        let mut err = std::ptr::null_mut();
        // SAFETY: ptr is a live store.
        match unsafe { tf_dist_store_check(self.ptr, k.as_ptr(), &mut err) } {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(dist_err(format!("store check {key}"), take_err(err))),
        }
    }

    /// The value of `key`, waiting for it up to the store's timeout.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let k = cstr(key);
        let mut err = std::ptr::null_mut();
        let mut out: *mut u8 = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: out/len receive a malloc'd buffer that is copied and freed below.
        let rc = unsafe { tf_dist_store_get(self.ptr, k.as_ptr(), &mut out, &mut len, &mut err) };
        if rc != 0 {
            return Err(dist_err(format!("store get {key}"), take_err(err)));
        }
        let v = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
        unsafe { tf_dist_free_string(out.cast()) };
        Ok(v)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by tf_dist_store_tcp / _prefixed, freed once.
        unsafe { tf_dist_store_free(self.ptr) }
    }
}

/// Which c10d backend a group runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// CPU tensors.
    Gloo,
    /// CUDA tensors.
    Nccl,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
    /// `auto` picks NCCL for a CUDA device and Gloo otherwise.
    pub fn parse(s: &str, device: tch::Device) -> Result<Self> {
        match s {
            "auto" => Ok(if device.is_cuda() {
                Backend::Nccl
            } else {
                Backend::Gloo
            }),
            "gloo" => Ok(Backend::Gloo),
            "nccl" => Ok(Backend::Nccl),
            _ => Err(Error::Config(format!(
                "unknown distributed backend `{s}` (auto, gloo, nccl)"
            ))),
        }
    }
}

/// A c10d process group.
pub struct Group {
    ptr: *mut c_void,
}

// SAFETY: c10d backends may be called from any thread; the trainer calls from one.
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

type Collective =
    unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void, *mut *mut c_char) -> c_int;

impl Group {
    pub fn new(
        store: &Store,
        backend: Backend,
        rank: usize,
        world: usize,
        timeout: Duration,
    ) -> Result<Self> {
        let b = cstr(backend.name());
        let mut err = std::ptr::null_mut();
        // SAFETY: the group keeps its own reference to the store.
        let ptr = unsafe {
            tf_dist_group_new(
                store.ptr,
                b.as_ptr(),
                rank as c_int,
                world as c_int,
                timeout.as_millis() as i64,
                &mut err,
            )
        };
        if ptr.is_null() {
            return Err(dist_err(
                format!("cannot start the {} process group", backend.name()),
                take_err(err),
            ));
        }
        Ok(Self { ptr })
    }

    fn check(rc: c_int, err: *mut c_char, what: &str) -> std::result::Result<(), String> {
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("{what}: {}", take_err(err)))
        }
    }

    /// In-place sum over the ranks.
    pub fn all_reduce_sum(&self, t: &Tensor) -> std::result::Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: the tensor outlives the (waited-on) call.
        let rc = unsafe { tf_dist_all_reduce(self.ptr, t.as_ptr() as *mut c_void, 0, &mut err) };
        Self::check(rc, err, "all-reduce")
    }

    fn pair(
        &self,
        f: Collective,
        out: &Tensor,
        input: &Tensor,
        what: &str,
    ) -> std::result::Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: both tensors outlive the (waited-on) call.
        let rc = unsafe {
            f(
                self.ptr,
                out.as_ptr() as *mut c_void,
                input.as_ptr() as *mut c_void,
                &mut err,
            )
        };
        Self::check(rc, err, what)
    }

    /// `out` (`input.numel() / world` elements) gets this rank's slice of the sum of the inputs.
    pub fn reduce_scatter(&self, out: &Tensor, input: &Tensor) -> std::result::Result<(), String> {
        self.pair(tf_dist_reduce_scatter, out, input, "reduce-scatter")
    }

    /// `out` (`input.numel() * world` elements) gets every rank's `input`, in rank order.
    pub fn all_gather(&self, out: &Tensor, input: &Tensor) -> std::result::Result<(), String> {
        self.pair(tf_dist_all_gather, out, input, "all-gather")
    }

    pub fn broadcast(&self, t: &Tensor, root: usize) -> std::result::Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: the tensor outlives the (waited-on) call.
        let rc = unsafe {
            tf_dist_broadcast(self.ptr, t.as_ptr() as *mut c_void, root as c_int, &mut err)
        };
        Self::check(rc, err, "broadcast")
    }

    pub fn barrier(&self) -> std::result::Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: ptr is a live group.
        let rc = unsafe { tf_dist_barrier(self.ptr, &mut err) };
        Self::check(rc, err, "barrier")
    }

    /// Tear the communicators down (after a failure, so the process can exit).
    pub fn abort(&self) {
        // SAFETY: ptr is a live group.
        unsafe { tf_dist_group_abort(self.ptr) }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: created by tf_dist_group_new, freed once.
        unsafe { tf_dist_group_free(self.ptr) }
    }
}

/// Who this process is in a training job, and where its rendezvous store is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub local_world: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent (or `tinyforge train --nproc`) already serves the store: every rank is
    /// a client, under `/worker/attempt_{restart}`.
    pub agent_store: bool,
    pub restart: u64,
    /// Where the values came from: `single`, `flags`, `torchrun`, `slurm`.
    pub source: String,
}

/// Explicit launch flags (`--rank`, `--world-size`, …); each wins over the environment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaunchFlags {
    pub rank: Option<usize>,
    pub world_size: Option<usize>,
    pub local_rank: Option<usize>,
    pub master_addr: Option<String>,
    pub master_port: Option<u16>,
}

impl Launch {
    /// A world of one (no store, no group).
    pub fn single() -> Self {
        Self {
            rank: 0,
            world: 1,
            local_rank: 0,
            local_world: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 0,
            agent_store: false,
            restart: 0,
            source: "single".into(),
        }
    }

    /// Resolve from `flags`, then torchrun's variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
    /// `MASTER_ADDR`, `MASTER_PORT`, …), then Slurm's (`SLURM_PROCID`, `SLURM_NTASKS`,
    /// `SLURM_LOCALID`, the first host of `SLURM_JOB_NODELIST`).
    pub fn resolve(flags: &LaunchFlags, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let num = |name: &str| -> Result<Option<usize>> {
            env(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        Error::Config(format!("environment variable {name}={v:?} is not a number"))
                    })
                })
                .transpose()
        };
        let torchrun = env("WORLD_SIZE").is_some() && env("RANK").is_some();
        let slurm = env("SLURM_PROCID").is_some() && env("SLURM_NTASKS").is_some();
        let mut l = Self::single();
        if slurm {
            l.source = "slurm".into();
            l.rank = num("SLURM_PROCID")?.unwrap_or(0);
            l.world = num("SLURM_NTASKS")?.unwrap_or(1);
            l.local_rank = num("SLURM_LOCALID")?.unwrap_or(0);
            l.local_world = match env("SLURM_NTASKS_PER_NODE") {
                Some(v) => first_count(&v).unwrap_or(1),
                None => 1,
            };
            if let Some(nodes) = env("SLURM_JOB_NODELIST").or_else(|| env("SLURM_NODELIST")) {
                l.master_addr = first_host(&nodes).ok_or_else(|| {
                    Error::Config(format!(
                        "cannot read the first host of SLURM_JOB_NODELIST={nodes:?}"
                    ))
                })?;
            }
            // A port every task of the job derives alike (as Lightning does), unless given.
            l.master_port = match num("SLURM_JOB_ID")? {
                Some(id) => 15000 + (id % 20000) as u16,
                None => 29500,
            };
        }
        if torchrun {
            l.source = "torchrun".into();
            l.rank = num("RANK")?.unwrap_or(0);
            l.world = num("WORLD_SIZE")?.unwrap_or(1);
            l.local_rank = num("LOCAL_RANK")?.unwrap_or(0);
            l.local_world = num("LOCAL_WORLD_SIZE")?.unwrap_or(l.world);
            l.agent_store =
                env("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True" || v == "1");
            l.restart = num("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0) as u64;
        }
        if torchrun || slurm {
            if let Some(a) = env("MASTER_ADDR") {
                l.master_addr = a;
            }
            if let Some(p) = num("MASTER_PORT")? {
                l.master_port = u16::try_from(p)
                    .map_err(|_| Error::Config(format!("MASTER_PORT={p} is not a port")))?;
            }
        }
        let explicit = flags.rank.is_some() || flags.world_size.is_some();
        if explicit {
            l.source = "flags".into();
            l.agent_store = false;
        }
        if let Some(r) = flags.rank {
            l.rank = r;
        }
        if let Some(w) = flags.world_size {
            l.world = w;
            if !torchrun && !slurm {
                l.local_world = w;
            }
        }
        if let Some(r) = flags.local_rank {
            l.local_rank = r;
        } else if explicit && !torchrun && !slurm {
            l.local_rank = l.rank;
        }
        if let Some(a) = &flags.master_addr {
            l.master_addr = a.clone();
        }
        if let Some(p) = flags.master_port {
            l.master_port = p;
        }
        if l.world == 0 || l.rank >= l.world {
            return Err(Error::Config(format!(
                "rank {} is not below the world size {} (from {})",
                l.rank, l.world, l.source
            )));
        }
        if l.world > 1 && l.master_port == 0 {
            return Err(Error::Config(
                "a world of several processes needs the store's port: --master-port or MASTER_PORT"
                    .into(),
            ));
        }
        Ok(l)
    }

    /// Resolve against this process's environment.
    pub fn from_env(flags: &LaunchFlags) -> Result<Self> {
        Self::resolve(flags, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }
}

/// The first host of a Slurm host list: `gpu[003-010,012],cpu1` -> `gpu003`.
pub fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    let mut depth = 0;
    let end = list
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            c == ',' && depth == 0
        })
        .map_or(list.len(), |(i, _)| i);
    let first = &list[..end];
    match first.find('[') {
        None => (!first.is_empty()).then(|| first.to_string()),
        Some(open) => {
            let inner = first[open + 1..].strip_suffix(']')?;
            let range = inner.split(',').next()?;
            let start = range.split('-').next()?;
            (!start.is_empty()).then(|| format!("{}{start}", &first[..open]))
        }
    }
}

/// `4(x2),2` -> 4: the tasks on the first node.
fn first_count(v: &str) -> Option<usize> {
    v.split([',', '(']).next()?.trim().parse().ok()
}

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
        // A relaunch of the same job must not read the previous attempt's keys.
        // (c10d's PrefixStore joins prefix and key with a `/`.)
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
                    std::thread::sleep(Duration::from_millis(500));
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

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn slurm_host_lists() {
        assert_eq!(
            first_host("gpu[003-010,012],cpu1").as_deref(),
            Some("gpu003")
        );
        assert_eq!(first_host("node7").as_deref(), Some("node7"));
        assert_eq!(first_host("a1,b[1-2]").as_deref(), Some("a1"));
        assert_eq!(first_host("n[12]").as_deref(), Some("n12"));
        assert_eq!(first_host(""), None);
        assert_eq!(first_count("4(x2),2"), Some(4));
    }

    #[test]
    fn flags_win_over_torchrun_which_wins_over_slurm() {
        let slurm = [
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[07-08]"),
            ("SLURM_JOB_ID", "1234"),
        ];
        let l = Launch::resolve(&LaunchFlags::default(), &env_of(&slurm)).unwrap();
        assert_eq!((l.rank, l.world, l.local_rank), (3, 8, 1));
        assert_eq!(l.master_addr, "gpu07");
        assert_eq!(l.master_port, 15000 + 1234);
        assert_eq!(l.source, "slurm");

        let mut both = slurm.to_vec();
        both.extend([
            ("RANK", "5"),
            ("WORLD_SIZE", "16"),
            ("LOCAL_RANK", "2"),
            ("MASTER_ADDR", "head"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]);
        let l = Launch::resolve(&LaunchFlags::default(), &env_of(&both)).unwrap();
        assert_eq!((l.rank, l.world, l.local_rank), (5, 16, 2));
        assert_eq!((l.master_addr.as_str(), l.master_port), ("head", 29400));
        assert!(l.agent_store);
        assert_eq!(l.restart, 2);
        assert_eq!(l.source, "torchrun");

        let flags = LaunchFlags {
            rank: Some(1),
            world_size: Some(2),
            master_port: Some(40000),
            ..Default::default()
        };
        let l = Launch::resolve(&flags, &env_of(&both)).unwrap();
        assert_eq!((l.rank, l.world, l.master_port), (1, 2, 40000));
        assert!(
            !l.agent_store,
            "explicit flags mean rank 0 serves the store"
        );
        assert_eq!(l.source, "flags");
    }

    #[test]
    fn bad_launches_are_refused_with_the_variable() {
        let e = Launch::resolve(
            &LaunchFlags::default(),
            &env_of(&[("RANK", "x"), ("WORLD_SIZE", "2")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("RANK=\"x\""), "{e}");
        let e = Launch::resolve(
            &LaunchFlags::default(),
            &env_of(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rank 2 is not below the world size 2"), "{e}");
        let l = Launch::resolve(&LaunchFlags::default(), &env_of(&[])).unwrap();
        assert_eq!(l, Launch::single());
    }

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
