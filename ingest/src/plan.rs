//! The plan: every input file listed in a fixed order, split into units (a file, or one row
//! group of a Parquet file) and packed into chunks. A chunk is the unit of scheduling, of
//! resume and of `--shard i/n`, and it alone decides which part files hold its documents, so
//! the output never depends on how many tasks or threads did the work.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::config::{Format, IngestConfig};
use crate::error::{Error, Result};
use crate::remote::{ChunkSource, ReadSeek, RemoteFile};

/// One input file.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Index of the `[[input]]` it came from.
    pub input: usize,
    pub path: PathBuf,
    /// Path relative to the input's folder or glob base: stable across machines, so it goes
    /// into document ids.
    pub rel: String,
    pub format: Format,
    pub compression: Compression,
    pub size: u64,
    /// Parquet only: rows per row group, or why the footer could not be read.
    pub row_groups: Option<std::result::Result<Vec<RowGroupInfo>, String>>,
    /// An input given as an object-store URL: the object, read where it is (`path` is then
    /// its URL).
    pub remote: Option<RemoteFile>,
}

impl InputFile {
    /// The file's raw bytes from the start: the local file, or the object (ranged GETs).
    pub fn open_raw(&self) -> std::io::Result<Box<dyn ReadSeek>> {
        Ok(match &self.remote {
            Some(remote) => Box::new(remote.reader_at(0)),
            None => Box::new(fs_err::File::open(&self.path)?),
        })
    }

