//! `tinyforge run CONFIG`: the whole pipeline on one machine, one command.
//!
//! The driver invokes this same binary once per stage, as a cluster scheduler would run each
//! stage as its own batch job. Stages hand over files only, so the driver needs nothing from them
//! but their command lines and their JSON reports. A stage is skipped when its report is on disk
//! from a run with the same command line; otherwise it runs again, and the stage itself skips
//! whatever part of its output is already complete (every stage is resumable).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
  tinyforge run configs/demo.toml\n  \
  tinyforge run configs/demo.toml --work-dir /scratch/demo --from tokenize\n  \
  tinyforge run configs/demo.toml --dry-run")]
pub struct RunArgs {
    /// The pipeline config (TOML): which corpus, tokenizer, model and rounds.
    pub config: PathBuf,
    /// Where every stage writes its output (default: the config's `work_dir`).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Run this stage and every later one again even if their reports are complete.
    #[arg(long, value_name = "STAGE")]
    pub from: Option<String>,
    /// Print the stage command lines without running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// `configs/demo.toml` and its kind: which corpus, vocabulary, model and rounds. Paths are as
/// given (relative to the directory `tinyforge run` starts in, like every other config).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where the stages write: docs/, vocab/, tokens/, train/, eval/, reports/.
    pub work_dir: PathBuf,
    pub ingest: IngestStage,
    pub vocab: Option<VocabStage>,
    #[serde(default)]
    pub tokenize: TokenizeStage,
    pub inherit: Option<InheritStage>,
    pub train: Option<TrainStage>,
    pub eval: Option<EvalStage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestStage {
    /// An ingest config (`tinyforge ingest --config`).
    pub config: PathBuf,
    /// Optional DataFusion SQL filter over the cleaned documents.
    #[serde(rename = "where")]
    pub where_sql: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabStage {
    /// Base tokenizer.json (default: Qwen3's from the data cache).
    pub base: Option<PathBuf>,
    /// Compact vocabulary size, or ...
    pub size: Option<usize>,
    /// ... the share of counted tokens to cover.
    pub coverage: Option<f64>,
    /// Model preset for the embedding-share report.
    pub model: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeStage {
    /// Tokenizer to encode with when there is no `[vocab]` stage.
    pub tokenizer: Option<PathBuf>,
    pub shard_tokens: Option<u64>,
    /// `tinyforge tokenize --max-pretoken-chars`.
    pub max_pretoken_chars: Option<usize>,
}

/// Parameter inheritance (paper §5): the student the train stage starts from, cut from a larger
/// Hugging Face teacher; calibrated on the pipeline's token shards, with the compact
/// tokenizer's id map when there is a `[vocab]` stage (its base must be the teacher's
/// tokenizer). The train config's model must be the student's shape, or left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InheritStage {
    /// The teacher's Hugging Face folder.
    pub teacher: PathBuf,
    /// The student's shape: a built-in model name or a model TOML.
    pub student: String,
    /// l1, l2, taylor, activation or mask (default taylor).
    pub criterion: Option<String>,
    /// uniform, block or a list of teacher layers (default block).
    pub layers: Option<String>,
    pub calib_sequences: Option<usize>,
    pub calib_len: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainStage {
    /// A training config (`tinyforge train CONFIG`); its `data` and `out` are replaced by the
    /// pipeline's folders.
    pub config: PathBuf,
    /// Train on this many local processes (`tinyforge train --nproc N`).
    pub nproc: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalStage {
    pub tasks: Vec<String>,
    pub limit: Option<usize>,
    pub shots: Option<usize>,
    /// Perplexity and bits per byte on the training run's held-out units, beside the unigram
    /// baseline (default true; a train config with its own `val_data` records none).
    pub held_out: Option<bool>,
}

impl PipelineConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs_err::read_to_string(path)?;
        toml::from_str(&text).with_context(|| format!("{}: not a pipeline config", path.display()))
    }

    /// The stages in order, each as the `tinyforge` command line that runs it.
    pub fn stages(&self, work: &Path) -> anyhow::Result<Vec<Stage>> {
        let p = |sub: &str| work.join(sub).display().to_string();
        let mut stages = Vec::new();
        let mut push = |name: &str, args: Vec<String>| {
            stages.push(Stage {
                name: name.to_owned(),
                args,
            })
        };
        let mut ingest = vec![
            "ingest".into(),
            "--config".into(),
            self.ingest.config.display().to_string(),
            "--out".into(),
            p("docs"),
        ];
        if let Some(sql) = &self.ingest.where_sql {
            ingest.extend(["--where".into(), sql.clone()]);
        }
        push("ingest", ingest);
        let tokenizer = match (&self.vocab, &self.tokenize.tokenizer) {
            (Some(_), Some(_)) => {
                bail!("[tokenize] tokenizer is set and so is [vocab]: choose one")
            }
            (Some(vocab), None) => {
                let base: Vec<String> = match &vocab.base {
                    Some(b) => vec!["--tokenizer".into(), b.display().to_string()],
                    None => vec![],
                };
                let mut count = vec!["vocab".into(), "count".into(), p("docs")];
                count.extend(base.clone());
                count.extend(["--out".into(), p("vocab/counts.parquet")]);
                push("vocab-count", count);
                let mut prune = vec![
                    "vocab".into(),
                    "prune".into(),
                    "--counts".into(),
                    p("vocab/counts.parquet"),
                ];
                prune.extend(base);
                match (vocab.size, vocab.coverage) {
                    (Some(size), None) => prune.extend(["--size".into(), size.to_string()]),
                    (None, Some(c)) => prune.extend(["--coverage".into(), c.to_string()]),
                    _ => bail!("[vocab] needs exactly one of `size` and `coverage`"),
                }
                if let Some(model) = &vocab.model {
                    prune.extend(["--model".into(), model.clone()]);
                }
                prune.extend(["--out".into(), p("vocab")]);
                push("vocab-prune", prune);
                p("vocab/tokenizer.json")
            }
            (None, Some(t)) => t.display().to_string(),
            (None, None) => bail!("no tokenizer: add a [vocab] stage or set [tokenize] tokenizer"),
        };
        let mut tokenize = vec![
            "tokenize".into(),
            p("docs"),
            "--tokenizer".into(),
            tokenizer.clone(),
            "--out".into(),
            p("tokens"),
        ];
        if let Some(n) = self.tokenize.shard_tokens {
            tokenize.extend(["--shard-tokens".into(), n.to_string()]);
        }
        if let Some(n) = self.tokenize.max_pretoken_chars {
            tokenize.extend(["--max-pretoken-chars".into(), n.to_string()]);
        }
        push("tokenize", tokenize);
        if let Some(inherit) = &self.inherit {
            if self.train.is_none() {
                bail!("[inherit] needs a [train] stage to start from the student");
            }
            let mut args = vec![
                "inherit".into(),
                "--teacher".into(),
                inherit.teacher.display().to_string(),
                "--student".into(),
                inherit.student.clone(),
                "--calib".into(),
                p("tokens"),
            ];
            if self.vocab.is_some() {
                args.extend(["--id-map".into(), p("vocab/id_map.json")]);
            }
            for (flag, value) in [
                ("--criterion", inherit.criterion.clone()),
                ("--layers", inherit.layers.clone()),
                (
                    "--calib-sequences",
                    inherit.calib_sequences.map(|n| n.to_string()),
                ),
                ("--calib-len", inherit.calib_len.map(|n| n.to_string())),
            ] {
                if let Some(value) = value {
                    args.extend([flag.into(), value]);
                }
            }
            // A rerun (`--from inherit`) replaces the student of the previous run.
            args.extend(["--overwrite".into(), "--out".into(), p("inherit")]);
            push("inherit", args);
        }
        if let Some(train) = &self.train {
            let mut args = vec![
                "train".into(),
                train.config.display().to_string(),
                "--data".into(),
                p("tokens"),
                "--out".into(),
                p("train"),
            ];
            if self.inherit.is_some() {
                args.extend(["--init-from".into(), p("inherit")]);
            }
            if let Some(n) = train.nproc {
                args.extend(["--nproc".into(), n.to_string()]);
            }
            push("train", args);
            if let Some(eval) = &self.eval {
                let mut args = vec![
                    "eval".into(),
                    "--checkpoint".into(),
                    p("train"),
                    "--tokenizer".into(),
                    tokenizer,
                    "--tasks".into(),
                    eval.tasks.join(","),
                    "--out".into(),
                    p("eval"),
                ];
                if let Some(limit) = eval.limit {
                    args.extend(["--limit".into(), limit.to_string()]);
                }
                if let Some(shots) = eval.shots {
                    args.extend(["--shots".into(), shots.to_string()]);
                }
                if eval.held_out.unwrap_or(true) {
                    args.extend(["--held-out".into(), p("train")]);
                }
                push("eval", args);
            }
            // The run's HTML page (work/report.html) from everything above.
            push("report", vec!["report".into(), work.display().to_string()]);
        } else if self.eval.is_some() {
            bail!("[eval] needs a [train] stage to evaluate");
        }
        Ok(stages)
    }
}

/// One stage of the pipeline: a name and the `tinyforge` command line that runs it.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub args: Vec<String>,
}

/// What the driver keeps of a finished stage: enough to skip it next time and to summarise.
#[derive(Debug, Serialize, Deserialize)]
struct StageRecord {
    stage: String,
    args: Vec<String>,
    seconds: f64,
    report: serde_json::Value,
}

pub fn run(args: RunArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let config = PipelineConfig::load(&args.config)?;
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| config.work_dir.clone());
    let stages = config.stages(&work_dir)?;
    if let Some(from) = &args.from
        && !stages.iter().any(|stage| &stage.name == from)
    {
        let names: Vec<&str> = stages.iter().map(|stage| stage.name.as_str()).collect();
        bail!(
            "--from {from}: no such stage (the stages are {})",
            names.join(", ")
        );
    }
    if args.dry_run {
        for stage in &stages {
            crate::output::line(&format!("tinyforge {}", shell_words(&stage.args)))?;
        }
        return Ok(());
    }
    let reports_dir = work_dir.join("reports");
    fs_err::create_dir_all(&reports_dir)?;
    let exe = std::env::current_exe().context("cannot find the tinyforge executable")?;
    let mut forced = false;
    let mut summary = serde_json::Map::new();
    let started = Instant::now();
    for (index, stage) in stages.iter().enumerate() {
        forced |= args.from.as_deref() == Some(stage.name.as_str());
        let record_path = reports_dir.join(format!("{:02}-{}.json", index + 1, stage.name));
        if !forced && let Some(record) = finished(&record_path, stage)? {
            if !global.quiet {
                eprintln!(
                    "[{}/{}] {}: already done, skipped",
                    index + 1,
                    stages.len(),
                    stage.name
                );
            }
            summary.insert(stage.name.clone(), record.report);
            continue;
        }
        if !global.quiet {
            eprintln!(
                "[{}/{}] {}: tinyforge {}",
                index + 1,
                stages.len(),
                stage.name,
                shell_words(&stage.args)
            );
        }
        let record = run_stage(&exe, stage, global)?;
        tinyforge_task::write_atomic(&record_path, &serde_json::to_vec_pretty(&record)?)?;
        if !global.quiet {
            eprintln!(
                "[{}/{}] {}: done in {:.1}s",
                index + 1,
                stages.len(),
                stage.name,
                record.seconds
            );
        }
        summary.insert(stage.name.clone(), record.report);
    }
    let out = serde_json::json!({
        "work_dir": work_dir,
        "seconds": started.elapsed().as_secs_f64(),
        "stages": summary,
    });
    crate::output::json(&out)?;
    Ok(())
}

