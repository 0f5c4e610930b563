//! Writing shards: documents in, zstd frames and an index out, under a temporary name until the
//! shard is complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{
    self, DEFAULT_ZSTD_LEVEL, DocEntry, Dtype, FrameEntry, SKIPPABLE_INDEX, TRAILER_LEN, Trailer,
    checksum, checksum_string,
};
use crate::manifest::{DatasetHeader, ShardEntry};
use tinyforge_task::AtomicFile;

/// Settings of a shard writer.
#[derive(Debug, Clone)]
pub struct ShardOptions {
    pub dtype: Dtype,
    pub vocab_size: u32,
    pub eos_id: u32,
    pub frame_tokens: u32,
    pub zstd_level: i32,
}

impl ShardOptions {
    /// Options matching a dataset header, at [`DEFAULT_ZSTD_LEVEL`].
    pub fn from_header(header: &DatasetHeader) -> Self {
        Self {
            dtype: header.dtype,
            vocab_size: header.vocab_size,
            eos_id: header.eos_id,
            frame_tokens: header.frame_tokens,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }

    fn check(&self) -> Result<()> {
        if self.frame_tokens == 0 {
            return Err(Error::InvalidArgument(
                "frame_tokens must be at least 1".into(),
            ));
        }
        if self.dtype == Dtype::U16 && self.vocab_size > 1 << 16 {
            return Err(Error::InvalidArgument(format!(
                "dtype u16 cannot hold a vocabulary of {} tokens",
                self.vocab_size
            )));
        }
        if self.eos_id >= self.vocab_size {
            return Err(Error::InvalidArgument(format!(
                "eos_id {} is outside the vocabulary of {}",
                self.eos_id, self.vocab_size
            )));
        }
        Ok(())
    }
}

/// Writes one shard file. Documents go in whole; the EOS id is appended after each.
pub struct ShardWriter {
    options: ShardOptions,
    final_path: PathBuf,
    out: AtomicFile,
    hasher: xxhash_rust::xxh3::Xxh3,
    compressor: zstd::bulk::Compressor<'static>,
    /// Tokens of the frame being filled.
    pending: Vec<u32>,
    /// The stored layout of a frame, reused.
    layout: Vec<u8>,
    offset: u64,
    frames: Vec<FrameEntry>,
    docs: Vec<DocEntry>,
    tokens: u64,
}

impl ShardWriter {
    /// Starts `path` (written under [`tinyforge_task::temp_path`] until [`ShardWriter::finish`]).
    pub fn create(path: &Path, options: ShardOptions) -> Result<Self> {
        options.check()?;
        let out = AtomicFile::create(path)?;
        let compressor = zstd::bulk::Compressor::new(options.zstd_level)?;
        let mut writer = Self {
            pending: Vec::with_capacity(options.frame_tokens as usize),
            layout: Vec::with_capacity(options.frame_tokens as usize * options.dtype.width()),
            options,
            final_path: path.to_path_buf(),
            out,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            compressor,
            offset: 0,
            frames: Vec::new(),
            docs: Vec::new(),
            tokens: 0,
        };
        writer.emit(&format::encode_header(writer.options.dtype))?;
        Ok(writer)
    }

    /// Tokens written so far, EOS included.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    pub fn documents(&self) -> u64 {
        self.docs.len() as u64
    }

    /// Appends a document (its tokens, then EOS). `id` is recorded in the index.
    pub fn push_document(&mut self, id: u64, tokens: &[u32]) -> Result<()> {
        let vocab_size = self.options.vocab_size;
        if let Some(&token) = tokens.iter().find(|&&t| t >= vocab_size) {
            return Err(Error::TokenOutOfRange {
                token,
                vocab_size,
                document: id,
            });
        }
        let frame_tokens = self.options.frame_tokens as usize;
        let eos = [self.options.eos_id];
        for mut rest in [tokens, &eos] {
            while !rest.is_empty() {
                let room = frame_tokens - self.pending.len();
                let (now, later) = rest.split_at(room.min(rest.len()));
                self.pending.extend_from_slice(now);
                rest = later;
                if self.pending.len() == frame_tokens {
                    self.flush_frame()?;
                }
            }
        }
        self.tokens += tokens.len() as u64 + 1;
        self.docs.push(DocEntry {
            end: self.tokens,
            id,
        });
        Ok(())
    }

