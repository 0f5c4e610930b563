//! Scoring: every choice of every item becomes a (context, continuation) request; identical
//! requests are scored once; requests are sorted by length and packed into batches under a
//! token budget so padding stays small; per-item log-likelihoods become acc and acc_norm.

use std::collections::HashMap;
use std::time::Instant;
use tinyforge_task::Reporter;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::item::Task;
use crate::metrics::{ItemOutcome, TaskResult, summarize};
use crate::model::{LanguageModel, Request, TextEncoder};
use crate::prompt::{encode_pair, render_contexts};

/// How a task is scored.
#[derive(Debug, Clone, Serialize)]
pub struct EvalOptions {
    /// Few-shot examples per prompt.
    pub shots: usize,
    /// Seed of the few-shot draw.
    pub seed: u64,
    /// Score only the first N items of each task.
    pub limit: Option<usize>,
    /// Padded tokens per model call (batch size × longest request in the batch).
    pub batch_tokens: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            shots: 0,
            seed: 1234,
            limit: None,
            batch_tokens: 16_384,
        }
    }
}

/// Scores a list of requests, deduplicated and length-bucketed, as the phase `phase` of
/// `reporter` (its count: unique requests, advanced after each batch). Results come back in
/// request order.
pub fn score_requests(
    model: &dyn LanguageModel,
    requests: &[Request],
    batch_tokens: usize,
    phase: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<(f64, bool)>> {
    let mut unique: Vec<&Request> = Vec::new();
    let mut slot_of: HashMap<&Request, usize> = HashMap::new();
    let slots: Vec<usize> = requests
        .iter()
        .map(|r| {
            *slot_of.entry(r).or_insert_with(|| {
                unique.push(r);
                unique.len() - 1
            })
        })
        .collect();
    let max_length = model.max_length();
    let length = |r: &Request| (r.0.len() + r.1.len()).min(max_length + 1);
    // Longest first: the first batch shows at once whether memory suffices, and neighbours
    // have similar lengths, so padding stays small.
    let mut order: Vec<usize> = (0..unique.len()).collect();
    order.sort_by(|&a, &b| length(unique[b]).cmp(&length(unique[a])).then(a.cmp(&b)));
    let mut results = vec![(0.0, false); unique.len()];
    reporter.start(phase, order.len() as u64);
    let mut start = 0;
    while start < order.len() {
        let longest = length(unique[order[start]]).max(1);
        let fit = (batch_tokens / longest).max(1);
        let end = (start + fit).min(order.len());
        let batch: Vec<Request> = order[start..end]
            .iter()
            .map(|&i| unique[i].clone())
            .collect();
        let scored = model.loglikelihood(&batch)?;
        if scored.len() != batch.len() {
            return Err(Error::Internal(format!(
                "model returned {} scores for {} requests",
                scored.len(),
                batch.len()
            )));
        }
        for (&i, score) in order[start..end].iter().zip(scored) {
            results[i] = score;
        }
        reporter.advance((end - start) as u64);
        start = end;
    }
    Ok(slots.into_iter().map(|s| results[s]).collect())
}

/// Evaluates one task: renders prompts, tokenizes, scores, and summarizes.
pub fn evaluate_task(
    task: &Task,
    model: &dyn LanguageModel,
    encoder: &dyn TextEncoder,
    options: &EvalOptions,
    reporter: &dyn Reporter,
) -> Result<TaskResult> {
    let started = Instant::now();
    let n = options
        .limit
        .map_or(task.items.len(), |l| l.min(task.items.len()));
    let mut requests = Vec::new();
    // (item index, first request, number of choices, continuation byte lengths)
    let mut spans = Vec::with_capacity(n);
    for index in 0..n {
        let item = &task.items[index];
        let contexts = render_contexts(task, index, options.shots, options.seed);
        let first = requests.len();
        for choice in 0..item.num_choices() {
            let context = if contexts.len() == 1 {
                &contexts[0]
            } else {
                &contexts[choice]
            };
            requests.push(encode_pair(encoder, context, &item.continuations[choice])?);
        }
        spans.push((index, first));
    }
    let scores = score_requests(model, &requests, options.batch_tokens, &task.name, reporter)?;
    let outcomes: Vec<ItemOutcome> = spans
        .into_iter()
        .map(|(index, first)| {
            let item = &task.items[index];
            let choices = item.num_choices();
            let loglikelihoods: Vec<f64> =
                scores[first..first + choices].iter().map(|s| s.0).collect();
            let bytes: Vec<usize> = item.continuations.iter().map(String::len).collect();
            ItemOutcome::new(item.id.clone(), item.gold, loglikelihoods, &bytes)
        })
        .collect();
    let unique = requests
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let tokens: usize = requests.iter().map(|r| r.1.len()).sum();
    Ok(summarize(
        task,
        options.shots,
        outcomes,
        requests.len(),
        unique,
        tokens,
        started.elapsed().as_secs_f64(),
    ))
}