    /// The file as a Parquet reader's source.
    pub fn chunk_source(&self) -> std::io::Result<ChunkSource> {
        Ok(match &self.remote {
            Some(remote) => ChunkSource::Remote(remote.clone()),
            None => ChunkSource::Local(fs_err::File::open(&self.path)?.into_parts().0),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone)]
pub struct RowGroupInfo {
    pub rows: u64,
    /// Index of the row group's first row in the file.
    pub first_row: u64,
    pub bytes: u64,
}

/// A piece of work: a whole file, one row group of a Parquet file, or a byte range of a large
/// JSONL file.
#[derive(Debug, Clone)]
pub struct Unit {
    pub file: usize,
    pub row_group: Option<usize>,
    /// A byte range of a large JSONL file: the lines that start in it.
    pub range: Option<ByteRange>,
    /// Bytes of the file the unit covers (compressed bytes for a compressed file): drives chunk
    /// packing and progress.
    pub bytes: u64,
}

/// The lines of a JSONL file whose first byte is in `start..end` of the (decompressed)
/// stream. Every line belongs to the range its first byte is in, so ranges that tile a stream
/// read every line exactly once, and a line's byte offset (its record id) is the same as in a
/// whole read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
    /// A zstd file cut at its frames: the file offset of the frame its reader starts decoding
    /// at. That frame's first decompressed byte is byte `start - 1` of the stream (byte 0 for
    /// the file's first range): the byte that tells whether a line starts at `start`, as the
    /// byte before a range of a plain file does. `None` for a plain file, read from
    /// `start - 1` directly.
    pub zstd_frame: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Chunk {
    pub units: std::ops::Range<usize>,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub files: Vec<InputFile>,
    pub units: Vec<Unit>,
    pub chunks: Vec<Chunk>,
    /// Hash of everything that decides the output bytes (listing, options); a resumed or merged
    /// run must see the same one.
    pub fingerprint: String,
    /// Digits in part numbers (at least 5).
    pub width: usize,
}

impl Plan {
    pub fn build(config: &IngestConfig) -> Result<Plan> {
        let mut files = Vec::new();
        for (index, input) in config.inputs.iter().enumerate() {
            let mut listed: Vec<(PathBuf, String, Option<RemoteFile>)> = Vec::new();
            for pattern in &input.paths {
                let found = list_pattern(pattern, input.format.is_some())?;
                if found.is_empty() {
                    let hint = if pattern.contains("/raw/") {
                        " (run scripts/fetch-data first?)".to_owned()
                    } else {
                        String::new()
                    };
                    return Err(Error::NoInput {
                        pattern: pattern.clone(),
                        hint,
                    });
                }
                listed.extend(found);
            }
            listed.sort_by(|a, b| a.0.cmp(&b.0));
            listed.dedup_by(|a, b| a.0 == b.0);
            for (path, rel, remote) in listed {
                let (guessed, compression) = guess_format(&path);
                let format = match (input.format, guessed) {
                    (Some(format), _) => format,
                    (None, Some(format)) => format,
                    (None, None) => {
                        return Err(Error::Config {
                            file: path.display().to_string(),
                            key: format!("input[{index}].format"),
                            message: format!(
                                "cannot tell the format from the extension; set one of {}",
                                Format::NAMES
                            ),
                        });
                    }
                };
                let size = match &remote {
                    Some(remote) => remote.size,
                    None => fs_err::metadata(&path)?.len(),
                };
                let mut file = InputFile {
                    input: index,
                    path,
                    rel,
                    format,
                    compression,
                    size,
                    row_groups: None,
                    remote,
                };
                if format == Format::Parquet {
                    file.row_groups = Some(read_row_groups(&file));
                }
                files.push(file);
            }
        }
        let mut units = Vec::new();
        for (file_index, file) in files.iter().enumerate() {
            let zstd = (file.format == Format::Jsonl
                && file.compression == Compression::Zstd
                && file.size > 2 * config.part_bytes)
                .then(|| zstd_ranges(file, config.part_bytes))
                .flatten();
            match &file.row_groups {
                Some(Ok(groups)) if !groups.is_empty() => {
                    for (group, info) in groups.iter().enumerate() {
                        units.push(Unit {
                            file: file_index,
                            row_group: Some(group),
                            range: None,
                            bytes: info.bytes.max(1),
                        });
                    }
                }
                // A plain JSONL file bigger than two parts is read as byte ranges of about a
                // part each (every line belongs to the range its first byte is in), so one
                // huge file is many chunks and many tasks.
                _ if file.format == Format::Jsonl
                    && file.compression == Compression::None
                    && file.size > 2 * config.part_bytes =>
                {
                    let pieces = file.size.div_ceil(config.part_bytes);
                    for piece in 0..pieces {
                        let start = file.size * piece / pieces;
                        let end = file.size * (piece + 1) / pieces;
                        units.push(Unit {
                            file: file_index,
                            row_group: None,
                            range: Some(ByteRange {
                                start,
                                end,
                                zstd_frame: None,
                            }),
                            bytes: (end - start).max(1),
                        });
                    }
                }
                // So is a zstd JSONL file of several frames that all declare their
                // decompressed size, cut at frame boundaries: the headers alone give every
                // frame's offset in the decompressed stream.
                _ if zstd.is_some() => {
                    for (range, bytes) in zstd.into_iter().flatten() {
                        units.push(Unit {
                            file: file_index,
                            row_group: None,
                            range: Some(range),
                            bytes: bytes.max(1),
                        });
                    }
                }
                _ => units.push(Unit {
                    file: file_index,
                    row_group: None,
                    range: None,
                    bytes: file.size.max(1),
                }),
            }
        }
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut start = 0;
        let mut bytes = 0u64;
        for (index, unit) in units.iter().enumerate() {
            if index > start && bytes + unit.bytes > config.part_bytes {
                chunks.push(Chunk {
                    units: start..index,
                    bytes,
                });
                start = index;
                bytes = 0;
            }
            bytes += unit.bytes;
        }
        if start < units.len() {
            chunks.push(Chunk {
                units: start..units.len(),
                bytes,
            });
        }
        let width = chunks.len().saturating_sub(1).to_string().len().max(5);
        let fingerprint = fingerprint(config, &files, &units);
        Ok(Plan {
            files,
            units,
            chunks,
            fingerprint,
            width,
        })
    }

    /// The chunks task `shard` does: every n-th, so tasks get a similar mix of inputs.
    pub fn task_chunks(&self, shard: crate::config::Shard) -> Vec<usize> {
        (0..self.chunks.len()).filter(|&c| shard.owns(c)).collect()
    }

    /// File name of part `part` of chunk `chunk`: `part-00007.parquet`, then
    /// `part-00007_001.parquet` when one chunk's input is more than a part's worth (`_` sorts
    /// after `.`, so names sort in document order).
    pub fn part_name(&self, chunk: usize, part: usize) -> String {
        let width = self.width;
        if part == 0 {
            format!("part-{chunk:0width$}.parquet")
        } else {
            format!("part-{chunk:0width$}_{part:03}.parquet")
        }
    }
}

fn fingerprint(config: &IngestConfig, files: &[InputFile], units: &[Unit]) -> String {
    let mut hasher = Xxh3::new();
    let mut feed = |text: &str| {
        hasher.update(text.as_bytes());
        hasher.update(&[0]);
    };
    // 2: JSONL record ids from byte offsets (they were line numbers), so that a file read as
    // byte ranges gives the ids of a file read whole.
    feed("tinyforge-documents/2");
    for input in &config.inputs {
        feed(&format!(
            "{:?}|{:?}|{}|{:?}",
            input.text, input.id_field, input.source, input.keep
        ));
    }
    for file in files {
        feed(&format!(
            "{}|{}|{:?}|{}",
            file.input, file.rel, file.format, file.size
        ));
    }
    // Where a zstd file is cut depends on its frames, not only on its size, and decides its
    // chunks and parts. Only such cuts are fed, so a plan without them keeps the fingerprint
    // it had before zstd files were split.
    for unit in units {
        if let Some(ByteRange {
            start,
            end,
            zstd_frame: Some(frame),
        }) = &unit.range
        {
            feed(&format!("zstd-range|{}|{start}|{end}|{frame}", unit.file));
        }
    }
    feed(&format!(
        "{}|{}|{}|{}|{}|{:?}|{:?}",
        config.part_bytes,
        config.row_group_bytes,
        config.min_chars,
        config.zstd_level,
        config.dedup,
        config.where_sql,
        config.keep_columns
    ));
    format!("{:032x}", hasher.digest128())
}

/// Extension → (format, compression).
pub fn guess_format(path: &Path) -> (Option<Format>, Compression) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (name, compression) = if let Some(stem) = name.strip_suffix(".gz") {
        (stem.to_owned(), Compression::Gzip)
    } else if let Some(stem) = name.strip_suffix(".zst") {
        (stem.to_owned(), Compression::Zstd)
    } else {
        (name, Compression::None)
    };
    let ext = name.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
    let format = match ext {
        "jsonl" | "ndjson" => Some(Format::Jsonl),
        "json" => Some(Format::Json),
        "parquet" | "pq" => Some(Format::Parquet),
        "html" | "htm" | "xhtml" => Some(Format::Html),
        "txt" | "text" | "md" | "rst" | "tex" | "rs" | "py" | "c" | "h" | "cc" | "cpp" | "hpp"
        | "go" | "java" | "js" | "ts" | "toml" | "yaml" | "yml" | "sh" => Some(Format::Text),
        _ => None,
    };
    (format, compression)
}

/// Files a pattern names, each with its path relative to the pattern's base. Folders are
/// searched recursively for files of a known format (any file when the format is set). A
/// pattern that is an object-store URL is listed there (see [`crate::remote::list_url`]).
fn list_pattern(
    pattern: &str,
    any_file: bool,
) -> Result<Vec<(PathBuf, String, Option<RemoteFile>)>> {
    if tinyforge_store::is_url(pattern) {
        let known = |name: &str| guess_format(Path::new(name)).0.is_some();
        return Ok(crate::remote::list_url(pattern, any_file, known)?
            .into_iter()
            .map(|(rel, file)| {
                let url = format!("{}/{}", file.remote.url(), file.name);
                (PathBuf::from(url), rel, Some(file))
            })
            .collect());
    }
    Ok(list_local(pattern, any_file)?
        .into_iter()
        .map(|(path, rel)| (path, rel, None))
        .collect())
}

fn list_local(pattern: &str, any_file: bool) -> Result<Vec<(PathBuf, String)>> {
    let is_glob = pattern.contains(['*', '?', '[']);
    if is_glob {
        let literal: String = pattern
            .chars()
            .take_while(|c| !matches!(c, '*' | '?' | '['))
            .collect();
        let base = match literal.rfind('/') {
            Some(pos) => PathBuf::from(&literal[..pos]),
            None => PathBuf::from("."),
        };
        let entries = glob::glob(pattern).map_err(|err| Error::NoInput {
            pattern: pattern.to_owned(),
            hint: format!(" (bad pattern: {err})"),
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(|err| Error::Io(err.into()))?;
            if path.is_file() {
                let rel = relative(&path, &base);
                out.push((path, rel));
            }
        }
        return Ok(out);
    }
    let path = PathBuf::from(pattern);
    if path.is_dir() {
        let mut out = Vec::new();
        walk(&path, &path, any_file, &mut out)?;
        Ok(out)
    } else if path.is_file() {
        let rel = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(vec![(path, rel)])
    } else {
        Ok(Vec::new())
    }
}

fn walk(dir: &Path, base: &Path, any_file: bool, out: &mut Vec<(PathBuf, String)>) -> Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, base, any_file, out)?;
        } else if any_file || guess_format(&path).0.is_some() {
            let rel = relative(&path, base);
            out.push((path, rel));
        }
    }
    Ok(())
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn read_row_groups(file: &InputFile) -> std::result::Result<Vec<RowGroupInfo>, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = file.chunk_source().map_err(|err| err.to_string())?;
    let reader =
        SerializedFileReader::new(file).map_err(|err| format!("corrupt Parquet file: {err}"))?;
    let mut first_row = 0;
    let groups = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|group| {
            let info = RowGroupInfo {
                rows: group.num_rows() as u64,
                first_row,
                bytes: group.compressed_size() as u64,
            };
            first_row += info.rows;
            info
        })
        .collect();
    Ok(groups)
}

