//! A training run from files: the token dataset through tinyforge-shards' reader, the rounds'
//! plans from tinyforge-sampler (round 1 a keyed permutation; later rounds drawn from the loss
//! table that the frozen model of the previous round writes), validation on held-out units.
//!
//! Run folder layout (beside what [`train_with`] writes):
//!
//! ```text
//! heldout.json                   the validation units (a seeded sample over the whole dataset),
//!                                which round 1's plan excludes (tinyforge-sampler's HeldOut)
//! plans/round-N.json (+ .units)   the sampler's plan of round N (1-based, as the sampler counts)
//! losses/score-round-N.parquet   losses of round N's units under the model at the end of round N
//! losses/train-round-N/          training losses of round N, one part per checkpoint interval
//! ```
//!
//! Every file appears atomically and is reused when present, so a resumed run asks the same
//! plans and never rescores.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tinyforge_sampler::{
    Exhausted, HELD_OUT_FILE, HeldOut, Level, ListOrder, Method, Plan, Pool, RoundOneSpec,
    SelectConfig, select_next_round,
};
use tinyforge_shards::Dataset;

use crate::data::{RoundPlan, UnitSource};
use crate::dist::World;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::options::{Selection, TrainConfig, TrainOptions};
use crate::score::{ScoreReport, score_plan};
use crate::trainer::{Callbacks, Planner, TrainReport, Validation, train_with};

/// A token dataset read through tinyforge-shards (its frame cache makes the prefetch thread's
/// window reads cheap).
pub struct ShardSource {
    pub dataset: Arc<Dataset>,
}

impl ShardSource {
    pub fn open(dir: &Path) -> Result<Self> {
        let dataset = Dataset::open(dir).map_err(|source| Error::Dataset {
            dir: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dataset: Arc::new(dataset),
        })
    }
}

impl UnitSource for ShardSource {
    fn vocab_size(&self) -> usize {
        self.dataset.vocab_size() as usize
    }
    fn eos_id(&self) -> Option<u32> {
        Some(self.dataset.eos_id())
    }
    fn total_tokens(&self) -> u64 {
        self.dataset.total_tokens()
    }
    fn window(&self, unit: u64, seq_len: usize) -> Result<Vec<u32>> {
        self.dataset
            .window(unit, seq_len)
            .map_err(|source| Error::Unit { unit, source })
    }
    fn tokenizer_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut files = Vec::new();
        for name in tinyforge_model::TOKENIZER_FILES {
            let bytes = self
                .dataset
                .read_side_file(name)
                .map_err(|source| Error::Dataset {
                    dir: self.dataset.dir().to_owned(),
                    source,
                })?;
            if let Some(bytes) = bytes {
                files.push((name.to_owned(), bytes));
            }
        }
        Ok(files)
    }
}

/// A sampler plan of one pool (the dataset) seen as unit ids.
pub struct SamplerPlan(pub Plan);

impl RoundPlan for SamplerPlan {
    fn steps(&self) -> u64 {
        self.0.num_steps()
    }
    fn batch(&self, step: u64) -> Result<Vec<u64>> {
        let units = self.0.batch(step)?;
        Ok(units.into_iter().map(|u| u.unit).collect())
    }
}

/// The rounds of a [`TrainConfig`] as sampler plans.
pub struct SamplerPlanner {
    cfg: TrainConfig,
    data: Arc<dyn UnitSource>,
    /// Units of the dataset, and the held-out ones among them that no plan draws.
    units: u64,
    held_out: Vec<u64>,
    pub scores: Vec<ScoreReport>,
}

impl SamplerPlanner {
    pub fn new(
        cfg: TrainConfig,
        data: Arc<dyn UnitSource>,
        units: u64,
        held_out: Vec<u64>,
    ) -> Self {
        Self {
            cfg,
            data,
            units,
            held_out,
            scores: vec![],
        }
    }

    pub fn plan_path(&self, round: usize) -> PathBuf {
        self.cfg
            .run
            .out
            .join("plans")
            .join(format!("round-{}.json", round + 1))
    }

    pub fn score_path(&self, round: usize) -> PathBuf {
        self.cfg
            .run
            .out
            .join("losses")
            .join(format!("score-round-{}.parquet", round + 1))
    }
}

impl Planner for SamplerPlanner {
    fn rounds(&self) -> usize {
        self.cfg.rounds.len()
    }

