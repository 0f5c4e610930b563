//! AdamW over the flat buffers, gradient clipping, and the learning-rate schedule.
//!
//! Decoupled weight decay (0.1 by default) applies through a 0/1 mask over the flat buffer, so the
//! RMSNorm weights are not decayed and the whole update stays a few whole-buffer kernels. The
//! update follows `torch.optim.AdamW` (non-fused) term by term, which a test checks.

use tch::Tensor;

use crate::model::Model;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        // paper.md §7 (the released InternEvo config).
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

pub struct AdamW {
    pub cfg: AdamWConfig,
    /// First and second moments of the flat buffer's elements `[start, start + len)`: all of it,
    /// or one rank's shard under ZeRO-1. fp32 like the parameters.
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    /// 1 where weight decay applies.
    decay_mask: Tensor,
    /// Updates taken so far (bias correction uses `step + 1`).
    pub step: u64,
    pub start: i64,
    pub len: i64,
}

impl AdamW {
    /// AdamW over the whole flat buffer.
    pub fn new(model: &Model, cfg: AdamWConfig) -> Self {
        Self::over(model, cfg, 0, model.numel())
    }

    /// AdamW over the flat buffer's elements `[start, start + len)` (a ZeRO-1 shard).
    pub fn over(model: &Model, cfg: AdamWConfig, start: i64, len: i64) -> Self {
        let flat = model.flat();
        let mask = Tensor::zeros_like(&flat.detach());
        tch::no_grad(|| {
            for s in model.specs().iter().filter(|s| s.decay) {
                let _ = mask.narrow(0, s.offset, s.numel).fill_(1.0);
            }
        });
        let mask = mask.narrow(0, start, len).contiguous();
        Self {
            cfg,
            exp_avg: Tensor::zeros_like(&mask),
            exp_avg_sq: Tensor::zeros_like(&mask),
            decay_mask: mask,
            step: 0,
            start,
            len,
        }
    }

    /// Bytes of optimizer state this process holds (both moments and the decay mask).
    pub fn state_bytes(&self) -> u64 {
        3 * 4 * self.len as u64
    }

    /// Take this optimizer's range of full-buffer moments (a checkpoint's, any world size).
    pub fn load_moments(
        &mut self,
        exp_avg: &Tensor,
        exp_avg_sq: &Tensor,
        step: u64,
    ) -> tch::Result<()> {
        self.exp_avg.f_copy_(
            &exp_avg
                .narrow(0, self.start, self.len)
                .to_device(self.exp_avg.device()),
        )?;
        self.exp_avg_sq.f_copy_(
            &exp_avg_sq
                .narrow(0, self.start, self.len)
                .to_device(self.exp_avg.device()),
        )?;
        self.step = step;
        Ok(())
    }

    /// One update of `model`'s flat buffer from its flat gradient at learning rate `lr`.
    pub fn update(&mut self, model: &mut Model, lr: f64) {
        let flat = model.flat_mut();
        let grad = flat.grad();
        let p = flat.detach();
        self.update_slice(&p, &grad, lr);
    }

    /// One update of `p` (this optimizer's range of the parameters) from `grad` (the same range
    /// of the gradient).
    pub fn update_slice(&mut self, p: &Tensor, grad: &Tensor, lr: f64) {
        let c = self.cfg;
        self.step += 1;
        let t = self.step as i32;
        tch::no_grad(|| {
            let mut p = p.shallow_clone();
            // p -= lr * wd * p  (on decayed entries only)
            let _ = p.g_sub_(&(&p * &self.decay_mask * (lr * c.weight_decay)));
            let _ = self.exp_avg.lerp_(grad, 1.0 - c.beta1);
            let _ = self.exp_avg_sq.g_mul_scalar_(c.beta2);
            let _ = self.exp_avg_sq.addcmul_(&(grad * (1.0 - c.beta2)), grad);
            let bc1 = 1.0 - c.beta1.powi(t);
            let bc2 = 1.0 - c.beta2.powi(t);
            let denom = (self.exp_avg_sq.sqrt() / bc2.sqrt()) + c.eps;
            let _ = p.addcdiv_(&(&self.exp_avg * (-lr / bc1)), &denom);
        });
    }
}

/// The factor `torch.nn.utils.clip_grad_norm_` scales a gradient of L2 norm `norm` by.
pub fn clip_coef(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm.is_finite() {
        (max_norm / (norm + 1e-6)).min(1.0)
    } else {
        1.0
    }
}

/// Scale the flat gradient so its global L2 norm is at most `max_norm` (as
/// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(model: &Model, max_norm: f64) -> f64 {
    let mut grad = model.flat().grad();
    let norm = grad.norm().double_value(&[]);
    let coef = clip_coef(norm, max_norm);
    if coef < 1.0 {
        tch::no_grad(|| {
            let _ = grad.g_mul_scalar_(coef);
        });
    }
    norm
}

/// Warm-up then cosine decay to `min_ratio` x peak (paper.md §7: 3% warm-up, floor 0.1 x peak).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub min_ratio: f64,
}

impl Schedule {
    pub fn new(peak: f64, total_steps: u64, warmup_fraction: f64, min_ratio: f64) -> Self {
        let warmup_steps = ((total_steps as f64 * warmup_fraction).ceil() as u64).min(total_steps);
        Self {
            peak,
            warmup_steps,
            total_steps,
            min_ratio,
        }
    }

    /// Learning rate of step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay as f64).min(1.0);
        let floor = self.peak * self.min_ratio;
        floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Square-root learning-rate scaling with the batch (paper.md §6.1, r = 0.5):
/// lr = lr0 * (batch_tokens / ref_batch_tokens)^0.5.
pub fn scaled_lr(lr0: f64, batch_tokens: u64, ref_batch_tokens: u64) -> f64 {
    lr0 * (batch_tokens as f64 / ref_batch_tokens as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let s = Schedule::new(1e-3, 100, 0.03, 0.1);
        assert_eq!(s.warmup_steps, 3);
        assert!((s.lr(0) - 1e-3 / 3.0).abs() < 1e-12);
        assert!((s.lr(2) - 1e-3).abs() < 1e-12);
        assert!((s.lr(3) - 1e-3).abs() < 1e-12);
        assert!((s.lr(100) - 1e-4).abs() < 1e-12);
        let mid = s.lr(3 + 97 / 2);
        assert!(mid < 1e-3 && mid > 1e-4);
        for step in 3..100 {
            assert!(s.lr(step + 1) <= s.lr(step));
        }
    }

    #[test]
    fn sqrt_batch_scaling() {
        assert!((scaled_lr(1e-4, 4 << 20, 1 << 20) - 2e-4).abs() < 1e-15);
    }
}
