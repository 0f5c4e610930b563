//! What the trainer reads: token windows of training units, and round plans saying which units
//! each optimizer step trains on. Small traits so the loop does not care whether windows come from
//! tinyforge-shards' reader or from memory (tests), nor how a plan was drawn.

use std::sync::Arc;

use crossbeam_channel::{Receiver, bounded};
use tch::{Device, Kind, Tensor};

use crate::dist::World;
use crate::error::{Error, Result};

/// Token windows of training units: unit `u` at sequence length `L` is tokens
/// `[u*L, u*L + L + 1)` of the dataset's concatenated stream.
pub trait UnitSource: Send + Sync {
    fn vocab_size(&self) -> usize;
    fn eos_id(&self) -> Option<u32>;
    fn total_tokens(&self) -> u64;
    fn window(&self, unit: u64, seq_len: usize) -> Result<Vec<u32>>;
    fn unit_count(&self, seq_len: usize) -> u64 {
        self.total_tokens().saturating_sub(1) / seq_len as u64
    }
    /// The tokenizer files the data carries (name, bytes), copied into every checkpoint.
    fn tokenizer_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(Vec::new())
    }
}

/// Which units each step of one round trains on, in order.
pub trait RoundPlan: Send + Sync {
    fn steps(&self) -> u64;
    /// The units of optimizer step `step` (0-based) of the round.
    fn batch(&self, step: u64) -> Result<Vec<u64>>;
}

/// A token stream held in memory (tests, small fixtures).
pub struct MemoryTokens {
    pub tokens: Vec<u32>,
    pub vocab_size: usize,
    pub eos_id: Option<u32>,
}

impl UnitSource for MemoryTokens {
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }
    fn total_tokens(&self) -> u64 {
        self.tokens.len() as u64
    }
    fn window(&self, unit: u64, seq_len: usize) -> Result<Vec<u32>> {
        let start = unit as usize * seq_len;
        self.tokens
            .get(start..start + seq_len + 1)
            .map(<[u32]>::to_vec)
            .ok_or_else(|| Error::Data(format!("unit {unit} is past the end of the token stream")))
    }
}

/// A plan given as explicit batches (tests, and plans a planner has materialised).
pub struct ListPlan(pub Vec<Vec<u64>>);

impl RoundPlan for ListPlan {
    fn steps(&self) -> u64 {
        self.0.len() as u64
    }
    fn batch(&self, step: u64) -> Result<Vec<u64>> {
        self.0
            .get(step as usize)
            .cloned()
            .ok_or_else(|| Error::Data(format!("plan has no step {step}")))
    }
}

/// One step's worth of input: the plan's units of the step, and the windows of this rank's
/// share of them (`units[world.share(units.len())]`) as an int64 tensor `[B / world, L + 1]`.
pub struct Batch {
    pub step: u64,
    pub units: Vec<u64>,
    pub windows: Tensor,
}

/// Read the windows of `units` into a CPU tensor `[B, L + 1]`, checking ids against the vocab.
pub fn load_batch(
    source: &dyn UnitSource,
    units: &[u64],
    seq_len: usize,
    vocab: usize,
) -> Result<Tensor> {
    let mut flat = Vec::with_capacity(units.len() * (seq_len + 1));
    for &u in units {
        let w = source.window(u, seq_len)?;
        if w.len() != seq_len + 1 {
            return Err(Error::Data(format!(
                "unit {u}: window of {} tokens, expected {}",
                w.len(),
                seq_len + 1
            )));
        }
        if let Some(bad) = w.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Data(format!(
                "unit {u}: token id {bad} >= model vocabulary {vocab}"
            )));
        }
        flat.extend(w.iter().map(|&t| t as i64));
    }
    Ok(Tensor::from_slice(&flat).view([units.len() as i64, seq_len as i64 + 1]))
}

/// Batches of steps `from..plan.steps()` read on a background thread, a few steps ahead of the
/// GPU, pinned-free CPU tensors moved to `device` by the consumer. Each rank of `world` reads
/// the windows of its own share of every batch only.
pub fn prefetch(
    source: Arc<dyn UnitSource>,
    plan: Arc<dyn RoundPlan>,
    world: &World,
    from: u64,
    seq_len: usize,
    vocab: usize,
    depth: usize,
) -> Receiver<Result<Batch>> {
    let (tx, rx) = bounded(depth.max(1));
    let world = world.clone();
    std::thread::Builder::new()
        .name("tinyforge-prefetch".into())
        .spawn(move || {
            for step in from..plan.steps() {
                let item = plan.batch(step).and_then(|units| {
                    let mine = &units[world.share(units.len())];
                    let windows = load_batch(source.as_ref(), mine, seq_len, vocab)?;
                    Ok(Batch {
                        step,
                        units,
                        windows,
                    })
                });
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    return;
                }
            }
        })
        .expect("spawn prefetch thread");
    rx
}

/// Move a CPU batch to the device (non-blocking copies would need pinned memory; the batch is
/// tiny next to a step).
pub fn to_device(windows: &Tensor, device: Device) -> Tensor {
    windows.to_kind(Kind::Int64).to_device(device)
}
