//! `tinyforge report`: one self-contained HTML page per training run (inline SVG and CSS, no
//! script, no server): the run's summary, its loss curves, each round's plan and selection
//! against the loss histogram it was drawn from, the data and vocabulary it saw, and the eval
//! table, as far as the folder holds them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;
use tinyforge_sampler::{HELD_OUT_FILE, HeldOut, Plan};

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tinyforge report out/demo                  # a `tinyforge run` work folder: train/, vocab/, eval/, reports/
  tinyforge report out/train --eval out/eval --vocab out/vocab --out run.html

DIR is a training run folder (metrics.jsonl, plans/, losses/) or a pipeline work folder whose
train/ is one; vocab/, eval/ and reports/ beside it are read when present. The page is written to
DIR/report.html unless --out says otherwise; it opens from disk in any browser.")]
pub struct ReportArgs {
    /// Training run folder, or a `tinyforge run` work folder.
    pub dir: PathBuf,
    /// The HTML file (default: DIR/report.html).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Eval output folder (report.json from `tinyforge eval --out`).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Compact tokenizer folder (report.json from `tinyforge vocab prune`).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Bins of the loss histograms.
    #[arg(long, default_value_t = 40)]
    pub bins: usize,
}

/// Where the parts of a report live.
struct Layout {
    run: PathBuf,
    eval: Option<PathBuf>,
    vocab: Option<PathBuf>,
    reports: Option<PathBuf>,
}

impl Layout {
    fn find(args: &ReportArgs) -> anyhow::Result<Layout> {
        let dir = &args.dir;
        let existing = |p: PathBuf| p.join("report.json").is_file().then_some(p);
        let (run, work) = if dir.join("metrics.jsonl").is_file() {
            (dir.clone(), None)
        } else if dir.join("train/metrics.jsonl").is_file() {
            (dir.join("train"), Some(dir.clone()))
        } else {
            bail!(
                "{}: neither a training run folder (metrics.jsonl) nor a pipeline work folder \
                 (train/metrics.jsonl)",
                dir.display()
            );
        };
        let beside = |name: &str| work.as_ref().and_then(|w| existing(w.join(name)));
        Ok(Layout {
            run,
            eval: args.eval.clone().or_else(|| beside("eval")),
            vocab: args.vocab.clone().or_else(|| beside("vocab")),
            reports: work.map(|w| w.join("reports")).filter(|r| r.is_dir()),
        })
    }
}

pub fn run(args: ReportArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let layout = Layout::find(&args)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("report.html"));
    let mut page = Page::default();
    let run = &layout.run;
    let train_report = read_json_if(&run.join("report.json"))?;
    let config = read_json_if(&run.join("train-config.json"))?;

    page.summary(run, train_report.as_ref(), config.as_ref());
    let records = tinyforge_train::read_records(&run.join("metrics.jsonl"))?;
    let steps = records
        .iter()
        .filter(|r| matches!(r, tinyforge_train::Record::Train(_)))
        .count();
    page.section("Loss", "loss");
    if steps == 0 {
        page.para("No training step recorded yet.");
    } else {
        page.svg(&tinyforge_train::loss_svg(&records)?);
        page.para(&format!(
            "{steps} steps. Validation loss is measured on the run's held-out units (below)."
        ));
    }
    page.rounds(run, args.bins)?;
    page.data(run, config.as_ref(), layout.reports.as_deref())?;
    if let Some(vocab) = &layout.vocab {
        page.vocab(vocab)?;
    }
    if let Some(eval) = &layout.eval {
        page.eval(eval)?;
    }
    let html = page.finish(&run.display().to_string());
    tinyforge_task::write_atomic(&out, html.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    let summary = serde_json::json!({
        "report": out,
        "run": run,
        "bytes": html.len(),
        "pictures": page.pictures,
        "sections": page.sections,
    });
    crate::output::json(&summary)?;
    Ok(())
}

fn read_json_if(path: &Path) -> anyhow::Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs_err::read_to_string(path)?;
    let value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    Ok(Some(value))
}

/// The page under construction.
#[derive(Default)]
struct Page {
    body: String,
    pictures: usize,
    sections: Vec<String>,
}