/// The byte ranges of a zstd JSONL file made of several frames that all declare their
/// decompressed size: groups of consecutive frames of about `part_bytes` of the file each,
/// with their sizes in the file. `None` (read the file whole, as any other zstd file) for a
/// single frame, a frame that does not declare its size, or headers that do not add up (a
/// damaged or truncated file, or an unreadable one): its reader then meets the damage and
/// names where it is, and planning never fails on a file's content.
///
/// Range `k > 0` starts one byte after the first decompressed byte of its first frame, so that
/// its reader, decoding from that frame, sees the byte that tells whether a line starts at
/// the range's start (see [`ByteRange::zstd_frame`]).
fn zstd_ranges(file: &InputFile, part_bytes: u64) -> Option<Vec<(ByteRange, u64)>> {
    let raw = file.open_raw().ok()?;
    let frames = ZstdFrames::new(std::io::BufReader::with_capacity(4096, raw), file.size);
    // Cut at the first frame that starts at or after each of the points a plain file of this
    // size would be cut at. (file offset of the frame, its offset in the decompressed stream)
    let pieces = file.size.div_ceil(part_bytes.max(1));
    let mut cuts: Vec<(u64, u64)> = Vec::new();
    let mut next_cut = 1;
    let mut data_frames = 0u64;
    let mut total = 0u64;
    for frame in frames {
        let frame = frame.ok()?;
        let content = match frame.content {
            FrameContent::Skippable => continue,
            FrameContent::Unknown => return None,
            FrameContent::Size(content) => content,
        };
        if data_frames > 0
            && next_cut < pieces
            && frame.offset >= file.size * next_cut / pieces
            && cuts.last().is_none_or(|&(_, at)| total > at)
        {
            cuts.push((frame.offset, total));
            while next_cut < pieces && file.size * next_cut / pieces <= frame.offset {
                next_cut += 1;
            }
        }
        data_frames += 1;
        total = total.checked_add(content)?;
    }
    // A range holds at least one byte of the stream.
    cuts.retain(|&(_, at)| at.saturating_add(1) < total);
    if cuts.is_empty() {
        return None;
    }
    let mut starts = vec![(0, 0, 0)];
    starts.extend(cuts.iter().map(|&(frame, at)| (frame, at, at + 1)));
    let ranges = starts
        .iter()
        .enumerate()
        .map(|(index, &(frame, _, start))| {
            let (end_frame, end) = match starts.get(index + 1) {
                Some(&(frame, _, start)) => (frame, start),
                None => (file.size, total),
            };
            let range = ByteRange {
                start,
                end,
                zstd_frame: Some(frame),
            };
            (range, end_frame - frame)
        })
        .collect();
    Some(ranges)
}

