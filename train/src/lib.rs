//! PanGu-π Pro decoder over libtorch (tch 0.24 / PyTorch 2.11.0): the model, AdamW over flat
//! buffers, the training loop with rounds, exact resume and loss recording, and scoring.
//!
//! Entry points: [`train_with`] (the loop over any [`UnitSource`] and [`Planner`]),
//! [`score_plan`] (a frozen model's loss of every unit of a plan), [`checkpoint`] (save, load,
//! verify), [`Model`] (forward, per-sequence losses).
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod checkpoint;
mod data;
mod device;
pub mod dist;
mod error;
mod losses;
mod metrics;
mod model;
mod optim;
mod options;
mod parallel;
mod pipeline;
mod score;
mod synthetic;
mod tensorboard;
mod trainer;

pub use data::{Batch, ListPlan, MemoryTokens, RoundPlan, UnitSource, load_batch};
pub use device::{compute_kind, device_name, precision_name, torch_device};
pub use error::{Error, Result};
pub use losses::{LossRecorder, read_table as read_loss_table, write_table as write_loss_table};
pub use metrics::{Record, StepMetrics, ValMetrics, loss_svg, plot_loss, read_records};
pub use model::{Gates, Model, ParamSpec, Taps, layout};
pub use optim::{AdamW, AdamWConfig, Schedule, clip_grad_norm, scaled_lr};
pub use options::{RoundOptions, RoundSpec, Selection, TrainConfig, TrainOptions};
pub use parallel::Sharding;
pub use pipeline::{
    SamplerPlan, SamplerPlanner, ShardSource, score_checkpoint, train, train_from_options,
};
pub use score::{ScoreReport, score_plan};
pub use synthetic::{SequentialPlan, SinglePlan, SyntheticReport, SyntheticTokens, synthetic_run};
/// libtorch's device (what [`torch_device`] resolves a [`Device`] to).
pub use tch::Device as TorchDevice;
pub use tinyforge_model::{AttentionBias, Device, ModelConfig, ModelOptions, Precision};
pub use trainer::{
    Callbacks, Event, LoopConfig, NoCallbacks, Planner, TrainReport, Validation, train_with,
};

/// What libtorch sees: version-independent facts for logs and `tinyforge model info`.
pub fn runtime_info() -> serde_json::Value {
    serde_json::json!({
        "cuda_available": tch::Cuda::is_available(),
        "cuda_devices": tch::Cuda::device_count(),
        "cudnn_available": tch::Cuda::cudnn_is_available(),
        "threads": tch::get_num_threads(),
    })
}

#[cfg(test)]
mod smoke {
    #[test]
    fn libtorch_links_and_computes_on_cpu() {
        let a = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let s = (&a * &a).sum(tch::Kind::Float).double_value(&[]);
        assert_eq!(s, 14.0);
        eprintln!("libtorch: {}", super::runtime_info());
    }
}
