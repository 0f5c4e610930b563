//! Random access to a dataset: opening parses only the manifest; a shard's index is read on the
//! first touch of that shard; a token range decompresses only the frames it overlaps, and every
//! decompressed frame is checked against its checksum before a token leaves this module.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use fs_err::os::unix::fs::FileExt;

use crate::cache::SharedLru;
use crate::error::{Error, Result};
use crate::format::{self, DocEntry, Dtype, FrameEntry, TRAILER_LEN, Trailer, checksum, corrupt};
use crate::manifest::Manifest;

/// Reader settings.
#[derive(Debug, Clone, Copy)]
pub struct ReaderOptions {
    /// Decompressed frames kept in memory (shared by all threads).
    pub cache_frames: usize,
    /// Shard files kept open at once (a dataset may have more shards than the fd limit).
    pub open_files: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            cache_frames: 256,
            open_files: 64,
        }
    }
}

/// The index of one shard, loaded on first touch.
pub(crate) struct ShardIndex {
    pub(crate) frames: Vec<FrameEntry>,
    /// Token offset (within the shard) where each frame starts, plus the shard's token count.
    pub(crate) frame_starts: Vec<u64>,
    pub(crate) trailer: Trailer,
    docs: OnceLock<Arc<[DocEntry]>>,
}

/// Where a document lies in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentRef {
    /// Document number in the whole dataset (0-based, stream order).
    pub index: u64,
    /// The id recorded when the document was written (the `id` column of the documents).
    pub id: u64,
    /// First token of the document in the stream.
    pub start: u64,
    /// One past its EOS token.
    pub end: u64,
}

/// An open dataset. `Sync`: share it between threads behind an `Arc`.
pub struct Dataset {
    dir: PathBuf,
    manifest: Manifest,
    /// Stream offset of each shard, plus the total.
    starts: Vec<u64>,
    /// Document number of each shard's first document, plus the total.
    doc_starts: Vec<u64>,
    indexes: Vec<OnceLock<Arc<ShardIndex>>>,
    /// The object-store folder of a dataset opened by URL: frames are ranged GETs.
    remote: Option<Arc<tinyforge_store::Remote>>,
    files: SharedLru<usize, Arc<ShardFile>>,
    frames: SharedLru<(usize, usize), Arc<Vec<u8>>>,
}

/// Where a shard's bytes come from: a local file (positioned reads) or an object (ranged GETs).
enum ShardFile {
    Local(fs_err::File),
    Remote {
        remote: Arc<tinyforge_store::Remote>,
        name: String,
    },
}

impl ShardFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            ShardFile::Local(file) => file.read_exact_at(buf, offset),
            ShardFile::Remote { remote, name } => {
                let end = offset + buf.len() as u64;
                let bytes = remote
                    .get_range(name, offset..end)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                if bytes.len() != buf.len() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}/{name}: bytes {offset}..{end} gave {} bytes",
                            remote.url(),
                            bytes.len()
                        ),
                    ));
                }
                buf.copy_from_slice(&bytes);
                Ok(())
            }
        }
    }
}

/// One thread's decompression state: creating a zstd context costs more than decompressing a
/// small frame, and a window read allocates nothing.
struct FrameDecoder {
    zstd: zstd::bulk::Decompressor<'static>,
    compressed: Vec<u8>,
    stored: Vec<u8>,
}

thread_local! {
    static DECODER: RefCell<Option<FrameDecoder>> = const { RefCell::new(None) };
}

