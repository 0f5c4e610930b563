//! The `tinyforge` command: parse, run, map the error to an exit code.
// stdout is `output`'s alone (a closed pipe is an error there, not a panic).
#![deny(clippy::print_stdout)]

mod cli;
mod commands;
mod output;
mod progress;
mod remote;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <cli::Cli as clap::Parser>::parse();
    // Test builds: fail points named in FAILPOINTS (e.g. `ingest::chunk=2*off->panic`).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    progress::init_logging(&cli.global);
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `tinyforge … | head`: the reader has what it wanted.
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
