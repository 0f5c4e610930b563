//! Plain text and HTML files: one document per file.

use std::io::Read;
use std::ops::ControlFlow;

use super::{FieldSpec, Record, Reject, Sink, open, raw_text, stream_error};
use crate::config::Format;
use crate::error::Location;
use crate::plan::InputFile;

pub(super) fn read_document(
    file: &InputFile,
    spec: &FieldSpec,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    let mut bytes = Vec::with_capacity(file.size as usize);
    let read = open(file).and_then(|mut reader| reader.read_to_end(&mut bytes));
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
