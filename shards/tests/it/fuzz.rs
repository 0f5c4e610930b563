//! Fuzzing the shard reader, `verify` and the manifest: a dataset written by the crate's own
//! writer, then its manifest or one of its shard files mutated (bytes flipped, inserted,
//! deleted, cut, repeated; numbers of the manifest set to edge values; a shard's index edited
//! and its checksums made to match again, so the damage gets past them) or replaced by random
//! bytes. Whatever the damage:
//!
//! 1. opening, reading every token, every document boundary and `verify` never panic;
//! 2. every error names the file it is about (the manifest or the shard), and `verify` ties
//!    each problem to its shard and, when it says so, its frame;
//! 3. a token read from an undamaged index is the token written (frames are checked against
//!    their checksums), and a dataset `verify` passes reads whole;
//! 4. memory stays within a stated bound of the dataset's size and its declared frame size.
//!
//! Each test runs in a process of its own ([`in_own_process`]), where a counting allocator
//! measures it alone.

use std::path::Path;

use proptest::prelude::*;
use tinyforge_shards::{
    Dataset, Error, MANIFEST_FILE, Manifest, ReaderOptions, checksum, checksum_string, verify,
};
use tinyforge_testkit::{Mutation, fuzz_config, in_own_process, mutate, peak_during};

use crate::{documents, header, stream, write_dataset};

/// Cases per test: a case takes about a millisecond in the dev profile.
const CASES: u32 = 1024;
/// The cases are the same on every run (CI must not flake on a newly drawn input); set
/// `PROPTEST_RNG_SEED` (and `PROPTEST_CASES`) to explore others.
const SEED: u64 = 0x7f5a_11ce;

/// Frames the reader under test caches: its memory bound counts them.
const CACHE_FRAMES: usize = 4;
/// Memory the reader may take whatever the dataset: the parsed manifest's fixed part, the
/// open-file and frame caches' maps, the thread's zstd buffers' bookkeeping.
const FIXED: usize = 256 << 10;
/// What the reader may take per byte of the dataset's files: its manifest parsed into structs
/// (smaller than its JSON) and a shard's index, whose 32-byte frame entries become a 32-byte
/// `FrameEntry` plus an 8-byte start and whose 16-byte document entries are read and then
/// decoded (32 bytes). Under 4 bytes per byte of file, whatever the file says.
const PER_FILE_BYTE: usize = 4;
/// `verify` holds one whole shard and decodes it a frame at a time, and it keeps a message of
/// a few hundred bytes (with the shard's path) for each damaged frame; a frame takes at least
/// a 32-byte entry of the file, so that is under 16 bytes per byte of file.
const VERIFY_PER_FILE_BYTE: usize = 16;

/// The bound on the reader's memory: see the constants above. The frame size is the one the
/// manifest declares (frames are checked against it), in the widest token type.
fn read_bound(file_bytes: usize, frame_tokens: u32) -> usize {
    FIXED + PER_FILE_BYTE * file_bytes + (CACHE_FRAMES + 2) * frame_tokens as usize * 4
}

fn verify_bound(file_bytes: usize, frame_tokens: u32) -> usize {
    FIXED + VERIFY_PER_FILE_BYTE * file_bytes + 2 * frame_tokens as usize * 4
}

/// A dataset as written: its files' bytes and the token stream they hold.
struct Original {
    files: Vec<(String, Vec<u8>)>,
    stream: Vec<u32>,
    /// The end of every document in the stream.
    ends: Vec<u64>,
}

fn original(wide: bool) -> Original {
    let dir = tempfile::tempdir().unwrap();
    let (vocab, eos) = if wide { (70_000, 3) } else { (500, 1) };
    let docs = documents(30, 40, vocab, eos, 17);
    let manifest = write_dataset(dir.path(), &header(vocab, eos, 16), 250, &docs, None);
    assert!(
        manifest.shards.len() >= 3,
        "{} shards",
        manifest.shards.len()
    );
    let mut files = vec![(
        MANIFEST_FILE.to_owned(),
        std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap(),
    )];
    for shard in &manifest.shards {
        files.push((
            shard.file.clone(),
            std::fs::read(dir.path().join(&shard.file)).unwrap(),
        ));
    }
    let mut ends = Vec::new();
    let mut end = 0;
    for doc in &docs {
        end += doc.len() as u64 + 1;
        ends.push(end);
    }
    Original {
        files,
        stream: stream(&docs, eos),
        ends,
    }
}

