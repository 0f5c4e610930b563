//! Input files in an object store, read where they are: a listing gives names and sizes, a
//! sequential read is one ranged GET per 8 MiB block from any offset, the next block fetched
//! while this one is read (so a task reading a byte range of a 500 GB object fetches that
//! range, not the object, and rarely waits on the network), and a Parquet file is read through
//! [`ChunkReader`] (its footer, then the column chunks of the row groups it reads).

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use parquet::file::reader::{ChunkReader, Length};
use tinyforge_store::Remote;

/// Bytes fetched per GET by a sequential read.
const BLOCK: u64 = 8 << 20;

/// One object of an input folder in an object store.
#[derive(Debug, Clone)]
pub struct RemoteFile {
    pub remote: Arc<Remote>,
    /// Relative to the remote folder.
    pub name: String,
    pub size: u64,
}

impl RemoteFile {
    fn get(&self, range: std::ops::Range<u64>) -> io::Result<Vec<u8>> {
        self.remote
            .get_range(&self.name, range)
            .map_err(|err| io::Error::other(err.to_string()))
    }

    /// A reader from byte `start`.
    pub fn reader_at(&self, start: u64) -> RemoteRead {
        RemoteRead {
            file: self.clone(),
            pos: start,
            block: Vec::new(),
            block_start: 0,
            ahead: None,
        }
    }

    /// The block at `start`, fetched on a thread of its own.
    fn fetch_ahead(&self, start: u64) -> Ahead {
        let file = self.clone();
        let end = (start + BLOCK).min(self.size);
        Ahead {
            start,
            handle: std::thread::spawn(move || file.get(start..end)),
        }
    }
}

/// A block being fetched ahead of the reader.
struct Ahead {
    start: u64,
    handle: std::thread::JoinHandle<io::Result<Vec<u8>>>,
}

/// Reads an object in order, one ranged GET per block, the next block fetched while the
/// current one is read; seeking moves the position (a read outside the current block fetches
/// the block there).
pub struct RemoteRead {
    file: RemoteFile,
    pos: u64,
    block: Vec<u8>,
    block_start: u64,
    ahead: Option<Ahead>,
}

impl RemoteRead {
    /// Makes the block at `self.pos` current, then starts fetching the one after it.
    fn load(&mut self) -> io::Result<()> {
        let block = match self.ahead.take() {
            Some(ahead) if ahead.start == self.pos => ahead
                .handle
                .join()
                .map_err(|_| io::Error::other("a read-ahead thread panicked"))??,
            _ => {
                let end = (self.pos + BLOCK).min(self.file.size);
                self.file.get(self.pos..end)?
            }
        };
        self.block = block;
        self.block_start = self.pos;
        let next = self.pos + self.block.len() as u64;
        if !self.block.is_empty() && next < self.file.size {
            self.ahead = Some(self.file.fetch_ahead(next));
        }
        Ok(())
    }
}

