//! JSON Lines and JSON files. Records are visited field by field: only the text, id and kept
//! fields are materialised, everything else is skipped without allocation.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{FieldSpec, Record, Reject, Sink, open, raw_text, stream_error};
use crate::error::Location;
use crate::plan::InputFile;

/// The fields of one record that the spec asks for.
struct Fields {
    text: Vec<Option<Value>>,
    id: Option<Value>,
    meta: Vec<Option<String>>,
}

struct RecordSeed<'a>(&'a FieldSpec);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Result<Fields, String>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

fn not_object<T>(found: &str) -> Result<T, String> {
    Err(format!("expected a JSON object, found {found}"))
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Result<Fields, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let spec = self.0;
        let text_fields = spec.text.fields();
        let mut fields = Fields {
            text: vec![None; text_fields.len()],
            id: None,
            meta: vec![None; spec.meta_len],
        };
        while let Some(Key(key)) = map.next_key::<Key>()? {
            let text_slot = text_fields.iter().position(|f| *f == key);
            let is_id = spec.id.as_deref() == Some(&*key);
            let keep_slot = spec
                .keep
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, slot)| *slot);
            if text_slot.is_none() && !is_id && keep_slot.is_none() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Value = map.next_value()?;
            if let Some(slot) = keep_slot {
                fields.meta[slot] = match &value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                };
            }
            if is_id {
                fields.id = Some(value.clone());
            }
            if let Some(slot) = text_slot {
                fields.text[slot] = Some(value);
            }
        }
        Ok(Ok(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("expected a JSON object, found an array".into()))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(not_object("a string"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(not_object("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(not_object("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(not_object("a number"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(not_object("a boolean"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(not_object("null"))
    }
}

/// A text value: a string, or a list of strings (lines); null counts as empty.
fn text_of(field: &str, value: Value, out: &mut String) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) => {
            push_line(out, &s);
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => push_line(out, &s),
                    Value::Null => {}
                    other => {
                        return Err(format!(
                            "field `{field}` holds a list with a non-text item: {other}"
                        ));
                    }
                }
            }
            Ok(())
        }
        other => Err(format!(
            "field `{field}` is not text (found {})",
            kind(&other)
        )),
    }
}

fn push_line(out: &mut String, line: &str) {
    if line.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(line);
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A parsed record: its text, its id value and its kept metadata columns.
pub type Parsed = (String, Option<String>, Vec<Option<String>>);

/// Parses one JSON record into (text, id value, metadata); errors are reasons for a reject.
pub fn parse_record(json: &str, spec: &FieldSpec) -> Result<Parsed, String> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let fields = RecordSeed(spec)
        .deserialize(&mut deserializer)
        .map_err(|err| format!("malformed JSON: {err}"))??;
    deserializer
        .end()
        .map_err(|err| format!("malformed JSON: {err}"))?;
    finish(fields, spec)
}

fn finish(fields: Fields, spec: &FieldSpec) -> Result<Parsed, String> {
    let names = spec.text.fields();
    let mut text = String::new();
    for (name, value) in names.iter().zip(fields.text) {
        match value {
            Some(value) => text_of(name, value, &mut text)?,
            None => return Err(format!("missing field `{name}`")),
        }
    }
    let id = match (&spec.id, fields.id) {
        (None, _) => None,
        (Some(name), None) | (Some(name), Some(Value::Null)) => {
            return Err(format!("missing id field `{name}`"));
        }
        (Some(_), Some(Value::String(s))) => Some(s),
        (Some(_), Some(Value::Number(n))) => Some(n.to_string()),
        (Some(name), Some(other)) => {
            return Err(format!(
                "id field `{name}` is {}, not a string or number",
                kind(&other)
            ));
        }
    };
    Ok((text, id, fields.meta))
}

pub(super) fn read_jsonl(
    file: &InputFile,
    spec: &FieldSpec,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    let reader = match open(file) {
        Ok(reader) => reader,
        Err(err) => return whole_file_reject(sink, format!("cannot open: {err}"), file.size),
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut number = 0u64;
    loop {
        line.clear();
        let read = match reader.read_until(b'\n', &mut line) {
            Ok(0) => return ControlFlow::Continue(()),
            Ok(read) => read,
            Err(err) => {
                // The stream broke mid-line: what was read of the line is garbage.
                let location = Location::Offset {
                    offset: offset + line.len() as u64,
                };
                let reason = format!("{} (after line {number})", stream_error(file, &err));
                let raw = (!line.is_empty()).then(|| raw_text(&line));
                return sink.reject(Reject {
                    location,
                    reason,
                    raw,
                    raw_bytes: line.len() as u64,
                });
            }
        };
        number += 1;
        let location = Location::Line {
            line: number,
            offset,
        };
        offset += read as u64;
        let body = trim_newline(&line);
        if body.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = match std::str::from_utf8(body) {
            Ok(text) => text,
            Err(err) => {
                let reason = format!("invalid UTF-8 at byte {} of the line", err.valid_up_to());
                sink.reject(Reject {
                    location,
                    reason,
                    raw: Some(raw_text(body)),
                    raw_bytes: read as u64,
                })?;
                continue;
            }
        };
        match parse_record(text, spec) {
            Ok((text_value, id_value, meta)) => sink.record(Record {
                index: number,
                text: text_value,
                id_value,
                meta,
                raw_bytes: read as u64,
            })?,
            Err(reason) => sink.reject(Reject {
                location,
                reason,
                raw: Some(raw_text(body)),
                raw_bytes: read as u64,
            })?,
        }
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn whole_file_reject(sink: &mut dyn Sink, reason: String, bytes: u64) -> ControlFlow<()> {
    sink.reject(Reject {
        location: Location::File,
        reason,
        raw: None,
        raw_bytes: bytes,
    })
}

/// Signals that the sink asked to stop, through serde's error channel.
const STOP: &str = "\u{0}tinyforge-stop";

struct ArrayVisitor<'a> {
    spec: &'a FieldSpec,
    sink: &'a mut dyn Sink,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0u64;
        // One element at a time: memory is bounded by the largest record, not the file.
        while let Some(value) = seq.next_element::<Value>()? {
            if element(self.spec, self.sink, index, value).is_break() {
                return Err(serde::de::Error::custom(STOP));
            }
            index += 1;
        }
        Ok(())
    }
}

fn element(spec: &FieldSpec, sink: &mut dyn Sink, index: u64, value: Value) -> ControlFlow<()> {
    // The size of the record as compact JSON stands in for its bytes in the file.
    let raw = value.to_string();
    let raw_bytes = raw.len() as u64;
    match extract_value(value, spec) {
        Ok((text, id_value, meta)) => sink.record(Record {
            index,
            text,
            id_value,
            meta,
            raw_bytes,
        }),
        Err(reason) => sink.reject(Reject {
            location: Location::Record { record: index },
            reason,
            raw: Some(raw_text(raw.as_bytes())),
            raw_bytes,
        }),
    }
}

/// The fields of an already parsed record.
fn extract_value(value: Value, spec: &FieldSpec) -> Result<Parsed, String> {
    let Value::Object(mut map) = value else {
        return Err(format!("expected a JSON object, found {}", kind(&value)));
    };
    let names = spec.text.fields();
    let mut fields = Fields {
        text: vec![None; names.len()],
        id: None,
        meta: vec![None; spec.meta_len],
    };
    for (name, slot) in &spec.keep {
        fields.meta[*slot] = match map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
    }
    if let Some(id) = &spec.id {
        fields.id = map.get(id).cloned();
    }
    for (slot, name) in names.iter().enumerate() {
        fields.text[slot] = map.remove(*name);
    }
    finish(fields, spec)
}

pub(super) fn read_json(
    file: &InputFile,
    spec: &FieldSpec,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    let reader = match open(file) {
        Ok(reader) => reader,
        Err(err) => return whole_file_reject(sink, format!("cannot open: {err}"), file.size),
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    // Peek at the first non-blank byte: an array of records, or a sequence of objects.
    let first = loop {
        match reader.fill_buf() {
            Ok([]) => return ControlFlow::Continue(()),
            Ok(buf) => {
                let blank = buf
                    .iter()
                    .take_while(|b| {
                        b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF
                    })
                    .count();
                if blank < buf.len() {
                    let first = buf[blank];
                    reader.consume(blank);
                    break first;
                }
                let len = buf.len();
                reader.consume(len);
            }
            Err(err) => return whole_file_reject(sink, stream_error(file, &err), file.size),
        }
    };
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    if first == b'[' {
        let result = serde::Deserializer::deserialize_seq(
            &mut deserializer,
            ArrayVisitor {
                spec,
                sink: &mut *sink,
            },
        )
        .and_then(|()| deserializer.end());
        return match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) if err.to_string().starts_with(STOP) => ControlFlow::Break(()),
            Err(err) => json_error(file, sink, &err),
        };
    }
    for (index, value) in (0u64..).zip(deserializer.into_iter::<Value>()) {
        match value {
            Ok(value) => element(spec, sink, index, value)?,
            Err(err) => return json_error(file, sink, &err),
        }
    }
    ControlFlow::Continue(())
}

fn json_error(file: &InputFile, sink: &mut dyn Sink, err: &serde_json::Error) -> ControlFlow<()> {
    let reason = if err.is_io() {
        let kind =
            if err.to_string().contains("end of file") || err.to_string().contains("incomplete") {
                std::io::ErrorKind::UnexpectedEof
            } else {
                std::io::ErrorKind::Other
            };
        stream_error(file, &std::io::Error::new(kind, err.to_string()))
    } else if err.is_eof() {
        format!("truncated JSON: {err}")
    } else {
        format!("malformed JSON: {err}")
    };
    let location = Location::LineColumn {
        line: err.line() as u64,
        column: err.column() as u64,
    };
    sink.reject(Reject {
        location,
        reason,
        raw: None,
        raw_bytes: 0,
    })
}
