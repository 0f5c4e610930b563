//! Integration tests of the shard format: write datasets, read them back every way the trainer
//! and the sampler do, damage them, merge them.

mod damage;
mod format_props;
mod fuzz;
mod roundtrip;

/// Counts the bytes live, for the memory bounds of the fuzz tests (measured in a process of
/// their own); the other tests only pay an atomic add per allocation.
#[global_allocator]
static ALLOCATOR: tinyforge_testkit::CountingAllocator = tinyforge_testkit::CountingAllocator;

use std::path::Path;

use tinyforge_shards::{DatasetHeader, DatasetWriter, Dtype, Manifest, ShardOptions, TaskInfo};

/// Deterministic pseudo-random documents (a tiny LCG: tests need no RNG crate).
pub fn documents(count: usize, max_len: usize, vocab: u32, eos: u32, seed: u64) -> Vec<Vec<u32>> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    (0..count)
        .map(|_| {
            let len = next() as usize % (max_len + 1);
            (0..len)
                .map(|_| {
                    let t = next() % vocab;
                    if t == eos { (t + 1) % vocab } else { t }
                })
                .collect()
        })
        .collect()
}

pub fn header(vocab_size: u32, eos_id: u32, frame_tokens: u32) -> DatasetHeader {
    DatasetHeader {
        tokenizer_sha256: "0".repeat(64),
        vocab_size,
        dtype: Dtype::for_vocab(vocab_size),
        eos_id,
        frame_tokens,
    }
}

/// Writes `docs` as a dataset in `dir` and returns its manifest.
pub fn write_dataset(
    dir: &Path,
    header: &DatasetHeader,
    shard_tokens: u64,
    docs: &[Vec<u32>],
    task: Option<TaskInfo>,
) -> Manifest {
    let mut writer = DatasetWriter::new(
        dir,
        ShardOptions::from_header(header),
        shard_tokens,
        Vec::new(),
    )
    .unwrap();
    for (i, doc) in docs.iter().enumerate() {
        writer.push_document(i as u64, doc).unwrap();
    }
    let shards = writer.finish().unwrap();
    let manifest = Manifest::new(header.clone(), task, shards);
    manifest.write(dir).unwrap();
    manifest
}

/// The token stream the dataset must hold: each document followed by EOS.
pub fn stream(docs: &[Vec<u32>], eos: u32) -> Vec<u32> {
    docs.iter()
        .flat_map(|d| d.iter().copied().chain([eos]))
        .collect()
}
