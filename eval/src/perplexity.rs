//! Perplexity and bits per byte on held-out text or token windows.
//!
//! Documents are cut into disjoint windows of the model's length (lm-evaluation-harness's
//! rolling log-likelihood with one token of context): the first window of a document is scored
//! after the prefix token, each later one after the last token of the previous window, so every
//! token of every document is predicted exactly once. Bits per byte = total NLL (nats) /
//! (ln 2 × UTF-8 bytes), which compares models whatever their tokenizers.
//!
//! Every result carries a unigram baseline on the same tokens: the empirical token
//! distribution of exactly the scored tokens, fit on them. It is the best any model that ignores
//! context can do there (an optimistic floor, since it has seen the answers); a model below it
//! has learned to use context.

use serde::Serialize;
use tinyforge_task::Reporter;

use crate::error::{Error, Result};
use crate::harness::score_requests;
use crate::model::{LanguageModel, Request, TextEncoder};

#[derive(Debug, Clone, Serialize)]
pub struct PerplexityResult {
    pub documents: usize,
    pub windows: usize,
    /// Tokens predicted.
    pub tokens: usize,
    /// UTF-8 bytes of the text those tokens spell, when known.
    pub bytes: Option<usize>,
    /// The checkpoint's numbers.
    #[serde(flatten)]
    pub model: NllSummary,
    /// The empirical unigram distribution of the same tokens, scored on them.
    pub unigram: NllSummary,
}

/// A model's total NLL over the scored tokens and what follows from it.
#[derive(Debug, Clone, Serialize)]
pub struct NllSummary {
    pub nll_nats: f64,
    /// exp(NLL / tokens).
    pub perplexity: f64,
    pub bits_per_token: f64,
    pub bits_per_byte: Option<f64>,
}

impl NllSummary {
    fn new(nll_nats: f64, tokens: usize, bytes: Option<usize>) -> Self {
        let per_token = nll_nats / tokens.max(1) as f64;
        NllSummary {
            nll_nats,
            perplexity: per_token.exp(),
            bits_per_token: per_token / std::f64::consts::LN_2,
            bits_per_byte: bytes.map(|b| nll_nats / (std::f64::consts::LN_2 * b.max(1) as f64)),
        }
    }
}

impl PerplexityResult {
    fn new(
        documents: usize,
        windows: usize,
        bytes: Option<usize>,
        nll_nats: f64,
        requests: &[Request],
    ) -> Self {
        let tokens = requests.iter().map(|r| r.1.len()).sum();
        PerplexityResult {
            documents,
            windows,
            tokens,
            bytes,
            model: NllSummary::new(nll_nats, tokens, bytes),
            unigram: NllSummary::new(unigram_nll(requests), tokens, bytes),
        }
    }
}

/// Σ −ln(c_t / N) over the predicted tokens of `requests`, c_t the count of token t among them.
pub fn unigram_nll(requests: &[Request]) -> f64 {
    let mut counts = std::collections::HashMap::<u32, u64>::new();
    for (_, continuation) in requests {
        for &t in continuation {
            *counts.entry(t).or_default() += 1;
        }
    }
    let total = counts.values().sum::<u64>() as f64;
    counts
        .values()
        .map(|&c| -(c as f64) * (c as f64 / total).ln())
        .sum()
}

/// Rolling windows over one document's tokens, `length` predicted tokens each.
pub fn rolling_requests(tokens: &[u32], prefix: u32, length: usize) -> Vec<Request> {
    let length = length.max(1);
    (0..tokens.len())
        .step_by(length)
        .map(|start| {
            let context = if start == 0 {
                prefix
            } else {
                tokens[start - 1]
            };
            (
                vec![context],
                tokens[start..(start + length).min(tokens.len())].to_vec(),
            )
        })
        .collect()
}

/// Perplexity of raw text documents, encoded with `encoder`.
pub fn perplexity_of_texts(
    model: &dyn LanguageModel,
    encoder: &dyn TextEncoder,
    texts: &[String],
    batch_tokens: usize,
    reporter: &dyn Reporter,
) -> Result<PerplexityResult> {
    let mut requests = Vec::new();
    let mut bytes = 0;
    let mut documents = 0;
    for text in texts {
        let tokens = encoder.encode(text)?;
        if tokens.is_empty() {
            continue;
        }
        documents += 1;
        bytes += text.len();
        requests.extend(rolling_requests(
            &tokens,
            encoder.prefix_token(),
            model.max_length(),
        ));
    }
    score(
        model,
        &requests,
        documents,
        Some(bytes),
        batch_tokens,
        reporter,
    )
}

/// Perplexity of training-style windows (`seq_len + 1` tokens each, as the shard reader's
/// `window(unit, seq_len)` returns): the first token is context, the rest are predicted. With an
/// encoder, bytes are counted by decoding the predicted tokens, giving bits per byte.
pub fn perplexity_of_windows(
    model: &dyn LanguageModel,
    windows: &[Vec<u32>],
    encoder: Option<&dyn TextEncoder>,
    batch_tokens: usize,
    reporter: &dyn Reporter,
) -> Result<PerplexityResult> {
    let mut requests = Vec::with_capacity(windows.len());
    let mut bytes = encoder.map(|_| 0);
    for window in windows.iter().filter(|w| w.len() >= 2) {
        if let (Some(total), Some(encoder)) = (bytes.as_mut(), encoder) {
            *total += encoder.decode(&window[1..])?.len();
        }
        requests.push((window[..1].to_vec(), window[1..].to_vec()));
    }
    score(
        model,
        &requests,
        requests.len(),
        bytes,
        batch_tokens,
        reporter,
    )
}

