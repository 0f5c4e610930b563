//! Text generation for a quick look at a model: greedy, or sampling with a temperature and
//! nucleus (top-p) cut, seeded, stopping at an end token or a length. One forward per new
//! token over the whole (left-truncated) window: no key/value cache, which is slow for long
//! outputs but needs nothing beyond [`LanguageModel::next_token_logits`].

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::model::LanguageModel;

/// How tokens are chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub max_new_tokens: usize,
    /// 0: greedy (the argmax, the lowest id on ties).
    pub temperature: f64,
    /// Sample from the smallest set of most likely tokens whose probability reaches this
    /// (1.0: all of them).
    pub top_p: f64,
    pub seed: u64,
    /// Tokens that end generation (kept in the output).
    pub stop: Vec<u32>,
}

impl Sampling {
    fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::Config(format!(
                "temperature {} must be 0 (greedy) or positive",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Config(format!(
                "top_p {} must be in (0, 1]",
                self.top_p
            )));
        }
        Ok(())
    }
}

/// The tokens generated after `prompt`, and whether a stop token ended them.
pub fn generate(
    model: &dyn LanguageModel,
    prompt: &[u32],
    sampling: &Sampling,
    mut on_token: impl FnMut(u32),
) -> Result<(Vec<u32>, bool)> {
    sampling.validate()?;
    if prompt.is_empty() {
        return Err(Error::Config("the prompt encodes to no tokens".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(sampling.seed);
    let mut tokens = prompt.to_vec();
    let mut new = Vec::with_capacity(sampling.max_new_tokens);
    let window = model.max_length().max(1);
    for _ in 0..sampling.max_new_tokens {
        let start = tokens.len().saturating_sub(window);
        let logits = model.next_token_logits(&tokens[start..])?;
        let next = choose(&logits, sampling, &mut rng)?;
        tokens.push(next);
        new.push(next);
        on_token(next);
        if sampling.stop.contains(&next) {
            return Ok((new, true));
        }
    }
    Ok((new, false))
}

fn choose(logits: &[f32], sampling: &Sampling, rng: &mut ChaCha8Rng) -> Result<u32> {
    if logits.is_empty() || logits.iter().any(|l| l.is_nan()) {
        return Err(Error::Model("the model gave empty or NaN logits".into()));
    }
    if sampling.temperature == 0.0 {
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        return Ok(best as u32);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            (
                i as u32,
                ((f64::from(l) - f64::from(max)) / sampling.temperature).exp(),
            )
        })
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    // Most likely first (lower id first on ties), then the nucleus.
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut mass = 0.0;
    let mut keep = probs.len();
    for (i, p) in probs.iter().enumerate() {
        mass += p.1;
        if mass >= sampling.top_p {
            keep = i + 1;
            break;
        }
    }
    let nucleus = &probs[..keep];
    let nucleus_mass: f64 = nucleus.iter().map(|p| p.1).sum();
    let mut draw = rng.random::<f64>() * nucleus_mass;
    for p in nucleus {
        draw -= p.1;
        if draw <= 0.0 {
            return Ok(p.0);
        }
    }
    Ok(nucleus[nucleus.len() - 1].0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Request;

    /// Logits that favour `(last + 1) % 5`, then `(last + 2) % 5`.
    struct Counter;

    impl LanguageModel for Counter {
        fn max_length(&self) -> usize {
            4
        }
        fn loglikelihood(&self, _: &[Request]) -> Result<Vec<(f64, bool)>> {
            Ok(Vec::new())
        }
        fn next_token_logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
            assert!(tokens.len() <= 4, "the window is cut to max_length");
            let last = *tokens.last().unwrap();
            let mut logits = vec![0.0f32; 5];
            logits[((last + 1) % 5) as usize] = 3.0;
            logits[((last + 2) % 5) as usize] = 2.9;
            Ok(logits)
        }
    }

    fn sampling(temperature: f64, top_p: f64, seed: u64) -> Sampling {
        Sampling {
            max_new_tokens: 12,
            temperature,
            top_p,
            seed,
            stop: vec![],
        }
    }

    #[test]
    fn greedy_nucleus_and_stop() {
        let (greedy, stopped) = generate(&Counter, &[0], &sampling(0.0, 1.0, 0), |_| {}).unwrap();
        assert_eq!(greedy, [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2]);
        assert!(!stopped);
        // A nucleus of the top token alone is greedy at any temperature.
        let top = generate(&Counter, &[0], &sampling(1.0, 0.3, 7), |_| {})
            .unwrap()
            .0;
        assert_eq!(top, greedy);
        // Sampling is seeded: the same seed, the same tokens; it leaves the greedy path.
        let a = generate(&Counter, &[0], &sampling(1.0, 0.9, 1), |_| {})
            .unwrap()
            .0;
        let b = generate(&Counter, &[0], &sampling(1.0, 0.9, 1), |_| {})
            .unwrap()
            .0;
        assert_eq!(a, b);
        let mut steps = a.iter().zip(std::iter::once(&0).chain(&a));
        assert!(steps.all(|(&next, &last)| next == (last + 1) % 5 || next == (last + 2) % 5));
        assert_ne!(a, greedy);
        let stop = Sampling {
            stop: vec![3],
            ..sampling(0.0, 1.0, 0)
        };
        assert_eq!(
            generate(&Counter, &[0], &stop, |_| {}).unwrap(),
            (vec![1, 2, 3], true)
        );
        let err = generate(&Counter, &[0], &sampling(-1.0, 1.0, 0), |_| {}).unwrap_err();
        assert!(err.to_string().contains("temperature"), "{err}");
    }
}
