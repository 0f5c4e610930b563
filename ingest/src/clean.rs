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
/// marks removed, surrounding whitespace trimmed.
pub fn clean(text: &str) -> String {
    let stripped: std::borrow::Cow<str> = if needs_strip(text.as_bytes()) {
        text.chars()
            .filter(|&c| !removed(c))
            .collect::<String>()
            .into()
    } else {
        text.into()
    };
    let trimmed = stripped.trim();
    if trimmed.chars().all(nfc_stable) || is_nfc_quick(trimmed.chars()) == IsNormalized::Yes {
        trimmed.to_owned()
    } else {
        // Normalisation can expose new leading/trailing whitespace only in pathological
        // inputs; trim again to keep `clean` idempotent.
        trimmed.nfc().collect::<String>().trim().to_owned()
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
    c < '\u{300}'
        || NFC_STABLE[1..]
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&c))
}

fn removed(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}'
}

/// A byte scan for what [`removed`] removes: C0 controls but newline and tab, DEL, C1 controls
/// (UTF-8 `C2 80`..`C2 9F`) and U+FEFF (`EF BB BF`). Most texts have none and are not copied.
fn needs_strip(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\n' | b'\t' => false,
        0..0x20 | 0x7F => true,
        0xC2 => bytes.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n)),
        0xEF => bytes.get(i + 1) == Some(&0xBB) && bytes.get(i + 2) == Some(&0xBF),
        _ => false,
    })
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
    match whatlang::detect(&text[..end]) {
        Some(info) if info.is_reliable() => iso639_1(info.lang()),
        _ => "und",
    }
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
}
