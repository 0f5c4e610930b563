//! Cleaning and language identification of one document. Pure functions: the same text always
//! gives the same result, which determinism across tasks relies on.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Why a record did not become a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Empty,
    TooShort,
}

/// NFC, control characters removed (newline and tab kept; `\r\n` becomes `\n`), byte-order
/// marks removed, surrounding whitespace trimmed. Borrows from `text` when only trimming was
/// needed (most texts).
pub fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let (strip, stable) = scan(text);
    let stripped: Cow<str> = if strip {
        text.chars()
            .filter(|&c| !removed(c))
            .collect::<String>()
            .into()
    } else {
        text.into()
    };
    let trimmed = stripped.trim();
    // Removing characters never makes the rest less stable.
    if stable || is_nfc_quick(trimmed.chars()) == IsNormalized::Yes {
        match stripped {
            Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
            Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
        }
    } else {
        // Normalisation can expose new leading/trailing whitespace only in pathological
        // inputs; trim again to keep `clean` idempotent.
        Cow::Owned(trimmed.nfc().collect::<String>().trim().to_owned())
    }
}

/// Blocks of starters (canonical combining class 0) that NFC leaves alone whatever surrounds
/// them (NFC_Quick_Check = Yes): ASCII and Latin-1 to the combining diacritics, common
/// punctuation, CJK and kana, Hangul syllables, full-width forms. A text made only of these is
/// in NFC without the per-character table lookups of the full quick check (which measured as
/// an eighth of ingest time on Chinese text). The test below checks every character.
const NFC_STABLE: [(char, char); 10] = [
    ('\u{0}', '\u{2ff}'),
    ('\u{2010}', '\u{2027}'),
    ('\u{2030}', '\u{205e}'),
    ('\u{3000}', '\u{3029}'),
    ('\u{3030}', '\u{3098}'),
    ('\u{309d}', '\u{30ff}'),
    ('\u{3400}', '\u{4dbf}'),
    ('\u{4e00}', '\u{9fff}'),
    ('\u{ac00}', '\u{d7a3}'),
    ('\u{ff01}', '\u{ffef}'),
];

#[inline]
fn nfc_stable(c: char) -> bool {
    // The two blocks most text is made of, before the table.
    c < '\u{300}'
        || ('\u{4e00}'..='\u{9fff}').contains(&c)
        || NFC_STABLE[1..]
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&c))
}

fn removed(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}'
}

/// One pass over the characters (it replaced a byte scan followed by a character scan):
/// whether any is [`removed`], and whether all are [`nfc_stable`].
fn scan(text: &str) -> (bool, bool) {
    let (mut strip, mut stable) = (false, true);
    for c in text.chars() {
        strip |= removed(c);
        stable &= nfc_stable(c);
    }
    (strip, stable)
}

/// Checks a cleaned text against the length rule.
pub fn check_length(text: &str, min_chars: usize) -> Result<(), DropReason> {
    if text.is_empty() {
        return Err(DropReason::Empty);
    }
    if min_chars > 1 && text.chars().take(min_chars).count() < min_chars {
        return Err(DropReason::TooShort);
    }
    Ok(())
}

/// How much text language identification looks at: enough to be sure, bounded so that long
/// documents cost no more than short ones.
const LANG_PREFIX_BYTES: usize = 2048;

/// ISO 639-1 code of the text's language, or `und` when whatlang is not confident.
pub fn detect_lang(text: &str) -> &'static str {
    let mut end = text.len().min(LANG_PREFIX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = &text[..end];
    if han_only(prefix) {
        return "zh";
    }
    match whatlang::detect(prefix) {
        Some(info) if info.is_reliable() => iso639_1(info.lang()),
        _ => "und",
    }
}

/// Whether whatlang's answer for `text` is certain to be Chinese with full confidence, found
/// without its scan of every character through 25 script tests (a tenth of ingest time on
/// Chinese text). whatlang counts each character in the first script that claims it and takes
/// the script with the highest count; Han characters are its "Mandarin", and it files
/// full-width punctuation (`，` `。`…) under Hangul. So when every character is Han, full-width
/// punctuation or in no script at all, and Han characters outnumber the full-width ones,
/// whatlang picks Mandarin, sees no kana, and answers Chinese at confidence 1. The tests check
/// the three character sets against whatlang itself, character by character.
fn han_only(text: &str) -> bool {
    let (mut han, mut full_width) = (0usize, 0usize);
    for c in text.chars() {
        if is_han(c) {
            han += 1;
        } else if is_full_width_punctuation(c) {
            full_width += 1;
        } else if !scriptless(c) {
            return false;
        }
    }
    han > full_width
}

/// whatlang's Mandarin script (its `is_mandarin`).
#[inline]
fn is_han(c: char) -> bool {
    matches!(c,
        '\u{4E00}'..='\u{9FCC}'
        | '\u{3400}'..='\u{4DB5}'
        | '\u{2E80}'..='\u{2E99}'
        | '\u{2E9B}'..='\u{2EF3}'
        | '\u{2F00}'..='\u{2FD5}'
        | '\u{3005}'
        | '\u{3007}'
        | '\u{3021}'..='\u{3029}'
        | '\u{3038}'..='\u{303B}'
        | '\u{F900}'..='\u{FA6D}'
        | '\u{FA70}'..='\u{FAD9}'
    )
}

/// Characters whatlang counts in no script: ASCII digits, punctuation and controls (its stop
/// characters), general punctuation, CJK punctuation.
const SCRIPTLESS: [(char, char); 6] = [
    ('\u{0}', '\u{40}'),
    ('\u{5B}', '\u{60}'),
    ('\u{7B}', '\u{7E}'),
    ('\u{2000}', '\u{206F}'),
    ('\u{3000}', '\u{3004}'),
    ('\u{3008}', '\u{3020}'),
];