/// What a zstd frame holds, as its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameContent {
    /// A skippable frame: no data.
    Skippable,
    /// A frame whose header does not declare its decompressed size.
    Unknown,
    /// A frame of this many decompressed bytes.
    Size(u64),
}

/// One frame of a zstd file: where it starts in the file (it ends where the next one starts)
/// and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ZstdFrame {
    offset: u64,
    content: FrameContent,
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
/// The largest block of a frame (RFC 8878: Block_Maximum_Size is at most 128 KiB).
const BLOCK_MAX: u64 = 128 << 10;

/// The frames of a zstd file (RFC 8878), one at a time, from the frame and block headers
/// alone: a few bytes are read per block of up to 128 KiB and the rest is skipped, so memory
/// stays bounded whatever the file's size, without decompressing. A file that does not end
/// exactly after a frame, a bad magic number, a reserved bit or block type: an error naming
/// the byte offset, which ends the walk.
struct ZstdFrames<R> {
    reader: std::io::BufReader<R>,
    pos: u64,
    size: u64,
    failed: bool,
}

impl<R: std::io::Read + std::io::Seek> ZstdFrames<R> {
    fn new(reader: std::io::BufReader<R>, size: u64) -> Self {
        ZstdFrames {
            reader,
            pos: 0,
            size,
            failed: false,
        }
    }

