//! `train` from files: a tinyforge-shards dataset of real text, round plans from
//! tinyforge-sampler (round 2 drawn by softmax over the losses the frozen model scored).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tinyforge_shards::{DatasetHeader, DatasetWriter, Dtype, Manifest, ShardOptions};
use tinyforge_train::{NoCallbacks, RoundPlan, TrainOptions, read_loss_table};

/// The fixture text as a byte-level token dataset (vocab 257, EOS 256), one document per
/// paragraph, several shards and frames so windows cross both.
pub fn byte_dataset(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sotu.txt"),
    )
    .unwrap();
    let header = DatasetHeader {
        tokenizer_sha256: "0".repeat(64),
        vocab_size: 257,
        dtype: Dtype::U16,
        eos_id: 256,
        frame_tokens: 1024,
    };
    let mut w =
        DatasetWriter::new(dir, ShardOptions::from_header(&header), 12_000, vec![]).unwrap();
    for (i, para) in text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .enumerate()
    {
        let tokens: Vec<u32> = para.bytes().map(u32::from).collect();
        w.push_document(i as u64, &tokens).unwrap();
    }
    let shards = w.finish().unwrap();
    assert!(shards.len() >= 2);
    Manifest::new(header, None, shards).write(dir).unwrap();
    dir.to_path_buf()
}

fn options(data: &Path, out: &Path) -> TrainOptions {
    toml::from_str::<TrainOptions>(
        r#"
        model = "tiny"
        seq_len = 32
        batch_size = 8
        micro_batch = 8
        lr = 3e-3
        ref_batch_tokens = 256
        checkpoint_every = 20
        eval_every = 20
        val_units = 16
        device = "cpu"
        rounds = [{ fraction = 1.0 }, { fraction = 0.5, select = "softmax-loss" }]
        "#,
    )
    .map(|o| TrainOptions {
        data: Some(data.into()),
        out: Some(out.into()),
        ..o
    })
    .unwrap()
}

#[test]
fn two_sampler_rounds_over_a_shard_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = byte_dataset(&tmp.path().join("shards"));
    let out = tmp.path().join("run");
    let opts = options(&data, &out);
    let report =
        tinyforge_train::train_from_options(&opts, &Default::default(), &mut NoCallbacks).unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.rounds_done, 2);

    let cfg = opts.resolve(Some(257)).unwrap();
    let source = tinyforge_train::ShardSource::open(&data).unwrap();
    let units = tinyforge_train::UnitSource::unit_count(&source, 32);
    // The 16 held-out units: one from each sixteenth of the dataset, recorded in the run.
    let record = tinyforge_sampler::HeldOut::read(&out.join("heldout.json")).unwrap();
    assert_eq!(record.units, units);
    let held_out: BTreeSet<u64> = record.held_out.iter().copied().collect();
    assert_eq!(held_out.len(), 16);
    assert!(record.held_out[0] < units / 16 && record.held_out[15] >= units * 15 / 16);
    let plan = |r: usize| {
        let p = tinyforge_sampler::Plan::open(out.join(format!("plans/round-{r}.json"))).unwrap();
        tinyforge_train::SamplerPlan(p)
    };
    let (p1, p2) = (plan(1), plan(2));
    assert_eq!(p2.steps(), (p1.steps() as f64 * 0.5).round() as u64);
    assert_eq!(report.steps, p1.steps() + p2.steps());
    let units_of = |p: &tinyforge_train::SamplerPlan| -> Vec<u64> {
        (0..p.steps()).flat_map(|s| p.batch(s).unwrap()).collect()
    };
    let (u1, u2) = (units_of(&p1), units_of(&p2));
    // Round 1 trains distinct units, none held out; round 2 is a subset of whole round-1 batches.
    assert_eq!(u1.iter().collect::<BTreeSet<_>>().len(), u1.len());
    assert!(u1.iter().all(|u| !held_out.contains(u)));
    let b1: BTreeSet<Vec<u64>> = (0..p1.steps()).map(|s| p1.batch(s).unwrap()).collect();
    assert!((0..p2.steps()).all(|s| b1.contains(&p2.batch(s).unwrap())));
    // The loss tables: training losses of each round, the score of every round-1 unit.
    let sorted = |mut v: Vec<u64>| {
        v.sort();
        v
    };
    let table_units = |p: PathBuf| {
        sorted(
            read_loss_table(&p)
                .unwrap()
                .into_iter()
                .map(|x| x.0)
                .collect(),
        )
    };
    assert_eq!(table_units(cfg.run.train_losses_dir(0)), sorted(u1.clone()));
    assert_eq!(table_units(cfg.run.train_losses_dir(1)), sorted(u2));
    assert_eq!(
        table_units(out.join("losses/score-round-1.parquet")),
        sorted(u1)
    );
    assert!(out.join("loss.svg").exists() && out.join("report.json").exists());
    assert!(report.last_val_loss.unwrap() < 4.0, "{report:?}");
}
