//! Counters of a chunk and of a run; the JSON summary on stdout is a [`Report`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why records did not become documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// Blank after cleaning.
    pub empty: u64,
    /// Shorter than `min_chars`.
    pub too_short: u64,
    /// Rejected by the `--where` predicate.
    pub filtered: u64,
    /// Same text as an earlier document.
    pub duplicate: u64,
    /// Could not be read (see the rejects file).
    pub malformed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LangCount {
    pub documents: u64,
    pub text_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCount {
    /// Records read from this source (malformed ones included).
    pub records: u64,
    pub documents: u64,
    pub text_bytes: u64,
}

/// Counts of one chunk, or of many added together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records read, malformed ones included.
    pub records: u64,
    /// Bytes of input those records took (decompressed).
    pub bytes_in: u64,
    /// Documents that passed cleaning and the filter, before deduplication.
    pub candidates: u64,
    /// Documents written.
    pub documents: u64,
    /// UTF-8 bytes of text written.
    pub text_bytes: u64,
    pub dropped: Dropped,
    pub by_lang: BTreeMap<String, LangCount>,
    pub by_source: BTreeMap<String, SourceCount>,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.records += other.records;
        self.bytes_in += other.bytes_in;
        self.candidates += other.candidates;
        self.documents += other.documents;
        self.text_bytes += other.text_bytes;
        let (d, o) = (&mut self.dropped, &other.dropped);
        d.empty += o.empty;
        d.too_short += o.too_short;
        d.filtered += o.filtered;
        d.duplicate += o.duplicate;
        d.malformed += o.malformed;
        for (lang, count) in &other.by_lang {
            let entry = self.by_lang.entry(lang.clone()).or_default();
            entry.documents += count.documents;
            entry.text_bytes += count.text_bytes;
        }
        for (source, count) in &other.by_source {
            let entry = self.by_source.entry(source.clone()).or_default();
            entry.records += count.records;
            entry.documents += count.documents;
            entry.text_bytes += count.text_bytes;
        }
    }

    /// Records `documents` written documents of one language and source, `text_bytes` in all.
    pub fn output(&mut self, lang: &str, source: &str, documents: u64, text_bytes: u64) {
        self.documents += documents;
        self.text_bytes += text_bytes;
        let by_lang = match self.by_lang.get_mut(lang) {
            Some(entry) => entry,
            None => self.by_lang.entry(lang.to_owned()).or_default(),
        };
        by_lang.documents += documents;
        by_lang.text_bytes += text_bytes;
        let by_source = match self.by_source.get_mut(source) {
            Some(entry) => entry,
            None => self.by_source.entry(source.to_owned()).or_default(),
        };
        by_source.documents += documents;
        by_source.text_bytes += text_bytes;
    }

    /// Forgets the output side (documents, bytes, per-language and per-source documents),
    /// keeping what was read; used before recounting a rewritten chunk.
    pub fn clear_output(&mut self) {
        self.documents = 0;
        self.text_bytes = 0;
        self.by_lang.clear();
        for count in self.by_source.values_mut() {
            count.documents = 0;
            count.text_bytes = 0;
        }
    }
}

/// The summary printed on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub out: String,
    /// True once every chunk is done and the folder was finalised (`_manifest.json` written).
    pub complete: bool,
    /// `i/n` of this task.
    pub shard: String,
    pub files: usize,
    pub chunks_total: usize,
    /// Chunks this task is responsible for.
    pub chunks_task: usize,
    /// Of those, chunks found done (resume) and skipped.
    pub chunks_resumed: usize,
    pub parts: usize,
    /// Bytes of input read (decompressed), over `records`.
    pub documents_in: u64,
    pub bytes_in: u64,
    pub documents_out: u64,
    /// UTF-8 bytes of text written.
    pub bytes_out: u64,
    /// Size of the Parquet parts on disk.
    pub parquet_bytes: u64,
    pub dropped: Dropped,
    pub by_lang: BTreeMap<String, LangCount>,
    pub by_source: BTreeMap<String, SourceCount>,
    pub rejects: u64,
    pub rejects_file: Option<String>,
    pub elapsed_s: f64,
    /// Input megabytes (10^6 bytes, decompressed) per second of wall time, all threads.
    pub mb_per_s: f64,
    pub threads: usize,
    /// The cross-chunk deduplication steps this process ran (not in the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<crate::finalize::DedupSummary>,
}
