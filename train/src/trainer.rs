//! The training loop: rounds of plans, gradient accumulation, AdamW over the flat buffers,
//! validation, loss recording, checkpoints and exact resume.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, RunState};
use crate::data::{self, Batch, RoundPlan, UnitSource};
use crate::dist::World;
use crate::error::{Error, Result};
use crate::losses::LossRecorder;
use crate::metrics::{self, MetricsWriter, Record, StepMetrics, ValMetrics};
use crate::model::Model;
use crate::optim::{self, AdamWConfig, Schedule};
use crate::parallel::{self, Optimizer, Sharding};
use crate::tensorboard::TENSORBOARD_DIR;
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
    /// Optimizer state over the ranks: 0 replicated, 1 ZeRO-1 (sharded).
    #[serde(default)]
    pub zero_stage: u8,
    /// The processes this run trains on (a world of one unless launched with several).
    #[serde(skip)]
    pub world: World,
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
        let w = self.world.size;
        if !self.batch_size.is_multiple_of(w) {
            let up = self.batch_size.div_ceil(w) * w;
            return Err(Error::Config(format!(
                "batch_size {} does not split over {w} ranks: make it a multiple of {w} (e.g. \
                 {up}), or run on a world size that divides it",
                self.batch_size
            )));
        }
        Sharding::from_stage(self.zero_stage)?;
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
    RoundEnd {
        round: usize,
        step: u64,
    },
}

/// Hooks for the command (progress bars, JSON progress, Ctrl-C).
pub trait Callbacks {
    fn on_step(&mut self, _m: &StepMetrics) {}
    fn on_event(&mut self, _e: &Event) {}
    /// The model as the run ends (for callers that keep it, or check it).
    fn on_finish(&mut self, _model: &Model) {}
    /// Checked after every step; `true` writes a checkpoint and returns.
    fn should_stop(&mut self) -> bool {
        false
    }
    /// Where work between the steps reports its progress: scoring the previous round before
    /// drawing the next one's plan.
    fn reporter(&self) -> &dyn tinyforge_task::Reporter {
        &tinyforge_task::Silent
    }
}

/// No callbacks.
pub struct NoCallbacks;
impl Callbacks for NoCallbacks {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub out: PathBuf,
    pub model: String,
    pub params: u64,
    pub embedding_share: f64,
    pub device: tinyforge_model::Device,
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
    /// Mean seconds per step in gradient and parameter collectives.
    pub mean_comm_s: Option<f64>,
    /// The checkpoint step this run resumed from (none for a fresh start).
    pub resumed_from_step: Option<u64>,
    pub world_size: usize,
    /// 0: optimizer state replicated on every rank; 1: ZeRO-1, sharded.
    pub zero_stage: u8,
    /// Bytes of optimizer state (AdamW moments, decay mask, ZeRO-1 buffers) each rank holds.
    pub optimizer_bytes_per_rank: u64,
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
///
/// On several ranks (`cfg.world`) every rank runs this with the same arguments: each trains its
/// share of every batch, and rank 0 alone writes the run folder (checkpoints, loss tables,
/// metrics, report), which must be on storage every rank sees.
pub fn train_with(
    cfg: &LoopConfig,
    data: Arc<dyn UnitSource>,
    planner: &mut dyn Planner,
    validation: Option<&Validation>,
    cb: &mut dyn Callbacks,
) -> Result<TrainReport> {
    cfg.validate()?;
    fs_err::create_dir_all(&cfg.out).map_err(Error::Io)?;
    if data.vocab_size() > cfg.model.vocab_size {
        return Err(Error::Config(format!(
            "the dataset's vocabulary ({}) is larger than the model's ({})",
            data.vocab_size(),
            cfg.model.vocab_size
        )));
    }
    let mut run = Run::start(cfg, data.eos_id(), cb)?;
    run.tokenizer = data.tokenizer_files()?;
    let mut complete = true;
    for round in run.state.round..planner.rounds() {
        let plan = planner.plan(round, &run.model, cb)?;
        match run.round(round, plan, data.clone(), validation, cb)? {
            RoundEnd::Done => {}
            RoundEnd::Stopped { at_round_end } => {
                complete = at_round_end && round + 1 == planner.rounds();
                break;
            }
        }
    }
    if complete {
        run.state.round = planner.rounds();
    }
    cfg.world.barrier("the end of the run")?;
    cb.on_finish(&run.model);
    finish(cfg, &run, complete)
}

/// How a round ended.
enum RoundEnd {
    /// Every step of its plan done.
    Done,
    /// Stopped by `max_steps` or a callback; `at_round_end` when that was also the round's
    /// last step.
    Stopped { at_round_end: bool },
}

/// A run in progress: the model, its optimizer and where the run stands.
struct Run<'a> {
    cfg: &'a LoopConfig,
    model: Model,
    optim: Optimizer,
    state: RunState,
    eos: Option<u32>,
    /// The data's tokenizer files, copied into every checkpoint.
    tokenizer: Vec<(String, Vec<u8>)>,
    /// Rank 0 only.
    metrics: Option<MetricsWriter>,
    last_ckpt: Option<PathBuf>,
    last_val: Option<f64>,
    resumed_from: Option<u64>,
}