    fn flush_frame(&mut self) -> Result<()> {
        let Some(&first_token) = self.pending.first() else {
            return Ok(());
        };
        self.layout.clear();
        self.options
            .dtype
            .encode_frame(&self.pending, &mut self.layout);
        let compressed = self.compressor.compress(&self.layout)?;
        let entry = FrameEntry {
            offset: self.offset,
            compressed_len: u32::try_from(compressed.len())
                .map_err(|_| Error::InvalidArgument("frame larger than 4 GiB".into()))?,
            tokens: self.pending.len() as u32,
            checksum: checksum(&self.layout),
            first_token,
        };
        self.emit(&compressed)?;
        self.frames.push(entry);
        self.pending.clear();
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes the index, syncs and renames the file to its final name.
    pub fn finish(mut self) -> Result<ShardEntry> {
        self.flush_frame()?;
        let frame_table = format::encode_frame_table(&self.frames);
        let doc_table = format::encode_doc_table(&self.docs);
        let trailer = Trailer {
            frames: self.frames.len() as u64,
            docs: self.docs.len() as u64,
            tokens: self.tokens,
            frame_table_checksum: checksum(&frame_table),
            doc_table_checksum: checksum(&doc_table),
        };
        let index_len = frame_table.len() + doc_table.len() + TRAILER_LEN;
        let index_len = u32::try_from(index_len).map_err(|_| {
            Error::InvalidArgument("shard index larger than 4 GiB: use smaller shards".into())
        })?;
        let mut index = Vec::with_capacity(index_len as usize + 8);
        index.extend_from_slice(&SKIPPABLE_INDEX.to_le_bytes());
        index.extend_from_slice(&index_len.to_le_bytes());
        index.extend_from_slice(&frame_table);
        index.extend_from_slice(&doc_table);
        index.extend_from_slice(&trailer.encode());
        self.emit(&index)?;
        self.out.commit()?;
        Ok(ShardEntry {
            file: self
                .final_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            tokens: self.tokens,
            documents: self.docs.len() as u64,
            frames: self.frames.len() as u64,
            bytes: self.offset,
            checksum: checksum_string(self.hasher.digest()),
        })
    }
}

/// The file name of shard `index` of a dataset.
pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:06}.tfs")
}

/// Writes documents into a folder of shards, starting a new shard once the current one holds
/// `shard_tokens` tokens (documents never straddle shards).
pub struct DatasetWriter {
    dir: PathBuf,
    options: ShardOptions,
    shard_tokens: u64,
    current: Option<ShardWriter>,
    finished: Vec<ShardEntry>,
}

impl DatasetWriter {
    /// A writer into `dir` (created if missing); `finished` are shards an earlier, interrupted
    /// run already wrote, so numbering continues after them.
    pub fn new(
        dir: &Path,
        options: ShardOptions,
        shard_tokens: u64,
        finished: Vec<ShardEntry>,
    ) -> Result<Self> {
        options.check()?;
        if shard_tokens == 0 {
            return Err(Error::InvalidArgument(
                "shard_tokens must be at least 1".into(),
            ));
        }
        fs_err::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            options,
            shard_tokens,
            current: None,
            finished,
        })
    }

    /// Appends a document; returns the shard it completed, if any.
    pub fn push_document(&mut self, id: u64, tokens: &[u32]) -> Result<Option<ShardEntry>> {
        if self.current.is_none() {
            let path = self.dir.join(shard_file_name(self.finished.len()));
            self.current = Some(ShardWriter::create(&path, self.options.clone())?);
        }
        let Some(shard) = self.current.as_mut() else {
            return Err(Error::Internal("no open shard".into()));
        };
        shard.push_document(id, tokens)?;
        if shard.tokens() >= self.shard_tokens {
            return self.close_shard();
        }
        Ok(None)
    }

    fn close_shard(&mut self) -> Result<Option<ShardEntry>> {
        match self.current.take() {
            Some(shard) => {
                let entry = shard.finish()?;
                self.finished.push(entry.clone());
                Ok(Some(entry))
            }
            None => Ok(None),
        }
    }

    /// Closes the last shard and returns every shard in order.
    pub fn finish(mut self) -> Result<Vec<ShardEntry>> {
        self.close_shard()?;
        Ok(self.finished)
    }
}
