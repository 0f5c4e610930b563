//! Metrics as JSON lines (`metrics.jsonl`: one object per step, plus validation records) and the
//! loss-curve picture drawn from them at the end of a run.

use std::io::Write;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tensorboard::EventWriter;

/// One optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u64,
    pub round: usize,
    pub round_step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: u64,
    pub step_s: f64,
    pub tokens_per_s: f64,
    pub model_flops_per_s: f64,
    /// Seconds of the step spent in gradient and parameter collectives (0 on one process).
    #[serde(default)]
    pub comm_s: f64,
}

/// A held-out validation pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValMetrics {
    pub step: u64,
    pub round: usize,
    pub val_loss: f64,
    pub val_units: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Train(StepMetrics),
    Val(ValMetrics),
}

impl Record {
    fn step(&self) -> u64 {
        match self {
            Record::Train(m) => m.step,
            Record::Val(m) => m.step,
        }
    }
}

/// Writes every record to `metrics.jsonl` and, as scalars, to a TensorBoard event file.
pub struct MetricsWriter {
    file: fs_err::File,
    events: EventWriter,
}

impl MetricsWriter {
    /// Open for appending after global step `done_steps`: records of later steps (written by a
    /// run that was killed before its next checkpoint) are dropped, so the file describes the
    /// steps that the checkpoints hold exactly once. A new event file in `tensorboard` starts
    /// at the same step.
    pub fn open(path: &Path, tensorboard: &Path, done_steps: u64) -> Result<Self> {
        let kept: Vec<String> = if path.exists() {
            fs_err::read_to_string(path)
                .map_err(Error::Io)?
                .lines()
                .filter(|l| serde_json::from_str::<Record>(l).is_ok_and(|r| r.step() <= done_steps))
                .map(str::to_owned)
                .collect()
        } else {
            vec![]
        };
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        fs_err::write(path, text).map_err(Error::Io)?;
        let file = fs_err::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(Error::Io)?;
        let events = EventWriter::create(tensorboard, done_steps)?;
        Ok(Self { file, events })
    }

    pub fn write(&mut self, r: &Record) -> Result<()> {
        let mut line = serde_json::to_string(r).expect("metrics serialise");
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(Error::Io)?;
        match r {
            Record::Train(m) => self.events.scalars(
                m.step,
                &[
                    ("train/loss", m.loss),
                    ("train/lr", m.lr),
                    ("train/grad_norm", m.grad_norm),
                    ("train/tokens_per_s", m.tokens_per_s),
                    ("train/model_flops_per_s", m.model_flops_per_s),
                    ("train/round", (m.round + 1) as f64),
                ],
            ),
            Record::Val(v) => self.events.scalars(
                v.step,
                &[
                    ("val/loss", v.val_loss),
                    (&format!("val/loss_round_{}", v.round + 1), v.val_loss),
                ],
            ),
        }
    }
}

pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let text = fs_err::read_to_string(path).map_err(Error::Io)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

/// Draw training loss (and validation loss) against step into an SVG file.
pub fn plot_loss(records: &[Record], out: &Path) -> Result<()> {
    fs_err::write(out, loss_svg(records)?).map_err(Error::Io)?;
    Ok(())
}

/// Training loss (and validation loss) against step, as an SVG document.
pub fn loss_svg(records: &[Record]) -> Result<String> {
    let train: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Train(m) if m.loss.is_finite() => Some((m.step as f64, m.loss)),
            _ => None,
        })
        .collect();
    let val: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Val(m) if m.val_loss.is_finite() => Some((m.step as f64, m.val_loss)),
            _ => None,
        })
        .collect();
    let err = |e: String| Error::Plot {
        what: "the loss curve".into(),
        reason: e,
    };
    if train.is_empty() {
        return Err(err("no training steps recorded".into()));
    }
    let max_x = train.iter().chain(&val).map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = train
        .iter()
        .chain(&val)
        .fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("tinyforge training loss", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..max_x, (lo - pad)..(hi + pad))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("cross-entropy (nats/token)")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(train, &BLUE))
        .map_err(|e| err(e.to_string()))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    if !val.is_empty() {
        chart
            .draw_series(LineSeries::new(val.clone(), &RED))
            .map_err(|e| err(e.to_string()))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
        chart
            .draw_series(val.iter().map(|&p| Circle::new(p, 3, RED.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    Ok(svg)
}