impl<'a> Run<'a> {
    /// Resume from the newest checkpoint, or start fresh (random init or inherited weights);
    /// then every rank takes rank 0's weights.
    fn start(cfg: &'a LoopConfig, eos: Option<u32>, cb: &mut dyn Callbacks) -> Result<Self> {
        let world = &cfg.world;
        let sharding = Sharding::from_stage(cfg.zero_stage)?;
        let latest = checkpoint::latest(&cfg.checkpoint_dir())?;
        agree_on_checkpoint(world, latest.as_deref())?;
        let (model, optim, state) = match &latest {
            Some(path) => {
                let (model, state) = checkpoint::load_model(path, cfg.device, cfg.compute)?;
                if state.model != cfg.model {
                    return Err(Error::ckpt(
                        path,
                        "was written for another model config; use a new --out",
                    ));
                }
                let mut optim = Optimizer::new(&model, cfg.adamw, world, sharding);
                let moments = checkpoint::load_moments(path, &state, model.numel())?;
                optim.load(&moments, state.step)?;
                cb.on_event(&Event::Resumed {
                    checkpoint: path.clone(),
                    step: state.step,
                    round: state.round,
                    round_step: state.round_step,
                });
                (model, optim, state)
            }
            None => {
                let model = initial_model(cfg)?;
                let optim = Optimizer::new(&model, cfg.adamw, world, sharding);
                (model, optim, RunState::fresh(cfg.seed, &cfg.model))
            }
        };
        world.broadcast(&model.flat().detach(), 0, "the initial weights' broadcast")?;
        let metrics_path = cfg.out.join("metrics.jsonl");
        let metrics = match world.is_main() {
            true => Some(MetricsWriter::open(
                &metrics_path,
                &cfg.out.join(TENSORBOARD_DIR),
                state.step,
            )?),
            false => None,
        };
        let resumed_from = latest.is_some().then_some(state.step);
        Ok(Self {
            cfg,
            model,
            optim,
            resumed_from,
            state,
            eos,
            tokenizer: Vec::new(),
            metrics,
            last_ckpt: latest,
            last_val: None,
        })
    }

