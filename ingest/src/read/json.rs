//! JSON Lines and JSON files. Records are visited field by field: only the text, id and kept
//! fields are materialised, everything else is skipped without allocation.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::rc::Rc;

use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::error::Category;

use super::{
    FieldSpec, RAW_LIMIT, Record, Reject, Sink, open, raw_text, stream_error, too_large,
    zstd_decoder,
};
use crate::error::Location;
use crate::plan::{ByteRange, InputFile};

/// The fields of one record that the spec asks for, in buffers a reader reuses from record to
/// record: text fields are decoded straight into their line buffer, without a `Value`.
pub(super) struct Fields {
    /// Per text field of the spec, in its order: the field's lines joined by newlines,
    /// whether the record has the field, and why it is not text.
    text: Vec<String>,
    found: Vec<bool>,
    problem: Vec<Option<String>>,
    /// The text fields joined, when there are several.
    joined: String,
    id: Option<Value>,
    id_text: String,
    meta: Vec<Option<String>>,
}

impl Fields {
    pub(super) fn new(spec: &FieldSpec) -> Fields {
        let n = spec.text_fields.len();
        Fields {
            text: vec![String::new(); n],
            found: vec![false; n],
            problem: vec![None; n],
            joined: String::new(),
            id: None,
            id_text: String::new(),
            meta: vec![None; spec.meta_len],
        }
    }

    fn clear(&mut self) {
        self.text.iter_mut().for_each(String::clear);
        self.found.iter_mut().for_each(|f| *f = false);
        self.problem.iter_mut().for_each(|p| *p = None);
        self.id = None;
        self.meta.iter_mut().for_each(|m| *m = None);
    }

    /// Parses one JSON record into the buffers; errors are reasons for a reject.
    pub(super) fn parse(&mut self, json: &str, spec: &FieldSpec) -> Result<(), String> {
        self.clear();
        let mut deserializer = serde_json::Deserializer::from_str(json);
        RecordSeed { spec, fields: self }
            .deserialize(&mut deserializer)
            .map_err(|err| format!("malformed JSON: {err}"))??;
        deserializer
            .end()
            .map_err(|err| format!("malformed JSON: {err}"))?;
        self.finish(spec)
    }

    /// Takes the fields of an already parsed record.
    fn take_value(&mut self, value: Value, spec: &FieldSpec) -> Result<(), String> {
        self.clear();
        let Value::Object(map) = value else {
            return Err(format!("expected a JSON object, found {}", kind(&value)));
        };
        for (key, value) in map {
            let roles = Roles::of(spec, &key);
            self.apply(&roles, &key, value);
        }
        self.finish(spec)
    }

    /// Stores a field's value in each role it has.
    fn apply(&mut self, roles: &Roles, key: &str, value: Value) {
        if let Some(slot) = roles.text {
            self.text[slot].clear();
            self.found[slot] = true;
            self.problem[slot] = text_of(key, &value, &mut self.text[slot]).err();
        }
        match (roles.keep, roles.id) {
            (Some(slot), true) => {
                self.meta[slot] = meta_text(&value);
                self.id = Some(value);
            }
            (Some(slot), false) => {
                self.meta[slot] = match value {
                    Value::String(s) => Some(s),
                    other => meta_text(&other),
                }
            }
            (None, true) => self.id = Some(value),
            (None, false) => {}
        }
    }

    /// Checks the fields in the spec's order and joins the text.
    fn finish(&mut self, spec: &FieldSpec) -> Result<(), String> {
        let names = &spec.text_fields;
        for (slot, name) in names.iter().enumerate() {
            if let Some(problem) = &self.problem[slot] {
                return Err(problem.clone());
            }
            if !self.found[slot] {
                return Err(format!("missing field `{name}`"));
            }
        }
        if names.len() > 1 {
            self.joined.clear();
            for line in &self.text {
                push_line(&mut self.joined, line);
            }
        }
        self.id_text.clear();
        match (&spec.id, &self.id) {
            (None, _) => {}
            (Some(name), None) | (Some(name), Some(Value::Null)) => {
                return Err(format!("missing id field `{name}`"));
            }
            (Some(_), Some(Value::String(s))) => self.id_text.push_str(s),
            (Some(_), Some(Value::Number(n))) => {
                use std::fmt::Write;
                let _ = write!(self.id_text, "{n}");
            }
            (Some(name), Some(other)) => {
                return Err(format!(
                    "id field `{name}` is {}, not a string or number",
                    kind(other)
                ));
            }
        }
        Ok(())
    }

