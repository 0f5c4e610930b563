//! Choosing which tokens to keep.
//!
//! Always kept: every added/special token, every id the post-processor, padding or `unk_token`
//! refers to, and the alphabet (256 byte-level characters or 256 `<0xNN>` byte-fallback
//! tokens), so any text stays encodable. Then tokens by descending count (ties by ascending id),
//! each together with its **merge closure**: in BPE a token only appears if the merges that
//! build it can run, so a kept token needs both parts of *every* merge that produces it, and
//! those parts need theirs. The closure tokens count against the budget K; a candidate whose
//! closure no longer fits is skipped and the next one is tried, so the result has exactly K
//! tokens (refill). Taking every producing merge (not just one) matters for SentencePiece-style
//! files, where one token has several merges: it guarantees that wherever the base encoding
//! uses only kept tokens, the pruned tokenizer runs the very same merges and gives the same ids.

use crate::base::BaseTokenizer;
use crate::error::{Error, Result};

/// How many tokens to keep.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Exactly this many tokens (the new vocabulary size, added tokens included).
    Size(usize),
    /// The fewest tokens whose counts cover at least this share of the counted tokens.
    Coverage(f64),
}

/// Which old ids survive, and why.
#[derive(Debug, Clone)]
pub struct Selection {
    pub(crate) kept: Vec<bool>,
    pub(crate) kept_count: usize,
    pub(crate) specials: usize,
    pub(crate) alphabet: usize,
    pub(crate) by_frequency: usize,
    pub(crate) closure_added: usize,
    pub(crate) skipped_for_closure: usize,
}

impl Selection {
    pub fn kept(&self, id: u32) -> bool {
        self.kept.get(id as usize).copied().unwrap_or(false)
    }

    pub fn len(&self) -> usize {
        self.kept_count
    }

    pub fn is_empty(&self) -> bool {
        self.kept_count == 0
    }
}

/// Merges grouped by the token they produce (compressed rows: `producers[start[t]..start[t+1]]`).
struct Producers {
    start: Vec<u32>,
    merges: Vec<u32>,
}

impl Producers {
    fn new(base: &BaseTokenizer) -> Self {
        let mut start = vec![0u32; base.id_space() + 1];
        for m in &base.merges {
            start[m.result as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut fill = start.clone();
        let mut merges = vec![0u32; base.merges.len()];
        for (i, m) in base.merges.iter().enumerate() {
            let slot = &mut fill[m.result as usize];
            merges[*slot as usize] = i as u32;
            *slot += 1;
        }
        Self { start, merges }
    }

    fn of(&self, token: u32) -> &[u32] {
        let t = token as usize;
        &self.merges[self.start[t] as usize..self.start[t + 1] as usize]
    }
}

/// The ids that must always be kept, sorted and deduplicated, with the number of specials.
pub(crate) fn forced_ids(base: &BaseTokenizer) -> (Vec<u32>, usize) {
    let mut specials: Vec<u32> = base.added.iter().map(|t| t.id).collect();
    specials.extend(&base.referenced);
    specials.sort_unstable();
    specials.dedup();
    let mut all = specials.clone();
    all.extend(&base.alphabet);
    all.sort_unstable();
    all.dedup();
    let special_count = specials.len();
    (all, special_count)
}

/// The smallest `--size` possible for `base`.
pub fn minimum_size(base: &BaseTokenizer) -> usize {
    forced_ids(base).0.len()
}

/// Picks the kept set for `target` from `counts` (dense, indexed by old id).
pub fn select(base: &BaseTokenizer, counts: &[u64], target: Target) -> Result<Selection> {
    let id_space = base.id_space();
    if counts.len() != id_space {
        return Err(Error::Internal(format!(
            "counts cover {} ids, tokenizer has {id_space}",
            counts.len()
        )));
    }
    let (forced, specials) = forced_ids(base);
    let minimum = forced.len();
    let existing = base.tokens.iter().filter(|t| t.is_some()).count();
    let budget = match target {
        Target::Size(k) if k < minimum => {
            return Err(Error::SizeTooSmall {
                requested: k,
                minimum,
                specials,
                alphabet: minimum - specials,
            });
        }
        Target::Size(k) => k.min(existing),
        Target::Coverage(c) if !(c > 0.0 && c <= 1.0) => {
            return Err(Error::InvalidOption(format!(
                "--coverage must be in (0, 1], got {c}"
            )));
        }
        Target::Coverage(_) => existing,
    };
    let total: u64 = counts.iter().sum();
    let wanted = match target {
        Target::Coverage(c) => (c * total as f64).ceil() as u64,
        Target::Size(_) => u64::MAX,
    };

    let mut kept = vec![false; id_space];
    let mut kept_count = 0usize;
    let mut covered = 0u64;
    for &id in &forced {
        kept[id as usize] = true;
        kept_count += 1;
        covered += counts[id as usize];
    }
    let alphabet = minimum - specials;

    let mut order: Vec<u32> = (0..id_space as u32)
        .filter(|&id| !kept[id as usize] && base.tokens[id as usize].is_some())
        .collect();
    order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));

    let producers = Producers::new(base);
    let mut visited = vec![u32::MAX; id_space];
    let mut missing: Vec<u32> = Vec::new();
    let mut stack: Vec<u32> = Vec::new();
    let (mut by_frequency, mut closure_added, mut skipped) = (0usize, 0usize, 0usize);
    for (round, &candidate) in order.iter().enumerate() {
        if kept_count >= budget || covered >= wanted {
            break;
        }
        if kept[candidate as usize] {
            continue;
        }
        // Depth-first over producing merges; `visited` is stamped with the round so that it
        // never needs clearing.
        missing.clear();
        stack.clear();
        stack.push(candidate);
        while let Some(t) = stack.pop() {
            let slot = &mut visited[t as usize];
            if kept[t as usize] || *slot == round as u32 {
                continue;
            }
            *slot = round as u32;
            missing.push(t);
            for &m in producers.of(t) {
                let merge = base.merges[m as usize];
                stack.push(merge.left);
                stack.push(merge.right);
            }
        }
        if kept_count + missing.len() > budget {
            skipped += 1;
            continue;
        }
        for &t in &missing {
            kept[t as usize] = true;
            covered += counts[t as usize];
        }
        kept_count += missing.len();
        by_frequency += 1;
        closure_added += missing.len() - 1;
    }
    Ok(Selection {
        kept,
        kept_count,
        specials,
        alphabet,
        by_frequency,
        closure_added,
        skipped_for_closure: skipped,
    })
}