/// Damage to one file of the dataset.
#[derive(Debug, Clone)]
enum Damage {
    /// Byte mutations of the manifest.
    Manifest(Vec<Mutation>),
    /// A number of the manifest set to an edge value: `field` picks a top-level count or a
    /// count of shard `shard`.
    ManifestNumber { field: u8, shard: u8, value: u64 },
    /// Byte mutations of a shard file; with `reseal`, the index's checksums and the manifest's
    /// size and checksum of the file are made to match the damaged bytes, so the damage meets
    /// the checks behind them.
    Shard {
        shard: u8,
        mutations: Vec<Mutation>,
        reseal: bool,
    },
    /// A frame of a shard claims `tokens` tokens, and the shard's trailer, its manifest entry
    /// and the manifest's total agree (a consistent lie; every checksum matches).
    FrameTokens { shard: u8, frame: u8, tokens: u32 },
    /// A shard file replaced by random bytes.
    Random { shard: u8, bytes: Vec<u8> },
}

fn edge_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u16::MAX as u64 + 1),
        Just(u32::MAX as u64),
        Just(1 << 53),
        Just(u64::MAX),
        Just(u64::MAX / 2 + 1),
        0u64..100_000,
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    let mutations = || prop::collection::vec(any::<(u8, u32, u32, u16)>(), 1..4);
    let picked = |m: Vec<(u8, u32, u32, u16)>| m.into_iter().map(Mutation::pick).collect();
    prop_oneof![
        mutations().prop_map(move |m| Damage::Manifest(picked(m))),
        (any::<u8>(), any::<u8>(), edge_value()).prop_map(|(field, shard, value)| {
            Damage::ManifestNumber {
                field,
                shard,
                value,
            }
        }),
        (any::<u8>(), mutations(), any::<bool>()).prop_map(move |(shard, m, reseal)| {
            Damage::Shard {
                shard,
                mutations: picked(m),
                reseal,
            }
        }),
        (
            any::<u8>(),
            any::<u8>(),
            prop_oneof![0u32..64, 1u32 << 20..1 << 22]
        )
            .prop_map(|(shard, frame, tokens)| Damage::FrameTokens {
                shard,
                frame,
                tokens
            }),
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..600))
            .prop_map(|(shard, bytes)| Damage::Random { shard, bytes }),
    ]
}

/// Shard files of the dataset (the files after the manifest).
fn shard_count(original: &Original) -> usize {
    original.files.len() - 1
}

