//! Read-side benchmark for bench/read/run.sh: open time (of the dataset and of a synthetic
//! 100,000-shard manifest), a sequential scan and random training windows, on one thread.
//!
//!     cargo run -p tinyforge-shards --example read_bench -- DATASET [SEQ_LEN] [WINDOWS]
//!
//! Prints one JSON object on stdout.

use std::time::Instant;

use tinyforge_shards::{Dataset, Manifest, ShardEntry, checksum_string, shard_file_name};

/// CPU time of this thread in seconds (Linux schedstat: nanoseconds on a CPU). On a shared
/// machine this, not wall time, is the per-core cost.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(f64::NAN, |ns| ns as f64 / 1e9)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or("usage: read_bench DATASET [SEQ_LEN] [WINDOWS]")?;
    let seq_len: usize = args.get(2).map_or(Ok(2048), |s| s.parse())?;
    let windows: u64 = args.get(3).map_or(Ok(200_000), |s| s.parse())?;

    let start = Instant::now();
    let dataset = Dataset::open(dir)?;
    let open_s = start.elapsed().as_secs_f64();

    // Sequential: every token once, in order.
    let start = Instant::now();
    let cpu_start = cpu_s();
    let mut tokens = 0u64;
    let mut fold = 0u64;
    for chunk in dataset.iter_chunks() {
        let chunk = chunk?;
        tokens += chunk.len() as u64;
        fold = fold.wrapping_add(u64::from(chunk[chunk.len() / 2]));
    }
    let sequential_s = start.elapsed().as_secs_f64();
    let sequential_cpu_s = cpu_s() - cpu_start;

    // Random windows: uniform units from a fixed LCG, one reused buffer (what a loader does).
    let units = dataset.unit_count(seq_len);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut buffer = vec![0u32; seq_len + 1];
    let start = Instant::now();
    let cpu_start = cpu_s();
    for _ in 0..windows {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let unit = (state >> 11) % units;
        dataset.window_into(unit, seq_len, &mut buffer)?;
        fold = fold.wrapping_add(u64::from(buffer[seq_len / 2]));
    }
    let random_s = start.elapsed().as_secs_f64();
    let random_cpu_s = cpu_s() - cpu_start;

    // Opening 100,000 shards: a synthetic manifest (the files need not exist: open is lazy).
    let synthetic = std::env::temp_dir().join(format!("read-bench-100k-{}", std::process::id()));
    let shards = (0..100_000)
        .map(|i| ShardEntry {
            file: shard_file_name(i),
            tokens: 268_435_456,
            documents: 500_000,
            frames: 65_536,
            bytes: 400_000_000,
            checksum: checksum_string(i as u64),
        })
        .collect();
    std::fs::create_dir_all(&synthetic)?;
    Manifest::new(dataset.manifest().header(), None, shards).write(&synthetic)?;
    let start = Instant::now();
    let big = Dataset::open(&synthetic)?;
    let open_100k_s = start.elapsed().as_secs_f64();
    let open_100k_shards = big.shard_count();
    std::fs::remove_dir_all(&synthetic)?;

    let report = serde_json::json!({
        "tokens": tokens,
        "open_s": open_s,
        "sequential_s": sequential_s,
        "sequential_cpu_s": sequential_cpu_s,
        "sequential_tokens_per_s": tokens as f64 / sequential_s,
        "sequential_tokens_per_cpu_s": tokens as f64 / sequential_cpu_s,
        "seq_len": seq_len,
        "windows": windows,
        "random_s": random_s,
        "random_cpu_s": random_cpu_s,
        "random_windows_per_s": windows as f64 / random_s,
        "random_windows_per_cpu_s": windows as f64 / random_cpu_s,
        "open_100k_shards_s": open_100k_s,
        "open_100k_shards": open_100k_shards,
        "checksum_fold": fold,
    });
    println!("{report}");
    Ok(())
}
