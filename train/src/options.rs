//! The train config file (`configs/train-*.toml`) as written: every field optional, unknown
//! fields refused; the command sets the fields its flags give (flags over file); `resolve`
//! validates into a [`TrainConfig`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::AdamWConfig;
use crate::trainer::LoopConfig;
use tinyforge_model::{Device, ModelOptions, Precision};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// Built-in model name or a model TOML path.
    pub model: Option<String>,
    /// Token dataset folder (from `tinyforge tokenize`).
    pub data: Option<PathBuf>,
    /// Held-out dataset for validation; without it `val_units` units of `data` (a seeded sample
    /// spread over the whole dataset, at most a tenth of it, recorded as RUN/heldout.json) are
    /// held out: no round's plan draws them.
    pub val_data: Option<PathBuf>,
    /// Validation units (default 64).
    pub val_units: Option<u64>,
    pub out: Option<PathBuf>,
    pub seq_len: Option<usize>,
    pub batch_size: Option<usize>,
    pub micro_batch: Option<usize>,
    pub lr: Option<f64>,
    pub ref_batch_tokens: Option<u64>,
    pub warmup: Option<f64>,
    pub min_lr_ratio: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub eps: Option<f64>,
    pub weight_decay: Option<f64>,
    pub grad_clip: Option<f64>,
    pub seed: Option<u64>,
    pub checkpoint_every: Option<u64>,
    pub keep_checkpoints: Option<usize>,
    pub eval_every: Option<u64>,
    pub max_steps: Option<u64>,
    pub init_from: Option<PathBuf>,
    /// auto (CUDA when libtorch sees a GPU), cpu, cuda, cuda:N.
    pub device: Option<Device>,
    /// auto (bf16 on CUDA, fp32 on the CPU), bf16, fp32.
    pub precision: Option<Precision>,
    pub prefetch: Option<usize>,
    /// Optimizer state over the ranks of a multi-process run: 0 replicated (plain data
    /// parallel), 1 ZeRO-1 (sharded; the paper's setting, and the default).
    pub zero_stage: Option<u8>,
    pub rounds: Option<Vec<RoundOptions>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoundOptions {
    /// Share of the previous round's batches to keep. Round 1: the share of the dataset's
    /// units it reads, each at most once in a seeded order (1.0 = every unit once; less for a
    /// quick run over a sample of a large dataset).
    pub fraction: Option<f64>,
    /// How to select: `softmax-loss` (paper; the default after round 1), `top-loss`,
    /// `uniform`; round 1 is `all` (the default there, and its only method).
    pub select: Option<Selection>,
    /// Softmax temperature (paper: 1).
    pub temperature: Option<f64>,
}

/// One round of the resolved config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSpec {
    pub fraction: f64,
    pub select: Selection,
    pub temperature: f64,
}

/// How a round picks its batches from the previous round's losses (`select = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Round 1: every unit once, in the plan's seeded order.
    All,
    SoftmaxLoss,
    TopLoss,
    Uniform,
}

impl Selection {
    /// The methods of a round after the first, as spelled in a config.
    pub const AFTER_FIRST: &'static str = "softmax-loss, top-loss, uniform";

    pub fn name(self) -> &'static str {
        match self {
            Selection::All => "all",
            Selection::SoftmaxLoss => "softmax-loss",
            Selection::TopLoss => "top-loss",
            Selection::Uniform => "uniform",
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    pub run: LoopConfig,
    pub data: PathBuf,
    pub val_data: Option<PathBuf>,
    pub val_units: u64,
    pub rounds: Vec<RoundSpec>,
}

impl TrainOptions {
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs_err::read_to_string(path).map_err(Error::Io)?;
        toml::from_str(&text).map_err(|source| Error::Toml {
            path: path.into(),
            source,
        })
    }

