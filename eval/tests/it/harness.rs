//! The harness on a pure-Rust bigram model: scores equal a direct computation whatever the
//! batching, identical requests are scored once, batches are length-sorted under the budget,
//! and a model that knows the text picks the right answers.

use std::sync::Mutex;
use tinyforge_task::Silent;

use tinyforge_eval::{
    BigramModel, ByteTokenizer, EvalOptions, LanguageModel, McItem, Request, Result, Task,
    TextEncoder, evaluate_task, perplexity_of_texts, perplexity_of_windows, score_requests,
};

const CORPUS: &str = "the cat sat on the mat. the dog sat on the log. a bird sang in the tree. \
the cat ate the fish. the dog ate the bone. the sun is hot and the snow is cold. \
water is wet and fire is hot. the cat likes milk and the dog likes meat.";

fn bigram() -> BigramModel {
    let ids = ByteTokenizer.encode(CORPUS).unwrap();
    BigramModel::fit(&[ids], 257, 0.1, 64).unwrap()
}

/// Wraps a model and records every batch it is asked to score.
struct Recorder<'a> {
    inner: &'a dyn LanguageModel,
    batches: Mutex<Vec<Vec<usize>>>,
}

impl LanguageModel for Recorder<'_> {
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }
    fn loglikelihood(&self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        self.batches
            .lock()
            .unwrap()
            .push(requests.iter().map(|r| r.0.len() + r.1.len()).collect());
        self.inner.loglikelihood(requests)
    }
}

fn direct(model: &BigramModel, context: &[u32], continuation: &[u32]) -> f64 {
    let all: Vec<u32> = context.iter().chain(continuation).copied().collect();
    (context.len()..all.len())
        .map(|t| model.logprob(all[t - 1], all[t]))
        .sum()
}

fn requests() -> Vec<Request> {
    let enc = |s: &str| ByteTokenizer.encode(s).unwrap();
    let mut requests = Vec::new();
    for (c, x) in [
        ("the cat", " sat"),
        ("the dog", " ate the bone"),
        ("water is", " wet"),
        ("a", " bird sang in the tree"),
    ] {
        requests.push((enc(c), enc(x)));
    }
    requests.push(requests[1].clone());
    requests.push(requests[0].clone());
    requests
}

#[test]
fn scores_equal_direct_sums_whatever_the_batching() {
    let model = bigram();
    let requests = requests();
    let one = score_requests(&model, &requests, 1, "score", &Silent).unwrap();
    let many = score_requests(&model, &requests, 100_000, "score", &Silent).unwrap();
    assert_eq!(one, many);
    for ((context, continuation), (ll, _)) in requests.iter().zip(&one) {
        assert!((ll - direct(&model, context, continuation)).abs() < 1e-12);
    }
}

#[test]
fn duplicates_are_scored_once_and_batches_are_length_sorted() {
    let model = bigram();
    let recorder = Recorder {
        inner: &model,
        batches: Mutex::new(Vec::new()),
    };
    let requests = requests();
    let reported = Reported::default();
    score_requests(&recorder, &requests, 30, "score", &reported).unwrap();
    let batches = recorder.batches.into_inner().unwrap();
    let lengths: Vec<usize> = batches.iter().flatten().copied().collect();
    assert_eq!(lengths.len(), 4, "6 requests, 4 distinct: {batches:?}");
    assert!(
        lengths.windows(2).all(|w| w[0] >= w[1]),
        "longest first: {lengths:?}"
    );
    for batch in &batches {
        assert!(
            batch.len() == 1 || batch[0] * batch.len() <= 30,
            "over budget: {batch:?}"
        );
    }
    // One phase of the 4 distinct requests, counted in increments that add up to it.
    let (phases, advances) = reported.into_parts();
    assert_eq!(phases, vec![("score".to_owned(), 4)]);
    assert_eq!(advances.iter().sum::<u64>(), 4);
    assert_eq!(advances.len(), batches.len());
}

/// What a reporter heard: the phases it was told of, and each advance.
#[derive(Default)]
struct Reported {
    phases: Mutex<Vec<(String, u64)>>,
    advances: Mutex<Vec<u64>>,
}

impl Reported {
    fn into_parts(self) -> (Vec<(String, u64)>, Vec<u64>) {
        (
            self.phases.into_inner().unwrap(),
            self.advances.into_inner().unwrap(),
        )
    }
}

impl tinyforge_task::Reporter for Reported {
    fn start(&self, phase: &str, total: u64) {
        self.phases.lock().unwrap().push((phase.to_owned(), total));
    }

    fn advance(&self, n: u64) {
        self.advances.lock().unwrap().push(n);
    }
}