/// Full-width punctuation, which whatlang counts as Hangul.
#[inline]
fn is_full_width_punctuation(c: char) -> bool {
    matches!(c,
        '\u{FF01}'..='\u{FF0F}'
        | '\u{FF1A}'..='\u{FF20}'
        | '\u{FF3B}'..='\u{FF40}'
        | '\u{FF5B}'..='\u{FF65}'
    )
}

#[inline]
fn scriptless(c: char) -> bool {
    SCRIPTLESS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// whatlang speaks ISO 639-3; the documents contract speaks ISO 639-1.
pub fn iso639_1(lang: whatlang::Lang) -> &'static str {
    use whatlang::Lang::*;
    match lang {
        Epo => "eo",
        Eng => "en",
        Rus => "ru",
        Cmn => "zh",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Ben => "bn",
        Fra => "fr",
        Deu => "de",
        Ukr => "uk",
        Kat => "ka",
        Ara => "ar",
        Hin => "hi",
        Jpn => "ja",
        Heb => "he",
        Yid => "yi",
        Pol => "pl",
        Amh => "am",
        Jav => "jv",
        Kor => "ko",
        Nob => "nb",
        Dan => "da",
        Swe => "sv",
        Fin => "fi",
        Tur => "tr",
        Nld => "nl",
        Hun => "hu",
        Ces => "cs",
        Ell => "el",
        Bul => "bg",
        Bel => "be",
        Mar => "mr",
        Kan => "kn",
        Ron => "ro",
        Slv => "sl",
        Hrv => "hr",
        Srp => "sr",
        Mkd => "mk",
        Lit => "lt",
        Lav => "lv",
        Est => "et",
        Tam => "ta",
        Vie => "vi",
        Urd => "ur",
        Tha => "th",
        Guj => "gu",
        Uzb => "uz",
        Pan => "pa",
        Aze => "az",
        Ind => "id",
        Tel => "te",
        Pes => "fa",
        Mal => "ml",
        Ori => "or",
        Mya => "my",
        Nep => "ne",
        Sin => "si",
        Khm => "km",
        Tuk => "tk",
        Aka => "ak",
        Zul => "zu",
        Sna => "sn",
        Afr => "af",
        Lat => "la",
        Slk => "sk",
        Cat => "ca",
        Tgl => "tl",
        Hye => "hy",
        Cym => "cy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_controls_and_normalises() {
        assert_eq!(clean("  a\u{0}b\r\nc\td\u{7}\u{feff} "), "ab\nc\td");
        // e + combining acute -> é (NFC)
        assert_eq!(clean("Caf\u{65}\u{301}"), "Caf\u{e9}");
        assert_eq!(clean(&clean("x\u{301}\u{85}y")), clean("x\u{301}\u{85}y"));
    }

    #[test]
    fn nfc_stable_blocks_are_starters_that_nfc_keeps() {
        use unicode_normalization::char::canonical_combining_class;
        for &(lo, hi) in &NFC_STABLE {
            for c in lo..=hi {
                assert!(nfc_stable(c));
                assert_eq!(canonical_combining_class(c), 0, "{:04X}", c as u32);
                assert_eq!(
                    is_nfc_quick(std::iter::once(c)),
                    IsNormalized::Yes,
                    "{:04X}",
                    c as u32
                );
            }
        }
        assert!(!nfc_stable('\u{301}'));
        assert!(!nfc_stable('\u{3099}'));
    }

    #[test]
    fn length_rule() {
        assert_eq!(check_length("", 5), Err(DropReason::Empty));
        assert_eq!(check_length("abcd", 5), Err(DropReason::TooShort));
        assert_eq!(check_length("春眠不觉晓", 5), Ok(()));
    }

    #[test]
    fn languages() {
        assert_eq!(
            detect_lang(
                "The river runs past the old mill, and the children walk along it to school every morning."
            ),
            "en"
        );
        assert_eq!(
            detect_lang("床前明月光，疑是地上霜。举头望明月，低头思故乡。"),
            "zh"
        );
        assert_eq!(detect_lang("ok"), "und");
    }

    /// `han_only` decides for whatlang only where whatlang's own character classes agree.
    #[test]
    fn han_and_scriptless_characters_are_whatlangs() {
        use whatlang::{Script, detect_script};
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let script = detect_script(c.encode_utf8(&mut [0; 4]));
            if is_han(c) {
                assert_eq!(script, Some(Script::Mandarin), "{:04X}", c as u32);
            } else if is_full_width_punctuation(c) {
                assert_eq!(script, Some(Script::Hangul), "{:04X}", c as u32);
            } else if scriptless(c) {
                assert_eq!(script, None, "{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn the_han_shortcut_agrees_with_whatlang() {
        let texts = [
            "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。",
            "《静夜思》——李白（701年—762年）",
            "第1章 「引子」…… 2024年",
            "日本語のテキストです。漢字もある。",
            "漢字とカナ",
            "中文 and English mixed text here",
            "한국어 텍스트 中文",
            "12345 ,.!?",
            "",
            "　中　",
            "中，",
            "中，。",
            "中中，。",
            "，。！",
        ];
        for text in texts {
            let expected = match whatlang::detect(text) {
                Some(info) if info.is_reliable() => iso639_1(info.lang()),
                _ => "und",
            };
            assert_eq!(detect_lang(text), expected, "{text}");
            if han_only(text) {
                assert_eq!(expected, "zh", "{text}");
            }
        }
        assert!(han_only("床前明月光，疑是地上霜。"));
        assert!(!han_only("中，"), "a tie is left to whatlang");
        assert!(!han_only("漢字とカナ"));
        assert!(!han_only("12345"));
    }
}
