//! Pre-tokens longer than `max_pretoken_chars`: encoded in pieces of that many characters, each
//! piece exactly as `tokenizers` encodes it alone; everything else exactly as `tokenizers`.

use std::path::Path;

use tinyforge_shards::Dataset;
use tinyforge_tokenize::{TokenizeConfig, TokenizerInfo, tokenize};

use super::{all_tokens, config, fixtures, write_docs};

/// Each document's ids (its EOS left off), by the dataset's document table: a document may hold
/// the EOS token itself, written as text.
fn documents(dir: &Path) -> Vec<Vec<u32>> {
    let dataset = Dataset::open(dir).unwrap();
    let tokens = all_tokens(dir);
    let mut start = 0;
    let mut documents = Vec::new();
    while start < tokens.len() as u64 {
        let end = dataset.document_at(start).unwrap().end;
        documents.push(tokens[start as usize..end as usize - 1].to_vec());
        start = end;
    }
    documents
}

const LIMIT: usize = 1000;

/// Documents with long pre-tokens of every kind, and the ids `tokenizers` gives their pieces.
fn check_long_pretokens(tokenizer_path: &Path) {
    let reference = TokenizerInfo::load(tokenizer_path, None, usize::MAX).unwrap();
    let encode = |text: &str| reference.encode(text).unwrap();
    let repeat = |s: &str, n: usize| s.repeat(n);
    let han = repeat("天地玄黄", 300);
    let docs: Vec<(u64, String)> = vec![
        (0, "The river, every morning.".into()),
        (1, repeat("a", 2 * LIMIT + 500)),
        // An added token sends the text through `tokenizers`' own pipeline, not the word
        // splitter: the pieces must be the same.
        (2, format!("x<|endoftext|>{}", repeat("b", 2 * LIMIT + 100))),
        // Spaces are two bytes each in the byte-level alphabet: the limit counts characters.
        (3, format!("{}end", repeat(" ", LIMIT + 500))),
        // 3,600 bytes of Han characters: the cuts fall inside characters.
        (4, han.clone()),
        (5, "A short one after them.".into()),
    ];
    let expected: Vec<Vec<u32>> = vec![
        encode(&docs[0].1),
        [
            encode(&repeat("a", LIMIT)),
            encode(&repeat("a", LIMIT)),
            encode(&repeat("a", 500)),
        ]
        .concat(),
        [
            encode("x<|endoftext|>"),
            encode(&repeat("b", LIMIT)),
            encode(&repeat("b", LIMIT)),
            encode(&repeat("b", 100)),
        ]
        .concat(),
        [
            encode(&repeat(" ", LIMIT)),
            encode(&repeat(" ", 499)),
            encode(" end"),
        ]
        .concat(),
        Vec::new(),
        encode(&docs[5].1),
    ];

    let root = tempfile::tempdir().unwrap();
    let docs_dir = root.path().join("docs");
    write_docs(&docs_dir, &docs, 2, 2);
    let out = root.path().join("tokens");
    let report = tokenize(
        &TokenizeConfig {
            max_pretoken_chars: LIMIT,
            ..config(&docs_dir, tokenizer_path, &out)
        },
        &tinyforge_task::Silent,
    )
    .unwrap();
    assert_eq!(
        (
            report.long_pretokens.max_chars,
            report.long_pretokens.pretokens,
            report.long_pretokens.documents
        ),
        (LIMIT, 4, 4),
        "{report:?}"
    );
    let pieces = documents(&out);
    assert_eq!(pieces.len(), docs.len());
    for (i, (_, text)) in docs.iter().enumerate() {
        assert_eq!(
            &reference.decode(&pieces[i]).unwrap(),
            text,
            "document {i} decodes to its text"
        );
        if !expected[i].is_empty() {
            assert_eq!(pieces[i], expected[i], "ids of document {i}");
        }
    }
    // The Han run: its 3,600 bytes are 4 pieces, so its ids are not those of the whole.
    assert_ne!(pieces[4], encode(&han));

    // Without a limit in the way, the same documents are `tokenizers`' ids, every one.
    let whole = root.path().join("whole");
    let report = tokenize(
        &TokenizeConfig {
            max_pretoken_chars: 100_000,
            ..config(&docs_dir, tokenizer_path, &whole)
        },
        &tinyforge_task::Silent,
    )
    .unwrap();
    assert_eq!(report.long_pretokens.pretokens, 0);
    let pieces = documents(&whole);
    for (i, (_, text)) in docs.iter().enumerate() {
        assert_eq!(pieces[i], encode(text), "ids of document {i}");
    }
}

#[test]
fn long_pretokens_are_encoded_in_pieces_through_tokenizers_pipeline() {
    // GPT-2's layout (ByteLevel with its own regex): tokenizers' pipeline for every text.
    check_long_pretokens(&fixtures().join("tokenizer.json"));
}

#[test]
fn long_pretokens_are_encoded_in_pieces_through_the_word_splitter() {
    // Qwen3's layout: the fast word splitter, except for the text with an added token.
    let Some(qwen) = tinyforge_testkit::qwen3_tokenizer() else {
        return;
    };
    check_long_pretokens(&qwen);
}

#[test]
fn a_zero_limit_is_refused() {
    let error = TokenizerInfo::load(&fixtures().join("tokenizer.json"), None, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("max_pretoken_chars"), "{error}");
}