impl Dataset {
    /// Opens `dir/manifest.json` with default options. Touches no shard file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, ReaderOptions::default())
    }

    /// `dir` may be an object-store URL (`s3://bucket/tokens`, `gs://`, `az://`, `file://`):
    /// the manifest is one GET, and every header, index and frame read a ranged GET of its
    /// bytes (through the same frame cache).
    pub fn open_with(dir: impl AsRef<Path>, options: ReaderOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let url = dir.to_str().filter(|text| tinyforge_store::is_url(text));
        let (manifest, remote) = match url {
            None => (Manifest::read(&dir)?, None),
            Some(url) => {
                let remote = tinyforge_store::Remote::open(url)?;
                let bytes = remote.get(crate::MANIFEST_FILE)?;
                let path = dir.join(crate::MANIFEST_FILE);
                (Manifest::parse(&bytes, &path)?, Some(Arc::new(remote)))
            }
        };
        let mut starts = Vec::with_capacity(manifest.shards.len() + 1);
        let mut doc_starts = Vec::with_capacity(manifest.shards.len() + 1);
        let (mut tokens, mut docs) = (0u64, 0u64);
        for shard in &manifest.shards {
            starts.push(tokens);
            doc_starts.push(docs);
            tokens += shard.tokens;
            docs += shard.documents;
        }
        starts.push(tokens);
        doc_starts.push(docs);
        let indexes = (0..manifest.shards.len())
            .map(|_| OnceLock::new())
            .collect();
        Ok(Self {
            dir,
            manifest,
            starts,
            doc_starts,
            indexes,
            remote,
            files: SharedLru::new(options.open_files.max(1)),
            frames: SharedLru::new(options.cache_frames),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn total_tokens(&self) -> u64 {
        self.manifest.total_tokens
    }

    pub fn documents(&self) -> u64 {
        self.manifest.documents
    }

    pub fn eos_id(&self) -> u32 {
        self.manifest.eos_id
    }

    pub fn vocab_size(&self) -> u32 {
        self.manifest.vocab_size
    }

    pub fn dtype(&self) -> Dtype {
        self.manifest.dtype
    }

    pub fn shard_count(&self) -> usize {
        self.manifest.shards.len()
    }

    /// Stream offset of the first token of `shard`.
    pub fn shard_start(&self, shard: usize) -> u64 {
        self.starts[shard]
    }

    /// The path of a shard file.
    pub fn shard_path(&self, shard: usize) -> PathBuf {
        self.dir.join(&self.manifest.shards[shard].file)
    }

    /// A file of the dataset folder beside the manifest (its tokenizer files), or `None` when
    /// there is no such file: one read, or one GET for a dataset opened by URL.
    pub fn read_side_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match &self.remote {
            None => {
                let path = self.dir.join(name);
                Ok(path.is_file().then(|| fs_err::read(&path)).transpose()?)
            }
            Some(remote) => Ok(remote.get_if_exists(name)?),
        }
    }

    /// The whole bytes of a shard file: one read, or one GET for a dataset opened by URL.
    pub(crate) fn shard_bytes(&self, shard: usize) -> Result<Vec<u8>> {
        Ok(match &self.remote {
            None => fs_err::read(self.shard_path(shard))?,
            Some(remote) => remote.get(&self.manifest.shards[shard].file)?,
        })
    }

    /// Number of training units of `seq_len` tokens: unit u is tokens [u*L, u*L + L + 1).
    pub fn unit_count(&self, seq_len: usize) -> u64 {
        if seq_len == 0 {
            return 0;
        }
        self.total_tokens().saturating_sub(1) / seq_len as u64
    }

    /// The `seq_len + 1` tokens of training unit `unit`.
    pub fn window(&self, unit: u64, seq_len: usize) -> Result<Vec<u32>> {
        let mut out = vec![0; seq_len + 1];
        self.window_into(unit, seq_len, &mut out)?;
        Ok(out)
    }

    /// [`Dataset::window`] into a caller's buffer of exactly `seq_len + 1` tokens.
    pub fn window_into(&self, unit: u64, seq_len: usize, out: &mut [u32]) -> Result<()> {
        if seq_len == 0 || out.len() != seq_len + 1 {
            return Err(Error::InvalidArgument(format!(
                "a window of seq_len {seq_len} needs a buffer of {} tokens, got {}",
                seq_len + 1,
                out.len()
            )));
        }
        if unit >= self.unit_count(seq_len) {
            let start = unit.saturating_mul(seq_len as u64);
            return Err(Error::OutOfRange {
                start,
                end: start.saturating_add(seq_len as u64 + 1),
                total: self.total_tokens(),
            });
        }
        self.read_range_into(unit * seq_len as u64, out)
    }

    /// Tokens [start, start + len) of the stream.
    pub fn read_range(&self, start: u64, len: usize) -> Result<Vec<u32>> {
        let mut out = vec![0; len];
        self.read_range_into(start, &mut out)?;
        Ok(out)
    }

    /// Fills `out` with the tokens starting at `start`.
    pub fn read_range_into(&self, start: u64, out: &mut [u32]) -> Result<()> {
        let total = self.total_tokens();
        let end = start
            .checked_add(out.len() as u64)
            .filter(|&end| end <= total);
        let Some(end) = end else {
            return Err(Error::OutOfRange {
                start,
                end: start.saturating_add(out.len() as u64),
                total,
            });
        };
        let mut pos = start;
        let mut written = 0usize;
        while pos < end {
            let shard = self.shard_of(pos);
            let index = self.index(shard)?;
            let local = pos - self.starts[shard];
            let frame = index.frame_starts.partition_point(|&s| s <= local) - 1;
            let skip = (local - index.frame_starts[frame]) as usize;
            if skip == 0 && end - pos == 1 {
                // The last token of a window is often the first of the next frame: the index
                // holds it (under the frame table's checksum), so no second frame is decompressed.
                out[written] = index.frames[frame].first_token;
                break;
            }
            let take = (index.frames[frame].tokens as usize - skip).min((end - pos) as usize);
            let into = &mut out[written..written + take];
            if let Some(bytes) = self.frames.get(&(shard, frame)) {
                self.dtype().decode_frame(&bytes, skip, into);
            } else if take == index.frames[frame].tokens as usize {
                // A whole frame (an aligned training window): decoded straight into the
                // caller's buffer and not cached, as nothing else will read it soon.
                self.with_frame(shard, frame, &index, |bytes| {
                    self.dtype().decode_frame(bytes, 0, into)
                })?;
            } else {
                let bytes = Arc::new(self.with_frame(shard, frame, &index, <[u8]>::to_vec)?);
                self.frames.insert((shard, frame), bytes.clone());
                self.dtype().decode_frame(&bytes, skip, into);
            }
            written += take;
            pos += take as u64;
        }
        Ok(())
    }

    /// The shard holding stream position `pos` (< total): the last shard starting at or
    /// before it, which skips empty shards.
    pub(crate) fn shard_of(&self, pos: u64) -> usize {
        self.starts.partition_point(|&s| s <= pos) - 1
    }

    /// The document holding stream position `token`.
    pub fn document_at(&self, token: u64) -> Result<DocumentRef> {
        if token >= self.total_tokens() {
            return Err(Error::OutOfRange {
                start: token,
                end: token + 1,
                total: self.total_tokens(),
            });
        }
        let shard = self.shard_of(token);
        let docs = self.shard_documents(shard)?;
        let local = token - self.starts[shard];
        let i = docs.partition_point(|d| d.end <= local);
        let doc = docs.get(i).ok_or_else(|| {
            corrupt(
                &self.shard_path(shard),
                format!("no document covers token {local} of the shard"),
            )
        })?;
        let start = if i == 0 { 0 } else { docs[i - 1].end };
        Ok(DocumentRef {
            index: self.doc_starts[shard] + i as u64,
            id: doc.id,
            start: self.starts[shard] + start,
            end: self.starts[shard] + doc.end,
        })
    }

    /// The document table of a shard (ends are token offsets within the shard).
    pub fn shard_documents(&self, shard: usize) -> Result<Arc<[DocEntry]>> {
        let index = self.index(shard)?;
        if let Some(docs) = index.docs.get() {
            return Ok(docs.clone());
        }
        let path = self.shard_path(shard);
        let file = self.file(shard)?;
        let len = index.trailer.doc_table_len();
        let offset = self.manifest.shards[shard].bytes - TRAILER_LEN as u64 - len;
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, offset)?;
        if checksum(&bytes) != index.trailer.doc_table_checksum {
            return Err(corrupt(&path, "document table checksum mismatch"));
        }
        let docs: Arc<[DocEntry]> = format::decode_doc_table(&bytes).into();
        let mut previous = 0;
        for doc in docs.iter() {
            if doc.end <= previous || doc.end > index.trailer.tokens {
                return Err(corrupt(&path, "document table is not increasing"));
            }
            previous = doc.end;
        }
        if previous != index.trailer.tokens {
            return Err(corrupt(&path, "documents do not cover the shard's tokens"));
        }
        let _ = index.docs.set(docs.clone());
        Ok(docs)
    }

    pub(crate) fn index(&self, shard: usize) -> Result<Arc<ShardIndex>> {
        if let Some(index) = self.indexes[shard].get() {
            return Ok(index.clone());
        }
        // Two threads may load the same index at once; both get equal values and one wins.
        let index = Arc::new(self.load_index(shard)?);
        let _ = self.indexes[shard].set(index.clone());
        Ok(self.indexes[shard].get().cloned().unwrap_or(index))
    }

    fn load_index(&self, shard: usize) -> Result<ShardIndex> {
        let entry = &self.manifest.shards[shard];
        let path = self.shard_path(shard);
        let file = self.file(shard)?;
        if entry.bytes < TRAILER_LEN as u64 {
            return Err(corrupt(
                &path,
                format!("manifest says {} bytes, too small for a shard", entry.bytes),
            ));
        }
        let mut trailer = [0u8; TRAILER_LEN];
        file.read_exact_at(&mut trailer, entry.bytes - TRAILER_LEN as u64)?;
        let trailer = Trailer::decode(&trailer, &path)?;
        let table_offset = trailer.frame_table_offset(entry.bytes, &path)?;
        let mut table = vec![0u8; trailer.frame_table_len() as usize];
        file.read_exact_at(&mut table, table_offset)?;
        let frame_tokens = self.manifest.frame_tokens;
        ShardIndex::parse(&path, entry, frame_tokens, trailer, &table, table_offset)
    }

    fn file(&self, shard: usize) -> Result<Arc<ShardFile>> {
        if let Some(file) = self.files.get(&shard) {
            return Ok(file);
        }
        let file = Arc::new(match &self.remote {
            None => ShardFile::Local(fs_err::File::open(self.shard_path(shard))?),
            Some(remote) => ShardFile::Remote {
                remote: remote.clone(),
                name: self.manifest.shards[shard].file.clone(),
            },
        });
        self.files.insert(shard, file.clone());
        Ok(file)
    }

    /// Reads, decompresses and checks one frame into this thread's buffer, then hands its
    /// stored bytes (see [`Dtype::decode_frame`]) to `use_bytes`. No cache.
    pub(crate) fn with_frame<R>(
        &self,
        shard: usize,
        frame: usize,
        index: &ShardIndex,
        use_bytes: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let entry = index.frames[frame];
        let file = self.file(shard)?;
        let expected_len = entry.tokens as usize * self.dtype().width();
        let corrupt_frame = |detail: String| Error::CorruptFrame {
            file: self.shard_path(shard),
            frame: frame as u64,
            detail,
        };
        DECODER.with(|cell| {
            let mut slot = cell.borrow_mut();
            let decoder = match &mut *slot {
                Some(decoder) => decoder,
                empty => empty.insert(FrameDecoder {
                    zstd: zstd::bulk::Decompressor::new()?,
                    compressed: Vec::new(),
                    stored: Vec::new(),
                }),
            };
            decoder.compressed.resize(entry.compressed_len as usize, 0);
            file.read_exact_at(&mut decoder.compressed, entry.offset)?;
            // One byte of room beyond the expected size tells "too long" from "exact".
            decoder.stored.resize(expected_len + 1, 0);
            let len = decoder
                .zstd
                .decompress_to_buffer(&decoder.compressed, &mut decoder.stored[..])
                .map_err(|e| corrupt_frame(e.to_string()))?;
            if len != expected_len {
                return Err(corrupt_frame(format!(
                    "decompressed to {}{len} bytes, the index says {expected_len}",
                    if len > expected_len { "more than " } else { "" }
                )));
            }
            let bytes = &decoder.stored[..len];
            let actual = checksum(bytes);
            if actual != entry.checksum {
                return Err(Error::FrameChecksum {
                    file: self.shard_path(shard),
                    frame: frame as u64,
                    expected: entry.checksum,
                    actual,
                });
            }
            Ok(use_bytes(bytes))
        })
    }
}

