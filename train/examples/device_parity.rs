//! The same weights and tokens on CPU in fp32 and on a device in its compute dtype: logits and
//! loss compared to a stated tolerance, plus which attention kernel libtorch picks there and
//! what libtorch sees (bench/gpu/run.sh runs it on CUDA; on CPU it checks itself).
//!
//!   cargo run -p tinyforge-train --example device_parity -- tiny 256 4 cuda auto
//!
//! Arguments: model (built-in or TOML; vocabulary 32,000 when it leaves it out), seq_len, batch,
//! device, precision (auto: bf16 on CUDA). Prints one JSON object; exits 1 when a check fails.
//! Tolerances: fp32 on both sides 1e-4 (max |Δ logit| / max |logit|) and 1e-5 (|Δ loss| / loss);
//! bf16 5e-2 and 1e-2 (bf16 keeps 8 bits of mantissa through every layer).

use tch::{Device, Kind, Tensor};
use tinyforge_train::{Model, ModelOptions};

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let cfg = ModelOptions::load(&arg(0, "tiny"))?.resolve(Some(32_000))?;
    let (seq, batch): (i64, i64) = (arg(1, "256").parse()?, arg(2, "4").parse()?);
    let device = tinyforge_train::torch_device(arg(3, "auto").parse()?);
    let kind = tinyforge_train::compute_kind(arg(4, "auto").parse()?, device);
    tch::manual_seed(11);
    let cpu = Model::new(&cfg, Device::Cpu, Kind::Float, 11)?;
    let mut dev = Model::zeros(&cfg, device, kind)?;
    tch::no_grad(|| {
        let mut f = dev.flat_mut().detach();
        f.copy_(&cpu.flat().detach());
    });
    let windows = Tensor::randint(
        cfg.vocab_size as i64,
        [batch, seq + 1],
        (Kind::Int64, Device::Cpu),
    );
    let ids = windows.narrow(1, 0, seq);
    let _guard = tch::no_grad_guard();
    let l_cpu = cpu.forward(&ids);
    let l_dev = dev
        .forward(&ids.to_device(device))
        .to_kind(Kind::Float)
        .to_device(Device::Cpu);
    let max_logit = l_cpu.abs().max().double_value(&[]);
    let logit_err = (&l_cpu - &l_dev).abs().max().double_value(&[]) / max_logit;
    let loss_cpu = cpu
        .sequence_losses(&windows)
        .mean(Kind::Float)
        .double_value(&[]);
    let loss_dev = dev
        .sequence_losses(&windows.to_device(device))
        .mean(Kind::Float)
        .double_value(&[]);
    let loss_err = (loss_cpu - loss_dev).abs() / loss_cpu;
    let (logit_tol, loss_tol) = if kind == Kind::BFloat16 {
        (5e-2, 1e-2)
    } else {
        (1e-4, 1e-5)
    };

    // The attention kernel libtorch's dispatcher picks for this model's shapes on the device.
    let hd = cfg.head_dim as i64;
    let q = Tensor::randn([batch, cfg.heads as i64, seq, hd], (kind, device));
    let kv = Tensor::randn([batch, cfg.kv_heads as i64, seq, hd], (kind, device));
    let choice = Tensor::internal_fused_sdp_choice(
        &q,
        &kv,
        &kv,
        None::<Tensor>,
        0.0,
        true,
        None,
        cfg.kv_heads != cfg.heads,
    );
    let sdp = match choice {
        0 => "math",
        1 => "flash_attention",
        2 => "efficient_attention",
        3 => "cudnn_attention",
        4 => "overrideable",
        _ => "error",
    };
    let pass = logit_err <= logit_tol && loss_err <= loss_tol && loss_dev.is_finite();
    let v = serde_json::json!({
        "model": cfg.name, "params": cfg.param_count(), "seq_len": seq, "batch": batch,
        "device": format!("{device:?}"),
        "precision": if kind == Kind::BFloat16 { "bf16" } else { "fp32" },
        "loss_cpu_fp32": loss_cpu, "loss_device": loss_dev,
        "loss_rel_err": loss_err, "loss_tol": loss_tol,
        "logit_rel_err": logit_err, "logit_tol": logit_tol,
        "sdp_backend": sdp, "runtime": tinyforge_train::runtime_info(), "pass": pass,
    });
    println!("{}", serde_json::to_string(&v)?);
    Ok(pass)
}