impl Page {
    fn section(&mut self, title: &str, id: &str) {
        self.sections.push(id.to_owned());
        let _ = writeln!(self.body, "<h2 id=\"{id}\">{}</h2>", esc(title));
    }

    fn para(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", esc(text));
    }

    /// An SVG document inline (its XML declaration dropped).
    fn svg(&mut self, svg: &str) {
        let start = svg.find("<svg").unwrap_or(0);
        self.pictures += 1;
        let _ = writeln!(self.body, "<figure>{}</figure>", &svg[start..]);
    }

    /// A two-column table of names and values.
    fn pairs(&mut self, rows: &[(&str, String)]) {
        self.body.push_str("<table class=\"pairs\">\n");
        for (name, value) in rows {
            let _ = writeln!(
                self.body,
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(name),
                esc(value)
            );
        }
        self.body.push_str("</table>\n");
    }

    fn table(&mut self, head: &[&str], rows: &[Vec<String>]) {
        self.body.push_str("<table>\n<tr>");
        for h in head {
            let _ = write!(self.body, "<th>{}</th>", esc(h));
        }
        self.body.push_str("</tr>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{}</td>", esc(cell));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table>\n");
    }

    fn summary(&mut self, run: &Path, report: Option<&Value>, config: Option<&Value>) {
        self.section("Run", "run");
        let mut rows = vec![("folder", run.display().to_string())];
        if let Some(model) = config.map(|c| &c["run"]["model"]) {
            rows.push((
                "model",
                format!(
                    "{}: {} layers × {} wide, {} heads ({} KV), FFN {}, vocabulary {}",
                    text(&model["name"]),
                    model["layers"],
                    model["dim"],
                    model["heads"],
                    model["kv_heads"],
                    model["ffn_dim"],
                    model["vocab_size"]
                ),
            ));
        }
        match report {
            Some(r) => {
                rows.push(("parameters", count(&r["params"])));
                rows.push((
                    "state",
                    if r["complete"] == true {
                        format!("complete: {} rounds", r["rounds_done"])
                    } else {
                        format!("stopped after {} rounds (resumable)", r["rounds_done"])
                    },
                ));
                rows.push(("steps", count(&r["steps"])));
                rows.push(("tokens trained", count(&r["tokens"])));
                rows.push((
                    "loss",
                    format!(
                        "{} → {} (last validation {})",
                        fixed(&r["first_loss"], 3),
                        fixed(&r["last_loss"], 3),
                        fixed(&r["last_val_loss"], 3)
                    ),
                ));
                rows.push((
                    "throughput",
                    format!(
                        "{} tokens/s, {} model FLOP/s, on {} × {}",
                        count(&r["mean_tokens_per_s"]),
                        sci(&r["mean_model_flops_per_s"]),
                        r["world_size"],
                        text(&r["device"])
                    ),
                ));
                rows.push(("checkpoint", text(&r["checkpoint"])));
            }
            None => rows.push(("state", "running (no report.json yet)".into())),
        }
        self.pairs(&rows);
    }

