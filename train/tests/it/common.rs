use std::path::{Path, PathBuf};
use std::sync::Arc;

use tch::{Device, Kind};
use tinyforge_train::{
    AdamWConfig, Callbacks, ListPlan, LoopConfig, MemoryTokens, Model, ModelConfig, ModelOptions,
    Planner, RoundPlan, UnitSource,
};

pub const EOS: u32 = 256;

/// One intra-op thread: the tiny model gains nothing from more, and OpenMP threads that spin
/// while the test harness runs other tests (or other builds load the machine) make steps 10x
/// slower.
pub fn single_thread() {
    tch::set_num_threads(1);
}

/// Real English text (State of the Union addresses, tests/fixtures/sotu.txt), byte-level tokens.
pub fn corpus() -> Arc<MemoryTokens> {
    single_thread();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sotu.txt");
    let text = std::fs::read(path).expect("fixture");
    let mut tokens: Vec<u32> = text.iter().map(|&b| b as u32).collect();
    tokens.push(EOS);
    Arc::new(MemoryTokens {
        tokens,
        vocab_size: 257,
        eos_id: Some(EOS),
    })
}

pub fn tiny(vocab: usize) -> ModelConfig {
    single_thread();
    ModelOptions::load("tiny")
        .unwrap()
        .resolve(Some(vocab))
        .unwrap()
}

pub fn loop_config(out: &Path) -> LoopConfig {
    LoopConfig {
        model: tiny(257),
        out: out.to_path_buf(),
        seq_len: 32,
        batch_size: 8,
        micro_batch: 4,
        lr: 3e-3,
        ref_batch_tokens: 256,
        warmup: 0.03,
        min_lr_ratio: 0.1,
        adamw: AdamWConfig::default(),
        grad_clip: 1.0,
        seed: 7,
        checkpoint_every: 10,
        keep_checkpoints: 3,
        checkpoints: true,
        eval_every: 10,
        max_steps: None,
        init_from: None,
        device: Device::Cpu,
        compute: Kind::Float,
        prefetch: 2,
        zero_stage: 1,
        world: Default::default(),
    }
}

/// A seeded permutation of `0..n` cut into batches of `b` (the remainder dropped).
pub fn shuffled_batches(n: u64, b: usize, seed: u64) -> Vec<Vec<u64>> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut units: Vec<u64> = (0..n).collect();
    units.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    units.chunks_exact(b).map(<[u64]>::to_vec).collect()
}

/// Fixed plans, one per round.
pub struct Fixed(pub Vec<Vec<Vec<u64>>>);

impl Planner for Fixed {
    fn rounds(&self) -> usize {
        self.0.len()
    }
    fn plan(
        &mut self,
        round: usize,
        _m: &Model,
        _e: &mut dyn Callbacks,
    ) -> tinyforge_train::Result<Arc<dyn RoundPlan>> {
        Ok(Arc::new(ListPlan(self.0[round].clone())))
    }
}

pub fn train_units(data: &dyn UnitSource, seq_len: usize, held_out: u64) -> u64 {
    data.unit_count(seq_len) - held_out
}

pub fn final_checkpoint(out: &Path) -> PathBuf {
    tinyforge_train::checkpoint::latest(&out.join("checkpoints"))
        .unwrap()
        .expect("a checkpoint")
}

/// The project venv's Python with torch, transformers and safetensors (or a skip that fails
/// under `TINYFORGE_REQUIRE_REFERENCES`).
pub fn venv_python() -> Option<PathBuf> {
    tinyforge_testkit::venv_python("torch, transformers, safetensors")
}