    /// The record the buffers hold (after a successful parse).
    fn record(&self, spec: &FieldSpec, index: u64, raw_bytes: u64) -> Record<'_> {
        let text = match self.text.as_slice() {
            [one] => one.as_str(),
            _ => self.joined.as_str(),
        };
        Record {
            index,
            text,
            id_value: spec.id.is_some().then_some(self.id_text.as_str()),
            meta: &self.meta,
            raw_bytes,
        }
    }
}

/// The roles of a field name in the spec: part of the text, the id, a kept column.
struct Roles {
    text: Option<usize>,
    id: bool,
    keep: Option<usize>,
}

impl Roles {
    fn of(spec: &FieldSpec, key: &str) -> Roles {
        Roles {
            text: spec.text_fields.iter().position(|f| f == key),
            id: spec.id.as_deref() == Some(key),
            keep: spec
                .keep
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, slot)| *slot),
        }
    }
}

fn meta_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

struct RecordSeed<'a> {
    spec: &'a FieldSpec,
    fields: &'a mut Fields,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Result<(), String>;
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
    type Value = Result<(), String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (spec, fields) = (self.spec, self.fields);
        while let Some(Key(key)) = map.next_key::<Key>()? {
            let roles = Roles::of(spec, &key);
            match roles {
                Roles {
                    text: None,
                    id: false,
                    keep: None,
                } => {
                    map.next_value::<IgnoredAny>()?;
                }
                // Text only (nearly always): decoded into the line buffer directly.
                Roles {
                    text: Some(slot),
                    id: false,
                    keep: None,
                } => {
                    fields.text[slot].clear();
                    fields.found[slot] = true;
                    fields.problem[slot] = None;
                    map.next_value_seed(TextSeed {
                        field: &key,
                        out: &mut fields.text[slot],
                        problem: &mut fields.problem[slot],
                    })?;
                }
                roles => {
                    let value: Value = map.next_value()?;
                    fields.apply(&roles, &key, value);
                }
            }
        }
        Ok(Ok(()))
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

/// A text field's value decoded into its line buffer: a string, a list of strings (lines),
/// or null (empty). Anything else leaves a problem (the same words as [`text_of`]) and is
/// skipped, so that malformed JSON later in the record still wins.
struct TextSeed<'a> {
    field: &'a str,
    out: &'a mut String,
    problem: &'a mut Option<String>,
}

impl TextSeed<'_> {
    fn not_text(self, found: &str) {
        *self.problem = Some(not_text(self.field, found));
    }
}

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("text or a list of text")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        push_line(self.out, v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.not_text("a boolean");
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.not_text("a number");
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.not_text("a number");
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.not_text("a number");
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.not_text("an object");
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element_seed(LineSeed(self.out))? {
            if let (Err(other), None) = (item, &*self.problem) {
                *self.problem = Some(non_text_item(self.field, &other));
            }
        }
        Ok(())
    }
}

/// One item of a text list: a line (or null), else the item as a `Value` for the message.
struct LineSeed<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = Result<(), Value>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = Result<(), Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a line of text")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        push_line(self.0, v);
        Ok(Ok(()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Err(Value::from(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Err(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Err(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Err(Value::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Err(value))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Err(value))
    }
}

/// A text value: a string, or a list of strings (lines); null counts as empty.
fn text_of(field: &str, value: &Value, out: &mut String) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) => {
            push_line(out, s);
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => push_line(out, s),
                    Value::Null => {}
                    other => return Err(non_text_item(field, other)),
                }
            }
            Ok(())
        }
        other => Err(not_text(field, kind(other))),
    }
}

