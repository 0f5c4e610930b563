//! The fast path gives exactly the ids of `Tokenizer::encode` with the real Qwen3 tokenizer, on
//! real files of every corpus in the data cache and on edge cases (contractions, CRLF, digits,
//! whitespace runs, non-NFC text, emoji, added tokens).

use std::path::{Path, PathBuf};

use tinyforge_pretok::Splitter;
use tokenizers::{Model, Tokenizer};

fn data() -> PathBuf {
    tinyforge_testkit::data_dir()
}

fn qwen3() -> Tokenizer {
    let path = data().join("raw/qwen3-tokenizer/package/models/tokenizer.json");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-data tokenizer",
        path.display()
    );
    Tokenizer::from_file(&path).unwrap()
}

fn fast_ids(splitter: &Splitter, tokenizer: &Tokenizer, text: &str) -> Option<Vec<u32>> {
    let mut buffer = String::new();
    let mut words = Vec::new();
    if !splitter.split(text, &mut buffer, |w| words.push(w.to_owned())) {
        return None;
    }
    let mut input = String::new();
    let mut ids = Vec::new();
    for word in words {
        splitter.model_input(&word, &mut input);
        ids.extend(
            tokenizer
                .get_model()
                .tokenize(&input)
                .unwrap()
                .iter()
                .map(|t| t.id),
        );
    }
    Some(ids)
}

fn slow_ids(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer
        .encode_fast(text, false)
        .unwrap()
        .get_ids()
        .to_vec()
}

/// Up to `limit` bytes of text files under `dir`, in sorted order.
fn texts_under(dir: &Path, limit: usize) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut texts = Vec::new();
    let mut total = 0;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        // Whole files and their lines: documents of both sizes.
        let text: String = text.chars().take(20_000).collect();
        total += text.len();
        texts.extend(text.lines().take(50).map(str::to_owned));
        texts.push(text);
        if total > limit {
            break;
        }
    }
    texts
}

#[test]
fn agrees_with_encode_on_real_text_and_edge_cases() {
    let tokenizer = qwen3();
    let splitter = Splitter::new(&tokenizer).expect("Qwen3's layout is supported");
    let mut texts: Vec<String> = [
        "",
        " ",
        "   \n\n  \t",
        "Hello, world! It's a test; we're done, they'll see. I'M LOUD'S",
        "line one\r\nline two\r\n\r\n",
        "1234567890 3.14159 1e-9 ٣٤٥",
        "trailing spaces   ",
        "  leading spaces",
        "Cafe\u{301} na\u{308}ive \u{212b}ngstr\u{f6}m \u{1e9b}\u{323}",
        "emoji 👩‍👩‍👧 and flags 🇨🇳🇬🇧 ✓",
        "混合 text with 中文，标点。和 English; 日本語のテキスト；한국어 텍스트",
        "fn main() {\n    println!(\"{}\", x);\n}\n",
        "tabs\tand\u{a0}no-break\u{3000}ideographic spaces",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let raw = data().join("raw");
    for corpus in [
        "chinese-poetry",
        "sotu",
        "rust-src",
        "libreoffice-help-en-us",
        "libreoffice-help-zh-cn",
    ] {
        let found = texts_under(&raw.join(corpus), 400_000);
        assert!(
            !found.is_empty(),
            "no files under {}",
            raw.join(corpus).display()
        );
        texts.extend(found);
    }
    let mut checked = 0;
    for text in &texts {
        let fast = fast_ids(&splitter, &tokenizer, text).expect("no added tokens in these");
        let slow = slow_ids(&tokenizer, text);
        assert_eq!(
            fast,
            slow,
            "ids differ for {:?}",
            text.chars().take(200).collect::<String>()
        );
        checked += 1;
    }
    assert!(checked > 1000, "only {checked} texts");
}

#[test]
fn texts_with_added_tokens_take_the_full_pipeline() {
    let tokenizer = qwen3();
    let splitter = Splitter::new(&tokenizer).unwrap();
    let mut buffer = String::new();
    for text in [
        "a<|endoftext|>b",
        "<|im_start|>user\nhi<|im_end|>",
        "x <think> y",
    ] {
        assert!(!splitter.split(text, &mut buffer, |_| panic!("no words for {text}")));
    }
}

#[test]
fn other_layouts_are_declined() {
    let spm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vocab/tests/fixtures/spm_bpe.json");
    let tokenizer = Tokenizer::from_file(&spm).unwrap();
    assert!(Splitter::new(&tokenizer).is_none());
}
