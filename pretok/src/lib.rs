//! Exact, allocation-light pre-tokenization for the byte-level BPE layout of Qwen / GPT-4 style
//! `tokenizer.json` files: an NFC (or no) normalizer, then `Sequence[Split(Regex, Isolated),
//! ByteLevel(use_regex = false)]`.
//!
//! Hugging Face `tokenizers` runs every document through `NormalizedString`s that track an
//! alignment per byte, so pre-tokenizing a text allocates several times its size and spent
//! more time in `malloc` and `memmove` than in the regex (measured on `vocab count`). BPE works
//! on each pre-tokenized word independently, so a stage that counts or encodes many documents
//! only needs the words: [`Splitter::split`] yields them as slices of the normalized text with
//! the tokenizer's own regex engine (`SysRegex`) and normalization tables
//! (`unicode-normalization-alignments`), and the caller runs the BPE model once per distinct
//! word ([`Splitter::model_input`] maps a word to the model's byte-level alphabet).
//!
//! The fast path is exact, not approximate: [`Splitter::new`] accepts only the layout it
//! reproduces, and [`Splitter::split`] declines (returns `false`) a text holding an added
//! token, which the full pipeline must split first. Tests compare against `encode` over real
//! text.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use aho_corasick::AhoCorasick;
use tokenizers::Tokenizer;
use tokenizers::utils::SysRegex;
use unicode_normalization::{IsNormalized, is_nfc_quick};

/// The pre-tokenization of one supported tokenizer.
pub struct Splitter {
    regex: SysRegex,
    nfc: bool,
    /// Contents of the added tokens (special or not): a text containing one (before or after
    /// normalization) takes the tokenizer's full pipeline.
    added: Option<AhoCorasick>,
    alphabet: [char; 256],
}

impl std::fmt::Debug for Splitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splitter").field("nfc", &self.nfc).finish()
    }
}

impl Splitter {
    /// The fast splitter of `tokenizer`, or `None` when its normalizer or pre-tokenizer is
    /// not the supported layout (the caller then uses the tokenizer's own pipeline).
    pub fn new(tokenizer: &Tokenizer) -> Option<Splitter> {
        let nfc = match tokenizer.get_normalizer() {
            None => false,
            Some(normalizer) => {
                let json = serde_json::to_value(normalizer).ok()?;
                if json["type"] != "NFC" {
                    return None;
                }
                true
            }
        };
        let pre = serde_json::to_value(tokenizer.get_pre_tokenizer()?).ok()?;
        if pre["type"] != "Sequence" {
            return None;
        }
        let [split, byte_level] = pre["pretokenizers"].as_array()?.as_slice() else {
            return None;
        };
        let supported_split =
            split["type"] == "Split" && split["behavior"] == "Isolated" && split["invert"] == false;
        let supported_byte_level = byte_level["type"] == "ByteLevel"
            && byte_level["add_prefix_space"] == false
            && byte_level["use_regex"] == false;
        if !supported_split || !supported_byte_level {
            return None;
        }
        let regex = SysRegex::new(split["pattern"]["Regex"].as_str()?).ok()?;
        let contents: Vec<String> = tokenizer
            .get_added_tokens_decoder()
            .values()
            .map(|t| t.content.clone())
            .filter(|c| !c.is_empty())
            .collect();
        let added = if contents.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&contents).ok()?)
        };
        Some(Splitter {
            regex,
            nfc,
            added,
            alphabet: byte_level_alphabet(),
        })
    }

    /// Calls `word` with each pre-tokenized word of `text`, in order, as a slice of the
    /// normalized text (before the byte-level mapping). `buffer` holds the normalized text when
    /// normalization changes it. Returns `false`, without calling `word`, when the text holds an
    /// added token: the tokenizer's full pipeline must encode it.
    pub fn split<'b>(
        &self,
        text: &'b str,
        buffer: &'b mut String,
        mut word: impl FnMut(&str),
    ) -> bool {
        if self.contains_added(text) {
            return false;
        }
        let normalized: &str = if self.nfc && !is_nfc(text) {
            use unicode_normalization_alignments::UnicodeNormalization;
            buffer.clear();
            buffer.extend(text.nfc().map(|(c, _)| c));
            if self.contains_added(buffer) {
                return false;
            }
            buffer
        } else {
            text
        };
        // `Split` with `Isolated`: every match and every gap between matches is a word; empty
        // ones are dropped, as `PreTokenizedString::split` drops them.
        let mut previous = 0;
        for (start, end) in self.regex.find_iter(normalized) {
            if previous < start {
                word(&normalized[previous..start]);
            }
            if start < end {
                word(&normalized[start..end]);
            }
            previous = end;
        }
        if previous < normalized.len() {
            word(&normalized[previous..]);
        }
        true
    }

    /// The string the BPE model tokenizes for `word`: its UTF-8 bytes through the byte-level
    /// alphabet (GPT-2's `bytes_to_unicode`).
    pub fn model_input(&self, word: &str, out: &mut String) {
        out.clear();
        out.extend(word.bytes().map(|b| self.alphabet[b as usize]));
    }

    fn contains_added(&self, text: &str) -> bool {
        self.added.as_ref().is_some_and(|a| a.is_match(text))
    }
}

/// Whether NFC leaves `text` unchanged. The quick check of `unicode-normalization` decides
/// almost every text; a `Maybe` is settled by normalizing with the tokenizer's tables.
fn is_nfc(text: &str) -> bool {
    if text.is_ascii() {
        return true;
    }
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => true,
        IsNormalized::No => false,
        IsNormalized::Maybe => {
            use unicode_normalization_alignments::UnicodeNormalization;
            text.nfc().map(|(c, _)| c).eq(text.chars())
        }
    }
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 to
/// U+0100 and up, in byte order.
pub fn byte_level_alphabet() -> [char; 256] {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut next = 256u32;
    let mut alphabet = ['\0'; 256];
    for (b, slot) in alphabet.iter_mut().enumerate() {
        let b = b as u32;
        let code = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or('\u{fffd}');
    }
    alphabet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_is_gpt2s() {
        let alphabet = byte_level_alphabet();
        assert_eq!(alphabet[b' ' as usize], 'Ġ');
        assert_eq!(alphabet[b'\n' as usize], 'Ċ');
        assert_eq!(alphabet[b'a' as usize], 'a');
        assert_eq!(alphabet[0], 'Ā');
        let distinct: std::collections::HashSet<_> = alphabet.iter().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn nfc_check() {
        assert!(is_nfc("plain ascii"));
        assert!(is_nfc("床前明月光"));
        assert!(is_nfc("Caf\u{e9}"));
        assert!(!is_nfc("Cafe\u{301}"));
    }
}