/// Why a text field is not text: the words both the streaming and the `Value` parse use.
fn not_text(field: &str, found: &str) -> String {
    format!("field `{field}` is not text (found {found})")
}

fn non_text_item(field: &str, item: &Value) -> String {
    format!("field `{field}` holds a list with a non-text item: {item}")
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

pub(super) fn read_jsonl(
    file: &InputFile,
    range: Option<ByteRange>,
    spec: &FieldSpec,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    if let Some(range) = range {
        return read_jsonl_range(file, range, spec, sink);
    }
    let reader = match open(file) {
        Ok(reader) => reader,
        Err(err) => return whole_file_reject(sink, format!("cannot open: {err}"), file.size),
    };
    let lines = Lines::new(spec, 0, u64::MAX, true);
    read_lines(file, BufReader::with_capacity(1 << 20, reader), lines, sink)
}

/// The lines of a file that start in `range` of its (decompressed) stream: from the first line
/// start at or after `range.start` (the byte before it is a newline, or it is the stream's
/// start) to the end of the line that holds byte `range.end - 1`, read on past `range.end`
/// (for zstd, into the frames that follow). Ranges that tile a stream read every line exactly
/// once. Reading starts at byte `range.start - 1`: a plain file is read from there, a zstd
/// file decoded from the frame that starts there (see [`ByteRange::zstd_frame`]).
fn read_jsonl_range(
    file: &InputFile,
    range: ByteRange,
    spec: &FieldSpec,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    use std::io::{Read, Seek, SeekFrom};
    let cannot = |sink: &mut dyn Sink, reason: String, at: u64| {
        sink.reject(Reject {
            location: Location::Offset { offset: at },
            reason,
            raw: None,
            raw_bytes: range.end - range.start,
        })
    };
    let from = range.start.saturating_sub(1);
    let mut raw = match file.open_raw() {
        Ok(raw) => raw,
        Err(err) => return whole_file_reject(sink, format!("cannot open: {err}"), file.size),
    };
    let seek = range.zstd_frame.unwrap_or(from);
    if let Err(err) = raw.seek(SeekFrom::Start(seek)) {
        return cannot(
            sink,
            format!("cannot read the file from byte {seek}: {err}"),
            from,
        );
    }
    let reader: Box<dyn Read + Send> = match range.zstd_frame {
        None => Box::new(raw),
        Some(_) => match zstd_decoder(raw) {
            Ok(reader) => reader,
            Err(err) => return cannot(sink, stream_error(file, &err), from),
        },
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut start = range.start;
    if start > 0 {
        // Skip the end of the line the range starts inside (it is the previous range's),
        // counting it without holding it: it may be a line of any size.
        let mut skipped = 0u64;
        match skip_line(&mut reader, &mut skipped) {
            Ok(()) => start = from + skipped,
            Err(err) => {
                // A zstd frame that does not decode: named where the decoder gave up.
                let (reason, at) = match range.zstd_frame {
                    None => (
                        format!("cannot read the file from byte {from}: {err}"),
                        from,
                    ),
                    Some(_) => (stream_error(file, &err), from + skipped),
                };
                return cannot(sink, reason, at);
            }
        }
    }
    if start >= range.end {
        return ControlFlow::Continue(());
    }
    let lines = Lines::new(spec, start, range.end, range.start == 0);
    read_lines(file, reader, lines, sink)
}

/// Reads past the next newline (or to the end), adding the bytes to `skipped`; holds none.
fn skip_line(reader: &mut impl BufRead, skipped: &mut u64) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        let (used, found) = match memchr::memchr(b'\n', buf) {
            Some(end) => (end + 1, true),
            None => (buf.len(), false),
        };
        reader.consume(used);
        *skipped += used as u64;
        if found {
            return Ok(());
        }
    }
}

