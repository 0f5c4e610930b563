//! Readers: each turns one unit (a file, or a Parquet row group) into a stream of records and
//! rejects, pushed into a [`Sink`] so that memory stays bounded by one record.

mod file;
mod json;
mod parquet;

use std::io::{BufReader, Read};
use std::ops::ControlFlow;

use crate::config::{Format, IngestConfig, InputSpec, TextSpec};
use crate::error::Location;
use crate::plan::{ByteRange, Compression, InputFile};

pub use file::html_to_text;

/// A record as read, before cleaning, borrowed from the reader's buffers.
#[derive(Debug)]
pub struct Record<'a> {
    /// Position of the record in its file (a JSONL line's byte offset, an array index, a row
    /// number): with the source and the file's relative path it makes the document id.
    pub index: u64,
    pub text: &'a str,
    /// The value of the id field, when the input names one.
    pub id_value: Option<&'a str>,
    /// One entry per metadata column of the run (None where this input has no such field).
    pub meta: &'a [Option<String>],
    /// Bytes of input the record took (a line, an element, a file): drives part rollover.
    pub raw_bytes: u64,
}

/// A record (or a whole file) that could not be read.
#[derive(Debug, Clone)]
pub struct Reject {
    pub location: Location,
    pub reason: String,
    /// The raw record, when there is one (lossily decoded, at most [`RAW_LIMIT`] bytes).
    pub raw: Option<String>,
    pub raw_bytes: u64,
}

pub const RAW_LIMIT: usize = 64 * 1024;

/// The reason a record over `max_record_bytes` is rejected: its size (at least `size` when the
/// reader stopped counting) against the limit.
pub fn too_large(size: u64, exact: bool, limit: u64) -> String {
    let at_least = if exact { "" } else { "at least " };
    format!(
        "record of {at_least}{size} bytes is over the limit of {limit} bytes (max_record_mb = {})",
        limit as f64 / (1024.0 * 1024.0)
    )
}

pub fn raw_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(RAW_LIMIT)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Where readers push what they read; `Break` stops the unit (for `--on-error fail`).
pub trait Sink {
    fn record(&mut self, record: Record<'_>) -> ControlFlow<()>;
    fn reject(&mut self, reject: Reject) -> ControlFlow<()>;
}

/// Which fields of a record matter, resolved against the run's metadata columns.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub text: TextSpec,
    /// The fields of `text`, in order.
    pub text_fields: Vec<String>,
    pub id: Option<String>,
    /// (field name, index in the run's metadata columns).
    pub keep: Vec<(String, usize)>,
    pub meta_len: usize,
    /// The largest record a reader takes, in bytes (`max_record_mb`).
    pub max_record_bytes: u64,
    /// The deepest HTML element nesting a page may have (`max_html_depth`).
    pub max_html_depth: usize,
}

impl FieldSpec {
    pub fn new(input: &InputSpec, config: &IngestConfig) -> FieldSpec {
        let keep_columns = &config.keep_columns;
        let keep = input
            .keep
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    keep_columns.iter().position(|c| c == name).unwrap_or(0),
                )
            })
            .collect();
        FieldSpec {
            text: input.text.clone(),
            text_fields: input.text.fields().into_iter().map(str::to_owned).collect(),
            id: input.id_field.clone(),
            keep,
            meta_len: keep_columns.len(),
            max_record_bytes: config.max_record_bytes,
            max_html_depth: config.max_html_depth,
        }
    }
}

/// Reads one unit into the sink.
pub fn read_unit(
    file: &InputFile,
    row_group: Option<usize>,
    range: Option<ByteRange>,
    spec: &FieldSpec,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    match file.format {
        Format::Jsonl => json::read_jsonl(file, range, spec, sink),
        Format::Json => json::read_json(file, spec, sink),
        Format::Parquet => parquet::read_row_group(file, row_group, spec, sink),
        Format::Text | Format::Html => file::read_document(file, spec, sink),
    }
}

/// Opens a file through its decompressor.
fn open(file: &InputFile) -> std::io::Result<Box<dyn Read + Send>> {
    let raw = file.open_raw()?;
    Ok(match file.compression {
        Compression::None => Box::new(BufReader::with_capacity(1 << 16, raw)),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(1 << 16, raw),
        )),
        Compression::Zstd => zstd_decoder(raw)?,
    })
}

/// A zstd decoder reading `raw` from where it stands (the start of a frame): it decodes that
/// frame and every one after it, skippable frames skipped.
fn zstd_decoder(raw: impl Read + Send + 'static) -> std::io::Result<Box<dyn Read + Send>> {
    let raw = BufReader::with_capacity(1 << 16, raw);
    Ok(Box::new(zstd::stream::read::Decoder::with_buffer(raw)?))
}

/// Describes a read error of a compressed stream in words a person can act on.
fn stream_error(file: &InputFile, err: &std::io::Error) -> String {
    let kind = match file.compression {
        Compression::Gzip => "gzip stream",
        Compression::Zstd => "zstd stream",
        Compression::None => "file",
    };
    if err.kind() == std::io::ErrorKind::UnexpectedEof || err.to_string().contains("incomplete") {
        format!("truncated {kind}: {err}")
    } else {
        format!("cannot read {kind}: {err}")
    }
}
