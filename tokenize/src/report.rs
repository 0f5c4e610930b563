//! The JSON report of a tokenize run.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tinyforge_shards::{Dataset, Manifest};

use crate::error::Result;

/// What `tinyforge tokenize` prints on stdout.
#[derive(Debug, Clone, Serialize)]
pub struct TokenizeReport {
    pub documents: u64,
    pub tokens: u64,
    pub shards: usize,
    /// Shards an earlier, interrupted run had already finished.
    pub resumed_shards: usize,
    pub dtype: String,
    pub vocab_size: u32,
    pub eos_id: u32,
    pub eos_token: String,
    /// Where the EOS came from: `--eos`, `tokenizer_config.json` or the usual spellings.
    pub eos_source: String,
    /// UTF-8 bytes of all documents of the dataset.
    pub text_bytes: u64,
    /// Bytes of the shard files.
    pub bytes: u64,
    /// Uncompressed token bytes / shard bytes.
    pub compression_ratio: f64,
    /// Shard bytes / text bytes.
    pub bytes_per_text_byte: f64,
    pub tokens_per_document: Quantiles,
    /// Pre-tokens longer than the limit, encoded in pieces (whole dataset).
    pub long_pretokens: LongPretokens,
    /// This run only (a resumed run skips finished shards).
    pub run: RunStats,
}

/// Pre-tokens the model received in pieces: their ids differ from `tokenizers`' near the cuts.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LongPretokens {
    /// The limit, in characters of model input (bytes of text for byte-level tokenizers).
    pub max_chars: usize,
    pub pretokens: u64,
    pub documents: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunStats {
    pub text_bytes: u64,
    pub elapsed_s: f64,
    pub text_mb_per_s: f64,
}

/// Tokens per document, EOS included.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Quantiles {
    pub min: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

impl Quantiles {
    /// Nearest-rank quantiles of `values` (sorted in place).
    pub fn of(values: &mut [u64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let rank =
            |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Self {
            min: values[0],
            p10: rank(0.10),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: values[values.len() - 1],
            mean: values.iter().sum::<u64>() as f64 / values.len() as f64,
        }
    }
}

impl TokenizeReport {
    pub(crate) fn build(
        out: &Path,
        manifest: &Manifest,
        (eos_token, eos_source): (&str, &str),
        long_pretokens: LongPretokens,
        // UTF-8 bytes of the dataset's documents, and of those this run wrote.
        (text_bytes, run_text_bytes): (u64, u64),
        resumed_shards: usize,
        elapsed: Duration,
    ) -> Result<Self> {
        let mut lengths = document_lengths(out, manifest)?;
        let bytes: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
        let raw = manifest.total_tokens * manifest.dtype.width() as u64;
        let elapsed_s = elapsed.as_secs_f64();
        Ok(Self {
            documents: manifest.documents,
            tokens: manifest.total_tokens,
            shards: manifest.shards.len(),
            resumed_shards,
            dtype: manifest.dtype.to_string(),
            vocab_size: manifest.vocab_size,
            eos_id: manifest.eos_id,
            eos_token: eos_token.to_owned(),
            eos_source: eos_source.to_owned(),
            text_bytes,
            bytes,
            compression_ratio: ratio(raw, bytes),
            bytes_per_text_byte: ratio(bytes, text_bytes),
            tokens_per_document: Quantiles::of(&mut lengths),
            long_pretokens,
            run: RunStats {
                text_bytes: run_text_bytes,
                elapsed_s,
                text_mb_per_s: if elapsed_s > 0.0 {
                    run_text_bytes as f64 / 1e6 / elapsed_s
                } else {
                    0.0
                },
            },
        })
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f64 / b as f64 * 1000.0).round() / 1000.0
    }
}

/// Every document's token count, read from the shards' document tables (so a resumed run
/// reports on the whole dataset, not just the part it wrote).
pub fn document_lengths(out: &Path, manifest: &Manifest) -> Result<Vec<u64>> {
    let _ = manifest;
    let dataset = Dataset::open(out)?;
    let mut lengths = Vec::with_capacity(dataset.documents() as usize);
    for shard in 0..dataset.shard_count() {
        let mut previous = 0;
        for doc in dataset.shard_documents(shard)?.iter() {
            lengths.push(doc.end - previous);
            previous = doc.end;
        }
    }
    Ok(lengths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut values: Vec<u64> = (1..=100).rev().collect();
        let q = Quantiles::of(&mut values);
        assert_eq!(
            (q.min, q.p10, q.p50, q.p90, q.p99, q.max),
            (1, 10, 50, 90, 99, 100)
        );
        assert_eq!(q.mean, 50.5);
        assert_eq!(Quantiles::of(&mut []).max, 0);
    }
}