/// The lines of `reader` (the decompressed stream of `file`) into the sink.
fn read_lines(
    file: &InputFile,
    mut reader: impl BufRead,
    mut lines: Lines<'_>,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    // A line that spans two reads of the buffer is gathered here; the others are parsed
    // where they lie in the buffer.
    let mut partial = Vec::new();
    // A line over `max_record_bytes`: its size so far, while the reader skips to its end
    // (`partial` then keeps only its first RAW_LIMIT bytes, for the reject).
    let mut skipping: Option<u64> = None;
    let limit = lines.spec.max_record_bytes;
    loop {
        // The next line starts in the next range: read no further (it is that range's to read,
        // and to report if the stream breaks in it).
        if lines.offset >= lines.end {
            return ControlFlow::Continue(());
        }
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(err) => {
                // The stream broke mid-line: what was read of the line is garbage.
                let location = Location::Offset {
                    offset: lines.offset + skipping.unwrap_or(partial.len() as u64),
                };
                let reason = match lines.numbered {
                    true => format!("{} (after line {})", stream_error(file, &err), lines.number),
                    false => stream_error(file, &err),
                };
                let raw = (!partial.is_empty()).then(|| raw_text(&partial));
                return sink.reject(Reject {
                    location,
                    reason,
                    raw,
                    raw_bytes: partial.len() as u64,
                });
            }
        };
        if let Some(size) = skipping {
            // Skipping an oversized line: nothing of it is kept but its head.
            let (used, end) = match memchr::memchr(b'\n', buf) {
                Some(end) => (end + 1, true),
                None => (buf.len(), buf.is_empty()),
            };
            let size = size + used as u64;
            reader.consume(used);
            if !end {
                skipping = Some(size);
                continue;
            }
            skipping = None;
            let flow = lines.oversized(size, &partial, sink);
            partial.clear();
            if flow.is_break() || used == 0 {
                return lines.finished(flow);
            }
            continue;
        }
        if buf.is_empty() {
            // The last line, without its newline.
            if !partial.is_empty() {
                let flow = lines.line(&partial, sink);
                return lines.finished(flow);
            }
            return ControlFlow::Continue(());
        }
        let newline = if partial.is_empty() {
            memchr::memrchr(b'\n', buf)
        } else {
            memchr::memchr(b'\n', buf)
        };
        let (used, flow) = match newline {
            // Every whole line in the buffer at once.
            Some(last) if partial.is_empty() => (last + 1, lines.lines(&buf[..=last], sink)),
            // The end of a gathered line over the limit: refused without gathering the rest.
            Some(end) if (partial.len() + end + 1) as u64 > limit => {
                let size = (partial.len() + end + 1) as u64;
                partial.truncate(RAW_LIMIT);
                let flow = lines.oversized(size, &partial, sink);
                partial.clear();
                (end + 1, flow)
            }
            // The end of the gathered line.
            Some(end) => {
                partial.extend_from_slice(&buf[..=end]);
                let flow = lines.line(&partial, sink);
                partial.clear();
                (end + 1, flow)
            }
            // A line growing past the limit: from here on only counted (memory stays bounded
            // by the limit, whatever the input).
            None if (partial.len() + buf.len()) as u64 > limit => {
                let size = (partial.len() + buf.len()) as u64;
                let room = RAW_LIMIT.saturating_sub(partial.len()).min(buf.len());
                partial.extend_from_slice(&buf[..room]);
                partial.truncate(RAW_LIMIT);
                skipping = Some(size);
                (buf.len(), ControlFlow::Continue(()))
            }
            None => {
                partial.extend_from_slice(buf);
                (buf.len(), ControlFlow::Continue(()))
            }
        };
        reader.consume(used);
        if flow.is_break() {
            return lines.finished(flow);
        }
    }
}

