//! The training loop: rounds of plans, gradient accumulation, AdamW over the flat buffers,
//! validation, loss recording, checkpoints and exact resume.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, RunState};
use crate::data::{self, RoundPlan, UnitSource};
use crate::error::{Error, Result};
use crate::losses::LossRecorder;
use crate::metrics::{self, MetricsWriter, Record, StepMetrics, ValMetrics};
use crate::model::Model;
use crate::optim::{self, AdamW, AdamWConfig, Schedule};
use tinyforge_model::ModelConfig;

/// Everything the loop needs, validated (see `options::TrainOptions` for the TOML side).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopConfig {
    pub model: ModelConfig,
    /// Run folder: `checkpoints/`, `losses/`, `metrics.jsonl`, `loss.svg`, `report.json`.
    pub out: PathBuf,
    pub seq_len: usize,
    /// Sequences per optimizer step (the plan's batch).
    pub batch_size: usize,
    /// Sequences per forward/backward; `batch_size / micro_batch` accumulation steps.
    pub micro_batch: usize,
    /// Peak learning rate at `ref_batch_tokens`; scaled by sqrt(batch tokens / ref).
    pub lr: f64,
    pub ref_batch_tokens: u64,
    pub warmup: f64,
    pub min_lr_ratio: f64,
    pub adamw: AdamWConfig,
    pub grad_clip: f64,
    pub seed: u64,
    pub checkpoint_every: u64,
    pub keep_checkpoints: usize,
    /// Write checkpoints at all (off for synthetic benchmarks).
    #[serde(default = "yes")]
    pub checkpoints: bool,
    /// Validation every N steps (0: only at the end of each round).
    pub eval_every: u64,
    /// Stop (with a checkpoint) once this many steps of the whole run are done.
    pub max_steps: Option<u64>,
    /// Start from this checkpoint's weights instead of a random init (parameter inheritance, or
    /// a previous run); ignored when the run folder already has a checkpoint to resume.
    pub init_from: Option<PathBuf>,
    #[serde(with = "device_serde")]
    pub device: Device,
    #[serde(with = "kind_serde")]
    pub compute: Kind,
    pub prefetch: usize,
}

impl LoopConfig {
    pub fn batch_tokens(&self) -> u64 {
        (self.batch_size * self.seq_len) as u64
    }
    pub fn peak_lr(&self) -> f64 {
        optim::scaled_lr(self.lr, self.batch_tokens(), self.ref_batch_tokens)
    }
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.out.join("checkpoints")
    }
    pub fn train_losses_dir(&self, round: usize) -> PathBuf {
        self.out
            .join("losses")
            .join(format!("train-round-{}", round + 1))
    }
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.into()));
        if self.seq_len == 0 || self.batch_size == 0 || self.micro_batch == 0 {
            return bad("seq_len, batch_size and micro_batch must be > 0");
        }
        if !self.batch_size.is_multiple_of(self.micro_batch) {
            return bad("batch_size must be a multiple of micro_batch");
        }
        if self.seq_len > self.model.max_seq_len {
            return bad("seq_len exceeds the model's max_seq_len");
        }
        if self.lr.is_nan() || self.lr <= 0.0 || self.checkpoint_every == 0 {
            return bad("lr and checkpoint_every must be > 0");
        }
        Ok(())
    }
}

/// Where the plans of the rounds come from. Round 0 is typically a permutation of all units;
/// a later round may score the data with the model trained so far and select from it.
pub trait Planner {
    fn rounds(&self) -> usize;
    /// The plan of `round`. `model` is the model as it stands at the start of the round (the
    /// last checkpoint of the previous round). Must be deterministic: a resumed run asks again.
    fn plan(
        &mut self,
        round: usize,
        model: &Model,
        events: &mut dyn Callbacks,
    ) -> Result<Arc<dyn RoundPlan>>;
}

/// Things the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    Resumed {
        checkpoint: PathBuf,
        step: u64,
        round: usize,
        round_step: u64,
    },
    RoundStart {
        round: usize,
        steps: u64,
        start: u64,
        peak_lr: f64,
    },
    Validation(ValMetrics),
    Checkpoint {
        path: PathBuf,
        step: u64,
    },
    Scoring {
        round: usize,
        done: u64,
        total: u64,
    },
    RoundEnd {
        round: usize,
        step: u64,
    },
}

