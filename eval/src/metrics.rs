//! Accuracy, byte-normalised accuracy and their standard errors.

use serde::Serialize;

use crate::item::{Task, chance};

/// How one item was answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemOutcome {
    pub id: String,
    pub gold: usize,
    /// Summed log-likelihood of each choice.
    pub loglikelihoods: Vec<f64>,
    /// argmax of the log-likelihoods.
    pub prediction: usize,
    /// argmax of log-likelihood / continuation UTF-8 bytes.
    pub prediction_norm: usize,
}

/// The first index of the maximum (numpy's argmax), so ties resolve as in the Python harnesses.
fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

impl ItemOutcome {
    pub fn new(
        id: String,
        gold: usize,
        loglikelihoods: Vec<f64>,
        continuation_bytes: &[usize],
    ) -> Self {
        let prediction = argmax(loglikelihoods.iter().copied());
        let prediction_norm = argmax(
            loglikelihoods
                .iter()
                .zip(continuation_bytes)
                .map(|(ll, &b)| ll / b.max(1) as f64),
        );
        ItemOutcome {
            id,
            gold,
            loglikelihoods,
            prediction,
            prediction_norm,
        }
    }
}

/// Mean and standard error of the mean (sample standard deviation / sqrt(n)) of 0/1 values.
pub fn mean_and_stderr(correct: &[bool]) -> (f64, f64) {
    let n = correct.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = correct.iter().filter(|&&c| c).count() as f64 / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let variance = correct
        .iter()
        .map(|&c| (f64::from(u8::from(c)) - mean).powi(2))
        .sum::<f64>()
        / (n - 1) as f64;
    (mean, (variance / n as f64).sqrt())
}

/// Which metric a task is compared on: byte-normalised accuracy where choices differ in length,
/// plain accuracy where every choice is one letter or the same continuation (normalising changes
/// nothing there, or only by tokenizer accident).
pub fn primary_metric(task: &str) -> &'static str {
    match task {
        "boolq" | "winogrande" | "mmlu" | "cmmlu" => "acc",
        _ => "acc_norm",
    }
}

/// A task's scores.
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    pub task: String,
    pub split: String,
    pub shots: usize,
    pub items: usize,
    pub chance: f64,
    pub acc: f64,
    pub acc_stderr: f64,
    pub acc_norm: f64,
    pub acc_norm_stderr: f64,
    pub primary_metric: &'static str,
    pub requests: usize,
    pub unique_requests: usize,
    pub continuation_tokens: usize,
    pub seconds: f64,
    #[serde(skip)]
    pub outcomes: Vec<ItemOutcome>,
}

impl TaskResult {
    pub fn primary(&self) -> f64 {
        if self.primary_metric == "acc" {
            self.acc
        } else {
            self.acc_norm
        }
    }
}

pub(crate) fn summarize(
    task: &Task,
    shots: usize,
    outcomes: Vec<ItemOutcome>,
    requests: usize,
    unique_requests: usize,
    continuation_tokens: usize,
    seconds: f64,
) -> TaskResult {
    let correct: Vec<bool> = outcomes.iter().map(|o| o.prediction == o.gold).collect();
    let correct_norm: Vec<bool> = outcomes
        .iter()
        .map(|o| o.prediction_norm == o.gold)
        .collect();
    let (acc, acc_stderr) = mean_and_stderr(&correct);
    let (acc_norm, acc_norm_stderr) = mean_and_stderr(&correct_norm);
    TaskResult {
        task: task.name.clone(),
        split: task.split.clone(),
        shots,
        items: outcomes.len(),
        chance: chance(&task.items[..outcomes.len()]),
        acc,
        acc_stderr,
        acc_norm,
        acc_norm_stderr,
        primary_metric: primary_metric(&task.name),
        requests,
        unique_requests,
        continuation_tokens,
        seconds,
        outcomes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_sample_std_over_sqrt_n() {
        let (mean, se) = mean_and_stderr(&[true, false, true, true]);
        assert_eq!(mean, 0.75);
        // sample variance = (3 * 0.0625 + 0.5625) / 3 = 0.25; se = sqrt(0.25 / 4)
        assert!((se - 0.25).abs() < 1e-12);
        assert_eq!(mean_and_stderr(&[]), (0.0, 0.0));
    }

    #[test]
    fn norm_divides_by_bytes_and_ties_take_the_first() {
        let outcome = ItemOutcome::new("x".into(), 1, vec![-4.0, -6.0], &[2, 6]);
        assert_eq!(outcome.prediction, 0);
        assert_eq!(outcome.prediction_norm, 1);
        let tie = ItemOutcome::new("y".into(), 0, vec![-1.0, -1.0], &[1, 1]);
        assert_eq!((tie.prediction, tie.prediction_norm), (0, 0));
    }
}
