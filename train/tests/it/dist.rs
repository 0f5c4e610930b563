//! Data parallel over c10d's Gloo on CPU, 2 and 4 real processes: this test binary starts itself
//! as the ranks (`rank_entry`, ignored in a normal run), around a rendezvous store the test
//! serves the way torchrun's agent does.
//!
//! Checked: every collective's result; the weights after N steps equal the one-process run's
//! (plain data parallel and ZeRO-1) to a stated fp32 tolerance, and every rank holds the same
//! weights bit for bit; the loss table of a round holds exactly one row per unit; a run resumes
//! at another world size.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tinyforge_train::dist::{Backend, Launch, Store, World};
use tinyforge_train::{Callbacks, Model, checkpoint, read_loss_table, train_with};

use crate::common::*;

const SPEC_ENV: &str = "TINYFORGE_TEST_RANK_SPEC";
/// Steps of the compared runs, and the plan they read.
const STEPS: usize = 12;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Spec {
    job: String,
    rank: usize,
    world: usize,
    port: u16,
    out: PathBuf,
    zero_stage: u8,
    max_steps: Option<u64>,
    /// Where this rank writes what it saw (its weights, or "ok").
    dump: PathBuf,
}

/// One rank of a distributed test (started by the tests below with `SPEC_ENV` set).
#[test]
#[ignore = "a rank of the distributed tests, which start it themselves"]
fn rank_entry() {
    let spec: Spec =
        serde_json::from_str(&std::env::var(SPEC_ENV).expect("started by a test")).expect("spec");
    single_thread();
    let launch = Launch {
        rank: spec.rank,
        world: spec.world,
        local_rank: spec.rank,
        local_world: spec.world,
        master_addr: "127.0.0.1".into(),
        master_port: spec.port,
        agent_store: true,
        restart: 0,
        source: "test".into(),
    };
    let world = World::join(&launch, Backend::Gloo, Duration::from_secs(60)).expect("join");
    match spec.job.as_str() {
        "collectives" => collectives(&world, &spec),
        "train" => train_rank(&world, &spec),
        other => panic!("unknown job {other}"),
    }
}

fn collectives(world: &World, spec: &Spec) {
    let (r, w) = (world.rank as f32, world.size as i64);
    let t = Tensor::from_slice(&[r + 1.0; 5]);
    world.all_reduce_sum(&t, "t").unwrap();
    let sum = (w * (w + 1) / 2) as f32;
    assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![sum; 5]);

    let input = Tensor::arange(w * 3, (tch::Kind::Float, tch::Device::Cpu)) + 100.0 * r as f64;
    let out = Tensor::zeros([3], (tch::Kind::Float, tch::Device::Cpu));
    world.reduce_scatter(&out, &input, "t").unwrap();
    let want: Vec<f32> = (0..3)
        .map(|i| (w as f32) * (r * 3.0 + i as f32) + 100.0 * (w * (w - 1) / 2) as f32)
        .collect();
    assert_eq!(Vec::<f32>::try_from(&out).unwrap(), want);

    let mine = Tensor::from_slice(&[r, r]);
    let all = Tensor::zeros([2 * w], (tch::Kind::Float, tch::Device::Cpu));
    world.all_gather(&all, &mine, "t").unwrap();
    let want: Vec<f32> = (0..w).flat_map(|i| [i as f32, i as f32]).collect();
    assert_eq!(Vec::<f32>::try_from(&all).unwrap(), want);

    let b = Tensor::from_slice(&[r * 10.0]);
    world.broadcast(&b, 1, "t").unwrap();
    assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![10.0]);
    world.barrier("t").unwrap();
    assert_eq!(world.sum_f64(&[1.5], "t").unwrap(), vec![1.5 * w as f64]);
    std::fs::write(&spec.dump, "ok").unwrap();
}

fn plan() -> Fixed {
    let data = corpus();
    let cfg = loop_config(Path::new("."));
    let n = train_units(data.as_ref(), cfg.seq_len, 0);
    let batches = shuffled_batches(n, cfg.batch_size, 3);
    Fixed(vec![batches[..STEPS].to_vec()])
}

fn run_config(
    out: &Path,
    world: &World,
    zero_stage: u8,
    max_steps: Option<u64>,
) -> tinyforge_train::LoopConfig {
    let mut cfg = loop_config(out);
    cfg.checkpoint_every = 5;
    cfg.eval_every = 0;
    cfg.zero_stage = zero_stage;
    cfg.max_steps = max_steps;
    cfg.world = world.clone();
    cfg
}

/// Keeps the weights a run ends with.
#[derive(Default)]
struct Keep(Option<Tensor>);

impl Callbacks for Keep {
    fn on_finish(&mut self, model: &Model) {
        self.0 = Some(model.flat().detach().copy());
    }
}

fn train_rank(world: &World, spec: &Spec) {
    let cfg = run_config(&spec.out, world, spec.zero_stage, spec.max_steps);
    let mut keep = Keep::default();
    let report = train_with(&cfg, corpus(), &mut plan(), None, &mut keep).expect("train");
    assert_eq!(report.world_size, spec.world);
    // This rank's own copy of the weights, to compare across ranks.
    keep.0.expect("on_finish").save(&spec.dump).unwrap();
}