    /// The next `N` bytes.
    fn bytes<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut buf = [0; N];
        self.read(&mut buf)?;
        Ok(buf)
    }

    fn read(&mut self, buf: &mut [u8]) -> std::result::Result<(), String> {
        let at = self.pos;
        self.past_end(buf.len() as u64)?;
        std::io::Read::read_exact(&mut self.reader, buf)
            .map_err(|err| format!("byte {at}: cannot read: {err}"))
    }

    fn skip(&mut self, len: u64) -> std::result::Result<(), String> {
        let at = self.pos;
        self.past_end(len)?;
        let len = i64::try_from(len).map_err(|_| format!("byte {at}: {len} bytes to skip"))?;
        self.reader
            .seek_relative(len)
            .map_err(|err| format!("byte {at}: cannot read: {err}"))
    }

    /// Moves the position on by `len`, unless that is past the end of the file.
    fn past_end(&mut self, len: u64) -> std::result::Result<(), String> {
        match self.pos.checked_add(len) {
            Some(end) if end <= self.size => {
                self.pos = end;
                Ok(())
            }
            _ => Err(format!(
                "byte {}: the file ends inside a zstd frame ({} bytes)",
                self.pos, self.size
            )),
        }
    }

    fn frame(&mut self) -> std::result::Result<ZstdFrame, String> {
        let offset = self.pos;
        let magic = u32::from_le_bytes(self.bytes()?);
        if magic & 0xFFFF_FFF0 == SKIPPABLE_MAGIC {
            let len = u32::from_le_bytes(self.bytes()?);
            self.skip(u64::from(len))?;
            return Ok(ZstdFrame {
                offset,
                content: FrameContent::Skippable,
            });
        }
        if magic != ZSTD_MAGIC {
            return Err(format!(
                "byte {offset}: not a zstd frame (magic number {magic:#010x})"
            ));
        }
        let [descriptor] = self.bytes()?;
        if descriptor & 0x08 != 0 {
            return Err(format!(
                "byte {offset}: zstd frame header with its reserved bit set"
            ));
        }
        let single_segment = descriptor & 0x20 != 0;
        let checksum = descriptor & 0x04 != 0;
        let dictionary_len = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
        let content_len = match descriptor >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        // Window descriptor, then dictionary id.
        self.skip(u64::from(!single_segment) + dictionary_len)?;
        let mut content = [0; 8];
        self.read(&mut content[..content_len])?;
        let content = match content_len {
            0 => FrameContent::Unknown,
            // A two-byte size counts from 256.
            2 => FrameContent::Size(u64::from_le_bytes(content) + 256),
            _ => FrameContent::Size(u64::from_le_bytes(content)),
        };
        loop {
            let at = self.pos;
            let [a, b, c] = self.bytes()?;
            let header = u32::from_le_bytes([a, b, c, 0]);
            let size = u64::from(header >> 3);
            let stored = match (header >> 1) & 0x03 {
                // Raw and compressed blocks: `size` bytes follow.
                0 | 2 => size,
                // RLE: one byte, repeated `size` times.
                1 => 1,
                _ => return Err(format!("byte {at}: zstd block of the reserved type")),
            };
            if size > BLOCK_MAX {
                return Err(format!("byte {at}: zstd block of {size} bytes"));
            }
            self.skip(stored)?;
            if header & 1 != 0 {
                break;
            }
        }
        if checksum {
            self.skip(4)?;
        }
        Ok(ZstdFrame { offset, content })
    }
}

impl<R: std::io::Read + std::io::Seek> Iterator for ZstdFrames<R> {
    type Item = std::result::Result<ZstdFrame, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.size {
            return None;
        }
        let frame = self.frame();
        self.failed = frame.is_err();
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extensions() {
        assert_eq!(
            guess_format(Path::new("a/b.jsonl.zst")),
            (Some(Format::Jsonl), Compression::Zstd)
        );
        assert_eq!(
            guess_format(Path::new("b.JSON.gz")),
            (Some(Format::Json), Compression::Gzip)
        );
        assert_eq!(
            guess_format(Path::new("x.htm")),
            (Some(Format::Html), Compression::None)
        );
        assert_eq!(guess_format(Path::new("lib.rs")).0, Some(Format::Text));
        assert_eq!(guess_format(Path::new("img.png")).0, None);
    }

