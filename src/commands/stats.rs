//! `tinyforge stats`: SQL over a documents folder.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::cli::GlobalArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tinyforge stats out/docs
  tinyforge stats out/docs --format json
  tinyforge stats out/docs --sql \"SELECT lang, count(*) AS n FROM docs GROUP BY lang ORDER BY n DESC\"

The folder is the table `docs` (columns id, text, lang, source and any kept metadata). The
default summary gives totals, documents and characters by language and by source, and
quantiles of document length in characters (approximate, t-digest).")]
pub struct StatsArgs {
    /// Documents folder written by `tinyforge ingest`.
    pub dir: PathBuf,
    /// A query over the table `docs` instead of the default summary.
    #[arg(long)]
    pub sql: Option<String>,
    /// Print tables, or JSON (one object per row).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Threads for the query engine (default: all cores).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
}

pub fn run(args: StatsArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let sections = match &args.sql {
        Some(sql) => {
            let results = tinyforge_ingest::query(&args.dir, &[sql.as_str()], threads)?;
            vec![("result", results.into_iter().next().unwrap_or_default())]
        }
        None => tinyforge_ingest::summary(&args.dir, threads)?,
    };
    match args.format {
        OutputFormat::Json => {
            let value: serde_json::Value = if args.sql.is_some() {
                sections
                    .first()
                    .map(|(_, rows)| tinyforge_ingest::to_json_rows(rows))
                    .unwrap_or_default()
                    .into()
            } else {
                let mut object = serde_json::Map::new();
                for (title, rows) in &sections {
                    let mut rows = tinyforge_ingest::to_json_rows(rows);
                    let value = if *title == "totals" || *title == "length_chars" {
                        rows.pop().unwrap_or_default()
                    } else {
                        rows.into()
                    };
                    object.insert((*title).to_owned(), value);
                }
                object.into()
            };
            crate::output::json(&value)?;
        }
        OutputFormat::Table => {
            for (title, rows) in &sections {
                if args.sql.is_none() {
                    crate::output::line(title)?;
                }
                crate::output::line(&tinyforge_ingest::to_table(rows)?)?;
            }
        }
    }
    Ok(())
}
