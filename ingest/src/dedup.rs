//! The cross-chunk exact deduplication, partitioned by hash so that no process holds every
//! document's hash.
//!
//! A document of chunk `c` is a duplicate when its content hash occurs in a chunk before `c`
//! (within a chunk, the chunk's own task already kept only first occurrences). Every occurrence
//! of a hash lands in the same bucket (`high 64 bits mod B`), so bucket `b` alone decides the
//! documents of its hashes: it reads every chunk's hash file in plan order, keeps only its
//! hashes in a set, and writes the later occurrences, `(chunk, hash)` in chunk order, to
//! `_state/dedup-b-of-B.drops`. Memory per bucket is `16 bytes × documents / B` plus the set's
//! slack. The rewrite then reads the B files side by side, one chunk's drops at a time. The
//! result is the same documents, byte for byte, for every B: a hash's first occurrence is kept
//! and every later one dropped, whichever bucket decides it.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use tinyforge_task::{AtomicFile, Shard};

use crate::error::{Error, Result};
use crate::state::{HashSet128, STATE_DIR, State};

const MAGIC: &[u8; 8] = b"TFDROPS1";
/// chunk (u32) + hash (u128), little-endian.
const RECORD: usize = 20;

/// The bucket of a content hash among `buckets`. The high half, because the hash sets use the
/// low half as their table hash.
pub fn bucket_of(hash: u128, buckets: u32) -> u32 {
    ((hash >> 64) as u64 % u64::from(buckets)) as u32
}

/// What one bucket found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BucketStats {
    /// Distinct hashes of this bucket.
    pub distinct: u64,
    /// Later occurrences (documents to drop).
    pub duplicates: u64,
}

/// Finds the duplicates of hash bucket `bucket` among `chunks` (chunk number and its hashes,
/// in plan order) and writes them as records to `out`.
pub fn find_duplicates(
    chunks: impl IntoIterator<Item = Result<(usize, Vec<u128>)>>,
    bucket: Shard,
    out: &mut impl Write,
) -> Result<BucketStats> {
    let mut seen = HashSet128::default();
    let mut stats = BucketStats::default();
    for item in chunks {
        let (chunk, hashes) = item?;
        let chunk = u32::try_from(chunk)
            .map_err(|_| Error::Internal(format!("chunk number {chunk} over u32")))?;
        for hash in hashes {
            if bucket_of(hash, bucket.count) != bucket.index {
                continue;
            }
            if seen.insert(hash) {
                stats.distinct += 1;
            } else {
                stats.duplicates += 1;
                out.write_all(&chunk.to_le_bytes())?;
                out.write_all(&hash.to_le_bytes())?;
            }
        }
    }
    Ok(stats)
}

/// `_state/dedup-b-of-B.drops`.
pub fn drops_path(state: &State, bucket: Shard) -> PathBuf {
    state.dir.join(drops_file_name(bucket))
}

/// The name of bucket `b/B`'s drops file in `_state/`: `dedup-b-of-B.drops`.
pub fn drops_file_name(bucket: Shard) -> String {
    format!("dedup-{}-of-{}.drops", bucket.index, bucket.count)
}

/// Runs bucket `bucket` over every chunk's hash file and writes its drops file (atomically; the
/// file is the bucket's completion marker).
pub fn run_bucket(state: &State, chunks: usize, bucket: Shard) -> Result<BucketStats> {
    let path = drops_path(state, bucket);
    let mut file = AtomicFile::create(&path)?;
    let fingerprint = state.fingerprint().as_bytes();
    file.write_all(MAGIC)?;
    file.write_all(&(fingerprint.len() as u32).to_le_bytes())?;
    file.write_all(fingerprint)?;
    file.write_all(&bucket.index.to_le_bytes())?;
    file.write_all(&bucket.count.to_le_bytes())?;
    let stats = find_duplicates(
        (0..chunks).map(|chunk| Ok((chunk, state.read_hashes(chunk)?))),
        bucket,
        &mut file,
    )?;
    file.commit()?;
    Ok(stats)
}

/// Whether bucket `bucket`'s drops file exists and belongs to this plan.
pub fn bucket_done(state: &State, bucket: Shard) -> Result<bool> {
    let path = drops_path(state, bucket);
    if !path.is_file() {
        return Ok(false);
    }
    let mut reader = BufReader::new(fs_err::File::open(&path)?);
    Ok(read_header(&mut reader, &path, state, bucket)? == HeaderCheck::Ours)
}

/// The bucket count of the drops files already in the state folder, when they all agree.
pub fn buckets_on_disk(out: &Path) -> Result<Option<u32>> {
    let dir = out.join(STATE_DIR);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut counts = std::collections::BTreeSet::new();
    for entry in fs_err::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let count = name
            .strip_prefix("dedup-")
            .and_then(|rest| rest.strip_suffix(".drops"))
            .and_then(|rest| rest.split_once("-of-"))
            .and_then(|(_, n)| n.parse::<u32>().ok());
        counts.extend(count);
    }
    Ok((counts.len() == 1)
        .then(|| counts.into_iter().next())
        .flatten())
}

#[derive(Debug, PartialEq, Eq)]
enum HeaderCheck {
    Ours,
    OtherPlan,
}

