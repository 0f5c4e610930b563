//! Cleaning and language identification of one document. Pure functions: the same text always
//! gives the same result, which determinism across tasks relies on.

use std::borrow::Cow;
use std::sync::LazyLock;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Why a record did not become a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Empty,
    TooShort,
}

/// A cleaned text, and what cleaning learned about its language on the way.
#[derive(Debug)]
pub struct Cleaned<'a> {
    pub text: Cow<'a, str>,
    /// Whether [`han_only`] holds for the text's language prefix, when the scan found out.
    han_only: Option<bool>,
}

impl Cleaned<'_> {
    /// The text's language, as [`detect_lang`] gives it.
    pub fn lang(&self) -> &'static str {
        match self.han_only {
            Some(true) => "zh",
            Some(false) => whatlang_lang(lang_prefix(&self.text)),
            None => detect_lang(&self.text),
        }
    }
}

/// NFC, control characters removed (newline and tab kept; `\r\n` becomes `\n`), byte-order
/// marks removed, surrounding whitespace trimmed. Borrows from `text` when only trimming was
/// needed (most texts).
pub fn clean(text: &str) -> Cow<'_, str> {
    clean_document(text).text
}

/// [`clean`], and on the way the language facts of [`detect_lang`]'s prefix: most texts
/// need one pass over their bytes for both.
pub fn clean_document(text: &str) -> Cleaned<'_> {
    // Trimming first is safe: the removed characters and the ones NFC may change that trim
    // takes away are all whitespace, so stripping or normalising them first would leave the
    // same trimmed text.
    let trimmed = text.trim();
    let scan = Scan::of(trimmed, lang_prefix(trimmed).len());
    if scan.flags & (REMOVED | UNSTABLE) == 0 {
        return Cleaned {
            text: Cow::Borrowed(trimmed),
            han_only: Some(scan.han_only()),
        };
    }
    let stripped: Cow<str> = if scan.flags & REMOVED != 0 {
        text.chars()
            .filter(|&c| !removed(c))
            .collect::<String>()
            .into()
    } else {
        text.into()
    };
    let trimmed = stripped.trim();
    let text = if is_nfc_quick(trimmed.chars()) == IsNormalized::Yes {
        match stripped {
            Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
            Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
        }
    } else {
        // Normalisation can expose new leading/trailing whitespace only in pathological
        // inputs; trim again to keep `clean` idempotent.
        Cow::Owned(trimmed.nfc().collect::<String>().trim().to_owned())
    };
    Cleaned {
        text,
        han_only: None,
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

/// What a character is to cleaning and to [`han_only`], as bits.
const REMOVED: u8 = 1;
const UNSTABLE: u8 = 2;
const HAN: u8 = 4;
const FULL_WIDTH: u8 = 8;
/// In a whatlang script other than Han (so [`han_only`] does not hold).
const OTHER_SCRIPT: u8 = 16;

fn char_flags(c: char) -> u8 {
    let mut flags = 0;
    if removed(c) {
        flags |= REMOVED;
    }
    if !nfc_stable(c) {
        flags |= UNSTABLE;
    }
    if is_han(c) {
        flags |= HAN;
    } else if is_full_width_punctuation(c) {
        flags |= FULL_WIDTH;
    } else if !scriptless(c) {
        flags |= OTHER_SCRIPT;
    }
    flags
}

/// [`char_flags`] of every character of the basic multilingual plane (64 KiB, built once):
/// a table lookup per character instead of a dozen range tests. Here a character is in no
/// script exactly when whatlang counts it in none (asked of whatlang itself, which takes a few
/// milliseconds once), so texts with symbols such as `□` or `·` still take the Han shortcut.
static BMP_FLAGS: LazyLock<Box<[u8; 0x10000]>> = LazyLock::new(|| {
    let mut table = Box::new([0u8; 0x10000]);
    let mut utf8 = [0u8; 4];
    for (cp, flags) in (0u32..).zip(table.iter_mut()) {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        *flags = char_flags(c);
        if *flags & OTHER_SCRIPT != 0 && whatlang::detect_script(c.encode_utf8(&mut utf8)).is_none()
        {
            *flags &= !OTHER_SCRIPT;
        }
    }
    table
});

/// One pass over a text's bytes: the union of its characters' flags, and the counts
/// [`han_only`] needs over its first `prefix` bytes.
struct Scan {
    flags: u8,
    prefix_flags: u8,
    han: usize,
    full_width: usize,
}

impl Scan {
    fn of(text: &str, prefix: usize) -> Scan {
        let table: &[u8; 0x10000] = &BMP_FLAGS;
        let bytes = text.as_bytes();
        let mut scan = Scan {
            flags: 0,
            prefix_flags: 0,
            han: 0,
            full_width: 0,
        };
        let mut at = 0;
        while at < prefix {
            let (flags, len) = next_char_flags(table, bytes, at);
            scan.prefix_flags |= flags;
            scan.han += usize::from(flags & HAN != 0);
            scan.full_width += usize::from(flags & FULL_WIDTH != 0);
            at += len;
        }
        scan.flags = scan.prefix_flags;
        while at < bytes.len() {
            let (flags, len) = next_char_flags(table, bytes, at);
            scan.flags |= flags;
            at += len;
        }
        scan
    }

    fn han_only(&self) -> bool {
        self.prefix_flags & OTHER_SCRIPT == 0 && self.han > self.full_width
    }
}

/// The flags and byte length of the character of (valid UTF-8) `bytes` starting at `at`.
#[inline(always)]
fn next_char_flags(table: &[u8; 0x10000], bytes: &[u8], at: usize) -> (u8, usize) {
    let lead = bytes[at];
    if lead < 0x80 {
        return (table[usize::from(lead)], 1);
    }
    let cont = |k: usize| u32::from(bytes[at + k] & 0x3F);
    if (0xE0..0xF0).contains(&lead) {
        let cp = (u32::from(lead & 0x0F) << 12) | (cont(1) << 6) | cont(2);
        // Most Chinese text: the unified ideographs, without the table's memory traffic.
        if (0x4E00..=0x9FCC).contains(&cp) {
            return (HAN, 3);
        }
        return (table[cp as usize & 0xFFFF], 3);
    }
    if lead < 0xE0 {
        let cp = (u32::from(lead & 0x1F) << 6) | cont(1);
        return (table[cp as usize & 0x7FF], 2);
    }
    let cp = (u32::from(lead & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    let flags = char::from_u32(cp).map_or(UNSTABLE | OTHER_SCRIPT, char_flags);
    (flags, 4)
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

/// The first [`LANG_PREFIX_BYTES`] of `text`, cut at a character boundary.
fn lang_prefix(text: &str) -> &str {
    let mut end = text.len().min(LANG_PREFIX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// ISO 639-1 code of the text's language, or `und` when whatlang is not confident.
pub fn detect_lang(text: &str) -> &'static str {
    let prefix = lang_prefix(text);
    if han_only(prefix) {
        return "zh";
    }
    whatlang_lang(prefix)
}

fn whatlang_lang(prefix: &str) -> &'static str {
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
    Scan::of(text, text.len()).han_only()
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

    /// The byte scan decodes every character and finds the flags the predicates give.
    #[test]
    fn byte_scan_sees_every_character_as_the_predicates_do() {
        let mut text = String::new();
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let one = c.to_string();
            let scan = Scan::of(&one, one.len());
            let expected = match BMP_FLAGS.get(c as usize) {
                Some(&flags) => flags,
                None => char_flags(c),
            };
            assert_eq!(scan.flags, expected, "{:04X}", c as u32);
            assert_eq!(scan.han, usize::from(is_han(c)), "{:04X}", c as u32);
            text.push(c);
            text.push('x');
        }
        // Back to back, with the prefix ending inside the text: still one character at a time.
        let whole = Scan::of(&text, lang_prefix(&text).len());
        assert_eq!(
            whole.flags,
            REMOVED | UNSTABLE | HAN | FULL_WIDTH | OTHER_SCRIPT
        );
        assert_eq!(whole.prefix_flags & HAN, 0);
    }

    #[test]
    fn one_pass_cleaning_agrees_with_clean_then_detect() {
        let texts = [
            "  床前明月光，疑是地上霜。\r\n举头望明月，低头思故乡。 ",
            "\u{2000}中文\u{2001}",
            "\u{85}\u{b} 中文，。\u{c}",
            "\u{0} abc",
            "Caf\u{65}\u{301} au lait, the river runs past the old mill every morning",
            "\u{feff}漢字とカナ",
            "中\u{200b}文",
            "𠀀𠀁 中文",
            "",
            "   ",
        ];
        // The rules one step at a time, and whatlang itself.
        let reference = |text: &str| {
            let stripped: String = text.chars().filter(|&c| !removed(c)).collect();
            let text = stripped.trim().nfc().collect::<String>().trim().to_owned();
            let lang = whatlang_lang(lang_prefix(&text));
            (text, lang)
        };
        let long = "中".repeat(1000) + &" English words here and there".repeat(100);
        for text in texts.iter().copied().chain([long.as_str()]) {
            let cleaned = clean_document(text);
            let (expected, lang) = reference(text);
            assert_eq!(cleaned.text, expected, "{text:?}");
            assert_eq!(cleaned.lang(), lang, "{text:?}");
        }
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
            // The table's "no script" is whatlang's, and the Han shortcut's classes stay apart.
            if let Some(&flags) = BMP_FLAGS.get(c as usize) {
                let classes = flags & (HAN | FULL_WIDTH | OTHER_SCRIPT);
                match script {
                    None => assert_eq!(classes, 0, "{:04X}", c as u32),
                    Some(Script::Mandarin) => assert_eq!(classes, HAN, "{:04X}", c as u32),
                    Some(Script::Hangul) if is_full_width_punctuation(c) => {
                        assert_eq!(classes, FULL_WIDTH, "{:04X}", c as u32)
                    }
                    Some(_) => assert_eq!(classes, OTHER_SCRIPT, "{:04X}", c as u32),
                }
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
            "□□中文·詩",
            "中文 ★ ♪ ① ㊣",
            "中",
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