/// The damaged files, and whether the index of every shard is as written (then every token
/// read must be the token written).
fn damaged(original: &Original, damage: &Damage) -> (Vec<(String, Vec<u8>)>, bool) {
    let mut files = original.files.clone();
    let shards = shard_count(original);
    let mut manifest: serde_json::Value = serde_json::from_slice(&files[0].1).unwrap();
    let mut index_intact = true;
    match damage {
        Damage::Manifest(mutations) => {
            files[0].1 = mutate(files[0].1.clone(), mutations, 1 << 16);
            // A manifest changed in any byte may name one shard file for another: its tokens
            // are then rightly not the ones written there.
            return (files, mutations.is_empty());
        }
        Damage::ManifestNumber {
            field,
            shard,
            value,
        } => {
            let top = [
                "version",
                "vocab_size",
                "eos_id",
                "total_tokens",
                "documents",
                "frame_tokens",
            ];
            let per_shard = ["tokens", "documents", "frames", "bytes"];
            let field = *field as usize % (top.len() + per_shard.len());
            if field < top.len() {
                manifest[top[field]] = (*value).into();
            } else {
                let shard = *shard as usize % shards;
                manifest["shards"][shard][per_shard[field - top.len()]] = (*value).into();
            }
            index_intact = false;
        }
        Damage::Shard {
            shard,
            mutations,
            reseal,
        } => {
            let slot = 1 + *shard as usize % shards;
            files[slot].1 = mutate(files[slot].1.clone(), mutations, 1 << 16);
            if *reseal {
                reseal_index(&mut files[slot].1);
                set_entry(&mut manifest, slot - 1, &files[slot].1);
                index_intact = false;
            }
        }
        Damage::FrameTokens {
            shard,
            frame,
            tokens,
        } => {
            let slot = 1 + *shard as usize % shards;
            let bytes = &mut files[slot].1;
            let (frames, docs) = (word(bytes, 0), word(bytes, 1));
            let table = bytes.len() - 48 - docs as usize * 16 - frames as usize * 32;
            let entry = table + (*frame as usize % frames as usize) * 32 + 12;
            let before = u32::from_le_bytes(bytes[entry..entry + 4].try_into().unwrap());
            bytes[entry..entry + 4].copy_from_slice(&tokens.to_le_bytes());
            let shard_tokens = word(bytes, 2) - u64::from(before) + u64::from(*tokens);
            let trailer = bytes.len() - 48;
            bytes[trailer + 16..trailer + 24].copy_from_slice(&shard_tokens.to_le_bytes());
            reseal_index(bytes);
            let total = manifest["total_tokens"].as_u64().unwrap()
                - manifest["shards"][slot - 1]["tokens"].as_u64().unwrap()
                + shard_tokens;
            manifest["shards"][slot - 1]["tokens"] = shard_tokens.into();
            manifest["total_tokens"] = total.into();
            set_entry(&mut manifest, slot - 1, &files[slot].1);
            index_intact = false;
        }
        Damage::Random { shard, bytes } => {
            let slot = 1 + *shard as usize % shards;
            files[slot].1 = bytes.clone();
        }
    }
    files[0].1 = serde_json::to_vec_pretty(&manifest).unwrap();
    (files, index_intact)
}