/// Hooks for the command (progress bars, JSON progress, Ctrl-C).
pub trait Callbacks {
    fn on_step(&mut self, _m: &StepMetrics) {}
    fn on_event(&mut self, _e: &Event) {}
    /// Checked after every step; `true` writes a checkpoint and returns.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// No callbacks.
pub struct Silent;
impl Callbacks for Silent {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub out: PathBuf,
    pub model: String,
    pub params: u64,
    pub embedding_share: f64,
    pub device: String,
    pub steps: u64,
    pub rounds_done: usize,
    pub tokens: u64,
    /// True when every round's plan was consumed; false when stopped by `max_steps` or a callback.
    pub complete: bool,
    pub first_loss: Option<f64>,
    pub last_loss: Option<f64>,
    pub last_val_loss: Option<f64>,
    pub mean_tokens_per_s: Option<f64>,
    pub mean_model_flops_per_s: Option<f64>,
    pub checkpoint: Option<PathBuf>,
    pub metrics: PathBuf,
    pub loss_plot: Option<PathBuf>,
}

/// Held-out data evaluated every `eval_every` steps.
pub struct Validation {
    pub source: Arc<dyn UnitSource>,
    pub units: Vec<u64>,
}

/// Train all rounds of `planner` on `data`, resuming from the newest checkpoint in `cfg.out`.
pub fn train_with(
    cfg: &LoopConfig,
    data: Arc<dyn UnitSource>,
    planner: &mut dyn Planner,
    validation: Option<&Validation>,
    cb: &mut dyn Callbacks,
) -> Result<TrainReport> {
    cfg.validate()?;
    fs_err::create_dir_all(&cfg.out)?;
    let ckpt_dir = cfg.checkpoint_dir();
    let eos = data.eos_id();
    if data.vocab_size() > cfg.model.vocab_size {
        return Err(Error::Config(format!(
            "the dataset's vocabulary ({}) is larger than the model's ({})",
            data.vocab_size(),
            cfg.model.vocab_size
        )));
    }

    // Resume, or start fresh (random init or inherited weights).
    let (mut model, mut optim, mut state) = match checkpoint::latest(&ckpt_dir)? {
        Some(path) => {
            let (model, state) = checkpoint::load_model(&path, cfg.device, cfg.compute)?;
            if state.model != cfg.model {
                return Err(Error::ckpt(
                    &path,
                    "was written for another model config; use a new --out",
                ));
            }
            let mut optim = AdamW::new(&model, cfg.adamw);
            checkpoint::load_optimizer(&path, &state, &mut optim)?;
            cb.on_event(&Event::Resumed {
                checkpoint: path,
                step: state.step,
                round: state.round,
                round_step: state.round_step,
            });
            (model, optim, state)
        }
        None => {
            let model = match &cfg.init_from {
                Some(p) => {
                    // Any Hugging Face LLaMA-family folder: a tinyforge checkpoint, or the
                    // student `tinyforge inherit` wrote.
                    let m = Model::load_hf(p, cfg.device, cfg.compute)?;
                    if !m.config().same_architecture(&cfg.model) {
                        return Err(Error::ckpt(
                            p,
                            format!(
                                "init_from holds another model shape ({:?}) than the run's \
                                 model ({:?}); set the run's model to the folder's config",
                                m.config(),
                                cfg.model
                            ),
                        ));
                    }
                    m
                }
                None => Model::new(&cfg.model, cfg.device, cfg.compute, cfg.seed)?,
            };
            let optim = AdamW::new(&model, cfg.adamw);
            let state = RunState {
                format: checkpoint::FORMAT.into(),
                version: checkpoint::VERSION,
                step: 0,
                round: 0,
                round_step: 0,
                round_steps: 0,
                tokens: 0,
                seed: cfg.seed,
                rng_word_pos: 0,
                last_loss: None,
                model: cfg.model.clone(),
                files: Default::default(),
            };
            (model, optim, state)
        }
    };

    let metrics_path = cfg.out.join("metrics.jsonl");
    let mut metrics = MetricsWriter::open(&metrics_path, state.step)?;
    let flops_per_token = cfg.model.train_flops_per_token(cfg.seq_len);
    let peak = cfg.peak_lr();
    let mut last_ckpt: Option<PathBuf> = checkpoint::latest(&ckpt_dir)?;
    let mut last_val = None;
    let mut complete = true;

    'rounds: for round in state.round..planner.rounds() {
        let plan = planner.plan(round, &model, cb)?;
        let steps = plan.steps();
        let start = if round == state.round {
            state.round_step
        } else {
            0
        };
        state.round = round;
        state.round_step = start;
        state.round_steps = steps;
        if start >= steps {
            continue;
        }
        let schedule = Schedule::new(peak, steps, cfg.warmup, cfg.min_lr_ratio);
        cb.on_event(&Event::RoundStart {
            round,
            steps,
            start,
            peak_lr: peak,
        });
        let mut recorder =
            LossRecorder::open(&cfg.train_losses_dir(round), (round + 1) as u16, state.step)?;
        let batches = data::prefetch(
            data.clone(),
            plan.clone(),
            start,
            cfg.seq_len,
            cfg.model.vocab_size,
            cfg.prefetch,
        );
        for batch in batches {
            let batch = batch?;
            let t0 = Instant::now();
            let (loss, unit_losses) = forward_backward(&mut model, &batch.windows, cfg)?;
            if !loss.is_finite() {
                // The weights are still those of the last good step: keep them.
                let path = save_if(cfg, &model, &optim, &state, eos, &mut recorder)?;
                return Err(Error::NonFinite {
                    step: state.step + 1,
                    round: round + 1,
                    loss,
                    checkpoint: path.display().to_string(),
                });
            }
            let grad_norm = optim::clip_grad_norm(&model, cfg.grad_clip);
            if !grad_norm.is_finite() {
                let path = save_if(cfg, &model, &optim, &state, eos, &mut recorder)?;
                return Err(Error::NonFinite {
                    step: state.step + 1,
                    round: round + 1,
                    loss: grad_norm,
                    checkpoint: path.display().to_string(),
                });
            }
            let lr = schedule.lr(state.round_step);
            optim.update(&mut model, lr);
            if cfg.device.is_cuda() {
                tch::Cuda::synchronize(cfg.device_index());
            }
            let dt = t0.elapsed().as_secs_f64();
            let tokens = cfg.batch_tokens();
            state.step += 1;
            state.round_step += 1;
            state.tokens += tokens;
            state.last_loss = Some(loss);
            recorder.record(&batch.units, &unit_losses);
            let m = StepMetrics {
                step: state.step,
                round,
                round_step: state.round_step,
                loss,
                lr,
                grad_norm,
                tokens: state.tokens,
                step_s: dt,
                tokens_per_s: tokens as f64 / dt,
                model_flops_per_s: flops_per_token * tokens as f64 / dt,
            };
            metrics.write(&Record::Train(m.clone()))?;
            cb.on_step(&m);
            let round_end = state.round_step == steps;
            if let Some(v) = validation
                && ((cfg.eval_every > 0 && state.step % cfg.eval_every == 0) || round_end)
            {
                let val_loss = evaluate(&model, v, cfg)?;
                let vm = ValMetrics {
                    step: state.step,
                    round,
                    val_loss,
                    val_units: v.units.len(),
                };
                metrics.write(&Record::Val(vm.clone()))?;
                cb.on_event(&Event::Validation(vm));
                last_val = Some(val_loss);
            }
            let stop = cfg.max_steps.is_some_and(|m| state.step >= m) || cb.should_stop();
            if cfg.checkpoints && (round_end || stop || state.step % cfg.checkpoint_every == 0) {
                let path = save(cfg, &model, &optim, &state, eos, &mut recorder)?;
                cb.on_event(&Event::Checkpoint {
                    path: path.clone(),
                    step: state.step,
                });
                last_ckpt = Some(path);
            }
            if stop && !round_end {
                complete = false;
                break 'rounds;
            }
            if stop && round_end && round + 1 < planner.rounds() {
                complete = false;
                break 'rounds;
            }
        }
        if state.round_step < steps {
            // The prefetch thread ended early: only on an error it already sent.
            return Err(Error::Data(format!(
                "round {} ended at step {} of {steps}",
                round + 1,
                state.round_step
            )));
        }
        cb.on_event(&Event::RoundEnd {
            round,
            step: state.step,
        });
    }
    if complete {
        state.round = planner.rounds();
    }
    finish(
        cfg,
        &model,
        &state,
        complete,
        last_ckpt,
        last_val,
        &metrics_path,
    )
}