    /// Train the steps of `plan` from where the run stands in it.
    fn round(
        &mut self,
        round: usize,
        plan: Arc<dyn RoundPlan>,
        data: Arc<dyn UnitSource>,
        validation: Option<&Validation>,
        cb: &mut dyn Callbacks,
    ) -> Result<RoundEnd> {
        let cfg = self.cfg;
        let steps = plan.steps();
        let start = if round == self.state.round {
            self.state.round_step
        } else {
            0
        };
        self.state.round = round;
        self.state.round_step = start;
        self.state.round_steps = steps;
        if start >= steps {
            return Ok(RoundEnd::Done);
        }
        let peak = cfg.peak_lr();
        let schedule = Schedule::new(peak, steps, cfg.warmup, cfg.min_lr_ratio);
        cb.on_event(&Event::RoundStart {
            round,
            steps,
            start,
            peak_lr: peak,
        });
        let mut recorder = match cfg.world.is_main() {
            true => Some(LossRecorder::open(
                &cfg.train_losses_dir(round),
                (round + 1) as u16,
                self.state.step,
            )?),
            false => None,
        };
        // Each rank reads only its own share of every batch.
        let batches = data::prefetch(
            data,
            plan,
            &cfg.world,
            start,
            cfg.seq_len,
            cfg.model.vocab_size,
            cfg.prefetch,
        );
        for batch in batches {
            let batch = batch?;
            let lr = schedule.lr(self.state.round_step);
            let m = self.step(round, &batch, lr, &mut recorder)?;
            if let Some(w) = &mut self.metrics {
                w.write(&Record::Train(m.clone()))?;
            }
            cb.on_step(&m);
            let round_end = self.state.round_step == steps;
            if let Some(v) = validation
                && ((cfg.eval_every > 0 && self.state.step.is_multiple_of(cfg.eval_every))
                    || round_end)
            {
                self.validate(round, v, cb)?;
            }
            let stop_here = cfg.max_steps.is_some_and(|m| self.state.step >= m) || cb.should_stop();
            // One rank's Ctrl-C stops them all at the same step.
            let stop = cfg
                .world
                .sum_f64(&[f64::from(u8::from(stop_here))], "the stop flag")?[0]
                > 0.0;
            if cfg.checkpoints
                && (round_end || stop || self.state.step.is_multiple_of(cfg.checkpoint_every))
            {
                let path = self.save(&mut recorder)?;
                cb.on_event(&Event::Checkpoint {
                    path: path.clone(),
                    step: self.state.step,
                });
                self.last_ckpt = Some(path);
            }
            if stop {
                if round_end {
                    cb.on_event(&Event::RoundEnd {
                        round,
                        step: self.state.step,
                    });
                }
                return Ok(RoundEnd::Stopped {
                    at_round_end: round_end,
                });
            }
        }
        if self.state.round_step < steps {
            // The prefetch thread ended early: only on an error it already sent.
            return Err(Error::Data(format!(
                "round {} ended at step {} of {steps}",
                round + 1,
                self.state.round_step
            )));
        }
        cb.on_event(&Event::RoundEnd {
            round,
            step: self.state.step,
        });
        Ok(RoundEnd::Done)
    }

    /// One optimizer step on this rank's share of a batch.
    fn step(
        &mut self,
        round: usize,
        batch: &Batch,
        lr: f64,
        recorder: &mut Option<LossRecorder>,
    ) -> Result<StepMetrics> {
        let cfg = self.cfg;
        let world = &cfg.world;
        let t0 = Instant::now();
        let global = cfg.batch_size;
        let local = forward_backward(&mut self.model, &batch.windows, global, cfg)?;
        let sum: f64 = local.iter().map(|&l| f64::from(l)).sum();
        let loss = world.sum_f64(&[sum], "the loss all-reduce")?[0] / global as f64;
        if !loss.is_finite() {
            return Err(self.non_finite(round, loss, recorder));
        }
        let (grad_norm, comm_grad) = self.optim.reduce_and_clip(&self.model, cfg.grad_clip)?;
        if !grad_norm.is_finite() {
            return Err(self.non_finite(round, grad_norm, recorder));
        }
        let comm_params = self.optim.step(&mut self.model, lr)?;
        parallel::sync(&self.model);
        let dt = t0.elapsed().as_secs_f64();
        // Rank 0 records the losses of the whole batch, gathered in rank order: the plan's
        // order of its units.
        let losses = parallel::gather_shares(world, &local, global, "the unit losses' gather")?;
        if let Some(r) = recorder {
            r.record(&batch.units, &losses);
        }
        let tokens = cfg.batch_tokens();
        let state = &mut self.state;
        state.step += 1;
        state.round_step += 1;
        state.tokens += tokens;
        state.last_loss = Some(loss);
        Ok(StepMetrics {
            step: state.step,
            round,
            round_step: state.round_step,
            loss,
            lr,
            grad_norm,
            tokens: state.tokens,
            step_s: dt,
            tokens_per_s: tokens as f64 / dt,
            model_flops_per_s: cfg.model.train_flops_per_token(cfg.seq_len) * tokens as f64 / dt,
            comm_s: comm_grad + comm_params,
        })
    }

