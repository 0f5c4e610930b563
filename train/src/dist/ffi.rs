//! The C ABI of the shim (`csrc/dist.cpp`) and its safe wrappers: a c10d store and a process
//! group. This is the trainer's one FFI boundary, hence `unsafe_code` allowed here only.
#![expect(
    unsafe_code,
    reason = "the C ABI of the c10d shim: every call is here, behind safe wrappers"
)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::time::Duration;

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
