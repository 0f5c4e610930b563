//! Parameter inheritance (paper §5; INHERIT.md): a student of a given shape initialised from a
//! larger Hugging Face LLaMA-family teacher (llama, qwen2, mistral: GQA, tied embeddings, q/k/v
//! biases). In order:
//!
//! 1. the vocabulary: with a compact tokenizer's id map, the embedding and head rows of the kept
//!    tokens (the map must come from the teacher's tokenizer);
//! 2. depth: the first and last layers always, the rest `uniform`, listed, or by block
//!    importance on calibration data;
//! 3. width, on the teacher cut to that depth: one set of hidden channels for the whole residual
//!    stream, whole query heads within their key/value groups, FFN neurons, ranked by `l1`,
//!    `l2`, `taylor`, `activation` or a learned `mask`; exactly the requested counts;
//! 4. the student folder: what `transformers` and `tinyforge train --init-from` load, with the
//!    report of every index kept and every score.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod calib;
mod error;
mod extract;
mod mask;
mod output;
mod scores;
mod select;
mod student;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};
use tinyforge_model::{ModelConfig, ModelOptions};
use tinyforge_train::Model;
use tinyforge_vocab::IdMap;

pub use calib::Calibration;
pub use error::{Error, Result};
pub use extract::extract;
pub use mask::{MaskOptions, MaskReport};
pub use scores::{OnProgress, UnitScores, grad_windows, lm_loss};
pub use select::{Depth, Width, select_layers, select_width, top_k};
pub use student::resolve_student;

/// How the units of each layer are ranked (`--criterion`; serde and the flag share the
/// spellings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    L1,
    L2,
    Taylor,
    Activation,
    Mask,
}

impl Criterion {
    /// Every criterion, in the order help texts list them.
    pub const ALL: [Criterion; 5] = [
        Criterion::L1,
        Criterion::L2,
        Criterion::Taylor,
        Criterion::Activation,
        Criterion::Mask,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Criterion::L1 => "l1",
            Criterion::L2 => "l2",
            Criterion::Taylor => "taylor",
            Criterion::Activation => "activation",
            Criterion::Mask => "mask",
        }
    }
}

impl std::fmt::Display for Criterion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Criterion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Criterion::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown criterion `{s}` (expected one of: l1, l2, taylor, activation, mask)"
                ))
            })
    }
}

/// Everything one inheritance needs.
pub struct InheritConfig {
    /// Hugging Face folder of the teacher.
    pub teacher: PathBuf,
    /// The student's shape (dim, layers, heads, kv_heads, ffn_dim; the rest from the teacher).
    pub student: ModelOptions,
    /// `id_map.json` of a compact tokenizer pruned from the teacher's.
    pub id_map: Option<PathBuf>,
    /// Token-shard dataset in the student's vocabulary.
    pub calib: PathBuf,
    pub calib_sequences: usize,
    pub calib_len: usize,
    /// Calibration windows per forward pass.
    pub batch: usize,
    pub criterion: Criterion,
    pub depth: Depth,
    /// Bytes of gradient (plus its leaf copy) one Taylor pass may hold.
    pub grad_budget_bytes: u64,
    pub mask: MaskOptions,
    pub device: Device,
    pub seed: u64,
    /// The student folder to write.
    pub out: PathBuf,
    /// Replace an existing `out` (once the new student is completely written); otherwise an
    /// existing `out` is an error.
    pub overwrite: bool,
}

