//! Pruning the real Qwen3 tokenizer (151,643 + 26 tokens). The file is 11 MB and not
//! committed: the test reads it from the data cache (`scripts/fetch-data`) and skips with a
//! message when it is absent (a failure under `TINYFORGE_REQUIRE_REFERENCES`, as in CI). The fixture tokenizers test the same logic everywhere.

use std::path::PathBuf;

use tinyforge_vocab::{BaseTokenizer, Family, PruneConfig, Target, prune};

use crate::common::{check_pruned, corpus};
use crate::pruning::corpus_counts;
use crate::python::{assert_python_matches, python};

fn qwen3() -> Option<PathBuf> {
    tinyforge_testkit::qwen3_tokenizer()
}

#[test]
fn qwen3_pruned_to_a_small_vocabulary_stays_lossless_and_loads_in_python() {
    let Some(path) = qwen3() else { return };
    let base = BaseTokenizer::load(&path).unwrap();
    assert_eq!(base.family(), Family::ByteLevel);
    assert_eq!(base.id_space(), 151_669);
    assert_eq!(base.merge_count(), 151_387);
    let counts = corpus_counts(&base);
    let docs = corpus();
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    // The corpus uses a few thousand distinct Qwen3 tokens; 2,000 drops many of them.
    assert!(counts.distinct_used() > 3_000, "{}", counts.distinct_used());
    let tmp = tempfile::tempdir().unwrap();
    let config = PruneConfig {
        target: Target::Size(2_000),
        model: Some(tinyforge_model::ModelConfig::builtin("pangu-1b-pro").unwrap()),
    };
    let report = prune(&base, &counts, &config, tmp.path()).unwrap();
    assert_eq!(report.vocab_size, 2_000);
    assert_eq!(report.kept.specials, 26);
    assert_eq!(report.kept.alphabet, 256);
    assert!(
        report.coverage > 0.5 && report.coverage < 1.0,
        "{}",
        report.coverage
    );
    let agreements = check_pruned(&base, tmp.path(), &texts);
    assert!(agreements > 100, "only {agreements} lines checked");
    // Special tokens keep working under their new ids.
    let pruned = tokenizers::Tokenizer::from_file(tmp.path().join("tokenizer.json")).unwrap();
    let eot = pruned.encode("a<|endoftext|>", false).unwrap();
    assert_eq!(
        eot.get_ids().last().copied(),
        pruned.token_to_id("<|endoftext|>")
    );
    assert_eq!(pruned.token_to_id("<|endoftext|>"), Some(2_000 - 26));
    if let Some(python) = python() {
        assert_python_matches(&python, &tmp.path().join("tokenizer.json"));
    }
}