    /// Validate. `dataset_vocab` is the token dataset's vocabulary size (fills a model config
    /// that leaves it out).
    pub fn resolve(&self, dataset_vocab: Option<usize>) -> Result<TrainConfig> {
        // A run that starts from a Hugging Face folder (an inherited student) and names no
        // model trains the folder's architecture.
        let model = match (&self.model, &self.init_from) {
            (None, Some(dir)) => tinyforge_model::read_hf_config(dir)?,
            (name, _) => {
                ModelOptions::load(name.as_deref().unwrap_or("tiny"))?.resolve(dataset_vocab)?
            }
        };
        let device = crate::torch_device(self.device.unwrap_or_default());
        let compute = crate::compute_kind(self.precision.unwrap_or_default(), device);
        let seq_len = self.seq_len.unwrap_or(model.max_seq_len.min(2048));
        let batch_size = self.batch_size.unwrap_or(16);
        let rounds = match &self.rounds {
            None => vec![RoundSpec {
                fraction: 1.0,
                select: Selection::All,
                temperature: 1.0,
            }],
            Some(r) if r.is_empty() => return Err(Error::Config("rounds is empty".into())),
            Some(r) => r
                .iter()
                .enumerate()
                .map(|(i, o)| resolve_round(i, o))
                .collect::<Result<_>>()?,
        };
        let run = LoopConfig {
            model,
            out: self.out.clone().unwrap_or_else(|| "out/train".into()),
            seq_len,
            batch_size,
            micro_batch: self.micro_batch.unwrap_or(batch_size),
            lr: self.lr.unwrap_or(1e-4),
            // The paper's 2M-token batch is the reference of its lr (paper.md §6.1, §7).
            ref_batch_tokens: self.ref_batch_tokens.unwrap_or(2 * 1024 * 1024),
            warmup: self.warmup.unwrap_or(0.03),
            min_lr_ratio: self.min_lr_ratio.unwrap_or(0.1),
            adamw: AdamWConfig {
                beta1: self.beta1.unwrap_or(0.9),
                beta2: self.beta2.unwrap_or(0.95),
                eps: self.eps.unwrap_or(1e-8),
                weight_decay: self.weight_decay.unwrap_or(0.1),
            },
            grad_clip: self.grad_clip.unwrap_or(1.0),
            seed: self.seed.unwrap_or(1),
            checkpoint_every: self.checkpoint_every.unwrap_or(1000),
            keep_checkpoints: self.keep_checkpoints.unwrap_or(2),
            checkpoints: true,
            eval_every: self.eval_every.unwrap_or(1000),
            max_steps: self.max_steps,
            init_from: self.init_from.clone(),
            device,
            compute,
            prefetch: self.prefetch.unwrap_or(4),
            zero_stage: self.zero_stage.unwrap_or(1),
            world: Default::default(),
        };
        if !(0.0..1.0).contains(&run.warmup) || !(0.0..=1.0).contains(&run.min_lr_ratio) {
            return Err(Error::Config(
                "warmup must be in [0, 1) and min_lr_ratio in [0, 1]".into(),
            ));
        }
        Ok(TrainConfig {
            data: self
                .data
                .clone()
                .ok_or_else(|| Error::Config("no `data` (token dataset folder)".into()))?,
            val_data: self.val_data.clone(),
            val_units: self.val_units.unwrap_or(64),
            rounds,
            run,
        })
    }
}

