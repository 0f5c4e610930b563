//! The command line: one `Command` enum, one `*Args` struct per subcommand (in `commands/`),
//! global flags flattened into every subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;

#[derive(Debug, Parser)]
#[command(
    name = "tinyforge",
    version,
    about = "Turn raw multilingual corpora into trained tiny language models (PanGu-π Pro recipe)",
    long_about = "Turn raw multilingual corpora into trained tiny language models, following the \
PanGu-π Pro recipe: compact tokenizer, depth-first architecture, parameter inheritance and \
multiple-round training with loss-aware resampling.\n\nEvery stage reads and writes files (see \
docs/FORMAT.md), so each can run as its own batch job; data is on stdout, logs and progress on \
stderr.",
    after_help = "Examples:\n  tinyforge run configs/demo.toml\n  tinyforge ingest corpus/*.jsonl.zst --out docs/\n  tinyforge stats docs/\n\nRun `tinyforge <command> --help` for the options and an example of each command."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// How to report progress on stderr: a bar on a terminal, one JSON line per update for
    /// cluster logs, or nothing.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Only errors on stderr (progress off).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, otherwise nothing.
    Auto,
    /// Always a bar.
    Bar,
    /// One JSON object per line: {"stage", "done", "total", "unit", "elapsed_s"}.
    Json,
    /// No progress.
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Each stage adds one variant here and one arm in `run` below.
    /// Run the whole pipeline from a config: ingest, vocab, tokenize, train, eval.
    Run(commands::run::RunArgs),
    /// Raw corpora (JSONL, JSON, Parquet, text, HTML) to clean, deduplicated Parquet documents.
    Ingest(commands::ingest::IngestArgs),
    /// SQL over a documents folder: a default summary, or any query with --sql.
    Stats(commands::stats::StatsArgs),
    /// Count token frequencies over documents and prune a base tokenizer into a compact one.
    Vocab(commands::vocab::VocabArgs),
    /// Zero-/few-shot benchmarks (ARC, HellaSwag, C3, MMLU, ...) and perplexity of a checkpoint.
    Eval(commands::eval::EvalArgs),
    /// Continue a prompt with a checkpoint (greedy, or temperature / top-p sampling).
    Generate(commands::generate::GenerateArgs),
    /// A checkpoint as a GGUF file for llama.cpp and on-device runtimes.
    Export(commands::export::ExportArgs),
    /// Encode a documents folder into token shards (zstd frames, manifest, checksums).
    Tokenize(commands::tokenize::TokenizeArgs),
    /// Merge, verify or inspect token-shard datasets.
    Shards(commands::shards::ShardsArgs),
    /// Build or inspect a round plan: the units of a token dataset each training round reads.
    Plan(commands::plan::PlanArgs),
    /// Select the next round's units from a loss table (loss-aware resampling).
    Sample(commands::sample::SampleArgs),
    /// Train the model over rounds of a token dataset (needs the `train` feature: libtorch).
    #[cfg(feature = "train")]
    Train(commands::train::TrainArgs),
    /// A frozen checkpoint's loss of every unit of a round plan, into a loss table.
    #[cfg(feature = "train")]
    Score(commands::score::ScoreArgs),
    /// Initialise a student from a larger Hugging Face teacher (parameter inheritance).
    #[cfg(feature = "train")]
    Inherit(commands::inherit::InheritArgs),
    /// Model configs: parameter count, embedding + head share.
    #[cfg(feature = "train")]
    Model(commands::train::ModelArgs),
    /// One self-contained HTML page for a training run: loss curves, rounds, data, eval.
    #[cfg(feature = "train")]
    Report(commands::report::ReportArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Run(args) => commands::run::run(args, &global),
        Command::Ingest(args) => commands::ingest::run(args, &global),
        Command::Stats(args) => commands::stats::run(args, &global),
        Command::Eval(args) => commands::eval::run(args, &global),
        Command::Generate(args) => commands::generate::run(args),
        Command::Export(args) => commands::export::run(args, &global),
        Command::Tokenize(args) => commands::tokenize::run(args, &global),
        Command::Shards(args) => commands::shards::run(args, &global),
        Command::Vocab(args) => commands::vocab::run(args, &global),
        Command::Plan(args) => commands::plan::run(args, &global),
        Command::Sample(args) => commands::sample::run(args, &global),
        #[cfg(feature = "train")]
        Command::Train(args) => commands::train::run(args, &global),
        #[cfg(feature = "train")]
        Command::Score(args) => commands::score::run(args, &global),
        #[cfg(feature = "train")]
        Command::Inherit(args) => commands::inherit::run(args, &global),
        #[cfg(feature = "train")]
        Command::Model(args) => commands::train::run_model(args, &global),
        #[cfg(feature = "train")]
        Command::Report(args) => commands::report::run(args, &global),
    }
}

