//! The loop on real text: loss goes down, resume is exact, bad checkpoints are refused, a
//! non-finite loss stops the run.

use std::collections::BTreeSet;
use std::sync::Arc;

use tinyforge_train::{
    Error, NoCallbacks, Record, UnitSource, Validation, checkpoint, read_loss_table, read_records,
    train_with,
};

use crate::common::*;

const HELD_OUT: u64 = 16;

fn validation(data: &Arc<MemoryTokens>, seq: usize) -> Validation {
    let n = data.unit_count(seq);
    Validation {
        source: data.clone(),
        units: (n - HELD_OUT..n).collect(),
    }
}

use tinyforge_train::MemoryTokens;

#[test]
fn loss_decreases_on_real_text_and_everything_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = corpus();
    let cfg = loop_config(tmp.path());
    let n = train_units(data.as_ref(), cfg.seq_len, HELD_OUT);
    let batches = shuffled_batches(n, cfg.batch_size, 1);
    let steps = batches.len() as u64;
    let report = train_with(
        &cfg,
        data.clone(),
        &mut Fixed(vec![batches.clone()]),
        Some(&validation(&data, 32)),
        &mut NoCallbacks,
    )
    .unwrap();
    assert!(report.complete);
    assert_eq!(report.steps, steps);
    let records = read_records(&tmp.path().join("metrics.jsonl")).unwrap();
    let train: Vec<_> = records
        .iter()
        .filter_map(|r| {
            if let Record::Train(m) = r {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    let val: Vec<_> = records
        .iter()
        .filter_map(|r| {
            if let Record::Val(m) = r {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(train.len() as u64, steps);
    let mean_step = train.iter().map(|m| m.step_s).sum::<f64>() / train.len() as f64;
    eprintln!(
        "{steps} steps, mean step {:.2} ms, {:.0} tokens/s",
        mean_step * 1e3,
        report.mean_tokens_per_s.unwrap()
    );
    // ln(257) = 5.55 at the start; byte-level English falls well below 3.5 within ~130 steps.
    assert!(train[0].loss > 5.0, "first loss {}", train[0].loss);
    let tail: f64 = train.iter().rev().take(10).map(|m| m.loss).sum::<f64>() / 10.0;
    assert!(
        tail < 3.5,
        "loss did not decrease enough: last-10 mean {tail}"
    );
    assert!(
        val.len() >= 2 && val.last().unwrap().val_loss < val[0].val_loss - 1.0,
        "{val:?}"
    );
    assert!(
        train
            .iter()
            .all(|m| m.tokens_per_s > 0.0 && m.model_flops_per_s > 0.0 && m.lr > 0.0)
    );
    assert!(tmp.path().join("loss.svg").exists());
    let svg = std::fs::read_to_string(tmp.path().join("loss.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("polyline"));
    // Every unit of the plan recorded once with its training loss.
    let table = read_loss_table(&cfg.train_losses_dir(0)).unwrap();
    let planned: BTreeSet<u64> = batches.iter().flatten().copied().collect();
    let recorded: BTreeSet<u64> = table.iter().map(|(u, _)| *u).collect();
    assert_eq!(table.len(), planned.len());
    assert_eq!(recorded, planned);
    assert!(table.iter().all(|(_, l)| l.is_finite() && *l > 0.0));
}

#[test]
fn resume_after_a_stop_is_bit_identical() {
    let data = corpus();
    let straight = tempfile::tempdir().unwrap();
    let resumed = tempfile::tempdir().unwrap();
    let mut cfg = loop_config(straight.path());
    cfg.checkpoint_every = 7;
    let n = train_units(data.as_ref(), cfg.seq_len, HELD_OUT);
    let plan = || Fixed(vec![shuffled_batches(n, 8, 3)[..25].to_vec()]);
    let val = validation(&data, 32);
    let a = train_with(
        &cfg,
        data.clone(),
        &mut plan(),
        Some(&val),
        &mut NoCallbacks,
    )
    .unwrap();
    assert!(a.complete && a.steps == 25);

    let mut cfg_b = cfg.clone();
    cfg_b.out = resumed.path().to_path_buf();
    cfg_b.max_steps = Some(11);
    let b1 = train_with(
        &cfg_b,
        data.clone(),
        &mut plan(),
        Some(&val),
        &mut NoCallbacks,
    )
    .unwrap();
    assert!(!b1.complete && b1.steps == 11);
    // A killed run also leaves records past its checkpoint: fake some, resume must drop them.
    std::fs::OpenOptions::new()
        .append(true)
        .open(resumed.path().join("metrics.jsonl"))
        .and_then(|mut f| {
            std::io::Write::write_all(
                &mut f,
                b"{\"kind\":\"val\",\"step\":12,\"round\":0,\"val_loss\":1.0,\"val_units\":1}\n",
            )
        })
        .unwrap();
    cfg_b.max_steps = None;
    let b2 = train_with(
        &cfg_b,
        data.clone(),
        &mut plan(),
        Some(&val),
        &mut NoCallbacks,
    )
    .unwrap();
    assert!(b2.complete && b2.steps == 25);

    let fa = final_checkpoint(straight.path());
    let fb = final_checkpoint(resumed.path());
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            std::fs::read(fa.join(f)).unwrap() == std::fs::read(fb.join(f)).unwrap(),
            "{f} differs after resume"
        );
    }
    // Same metrics (but timings), same loss table.
    let strip = |p: &std::path::Path| -> Vec<(u64, String)> {
        read_records(&p.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .map(|r| match r {
                Record::Train(m) => (m.step, format!("{} {} {}", m.loss, m.lr, m.grad_norm)),
                Record::Val(v) => (v.step, format!("val {}", v.val_loss)),
            })
            .collect()
    };
    assert_eq!(strip(straight.path()), strip(resumed.path()));
    let mut ta = read_loss_table(&cfg.train_losses_dir(0)).unwrap();
    let mut tb = read_loss_table(&cfg_b.train_losses_dir(0)).unwrap();
    ta.sort_by_key(|x| x.0);
    tb.sort_by_key(|x| x.0);
    assert_eq!(ta, tb);
}

#[test]
fn corrupt_checkpoint_is_refused() {
    let data = corpus();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = loop_config(tmp.path());
    cfg.max_steps = Some(3);
    let n = train_units(data.as_ref(), cfg.seq_len, HELD_OUT);
    let plan = || Fixed(vec![shuffled_batches(n, 8, 3)[..6].to_vec()]);
    train_with(&cfg, data.clone(), &mut plan(), None, &mut NoCallbacks).unwrap();
    let ckpt = final_checkpoint(tmp.path());
    let model_file = ckpt.join("model.safetensors");
    let mut bytes = std::fs::read(&model_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&model_file, &bytes).unwrap();
    cfg.max_steps = None;
    let err = train_with(&cfg, data.clone(), &mut plan(), None, &mut NoCallbacks).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Checkpoint { .. }), "{msg}");
    assert!(
        msg.contains("model.safetensors") && msg.contains("corrupt"),
        "{msg}"
    );
    // A truncated optimizer file, and a missing state file, are refused too.
    bytes[mid] ^= 0x40;
    std::fs::write(&model_file, &bytes).unwrap();
    let opt = ckpt.join("optimizer.safetensors");
    let len = std::fs::metadata(&opt).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&opt)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let msg = train_with(&cfg, data.clone(), &mut plan(), None, &mut NoCallbacks)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("optimizer.safetensors") && msg.contains("corrupt"),
        "{msg}"
    );
    std::fs::remove_file(ckpt.join("state.json")).unwrap();
    let msg = checkpoint::read_state(&ckpt).unwrap_err().to_string();
    assert!(msg.contains("no state.json"), "{msg}");
}

#[test]
fn non_finite_loss_stops_with_the_last_good_checkpoint() {
    let data = corpus();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = loop_config(tmp.path());
    // A learning rate no model survives: the loss overflows within a few steps.
    cfg.lr = 1e8;
    cfg.grad_clip = 0.0;
    cfg.warmup = 0.0;
    cfg.checkpoint_every = 1;
    let n = train_units(data.as_ref(), cfg.seq_len, HELD_OUT);
    let err = train_with(
        &cfg,
        data.clone(),
        &mut Fixed(vec![shuffled_batches(n, 8, 3)[..40].to_vec()]),
        None,
        &mut NoCallbacks,
    )
    .unwrap_err();
    let Error::NonFinite {
        step, checkpoint, ..
    } = &err
    else {
        panic!("expected NonFinite, got {err}")
    };
    assert!(err.to_string().contains("last good state"), "{err}");
    let state = checkpoint::read_state(std::path::Path::new(checkpoint)).unwrap();
    assert_eq!(state.step + 1, *step);
    assert!(state.step == 0 || state.last_loss.is_some_and(f64::is_finite));
}