    /// The error of a non-finite loss or gradient norm, after saving the last good state (the
    /// weights are still those of the last good step).
    fn non_finite(
        &mut self,
        round: usize,
        value: f64,
        recorder: &mut Option<LossRecorder>,
    ) -> Error {
        let path = if self.cfg.checkpoints {
            match self.save(recorder) {
                Ok(p) => p,
                Err(e) => return e,
            }
        } else {
            checkpoint::latest(&self.cfg.checkpoint_dir())
                .ok()
                .flatten()
                .unwrap_or_else(|| PathBuf::from("(none: checkpoints off)"))
        };
        Error::NonFinite {
            step: self.state.step + 1,
            round: round + 1,
            loss: value,
            checkpoint: path.display().to_string(),
        }
    }

    fn validate(&mut self, round: usize, v: &Validation, cb: &mut dyn Callbacks) -> Result<()> {
        let val_loss = evaluate(&self.model, v, self.cfg)?;
        let vm = ValMetrics {
            step: self.state.step,
            round,
            val_loss,
            val_units: v.units.len(),
        };
        if let Some(w) = &mut self.metrics {
            w.write(&Record::Val(vm.clone()))?;
        }
        cb.on_event(&Event::Validation(vm));
        self.last_val = Some(val_loss);
        Ok(())
    }

    /// Write a checkpoint (rank 0; under ZeRO-1 every rank first hands in its optimizer shard).
    fn save(&mut self, recorder: &mut Option<LossRecorder>) -> Result<PathBuf> {
        let cfg = self.cfg;
        let moments = self.optim.moments()?;
        let dir = cfg.checkpoint_dir();
        let path = dir.join(checkpoint::step_dir_name(self.state.step));
        if cfg.world.is_main() {
            // Loss records first: a part never refers to steps that no checkpoint holds after a
            // crash between the two writes, because resume deletes parts past the checkpoint
            // it loads.
            if let Some(r) = recorder {
                r.flush(self.state.step)?;
            }
            checkpoint::save(
                &dir,
                &self.model,
                Some(&moments),
                &self.state,
                self.eos,
                &self.tokenizer,
            )?;
            checkpoint::prune(&dir, cfg.keep_checkpoints)?;
        }
        Ok(path)
    }
}

/// The weights a fresh run starts from: a seeded random init, or `init_from`'s.
fn initial_model(cfg: &LoopConfig) -> Result<Model> {
    let Some(p) = &cfg.init_from else {
        return Model::new(&cfg.model, cfg.device, cfg.compute, cfg.seed);
    };
    // Any Hugging Face LLaMA-family folder: a tinyforge checkpoint, or the student `tinyforge
    // inherit` wrote.
    let m = Model::load_hf(p, cfg.device, cfg.compute)?;
    if !m.config().same_architecture(&cfg.model) {
        return Err(Error::ckpt(
            p,
            format!(
                "init_from holds another model shape ({:?}) than the run's model ({:?}); set \
                 the run's model to the folder's config",
                m.config(),
                cfg.model
            ),
        ));
    }
    Ok(m)
}

/// Every rank must resume from the same checkpoint (a run folder on storage that some rank sees
/// late, or not at all, would otherwise train diverging copies).
fn agree_on_checkpoint(world: &World, latest: Option<&Path>) -> Result<()> {
    if world.size == 1 {
        return Ok(());
    }
    let step = latest
        .and_then(|p| checkpoint::step_of_dir_name(&p.file_name()?.to_string_lossy()))
        .map_or(-1.0, |s| s as f64);
    let sums = world.sum_f64(&[step, step * step], "the checkpoint check")?;
    let n = world.size as f64;
    if (sums[1] * n - sums[0] * sums[0]).abs() > 0.5 {
        return Err(Error::Dist(format!(
            "rank {} finds {} but the ranks disagree on the newest checkpoint: the run folder \
             must be on storage every rank sees alike",
            world.rank,
            latest.map_or("no checkpoint".into(), |p| p.display().to_string())
        )));
    }
    Ok(())
}