    fn plan(
        &mut self,
        round: usize,
        model: &Model,
        events: &mut dyn Callbacks,
    ) -> Result<Arc<dyn RoundPlan>> {
        // Rank 0 draws the plan (and scores the previous round with every rank); every rank
        // then opens the same file.
        let world = self.cfg.run.world.clone();
        let path = self.plan_path(round);
        let exists = world.agree(path.exists(), "the plan check")?;
        if !exists {
            self.draw(round, model, events.reporter())?;
        }
        world.barrier("the round's plan")?;
        Ok(Arc::new(SamplerPlan(Plan::open(&path)?)))
    }
}

impl SamplerPlanner {
    /// Write the plan of `round` (rank 0), scoring the previous round first on every rank.
    fn draw(
        &mut self,
        round: usize,
        model: &Model,
        reporter: &dyn tinyforge_task::Reporter,
    ) -> Result<()> {
        let world = self.cfg.run.world.clone();
        let path = self.plan_path(round);
        fs_err::create_dir_all(path.parent().expect("plans dir")).map_err(Error::Io)?;
        let run = &self.cfg.run;
        if round == 0 {
            if !world.is_main() {
                return Ok(());
            }
            let spec = RoundOneSpec {
                seed: run.seed,
                round: 1,
                seq_len: run.seq_len as u32,
                batch_units: run.batch_size as u32,
                pools: vec![Pool {
                    name: "data".into(),
                    dataset: Some(self.cfg.data.display().to_string()),
                    units: self.units,
                    weight: 1.0,
                    held_out: self.held_out.clone(),
                }],
                exhausted: Exhausted::Stop,
                // A fraction < 1 reads a seeded sample: the permutation's first steps.
                steps: (self.cfg.rounds[0].fraction < 1.0).then(|| {
                    let drawable = self.units - self.held_out.len() as u64;
                    let batches = drawable / run.batch_size as u64;
                    ((batches as f64 * self.cfg.rounds[0].fraction).floor() as u64).max(1)
                }),
            };
            Plan::create_round_one(&path, &spec)?;
            return Ok(());
        }
        // Score the previous round's units with the model as it ends that round, then draw.
        let previous = Plan::open(self.plan_path(round - 1))?;
        let table = self.score_path(round - 1);
        if !world.agree(table.exists(), "the score table check")? {
            let total = previous.num_steps();
            let prev: Arc<dyn RoundPlan> =
                Arc::new(SamplerPlan(Plan::open(self.plan_path(round - 1))?));
            let report = score_plan(
                &world,
                model,
                self.data.clone(),
                prev,
                run.seq_len,
                run.micro_batch,
                None,
                round as u16,
                &table,
                reporter,
            )?;
            debug_assert_eq!(report.batches, total);
            self.scores.push(report);
        }
        if !world.is_main() {
            return Ok(());
        }
        let spec = &self.cfg.rounds[round];
        let method = match spec.select {
            Selection::SoftmaxLoss | Selection::All => Method::Softmax,
            Selection::TopLoss => Method::TopLoss,
            Selection::Uniform => Method::Uniform,
        };
        let select = SelectConfig {
            method,
            level: Level::Batch,
            fraction: spec.fraction,
            temperature: spec.temperature,
            seed: run.seed,
            order: ListOrder::Kept,
        };
        select_next_round(&previous, &[table], &path, &select, &tinyforge_task::Silent)?;
        Ok(())
    }
}

/// The run's held-out units: `heldout.json` in the run folder when it exists (a resumed run
/// must validate on, and keep excluding, the same units), else a stratified sample of `count`
/// units drawn with the run's seed and written there by rank 0.
fn held_out(cfg: &TrainConfig, units: u64, count: u64) -> Result<HeldOut> {
    let path = cfg.run.out.join(HELD_OUT_FILE);
    let drawn = HeldOut::draw(
        &cfg.data.display().to_string(),
        cfg.run.seq_len as u32,
        units,
        count,
        cfg.run.seed,
    );
    if path.exists() {
        let recorded = HeldOut::read(&path)?;
        if (recorded.units, recorded.seq_len) != (drawn.units, drawn.seq_len) {
            return Err(Error::Config(format!(
                "{} was drawn over {} units of {} tokens, but {} now holds {} units of {}: \
                 resume with the data and seq_len the run started with",
                path.display(),
                recorded.units,
                recorded.seq_len,
                cfg.data.display(),
                drawn.units,
                drawn.seq_len
            )));
        }
        return Ok(recorded);
    }
    if cfg.run.world.is_main() {
        fs_err::create_dir_all(&cfg.run.out).map_err(Error::Io)?;
        drawn.write(&path)?;
    }
    Ok(drawn)
}

