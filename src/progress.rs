//! Progress on stderr and logging. Library crates never print: they report progress through a
//! callback, and this module turns those calls into an indicatif bar or JSON lines.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{GlobalArgs, ProgressMode};

/// Sets up `tracing` on stderr, honouring `RUST_LOG` (default: warnings) and `NO_COLOR`.
pub fn init_logging(global: &GlobalArgs) {
    let default = if global.quiet { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let color = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .try_init();
}

/// Unit of a progress counter, for display.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Bytes,
    Items(&'static str),
}

/// A progress counter for one stage. Cheap to clone; safe to update from many threads.
#[derive(Clone)]
pub struct Progress {
    inner: Inner,
    /// The stage's name; a phase of it shows as `stage: phase`.
    stage: std::sync::Arc<str>,
}

#[derive(Clone)]
enum Inner {
    Bar(ProgressBar),
    Json(std::sync::Arc<JsonState>),
    Off,
}

struct JsonState {
    stage: std::sync::Mutex<String>,
    unit: &'static str,
    total: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    start: Instant,
    last_emit_ms: std::sync::atomic::AtomicU64,
}

impl Progress {
    /// A counter for `stage` that will reach `total` (0 when unknown).
    pub fn new(global: &GlobalArgs, stage: &str, total: u64, unit: Unit) -> Self {
        let mode = if global.quiet {
            ProgressMode::None
        } else {
            global.progress
        };
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::None,
            other => other,
        };
        let inner = match mode {
            ProgressMode::Bar => {
                let bar = if total > 0 {
                    ProgressBar::new(total)
                } else {
                    ProgressBar::new_spinner()
                };
                bar.set_draw_target(ProgressDrawTarget::stderr());
                let counter = match unit {
                    Unit::Bytes => "{bytes}/{total_bytes} ({bytes_per_sec})",
                    Unit::Items(_) => "{human_pos}/{human_len} ({per_sec})",
                };
                let template = format!(
                    "{{prefix:>10}} [{{elapsed_precise}}] {{wide_bar}} {counter} eta {{eta}} {{msg}}"
                );
                if let Ok(style) = ProgressStyle::with_template(&template) {
                    bar.set_style(style);
                }
                bar.set_prefix(stage.to_owned());
                Inner::Bar(bar)
            }
            ProgressMode::Json => Inner::Json(std::sync::Arc::new(JsonState {
                stage: std::sync::Mutex::new(stage.to_owned()),
                unit: match unit {
                    Unit::Bytes => "bytes",
                    Unit::Items(name) => name,
                },
                total: total.into(),
                done: 0.into(),
                start: Instant::now(),
                last_emit_ms: 0.into(),
            })),
            ProgressMode::Auto | ProgressMode::None => Inner::Off,
        };
        Self {
            inner,
            stage: stage.into(),
        }
    }

    /// Adds `n` to the count.
    pub fn inc(&self, n: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        match &self.inner {
            Inner::Bar(bar) => bar.inc(n),
            Inner::Json(state) => {
                state.done.fetch_add(n, Relaxed);
                // At most one line a second: cluster logs should stay readable.
                let now = state.start.elapsed().as_millis() as u64;
                let last = state.last_emit_ms.load(Relaxed);
                if now >= last + 1000
                    && state
                        .last_emit_ms
                        .compare_exchange(last, now, Relaxed, Relaxed)
                        .is_ok()
                {
                    state.emit(false);
                }
            }
            Inner::Off => {}
        }
    }

    /// Changes the expected total (for example once the inputs are listed).
    pub fn set_total(&self, total: u64) {
        match &self.inner {
            Inner::Bar(bar) => bar.set_length(total),
            Inner::Json(state) => state
                .total
                .store(total, std::sync::atomic::Ordering::Relaxed),
            Inner::Off => {}
        }
    }

    /// A short note shown beside the bar (the file being read, the current loss...).
    pub fn message(&self, message: impl Into<String>) {
        if let Inner::Bar(bar) = &self.inner {
            bar.set_message(message.into());
        }
    }

    /// Starts the count again from zero for the next phase of a stage, named `phase`.
    pub fn restart(&self, phase: &str, total: u64) {
        let phase = if phase == &*self.stage {
            phase.to_owned()
        } else {
            format!("{}: {phase}", self.stage)
        };
        match &self.inner {
            Inner::Bar(bar) => {
                // The last phase's note does not belong to this one.
                bar.set_message("");
                bar.set_prefix(phase.clone());
                bar.set_length(total);
                // Position, clock and rate from zero, and drawn again after a `finish`.
                bar.reset();
            }
            Inner::Json(state) => {
                use std::sync::atomic::Ordering::Relaxed;
                *state.stage.lock().unwrap_or_else(|e| e.into_inner()) = phase;
                state.total.store(total, Relaxed);
                state.done.store(0, Relaxed);
            }
            Inner::Off => {}
        }
    }

    /// Ends the counter (and prints a final JSON line in JSON mode).
    pub fn finish(&self) {
        match &self.inner {
            Inner::Bar(bar) => bar.finish_and_clear(),
            Inner::Json(state) => state.emit(true),
            Inner::Off => {}
        }
    }
}

impl JsonState {
    fn emit(&self, finished: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let stage = self.stage.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let line = serde_json::json!({
            "stage": stage,
            "done": self.done.load(Relaxed),
            "total": self.total.load(Relaxed),
            "unit": self.unit,
            "elapsed_s": (self.start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "finished": finished,
        });
        eprintln!("{line}");
    }
}

/// The stages report through [`tinyforge_task::Reporter`]; the command draws what they say.
impl tinyforge_task::Reporter for Progress {
    fn start(&self, phase: &str, total: u64) {
        self.restart(phase, total);
    }

    fn advance(&self, n: u64) {
        self.inc(n);
    }

    fn note(&self, message: &str) {
        self.message(message);
    }
}

/// A stage's progress, and a test hook: once as many units as the environment variable `var`
/// says are committed (ingest chunks, tokenize shards), the process aborts as a kill would, so
/// the resume tests stop a real run at a known point.
pub struct AbortAfter<'a> {
    progress: &'a Progress,
    after: Option<u64>,
    committed: std::sync::atomic::AtomicU64,
}

impl<'a> AbortAfter<'a> {
    pub fn from_env(progress: &'a Progress, var: &str) -> Self {
        Self {
            progress,
            after: std::env::var(var).ok().and_then(|v| v.parse().ok()),
            committed: 0.into(),
        }
    }
}

/// Draws as the `Progress` it wraps does.
impl tinyforge_task::Reporter for AbortAfter<'_> {
    fn start(&self, phase: &str, total: u64) {
        tinyforge_task::Reporter::start(self.progress, phase, total);
    }

    fn advance(&self, n: u64) {
        tinyforge_task::Reporter::advance(self.progress, n);
    }

    fn note(&self, message: &str) {
        tinyforge_task::Reporter::note(self.progress, message);
    }

    fn committed(&self, _index: u64) {
        let count = self
            .committed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if self.after.is_some_and(|after| count >= after) {
            std::process::abort();
        }
    }
}
