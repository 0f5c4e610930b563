//! One module per subcommand: its `*Args` (clap derive, with an example in the help) and its
//! `run`, which resolves options into the stage's config, calls the stage library, draws
//! progress and prints the report on stdout.

pub mod eval;
pub mod export;
pub mod generate;
pub mod ingest;
#[cfg(feature = "train")]
pub mod inherit;
#[cfg(feature = "train")]
pub mod launch;
pub mod plan;
#[cfg(feature = "train")]
pub mod report;
pub mod run;
pub mod sample;
#[cfg(feature = "train")]
pub mod score;
pub mod shards;
pub mod stats;
pub mod tokenize;
#[cfg(feature = "train")]
pub mod train;
pub mod vocab;