impl LoopConfig {
    fn device_index(&self) -> i64 {
        match self.device {
            Device::Cuda(i) => i as i64,
            _ => 0,
        }
    }
}

/// Forward and backward over the micro-batches of one step; gradients accumulate in the flat
/// gradient buffer as the gradient of the mean loss over the whole batch.
fn forward_backward(
    model: &mut Model,
    windows: &Tensor,
    cfg: &LoopConfig,
) -> Result<(f64, Vec<f32>)> {
    let n = windows.size()[0];
    model.flat_mut().zero_grad();
    let mut unit_losses = Vec::with_capacity(n as usize);
    let mut start = 0;
    while start < n {
        let len = (cfg.micro_batch as i64).min(n - start);
        let micro = data::to_device(&windows.narrow(0, start, len), cfg.device);
        let losses = model.sequence_losses(&micro);
        (losses.sum(Kind::Float) / n as f64).backward();
        let host = losses.detach().to_device(Device::Cpu);
        unit_losses.extend(Vec::<f32>::try_from(&host)?);
        start += len;
    }
    let loss = unit_losses.iter().map(|&l| l as f64).sum::<f64>() / n as f64;
    Ok((loss, unit_losses))
}

/// Mean loss of the validation units, in inference mode.
fn evaluate(model: &Model, v: &Validation, cfg: &LoopConfig) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let mut total = 0.0;
    for chunk in v.units.chunks(cfg.micro_batch) {
        let w = data::load_batch(v.source.as_ref(), chunk, cfg.seq_len, cfg.model.vocab_size)?;
        let losses = model.sequence_losses(&data::to_device(&w, cfg.device));
        total += losses.sum(Kind::Float).double_value(&[]);
    }
    Ok(total / v.units.len().max(1) as f64)
}

