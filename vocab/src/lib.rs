//! Count base-tokenizer token frequencies and prune the vocabulary into a compact tokenizer
//! (PanGu-π Pro §3).
//!
//! - [`count_documents`] streams a documents folder through a Hugging Face tokenizer and
//!   returns dense [`Counts`]; [`merge_counts`] sums the partial counts of `--shard i/n` tasks
//!   with DataFusion; [`CoverageCurve`] gives the coverage of the top k tokens.
//! - [`prune`] keeps the specials, the byte alphabet and the most frequent tokens with their
//!   merge closure, and writes a `tokenizer.json` that `tokenizers` loads unchanged, the
//!   old→new [`IdMap`] and a [`PruneReport`].
//!
//! The library never prints: progress goes to a [`tinyforge_task::Reporter`], errors are
//! [`Error`].
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod base;
mod count;
mod counts;
mod coverage;
mod error;
mod idmap;
mod merge;
mod prune;
mod rewrite;
mod select;

pub use base::{AddedToken, BaseTokenizer, Family};
pub use count::{CountConfig, count_documents, list_documents, worker_threads};
pub use counts::Counts;
pub use coverage::{CoverageCurve, CoveragePoint, DEFAULT_KS, KForCoverage, TARGETS};
pub use error::{Error, Result};
pub use idmap::{ID_MAP_FORMAT, ID_MAP_VERSION, IdMap};
pub use merge::merge_counts;
pub use prune::{KeptBreakdown, ModelReport, Outputs, PruneConfig, PruneReport, prune};
pub use select::{Selection, Target, minimum_size, select};
pub use tinyforge_task::Shard;
