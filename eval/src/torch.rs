//! The libtorch backend: tinyforge-train's model scores a batch of requests in one padded
//! forward, on GPU in bf16 or on CPU in fp32.

use std::path::Path;

use tch::{Device, Kind, Tensor};
use tinyforge_train::Model;

use crate::error::{Error, Result};
use crate::model::{LanguageModel, Request, request_window};

/// libtorch tensors are `Send` but not `Sync`; one forward at a time (each is a whole batch).
pub struct TorchModel {
    model: std::sync::Mutex<Model>,
    device: Device,
    max_length: usize,
}

fn model_error(e: impl std::fmt::Display) -> Error {
    Error::Model(e.to_string())
}

impl TorchModel {
    /// Loads the Hugging Face LLaMA-family folder `dir` (config.json + safetensors, single or
    /// sharded; no training state needed) onto `device`, in bf16 on CUDA and fp32 on the CPU.
    pub fn load(
        dir: &Path,
        device: tinyforge_model::Device,
        max_length: Option<usize>,
    ) -> Result<Self> {
        let bad = |e: tinyforge_train::Error| Error::Checkpoint {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        let device = tinyforge_train::torch_device(device);
        let compute = tinyforge_train::compute_kind(tinyforge_model::Precision::Auto, device);
        let model = Model::load_hf(dir, device, compute).map_err(bad)?;
        let window = model.config().max_seq_len;
        Ok(TorchModel {
            model: std::sync::Mutex::new(model),
            device,
            max_length: max_length.unwrap_or(window).min(window),
        })
    }
}

impl TorchModel {
    /// The logits `[rows, width, vocab]` of `ids`, `rows` sequences of equal width laid end to
    /// end.
    fn forward(&self, ids: &[i64], rows: usize) -> Tensor {
        let width = ids.len() / rows.max(1);
        let input = Tensor::from_slice(ids)
            .view([rows as i64, width as i64])
            .to_device(self.device);
        let model = self
            .model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        model.forward(&input)
    }
}

impl LanguageModel for TorchModel {
    fn max_length(&self) -> usize {
        self.max_length
    }

    fn loglikelihood(&self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let windows = requests
            .iter()
            .map(|(c, x)| request_window(c, x, self.max_length))
            .collect::<Result<Vec<_>>>()?;
        let width = windows.iter().map(|(w, _)| w.len() - 1).max().unwrap_or(1);
        // Right padding: with causal attention no scored position sees a pad token.
        let mut ids = vec![0i64; windows.len() * width];
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for (b, (window, scored)) in windows.iter().enumerate() {
            let input = &window[..window.len() - 1];
            for (t, &id) in input.iter().enumerate() {
                ids[b * width + t] = i64::from(id);
            }
            for k in 0..*scored {
                let position = input.len() - scored + k;
                rows.push((b * width + position) as i64);
                targets.push(i64::from(window[window.len() - scored + k]));
            }
        }
        let (logprobs, greedy) = tch::no_grad(
            || -> std::result::Result<(Vec<f64>, Vec<i64>), tch::TchError> {
                let logits = self.forward(&ids, windows.len());
                let vocab = logits.size()[2];
                let rows = Tensor::from_slice(&rows).to_device(self.device);
                let picked = logits
                    .view([-1, vocab])
                    .f_index_select(0, &rows)?
                    .to_kind(Kind::Float);
                let targets = Tensor::from_slice(&targets).to_device(self.device);
                let logprobs = picked
                    .log_softmax(-1, Kind::Float)
                    .gather(1, &targets.unsqueeze(1), false)
                    .squeeze_dim(1);
                let argmax = picked.argmax(-1, false);
                let logprobs =
                    Vec::<f64>::try_from(logprobs.to_kind(Kind::Double).to_device(Device::Cpu))?;
                let argmax = Vec::<i64>::try_from(argmax.to_device(Device::Cpu))?;
                Ok((logprobs, argmax))
            },
        )
        .map_err(model_error)?;
        let mut out = Vec::with_capacity(windows.len());
        let mut offset = 0;
        for (_, scored) in &windows {
            let range = offset..offset + scored;
            let sum = logprobs[range.clone()].iter().sum();
            let all_greedy = range.clone().all(|i| greedy[i] == targets[i]);
            out.push((sum, all_greedy));
            offset += scored;
        }
        Ok(out)
    }

    fn next_token_logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::Config(
                "generation needs at least one prompt token".into(),
            ));
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        tch::no_grad(|| -> std::result::Result<Vec<f32>, tch::TchError> {
            let logits = self.forward(&ids, 1);
            let last = logits.get(0).get(ids.len() as i64 - 1).to_kind(Kind::Float);
            Vec::<f32>::try_from(last.to_device(Device::Cpu))
        })
        .map_err(model_error)
    }
}