/// The state of a JSON Lines reader between lines.
struct Lines<'a> {
    spec: &'a FieldSpec,
    fields: Fields,
    /// Byte offset of the next line, and the number of the last line read.
    offset: u64,
    number: u64,
    /// Lines starting at or after this offset belong to the next range.
    end: u64,
    /// Whether `number` counts from the file's first line (false inside a later byte range,
    /// where errors give the byte offset alone).
    numbered: bool,
    /// Set when a line at `end` was reached: the Break that follows is the range's end.
    done: bool,
}

impl<'a> Lines<'a> {
    fn new(spec: &'a FieldSpec, offset: u64, end: u64, numbered: bool) -> Self {
        Lines {
            spec,
            fields: Fields::new(spec),
            offset,
            number: 0,
            end,
            numbered,
            done: false,
        }
    }

    /// A Break because the range ended is a normal end; any other is the sink's.
    fn finished(&self, flow: ControlFlow<()>) -> ControlFlow<()> {
        match flow {
            ControlFlow::Break(()) if self.done => ControlFlow::Continue(()),
            other => other,
        }
    }

    /// Whole lines, each with its newline. They are checked for UTF-8 together (a
    /// character never spans a newline), one at a time only when that fails.
    fn lines(&mut self, lines: &[u8], sink: &mut dyn Sink) -> ControlFlow<()> {
        let text = simdutf8::basic::from_utf8(lines).ok();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', lines) {
            let checked = text.map(|text| &text[start..=end]);
            self.checked_line(&lines[start..=end], checked, sink)?;
            start = end + 1;
        }
        ControlFlow::Continue(())
    }

    /// One line, with its newline if it has one.
    fn line(&mut self, line: &[u8], sink: &mut dyn Sink) -> ControlFlow<()> {
        self.checked_line(line, None, sink)
    }

    /// A line of `size` bytes over `max_record_bytes`, of which `head` was kept: rejected with
    /// its place and size (the reader did not hold it).
    fn oversized(&mut self, size: u64, head: &[u8], sink: &mut dyn Sink) -> ControlFlow<()> {
        if self.offset >= self.end {
            self.done = true;
            return ControlFlow::Break(());
        }
        let location = self.advance(size);
        sink.reject(Reject {
            location,
            reason: too_large(size, true, self.spec.max_record_bytes),
            raw: Some(raw_text(head)),
            raw_bytes: size,
        })
    }

    /// Counts a line of `read` bytes starting at `self.offset`; where it is.
    fn advance(&mut self, read: u64) -> Location {
        let start = self.offset;
        self.number += 1;
        self.offset += read;
        if self.numbered {
            Location::Line {
                line: self.number,
                offset: start,
            }
        } else {
            Location::Offset { offset: start }
        }
    }

    /// One line, and the same line as text when it is known to be UTF-8.
    fn checked_line(
        &mut self,
        line: &[u8],
        checked: Option<&str>,
        sink: &mut dyn Sink,
    ) -> ControlFlow<()> {
        if self.offset >= self.end {
            self.done = true;
            return ControlFlow::Break(());
        }
        let read = line.len() as u64;
        let start = self.offset;
        let location = self.advance(read);
        if read > self.spec.max_record_bytes {
            return sink.reject(Reject {
                location,
                reason: too_large(read, true, self.spec.max_record_bytes),
                raw: Some(raw_text(line)),
                raw_bytes: read,
            });
        }
        let body = trim_newline(line);
        if body.iter().all(u8::is_ascii_whitespace) {
            return ControlFlow::Continue(());
        }
        let checked = checked.map(|text| &text[..body.len()]);
        let text = match checked.map_or_else(|| simdutf8::compat::from_utf8(body), Ok) {
            Ok(text) => text,
            Err(err) => {
                let reason = format!("invalid UTF-8 at byte {} of the line", err.valid_up_to());
                return sink.reject(Reject {
                    location,
                    reason,
                    raw: Some(raw_text(body)),
                    raw_bytes: read,
                });
            }
        };
        match self.fields.parse(text, self.spec) {
            // The id is made of the line's byte offset: the same whether the file is read whole
            // or in ranges.
            Ok(()) => sink.record(self.fields.record(self.spec, start, read)),
            Err(reason) => sink.reject(Reject {
                location,
                reason,
                raw: Some(raw_text(body)),
                raw_bytes: read,
            }),
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

struct ArrayVisitor<'a> {
    spec: &'a FieldSpec,
    fields: &'a mut Fields,
    sink: &'a mut dyn Sink,
    /// Set when the sink asked to stop: the error the visitor then returns (serde's only way
    /// out of a sequence) is no fault of the file.
    stopped: &'a mut bool,
    budget: &'a Budget,
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
            if element(self.spec, self.fields, self.sink, index, value).is_break() {
                *self.stopped = true;
                return Err(serde::de::Error::custom("stopped by the sink"));
            }
            self.budget.next_record();
            index += 1;
        }
        Ok(())
    }
}

