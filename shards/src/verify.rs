//! Full verification: every byte of every shard is checked, and every problem is reported with
//! its shard and frame (verification goes on after the first one, so one run lists all damage).

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{self, HEADER_LEN, TRAILER_LEN, Trailer, checksum, checksum_string};
use crate::manifest::ShardEntry;
use crate::reader::{Dataset, ShardIndex};

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub shards: u64,
    pub frames: u64,
    pub tokens: u64,
    pub documents: u64,
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One piece of damage.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The shard file as the manifest names it.
    pub file: String,
    /// The frame, when the damage is inside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    pub message: String,
}

/// Checks every shard of the dataset in `dir` (a folder, or an object-store URL: each shard is
/// then one GET, checked in memory, nothing written to disk; a merged dataset's shards are read
/// where its manifest points). `reporter` counts the bytes of each shard once it is checked.
/// Fails only when the manifest itself cannot be read.
pub fn verify(dir: &Path, reporter: &dyn tinyforge_task::Reporter) -> Result<VerifyReport> {
    // No frame cache: every frame is read once.
    let dataset = Dataset::open_with(
        dir,
        crate::ReaderOptions {
            cache_frames: 0,
            open_files: 1,
        },
    )?;
    let mut report = VerifyReport::default();
    let shards = &dataset.manifest().shards;
    reporter.start(
        "verify",
        shards.iter().fold(0, |sum, s| sum.saturating_add(s.bytes)),
    );
    for (shard, entry) in shards.iter().enumerate() {
        report.shards += 1;
        let problems_before = report.problems.len();
        if let Err(error) = verify_shard(&dataset, shard, entry, &mut report) {
            let frame = match &error {
                Error::FrameChecksum { frame, .. } | Error::CorruptFrame { frame, .. } => {
                    Some(*frame)
                }
                _ => None,
            };
            report.problems.push(Problem {
                file: entry.file.clone(),
                frame,
                message: error.to_string(),
            });
        }
        if report.problems.len() == problems_before {
            report.tokens += entry.tokens;
            report.documents += entry.documents;
        }
        // The manifest's claim, which a damaged manifest may make near u64::MAX.
        report.bytes = report.bytes.saturating_add(entry.bytes);
        reporter.advance(entry.bytes);
    }
    Ok(report)
}

fn verify_shard(
    dataset: &Dataset,
    shard: usize,
    entry: &ShardEntry,
    report: &mut VerifyReport,
) -> Result<()> {
    let path = dataset.shard_path(shard);
    let bytes = dataset.shard_bytes(shard)?;
    let problem = |frame: Option<u64>, message: String| Problem {
        file: entry.file.clone(),
        frame,
        message,
    };
    if bytes.len() as u64 != entry.bytes {
        return Err(format::corrupt(
            &path,
            format!("{} bytes, the manifest says {}", bytes.len(), entry.bytes),
        ));
    }
    let whole = checksum_string(checksum(&bytes));
    if whole != entry.checksum {
        // Not fatal: the frame checks below say where the damage is.
        let error = Error::FileChecksum {
            file: path.clone(),
            expected: entry.checksum.clone(),
            actual: whole,
        };
        report.problems.push(problem(None, error.to_string()));
    }
    let dtype = format::decode_header(&bytes, &path)?;
    if dtype != dataset.dtype() {
        return Err(format::corrupt(
            &path,
            format!(
                "shard holds {dtype} tokens, the manifest says {}",
                dataset.dtype()
            ),
        ));
    }
    let trailer = Trailer::decode(&bytes[bytes.len() - TRAILER_LEN.min(bytes.len())..], &path)?;
    let table_offset = trailer.frame_table_offset(bytes.len() as u64, &path)?;
    let table_end = table_offset + trailer.frame_table_len();
    let index = ShardIndex::parse(
        &path,
        entry,
        dataset.manifest().frame_tokens,
        trailer,
        &bytes[table_offset as usize..table_end as usize],
        table_offset,
    )?;
    let doc_bytes = &bytes[table_end as usize..bytes.len() - TRAILER_LEN];
    let docs = if checksum(doc_bytes) == trailer.doc_table_checksum {
        format::decode_doc_table(doc_bytes)
    } else {
        report.problems.push(problem(
            None,
            format!("{}: document table checksum mismatch", path.display()),
        ));
        Vec::new()
    };
    // Document ends in shard order: each must land on an EOS token.
    let mut doc_ends = docs.iter().map(|d| d.end).peekable();
    let mut decoder = zstd::bulk::Decompressor::new()?;
    let width = dtype.width();
    let mut expected_offset = HEADER_LEN;
    for (i, frame) in index.frames.iter().enumerate() {
        report.frames += 1;
        let i = i as u64;
        if frame.offset != expected_offset {
            report.problems.push(problem(
                Some(i),
                format!("{}: frame {i} is not contiguous", path.display()),
            ));
        }
        expected_offset = frame.offset + u64::from(frame.compressed_len);
        let start = frame.offset as usize;
        let compressed = &bytes[start..start + frame.compressed_len as usize];
        let expected_len = frame.tokens as usize * width;
        let data = match decoder.decompress(compressed, expected_len) {
            Ok(data) if data.len() == expected_len => {
                let actual = checksum(&data);
                let mut first = [0u32];
                dtype.decode_frame(&data, 0, &mut first);
                if actual == frame.checksum && first[0] != frame.first_token {
                    let message = format!(
                        "{}: frame {i}: first token in the index differs from the data",
                        path.display()
                    );
                    report.problems.push(problem(Some(i), message));
                    None
                } else if actual == frame.checksum {
                    Some(data)
                } else {
                    let error = Error::FrameChecksum {
                        file: path.clone(),
                        frame: i,
                        expected: frame.checksum,
                        actual,
                    };
                    report.problems.push(problem(Some(i), error.to_string()));
                    None
                }
            }
            Ok(data) => {
                let error = Error::CorruptFrame {
                    file: path.clone(),
                    frame: i,
                    detail: format!(
                        "decompressed to {} bytes, the index says {expected_len}",
                        data.len()
                    ),
                };
                report.problems.push(problem(Some(i), error.to_string()));
                None
            }
            Err(e) => {
                let error = Error::CorruptFrame {
                    file: path.clone(),
                    frame: i,
                    detail: e.to_string(),
                };
                report.problems.push(problem(Some(i), error.to_string()));
                None
            }
        };
        let frame_start = index.frame_starts[i as usize];
        let frame_end = index.frame_starts[i as usize + 1];
        while let Some(&end) = doc_ends.peek() {
            if end > frame_end {
                break;
            }
            doc_ends.next();
            let Some(data) = &data else { continue };
            if end <= frame_start {
                report.problems.push(problem(
                    Some(i),
                    format!(
                        "{}: frame {i}: document ends are not increasing",
                        path.display()
                    ),
                ));
                continue;
            }
            let mut token = [0u32];
            dtype.decode_frame(data, (end - 1 - frame_start) as usize, &mut token);
            if token[0] != dataset.eos_id() {
                report.problems.push(problem(
                    Some(i),
                    format!(
                        "{}: frame {i}: document ending at token {end} does not end with EOS {}",
                        path.display(),
                        dataset.eos_id()
                    ),
                ));
            }
        }
    }
    if !docs.is_empty() && docs.last().map(|d| d.end) != Some(trailer.tokens) {
        report.problems.push(problem(
            None,
            format!("{}: documents do not cover the shard", path.display()),
        ));
    }
    Ok(())
}