/// What `tinyforge inherit` prints and writes as `inherit.json`.
#[derive(Debug, Clone, Serialize)]
pub struct InheritReport {
    pub teacher: PathBuf,
    pub out: PathBuf,
    pub criterion: Criterion,
    pub depth: String,
    pub teacher_params: u64,
    pub student_params: u64,
    pub student: ModelConfig,
    pub calibration: CalibrationReport,
    /// Block importance of every teacher layer (1 − mean cos(x_in, x_out)).
    pub layer_scores: Vec<f64>,
    pub kept_layers: Vec<usize>,
    pub kept: Width,
    /// Vocabulary rows kept (the id map's `new_to_old`), when there is a map.
    pub vocab_rows: Option<usize>,
    pub mask: Option<MaskReport>,
    /// Taylor: how many gradient windows (each a backward pass over the calibration data).
    pub gradient_windows: Option<usize>,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mib: Option<f64>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrationReport {
    pub dataset: PathBuf,
    pub sequences: usize,
    pub seq_len: usize,
    /// The teacher's mean LM loss on the calibration windows (its own ids and vocabulary).
    pub teacher_loss: f64,
    /// The teacher's loss with its logits restricted to the student's vocabulary (with a map).
    pub teacher_loss_student_vocab: Option<f64>,
    /// The student's loss at its initialisation, on the same windows in its ids.
    pub student_loss: f64,
}

/// Peak resident set size of this process in MiB (Linux), for the report.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// What the checks before any tensor is read establish.
struct Plan {
    teacher: ModelConfig,
    student: ModelConfig,
    id_map: Option<IdMap>,
    /// sha256 of the teacher's `tokenizer.json`, when it has one.
    teacher_tokenizer_sha256: Option<String>,
}

/// The checks that need no tensors: the output name is free, the teacher's config is one this
/// decoder runs, the id map belongs to the teacher's tokenizer, the student fits inside the
/// teacher. Nothing is written before they pass.
fn plan(cfg: &InheritConfig) -> Result<Plan> {
    if cfg.out.exists() && !cfg.overwrite {
        return Err(Error::Output {
            path: cfg.out.clone(),
            reason: "exists; remove it, choose another --out, or pass --overwrite".into(),
        });
    }
    let teacher = tinyforge_model::read_hf_config(&cfg.teacher)?;
    let tokenizer = cfg.teacher.join("tokenizer.json");
    let teacher_sha = if tokenizer.exists() {
        Some(tinyforge_train::checkpoint::sha256_file(&tokenizer)?)
    } else {
        None
    };
    let id_map = match &cfg.id_map {
        None => None,
        Some(path) => {
            let map = IdMap::read(path)?;
            match &teacher_sha {
                None => {
                    return Err(Error::mismatch(
                        &tokenizer,
                        "missing: an id map can only be checked against the teacher's \
                         tokenizer.json",
                    ));
                }
                Some(sha) if *sha != map.base_tokenizer_sha256 => {
                    return Err(Error::mismatch(
                        path,
                        format!(
                            "was pruned from the tokenizer with sha256 {}, but the teacher's \
                             tokenizer.json has sha256 {sha}: prune the teacher's own tokenizer",
                            map.base_tokenizer_sha256
                        ),
                    ));
                }
                Some(_) => {}
            }
            if let Some(&bad) = map
                .new_to_old
                .iter()
                .find(|&&o| o as usize >= teacher.vocab_size)
            {
                return Err(Error::mismatch(
                    path,
                    format!(
                        "maps to base id {bad}, outside the teacher's vocabulary of {}",
                        teacher.vocab_size
                    ),
                ));
            }
            Some(map)
        }
    };
    let vocab = id_map
        .as_ref()
        .map_or(teacher.vocab_size, |m| m.new_to_old.len());
    let student = resolve_student(&teacher, &cfg.student, vocab)?;
    if let Depth::List(_) = cfg.depth {
        select_layers(&cfg.depth, &vec![0.0; teacher.layers], student.layers)?;
    }
    if cfg.calib_len == 0 || cfg.calib_sequences == 0 || cfg.batch == 0 {
        return Err(Error::Config(
            "calibration sequences, length and batch must be > 0".into(),
        ));
    }
    Ok(Plan {
        teacher,
        student,
        id_map,
        teacher_tokenizer_sha256: teacher_sha,
    })
}

/// Run the whole inheritance and write the student folder `cfg.out` (atomically: a temporary
/// folder renamed into place, so a failure leaves nothing under that name).
pub fn inherit(cfg: &InheritConfig, progress: OnProgress) -> Result<InheritReport> {
    let started = Instant::now();
    let Plan {
        teacher: teacher_cfg,
        student: student_cfg,
        id_map,
        teacher_tokenizer_sha256: teacher_sha,
    } = plan(cfg)?;
    tch::manual_seed(cfg.seed as i64);
    let calib = calib::load(
        &cfg.calib,
        id_map.as_ref(),
        teacher_sha.as_deref(),
        teacher_cfg.vocab_size,
        cfg.calib_sequences,
        cfg.calib_len,
    )?;
    let vocab_rows = id_map.as_ref().map(|m| {
        let rows: Vec<i64> = m.new_to_old.iter().map(|&o| i64::from(o)).collect();
        Tensor::from_slice(&rows)
    });
    progress.start("load teacher", 1);
    let mut teacher = Model::load_hf(&cfg.teacher, cfg.device, Kind::Float)?;
    // Scoring never trains the teacher: no gradient buffer for its weights.
    *teacher.flat_mut() = teacher.flat().detach();
    progress.advance(1);
    let observed = scores::observe(&teacher, &calib, cfg.batch, progress)?;
    let teacher_loss_student_vocab = match &vocab_rows {
        Some(rows) => Some(scores::calibration_loss(
            &teacher,
            &calib,
            cfg.batch,
            true,
            Some(rows),
        )?),
        None => None,
    };
    let layers = select_layers(&cfg.depth, &observed.block_importance, student_cfg.layers)?;
    // The teacher cut to the student's depth, full width: the model width criteria score.
    let depth_cfg = ModelConfig {
        layers: student_cfg.layers,
        ..teacher_cfg.clone()
    };
    let (cut, activation) = if layers.len() == teacher_cfg.layers {
        (teacher, Some(observed.activation))
    } else {
        let cut = extract(&teacher, &depth_cfg, &layers, &Width::all(&depth_cfg), None)?;
        drop(teacher);
        (cut, None)
    };
    let Scored {
        scores: unit_scores,
        gradient_windows,
        mask: mask_report,
    } = score_units(
        cfg,
        &cut,
        &student_cfg,
        &calib,
        vocab_rows.as_ref(),
        activation,
        progress,
    )?;
    let width = select_width(&unit_scores, &depth_cfg, &student_cfg);
    let identity: Vec<usize> = (0..student_cfg.layers).collect();
    let student = extract(&cut, &student_cfg, &identity, &width, vocab_rows.as_ref())?;
    let student_loss = scores::calibration_loss(&student, &calib, cfg.batch, false, None)?;
    let report = InheritReport {
        teacher: cfg.teacher.clone(),
        out: cfg.out.clone(),
        criterion: cfg.criterion,
        depth: match &cfg.depth {
            Depth::Uniform => "uniform".into(),
            Depth::Block => "block".into(),
            Depth::List(l) => format!("{l:?}"),
        },
        teacher_params: teacher_cfg.param_count(),
        student_params: student_cfg.param_count(),
        student: student_cfg.clone(),
        calibration: CalibrationReport {
            dataset: cfg.calib.clone(),
            sequences: calib.sequences(),
            seq_len: calib.seq_len,
            teacher_loss: observed.loss,
            teacher_loss_student_vocab,
            student_loss,
        },
        layer_scores: observed.block_importance,
        kept_layers: layers,
        kept: width,
        vocab_rows: id_map.as_ref().map(|m| m.new_to_old.len()),
        mask: mask_report,
        gradient_windows,
        peak_rss_mib: peak_rss_mib(),
        seconds: started.elapsed().as_secs_f64(),
    };
    output::write(cfg, &student, &unit_scores, &report, calib.eos_id)?;
    Ok(report)
}

/// The width criterion's scores on `cut` (the teacher at the student's depth).
struct Scored {
    scores: UnitScores,
    gradient_windows: Option<usize>,
    mask: Option<MaskReport>,
}

fn score_units(
    cfg: &InheritConfig,
    cut: &Model,
    student: &ModelConfig,
    calib: &Calibration,
    vocab_rows: Option<&Tensor>,
    activation: Option<UnitScores>,
    progress: OnProgress,
) -> Result<Scored> {
    let mut scored = Scored {
        scores: UnitScores::zeros(cut),
        gradient_windows: None,
        mask: None,
    };
    scored.scores = match cfg.criterion {
        Criterion::L1 => scores::magnitude(cut, 1, vocab_rows),
        Criterion::L2 => scores::magnitude(cut, 2, vocab_rows),
        Criterion::Taylor => {
            scored.gradient_windows = Some(grad_windows(cut, cfg.grad_budget_bytes).len());
            scores::taylor(
                cut,
                calib,
                cfg.batch,
                cfg.grad_budget_bytes,
                vocab_rows,
                progress,
            )?
        }
        // The full-depth teacher's activations were measured with the block importance.
        Criterion::Activation => match activation {
            Some(a) => a,
            None => scores::observe(cut, calib, cfg.batch, progress)?.activation,
        },
        Criterion::Mask => {
            let (s, report) = mask::learn(cut, student, calib, cfg.batch, cfg.mask, progress)?;
            scored.mask = Some(report);
            s
        }
    };
    Ok(scored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_criterion_spelling_round_trips_through_flag_and_serde() {
        for criterion in Criterion::ALL {
            let name = criterion.to_string();
            assert_eq!(name.parse::<Criterion>().unwrap(), criterion);
            let json = serde_json::to_string(&criterion).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Criterion>(&json).unwrap(), criterion);
        }
        let error = "l3".parse::<Criterion>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown criterion `l3` (expected one of: l1, l2, taylor, activation, mask)"
        );
        let error = serde_json::from_str::<Criterion>("\"Taylor\"")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`l1`, `l2`, `taylor`, `activation`, `mask`"),
            "{error}"
        );
    }
}