fn read_header(
    reader: &mut impl Read,
    path: &Path,
    state: &State,
    bucket: Shard,
) -> Result<HeaderCheck> {
    let bad = |message: String| Error::State {
        path: path.to_owned(),
        message,
    };
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|e| bad(format!("unreadable header: {e}")))?;
    if &magic != MAGIC {
        return Err(bad("not a tinyforge drops file".into()));
    }
    let mut word = [0u8; 4];
    reader.read_exact(&mut word)?;
    let len = u32::from_le_bytes(word) as usize;
    if len > 1024 {
        return Err(bad(format!("fingerprint of {len} bytes")));
    }
    let mut fingerprint = vec![0u8; len];
    reader.read_exact(&mut fingerprint)?;
    reader.read_exact(&mut word)?;
    let index = u32::from_le_bytes(word);
    reader.read_exact(&mut word)?;
    let count = u32::from_le_bytes(word);
    if (index, count) != (bucket.index, bucket.count) {
        return Err(bad(format!(
            "holds bucket {index}/{count}, its name says {bucket}"
        )));
    }
    Ok(if fingerprint == state.fingerprint().as_bytes() {
        HeaderCheck::Ours
    } else {
        HeaderCheck::OtherPlan
    })
}

/// The B drops files read side by side, chunk by chunk in increasing order.
pub struct Drops {
    files: Vec<DropsFile>,
}

struct DropsFile {
    path: PathBuf,
    reader: BufReader<fs_err::File>,
    /// The record read ahead: (chunk, hash).
    next: Option<(usize, u128)>,
}

impl Drops {
    /// Opens every bucket of `buckets`; each must be done (run [`run_bucket`] first).
    pub fn open(state: &State, buckets: u32) -> Result<Self> {
        let mut files = Vec::with_capacity(buckets as usize);
        for index in 0..buckets {
            let bucket = Shard {
                index,
                count: buckets,
            };
            let path = drops_path(state, bucket);
            if !path.is_file() {
                return Err(Error::State {
                    path,
                    message: format!(
                        "dedup bucket {bucket} is not done; run `--dedup-bucket {bucket}` (or \
                         `--merge`, which runs what is missing)"
                    ),
                });
            }
            let mut reader = BufReader::with_capacity(1 << 16, fs_err::File::open(&path)?);
            if read_header(&mut reader, &path, state, bucket)? != HeaderCheck::Ours {
                return Err(Error::State {
                    path,
                    message: "written for another plan of this folder".into(),
                });
            }
            let mut file = DropsFile {
                path,
                reader,
                next: None,
            };
            file.advance()?;
            files.push(file);
        }
        Ok(Self { files })
    }

    /// The hashes to drop from `chunk`. Chunks must be asked in increasing order; the drops of
    /// chunks skipped in between are passed over.
    pub fn for_chunk(&mut self, chunk: usize) -> Result<HashSet128> {
        let mut set = HashSet128::default();
        for file in &mut self.files {
            while let Some((at, hash)) = file.next {
                if at > chunk {
                    break;
                }
                if at == chunk {
                    set.insert(hash);
                }
                file.advance()?;
            }
        }
        Ok(set)
    }
}

impl DropsFile {
    fn advance(&mut self) -> Result<()> {
        let mut record = [0u8; RECORD];
        let mut filled = 0;
        while filled < RECORD {
            match self.reader.read(&mut record[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            self.next = None;
            return Ok(());
        }
        if filled < RECORD {
            return Err(Error::State {
                path: self.path.clone(),
                message: "truncated record at the end".into(),
            });
        }
        let chunk = u32::from_le_bytes(record[..4].try_into().unwrap_or_default()) as usize;
        let hash = u128::from_le_bytes(record[4..].try_into().unwrap_or_default());
        if self.next.is_some_and(|(before, _)| before > chunk) {
            return Err(Error::State {
                path: self.path.clone(),
                message: format!("records out of chunk order (chunk {chunk} after a later one)"),
            });
        }
        self.next = Some((chunk, hash));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_count_drops_the_same_later_occurrences() {
        // Chunk 0: a b c; chunk 1: b d; chunk 2: a d e c.
        let (a, b, c, d, e) = (
            1u128 << 70 | 1,
            2u128 << 64 | 2,
            3u128 << 90,
            5u128,
            7u128 << 100 | 9,
        );
        let chunks = [vec![a, b, c], vec![b, d], vec![a, d, e, c]];
        let mut expected: Vec<(u32, u128)> = vec![(1, b), (2, a), (2, d), (2, c)];
        expected.sort();
        for buckets in [1, 2, 3, 8] {
            let mut all = Vec::new();
            let mut total = BucketStats::default();
            for index in 0..buckets {
                let mut out = Vec::new();
                let stats = find_duplicates(
                    chunks.iter().cloned().enumerate().map(Ok),
                    Shard {
                        index,
                        count: buckets,
                    },
                    &mut out,
                )
                .unwrap();
                total.distinct += stats.distinct;
                total.duplicates += stats.duplicates;
                let mut last_chunk = 0;
                for record in out.chunks_exact(RECORD) {
                    let chunk = u32::from_le_bytes(record[..4].try_into().unwrap());
                    assert!(chunk >= last_chunk, "records in chunk order");
                    last_chunk = chunk;
                    let hash = u128::from_le_bytes(record[4..].try_into().unwrap());
                    assert_eq!(bucket_of(hash, buckets), index);
                    all.push((chunk, hash));
                }
            }
            all.sort();
            assert_eq!(all, expected, "{buckets} buckets");
            assert_eq!(
                total,
                BucketStats {
                    distinct: 5,
                    duplicates: 4
                }
            );
        }
    }
}
