//! The plan: every input file listed in a fixed order, split into units (a file, or one row
//! group of a Parquet file) and packed into chunks. A chunk is the unit of scheduling, of
//! resume and of `--shard i/n`, and it alone decides which part files hold its documents, so
//! the output never depends on how many tasks or threads did the work.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::config::{Format, IngestConfig};
use crate::error::{Error, Result};

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

/// A piece of work: a whole file or one row group of a Parquet file.
#[derive(Debug, Clone)]
pub struct Unit {
    pub file: usize,
    pub row_group: Option<usize>,
    /// A byte range of a large plain JSONL file: the lines that start in it.
    pub range: Option<std::ops::Range<u64>>,
    pub bytes: u64,
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
            let mut listed: Vec<(PathBuf, String)> = Vec::new();
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
            for (path, rel) in listed {
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
                let size = fs_err::metadata(&path)?.len();
                let row_groups = (format == Format::Parquet).then(|| read_row_groups(&path));
                files.push(InputFile {
                    input: index,
                    path,
                    rel,
                    format,
                    compression,
                    size,
                    row_groups,
                });
            }
        }
        let mut units = Vec::new();
        for (file_index, file) in files.iter().enumerate() {
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
                            range: Some(start..end),
                            bytes: (end - start).max(1),
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
        let fingerprint = fingerprint(config, &files);
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

fn fingerprint(config: &IngestConfig, files: &[InputFile]) -> String {
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
/// searched recursively for files of a known format (any file when the format is set).
fn list_pattern(pattern: &str, any_file: bool) -> Result<Vec<(PathBuf, String)>> {
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

fn read_row_groups(path: &Path) -> std::result::Result<Vec<RowGroupInfo>, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = fs_err::File::open(path)
        .map_err(|err| err.to_string())?
        .into_parts()
        .0;
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
}
