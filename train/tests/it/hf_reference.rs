//! The model against Hugging Face transformers' LlamaForCausalLM on the same exported weights.

use tch::{Device, Kind, Tensor};
use tinyforge_train::checkpoint::{self, RunState};
use tinyforge_train::{AttentionBias, Model, ModelConfig, ModelOptions};

use crate::common::venv_python;

fn export(dir: &std::path::Path, cfg: &ModelConfig, seed: u64) -> Model {
    let model = Model::new(cfg, Device::Cpu, Kind::Float, seed).unwrap();
    // Norm weights away from 1 and biases away from 0, so a swapped or missing one cannot hide.
    tch::no_grad(|| {
        for s in model.specs().iter().filter(|s| s.shape.len() == 1) {
            let mut view = model.flat().detach().narrow(0, s.offset, s.numel);
            if s.role.is_bias() {
                let _ = view.uniform_(-0.3, 0.3);
            } else {
                let _ = view.uniform_(0.5, 1.5);
            }
        }
    });
    let state = RunState::fresh(seed, cfg);
    checkpoint::save(dir, &model, None, &state, Some(0), &[]).unwrap();
    model
}

/// Our logits and losses against transformers' on one layout; `kv_heads`, tied embeddings and
/// biases cover Llama 3 / SmolLM2 (GQA, tied) and Qwen2 (q/k/v biases) teachers.
fn matches_transformers(kv_heads: usize, tied: bool, bias: AttentionBias) {
    let Some(py) = venv_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // head_dim 32 with a non-default rope_theta, init std large enough for non-trivial logits.
    let cfg = ModelOptions {
        name: Some("ref".into()),
        dim: Some(128),
        layers: Some(3),
        heads: Some(4),
        kv_heads: Some(kv_heads),
        ffn_dim: Some(200),
        vocab_size: Some(311),
        max_seq_len: Some(256),
        rope_theta: Some(5_000.0),
        norm_eps: Some(1e-5),
        init_std: Some(0.08),
        tied_embeddings: Some(tied),
        attention_bias: Some(bias),
        ..Default::default()
    }
    .resolve(None)
    .unwrap();
    let model = export(tmp.path(), &cfg, 3);
    let ckpt = tmp.path().join(checkpoint::step_dir_name(0));
    tch::manual_seed(11);
    let ids = Tensor::randint(311, [3, 97], (Kind::Int64, Device::Cpu));
    let (logits, losses) = tch::no_grad(|| {
        (
            model.forward(&ids.narrow(1, 0, 96)),
            model.sequence_losses(&ids),
        )
    });
    let ours = tmp.path().join("ours.safetensors");
    Tensor::write_safetensors(
        &[("ids", ids), ("logits", logits), ("losses", losses)],
        &ours,
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/hf_logits.py");
    let out = std::process::Command::new(py)
        .args([
            script,
            ckpt.to_str().unwrap(),
            ours.to_str().unwrap(),
            "1e-4",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "transformers disagrees: {stdout}");
    // The reference must have done real work: non-trivial logits.
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(v["logit_scale"].as_f64().unwrap() > 0.5, "{v}");
}

#[test]
fn logits_match_transformers_llama() {
    matches_transformers(4, false, AttentionBias::None);
}

#[test]
fn logits_match_transformers_llama_gqa_tied() {
    matches_transformers(2, true, AttentionBias::None);
}

#[test]
fn logits_match_transformers_llama_attention_bias_mqa() {
    matches_transformers(1, false, AttentionBias::All);
}

#[test]
fn logits_match_transformers_qwen2() {
    matches_transformers(2, true, AttentionBias::Qkv);
}

#[test]
fn checkpoint_round_trips_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = crate::common::tiny(300);
    let model = export(tmp.path(), &cfg, 5);
    let ckpt = tmp.path().join(checkpoint::step_dir_name(0));
    let (back, state) = checkpoint::load_model(&ckpt, Device::Cpu, Kind::Float).unwrap();
    assert_eq!(state.model, cfg);
    assert!(back.flat().detach().equal(&model.flat().detach()));
    assert_eq!(checkpoint::model_config(&ckpt).unwrap(), cfg);
    // Tensor names are Hugging Face's.
    let names: Vec<String> = Tensor::read_safetensors(ckpt.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for n in [
        "model.embed_tokens.weight",
        "model.layers.1.self_attn.k_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.layers.1.post_attention_layernorm.weight",
        "model.norm.weight",
        "lm_head.weight",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    assert_eq!(names.len(), 3 + 9 * cfg.layers);
    // Any Hugging Face folder loads the same weights (what `--init-from` and eval use).
    let hf = Model::load_hf(&ckpt, Device::Cpu, Kind::Float).unwrap();
    assert!(hf.flat().detach().equal(&model.flat().detach()));
}

#[test]
fn adamw_matches_torch_optim_adamw() {
    use tinyforge_train::{AdamW, AdamWConfig};
    let Some(py) = venv_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = crate::common::tiny(64);
    let mut model = Model::new(&cfg, Device::Cpu, Kind::Float, 2).unwrap();
    let init = model.flat().detach().copy();
    let init_keep = init.copy();
    let hp = AdamWConfig::default();
    let mut opt = AdamW::new(&model, hp);
    let mask: Vec<f32> = {
        let mut m = vec![0f32; model.numel() as usize];
        for s in model.specs().iter().filter(|s| s.decay) {
            m[s.offset as usize..(s.offset + s.numel) as usize].fill(1.0);
        }
        m
    };
    let lrs = [1e-2, 3e-3, 5e-4, 2e-2];
    let mut grads = vec![];
    tch::manual_seed(4);
    for &lr in &lrs {
        // Real gradients of the model's loss on random tokens, so scales are realistic.
        model.flat_mut().zero_grad();
        let ids = Tensor::randint(64, [2, 17], (Kind::Int64, Device::Cpu));
        model.sequence_losses(&ids).mean(Kind::Float).backward();
        grads.push(model.flat().grad().copy());
        opt.update(&mut model, lr);
    }
    let input = tmp.path().join("in.safetensors");
    let output = tmp.path().join("out.safetensors");
    Tensor::write_safetensors(
        &[
            ("init", init),
            ("mask", Tensor::from_slice(&mask)),
            ("grads", Tensor::stack(&grads, 0)),
            ("lrs", Tensor::from_slice(&lrs).to_kind(Kind::Float)),
            (
                "hp",
                Tensor::from_slice(&[hp.beta1, hp.beta2, hp.eps, hp.weight_decay])
                    .to_kind(Kind::Float),
            ),
        ],
        &input,
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/adamw.py");
    let st = std::process::Command::new(py)
        .args([script, input.to_str().unwrap(), output.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let reference = Tensor::read_safetensors(&output).unwrap().remove(0).1;
    let ours = model.flat().detach();
    let diff = (&ours - &reference).abs().max().double_value(&[]);
    let moved = (&ours - &init_keep).abs().max().double_value(&[]);
    eprintln!("adamw max |ours - torch| = {diff:e} (largest update {moved:e})");
    assert!(moved > 1e-3, "the updates did nothing");
    assert!(diff < 1e-6, "AdamW differs from torch by {diff}");
}