/// Start `world` ranks of `job` and wait for them; returns each rank's dump file.
fn launch(
    job: &str,
    world: usize,
    out: &Path,
    zero_stage: u8,
    max_steps: Option<u64>,
) -> Vec<PathBuf> {
    let store = Store::tcp("127.0.0.1", 0, true, Duration::from_secs(60), "").unwrap();
    let exe = std::env::current_exe().unwrap();
    let dumps: Vec<PathBuf> = (0..world)
        .map(|r| out.with_extension(format!("{job}-w{world}-z{zero_stage}-rank{r}")))
        .collect();
    let children: Vec<_> = (0..world)
        .map(|rank| {
            let spec = Spec {
                job: job.into(),
                rank,
                world,
                port: store.port(),
                out: out.to_path_buf(),
                zero_stage,
                max_steps,
                dump: dumps[rank].clone(),
            };
            let _ = std::fs::remove_file(&spec.dump);
            Command::new(&exe)
                .args([
                    "dist::rank_entry",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(SPEC_ENV, serde_json::to_string(&spec).unwrap())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for (rank, mut c) in children.into_iter().enumerate() {
        let status = c.wait().unwrap();
        assert!(
            status.success(),
            "{job}: rank {rank} of {world} failed: {status}"
        );
    }
    for d in &dumps {
        assert!(
            d.exists(),
            "{} not written: the rank did not run its job",
            d.display()
        );
    }
    dumps
}

#[test]
fn collectives_over_gloo_at_2_and_4_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    for world in [2, 4] {
        for d in launch("collectives", world, &tmp.path().join("c"), 0, None) {
            assert_eq!(std::fs::read_to_string(d).unwrap(), "ok");
        }
    }
}

fn single_process_weights(out: &Path) -> Tensor {
    let cfg = run_config(out, &World::single(), 0, None);
    let mut keep = Keep::default();
    train_with(&cfg, corpus(), &mut plan(), None, &mut keep).unwrap();
    keep.0.unwrap()
}

/// max |a - b| and ||a - b|| / ||a||.
fn distance(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let d = a - b;
    let max = d.abs().max().double_value(&[]);
    let rel = d.norm().double_value(&[]) / a.norm().double_value(&[]);
    (max, rel)
}

/// The fp32 tolerance of a data-parallel run against one process: the same sums in another
/// order, through 12 AdamW steps.
const MAX_ABS: f64 = 1e-4;
const MAX_REL: f64 = 1e-5;

fn load(p: &Path) -> Tensor {
    Tensor::load(p).unwrap()
}

#[test]
fn data_parallel_and_zero1_train_the_single_process_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = single_process_weights(&tmp.path().join("single"));
    let mut by_stage = vec![];
    for (world, zero) in [(2, 0), (2, 1), (4, 1), (4, 0)] {
        let out = tmp.path().join(format!("w{world}-z{zero}"));
        let dumps = launch("train", world, &out, zero, None);
        let ranks: Vec<Tensor> = dumps.iter().map(|d| load(d)).collect();
        for (r, w) in ranks.iter().enumerate().skip(1) {
            assert!(
                w.equal(&ranks[0]),
                "world {world} zero {zero}: rank {r} differs from rank 0"
            );
        }
        let (max, rel) = distance(&reference, &ranks[0]);
        eprintln!("world {world} zero_stage {zero}: max |Δw| {max:.3e}, relative {rel:.3e}");
        assert!(
            max < MAX_ABS && rel < MAX_REL,
            "world {world} zero {zero}: {max} {rel}"
        );
        // One loss row per unit the plan trained, no more, no less.
        let rows = read_loss_table(&out.join("losses/train-round-1")).unwrap();
        let mut units: Vec<u64> = rows.iter().map(|(u, _)| *u).collect();
        let mut want: Vec<u64> = plan().0[0].concat();
        units.sort_unstable();
        want.sort_unstable();
        assert_eq!(units, want, "world {world}: loss table rows");
        assert!(rows.iter().all(|(_, l)| l.is_finite()));
        if world == 4 {
            by_stage.push(ranks[0].shallow_clone());
        }
    }
    // ZeRO-1 and plain data parallel, same world: the same update.
    let (max, rel) = distance(&by_stage[0], &by_stage[1]);
    eprintln!(
        "world 4, ZeRO-1 against plain data parallel: max |Δw| {max:.3e}, relative {rel:.3e}"
    );
    assert!(max < MAX_ABS && rel < MAX_REL, "{max} {rel}");
}

#[test]
fn a_run_resumes_at_another_world_size() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = single_process_weights(&tmp.path().join("single"));
    let out = tmp.path().join("resized");
    // 2 ranks (ZeRO-1) stop at step 5 with a checkpoint; 4 ranks finish; then one process
    // would find nothing left to do.
    launch("train", 2, &out, 1, Some(5));
    let state = checkpoint::read_state(&final_checkpoint(&out)).unwrap();
    assert_eq!(state.step, 5);
    let dumps = launch("train", 4, &out, 1, None);
    let w = load(&dumps[0]);
    let (max, rel) = distance(&reference, &w);
    eprintln!("2 ranks then 4: max |Δw| {max:.3e}, relative {rel:.3e}");
    assert!(max < MAX_ABS && rel < MAX_REL, "{max} {rel}");
    assert_eq!(
        checkpoint::read_state(&final_checkpoint(&out))
            .unwrap()
            .step,
        STEPS as u64
    );
    let rows = read_loss_table(&out.join("losses/train-round-1")).unwrap();
    assert_eq!(rows.len(), STEPS * 8, "one row per unit across the resize");
}
