//! Few-shot prompts and the context/continuation split into tokens.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::item::{McItem, Task};
use crate::model::TextEncoder;

/// The contexts (one per choice) item `index` of `task` is scored after, with `shots` solved
/// examples in front. Examples come from the task's few-shot pool, from the item's own group
/// when the pool has any, never the item itself; the draw depends only on (seed, index), so
/// `--limit` does not change the prompts of the items it keeps.
pub fn render_contexts(task: &Task, index: usize, shots: usize, seed: u64) -> Vec<String> {
    let item = &task.items[index];
    let mut prefix = item.preamble.clone();
    if shots > 0 {
        let examples = draw_examples(&task.fewshot, item, shots, seed, index);
        for example in examples {
            prefix.push_str(&example.solved());
            prefix.push_str(&task.fewshot_delimiter);
        }
    }
    item.contexts
        .iter()
        .map(|c| format!("{prefix}{c}"))
        .collect()
}

fn draw_examples<'a>(
    pool: &'a [McItem],
    item: &McItem,
    shots: usize,
    seed: u64,
    index: usize,
) -> Vec<&'a McItem> {
    let same_group: Vec<&McItem> = pool
        .iter()
        .filter(|p| !item.group.is_empty() && p.group == item.group && p.id != item.id)
        .collect();
    let candidates: Vec<&McItem> = if same_group.is_empty() {
        pool.iter().filter(|p| p.id != item.id).collect()
    } else {
        same_group
    };
    let k = shots.min(candidates.len());
    // A golden-ratio stride decorrelates neighbouring items' streams.
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut chosen = sample(&mut rng, candidates.len(), k).into_vec();
    // Keep the pool's order so a prompt reads the same whatever the sampler's output order.
    chosen.sort_unstable();
    chosen.into_iter().map(|i| candidates[i]).collect()
}

/// Tokenizes a (context, continuation) pair as lm-evaluation-harness does: trailing spaces of
/// the context move to the continuation, the pair is encoded whole and the context's tokens are
/// cut off its front, so a merge across the boundary is scored the way the model would see it.
/// An empty context becomes the encoder's prefix token.
pub fn encode_pair(
    encoder: &dyn TextEncoder,
    context: &str,
    continuation: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let trimmed = context.trim_end_matches(' ');
    let moved = &context[trimmed.len()..];
    let continuation = format!("{moved}{continuation}");
    if trimmed.is_empty() {
        return Ok((vec![encoder.prefix_token()], encoder.encode(&continuation)?));
    }
    let whole = encoder.encode(&format!("{trimmed}{continuation}"))?;
    let context_ids = encoder.encode(trimmed)?;
    let split = context_ids.len().min(whole.len());
    let (context_ids, continuation_ids) = whole.split_at(split);
    Ok((context_ids.to_vec(), continuation_ids.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ByteTokenizer;

    fn item(id: &str, group: &str, context: &str, gold: usize) -> McItem {
        McItem {
            id: id.into(),
            group: group.into(),
            preamble: String::new(),
            contexts: vec![context.into()],
            continuations: vec![" a".into(), " b".into()],
            gold,
        }
    }

    fn task() -> Task {
        let items: Vec<McItem> = (0..20)
            .map(|i| {
                item(
                    &format!("q{i}"),
                    if i < 10 { "x" } else { "y" },
                    &format!("Q{i}:"),
                    i % 2,
                )
            })
            .collect();
        Task {
            name: "t".into(),
            split: "test".into(),
            items: items.clone(),
            fewshot: items,
            fewshot_delimiter: "\n\n".into(),
        }
    }

    #[test]
    fn zero_shot_is_the_bare_context() {
        assert_eq!(render_contexts(&task(), 3, 0, 1), vec!["Q3:".to_string()]);
    }

    #[test]
    fn shots_are_seeded_same_group_and_never_the_item() {
        let task = task();
        let a = render_contexts(&task, 3, 3, 7);
        assert_eq!(a, render_contexts(&task, 3, 3, 7));
        let prompt = &a[0];
        assert_eq!(prompt.matches("\n\n").count(), 3);
        assert!(prompt.ends_with("\n\nQ3:"));
        assert!(!prompt[..prompt.len() - 3].contains("Q3:"), "{prompt}");
        for i in 10..20 {
            assert!(
                !prompt.contains(&format!("Q{i}:")),
                "example from another group in {prompt}"
            );
        }
        let differs = (0..50).any(|s| render_contexts(&task, 3, 3, s) != a);
        assert!(differs, "the seed changes the examples");
    }

    #[test]
    fn pair_encoding_moves_trailing_space() {
        let (ctx, cont) = encode_pair(&ByteTokenizer, "Answer: ", "yes").unwrap();
        assert_eq!(
            ctx,
            b"Answer:".iter().map(|&b| u32::from(b)).collect::<Vec<_>>()
        );
        assert_eq!(
            cont,
            b" yes".iter().map(|&b| u32::from(b)).collect::<Vec<_>>()
        );
        let (ctx, cont) = encode_pair(&ByteTokenizer, "", "hi").unwrap();
        assert_eq!(ctx, vec![256]);
        assert_eq!(cont, vec![104, 105]);
    }
}
