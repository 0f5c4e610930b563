//! The one shape every benchmark is mapped to: a multiple-choice item whose choices are scored
//! as continuations of a context, as lm-evaluation-harness does.

use serde::{Deserialize, Serialize};

/// One multiple-choice question, already rendered into prompt text.
///
/// Most tasks share one context across choices (`contexts.len() == 1`); WinoGrande's partial
/// scoring puts each option into its own context and scores the same continuation after it, so
/// `contexts` may also hold one entry per choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McItem {
    /// Stable id: the benchmark's own id, or `file:line` / `file:row` where it has none.
    pub id: String,
    /// Few-shot examples are drawn from pool items of the same group (the MMLU/CMMLU subject,
    /// the C3 genre) when there are any, so a shot is on topic.
    pub group: String,
    /// Text put once before the few-shot examples (MMLU's "The following are multiple choice
    /// questions (with answers) about ..."). Empty for most tasks.
    pub preamble: String,
    pub contexts: Vec<String>,
    /// One per choice, with the separator (a leading space for English tasks) included.
    pub continuations: Vec<String>,
    pub gold: usize,
}

impl McItem {
    pub fn num_choices(&self) -> usize {
        self.continuations.len()
    }

    /// The context choice `i` is scored after.
    pub fn context(&self, choice: usize) -> &str {
        if self.contexts.len() == 1 {
            &self.contexts[0]
        } else {
            &self.contexts[choice]
        }
    }

    /// The item rendered as a solved example for a few-shot prompt: the gold choice's context
    /// followed by the gold continuation.
    pub fn solved(&self) -> String {
        format!(
            "{}{}",
            self.context(self.gold),
            self.continuations[self.gold]
        )
    }

    /// Checks the invariants the harness relies on; readers call it so a broken item is
    /// reported where it was read.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.continuations.len();
        if n < 2 {
            return Err(format!("needs at least 2 choices, has {n}"));
        }
        if self.contexts.len() != 1 && self.contexts.len() != n {
            return Err(format!("{} contexts for {n} choices", self.contexts.len()));
        }
        if self.gold >= n {
            return Err(format!(
                "gold index {} out of range for {n} choices",
                self.gold
            ));
        }
        if self.continuations.iter().any(String::is_empty) {
            return Err("empty choice".to_string());
        }
        Ok(())
    }
}

/// A loaded benchmark: the items to score and the pool few-shot examples come from.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    /// Which split `items` came from ("test", "validation").
    pub split: String,
    pub items: Vec<McItem>,
    /// Solved examples for `--shots k`; may be the evaluated split itself, in which case the
    /// item being asked is never its own example (lm-evaluation-harness does the same).
    pub fewshot: Vec<McItem>,
    /// Separator between few-shot examples and before the question.
    pub fewshot_delimiter: String,
}

impl Task {
    /// Expected accuracy of guessing uniformly: the mean of 1 / choices over the items.
    pub fn chance(&self) -> f64 {
        chance(&self.items)
    }
}

pub(crate) fn chance(items: &[McItem]) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    items
        .iter()
        .map(|item| 1.0 / item.num_choices() as f64)
        .sum::<f64>()
        / items.len() as f64
}