impl ShardIndex {
    /// Checks a frame table against its trailer and the manifest (its entry for the shard and
    /// its frame size).
    pub(crate) fn parse(
        path: &Path,
        entry: &crate::manifest::ShardEntry,
        frame_tokens: u32,
        trailer: Trailer,
        table: &[u8],
        table_offset: u64,
    ) -> Result<Self> {
        if checksum(table) != trailer.frame_table_checksum {
            return Err(corrupt(path, "frame table checksum mismatch"));
        }
        if trailer.tokens != entry.tokens
            || trailer.docs != entry.documents
            || trailer.frames != entry.frames
        {
            return Err(corrupt(
                path,
                format!(
                    "index holds {} tokens, {} documents, {} frames; the manifest says {}, {}, {}",
                    trailer.tokens,
                    trailer.docs,
                    trailer.frames,
                    entry.tokens,
                    entry.documents,
                    entry.frames
                ),
            ));
        }
        let frames = format::decode_frame_table(table);
        let mut frame_starts = Vec::with_capacity(frames.len() + 1);
        let mut tokens = 0u64;
        // Frames follow the 8-byte skippable-frame header of the index at the latest.
        let data_end = table_offset - 8;
        for (i, frame) in frames.iter().enumerate() {
            let end = frame.offset + u64::from(frame.compressed_len);
            if frame.tokens == 0 || frame.offset < format::HEADER_LEN || end > data_end {
                return Err(corrupt(
                    path,
                    format!("frame {i} has an impossible position or size"),
                ));
            }
            // A reader decodes a frame into a buffer of the size its entry claims: a claim
            // past the dataset's frame size (up to 16 GiB) must not become an allocation.
            if frame.tokens > frame_tokens {
                return Err(corrupt(
                    path,
                    format!(
                        "frame {i} claims {} tokens, over the dataset's frame size of {frame_tokens}",
                        frame.tokens
                    ),
                ));
            }
            frame_starts.push(tokens);
            tokens += u64::from(frame.tokens);
        }
        frame_starts.push(tokens);
        if tokens != trailer.tokens {
            return Err(corrupt(
                path,
                format!(
                    "frames hold {tokens} tokens, the trailer says {}",
                    trailer.tokens
                ),
            ));
        }
        Ok(Self {
            frames,
            frame_starts,
            trailer,
            docs: OnceLock::new(),
        })
    }
}