fn resolve_round(i: usize, o: &RoundOptions) -> Result<RoundSpec> {
    let fraction = o.fraction.unwrap_or(1.0);
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::Config(format!(
            "round {}: fraction must be in (0, 1]",
            i + 1
        )));
    }
    let select = match (i, o.select) {
        (0, None | Some(Selection::All)) => Selection::All,
        (0, Some(s)) => {
            return Err(Error::Config(format!(
                "round 1 trains every unit; `select = \"{s}\"` needs a previous round"
            )));
        }
        (_, None) => Selection::SoftmaxLoss,
        (_, Some(Selection::All)) => {
            return Err(Error::Config(format!(
                "round {}: `select = \"all\"` is round 1's (every unit once); a later round \
                 selects by one of {}",
                i + 1,
                Selection::AFTER_FIRST
            )));
        }
        (_, Some(s)) => s,
    };
    let temperature = o.temperature.unwrap_or(1.0);
    if temperature.is_nan() || temperature <= 0.0 {
        return Err(Error::Config(format!(
            "round {}: temperature must be > 0",
            i + 1
        )));
    }
    Ok(RoundSpec {
        fraction,
        select,
        temperature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_train_configs_resolve() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut seen = 0;
        for e in fs_err::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if !(name.starts_with("train-") && name.ends_with(".toml")) {
                continue;
            }
            let cfg = TrainOptions::load(&p)
                .and_then(|o| o.resolve(Some(48_000)))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if name == "train-pangu-1b-pro.toml" {
                assert_eq!(cfg.run.zero_stage, 1);
                assert!(cfg.run.batch_size.is_multiple_of(8), "splits over 8 GPUs");
            }
            seen += 1;
        }
        assert!(seen >= 3, "{seen} train configs in {}", dir.display());
    }

    #[test]
    fn rounds_parse_from_toml_and_flags_override() {
        let mut o: TrainOptions = toml::from_str(
            r#"
            model = "tiny"
            data = "shards"
            rounds = [{ fraction = 1.0 }, { fraction = 0.5, select = "softmax-loss" }]
            lr = 1e-3
            device = "cuda:1"
            "#,
        )
        .unwrap();
        assert_eq!(o.device, Some(Device::Cuda(1)));
        // What the command does with its flags: a flag given replaces the file's value.
        o.lr = Some(2e-3).or(o.lr);
        o.device = Some(Device::Cpu).or(o.device);
        o.precision = None.or(o.precision);
        let c = o.resolve(Some(500)).unwrap();
        assert_eq!(c.run.lr, 2e-3);
        assert_eq!(c.run.device, tch::Device::Cpu);
        assert_eq!(c.run.compute, tch::Kind::Float);
        assert_eq!(c.rounds.len(), 2);
        assert_eq!(c.rounds[1].select, Selection::SoftmaxLoss);
        assert_eq!(c.rounds[1].fraction, 0.5);
        assert_eq!(c.run.model.vocab_size, 500);
        assert!(toml::from_str::<TrainOptions>("bogus = 1").is_err());
        let bad = TrainOptions {
            rounds: Some(vec![RoundOptions {
                select: Some(Selection::TopLoss),
                ..Default::default()
            }]),
            ..o
        };
        assert!(bad.resolve(Some(500)).is_err());
    }

    #[test]
    fn every_select_spelling_parses_where_it_may() {
        let rounds = |select: &str| {
            toml::from_str::<TrainOptions>(&format!(
                "data = \"shards\"\nrounds = [{{ select = \"all\" }}, {{ select = \"{select}\" }}]"
            ))
        };
        for (name, selection) in [
            ("softmax-loss", Selection::SoftmaxLoss),
            ("top-loss", Selection::TopLoss),
            ("uniform", Selection::Uniform),
        ] {
            let config = rounds(name).unwrap().resolve(Some(500)).unwrap();
            assert_eq!(config.rounds[0].select, Selection::All);
            assert_eq!(config.rounds[1].select, selection);
            assert_eq!(selection.to_string(), name);
            let json = serde_json::to_string(&selection).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Selection>(&json).unwrap(), selection);
        }
        // `all` is round 1's alone.
        let error = rounds("all").unwrap().resolve(Some(500)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("softmax-loss, top-loss, uniform"),
            "{error}"
        );
        // An unknown method is refused when the file is read, naming the methods.
        let error = rounds("softmax").unwrap_err().to_string();
        assert!(error.contains("unknown variant `softmax`"), "{error}");
        assert!(
            error.contains("`all`, `softmax-loss`, `top-loss`, `uniform`"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_device_or_precision_names_the_allowed_spellings() {
        let error = toml::from_str::<TrainOptions>("device = \"gpu\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("device = \"gpu\""), "{error}");
        assert!(
            error.contains("unknown device `gpu` (expected one of: auto, cpu, cuda, cuda:N)"),
            "{error}"
        );
        let error = toml::from_str::<TrainOptions>("precision = \"fp16\"")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown precision `fp16` (expected one of: auto, bf16, fp32)"),
            "{error}"
        );
        let o: TrainOptions =
            toml::from_str("data = \"d\"\ndevice = \"cpu\"\nprecision = \"bf16\"").unwrap();
        let c = o.resolve(Some(500)).unwrap();
        assert_eq!(c.run.compute, tch::Kind::BFloat16);
    }
}
