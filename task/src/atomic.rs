//! Files that readers see whole or not at all: written under a temporary name beside the final
//! one, synced, then renamed (a rename within a folder is atomic on POSIX file systems).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `.name.tmp-PID` beside `path`: hidden, never the final name, one per writing process.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// The file name a [`temp_path`] name stands for, or `None` when `name` is not one: lets a
/// stage that owns a folder clear what a killed run of it left behind.
pub fn temp_target(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    let (target, pid) = rest.rsplit_once(".tmp-")?;
    (!target.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then_some(target)
}

/// Removes the temporary files directly in `dir` whose final name `stale` accepts (what a
/// killed writer left; call it while holding the folder's [`crate::TaskLock`]). Returns how many.
pub fn remove_temporaries(dir: &Path, stale: impl Fn(&str) -> bool) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.as_deref().and_then(temp_target).is_some_and(&stale) && path.is_file() {
            fs_err::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A file being written under [`temp_path`]; [`AtomicFile::commit`] gives it its final name.
/// Dropped without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<io::BufWriter<fs_err::File>>,
    tmp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    pub fn create(path: &Path) -> io::Result<Self> {
        let tmp = temp_path(path);
        let file = fs_err::File::create(&tmp)?;
        Ok(Self {
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
            path: path.to_owned(),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames into place.
    pub fn commit(mut self) -> io::Result<()> {
        let writer = self.file.take().expect("an AtomicFile is committed once");
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs_err::rename(&self.tmp, &self.path)?;
        Ok(())
    }

    fn writer(&mut self) -> &mut io::BufWriter<fs_err::File> {
        self.file
            .as_mut()
            .expect("an AtomicFile is written before its commit")
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let tmp = temp_path(&path);
        let tmp_name = tmp.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_target(tmp_name), Some("a.json"));
        assert_eq!(temp_target("a.json"), None);
        assert_eq!(temp_target(".a.json.tmp-x"), None);
        write_atomic(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");

        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"two").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"one",
            "the old file until the commit"
        );
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the uncommitted temporary file is gone");

        std::fs::write(dir.path().join(".a.json.tmp-7"), b"x").unwrap();
        std::fs::write(dir.path().join(".b.json.tmp-7"), b"x").unwrap();
        assert_eq!(
            remove_temporaries(dir.path(), |name| name == "a.json").unwrap(),
            1
        );
        assert!(dir.path().join(".b.json.tmp-7").exists() && path.exists());

        let err = write_atomic(&dir.path().join("missing/b.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