    /// A frame of raw blocks written by hand, with a header of any shape: the content size
    /// in `fcs` bytes (0: not declared; 1 needs a single segment), a dictionary id of `dict`
    /// bytes, a checksum or not.
    fn raw_frame(data: &[u8], fcs: usize, single: bool, dict: usize, checksum: bool) -> Vec<u8> {
        let fcs_flag = match fcs {
            0 | 1 => 0u8,
            2 => 1,
            4 => 2,
            _ => 3,
        };
        let dict_flag = match dict {
            0 => 0u8,
            1 => 1,
            2 => 2,
            _ => 3,
        };
        let mut out = ZSTD_MAGIC.to_le_bytes().to_vec();
        out.push(fcs_flag << 6 | u8::from(single) << 5 | u8::from(checksum) << 2 | dict_flag);
        if !single {
            // A window of 128 KiB.
            out.push(7 << 3);
        }
        out.extend(&0x0102_0304u32.to_le_bytes()[..dict]);
        let size = data.len() as u64 - if fcs == 2 { 256 } else { 0 };
        out.extend(&size.to_le_bytes()[..fcs]);
        let blocks: Vec<&[u8]> = if data.is_empty() {
            vec![&[]]
        } else {
            data.chunks(BLOCK_MAX as usize).collect()
        };
        for (index, block) in blocks.iter().enumerate() {
            let last = u32::from(index + 1 == blocks.len());
            let header = (block.len() as u32) << 3 | last;
            out.extend(&header.to_le_bytes()[..3]);
            out.extend(*block);
        }
        if checksum {
            out.extend([0xAB; 4]);
        }
        out
    }

    fn skippable(payload: &[u8]) -> Vec<u8> {
        let mut out = (SKIPPABLE_MAGIC | 0x7).to_le_bytes().to_vec();
        out.extend((payload.len() as u32).to_le_bytes());
        out.extend(payload);
        out
    }

    fn walk(bytes: &[u8]) -> Vec<std::result::Result<ZstdFrame, String>> {
        let reader = std::io::BufReader::with_capacity(16, std::io::Cursor::new(bytes));
        ZstdFrames::new(reader, bytes.len() as u64).collect()
    }

    fn encoded(data: &[u8], content_size: bool, checksum: bool) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_contentsize(content_size).unwrap();
        encoder.include_checksum(checksum).unwrap();
        if content_size {
            encoder
                .set_pledged_src_size(Some(data.len() as u64))
                .unwrap();
        }
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// The frame walk finds every frame where libzstd does (its compressed size) and reads the
    /// same declared content size, for library-made frames (compressed, RLE and raw blocks,
    /// checksums, sizes declared or not) and hand-made ones of every header shape; it stops
    /// with an error naming the byte offset on a truncated or damaged file.
    #[test]
    fn zstd_frame_walk_agrees_with_libzstd() {
        let text: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("{{\"text\": \"line {i} {}\"}}\n", i % 89).into_bytes())
            .take(700_000)
            .collect();
        let noise: Vec<u8> = (0..300_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let frames: Vec<Vec<u8>> = vec![
            encoded(&text[..300_000], true, true),
            encoded(&text[300_000..], false, false),
            skippable(b"not data"),
            encoded(b"", true, false),
            encoded(&vec![b'a'; 200_000], true, false),
            zstd::bulk::compress(&noise, 1).unwrap(),
            encoded(&text[..1000], false, true),
            skippable(b""),
            raw_frame(b"short", 1, true, 0, false),
            raw_frame(&noise[..300], 2, false, 1, true),
            raw_frame(&noise[..70_000], 4, true, 2, false),
            raw_frame(&noise, 8, false, 4, true),
            raw_frame(b"", 0, false, 0, false),
            raw_frame(&noise[..1000], 0, false, 4, true),
        ];
        let file: Vec<u8> = frames.concat();
        let found = walk(&file);
        assert_eq!(found.len(), frames.len(), "{found:?}");
        let mut offset = 0;
        for (index, (frame, bytes)) in found.iter().zip(&frames).enumerate() {
            let frame = frame.as_ref().unwrap();
            assert_eq!(frame.offset, offset, "frame {index}");
            let at = &file[offset as usize..];
            let len = zstd::zstd_safe::find_frame_compressed_size(at).unwrap();
            assert_eq!(len, bytes.len(), "frame {index}");
            let declared = zstd::zstd_safe::get_frame_content_size(at).unwrap();
            match frame.content {
                FrameContent::Skippable => assert!(index == 2 || index == 7),
                FrameContent::Unknown => assert_eq!(declared, None, "frame {index}"),
                FrameContent::Size(size) => assert_eq!(Some(size), declared, "frame {index}"),
            }
            offset += len as u64;
        }
        // The library's frames declare what they were told to, and decode to what the walk
        // says (the hand-made ones have made-up checksums and dictionary ids).
        assert_eq!(
            found[0].as_ref().unwrap().content,
            FrameContent::Size(300_000)
        );
        assert_eq!(found[1].as_ref().unwrap().content, FrameContent::Unknown);
        assert_eq!(found[3].as_ref().unwrap().content, FrameContent::Size(0));
        let library = frames[..8].concat();
        let decoded = zstd::decode_all(library.as_slice()).unwrap();
        let declared: u64 = found[..8]
            .iter()
            .map(|frame| match frame.as_ref().unwrap().content {
                FrameContent::Size(size) => size,
                _ => 0,
            })
            .sum();
        assert_eq!(
            declared,
            decoded.len() as u64 - (text.len() - 300_000 + 1000) as u64
        );

        // Cut anywhere: the frames before the cut, then an error, unless the cut is exactly
        // at a frame's end.
        let ends: Vec<usize> = frames
            .iter()
            .scan(0, |end, frame| {
                *end += frame.len();
                Some(*end)
            })
            .collect();
        let mut cuts: Vec<usize> = (1..file.len()).step_by(997).collect();
        cuts.extend(ends.iter().flat_map(|&end| [end - 1, end, end + 1]));
        for cut in cuts.into_iter().filter(|&cut| cut < file.len()) {
            let found = walk(&file[..cut]);
            let whole = ends.iter().take_while(|&&end| end <= cut).count();
            if ends.contains(&cut) {
                assert!(found.iter().all(Result::is_ok), "cut at {cut}");
                assert_eq!(found.len(), whole, "cut at {cut}");
            } else {
                assert_eq!(found.len(), whole + 1, "cut at {cut}");
                let err = found[whole].as_ref().unwrap_err();
                assert!(err.starts_with("byte "), "cut at {cut}: {err}");
            }
        }
        // A damaged magic number, a reserved bit, a reserved block type: named by offset.
        let second = ends[0];
        let mut bad = file.clone();
        bad[second] ^= 0x40;
        let found = walk(&bad);
        assert_eq!(found.len(), 2);
        let err = found[1].as_ref().unwrap_err();
        assert!(
            err.starts_with(&format!("byte {second}: not a zstd frame")),
            "{err}"
        );
        let mut bad = file.clone();
        bad[second + 4] |= 0x08;
        assert!(walk(&bad)[1].as_ref().unwrap_err().contains("reserved bit"));
        let mut bad = raw_frame(b"abc", 1, true, 0, false);
        bad[6] |= 0x06;
        assert!(
            walk(&bad)[0]
                .as_ref()
                .unwrap_err()
                .contains("reserved type")
        );
    }