#[test]
fn long_requests_keep_the_continuation_and_drop_context_from_the_left() {
    let ids = ByteTokenizer.encode(CORPUS).unwrap();
    let model = BigramModel::fit(&[ids], 257, 0.1, 8).unwrap();
    let context = ByteTokenizer
        .encode("the sun is hot and the snow is")
        .unwrap();
    let continuation = ByteTokenizer.encode(" cold").unwrap();
    let (ll, _) = model
        .loglikelihood(&[(context.clone(), continuation.clone())])
        .unwrap()[0];
    // A bigram only looks one token back, so truncation must not change the score.
    assert!((ll - direct(&model, &context, &continuation)).abs() < 1e-12);
    let too_long = ByteTokenizer.encode(" and the snow is cold").unwrap();
    assert!(model.loglikelihood(&[(context, too_long)]).is_err());
}

fn item(id: &str, context: &str, choices: &[&str], gold: usize) -> McItem {
    McItem {
        id: id.into(),
        group: String::new(),
        preamble: String::new(),
        contexts: vec![context.into()],
        continuations: choices.iter().map(|c| c.to_string()).collect(),
        gold,
    }
}

fn task() -> Task {
    let items = vec![
        item("1", "the cat", &[" zqx vvk", " sat on the mat"], 1),
        item("2", "the dog ate", &[" the bone", " qqqq"], 0),
        item("3", "water is", &[" xzxzx", " wet"], 1),
        item("4", "the sun is", &[" hot", " jjjjj"], 0),
    ];
    Task {
        name: "toy".into(),
        split: "test".into(),
        items: items.clone(),
        fewshot: items,
        fewshot_delimiter: "\n\n".into(),
    }
}

#[test]
fn a_model_that_knows_the_text_answers_correctly() {
    let model = bigram();
    let result = evaluate_task(
        &task(),
        &model,
        &ByteTokenizer,
        &EvalOptions::default(),
        &Silent,
    )
    .unwrap();
    assert_eq!(result.items, 4);
    assert_eq!(result.acc_norm, 1.0, "{:?}", result.outcomes);
    assert_eq!(result.chance, 0.5);
    assert_eq!(result.requests, 8);
    // Raw acc favours short choices; byte-normalised acc does not.
    let long_right = &result.outcomes[0];
    assert_eq!(long_right.prediction_norm, 1);

    let limited = EvalOptions {
        limit: Some(2),
        ..EvalOptions::default()
    };
    let result = evaluate_task(&task(), &model, &ByteTokenizer, &limited, &Silent).unwrap();
    assert_eq!(result.items, 2);
}

#[test]
fn few_shot_prompts_change_the_scores_deterministically() {
    let model = bigram();
    let options = EvalOptions {
        shots: 2,
        seed: 5,
        ..EvalOptions::default()
    };
    let a = evaluate_task(&task(), &model, &ByteTokenizer, &options, &Silent).unwrap();
    let b = evaluate_task(&task(), &model, &ByteTokenizer, &options, &Silent).unwrap();
    assert_eq!(a.outcomes, b.outcomes);
    let zero = evaluate_task(
        &task(),
        &model,
        &ByteTokenizer,
        &EvalOptions::default(),
        &Silent,
    )
    .unwrap();
    // A bigram only sees the last context byte, which shots do not change, so continuation
    // scores stay the same; the prompt (and so the request set) is longer.
    assert_eq!(
        a.outcomes[0].loglikelihoods,
        zero.outcomes[0].loglikelihoods
    );
    assert!(a.continuation_tokens == zero.continuation_tokens);
}

#[test]
fn perplexity_matches_the_direct_computation() {
    let model = bigram();
    let texts = vec![
        "the cat sat on the log.".to_string(),
        "the dog likes milk.".to_string(),
    ];
    let result = perplexity_of_texts(&model, &ByteTokenizer, &texts, 1000, &Silent).unwrap();
    let mut nll = 0.0;
    let mut tokens = 0;
    for text in &texts {
        let ids = ByteTokenizer.encode(text).unwrap();
        nll -= direct(&model, &[256], &ids);
        tokens += ids.len();
    }
    assert_eq!(result.tokens, tokens);
    assert!((result.model.nll_nats - nll).abs() < 1e-9);
    assert!((result.model.perplexity - (nll / tokens as f64).exp()).abs() < 1e-9);
    let bytes: usize = texts.iter().map(String::len).sum();
    assert!(
        (result.model.bits_per_byte.unwrap() - nll / (std::f64::consts::LN_2 * bytes as f64)).abs()
            < 1e-12
    );
    // Bytes are tokens here, so bits per byte equals bits per token.
    assert!((result.model.bits_per_byte.unwrap() - result.model.bits_per_token).abs() < 1e-12);

    let window = ByteTokenizer.encode("the cat sat").unwrap();
    let w = perplexity_of_windows(
        &model,
        std::slice::from_ref(&window),
        Some(&ByteTokenizer),
        1000,
        &Silent,
    )
    .unwrap();
    assert_eq!(
        (w.tokens, w.bytes),
        (window.len() - 1, Some(window.len() - 1))
    );
    assert!((w.model.nll_nats + direct(&model, &window[..1], &window[1..])).abs() < 1e-9);
}
