//! The paper's criteria table (§5, Table 5) at small scale: a teacher trained by tinyforge on
//! real text, then students of one shape by random init, L1, L2, Taylor, activation and a
//! learned mask, each trained the same K steps; held-out loss at step 0 and at K, mean ± std
//! over seeds. `bench/inherit/run.sh` prepares the data and runs this.
//!
//!   cargo run --example criteria -p tinyforge-inherit -- \
//!       --data TOKENS --held-out TOKENS --work DIR [--teacher-steps 600] [--steps 150] [--seeds 3]

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::{Device, Kind, Tensor};
use tinyforge_inherit::{Criterion, Depth, InheritConfig, MaskOptions};
use tinyforge_model::ModelOptions;
use tinyforge_shards::Dataset;
use tinyforge_train::{Model, NoCallbacks, TrainOptions};

const SEQ: usize = 64;

struct Args {
    data: PathBuf,
    held_out: PathBuf,
    work: PathBuf,
    teacher_steps: u64,
    steps: u64,
    seeds: u64,
}

fn args() -> Args {
    let mut a = Args {
        data: PathBuf::new(),
        held_out: PathBuf::new(),
        work: PathBuf::from("target/bench-inherit/arms"),
        teacher_steps: 600,
        steps: 150,
        seeds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = value().into(),
            "--held-out" => a.held_out = value().into(),
            "--work" => a.work = value().into(),
            "--teacher-steps" => a.teacher_steps = value().parse().unwrap(),
            "--steps" => a.steps = value().parse().unwrap(),
            "--seeds" => a.seeds = value().parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.data.as_os_str().is_empty(), "--data TOKENS is required");
    assert!(
        !a.held_out.as_os_str().is_empty(),
        "--held-out TOKENS is required"
    );
    a
}

/// Train `steps` steps into `out`; with `reuse`, a finished run there is kept (the teacher's:
/// students are always trained again, as their starting weights may have changed).
fn train(data: &Path, out: &Path, model: &str, steps: u64, seed: u64, reuse: bool) -> PathBuf {
    if reuse
        && let Some(done) = tinyforge_model::newest_step(&out.join("checkpoints")).unwrap()
        && done.ends_with(tinyforge_model::step_dir_name(steps))
    {
        return done;
    }
    let opts: TrainOptions = toml::from_str(&format!(
        "{model}\nseq_len = {SEQ}\nbatch_size = 16\nmicro_batch = 16\nlr = 3e-3\n\
         ref_batch_tokens = 1024\ncheckpoint_every = 100000\neval_every = 100000\n\
         val_units = 1\nmax_steps = {steps}\ndevice = \"cpu\"\nseed = {seed}\n"
    ))
    .unwrap();
    let opts = TrainOptions {
        data: Some(data.into()),
        out: Some(out.into()),
        ..opts
    };
    let _ = std::fs::remove_dir_all(out);
    let report =
        tinyforge_train::train_from_options(&opts, &Default::default(), &mut NoCallbacks).unwrap();
    report.checkpoint.expect("a checkpoint")
}

/// Mean next-token loss over evenly spaced windows of the held-out documents.
fn held_out_loss(model: &Model, held_out: &Path) -> f64 {
    let data = Dataset::open(held_out).unwrap();
    let units = data.unit_count(SEQ);
    let n = units.min(256);
    let mut total = 0.0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(32) {
        let mut ids = Vec::new();
        for &i in chunk {
            let unit = i * units / n;
            ids.extend(data.window(unit, SEQ).unwrap().into_iter().map(i64::from));
        }
        let windows = Tensor::from_slice(&ids).view([chunk.len() as i64, SEQ as i64 + 1]);
        total += tch::no_grad(|| {
            model
                .sequence_losses(&windows)
                .sum(Kind::Float)
                .double_value(&[])
        });
    }
    total / n as f64
}

/// One arm: name, (mean, std) at step 0, (mean, std) after training, the paper's average,
/// every seed's losses at step 0 and after training.
type Row = (
    &'static str,
    (f64, f64),
    (f64, f64),
    f64,
    Vec<f64>,
    Vec<f64>,
);

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

