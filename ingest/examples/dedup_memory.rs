//! One bucket of the cross-chunk dedup over synthetic content hashes, for `bench/dedup/run.sh`:
//! the same `find_duplicates` that `tinyforge ingest --dedup-bucket` runs over the chunks' hash
//! files, here fed N documents in C chunks of which a fraction repeat an earlier document.
//!
//!   cargo run -p tinyforge-ingest --example dedup_memory -- DOCS CHUNKS DUP_RATE BUCKET
//!   (e.g. 100000000 1000 0.2 0/8)

use std::time::Instant;

use tinyforge_ingest::{Shard, find_duplicates};
use xxhash_rust::xxh3::xxh3_128;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [docs, chunks, dup_rate, bucket] = args.as_slice() else {
        return Err(
            "usage: dedup_memory DOCS CHUNKS DUP_RATE BUCKET (e.g. 100000000 1000 0.2 0/8)".into(),
        );
    };
    let docs: u64 = docs.parse()?;
    let chunks: u64 = chunks.parse()?;
    let dup_rate: f64 = dup_rate.parse()?;
    let bucket: Shard = bucket.parse()?;
    let per_chunk = docs.div_ceil(chunks);
    let started = Instant::now();
    // Document d is a copy of document d / 2 when its coin says so.
    let threshold = (dup_rate * u64::MAX as f64) as u64;
    let generated = (0..chunks).map(|chunk| {
        let first = chunk * per_chunk;
        let hashes: Vec<u128> = (first..(first + per_chunk).min(docs))
            .map(|d| {
                let coin = xxh3_128(&d.to_le_bytes()) as u64;
                let source = if coin < threshold { d / 2 } else { d };
                xxh3_128(&(source | 1 << 63).to_le_bytes())
            })
            .collect();
        Ok((chunk as usize, hashes))
    });
    let mut out = std::io::BufWriter::new(std::io::sink());
    let stats = find_duplicates(generated, bucket, &mut out)?;
    println!(
        "{{\"docs\": {docs}, \"bucket\": \"{bucket}\", \"distinct\": {}, \"duplicates\": {}, \"seconds\": {:.2}}}",
        stats.distinct,
        stats.duplicates,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
