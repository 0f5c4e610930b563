//! Configuration in three layers: a TOML file deserializes into all-optional [`IngestOptions`]
//! (unknown keys are errors), command-line flags override it, and [`IngestOptions::resolve`]
//! validates the result into the [`IngestConfig`] the stage runs on.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// How the input files of one `[[input]]` are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line (`.jsonl`, `.ndjson`, optionally `.gz` / `.zst`).
    Jsonl,
    /// A JSON array of objects, or a single object (`.json`, optionally `.gz` / `.zst`).
    Json,
    /// Parquet; each row group is a separate unit of work.
    Parquet,
    /// One document per file, read as is.
    Text,
    /// One document per file, markup stripped to its text.
    Html,
}

impl Format {
    pub const NAMES: &'static str = "jsonl, json, parquet, text, html";
}

/// What `--on-error` does with a malformed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Count it, write it to the rejects file, go on.
    #[default]
    Skip,
    /// Stop the run with an error naming the file and line.
    Fail,
}

/// One string or a list of strings (`path = "a"` or `path = ["a", "b"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// The options of one input, all optional (`[[input]]` in the config file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputOptions {
    /// Files, folders (searched recursively) or glob patterns; `${VAR}` and `~` are expanded.
    pub path: Option<OneOrMany>,
    /// Format of every file; by default guessed from each file's extension.
    pub format: Option<Format>,
    /// The field (or Parquet column) holding the text. Default: `text`.
    pub text: Option<String>,
    /// Several fields joined by newlines into the text (a list of strings counts as lines).
    pub text_fields: Option<Vec<String>>,
    /// The field whose value identifies the record; hashed into the `id` column.
    pub id: Option<String>,
    /// The `source` label of these documents. Default: the name of the input folder or file.
    pub source: Option<String>,
    /// Fields copied into metadata columns of the same name (as text).
    pub keep: Option<Vec<String>>,
}

/// Everything `tinyforge ingest` can be told, all optional (the TOML file's top level).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestOptions {
    /// Output folder.
    pub out: Option<String>,
    /// Target size of a Parquet part, in MiB of input (default 64).
    pub part_size_mb: Option<f64>,
    /// Target size of a row group, in MiB of text (default 16).
    pub row_group_mb: Option<f64>,
    /// Documents shorter than this many characters are dropped (default 16).
    pub min_chars: Option<usize>,
    /// The largest record read, in MiB (default 32): a JSONL line, a JSON array element, a
    /// text or HTML file, a Parquet text cell. A larger one is rejected with its file, offset
    /// and size, and never held in memory whole (a JSONL reader skips to the next newline).
    pub max_record_mb: Option<f64>,
    /// HTML pages whose elements nest deeper than this are rejected (default 512, the depth
    /// past which browsers stop nesting): parsing time grows with the square of the depth.
    pub max_html_depth: Option<usize>,
    /// zstd level inside Parquet (default 3).
    pub zstd_level: Option<i32>,
    /// Exact deduplication by content hash (default true).
    pub dedup: Option<bool>,
    /// Hash buckets of the cross-chunk deduplication (default: as many as the drops files
    /// already written, else 1). Each bucket holds 16 bytes per document / buckets in memory.
    pub dedup_buckets: Option<u32>,
    /// SQL predicate over `id`, `text`, `lang`, `source` and the kept columns.
    #[serde(rename = "where")]
    pub where_sql: Option<String>,
    /// What a malformed record does (default skip).
    pub on_error: Option<OnError>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    #[serde(default)]
    pub input: Vec<InputOptions>,
}

/// How the text of a record is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TextSpec {
    Field(String),
    Join(Vec<String>),
}

impl TextSpec {
    pub fn fields(&self) -> Vec<&str> {
        match self {
            TextSpec::Field(field) => vec![field.as_str()],
            TextSpec::Join(fields) => fields.iter().map(String::as_str).collect(),
        }
    }
}

/// One validated input.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputSpec {
    /// Expanded paths or patterns.
    pub paths: Vec<String>,
    pub format: Option<Format>,
    pub text: TextSpec,
    pub id_field: Option<String>,
    pub source: String,
    pub keep: Vec<String>,
}

pub use tinyforge_task::Shard;