/// Forward and backward over the micro-batches of this rank's share of one step; gradients
/// accumulate in the flat gradient buffer as this share's part of the gradient of the mean loss
/// over the whole (`global`-sequence) batch. Returns the share's per-sequence losses.
fn forward_backward(
    model: &mut Model,
    windows: &Tensor,
    global: usize,
    cfg: &LoopConfig,
) -> Result<Vec<f32>> {
    let n = windows.size()[0];
    model.flat_mut().zero_grad();
    let mut unit_losses = Vec::with_capacity(n as usize);
    let mut start = 0;
    while start < n {
        let len = (cfg.micro_batch as i64).min(n - start);
        let micro = data::to_device(&windows.narrow(0, start, len), cfg.device);
        let losses = model.sequence_losses(&micro);
        (losses.sum(Kind::Float) / global as f64).backward();
        let host = losses.detach().to_device(Device::Cpu);
        unit_losses.extend(Vec::<f32>::try_from(&host)?);
        start += len;
    }
    Ok(unit_losses)
}

/// Mean loss of the validation units, in inference mode; each rank evaluates its share.
fn evaluate(model: &Model, v: &Validation, cfg: &LoopConfig) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let mut total = 0.0;
    let mine = &v.units[cfg.world.share(v.units.len())];
    for chunk in mine.chunks(cfg.micro_batch) {
        let w = data::load_batch(v.source.as_ref(), chunk, cfg.seq_len, cfg.model.vocab_size)?;
        let losses = model.sequence_losses(&data::to_device(&w, cfg.device));
        total += losses.sum(Kind::Float).double_value(&[]);
    }
    let total = cfg
        .world
        .sum_f64(&[total], "the validation loss all-reduce")?[0];
    Ok(total / v.units.len().max(1) as f64)
}

/// The run's report (rank 0 also writes `report.json` and `loss.svg`; the other ranks, which
/// hold no metrics file of their own, report what they know).
fn finish(cfg: &LoopConfig, run: &Run, complete: bool) -> Result<TrainReport> {
    let (model, state) = (&run.model, &run.state);
    let metrics_path = cfg.out.join("metrics.jsonl");
    let main = cfg.world.is_main();
    let records = if main {
        metrics::read_records(&metrics_path)?
    } else {
        vec![]
    };
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
    let loss_plot = if train.is_empty() || !main {
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
    let last_val = run.last_val.or_else(|| {
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
        device: crate::device_name(cfg.device),
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
        mean_comm_s: mean(|m| m.comm_s),
        resumed_from_step: run.resumed_from,
        world_size: cfg.world.size,
        zero_stage: match run.optim.sharding() {
            Sharding::Replicated => 0,
            Sharding::Zero1 => 1,
        },
        optimizer_bytes_per_rank: run.optim.bytes_per_rank(),
        checkpoint: run.last_ckpt.clone(),
        metrics: metrics_path,
        loss_plot,
    };
    if main {
        fs_err::write(
            cfg.out.join("report.json"),
            serde_json::to_vec_pretty(&report).expect("json"),
        )
        .map_err(Error::Io)?;
    }
    Ok(report)
}

fn yes() -> bool {
    true
}

// The loop's config holds libtorch's device and dtype; its JSON, the spellings of the flags.
mod device_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tch::Device;
    pub fn serialize<S: Serializer>(d: &Device, s: S) -> Result<S::Ok, S::Error> {
        crate::device_name(*d).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        Ok(crate::torch_device(tinyforge_model::Device::deserialize(
            d,
        )?))
    }
}

mod kind_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tch::Kind;
    pub fn serialize<S: Serializer>(k: &Kind, s: S) -> Result<S::Ok, S::Error> {
        crate::precision_name(*k).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        // A written config names bf16 or fp32, never auto (which is fp32 on the CPU).
        let precision = tinyforge_model::Precision::deserialize(d)?;
        Ok(crate::compute_kind(precision, tch::Device::Cpu))
    }
}
