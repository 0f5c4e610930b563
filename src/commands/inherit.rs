//! `tinyforge inherit`: a student initialised from a larger Hugging Face teacher (paper §5).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tinyforge_inherit::{Criterion, Depth, InheritConfig, MaskOptions};
use tinyforge_train::Device;

use crate::cli::GlobalArgs;
use crate::progress::{Progress, Unit};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
tinyforge inherit --teacher Qwen2.5-0.5B/ --student configs/models/tiny.toml \\\n    \
--id-map out/vocab/id_map.json --calib out/shards --criterion taylor --out out/student\n  \
tinyforge inherit --teacher out/teacher/checkpoints/step-00002000 --student student.toml \\\n    \
--calib out/shards --criterion l2 --layers 0,2,5,7 --out out/student-l2\n\n\
The student keeps the teacher's first and last layers, head dim, RoPE, norms and biases; \
--student names the rest (dim, layers, heads, kv_heads, ffn_dim), each at most the \
teacher's. The folder it writes loads in transformers as it is and starts a run with \
`tinyforge train CONFIG --init-from DIR`; inherit.json lists every kept index and score.")]
pub struct InheritArgs {
    /// Teacher: a Hugging Face folder (config.json of model_type llama, qwen2 or mistral;
    /// model.safetensors or a sharded index; fp32, bf16 or fp16), or a tinyforge checkpoint.
    #[arg(long)]
    pub teacher: PathBuf,
    /// Student shape: a built-in model config (tiny, pangu-1b, pangu-1b-pro, pangu-1.5b-pro)
    /// or a model TOML (dim, layers, heads, kv_heads, ffn_dim).
    #[arg(long)]
    pub student: String,
    /// A compact tokenizer's id_map.json (from `tinyforge vocab prune` of the teacher's
    /// tokenizer): embedding and head rows of the kept tokens. Without it the student keeps
    /// the teacher's vocabulary.
    #[arg(long)]
    pub id_map: Option<PathBuf>,
    /// Calibration data: a token-shard dataset in the student's vocabulary.
    #[arg(long)]
    pub calib: PathBuf,
    /// How units are ranked: l1, l2 (magnitude), taylor (|w * dL/dw|), activation (Minitron),
    /// mask (learned hard-concrete gates).
    #[arg(long, default_value_t = Criterion::Taylor)]
    pub criterion: Criterion,
    /// Which teacher layers: uniform, block (block importance on the calibration data), or a
    /// list such as 0,3,7,11. The first and last are always kept by uniform and block.
    #[arg(long, default_value = "block")]
    pub layers: String,
    /// Calibration windows.
    #[arg(long, default_value_t = 64)]
    pub calib_sequences: usize,
    /// Tokens per calibration window.
    #[arg(long, default_value_t = 256)]
    pub calib_len: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Taylor: MiB of gradient one backward pass may hold (whole layers at a time; a larger
    /// layer gets a pass of its own).
    #[arg(long, default_value_t = 2048)]
    pub grad_budget_mib: u64,
    /// Mask: training steps (one calibration batch each).
    #[arg(long, default_value_t = 200)]
    pub mask_steps: usize,
    /// Mask: Adam learning rate of the gates.
    #[arg(long, default_value_t = 0.1)]
    pub mask_lr: f64,
    /// auto, cpu, cuda, cuda:N.
    #[arg(long, default_value_t = Device::Auto)]
    pub device: Device,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Student folder to write; it must not exist unless --overwrite.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out (only once the new student is completely written).
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(args: InheritArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let depth: Depth = args.layers.parse()?;
    let student = tinyforge_model::ModelOptions::load(&args.student)
        .with_context(|| format!("--student {}", args.student))?;
    let config = InheritConfig {
        teacher: args.teacher,
        student,
        id_map: args.id_map,
        calib: args.calib,
        calib_sequences: args.calib_sequences,
        calib_len: args.calib_len,
        batch: args.batch,
        criterion: args.criterion,
        depth,
        grad_budget_bytes: args.grad_budget_mib << 20,
        mask: MaskOptions {
            steps: args.mask_steps,
            lr: args.mask_lr,
            ..MaskOptions::default()
        },
        device: tinyforge_train::torch_device(args.device),
        seed: args.seed,
        out: args.out,
        overwrite: args.overwrite,
    };
    // One counter, a phase at a time (load teacher, calibration forward, Taylor passes, mask
    // steps).
    let progress = Progress::new(global, "inherit", 0, Unit::Items("passes"));
    let report = tinyforge_inherit::inherit(&config, &progress)?;
    progress.finish();
    crate::output::json(&report)?;
    Ok(())
}