/// The validated configuration the stage runs on.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub inputs: Vec<InputSpec>,
    pub out: PathBuf,
    /// How the report and the manifest name the output folder: `out` itself, or the URL of
    /// the object-store folder `out` stages.
    pub out_name: String,
    pub part_bytes: u64,
    pub row_group_bytes: u64,
    pub min_chars: usize,
    /// See [`IngestOptions::max_record_mb`].
    pub max_record_bytes: u64,
    /// See [`IngestOptions::max_html_depth`].
    pub max_html_depth: usize,
    pub zstd_level: i32,
    pub dedup: bool,
    pub dedup_buckets: Option<u32>,
    pub where_sql: Option<String>,
    pub on_error: OnError,
    pub threads: usize,
    pub shard: Shard,
    /// Metadata columns: the union of every input's `keep`, in order of first appearance.
    pub keep_columns: Vec<String>,
}

impl IngestConfig {
    /// How reports name `path`, a file of the output folder: under [`IngestConfig::out_name`].
    pub fn name_of(&self, path: &Path) -> String {
        match path.strip_prefix(&self.out) {
            Ok(rel) => {
                let parts: Vec<_> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect();
                format!(
                    "{}/{}",
                    self.out_name.trim_end_matches('/'),
                    parts.join("/")
                )
            }
            Err(_) => path.display().to_string(),
        }
    }
}

/// Column names the documents contract reserves.
pub const RESERVED_COLUMNS: [&str; 4] = ["id", "text", "lang", "source"];

impl IngestOptions {
    /// Reads a TOML file; unknown keys and wrong types are errors naming the file and key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = fs_err::read_to_string(path)?;
        toml::from_str(&text).map_err(|err| Error::Toml {
            path: path.to_owned(),
            message: err.to_string(),
        })
    }

    /// Validates into an [`IngestConfig`]. `origin` names the config file (or "flags") in
    /// errors.
    pub fn resolve(self, origin: &str, shard: Shard) -> Result<IngestConfig> {
        let bad = |key: &str, message: String| Error::Config {
            file: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        let out = self
            .out
            .ok_or_else(|| bad("out", "no output folder (set `out` or pass --out)".into()))?;
        let out = PathBuf::from(expand(&out).map_err(|m| bad("out", m))?);
        if self.input.is_empty() {
            return Err(bad(
                "input",
                "no input (add an [[input]] or pass input paths)".into(),
            ));
        }
        let mb = |key: &str, value: Option<f64>, default: f64| -> Result<u64> {
            let value = value.unwrap_or(default);
            if !(value > 0.0 && value.is_finite()) {
                return Err(bad(
                    key,
                    format!("must be a positive number of MiB, got {value}"),
                ));
            }
            Ok(((value * 1024.0 * 1024.0) as u64).max(1))
        };
        let part_bytes = mb("part_size_mb", self.part_size_mb, 64.0)?;
        let row_group_bytes = mb("row_group_mb", self.row_group_mb, 16.0)?;
        let max_record_bytes = mb("max_record_mb", self.max_record_mb, 32.0)?;
        let max_html_depth = match self.max_html_depth {
            Some(0) => return Err(bad("max_html_depth", "must be at least 1".into())),
            depth => depth.unwrap_or(512),
        };
        let zstd_level = self.zstd_level.unwrap_or(3);
        if !(1..=22).contains(&zstd_level) {
            return Err(bad(
                "zstd_level",
                format!("must be 1..=22, got {zstd_level}"),
            ));
        }
        let threads = match self.threads {
            Some(0) => return Err(bad("threads", "must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let mut inputs = Vec::new();
        let mut keep_columns: Vec<String> = Vec::new();
        for (index, input) in self.input.into_iter().enumerate() {
            let key = |name: &str| format!("input[{index}].{name}");
            let paths = input
                .path
                .ok_or_else(|| bad(&key("path"), "missing (a file, folder or glob)".into()))?
                .into_vec();
            if paths.is_empty() {
                return Err(bad(&key("path"), "empty list".into()));
            }
            let paths = paths
                .iter()
                .map(|p| expand(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| bad(&key("path"), m))?;
            let text = match (input.text, input.text_fields) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        &key("text"),
                        "set either `text` or `text_fields`, not both".into(),
                    ));
                }
                (Some(field), None) => TextSpec::Field(field),
                (None, Some(fields)) if fields.is_empty() => {
                    return Err(bad(&key("text_fields"), "empty list".into()));
                }
                (None, Some(fields)) => TextSpec::Join(fields),
                (None, None) => TextSpec::Field("text".into()),
            };
            let keep = input.keep.unwrap_or_default();
            for column in &keep {
                if RESERVED_COLUMNS.contains(&column.as_str()) {
                    return Err(bad(
                        &key("keep"),
                        format!("`{column}` is a reserved column (id, text, lang, source)"),
                    ));
                }
                if !keep_columns.contains(column) {
                    keep_columns.push(column.clone());
                }
            }
            let source = match input.source {
                Some(source) if source.is_empty() => {
                    return Err(bad(&key("source"), "empty label".into()));
                }
                Some(source) => source,
                None => default_source(&paths[0]),
            };
            inputs.push(InputSpec {
                paths,
                format: input.format,
                text,
                id_field: input.id,
                source,
                keep,
            });
        }
        Ok(IngestConfig {
            inputs,
            out_name: out.display().to_string(),
            out,
            part_bytes,
            row_group_bytes,
            min_chars: self.min_chars.unwrap_or(16),
            max_record_bytes,
            max_html_depth,
            zstd_level,
            dedup: self.dedup.unwrap_or(true),
            dedup_buckets: match self.dedup_buckets {
                Some(0) => return Err(bad("dedup_buckets", "must be at least 1".into())),
                other => other,
            },
            where_sql: self.where_sql.filter(|s| !s.trim().is_empty()),
            on_error: self.on_error.unwrap_or_default(),
            threads,
            shard,
            keep_columns,
        })
    }
}