/// Open the data, hold out validation units, and train every round of `cfg`.
pub fn train(cfg: &TrainConfig, cb: &mut dyn Callbacks) -> Result<TrainReport> {
    let data: Arc<dyn UnitSource> = Arc::new(ShardSource::open(&cfg.data)?);
    let units = data.unit_count(cfg.run.seq_len);
    // Validation on a dataset of its own, else on a sample of this one (at most a tenth of it)
    // that no round's plan draws.
    let (validation, held_out) = match &cfg.val_data {
        Some(dir) => {
            let v: Arc<dyn UnitSource> = Arc::new(ShardSource::open(dir)?);
            let n = v.unit_count(cfg.run.seq_len);
            let k = cfg.val_units.min(n).max(1);
            // Evenly spread over the held-out set.
            let picks = (0..k).map(|i| i * n / k).collect();
            let v = Validation {
                source: v,
                units: picks,
            };
            (Some(v), vec![])
        }
        None => match cfg.val_units.min(units / 10) {
            0 => (None, vec![]),
            k => {
                let held = held_out(cfg, units, k)?.held_out;
                let v = Validation {
                    source: data.clone(),
                    units: held.clone(),
                };
                (Some(v), held)
            }
        },
    };
    let drawable = units - held_out.len() as u64;
    if drawable < cfg.run.batch_size as u64 {
        return Err(Error::Config(format!(
            "{} holds {drawable} training units of {} tokens, fewer than one batch of {}",
            cfg.data.display(),
            cfg.run.seq_len,
            cfg.run.batch_size
        )));
    }
    fs_err::create_dir_all(&cfg.run.out).map_err(Error::Io)?;
    if cfg.run.world.is_main() {
        let cfg_path = cfg.run.out.join("train-config.json");
        fs_err::write(&cfg_path, serde_json::to_vec_pretty(cfg).expect("json"))
            .map_err(Error::Io)?;
    }
    let mut planner = SamplerPlanner::new(cfg.clone(), data.clone(), units, held_out);
    train_with(&cfg.run, data, &mut planner, validation.as_ref(), cb)
}

/// Resolve options against the dataset's vocabulary, then [`train`] on `world`.
pub fn train_from_options(
    opts: &TrainOptions,
    world: &World,
    cb: &mut dyn Callbacks,
) -> Result<TrainReport> {
    let data = opts
        .data
        .as_ref()
        .ok_or_else(|| Error::Config("no `data` (token dataset folder)".into()))?;
    let vocab = ShardSource::open(data)?.vocab_size();
    let mut cfg = opts.resolve(Some(vocab))?;
    cfg.run.world = world.clone();
    train(&cfg, cb)
}

/// `tinyforge score`: the loss of every unit of `plan` (or its first `limit` batches) under the
/// frozen model of `checkpoint`, into the loss table `out`.
#[expect(
    clippy::too_many_arguments,
    reason = "the command's inputs, passed through to score_plan"
)]
pub fn score_checkpoint(
    world: &World,
    checkpoint: &Path,
    data: &Path,
    plan: &Path,
    out: &Path,
    device: tch::Device,
    micro_batch: usize,
    limit_batches: Option<u64>,
    reporter: &dyn tinyforge_task::Reporter,
) -> Result<ScoreReport> {
    let compute = crate::compute_kind(tinyforge_model::Precision::Auto, device);
    let (model, _) = crate::checkpoint::load_model(checkpoint, device, compute)?;
    let source: Arc<dyn UnitSource> = Arc::new(ShardSource::open(data)?);
    let plan = Plan::open(plan)?;
    let seq_len = plan.seq_len() as usize;
    let round = plan.round();
    score_plan(
        world,
        &model,
        source,
        Arc::new(SamplerPlan(plan)),
        seq_len,
        micro_batch,
        limit_batches,
        round,
        out,
        reporter,
    )
}
