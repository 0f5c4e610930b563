//! Importance of every unit inheritance can keep or drop (INHERIT.md, "Criteria"): hidden
//! channels, query heads, key/value heads and FFN neurons of each layer, and the layers
//! themselves. Every weight-based criterion (L1, L2, Taylor) reduces an elementwise score over
//! the weights coupled to each unit; the activation criterion and block importance read the
//! forward's taps. Scores accumulate in f64 on the CPU.

use tch::{Device, Kind, Tensor};
use tinyforge_model::Role;
use tinyforge_train::{Gates, Model, ParamSpec, Taps};

use crate::calib::Calibration;
use crate::error::Result;

/// Scores per unit family, larger = more important.
pub struct UnitScores {
    /// `[dim]`
    pub hidden: Tensor,
    /// `[layers, heads]`
    pub heads: Tensor,
    /// `[layers, kv_heads]`: what the key/value projections add to a group's score.
    pub kv: Tensor,
    /// `[layers, ffn_dim]`
    pub neurons: Tensor,
}

/// Progress: (phase, done, total).
pub type OnProgress<'a> = &'a dyn tinyforge_task::Reporter;

impl UnitScores {
    pub fn zeros(model: &Model) -> Self {
        let c = model.config();
        let z = |shape: &[i64]| Tensor::zeros(shape, (Kind::Double, Device::Cpu));
        let l = c.layers as i64;
        UnitScores {
            hidden: z(&[c.dim as i64]),
            heads: z(&[l, c.heads as i64]),
            kv: z(&[l, c.kv_heads as i64]),
            neurons: z(&[l, c.ffn_dim as i64]),
        }
    }

    /// Add the elementwise score `elem` of the weight `spec` to the units it is coupled to: a
    /// channel through its column in every reader, its row in every writer and its entry of
    /// the norms, embedding and head; a head through its q (k, v) rows and o columns; a neuron
    /// through its gate and up rows and its down column. `vocab_rows` restricts the embedding
    /// and head to the rows the student keeps.
    pub fn add(
        &mut self,
        model: &Model,
        spec: &ParamSpec,
        elem: &Tensor,
        vocab_rows: Option<&Tensor>,
    ) {
        let c = model.config();
        let (nh, nkv, hd) = (c.heads as i64, c.kv_heads as i64, c.head_dim as i64);
        let e = elem.to_device(Device::Cpu).to_kind(Kind::Double);
        let d = c.dim as i64;
        let sum = |t: &Tensor, dims: &[i64]| t.sum_dim_intlist(dims, false, Kind::Double);
        let l = spec.layer.unwrap_or(0) as i64;
        let row = |t: &mut Tensor, add: Tensor| {
            let mut r = t.get(l);
            let _ = r.g_add_(&add);
        };
        match spec.role {
            Role::Embed | Role::Head => {
                let e = match vocab_rows {
                    Some(rows) => e.index_select(0, rows),
                    None => e,
                };
                let _ = self.hidden.g_add_(&sum(&e, &[0]));
            }
            Role::InputNorm | Role::PostNorm | Role::FinalNorm | Role::OBias => {
                let _ = self.hidden.g_add_(&e);
            }
            Role::Q => {
                let _ = self.hidden.g_add_(&sum(&e, &[0]));
                row(&mut self.heads, sum(&e.view([nh, hd * d]), &[1]));
            }
            Role::QBias => row(&mut self.heads, sum(&e.view([nh, hd]), &[1])),
            Role::K | Role::V => {
                let _ = self.hidden.g_add_(&sum(&e, &[0]));
                row(&mut self.kv, sum(&e.view([nkv, hd * d]), &[1]));
            }
            Role::KBias | Role::VBias => row(&mut self.kv, sum(&e.view([nkv, hd]), &[1])),
            Role::O => {
                let _ = self.hidden.g_add_(&sum(&e, &[1]));
                row(&mut self.heads, sum(&e.view([d, nh, hd]), &[0, 2]));
            }
            Role::Gate | Role::Up => {
                let _ = self.hidden.g_add_(&sum(&e, &[0]));
                row(&mut self.neurons, sum(&e, &[1]));
            }
            Role::Down => {
                let _ = self.hidden.g_add_(&sum(&e, &[1]));
                row(&mut self.neurons, sum(&e, &[0]));
            }
        }
    }
}