    /// Each round's plan; for a selected round, its selection against the loss histogram of
    /// the round it was drawn from.
    fn rounds(&mut self, run: &Path, bins: usize) -> anyhow::Result<()> {
        self.section("Rounds", "rounds");
        let mut rows = Vec::new();
        let mut pictures = Vec::new();
        for round in 1.. {
            let path = run.join("plans").join(format!("round-{round}.json"));
            if !path.is_file() {
                break;
            }
            let plan = Plan::open(&path)?;
            let drawable: u64 = plan.pools().iter().map(|p| p.drawable()).sum();
            let previous_losses = run
                .join("losses")
                .join(format!("score-round-{}.parquet", round - 1));
            let tables = if round > 1 && previous_losses.is_file() {
                vec![previous_losses]
            } else {
                vec![]
            };
            let summary = tinyforge_sampler::summarize(&plan, &tables, bins)?;
            let how = match &summary.selection {
                Some(s) => format!(
                    "{} at {} level: {} of {} drawn (fraction {}, temperature {})",
                    s.method, s.level, s.selected, s.candidates, s.fraction, s.temperature
                ),
                None => "keyed permutation of the units".into(),
            };
            rows.push(vec![
                round.to_string(),
                summary.steps.to_string(),
                summary.distinct_units.to_string(),
                format!(
                    "{:.1}%",
                    100.0 * summary.distinct_units as f64 / drawable.max(1) as f64
                ),
                summary.tokens.to_string(),
                how,
            ]);
            if let Some(h) = &summary.losses {
                let title = format!(
                    "round {round}: selected units vs round {} losses",
                    round - 1
                );
                pictures.push(tinyforge_sampler::histogram_svg(h, &title)?);
            }
        }
        if rows.is_empty() {
            self.para("No round plan yet.");
            return Ok(());
        }
        self.table(
            &[
                "round",
                "steps",
                "distinct units",
                "of drawable units",
                "tokens",
                "selection",
            ],
            &rows,
        );
        for svg in pictures {
            self.svg(&svg);
            self.para(
                "Loss densities under the model at the end of the previous round: all units it \
                 trained on (blue), those selected for this round (red); the legend gives each \
                 mean. Selection by softmax(loss / temperature) moves weight to higher losses, \
                 the more the lower the temperature.",
            );
        }
        Ok(())
    }

    fn data(
        &mut self,
        run: &Path,
        config: Option<&Value>,
        reports: Option<&Path>,
    ) -> anyhow::Result<()> {
        self.section("Data", "data");
        let mut rows = Vec::new();
        if let Some(data) = config.and_then(|c| c["data"].as_str()) {
            rows.push(("dataset", data.to_owned()));
            if let Ok(m) = tinyforge_shards::Manifest::read(Path::new(data)) {
                rows.push(("documents", count(&m.documents.into())));
                rows.push(("tokens", count(&m.total_tokens.into())));
                rows.push(("shards", m.shards.len().to_string()));
                rows.push(("vocabulary", m.vocab_size.to_string()));
            }
        }
        let held = run.join(HELD_OUT_FILE);
        if held.is_file() {
            let h = HeldOut::read(&held)?;
            rows.push((
                "held out",
                format!(
                    "{} of {} units of {} tokens, one from each 1/{} of the stream (seed {}); \
                     no plan draws them",
                    h.held_out.len(),
                    h.units,
                    h.seq_len,
                    h.held_out.len(),
                    h.seed
                ),
            ));
        }
        self.pairs(&rows);
        let ingest = match reports {
            Some(dir) => crate::commands::run::stage_report(dir, "ingest")?,
            None => None,
        };
        if let Some(report) = ingest {
            let mut rows = Vec::new();
            if let Some(sources) = report["by_source"].as_object() {
                for (name, s) in sources {
                    rows.push(vec![
                        name.clone(),
                        count(&s["records"]),
                        count(&s["documents"]),
                        count(&s["text_bytes"]),
                    ]);
                }
            }
            if !rows.is_empty() {
                self.para("Documents by source, after cleaning and deduplication (ingest):");
                self.table(&["source", "records", "documents", "text bytes"], &rows);
            }
            let mut rows = Vec::new();
            if let Some(langs) = report["by_lang"].as_object() {
                for (lang, s) in langs {
                    rows.push(vec![
                        lang.clone(),
                        count(&s["documents"]),
                        count(&s["text_bytes"]),
                    ]);
                }
            }
            if !rows.is_empty() {
                self.table(&["language", "documents", "text bytes"], &rows);
            }
        }
        Ok(())
    }