/// Word `i` of a shard's trailer (the last 48 bytes).
fn word(bytes: &[u8], i: usize) -> u64 {
    let at = bytes.len() - 48 + i * 8;
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Recomputes the checksums of the frame and document tables in the trailer, when the trailer
/// still describes tables that fit in the file.
fn reseal_index(bytes: &mut [u8]) {
    if bytes.len() < 48 || &bytes[bytes.len() - 8..] != b"TFSHEND\0" {
        return;
    }
    let (frames, docs) = (word(bytes, 0), word(bytes, 1));
    let tables = frames
        .checked_mul(32)
        .zip(docs.checked_mul(16))
        .and_then(|(f, d)| f.checked_add(d))
        .filter(|&t| t <= bytes.len() as u64 - 48);
    let Some(tables) = tables else { return };
    let trailer = bytes.len() - 48;
    let table = trailer - tables as usize;
    let doc_table = table + frames as usize * 32;
    let frame_sum = checksum(&bytes[table..doc_table]);
    let doc_sum = checksum(&bytes[doc_table..trailer]);
    bytes[trailer + 24..trailer + 32].copy_from_slice(&frame_sum.to_le_bytes());
    bytes[trailer + 32..trailer + 40].copy_from_slice(&doc_sum.to_le_bytes());
}

/// Makes the manifest's size and checksum of shard `shard` those of `bytes`.
fn set_entry(manifest: &mut serde_json::Value, shard: usize, bytes: &[u8]) {
    manifest["shards"][shard]["bytes"] = (bytes.len() as u64).into();
    manifest["shards"][shard]["checksum"] = checksum_string(checksum(bytes)).into();
}

/// Whether an error names a file of the dataset in `dir`.
fn names_its_file(error: &Error, dir: &Path) -> bool {
    error.to_string().contains(&dir.display().to_string())
}

/// Opens the dataset and reads all of it every way a user does; the first error, if any.
/// Checks what is read against the original when the index is intact.
fn read_everything(
    dir: &Path,
    original: &Original,
    check_tokens: bool,
) -> Result<(), TestCaseError> {
    let options = ReaderOptions {
        cache_frames: CACHE_FRAMES,
        open_files: 2,
    };
    let dataset = match Dataset::open_with(dir, options) {
        Ok(dataset) => dataset,
        Err(error) => {
            prop_assert!(names_its_file(&error, dir), "{error}");
            return Ok(());
        }
    };
    let total = dataset.total_tokens();
    let check = |start: u64, tokens: &[u32]| -> Result<(), TestCaseError> {
        if check_tokens {
            let start = start as usize;
            let expected = original.stream.get(start..start + tokens.len());
            prop_assert_eq!(Some(tokens), expected, "tokens at {}", start);
        }
        Ok(())
    };
    // The sequential scan, a frame at a time, as `score` and `eval` read.
    let mut pos = 0;
    for chunk in dataset.iter_chunks() {
        match chunk {
            Ok(tokens) => {
                check(pos, &tokens)?;
                pos += tokens.len() as u64;
            }
            Err(error) => {
                prop_assert!(names_its_file(&error, dir), "{error}");
                break;
            }
        }
    }
    // Windows through the frame cache, as training reads; a few reads span frames.
    for (start, len) in [
        (0, 1),
        (5, 20),
        (15, 2),
        (31, 40),
        (total / 2, 33),
        (total, 0),
    ] {
        let len = len.min(total.saturating_sub(start) as usize);
        match dataset.read_range(start.min(total), len) {
            Ok(tokens) => check(start, &tokens)?,
            Err(error) => prop_assert!(names_its_file(&error, dir), "{error}"),
        }
    }
    // Document boundaries, as `inherit`'s calibration and eval read them.
    for token in [0, total / 3, total.saturating_sub(1)] {
        if token >= total {
            continue;
        }
        match dataset.document_at(token) {
            Ok(doc) if check_tokens => {
                let i = original.ends.partition_point(|&end| end <= token);
                prop_assert_eq!(doc.end, original.ends[i], "document at {}", token);
                prop_assert_eq!(doc.index, i as u64);
            }
            Ok(_) => {}
            Err(error) => prop_assert!(names_its_file(&error, dir), "{error}"),
        }
    }
    Ok(())
}

/// Writes the damaged dataset, reads it and verifies it, each under its memory bound.
fn check_damage(original: &Original, damage: &Damage) -> Result<(), TestCaseError> {
    let (files, index_intact) = damaged(original, damage);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let file_bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    // The damaged manifest, when it still parses: its frame size and shard files.
    let manifest = Manifest::parse(&files[0].1, &dir.path().join(MANIFEST_FILE)).ok();
    let frame_tokens = manifest.as_ref().map_or(16, |m| m.frame_tokens);
    let (read, peak) = peak_during(|| read_everything(dir.path(), original, index_intact));
    read?;
    let bound = read_bound(file_bytes, frame_tokens);
    prop_assert!(
        peak <= bound,
        "reading took {} bytes at once, over the bound of {} ({} bytes of files)",
        peak,
        bound,
        file_bytes
    );
    let (report, peak) = peak_during(|| verify(dir.path(), &tinyforge_task::Silent));
    let bound = verify_bound(file_bytes, frame_tokens);
    prop_assert!(peak <= bound, "verify took {} bytes, bound {}", peak, bound);
    match report {
        Ok(report) => {
            // The manifest parsed, since verify reads it first.
            let manifest = manifest.unwrap();
            for problem in &report.problems {
                let named = manifest.shards.iter().any(|s| s.file == problem.file);
                prop_assert!(named, "{:?}", problem);
                if let Some(frame) = problem.frame {
                    let named = format!("frame {frame}");
                    prop_assert!(problem.message.contains(&named), "{:?}", problem);
                }
            }
            if report.ok() {
                // What verify passes, the reader reads whole.
                let dataset = Dataset::open(dir.path()).unwrap();
                for chunk in dataset.iter_chunks() {
                    prop_assert!(
                        chunk.is_ok(),
                        "verify passed, the reader failed: {:?}",
                        chunk
                    );
                }
            }
        }
        Err(error) => prop_assert!(names_its_file(&error, dir.path()), "{error}"),
    }
    Ok(())
}

#[test]
fn damaged_u16_datasets_fail_by_name_within_bounds() {
    in_own_process(
        "fuzz::damaged_u16_datasets_fail_by_name_within_bounds",
        || {
            let original = original(false);
            proptest!(fuzz_config(CASES, SEED), |(damage in damage())| {
                check_damage(&original, &damage)?;
            });
        },
    );
}

#[test]
fn damaged_u32_datasets_fail_by_name_within_bounds() {
    in_own_process(
        "fuzz::damaged_u32_datasets_fail_by_name_within_bounds",
        || {
            let original = original(true);
            proptest!(fuzz_config(CASES, SEED), |(damage in damage())| {
                check_damage(&original, &damage)?;
            });
        },
    );
}

/// The undamaged dataset passes every check (the properties above are not vacuous).
#[test]
fn the_original_reads_back_within_bounds() {
    in_own_process("fuzz::the_original_reads_back_within_bounds", || {
        for wide in [false, true] {
            let original = original(wide);
            let damage = Damage::Manifest(Vec::new());
            check_damage(&original, &damage).unwrap();
        }
    });
}

// Inputs that once broke a reader, kept as cases of their own.

/// A frame whose entry claims 2^32 - 1 tokens, with the trailer, the manifest entry and the
/// total made to agree: the reader sized its decode buffer by the claim (16 GiB for u32 ids)
/// before anything could fail. Now refused against the manifest's frame size.
#[test]
fn a_frame_claiming_more_than_the_frame_size_is_refused() {
    in_own_process(
        "fuzz::a_frame_claiming_more_than_the_frame_size_is_refused",
        || {
            let original = original(true);
            let damage = Damage::FrameTokens {
                shard: 1,
                frame: 2,
                tokens: u32::MAX,
            };
            check_damage(&original, &damage).unwrap();
            let (files, _) = damaged(&original, &damage);
            let dir = tempfile::tempdir().unwrap();
            for (name, bytes) in &files {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            let dataset = Dataset::open(dir.path()).unwrap();
            let error = dataset.iter_chunks().find_map(Result::err).unwrap();
            let message = error.to_string();
            assert!(
                message.contains(
                    "frame 2 claims 4294967295 tokens, over the dataset's frame size of 16"
                ),
                "{message}"
            );
            assert!(message.contains(&files[2].0), "{message}");
        },
    );
}

/// Shard token counts whose sum passes u64::MAX: the manifest check summed them unchecked and
/// panicked on the overflow.
#[test]
fn shard_counts_that_overflow_are_refused() {
    let original = original(false);
    let damage = Damage::ManifestNumber {
        field: 6,
        shard: 0,
        value: u64::MAX,
    };
    let (files, _) = damaged(&original, &damage);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let error = Dataset::open(dir.path()).err().unwrap();
    let message = error.to_string();
    assert!(
        message.contains("manifest.json: invalid manifest"),
        "{message}"
    );
    assert!(message.contains("overflow"), "{message}");
    check_damage(&original, &damage).unwrap_or_else(|_| panic!("{damage:?}"));
}

/// A trailer claiming 2^64 - 1 frames: the size of its frame table overflowed (a panic)
/// before the check that the tables fit in the file could refuse it.
#[test]
fn a_trailer_claiming_too_many_frames_is_refused() {
    let original = original(false);
    let mut files = original.files.clone();
    let shard = &mut files[1].1;
    let trailer = shard.len() - 48;
    shard[trailer..trailer + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let dataset = Dataset::open(dir.path()).unwrap();
    let message = dataset.read_range(0, 1).unwrap_err().to_string();
    assert!(message.contains(&files[1].0), "{message}");
    assert!(message.contains("which do not fit in"), "{message}");
    let report = verify(dir.path(), &tinyforge_task::Silent).unwrap();
    assert!(
        report.problems.iter().any(|p| p.file == files[1].0),
        "{:?}",
        report.problems
    );
}