fn main() {
    let a = args();
    tch::set_num_threads(std::thread::available_parallelism().map_or(1, |n| n.get()) as i32);
    std::fs::create_dir_all(&a.work).unwrap();
    let started = Instant::now();
    // Teacher: 192 wide, 6 layers, 6 heads of 32 over 2 key/value heads, FFN 512.
    let teacher_toml = a.work.join("teacher.toml");
    std::fs::write(
        &teacher_toml,
        "name = \"bench-teacher\"\ndim = 192\nlayers = 6\nheads = 6\nkv_heads = 2\n\
         ffn_dim = 512\nmax_seq_len = 512\n",
    )
    .unwrap();
    let teacher = train(
        &a.data,
        &a.work.join("teacher"),
        &format!("model = {:?}", teacher_toml.to_str().unwrap()),
        a.teacher_steps,
        0,
        true,
    );
    let teacher_model = Model::load_hf(&teacher, Device::Cpu, Kind::Float).unwrap();
    let teacher_loss = held_out_loss(&teacher_model, &a.held_out);
    eprintln!(
        "teacher: {} parameters, held-out loss {teacher_loss:.3} after {} steps ({:.0} s)",
        teacher_model.config().param_count(),
        a.teacher_steps,
        started.elapsed().as_secs_f64()
    );
    drop(teacher_model);
    // Student: 96 wide, 3 of 6 layers, 3 heads over 1, FFN 256.
    let student = ModelOptions {
        name: Some("bench-student".into()),
        dim: Some(96),
        layers: Some(3),
        heads: Some(3),
        kv_heads: Some(1),
        ffn_dim: Some(256),
        ..Default::default()
    };
    let arms: [(&str, Option<Criterion>, f64); 6] = [
        ("random", None, 42.06),
        ("l1", Some(Criterion::L1), 46.06),
        ("l2", Some(Criterion::L2), 47.00),
        ("taylor", Some(Criterion::Taylor), 47.90),
        ("activation", Some(Criterion::Activation), f64::NAN),
        ("mask", Some(Criterion::Mask), 48.08),
    ];
    let mut rows: Vec<Row> = Vec::new();
    for (name, criterion, paper) in arms {
        let (mut at0, mut at_k) = (Vec::new(), Vec::new());
        for seed in 0..a.seeds {
            let dir = a.work.join(format!("{name}-seed{seed}"));
            let (model_line, start) = match criterion {
                Some(c) => {
                    let out = dir.join("student");
                    let cfg = InheritConfig {
                        teacher: teacher.clone(),
                        student: student.clone(),
                        id_map: None,
                        calib: a.data.clone(),
                        calib_sequences: 128,
                        calib_len: SEQ,
                        batch: 16,
                        criterion: c,
                        depth: Depth::Block,
                        grad_budget_bytes: 1 << 30,
                        mask: MaskOptions {
                            steps: 150,
                            ..MaskOptions::default()
                        },
                        device: Device::Cpu,
                        seed,
                        out: out.clone(),
                        overwrite: true,
                    };
                    tinyforge_inherit::inherit(&cfg, &tinyforge_task::Silent).unwrap();
                    let m = Model::load_hf(&out, Device::Cpu, Kind::Float).unwrap();
                    (format!("init_from = {:?}", out.to_str().unwrap()), m)
                }
                None => {
                    let vocab = Dataset::open(&a.data).unwrap().vocab_size() as usize;
                    let mut cfg = student.resolve(Some(vocab)).unwrap();
                    cfg.max_seq_len = 512;
                    let path = dir.join("random.toml");
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(&path, cfg.to_toml()).unwrap();
                    // The trainer initialises from the run's seed, as this does.
                    let m = Model::new(&cfg, Device::Cpu, Kind::Float, seed).unwrap();
                    (format!("model = {:?}", path.to_str().unwrap()), m)
                }
            };
            at0.push(held_out_loss(&start, &a.held_out));
            let end = train(&a.data, &dir.join("run"), &model_line, a.steps, seed, false);
            let end = Model::load_hf(&end, Device::Cpu, Kind::Float).unwrap();
            at_k.push(held_out_loss(&end, &a.held_out));
            eprintln!(
                "{name} seed {seed}: held-out loss {:.3} -> {:.3} ({:.0} s)",
                at0.last().unwrap(),
                at_k.last().unwrap(),
                started.elapsed().as_secs_f64()
            );
        }
        rows.push((name, mean_std(&at0), mean_std(&at_k), paper, at0, at_k));
    }
    let mut md = format!(
        "| init | held-out loss at step 0 | after {} steps | paper avg (ARC-E/HellaSwag/C3) |\n\
         | --- | --- | --- | --- |\n",
        a.steps
    );
    for (name, (m0, s0), (mk, sk), paper, _, _) in &rows {
        let paper = if paper.is_nan() {
            "—".to_string()
        } else {
            format!("{paper:.2}")
        };
        md.push_str(&format!(
            "| {name} | {m0:.3} ± {s0:.3} | {mk:.3} ± {sk:.3} | {paper} |\n"
        ));
    }
    // Worst (highest loss) to best; a difference inside one standard deviation is a tie.
    let ordering = |pick: fn(&Row) -> (f64, f64)| {
        let mut order: Vec<(&str, (f64, f64))> = rows.iter().map(|r| (r.0, pick(r))).collect();
        order.sort_by(|x, y| (y.1).0.total_cmp(&(x.1).0));
        let mut text = order[0].0.to_string();
        for pair in order.windows(2) {
            let (a, b) = ((pair[0].1).0, (pair[1].1).0);
            let tie = (a - b).abs() <= (pair[0].1).1.max((pair[1].1).1);
            text.push_str(if tie { " ≈ " } else { " < " });
            text.push_str(pair[1].0);
        }
        text
    };
    md.push_str(&format!(
        "\nWorst to best at step 0: {}\nWorst to best after {} steps: {}\n(≈: within one \
         standard deviation)\nPaper (Table 5, ARC-E/HellaSwag/C3 after 50B tokens), worst to \
         best: random < l1 < l2 < taylor < mask (activation is not in the paper)\nTeacher \
         held-out loss: {teacher_loss:.3}; {} seeds; {:.0} s\n",
        ordering(|r| r.1),
        a.steps,
        ordering(|r| r.2),
        a.seeds,
        started.elapsed().as_secs_f64()
    ));
    let json = serde_json::json!({
        "teacher_loss": teacher_loss, "steps": a.steps, "seeds": a.seeds,
        "arms": rows.iter().map(|r| serde_json::json!({
            "init": r.0, "loss_step0": r.4, "loss_final": r.5, "paper_avg": if r.3.is_nan() { None } else { Some(r.3) },
        })).collect::<Vec<_>>(),
    });
    std::fs::write(a.work.join("criteria.md"), &md).unwrap();
    std::fs::write(
        a.work.join("criteria.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
    print!("{md}");
}