fn element(
    spec: &FieldSpec,
    fields: &mut Fields,
    sink: &mut dyn Sink,
    index: u64,
    value: Value,
) -> ControlFlow<()> {
    // The size of the record as compact JSON stands in for its bytes in the file.
    let raw = value.to_string();
    let raw_bytes = raw.len() as u64;
    match fields.take_value(value, spec) {
        Ok(()) => sink.record(fields.record(spec, index, raw_bytes)),
        Err(reason) => sink.reject(Reject {
            location: Location::Record { record: index },
            reason,
            raw: Some(raw_text(raw.as_bytes())),
            raw_bytes,
        }),
    }
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
    let mut fields = Fields::new(spec);
    // Each element may take at most `max_record_bytes` of the stream: past that the reader
    // fails, so a huge element is never held (and the rest of the file, which cannot be
    // resynchronised inside a JSON document, is rejected with it).
    let budget = Rc::new(Budget::new(spec.max_record_bytes));
    let reader = Bounded {
        inner: reader,
        budget: budget.clone(),
    };
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    if first == b'[' {
        let mut stopped = false;
        let result = serde::Deserializer::deserialize_seq(
            &mut deserializer,
            ArrayVisitor {
                spec,
                fields: &mut fields,
                sink: &mut *sink,
                stopped: &mut stopped,
                budget: &budget,
            },
        )
        .and_then(|()| deserializer.end());
        return match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) if stopped => ControlFlow::Break(()),
            Err(err) => json_error(file, sink, err, &budget),
        };
    }
    for (index, value) in (0u64..).zip(deserializer.into_iter::<Value>()) {
        match value {
            Ok(value) => {
                element(spec, &mut fields, sink, index, value)?;
                budget.next_record();
            }
            Err(err) => return json_error(file, sink, err, &budget),
        }
    }
    ControlFlow::Continue(())
}

/// What the JSON reader lets one record take of the stream.
struct Budget {
    limit: u64,
    /// Bytes read since the last record ended, and records done.
    since: Cell<u64>,
    records: Cell<u64>,
}

impl Budget {
    fn new(limit: u64) -> Self {
        Budget {
            limit,
            since: Cell::new(0),
            records: Cell::new(0),
        }
    }

    fn next_record(&self) {
        self.since.set(0);
        self.records.set(self.records.get() + 1);
    }
}

/// The error [`Bounded`] fails with past the budget.
#[derive(Debug)]
struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record over max_record_mb")
    }
}

impl std::error::Error for OverBudget {}

/// A reader that fails once one record has taken more than its budget.
struct Bounded<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: std::io::Read> std::io::Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let since = self.budget.since.get();
        if since > self.budget.limit {
            return Err(std::io::Error::other(OverBudget));
        }
        let n = self.inner.read(buf)?;
        self.budget.since.set(since + n as u64);
        Ok(n)
    }
}

