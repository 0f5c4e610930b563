//! What one batch task of a data stage is, written once for every stage:
//!
//! - [`Shard`]: which part of the work a task does (`--shard i/n`, or `--shard auto` from the
//!   array index a scheduler gives: Slurm, a Kubernetes Indexed Job, AWS Batch). The stages
//!   document what a part is for them ([`Shard::owns`] round-robin, [`Shard::range`]
//!   contiguous).
//! - [`TaskLock`]: one writer per task; a second gets an error naming the holder.
//! - [`write_atomic`] / [`AtomicFile`]: files that readers see whole or not at all.
//! - [`Reporter`]: how a stage reports its progress, one shape for every stage.
//! - [`panic_message`]: what a caught panic said.
//!
//! Light on purpose (std, serde, thiserror): every stage crate depends on it.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod atomic;
mod lock;
mod panic;
mod report;
mod shard;

pub use atomic::{AtomicFile, remove_temporaries, temp_path, temp_target, write_atomic};
pub use lock::{LockError, TaskLock, lock_file};
pub use panic::panic_message;
pub use report::{Reporter, Silent};
pub use shard::{Shard, ShardError, ShardSpec};