    fn vocab(&mut self, dir: &Path) -> anyhow::Result<()> {
        let Some(r) = read_json_if(&dir.join("report.json"))? else {
            return Ok(());
        };
        self.section("Vocabulary", "vocab");
        self.pairs(&[
            ("base tokenizer", text(&r["base_tokenizer"])),
            (
                "size",
                format!(
                    "{} → {} tokens, {} → {} merges",
                    count(&r["base_vocab_size"]),
                    count(&r["vocab_size"]),
                    count(&r["base_merges"]),
                    count(&r["merges"])
                ),
            ),
            (
                "coverage",
                format!(
                    "{} of the corpus's {} base tokens are kept tokens ({} for the top K alone)",
                    percent(&r["coverage"]),
                    count(&r["total_tokens"]),
                    percent(&r["top_k_coverage"])
                ),
            ),
            (
                "kept",
                format!(
                    "{} specials, {} alphabet, {} by frequency, {} for merge closure",
                    r["kept"]["specials"],
                    r["kept"]["alphabet"],
                    r["kept"]["by_frequency"],
                    r["kept"]["merge_closure"]
                ),
            ),
        ]);
        let picture = dir.join("counts.coverage.svg");
        if picture.is_file() {
            self.svg(&fs_err::read_to_string(&picture)?);
        }
        Ok(())
    }

    fn eval(&mut self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join("report.json");
        let Some(r) = read_json_if(&path)? else {
            bail!("{}: no eval report", path.display());
        };
        self.section("Evaluation", "eval");
        self.para(&format!("Checkpoint {}", text(&r["model"])));
        let tasks: Vec<Vec<String>> = r["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                vec![
                    text(&t["task"]),
                    t["shots"].to_string(),
                    t["items"].to_string(),
                    fixed(&t["acc"], 3),
                    fixed(&t["acc_norm"], 3),
                    fixed(&t["chance"], 3),
                ]
            })
            .collect();
        if !tasks.is_empty() {
            self.table(
                &["task", "shots", "items", "acc", "acc_norm", "chance"],
                &tasks,
            );
        }
        let p = &r["perplexity"];
        if p.is_object() {
            self.para(&format!(
                "Held-out perplexity over {} tokens ({} bytes) in {} windows. The unigram row is \
                 the token distribution of these same tokens, fit on them: a model below it has \
                 learned to use context.",
                count(&p["tokens"]),
                count(&p["bytes"]),
                p["windows"]
            ));
            let row = |name: &str, s: &Value| {
                vec![
                    name.to_owned(),
                    fixed(&s["perplexity"], 2),
                    fixed(&s["bits_per_token"], 4),
                    fixed(&s["bits_per_byte"], 4),
                ]
            };
            self.table(
                &["model", "perplexity", "bits/token", "bits/byte"],
                &[
                    row("checkpoint", p),
                    row("unigram (same tokens)", &p["unigram"]),
                ],
            );
        }
        Ok(())
    }

    fn finish(&self, title: &str) -> String {
        let mut html = String::new();
        let _ = write!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>tinyforge report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>tinyforge report</h1>\n<p class=\"sub\">{}</p>\n<nav>",
            esc(title),
            esc(title)
        );
        for id in &self.sections {
            let _ = write!(html, "<a href=\"#{id}\">{id}</a> ");
        }
        html.push_str("</nav>\n");
        html.push_str(&self.body);
        html.push_str("</body>\n</html>\n");
        html
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;\
padding:0 1em;color:#222}h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}\
nav a{margin-right:1em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .6em;\
text-align:left}td{font-variant-numeric:tabular-nums}table.pairs th{background:#f6f6f6;\
white-space:nowrap}figure{margin:.6em 0}figure svg{max-width:100%;height:auto}";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// A number with thousands separators (rounded to an integer).
fn count(v: &Value) -> String {
    let Some(x) = v.as_f64() else {
        return text(v);
    };
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

fn fixed(v: &Value, places: usize) -> String {
    v.as_f64()
        .map_or_else(|| text(v), |x| format!("{x:.places$}"))
}

fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| text(v), |x| format!("{:.1}%", 100.0 * x))
}

fn sci(v: &Value) -> String {
    v.as_f64().map_or_else(|| text(v), |x| format!("{x:.2e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_text_are_formatted_for_people() {
        assert_eq!(count(&Value::from(1234567)), "1,234,567");
        assert_eq!(count(&Value::from(999)), "999");
        assert_eq!(count(&Value::from(-5000.4)), "-5,000");
        assert_eq!(percent(&Value::from(0.8923)), "89.2%");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(fixed(&Value::Null, 3), "-");
    }
}
