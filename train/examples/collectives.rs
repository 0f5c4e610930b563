//! Checks c10d's collectives through tinyforge's shim and times the all-reduce of a flat fp32
//! buffer (the data-parallel gradient), one JSON line per rank; in the spirit of nccl-tests.
//!
//!   cargo run -p tinyforge-train --example collectives -- nccl 951983872 10     # 1 rank
//!   torchrun --no-python --nproc-per-node 2 target/debug/examples/collectives gloo 1000000 10
//!
//! Arguments: backend (gloo | nccl), elements, timed iterations. Ranks come from torchrun's or
//! Slurm's variables (a world of one without them); NCCL runs on cuda:LOCAL_RANK. The buffer is
//! all-reduced `iters` times after one untimed warm-up; bus bandwidth is 2(n-1)/n x bytes / time.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};
use tinyforge_train::dist::{Backend, Launch, LaunchFlags, World};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> tinyforge_train::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend = match args.first().map(String::as_str).unwrap_or("gloo") {
        "nccl" => Backend::Nccl,
        _ => Backend::Gloo,
    };
    let numel: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1 << 20);
    let iters: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let launch = Launch::from_env(&LaunchFlags::default())?;
    let device = match backend {
        Backend::Nccl => Device::Cuda(launch.local_rank),
        Backend::Gloo => Device::Cpu,
    };
    let world = World::join_group(&launch, backend, Duration::from_secs(300))?;
    let (r, w) = (world.rank as f64, world.size as i64);
    let opts = (Kind::Float, device);

    // Correctness first: every collective the trainer uses.
    let t = Tensor::full([7], r + 1.0, opts);
    world.all_reduce_sum(&t, "all-reduce check")?;
    check(&t, &[(w * (w + 1) / 2) as f32; 7], "all-reduce")?;
    let input = Tensor::arange(w * 3, opts) + 100.0 * r;
    let out = Tensor::zeros([3], opts);
    world.reduce_scatter(&out, &input, "reduce-scatter check")?;
    let want: Vec<f32> = (0..3)
        .map(|i| (w as f32) * (r as f32 * 3.0 + i as f32) + 100.0 * (w * (w - 1) / 2) as f32)
        .collect();
    check(&out, &want, "reduce-scatter")?;
    let all = Tensor::zeros([2 * w], opts);
    world.all_gather(&all, &Tensor::full([2], r, opts), "all-gather check")?;
    let want: Vec<f32> = (0..w).flat_map(|i| [i as f32; 2]).collect();
    check(&all, &want, "all-gather")?;
    let b = Tensor::full([1], r * 10.0, opts);
    world.broadcast(&b, (w - 1) as usize, "broadcast check")?;
    check(&b, &[((w - 1) * 10) as f32], "broadcast")?;
    world.barrier("barrier check")?;

    // Then the time of the flat-gradient all-reduce.
    let buf = Tensor::ones([numel], opts);
    world.all_reduce_sum(&buf, "warm-up")?;
    let mut times = vec![];
    for _ in 0..iters {
        world.barrier("timing barrier")?;
        sync(device);
        let t0 = Instant::now();
        world.all_reduce_sum(&buf, "timed all-reduce")?;
        sync(device);
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let bytes = numel as f64 * 4.0;
    let bus = 2.0 * (w as f64 - 1.0) / w as f64 * bytes / median / 1e9;
    println!(
        "{}",
        serde_json::json!({
            "rank": world.rank, "world": world.size, "backend": backend.name(),
            "device": format!("{device:?}"), "elements": numel, "bytes": bytes,
            "iters": iters, "median_s": median, "min_s": times[0],
            "algbw_gb_per_s": bytes / median / 1e9, "busbw_gb_per_s": bus,
            "checks": "all-reduce, reduce-scatter, all-gather, broadcast, barrier: ok",
        })
    );
    Ok(())
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn check(t: &Tensor, want: &[f32], what: &str) -> tinyforge_train::Result<()> {
    let got = Vec::<f32>::try_from(&t.to_device(Device::Cpu))?;
    if got != want {
        return Err(tinyforge_train::Error::Dist(format!(
            "{what} gave {got:?}, expected {want:?}"
        )));
    }
    Ok(())
}