/// L1 (`p = 1`) or L2 (`p = 2`) magnitude: Σ|w|^p over every weight coupled to the unit
/// (LLM-Pruner's `MagnitudeImportance`).
pub fn magnitude(model: &Model, p: i32, vocab_rows: Option<&Tensor>) -> UnitScores {
    let mut scores = UnitScores::zeros(model);
    let flat = model.flat().detach();
    tch::no_grad(|| {
        for s in model.specs() {
            let w = s.view(&flat);
            let elem = if p == 1 { w.abs() } else { w.square() };
            scores.add(model, s, &elem, vocab_rows);
        }
    });
    scores
}

/// Mean next-token cross-entropy of `windows` `[B, T + 1]` under `logits` of its inputs.
pub fn lm_loss(logits: &Tensor, windows: &Tensor) -> Tensor {
    let (b, t1) = windows.size2().expect("windows are [batch, seq + 1]");
    let target = windows.narrow(1, 1, t1 - 1).reshape([-1]);
    logits
        .to_kind(Kind::Float)
        .reshape([b * (t1 - 1), -1])
        .cross_entropy_loss::<Tensor>(&target, None, tch::Reduction::Mean, -100, 0.0)
}

fn inputs(windows: &Tensor) -> Tensor {
    let t1 = windows.size()[1];
    windows.narrow(1, 0, t1 - 1)
}

/// Ranges of the flat buffer whose gradients are computed in one pass: whole layers (the
/// embedding, each decoder layer, the final norm with the head), joined while their gradient
/// and its leaf copy fit `budget_bytes` (8 bytes per parameter); a layer larger than the budget
/// is a window of its own.
pub fn grad_windows(model: &Model, budget_bytes: u64) -> Vec<(i64, i64)> {
    let mut groups: Vec<(i64, i64)> = Vec::new();
    let mut last_key = None;
    for s in model.specs() {
        let key = match (s.layer, s.role) {
            (Some(l), _) => l + 1,
            (None, Role::Embed) => 0,
            (None, _) => usize::MAX,
        };
        match groups.last_mut() {
            Some(g) if last_key == Some(key) => g.1 = s.offset + s.numel,
            _ => groups.push((s.offset, s.offset + s.numel)),
        }
        last_key = Some(key);
    }
    let mut windows: Vec<(i64, i64)> = Vec::new();
    for (start, end) in groups {
        match windows.last_mut() {
            Some(w) if (end - w.0) as u64 * 8 <= budget_bytes => w.1 = end,
            _ => windows.push((start, end)),
        }
    }
    windows
}

/// First-order Taylor (LLM-Pruner's `param_first`): |w ⊙ ∂L/∂w| over the coupled weights, with
/// L the mean LM loss over all calibration windows. The gradient is computed one window of
/// whole layers at a time ([`grad_windows`]), so peak memory is the model, one window's
/// gradient and one batch's activations, never the whole model's gradient.
pub fn taylor(
    model: &Model,
    calib: &Calibration,
    batch: usize,
    budget_bytes: u64,
    vocab_rows: Option<&Tensor>,
    progress: OnProgress,
) -> Result<UnitScores> {
    let mut scores = UnitScores::zeros(model);
    let flat = model.flat().detach();
    let batches = calib.batches(batch, model.device());
    let windows = grad_windows(model, budget_bytes);
    let total = (windows.len() * batches.len()) as u64;
    let sequences = calib.sequences() as f64;
    progress.start("taylor", total);
    for &(start, end) in &windows {
        let leaf = flat
            .narrow(0, start, end - start)
            .copy()
            .set_requires_grad(true);
        for (_, teacher_ids) in &batches {
            let logits = model.forward_with(
                &inputs(teacher_ids),
                &Gates::default(),
                Some((start, &leaf)),
                None,
            );
            // Weighted so the summed gradient is that of the mean over all windows.
            let share = teacher_ids.size()[0] as f64 / sequences;
            (lm_loss(&logits, teacher_ids) * share).f_backward()?;
            progress.advance(1);
        }
        let grad = leaf.grad();
        tch::no_grad(|| {
            let elem = (leaf.detach() * grad).abs();
            for s in model
                .specs()
                .iter()
                .filter(|s| s.offset >= start && s.offset < end)
            {
                let e = elem
                    .narrow(0, s.offset - start, s.numel)
                    .view(s.shape.as_slice());
                scores.add(model, s, &e, vocab_rows);
            }
        });
    }
    Ok(scores)
}