/// The record of a stage that already ran with exactly these arguments, if any.
fn finished(path: &Path, stage: &Stage) -> anyhow::Result<Option<StageRecord>> {
    if !path.exists() {
        return Ok(None);
    }
    let record = read_record(path)?;
    Ok((record.args == stage.args).then_some(record))
}

fn read_record(path: &Path) -> anyhow::Result<StageRecord> {
    serde_json::from_slice(&fs_err::read(path)?).with_context(|| {
        format!(
            "{}: not a stage record; delete it to rerun the stage",
            path.display()
        )
    })
}

/// The JSON report of the first stage named `stage` in a work folder's `reports/`
/// (`NN-stage.json`), if it ran.
pub(crate) fn stage_report(
    reports: &Path,
    stage: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let mut paths: Vec<PathBuf> = fs_err::read_dir(reports)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    paths.sort();
    for path in paths {
        let is_stage = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.split_once('-'))
            .is_some_and(|(_, name)| name == stage);
        if is_stage {
            return Ok(Some(read_record(&path)?.report));
        }
    }
    Ok(None)
}

fn run_stage(exe: &Path, stage: &Stage, global: &GlobalArgs) -> anyhow::Result<StageRecord> {
    let started = Instant::now();
    let mut command = Command::new(exe);
    command.args(&stage.args);
    if global.quiet {
        command.arg("--quiet");
    } else {
        command.args(["--progress", progress_flag(global)]);
    }
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start stage {}", stage.name))?;
    if !output.status.success() {
        bail!(
            "stage {} failed ({}); its output so far is kept and a rerun resumes it:\n  tinyforge {}",
            stage.name,
            output.status,
            shell_words(&stage.args)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| serde_json::Value::String(text.trim().to_owned()));
    Ok(StageRecord {
        stage: stage.name.clone(),
        args: stage.args.clone(),
        seconds: started.elapsed().as_secs_f64(),
        report,
    })
}

fn progress_flag(global: &GlobalArgs) -> &'static str {
    use crate::cli::ProgressMode;
    match global.progress {
        ProgressMode::Auto => "auto",
        ProgressMode::Bar => "bar",
        ProgressMode::Json => "json",
        ProgressMode::None => "none",
    }
}

