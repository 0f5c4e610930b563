//! Random tokens at a given shape, for `tinyforge train --synthetic` (throughput benchmarks:
//! the same loop, optimizer and metrics as real training, without a dataset).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{RoundPlan, UnitSource};
use crate::error::Result;

/// Unit `u` is `seq_len + 1` uniform token ids drawn from a ChaCha stream keyed by (seed, u), so
/// any unit is reproducible on its own.
pub struct SyntheticTokens {
    pub vocab_size: usize,
    pub seed: u64,
    pub units: u64,
    pub seq_len: usize,
}

impl UnitSource for SyntheticTokens {
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    fn eos_id(&self) -> Option<u32> {
        None
    }
    fn total_tokens(&self) -> u64 {
        self.units * self.seq_len as u64 + 1
    }
    fn window(&self, unit: u64, seq_len: usize) -> Result<Vec<u32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(unit);
        Ok((0..=seq_len)
            .map(|_| rng.random_range(0..self.vocab_size as u32))
            .collect())
    }
}

/// Step `s` trains units `s*B .. s*B + B`.
pub struct SequentialPlan {
    pub steps: u64,
    pub batch_size: usize,
}

impl RoundPlan for SequentialPlan {
    fn steps(&self) -> u64 {
        self.steps
    }
    fn batch(&self, step: u64) -> Result<Vec<u64>> {
        let b = self.batch_size as u64;
        Ok((step * b..step * b + b).collect())
    }
}

/// One fixed plan for every round (synthetic benchmarks, single-round runs over a given plan).
pub struct SinglePlan(pub std::sync::Arc<dyn RoundPlan>);

impl crate::trainer::Planner for SinglePlan {
    fn rounds(&self) -> usize {
        1
    }
    fn plan(
        &mut self,
        _round: usize,
        _model: &crate::model::Model,
        _events: &mut dyn crate::trainer::Callbacks,
    ) -> Result<std::sync::Arc<dyn RoundPlan>> {
        Ok(self.0.clone())
    }
}

/// Throughput of a synthetic run, over the steps after `warmup` (allocator and kernel caches
/// warm up in the first steps, as in the PyTorch peer).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SyntheticReport {
    pub model: String,
    pub params: u64,
    pub device: tinyforge_model::Device,
    pub precision: tinyforge_model::Precision,
    pub seq_len: usize,
    pub batch_size: usize,
    pub micro_batch: usize,
    pub steps: u64,
    pub median_step_s: f64,
    pub tokens_per_s: f64,
    pub model_flops_per_s: f64,
    pub last_loss: f64,
    pub world_size: usize,
    pub zero_stage: u8,
    /// Median seconds per step in gradient and parameter collectives.
    pub median_comm_s: f64,
    pub optimizer_bytes_per_rank: u64,
}

/// Train `steps` steps on random tokens at `cfg`'s shape (no checkpoints) and time them.
pub fn synthetic_run(
    cfg: &crate::trainer::LoopConfig,
    steps: u64,
    warmup: u64,
    cb: &mut dyn crate::trainer::Callbacks,
) -> Result<SyntheticReport> {
    let mut cfg = cfg.clone();
    cfg.checkpoints = false;
    cfg.eval_every = 0;
    let data = std::sync::Arc::new(SyntheticTokens {
        vocab_size: cfg.model.vocab_size,
        seed: cfg.seed,
        units: steps * cfg.batch_size as u64,
        seq_len: cfg.seq_len,
    });
    let plan = std::sync::Arc::new(SequentialPlan {
        steps,
        batch_size: cfg.batch_size,
    });
    // A fresh folder each time: a synthetic run never resumes.
    let _ = fs_err::remove_dir_all(&cfg.out);
    let report = crate::trainer::train_with(&cfg, data, &mut SinglePlan(plan), None, cb)?;
    // Rank 0 holds the metrics; the other ranks report the run's shape only.
    let records = match cfg.world.is_main() {
        true => crate::metrics::read_records(&report.metrics)?,
        false => vec![],
    };
    let steady = |f: fn(&crate::metrics::StepMetrics) -> f64| -> Vec<f64> {
        let mut v: Vec<f64> = records
            .iter()
            .filter_map(|r| match r {
                crate::metrics::Record::Train(m) if m.step > warmup => Some(f(m)),
                _ => None,
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let times = steady(|m| m.step_s);
    let comm = steady(|m| m.comm_s);
    if times.is_empty() && cfg.world.is_main() {
        return Err(crate::error::Error::Config(format!(
            "{steps} steps leave none after {warmup} warm-up steps"
        )));
    }
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let tokens = cfg.batch_tokens() as f64;
    Ok(SyntheticReport {
        model: cfg.model.name.clone(),
        params: cfg.model.param_count(),
        device: crate::device_name(cfg.device),
        precision: crate::precision_name(cfg.compute),
        seq_len: cfg.seq_len,
        batch_size: cfg.batch_size,
        micro_batch: cfg.micro_batch,
        steps,
        median_step_s: median,
        tokens_per_s: tokens / median,
        model_flops_per_s: cfg.model.train_flops_per_token(cfg.seq_len) * tokens / median,
        last_loss: report.last_loss.unwrap_or(f64::NAN),
        world_size: report.world_size,
        zero_stage: report.zero_stage,
        median_comm_s: comm.get(comm.len() / 2).copied().unwrap_or(f64::NAN),
        optimizer_bytes_per_rank: report.optimizer_bytes_per_rank,
    })
}