/// What one forward pass over the calibration data measures with taps on.
pub struct Observed {
    /// Minitron's activation scores (per unit: mean |activation| over a sequence, then the L2
    /// norm over sequences).
    pub activation: UnitScores,
    /// Per layer: 1 − mean cos(layer input, layer output) (ShortGPT's block influence).
    pub block_importance: Vec<f64>,
    /// Mean LM loss over the calibration windows.
    pub loss: f64,
}

/// One forward over the calibration data with taps (no gradients).
pub fn observe(
    model: &Model,
    calib: &Calibration,
    batch: usize,
    progress: OnProgress,
) -> Result<Observed> {
    let mut act = UnitScores::zeros(model);
    let layers = model.config().layers;
    let mut block = vec![0f64; layers];
    let mut loss = 0f64;
    let batches = calib.batches(batch, model.device());
    let sequences = calib.sequences() as f64;
    progress.start("calibration forward", batches.len() as u64);
    let squares = |t: &Tensor| {
        t.to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .square()
            .sum_dim_intlist(0, false, Kind::Double)
    };
    for (_, teacher_ids) in &batches {
        tch::no_grad(|| -> Result<()> {
            let mut taps = Taps::default();
            let logits = model.forward_with(
                &inputs(teacher_ids),
                &Gates::default(),
                None,
                Some(&mut taps),
            );
            let n = teacher_ids.size()[0] as f64;
            loss += lm_loss(&logits, teacher_ids).double_value(&[]) * n / sequences;
            for (l, b) in block.iter_mut().enumerate() {
                *b += taps.block_cos[l].sum(Kind::Double).double_value(&[]);
                let _ = act.heads.get(l as i64).g_add_(&squares(&taps.head_act[l]));
                let _ = act
                    .neurons
                    .get(l as i64)
                    .g_add_(&squares(&taps.neuron_act[l]));
            }
            if let Some(h) = &taps.hidden_act {
                let _ = act.hidden.g_add_(&squares(h));
            }
            Ok(())
        })?;
        progress.advance(1);
    }
    let _ = act.heads.sqrt_();
    let _ = act.neurons.sqrt_();
    let _ = act.hidden.sqrt_();
    Ok(Observed {
        activation: act,
        block_importance: block.iter().map(|c| 1.0 - c / sequences).collect(),
        loss,
    })
}

/// Mean LM loss of `model` over the calibration windows: the student's on student ids, or the
/// teacher's on teacher ids; `restrict` gathers the logits to those vocabulary rows first (the
/// teacher's loss over the student's vocabulary, scored on student ids).
pub fn calibration_loss(
    model: &Model,
    calib: &Calibration,
    batch: usize,
    teacher_ids: bool,
    restrict: Option<&Tensor>,
) -> Result<f64> {
    let sequences = calib.sequences() as f64;
    let mut loss = 0.0;
    for (student, teacher) in calib.batches(batch, model.device()) {
        let windows = if teacher_ids {
            teacher
        } else {
            student.shallow_clone()
        };
        let l = tch::no_grad(|| {
            let logits = model.forward(&inputs(&windows));
            match restrict {
                Some(rows) => {
                    let logits = logits.index_select(-1, &rows.to_device(model.device()));
                    lm_loss(&logits, &student)
                }
                None => lm_loss(&logits, &windows),
            }
        });
        loss += l.double_value(&[]) * student.size()[0] as f64 / sequences;
    }
    Ok(loss)
}