/// Every command's `--help` is a snapshot (`src/snapshots/`), so a changed flag, default or
/// example shows in review and cannot change by accident. Snapshots are of the full build
/// (`--features train`); `cargo insta review` accepts an intended change.
#[cfg(all(test, feature = "train"))]
mod tests {
    use clap::CommandFactory;

    fn walk(command: &mut clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        out.push((path.to_owned(), command.render_long_help().to_string()));
        // clap's generated `help` subcommands say nothing of ours.
        for sub in command
            .get_subcommands_mut()
            .filter(|s| s.get_name() != "help")
        {
            let name = format!("{path} {}", sub.get_name());
            walk(sub, &name, out);
        }
    }

    #[test]
    fn every_commands_help_is_as_reviewed() {
        let mut cli = super::Cli::command().term_width(100);
        cli.build();
        let mut helps = Vec::new();
        walk(&mut cli, "tinyforge", &mut helps);
        assert!(helps.len() > 20, "{} commands", helps.len());
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        // What the environment running the test sets: `[env: X=value]` shows its value.
        settings.add_filter(r"\[env: ([A-Z_]+)=[^\]]*\]", "[env: $1]");
        settings.bind(|| {
            for (path, help) in helps {
                let name = format!("help-{}", path.replace(' ', "-"));
                insta::assert_snapshot!(name, help, &format!("tinyforge {} --help", &path[9..]));
            }
        });
    }

    /// A typed flag is refused while the command line is parsed, with its spellings.
    #[test]
    fn wrong_spellings_fail_at_parse_time_naming_the_allowed_ones() {
        use clap::Parser;
        let error = |argv: &[&str]| match super::Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{argv:?} parsed: {cli:?}"),
            Err(error) => error.to_string(),
        };
        let required: &[(&str, &[&str])] = &[
            ("train", &[]),
            (
                "score",
                &[
                    "--checkpoint",
                    "c",
                    "--data",
                    "d",
                    "--plan",
                    "p",
                    "--out",
                    "o",
                ],
            ),
            ("eval", &["--checkpoint", "c"]),
            ("generate", &["c", "--prompt", "p"]),
            (
                "inherit",
                &[
                    "--teacher",
                    "t",
                    "--student",
                    "s",
                    "--calib",
                    "c",
                    "--out",
                    "o",
                ],
            ),
        ];
        for (command, args) in required {
            let mut argv = vec!["tinyforge", command];
            argv.extend_from_slice(args);
            let message = error(&[argv.as_slice(), &["--device", "gpu"]].concat());
            assert!(
                message.contains("invalid value 'gpu' for '--device <DEVICE>'")
                    && message.contains("auto, cpu, cuda, cuda:N"),
                "{command}: {message}"
            );
            let parsed =
                super::Cli::try_parse_from([argv.as_slice(), &["--device", "cuda:1"]].concat());
            assert!(parsed.is_ok(), "{command}: {parsed:?}");
        }
        let message = error(&["tinyforge", "train", "--precision", "fp16"]);
        assert!(message.contains("auto, bf16, fp32"), "{message}");
        let inherit = [
            "tinyforge",
            "inherit",
            "--teacher",
            "t",
            "--student",
            "s",
            "--calib",
            "c",
        ];
        let message = error(&[&inherit[..], &["--out", "o", "--criterion", "l3"]].concat());
        assert!(
            message.contains("l1, l2, taylor, activation, mask"),
            "{message}"
        );
        let message = error(&["tinyforge", "ingest", "x", "--on-error", "ignore"]);
        assert!(
            message.contains("[possible values: skip, fail]"),
            "{message}"
        );
    }
}