/// A command line as a person would type it (arguments with spaces quoted).
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|arg| {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"')
            {
                format!("'{}'", arg.replace('\'', r"'\''"))
            } else {
                arg.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage's report is parsed from its stdout and again from its record on a rerun, and
    /// must read back with the numbers written: serde_json's default parser reads
    /// 2.3778000000000008e-7 one ulp off (its `float_roundtrip` feature, on in the workspace,
    /// reads it exactly).
    #[test]
    fn a_stage_report_reads_back_with_the_numbers_written() {
        let written = serde_json::json!({ "mean_comm_s": f64::from_bits(0x3e8f_ea0e_ffb2_b545) });
        let text = serde_json::to_vec_pretty(&written).unwrap();
        let read: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            read["mean_comm_s"].as_f64().map(f64::to_bits),
            Some(0x3e8f_ea0e_ffb2_b545)
        );
    }

    #[test]
    fn train_nproc_reaches_the_train_command_line() {
        let cfg: PipelineConfig = toml::from_str(
            "work_dir = \"w\"\n[ingest]\nconfig = \"i.toml\"\n[vocab]\nsize = 8000\n[train]\nconfig = \"t.toml\"\nnproc = 4\n",
        )
        .unwrap();
        let stages = cfg.stages(Path::new("w")).unwrap();
        let train = stages.iter().find(|s| s.name == "train").unwrap();
        let at = train.args.iter().position(|a| a == "--nproc").unwrap();
        assert_eq!(train.args[at + 1], "4");
    }
}