    /// A multi-frame zstd file is cut into ranges that tile its decompressed stream, each
    /// starting one byte after its first frame's first byte, of about a part of compressed
    /// bytes; a single frame, a frame without a declared size or a damaged file: read whole.
    #[test]
    fn zstd_ranges_tile_the_stream_at_frames() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..20_000u32)
            .map(|i| format!("{{\"text\": \"{i} {}\"}}\n", "y".repeat(i as usize % 37)))
            .flat_map(String::into_bytes)
            .collect();
        let pieces: Vec<&[u8]> = data.chunks(9_000).collect();
        let mut frames: Vec<Vec<u8>> = pieces.iter().map(|p| encoded(p, true, false)).collect();
        frames.insert(3, skippable(b"padding"));
        frames.insert(5, encoded(b"", true, false));
        let file_at = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            InputFile {
                input: 0,
                path,
                rel: name.into(),
                format: Format::Jsonl,
                compression: Compression::Zstd,
                size: bytes.len() as u64,
                row_groups: None,
                remote: None,
            }
        };
        let bytes = frames.concat();
        let file = file_at("many.jsonl.zst", &bytes);
        let part = file.size / 7;
        let ranges = zstd_ranges(&file, part).unwrap();
        assert!((6..=8).contains(&ranges.len()), "{ranges:?}");
        // Frame starts in the file and in the stream.
        let mut starts = Vec::new();
        let (mut offset, mut at) = (0u64, 0u64);
        for frame in &frames {
            starts.push((offset, at));
            offset += frame.len() as u64;
            at += zstd::zstd_safe::get_frame_content_size(frame)
                .ok()
                .flatten()
                .unwrap_or(0);
        }
        assert_eq!(at, data.len() as u64);
        let mut next = 0;
        for (index, (range, compressed)) in ranges.iter().enumerate() {
            assert_eq!(range.start, next, "range {index}");
            assert!(range.end > range.start, "range {index}");
            next = range.end;
            let frame = range.zstd_frame.unwrap();
            let &(_, first) = starts.iter().find(|&&(o, _)| o == frame).unwrap();
            assert_eq!(first, range.start.saturating_sub(1), "range {index}");
            let end_frame = ranges
                .get(index + 1)
                .map_or(file.size, |(next, _)| next.zstd_frame.unwrap());
            assert_eq!(*compressed, end_frame - frame, "range {index}");
            assert!(
                *compressed > part / 2 && *compressed < part * 2,
                "{ranges:?}"
            );
        }
        assert_eq!(next, data.len() as u64);
        assert_eq!(ranges.iter().map(|r| r.1).sum::<u64>(), file.size);
        // Every frame its own range when parts are smaller than frames, but for the skippable
        // frame (it starts none) and the empty one (it starts one with the frame after it).
        let ranges = zstd_ranges(&file, 64).unwrap();
        assert_eq!(ranges.len(), pieces.len(), "{ranges:?}");

        let one = file_at("one.jsonl.zst", &encoded(&data, true, false));
        assert_eq!(zstd_ranges(&one, 64), None);
        let mut unknown = frames.clone();
        unknown[7] = encoded(pieces[5], false, false);
        let unknown = file_at("unknown.jsonl.zst", &unknown.concat());
        assert_eq!(zstd_ranges(&unknown, 64), None);
        let cut = file_at("cut.jsonl.zst", &bytes[..bytes.len() - 5]);
        assert_eq!(zstd_ranges(&cut, 64), None);
        let mut garbage = bytes.clone();
        garbage.extend(b"trailing");
        let garbage = file_at("garbage.jsonl.zst", &garbage);
        assert_eq!(zstd_ranges(&garbage, 64), None);
    }

    /// The cuts of a zstd file split at its frames are part of the fingerprint (two files of
    /// the same name and size, framed differently, are different plans); a plan without such
    /// cuts hashes only the options and the listing, as before zstd files were split.
    #[test]
    fn fingerprint_feeds_zstd_cuts_and_nothing_else() {
        use crate::config::{IngestOptions, InputOptions, OneOrMany, Shard};
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..6000u32)
            .map(|i| format!("{{\"text\": \"{i} {}\"}}\n", "z".repeat(i as usize % 29)))
            .flat_map(String::into_bytes)
            .collect();
        let framed = |size: usize| -> Vec<u8> {
            let frames: Vec<Vec<u8>> = data.chunks(size).map(|p| encoded(p, true, true)).collect();
            frames.concat()
        };
        let (a, b) = (framed(5000), framed(7000));
        // The same size: padded with a skippable frame.
        let size = a.len().max(b.len()) + 64;
        let pad = |mut bytes: Vec<u8>| {
            bytes.extend(skippable(&vec![0; size - bytes.len() - 8]));
            bytes
        };
        let plan = |folder: &str, bytes: &[u8], part_mb: f64| {
            let folder = dir.path().join(folder);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("big.jsonl.zst"), bytes).unwrap();
            std::fs::write(folder.join("small.jsonl"), "{\"text\": \"x\"}\n").unwrap();
            let options = IngestOptions {
                out: Some(dir.path().join("out").display().to_string()),
                part_size_mb: Some(part_mb),
                input: vec![InputOptions {
                    path: Some(OneOrMany::One(folder.display().to_string())),
                    source: Some("s".into()),
                    ..InputOptions::default()
                }],
                ..IngestOptions::default()
            };
            let config = options.resolve("test", Shard::ALL).unwrap();
            let plan = Plan::build(&config).unwrap();
            let before = fingerprint(&config, &plan.files, &[]);
            (plan, before)
        };
        let cut = |plan: &Plan| {
            plan.units
                .iter()
                .filter(|unit| unit.range.as_ref().is_some_and(|r| r.zstd_frame.is_some()))
                .count()
        };
        let part_mb = size as f64 / 5.0 / f64::from(1 << 20);
        let (plan_a, before_a) = plan("a", &pad(a.clone()), part_mb);
        let (plan_b, before_b) = plan("b", &pad(b), part_mb);
        assert!(cut(&plan_a) >= 4 && cut(&plan_b) >= 4);
        assert_eq!(plan_a.files[0].size, plan_b.files[0].size);
        // Same options and listing: only the frames differ.
        assert_eq!(before_a, before_b);
        assert_ne!(plan_a.fingerprint, plan_b.fingerprint);
        assert_ne!(plan_a.fingerprint, before_a);
        // Read whole (parts too big to split it, or frames without sizes): as before.
        let (whole, before) = plan("c", &pad(a), 64.0);
        assert_eq!(cut(&whole), 0);
        assert_eq!(whole.fingerprint, before);
        let no_sizes: Vec<u8> = data
            .chunks(5000)
            .flat_map(|p| encoded(p, false, false))
            .collect();
        let (whole, before) = plan("d", &no_sizes, part_mb);
        assert_eq!(cut(&whole), 0);
        assert_eq!(whole.units.len(), 2);
        assert_eq!(whole.fingerprint, before);
    }
}