/// The checkpoint of the last good state before a non-finite step (none when checkpoints are
/// off: then the message names the newest existing one).
fn save_if(
    cfg: &LoopConfig,
    model: &Model,
    optim: &AdamW,
    state: &RunState,
    eos: Option<u32>,
    recorder: &mut LossRecorder,
) -> Result<PathBuf> {
    if cfg.checkpoints {
        save(cfg, model, optim, state, eos, recorder)
    } else {
        Ok(checkpoint::latest(&cfg.checkpoint_dir())?
            .unwrap_or_else(|| PathBuf::from("(none: checkpoints off)")))
    }
}

fn save(
    cfg: &LoopConfig,
    model: &Model,
    optim: &AdamW,
    state: &RunState,
    eos: Option<u32>,
    recorder: &mut LossRecorder,
) -> Result<PathBuf> {
    // Loss records first: a part never refers to steps that no checkpoint holds after a crash
    // between the two writes, because resume deletes parts past the checkpoint it loads.
    recorder.flush(state.step)?;
    let path = checkpoint::save(&cfg.checkpoint_dir(), model, Some(optim), state, eos)?;
    checkpoint::prune(&cfg.checkpoint_dir(), cfg.keep_checkpoints)?;
    Ok(path)
}

fn finish(
    cfg: &LoopConfig,
    model: &Model,
    state: &RunState,
    complete: bool,
    checkpoint: Option<PathBuf>,
    last_val: Option<f64>,
    metrics_path: &Path,
) -> Result<TrainReport> {
    let records = metrics::read_records(metrics_path)?;
    let train: Vec<&StepMetrics> = records
        .iter()
        .filter_map(|r| {
            if let Record::Train(m) = r {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    let plot = cfg.out.join("loss.svg");
    let loss_plot = if train.is_empty() {
        None
    } else {
        metrics::plot_loss(&records, &plot)?;
        Some(plot)
    };
    // Throughput over steady-state steps (the first steps pay for allocator warm-up).
    let steady: Vec<&&StepMetrics> = train
        .iter()
        .skip(train.len().min(3).min(train.len().saturating_sub(1)))
        .collect();
    let mean = |f: fn(&StepMetrics) -> f64| {
        (!steady.is_empty()).then(|| steady.iter().map(|m| f(m)).sum::<f64>() / steady.len() as f64)
    };
    let last_val = last_val.or_else(|| {
        records.iter().rev().find_map(|r| {
            if let Record::Val(v) = r {
                Some(v.val_loss)
            } else {
                None
            }
        })
    });
    let report = TrainReport {
        out: cfg.out.clone(),
        model: model.config().name.clone(),
        params: model.config().param_count(),
        embedding_share: model.config().embedding_share(),
        device: format!("{:?}", cfg.device),
        steps: state.step,
        rounds_done: if complete {
            state.round
        } else {
            state.round + usize::from(state.round_done())
        },
        tokens: state.tokens,
        complete,
        first_loss: train.first().map(|m| m.loss),
        last_loss: train.last().map(|m| m.loss),
        last_val_loss: last_val,
        mean_tokens_per_s: mean(|m| m.tokens_per_s),
        mean_model_flops_per_s: mean(|m| m.model_flops_per_s),
        checkpoint,
        metrics: metrics_path.to_path_buf(),
        loss_plot,
    };
    fs_err::write(
        cfg.out.join("report.json"),
        serde_json::to_vec_pretty(&report).expect("json"),
    )?;
    Ok(report)
}

fn yes() -> bool {
    true
}

mod device_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use tch::Device;
    pub fn serialize<S: Serializer>(d: &Device, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&match d {
            Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".into(),
        })
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => Device::Cuda(i),
            None => Device::Cpu,
        })
    }
}

mod kind_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use tch::Kind;
    pub fn serialize<S: Serializer>(k: &Kind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if *k == Kind::BFloat16 { "bf16" } else { "fp32" })
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        Ok(if String::deserialize(d)? == "bf16" {
            Kind::BFloat16
        } else {
            Kind::Float
        })
    }
}
