//! One writer per task. A second process that starts the same task on the same folder gets an
//! error naming the first (pid, host, since when) instead of tripping over its temporary files.
//! Tasks of one run that share a folder (ingest's `--shard i/n` tasks write one documents
//! folder, and so do its dedup steps) each lock their own name, `.tinyforge-STEP-I-of-N.lock`.
//!
//! The lock is an advisory `flock` on that file inside the folder, taken with
//! [`std::fs::File::try_lock`]: the kernel drops it when the holder exits, killed or not, so a
//! stale lock never needs clearing. (On NFS, Linux maps `flock` to POSIX byte-range locks, which
//! the server arbitrates.) The file stays behind; it records the last holder.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Shard;

/// The lock file of task `shard` of step `step` (a word: `ingest`, `dedup-bucket`, ...)
/// inside its folder.
pub fn lock_file(step: &str, shard: Shard) -> String {
    format!(".tinyforge-{step}-{}-of-{}.lock", shard.index, shard.count)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    #[error(
        "{dir} is being written by another task ({holder}); wait for it to finish or stop it, \
         then rerun (a rerun resumes)"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("locking {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held while a task writes its folder; released on drop or when the process ends.
#[derive(Debug)]
pub struct TaskLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl TaskLock {
    /// Creates `dir` if needed and locks task `shard` of step `step` in it for this process.
    pub fn acquire(dir: &Path, step: &str, shard: Shard) -> Result<Self, LockError> {
        let path = dir.join(lock_file(step, shard));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder: if holder.is_empty() {
                        "a process that has not yet written its name".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = format!(
            "{step} task {shard}: pid {} on {}, since unix time {since}\n",
            std::process::id(),
            hostname()
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(record.as_bytes()).map_err(io)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_told_who_holds_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("task-3");
        let shard = Shard { index: 3, count: 8 };
        let first = TaskLock::acquire(&task, "tokenize", shard).unwrap();
        let other = TaskLock::acquire(&task, "tokenize", Shard { index: 4, count: 8 }).unwrap();
        let step = TaskLock::acquire(&task, "merge", shard).unwrap();
        let err = TaskLock::acquire(&task, "tokenize", shard).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(text.contains("task-3"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("tokenize task 3/8"), "{text}");
        drop(first);
        drop((other, step));
        let again = TaskLock::acquire(&task, "tokenize", shard).unwrap();
        assert!(again.path().ends_with(".tinyforge-tokenize-3-of-8.lock"));
    }
}