/// A source label from a path or pattern: the last component before any glob character,
/// without extension.
fn default_source(pattern: &str) -> String {
    let literal: String = pattern
        .chars()
        .take_while(|c| !matches!(c, '*' | '?' | '['))
        .collect();
    let trimmed = literal.trim_end_matches('/');
    let last = Path::new(trimmed)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    let stem = last.split('.').next().unwrap_or(&last);
    if stem.is_empty() {
        "input".into()
    } else {
        stem.to_owned()
    }
}

/// Expands `~` at the start and `${VAR}` / `$VAR` anywhere. `TINYFORGE_DATA` defaults to
/// `~/.cache/tinyforge`; any other unset variable is an error.
pub fn expand(text: &str) -> Result<String, String> {
    let home = || std::env::var("HOME").map_err(|_| "HOME is not set (needed for `~`)".to_owned());
    let mut out = String::new();
    let mut rest = text;
    if rest == "~" || rest.starts_with("~/") {
        out.push_str(&home()?);
        rest = &rest[1..];
    }
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        match std::env::var(name) {
            Ok(value) => out.push_str(&value),
            Err(_) if name == "TINYFORGE_DATA" => {
                out.push_str(&format!("{}/.cache/tinyforge", home()?))
            }
            Err(_) => {
                return Err(format!(
                    "environment variable `{name}` is not set (in `{text}`)"
                ));
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_and_home() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(expand("~/x").unwrap(), format!("{home}/x"));
        assert_eq!(
            expand("${HOME}/a/$HOME").unwrap(),
            format!("{home}/a/{home}")
        );
        assert!(
            expand("${TINYFORGE_SURELY_UNSET_VAR}/x")
                .unwrap_err()
                .contains("not set")
        );
        assert_eq!(
            expand("price $5").unwrap_err(),
            "environment variable `5` is not set (in `price $5`)"
        );
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err =
            toml::from_str::<IngestOptions>("[[input]]\npath = 'a'\ntxt = 'b'\n").unwrap_err();
        assert!(err.to_string().contains("txt"), "{err}");
    }

    #[test]
    fn source_defaults_to_folder_name() {
        assert_eq!(default_source("/data/sotu/*.txt"), "sotu");
        assert_eq!(default_source("/data/songci/ci.song.0.json"), "ci");
        assert_eq!(default_source("/data/help/"), "help");
    }
}