impl Read for RemoteRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.file.size || buf.is_empty() {
            return Ok(0);
        }
        let in_block =
            self.pos >= self.block_start && self.pos < self.block_start + self.block.len() as u64;
        if !in_block {
            self.load()?;
            if self.block.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}/{}: no bytes at offset {} of {}",
                        self.file.remote.url(),
                        self.file.name,
                        self.pos,
                        self.file.size
                    ),
                ));
            }
        }
        let at = (self.pos - self.block_start) as usize;
        let n = buf.len().min(self.block.len() - at);
        buf[..n].copy_from_slice(&self.block[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RemoteRead {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.file.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

impl Length for RemoteFile {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for RemoteFile {
    type T = RemoteRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<RemoteRead> {
        Ok(self.reader_at(start))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let bytes = self
            .get(start..start + length as u64)
            .map_err(|err| parquet::errors::ParquetError::External(Box::new(err)))?;
        Ok(Bytes::from(bytes))
    }
}

/// A file's bytes for reading: a local file, or an object read where it is.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// What a Parquet reader reads from: a local file or an object (ranged GETs).
pub enum ChunkSource {
    Local(std::fs::File),
    Remote(RemoteFile),
}

impl Length for ChunkSource {
    fn len(&self) -> u64 {
        match self {
            ChunkSource::Local(file) => file.len(),
            ChunkSource::Remote(file) => file.size,
        }
    }
}

impl ChunkReader for ChunkSource {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(match self {
            ChunkSource::Local(file) => Box::new(file.get_read(start)?),
            ChunkSource::Remote(file) => Box::new(file.reader_at(start)),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            ChunkSource::Local(file) => file.get_bytes(start, length),
            ChunkSource::Remote(file) => file.get_bytes(start, length),
        }
    }
}

/// The objects an input pattern given as a URL names, each with its name relative to the
/// pattern's folder (as [`crate::plan`] lists a local folder or glob): a folder URL is every
/// object under it (of a known format, or any with `any_file`), a URL with `*`, `?` or `[`
/// in its last components is matched against the names under the folder before them
/// (`*` stays inside one folder, `**` crosses), and a URL naming one object is that object.
pub fn list_url(
    url: &str,
    any_file: bool,
    known_format: impl Fn(&str) -> bool,
) -> crate::Result<Vec<(String, RemoteFile)>> {
    let store = |err: tinyforge_store::Error| crate::Error::NoInput {
        pattern: url.to_owned(),
        hint: format!(" ({err})"),
    };
    let glob_at = url.find(['*', '?', '[']);
    let (base, pattern) = match glob_at {
        Some(at) => {
            let slash = url[..at].rfind('/').unwrap_or(0);
            let pattern =
                glob::Pattern::new(&url[slash + 1..]).map_err(|err| crate::Error::NoInput {
                    pattern: url.to_owned(),
                    hint: format!(" (bad pattern: {err})"),
                })?;
            (url[..slash].to_owned(), Some(pattern))
        }
        None => (url.trim_end_matches('/').to_owned(), None),
    };
    let remote = Arc::new(Remote::open(&base).map_err(store)?);
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    };
    let mut found = Vec::new();
    for object in remote.objects().map_err(store)? {
        let hidden = object.name.split('/').any(|part| part.starts_with('.'));
        let wanted = match &pattern {
            Some(pattern) => pattern.matches_with(&object.name, options),
            None => !hidden && (any_file || known_format(&object.name)),
        };
        if wanted {
            let file = RemoteFile {
                remote: remote.clone(),
                name: object.name.clone(),
                size: object.size,
            };
            found.push((object.name, file));
        }
    }
    if found.is_empty()
        && pattern.is_none()
        && let Some((folder, name)) = tinyforge_store::split_object_url(&base)
    {
        let folder = Arc::new(Remote::open(folder).map_err(store)?);
        if let Some(object) = folder.object(name).map_err(store)? {
            let file = RemoteFile {
                remote: folder,
                name: name.to_owned(),
                size: object.size,
            };
            found.push((name.to_owned(), file));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_seeks_across_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(BLOCK as usize * 2 + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(tmp.path().join("big.bin"), &data).unwrap();
        let remote = Remote::open(&format!("file://{}", tmp.path().display())).unwrap();
        let file = RemoteFile {
            remote: Arc::new(remote),
            name: "big.bin".into(),
            size: data.len() as u64,
        };
        let mut all = Vec::new();
        file.reader_at(0).read_to_end(&mut all).unwrap();
        assert!(all == data);
        let start = BLOCK - 10;
        let mut reader = file.reader_at(start);
        let mut some = vec![0u8; 100];
        reader.read_exact(&mut some).unwrap();
        assert_eq!(some, data[start as usize..start as usize + 100]);
        reader.seek(SeekFrom::Start(5)).unwrap();
        let mut five = [0u8; 5];
        reader.read_exact(&mut five).unwrap();
        assert_eq!(five, data[5..10]);
        assert_eq!(file.get_bytes(7, 3).unwrap().as_ref(), &data[7..10]);
    }

    #[test]
    fn urls_list_like_folders_and_globs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("raw/sub")).unwrap();
        for name in [
            "raw/a.jsonl",
            "raw/b.txt",
            "raw/x.bin",
            "raw/sub/c.jsonl",
            "raw/.hidden.jsonl",
        ] {
            std::fs::write(root.join(name), b"{}").unwrap();
        }
        let url = |rest: &str| format!("file://{}/{rest}", root.display());
        let names = |url: &str, any: bool| -> Vec<String> {
            list_url(url, any, |n| !n.ends_with(".bin"))
                .unwrap()
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        assert_eq!(
            names(&url("raw"), false),
            ["a.jsonl", "b.txt", "sub/c.jsonl"]
        );
        assert_eq!(names(&url("raw/"), true).len(), 4);
        // As `glob` matches local files: `*` matches a leading dot.
        assert_eq!(
            names(&url("raw/*.jsonl"), false),
            [".hidden.jsonl", "a.jsonl"]
        );
        assert_eq!(names(&url("raw/**/c.jsonl"), false), ["sub/c.jsonl"]);
        assert_eq!(names(&url("raw/sub/c.jsonl"), false), ["c.jsonl"]);
        assert!(names(&url("raw/none"), false).is_empty());
    }
}
