//! A bigram model fit on token sequences: a real (if weak) language model in a few lines, used
//! to test the harness without libtorch and as a floor to compare trained models against.

use crate::error::{Error, Result};
use crate::model::{LanguageModel, Request, request_window};

/// Add-`alpha` smoothed bigram probabilities over a fixed vocabulary.
pub struct BigramModel {
    vocab: usize,
    counts: Vec<u32>,
    row_totals: Vec<u64>,
    alpha: f64,
    max_length: usize,
}

impl BigramModel {
    /// Counts consecutive pairs of every sequence; ids must be below `vocab`.
    pub fn fit(
        sequences: &[Vec<u32>],
        vocab: usize,
        alpha: f64,
        max_length: usize,
    ) -> Result<Self> {
        let mut counts = vec![0u32; vocab * vocab];
        let mut row_totals = vec![0u64; vocab];
        for sequence in sequences {
            for pair in sequence.windows(2) {
                let (a, b) = (pair[0] as usize, pair[1] as usize);
                if a >= vocab || b >= vocab {
                    return Err(Error::Config(format!(
                        "token id {} outside the vocabulary of {vocab}",
                        a.max(b)
                    )));
                }
                counts[a * vocab + b] += 1;
                row_totals[a] += 1;
            }
        }
        Ok(BigramModel {
            vocab,
            counts,
            row_totals,
            alpha,
            max_length,
        })
    }

    /// ln p(next | previous).
    pub fn logprob(&self, previous: u32, next: u32) -> f64 {
        let (a, b) = (previous as usize, next as usize);
        let count = f64::from(self.counts[a * self.vocab + b]);
        ((count + self.alpha) / (self.row_totals[a] as f64 + self.alpha * self.vocab as f64)).ln()
    }

    fn greedy(&self, previous: u32) -> u32 {
        let row = &self.counts[previous as usize * self.vocab..][..self.vocab];
        let mut best = 0;
        for (i, &c) in row.iter().enumerate() {
            if c > row[best] {
                best = i;
            }
        }
        best as u32
    }
}

impl LanguageModel for BigramModel {
    fn max_length(&self) -> usize {
        self.max_length
    }

    fn loglikelihood(&self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        requests
            .iter()
            .map(|(context, continuation)| {
                let (window, scored) = request_window(context, continuation, self.max_length)?;
                let start = window.len() - scored;
                let mut sum = 0.0;
                let mut greedy = true;
                for t in start..window.len() {
                    sum += self.logprob(window[t - 1], window[t]);
                    greedy &= self.greedy(window[t - 1]) == window[t];
                }
                Ok((sum, greedy))
            })
            .collect()
    }
}