fn json_error(
    file: &InputFile,
    sink: &mut dyn Sink,
    err: serde_json::Error,
    budget: &Budget,
) -> ControlFlow<()> {
    let location = Location::LineColumn {
        line: err.line() as u64,
        column: err.column() as u64,
    };
    let reason = match err.classify() {
        Category::Io => {
            let io = std::io::Error::from(err);
            if io.get_ref().is_some_and(|e| e.is::<OverBudget>()) {
                return sink.reject(Reject {
                    location: Location::Record {
                        record: budget.records.get(),
                    },
                    reason: format!(
                        "{}; the rest of the file is not read (a JSON document cannot be \
                         resumed inside)",
                        too_large(budget.since.get(), false, budget.limit)
                    ),
                    raw: None,
                    raw_bytes: file.size,
                });
            }
            // The reader's own error (its kind tells a truncated stream from a broken one).
            stream_error(file, &io)
        }
        Category::Eof => format!("truncated JSON: {err}"),
        Category::Syntax | Category::Data => format!("malformed JSON: {err}"),
    };
    sink.reject(Reject {
        location,
        reason,
        raw: None,
        raw_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, TextSpec};
    use crate::plan::Compression;

    fn spec(text: &[&str], id: Option<&str>, keep: &[&str]) -> FieldSpec {
        let text_spec = match text {
            [one] => TextSpec::Field((*one).to_owned()),
            many => TextSpec::Join(many.iter().map(|f| (*f).to_owned()).collect()),
        };
        FieldSpec {
            text: text_spec,
            text_fields: text.iter().map(|f| (*f).to_owned()).collect(),
            id: id.map(str::to_owned),
            keep: keep
                .iter()
                .enumerate()
                .map(|(slot, name)| ((*name).to_owned(), slot))
                .collect(),
            meta_len: keep.len(),
            max_record_bytes: 1 << 20,
            max_html_depth: 512,
        }
    }

    type Outcome = Result<(String, Option<String>, Vec<Option<String>>), String>;

    fn outcome(fields: &Fields, spec: &FieldSpec, result: Result<(), String>) -> Outcome {
        result.map(|()| {
            let record = fields.record(spec, 0, 0);
            (
                record.text.to_owned(),
                record.id_value.map(str::to_owned),
                record.meta.to_vec(),
            )
        })
    }

    /// The streaming parse (text decoded straight into its buffer) and the parse through a
    /// `serde_json::Value` (JSON arrays) must agree on every record, errors included.
    #[test]
    fn streaming_and_value_parses_agree() {
        let records = [
            r#"{"text": "a\nb", "id": 1, "author": "x"}"#,
            r#"{"text": ["l1", "", null, "l2"], "id": "s"}"#,
            r#"{"text": ["l1", {"a": [1, "b"]}, 3], "id": 1}"#,
            r#"{"text": ["l1", [1, 2.5, null]], "id": 1}"#,
            r#"{"text": ["l1", true], "id": 1}"#,
            r#"{"text": 5, "id": 1}"#,
            r#"{"text": {"x": [1]}, "id": 1}"#,
            r#"{"text": true, "id": 1}"#,
            r#"{"text": null, "id": 1}"#,
            r#"{"id": 1}"#,
            r#"{"text": "a", "id": null}"#,
            r#"{"text": "a"}"#,
            r#"{"text": "a", "id": [1]}"#,
            r#"{"text": "a", "id": {"k": 1}}"#,
            r#"{"text": "a", "id": false}"#,
            r#"{"text": 1, "text": "b", "id": 1}"#,
            r#"{"text": "a", "id": 1.5, "author": {"n": [1, null]}}"#,
            r#"{"text": "a", "id": -3, "author": null}"#,
            r#"{"text": "a", "id": 18446744073709551615, "author": 7}"#,
            r#"{"text": "esc \"q\" \u4e2d\ttab\n", "id": "x\u0041", "author": "\u00e9"}"#,
            r#"{"skip": {"deep": [1, {"x": "y"}]}, "text": "a", "id": 2}"#,
        ];
        let specs = [
            spec(&["text"], Some("id"), &["author"]),
            spec(&["text"], None, &[]),
            // Overlapping roles: the text and the id are also kept columns.
            spec(&["text"], Some("id"), &["text", "id", "author"]),
            spec(&["author", "text"], Some("id"), &[]),
        ];
        for spec in &specs {
            let mut streamed = Fields::new(spec);
            let mut valued = Fields::new(spec);
            for json in records {
                let a = streamed.parse(json, spec);
                let a = outcome(&streamed, spec, a);
                let value: Value = serde_json::from_str(json).unwrap();
                let b = valued.take_value(value, spec);
                let b = outcome(&valued, spec, b);
                assert_eq!(a, b, "{json} with {spec:?}");
            }
        }
        let spec = &specs[0];
        let mut fields = Fields::new(spec);
        let ok = fields.parse(r#"{"id": 9, "text": ["a", "b"], "author": "z"}"#, spec);
        assert_eq!(
            outcome(&fields, spec, ok),
            Ok(("a\nb".into(), Some("9".into()), vec![Some("z".into())]))
        );
        // A text problem does not hide malformed JSON later in the record.
        let bad = fields.parse(r#"{"text": 5, "id": 1, "x": nope}"#, spec);
        assert!(bad.unwrap_err().starts_with("malformed JSON"));
    }

    #[derive(Default)]
    struct Collect {
        seen: Vec<String>,
    }

    impl Sink for Collect {
        fn record(&mut self, record: Record<'_>) -> ControlFlow<()> {
            self.seen.push(format!(
                "{} {:?} {:?} {}",
                record.index, record.text, record.id_value, record.raw_bytes
            ));
            ControlFlow::Continue(())
        }
        fn reject(&mut self, reject: Reject) -> ControlFlow<()> {
            self.seen.push(format!(
                "{} {} {}",
                reject.location, reject.reason, reject.raw_bytes
            ));
            ControlFlow::Continue(())
        }
    }

    /// Lines are the same whether they lie in the read buffer or span two reads of it.
    #[test]
    fn lines_spanning_reads_are_whole() {
        let file = InputFile {
            input: 0,
            path: "mem.jsonl".into(),
            rel: "mem.jsonl".into(),
            format: Format::Jsonl,
            compression: Compression::None,
            size: 0,
            row_groups: None,
            remote: None,
        };
        let spec = spec(&["text"], Some("id"), &[]);
        let input = "{\"text\": \"第一行\", \"id\": 1}\n\n  \r\n{\"text\": \"two\", \"id\": 2}\r\n\
                     not json\n{\"text\": \"\u{00ff}\", \"id\": 3}\n{\"text\": \"last\", \"id\": 4}";
        let mut bytes = input.as_bytes().to_vec();
        // Invalid UTF-8 inside the fourth record's text.
        let at = bytes.iter().position(|&b| b == 0xC3).unwrap();
        bytes[at] = 0xFF;
        let read = |capacity| {
            let mut sink = Collect::default();
            let reader = BufReader::with_capacity(capacity, bytes.as_slice());
            let lines = Lines::new(&spec, 0, u64::MAX, true);
            assert!(read_lines(&file, reader, lines, &mut sink).is_continue());
            sink.seen
        };
        let whole = read(1 << 20);
        assert_eq!(whole.len(), 5, "{whole:#?}");
        // Records are numbered by the byte offset of their line.
        assert_eq!(whole[0], "0 \"第一行\" Some(\"1\") 31");
        assert_eq!(whole[1], "36 \"two\" Some(\"2\") 26");
        assert!(
            whole[2].starts_with("line 5 (byte 62) malformed JSON"),
            "{}",
            whole[2]
        );
        assert!(
            whole[3].contains("invalid UTF-8 at byte 10 of the line"),
            "{}",
            whole[3]
        );
        assert_eq!(whole[4], "95 \"last\" Some(\"4\") 25");
        for capacity in [1, 2, 3, 7, 16, 31] {
            assert_eq!(read(capacity), whole, "buffer of {capacity} bytes");
        }
    }
}
