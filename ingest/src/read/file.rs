//! Plain text and HTML files: one document per file.

use std::io::Read;
use std::ops::ControlFlow;

use super::{FieldSpec, Record, Reject, Sink, open, raw_text, stream_error, too_large};
use crate::config::Format;
use crate::error::Location;
use crate::plan::{Compression, InputFile};

pub(super) fn read_document(
    file: &InputFile,
    spec: &FieldSpec,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    let limit = spec.max_record_bytes;
    let mut bytes = Vec::with_capacity(file.size.min(limit) as usize);
    // One byte past the limit tells a document over it, without reading (or holding) the rest.
    let read = open(file).and_then(|reader| reader.take(limit + 1).read_to_end(&mut bytes));
    if let Err(err) = read {
        let location = Location::Offset {
            offset: bytes.len() as u64,
        };
        return sink.reject(Reject {
            location,
            reason: stream_error(file, &err),
            raw: None,
            raw_bytes: file.size,
        });
    }
    if bytes.len() as u64 > limit {
        // A plain file's size is known; a compressed one was read only this far.
        let exact = matches!(file.compression, Compression::None);
        let size = if exact { file.size } else { bytes.len() as u64 };
        return sink.reject(Reject {
            location: Location::File,
            reason: too_large(size, exact, limit),
            raw: Some(raw_text(&bytes)),
            raw_bytes: file.size,
        });
    }
    let raw_bytes = bytes.len() as u64;
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let text = match simdutf8::compat::from_utf8(body) {
        Ok(text) => text,
        Err(err) => {
            let location = Location::Offset {
                offset: err.valid_up_to() as u64,
            };
            let reason = "invalid UTF-8".to_owned();
            return sink.reject(Reject {
                location,
                reason,
                raw: Some(raw_text(body)),
                raw_bytes,
            });
        }
    };
    let text = match file.format {
        Format::Html if let Err(depth) = nesting_depth(text, spec.max_html_depth) => {
            return sink.reject(Reject {
                location: Location::File,
                reason: format!(
                    "HTML elements nested over {depth} deep, past max_html_depth = {} (parsing \
                     time grows with the square of the depth)",
                    spec.max_html_depth
                ),
                raw: Some(raw_text(body)),
                raw_bytes,
            });
        }
        Format::Html => match html_to_text(text) {
            Ok(text) => text,
            Err(reason) => {
                return sink.reject(Reject {
                    location: Location::File,
                    reason,
                    raw: Some(raw_text(body)),
                    raw_bytes,
                });
            }
        },
        _ => text.to_owned(),
    };
    let mut meta = vec![None; spec.meta_len];
    for (name, slot) in &spec.keep {
        if name == "path" {
            meta[*slot] = Some(file.rel.clone());
        }
    }
    sink.record(Record {
        index: 0,
        text: &text,
        id_value: None,
        meta: &meta,
        raw_bytes,
    })
}

/// HTML to plain text: scripts, styles and the head dropped, block elements on their own
/// lines, no wrapping, no link decorations.
pub fn html_to_text(html: &str) -> Result<String, String> {
    html2text::config::plain_no_decorate()
        .string_from_read(html.as_bytes(), 1_000_000)
        .map_err(|err| format!("cannot parse HTML: {err}"))
}

/// Elements whose end tag is never written (void) or may be left out: an HTML parser closes
/// them itself, so they do not deepen its stack of open elements.
const NOT_NESTING: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead",
    "tbody", "tfoot", "colgroup", "caption", "rp", "rt", "html", "head", "body",
];

/// Elements whose content is text, not markup, up to their end tag.
const RAW_TEXT: &[&str] = &["script", "style", "textarea", "title", "xmp", "noscript"];

/// How deep the elements of `html` nest, as the parser's stack of open elements would hold
/// them, in one linear scan of the tags; `Err(depth)` as soon as it passes `max`. Elements
/// that close themselves (void, self-closing, optional end tags) do not count, and the
/// content of script and style is skipped.
pub(super) fn nesting_depth(html: &str, max: usize) -> Result<usize, usize> {
    let bytes = html.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while let Some(found) = memchr::memchr(b'<', &bytes[at..]) {
        at += found + 1;
        if bytes[at..].starts_with(b"!--") {
            // A comment, to its end.
            at = memchr::memmem::find(&bytes[at..], b"-->").map_or(bytes.len(), |end| at + end + 3);
            continue;
        }
        let closing = bytes.get(at) == Some(&b'/');
        let name_start = at + usize::from(closing);
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b':')
            .count();
        if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
            // `<!doctype`, `<?xml`, or a `<` of text.
            continue;
        }
        let name = html[name_start..name_start + name_len].to_ascii_lowercase();
        let end =
            memchr::memchr(b'>', &bytes[name_start..]).map_or(bytes.len(), |e| name_start + e);
        let self_closing = end > 0 && bytes.get(end - 1) == Some(&b'/');
        at = (end + 1).min(bytes.len());
        if NOT_NESTING.contains(&name.as_str()) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
            continue;
        }
        if RAW_TEXT.contains(&name.as_str()) {
            // Its text may hold any `<`: skip to its end tag.
            let close = format!("</{name}");
            at = find_ascii_case_insensitive(&bytes[at..], close.as_bytes())
                .map_or(bytes.len(), |e| at + e);
            continue;
        }
        if self_closing {
            continue;
        }
        depth += 1;
        deepest = deepest.max(depth);
        if depth > max {
            return Err(depth);
        }
    }
    Ok(deepest)
}

fn find_ascii_case_insensitive(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::nesting_depth;

    #[test]
    fn nesting_counts_what_a_parser_keeps_open() {
        assert_eq!(
            nesting_depth("<div><div><span>a</span></div></div>", 10),
            Ok(3)
        );
        // Void, self-closing and optional-end elements do not nest; comments and script text
        // are not markup.
        let page = "<!doctype html><html><body><p>a<p>b<br><img src=x/><ul><li>1<li>2</ul>\
                    <!-- <div><div> --><script>if (a<b) { x = '<div>' }</script><svg/></body>";
        assert_eq!(nesting_depth(page, 10), Ok(1));
        let deep = "<div>".repeat(600);
        assert_eq!(nesting_depth(&deep, 512), Err(513));
        assert_eq!(nesting_depth("a < b and c<d", 10), Ok(1));
    }
}