/// Perplexity of a token dataset (from `tinyforge tokenize`): `max_windows` training units of
/// `seq_len` tokens spread evenly over the dataset (all of them when there are fewer), read
/// through the shard reader, scored as [`perplexity_of_windows`].
pub fn perplexity_of_dataset(
    model: &dyn LanguageModel,
    dir: &std::path::Path,
    seq_len: usize,
    max_windows: usize,
    encoder: Option<&dyn TextEncoder>,
    batch_tokens: usize,
    reporter: &dyn Reporter,
) -> Result<PerplexityResult> {
    let dataset = tinyforge_shards::Dataset::open(dir).map_err(|e| Error::parse(dir, e))?;
    let seq_len = seq_len.min(model.max_length()).max(1);
    let units = dataset.unit_count(seq_len);
    let take = (max_windows as u64).min(units);
    // Evenly spaced: unit floor(i * units / take).
    let picks: Vec<u64> = (0..take)
        .map(|i| (u128::from(i) * u128::from(units) / u128::from(take)) as u64)
        .collect();
    let windows = read_units(&dataset, dir, &picks, seq_len)?;
    perplexity_of_windows(model, &windows, encoder, batch_tokens, reporter)
}

/// Perplexity of a training run's held-out units (`heldout.json`, tinyforge-sampler's
/// [`tinyforge_sampler::HeldOut`]) of the token dataset at `dir`, at the run's window length.
pub fn perplexity_of_held_out(
    model: &dyn LanguageModel,
    dir: &std::path::Path,
    held: &tinyforge_sampler::HeldOut,
    encoder: Option<&dyn TextEncoder>,
    batch_tokens: usize,
    reporter: &dyn Reporter,
) -> Result<PerplexityResult> {
    let dataset = tinyforge_shards::Dataset::open(dir).map_err(|e| Error::parse(dir, e))?;
    let seq_len = held.seq_len as usize;
    if seq_len > model.max_length() {
        return Err(Error::Config(format!(
            "the held-out units are {seq_len} tokens long, longer than the model's window of {}",
            model.max_length()
        )));
    }
    let units = dataset.unit_count(seq_len);
    if units != held.units {
        return Err(Error::Config(format!(
            "{} holds {units} units of {seq_len} tokens, but the held-out record was drawn over \
             {} (another dataset?)",
            dir.display(),
            held.units
        )));
    }
    let windows = read_units(&dataset, dir, &held.held_out, seq_len)?;
    perplexity_of_windows(model, &windows, encoder, batch_tokens, reporter)
}

fn read_units(
    dataset: &tinyforge_shards::Dataset,
    dir: &std::path::Path,
    units: &[u64],
    seq_len: usize,
) -> Result<Vec<Vec<u32>>> {
    units
        .iter()
        .map(|&unit| {
            dataset
                .window(unit, seq_len)
                .map_err(|e| Error::parse(dir, e))
        })
        .collect()
}

fn score(
    model: &dyn LanguageModel,
    requests: &[Request],
    documents: usize,
    bytes: Option<usize>,
    batch_tokens: usize,
    reporter: &dyn Reporter,
) -> Result<PerplexityResult> {
    let scores = score_requests(model, requests, batch_tokens, "perplexity", reporter)?;
    let nll: f64 = -scores.iter().map(|s| s.0).sum::<f64>();
    Ok(PerplexityResult::new(
        documents,
        requests.len(),
        bytes,
        nll,
        requests,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unigram_baseline_is_the_entropy_of_the_scored_tokens() {
        // Tokens 1, 1, 2, 3: counts {1: 2, 2: 1, 3: 1} over N = 4.
        let requests = vec![(vec![0], vec![1, 1]), (vec![1], vec![2, 3])];
        let expected = -(2.0 * 0.5f64.ln() + 2.0 * 0.25f64.ln());
        assert!((unigram_nll(&requests) - expected).abs() < 1e-12);
        let result = PerplexityResult::new(2, 2, Some(8), 4.0, &requests);
        assert_eq!(result.tokens, 4);
        // 1.5 bits per token, 6 bits over 8 bytes.
        assert!((result.unigram.bits_per_token - 1.5).abs() < 1e-12);
        assert!((result.unigram.bits_per_byte.unwrap() - 0.75).abs() < 1e-12);
        assert!((result.model.perplexity - 1f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn windows_cover_every_token_once() {
        let tokens: Vec<u32> = (10..17).collect();
        let requests = rolling_requests(&tokens, 0, 3);
        assert_eq!(
            requests,
            vec![
                (vec![0], vec![10, 11, 12]),
                (vec![12], vec![13, 14, 15]),
                (vec![15], vec![16])
            ]
        );
    }
}
