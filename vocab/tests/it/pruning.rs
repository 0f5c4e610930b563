use std::path::Path;

use tinyforge_vocab::{
    BaseTokenizer, CountConfig, Counts, Error, PruneConfig, Target, count_documents, minimum_size,
    prune,
};

use crate::common::{check_pruned, corpus, fixture, write_docs};

/// Counts the fixture corpus with `base`.
pub fn corpus_counts(base: &BaseTokenizer) -> Counts {
    let tmp = tempfile::tempdir().unwrap();
    write_docs(tmp.path(), &corpus(), 2, 50);
    count_documents(
        tmp.path(),
        base,
        &CountConfig::default(),
        &tinyforge_task::Silent,
    )
    .unwrap()
}

fn prune_to(base: &BaseTokenizer, counts: &Counts, target: Target, out: &Path) {
    let config = PruneConfig {
        target,
        model: Some(crate::common::tiny_model()),
    };
    let report = prune(base, counts, &config, out).unwrap();
    assert!(report.outputs.report.is_file());
    if let Target::Size(k) = target {
        assert_eq!(report.vocab_size, k);
    }
}

#[test]
fn byte_level_prune_is_lossless_and_agrees_with_base() {
    let base = BaseTokenizer::load(&fixture("bytelevel_bpe.json")).unwrap();
    let counts = corpus_counts(&base);
    let docs = corpus();
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    // 256 bytes + 2 specials are forced; 500 keeps roughly the top 240 of ~1200.
    assert_eq!(minimum_size(&base), 258);
    for k in [258, 500, 900] {
        let tmp = tempfile::tempdir().unwrap();
        prune_to(&base, &counts, Target::Size(k), tmp.path());
        let agreements = check_pruned(&base, tmp.path(), &texts);
        assert!(
            agreements > 50,
            "k={k}: only {agreements} lines checked for agreement"
        );
    }
}

#[test]
fn sentencepiece_style_prune_is_lossless_and_agrees_with_base() {
    let base = BaseTokenizer::load(&fixture("spm_bpe.json")).unwrap();
    let counts = corpus_counts(&base);
    let docs = corpus();
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(minimum_size(&base), 3 + 256 + 1);
    for k in [260, 600, 1200] {
        let tmp = tempfile::tempdir().unwrap();
        prune_to(&base, &counts, Target::Size(k), tmp.path());
        let agreements = check_pruned(&base, tmp.path(), &texts);
        assert!(
            agreements > 20,
            "k={k}: only {agreements} lines checked for agreement"
        );
        // The template post-processor still adds <s>, under its new id.
        let pruned = tokenizers::Tokenizer::from_file(tmp.path().join("tokenizer.json")).unwrap();
        let with_bos = pruned.encode("天地", true).unwrap();
        assert_eq!(with_bos.get_ids()[0], pruned.token_to_id("<s>").unwrap());
    }
}

#[test]
fn every_kept_token_is_reachable_through_kept_merges() {
    for name in ["bytelevel_bpe.json", "spm_bpe.json"] {
        let base = BaseTokenizer::load(&fixture(name)).unwrap();
        let counts = corpus_counts(&base);
        let tmp = tempfile::tempdir().unwrap();
        prune_to(&base, &counts, Target::Size(400), tmp.path());
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join("tokenizer.json")).unwrap())
                .unwrap();
        let vocab = json["model"]["vocab"].as_object().unwrap();
        let merges: Vec<(String, String)> = json["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| match m {
                serde_json::Value::String(s) => {
                    let (a, b) = s.split_once(' ').unwrap();
                    (a.to_owned(), b.to_owned())
                }
                pair => (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_str().unwrap().to_owned(),
                ),
            })
            .collect();
        // A token is reachable if it is a single character (or a byte piece) or some kept
        // merge of two kept tokens produces it.
        let produced: std::collections::HashSet<String> =
            merges.iter().map(|(a, b)| format!("{a}{b}")).collect();
        for token in vocab.keys() {
            let atomic = token.chars().count() == 1 || token.starts_with("<");
            assert!(
                atomic || produced.contains(token),
                "{name}: {token:?} unreachable"
            );
        }
        for (a, b) in &merges {
            assert!(vocab.contains_key(a) && vocab.contains_key(b));
            assert!(vocab.contains_key(&format!("{a}{b}")));
        }
        // The file keeps the base merges' form.
        let base_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap();
        assert_eq!(
            base_json["model"]["merges"][0].is_string(),
            json["model"]["merges"][0].is_string()
        );
        assert_eq!(base_json["normalizer"], json["normalizer"]);
        assert_eq!(base_json["pre_tokenizer"], json["pre_tokenizer"]);
        assert_eq!(base_json["decoder"], json["decoder"]);
    }
}

#[test]
fn coverage_target_keeps_the_fewest_tokens_reaching_it() {
    let base = BaseTokenizer::load(&fixture("bytelevel_bpe.json")).unwrap();
    let counts = corpus_counts(&base);
    let tmp = tempfile::tempdir().unwrap();
    let config = PruneConfig {
        target: Target::Coverage(0.9),
        model: None,
    };
    let report = prune(&base, &counts, &config, tmp.path()).unwrap();
    assert!(report.coverage >= 0.9, "{}", report.coverage);
    assert!(report.vocab_size < base.id_space());
    // One token fewer would not do: the smaller size covers less than the target.
    let smaller = tempfile::tempdir().unwrap();
    let config = PruneConfig {
        target: Target::Size(report.vocab_size - 1),
        model: None,
    };
    let less = prune(&base, &counts, &config, smaller.path()).unwrap();
    assert!(less.coverage < 0.9, "{}", less.coverage);
}

#[test]
fn size_below_the_alphabet_is_refused_with_the_minimum() {
    let base = BaseTokenizer::load(&fixture("spm_bpe.json")).unwrap();
    let counts = corpus_counts(&base);
    let tmp = tempfile::tempdir().unwrap();
    let config = PruneConfig {
        target: Target::Size(100),
        model: None,
    };
    let err = prune(&base, &counts, &config, tmp.path()).unwrap_err();
    assert!(
        matches!(err, Error::SizeTooSmall { minimum: 260, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("260"), "{err}");
}

#[test]
fn unsupported_and_broken_tokenizers_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "wordpiece.json",
            r###"{"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":null,
               "post_processor":null,"decoder":null,"model":{"type":"WordPiece",
               "unk_token":"[UNK]","continuing_subword_prefix":"##",
               "max_input_chars_per_word":100,"vocab":{"[UNK]":0,"a":1}}}"###,
            "WordPiece",
        ),
        (
            "unigram.json",
            r#"{"version":"1.0","model":{"type":"Unigram","unk_id":0,
               "vocab":[["<unk>",0.0],["a",-1.0]]}}"#,
            "Unigram",
        ),
        (
            "broken.json",
            r#"{"version": "1.0", "model": {"type": "BPE", "#,
            "not a valid",
        ),
        (
            "plain_bpe.json",
            r#"{"version":"1.0","model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},
               "merges":["a b"]}}"#,
            "byte_fallback",
        ),
    ];
    for (name, text, expected) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = BaseTokenizer::load(&path).unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn counts_of_another_tokenizer_are_refused() {
    let base = BaseTokenizer::load(&fixture("bytelevel_bpe.json")).unwrap();
    let other = BaseTokenizer::load(&fixture("spm_bpe.json")).unwrap();
    let mut counts = corpus_counts(&other);
    let err = counts
        .check_against(Path::new("counts.parquet"), &base)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("counts.parquet") && err.contains("sha256"),
        "{err}"
    );
}
