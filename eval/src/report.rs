//! The evaluation report: a table per task with chance beside it, the paper's ablation average
//! (ARC-Easy, HellaSwag, C3), and perplexity, as JSON and Markdown.

use std::fmt::Write as _;

use serde::Serialize;

use crate::metrics::TaskResult;
use crate::perplexity::{NllSummary, PerplexityResult};

/// The three benchmarks PanGu-π Pro's ablations report and average.
pub const ABLATION_TASKS: [&str; 3] = ["arc_easy", "hellaswag", "c3"];

#[derive(Debug, Clone, Serialize)]
pub struct AblationAverage {
    /// Mean of the tasks' primary metrics (acc_norm for all three).
    pub average: f64,
    pub chance: f64,
    /// Which of the three were evaluated; the average is over these only.
    pub tasks: Vec<String>,
    /// True when all three were evaluated in full (no `--limit`).
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub tasks: Vec<TaskResult>,
    pub ablation_average: Option<AblationAverage>,
    pub perplexity: Option<PerplexityResult>,
    /// Free-form settings shown in the report header (shots, seed, limit, device...).
    pub settings: serde_json::Value,
}

impl Report {
    pub fn new(
        model: String,
        tasks: Vec<TaskResult>,
        perplexity: Option<PerplexityResult>,
        settings: serde_json::Value,
        limited: bool,
    ) -> Self {
        let ablation: Vec<&TaskResult> = tasks
            .iter()
            .filter(|t| ABLATION_TASKS.contains(&t.task.as_str()))
            .collect();
        let ablation_average = (!ablation.is_empty()).then(|| AblationAverage {
            average: ablation.iter().map(|t| t.primary()).sum::<f64>() / ablation.len() as f64,
            chance: ablation.iter().map(|t| t.chance).sum::<f64>() / ablation.len() as f64,
            tasks: ablation.iter().map(|t| t.task.clone()).collect(),
            complete: ablation.len() == ABLATION_TASKS.len() && !limited,
        });
        Report {
            model,
            tasks,
            ablation_average,
            perplexity,
            settings,
        }
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Evaluation of `{}`\n", self.model);
        let _ = writeln!(out, "Settings: `{}`\n", self.settings);
        if !self.tasks.is_empty() {
            out.push_str(
                "| Task | Split | Shots | Items | acc | ± | acc_norm | ± | Primary | Chance |\n",
            );
            out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n");
            for t in &self.tasks {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} {:.2} | {:.2} |",
                    t.task,
                    t.split,
                    t.shots,
                    t.items,
                    100.0 * t.acc,
                    100.0 * t.acc_stderr,
                    100.0 * t.acc_norm,
                    100.0 * t.acc_norm_stderr,
                    t.primary_metric,
                    100.0 * t.primary(),
                    100.0 * t.chance
                );
            }
            out.push('\n');
        }
        if let Some(a) = &self.ablation_average {
            let _ = writeln!(
                out,
                "Ablation average ({}): **{:.2}** (chance {:.2}){}\n",
                a.tasks.join(", "),
                100.0 * a.average,
                100.0 * a.chance,
                if a.complete {
                    ""
                } else {
                    " — partial: not all of arc_easy, hellaswag, c3 in full"
                }
            );
        }
        if let Some(p) = &self.perplexity {
            let _ = writeln!(
                out,
                "Held-out perplexity: {} tokens, {} bytes, {} documents or windows. The unigram \
                 row is the token distribution of these same tokens, fit on them: a model below \
                 it uses context.\n",
                p.tokens,
                p.bytes.map_or("-".to_string(), |b| b.to_string()),
                p.documents
            );
            let _ = writeln!(out, "| Model | Perplexity | Bits/token | Bits/byte |");
            let _ = writeln!(out, "|---|---:|---:|---:|");
            let row = |name: &str, b: &NllSummary| {
                format!(
                    "| {name} | {:.3} | {:.4} | {} |",
                    b.perplexity,
                    b.bits_per_token,
                    b.bits_per_byte
                        .map_or("-".to_string(), |v| format!("{v:.4}"))
                )
            };
            let _ = writeln!(out, "{}", row("checkpoint", &p.model));
            let _ = writeln!(out, "{}", row("unigram (same tokens)", &p.unigram));
        }
        out
    }
}
