//! Measuring how much memory a call takes, for the tests that hold a reader to a stated bound on
//! hostile input (the fuzz tests of ingest, shards and the sampler).
//!
//! A test binary installs [`CountingAllocator`] as its global allocator; [`peak_during`] then
//! says how many bytes were live at most while a call ran, above what was live when it began.
//! The count is of the whole process (a reader may allocate on threads it starts), so a test
//! that measures runs in a process of its own, alone: [`in_own_process`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// The system allocator, counting the bytes live. Install it in a test binary with
/// `#[global_allocator] static ALLOCATOR: CountingAllocator = CountingAllocator;`.
pub struct CountingAllocator;

/// Bytes live now, counted always, so that a measurement starts from the true level.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The highest `LIVE` since the measurement began; tracked only while one runs (`MEASURING`),
/// because keeping a maximum costs a compare-and-swap loop on every allocation.
static PEAK: AtomicIsize = AtomicIsize::new(0);
static MEASURING: AtomicBool = AtomicBool::new(false);
/// One measurement at a time.
static MEASUREMENT: Mutex<()> = Mutex::new(());

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
    if MEASURING.load(Ordering::Relaxed) {
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// adds bookkeeping on plain atomics, which allocates nothing.
#[expect(
    unsafe_code,
    reason = "a GlobalAlloc is unsafe to implement; this one forwards every call to System"
)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller checked `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Counted as the new block arriving before the old one leaves, which is what a
            // moving realloc does.
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
}

/// Runs `call` and returns its result with the most bytes that were live at once while it ran,
/// above those live when it started. Counts every thread of the process, so nothing else may
/// run meanwhile (see [`in_own_process`]). Memory that libraries take outside Rust's allocator
/// (zstd's C contexts) is not seen.
///
/// Panics when [`CountingAllocator`] is not the binary's global allocator: a bound checked
/// against a count of zero would pass without checking anything.
pub fn peak_during<R>(call: impl FnOnce() -> R) -> (R, usize) {
    let _one = MEASUREMENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let probe_before = LIVE.load(Ordering::Relaxed);
    let probe = std::hint::black_box(vec![0u8; 4096]);
    let counted = LIVE.load(Ordering::Relaxed) - probe_before >= 4096;
    drop(probe);
    assert!(
        counted,
        "install tinyforge_testkit::CountingAllocator as the test binary's #[global_allocator]"
    );
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    MEASURING.store(true, Ordering::Relaxed);
    let result = call();
    MEASURING.store(false, Ordering::Relaxed);
    let peak = PEAK.load(Ordering::Relaxed) - start;
    (result, peak.max(0) as usize)
}

/// The variable that marks the child process [`in_own_process`] starts, holding the test's name.
const OWN_PROCESS: &str = "TINYFORGE_TEST_OWN_PROCESS";

/// Runs `body` in a process of its own: the current test binary started again with a filter
/// that selects the test `test` (its full name, `module::function`) alone. There `body` runs;
/// here the test waits for it and fails with its output if it failed. For tests that measure
/// the whole process's memory ([`peak_during`]) while the other tests of the binary run in
/// parallel threads of this one.
#[track_caller]
pub fn in_own_process(test: &str, body: impl FnOnce()) {
    if std::env::var_os(OWN_PROCESS).is_some_and(|name| name == test) {
        // A panic the code under test catches (and a property test catches every one) would
        // print a backtrace under RUST_BACKTRACE, and resolving it loads the binary's debug
        // information: tens of megabytes, in the middle of a measurement. The place and the
        // message say enough.
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
        body();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(OWN_PROCESS, test)
        .output()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", exe.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{test} failed in its own process ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // A filter that selects nothing passes too: make sure the test did run there.
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its own process (is the name its full path?):\n{stdout}"
    );
}
