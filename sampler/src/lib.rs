//! Round plans, loss tables and loss-aware multiple-round selection (the PanGu-π Pro paper's
//! multiple-round training, §6.2). Pure logic over files: no libtorch, no tokenizer.
//!
//! - [`Plan`]: which units (training sequences) each step of a round trains on. Round 1 is a
//!   keyed permutation of every unit, never materialised; a data-parallel rank takes
//!   [`Plan::rank_slice`] of each step; resuming is continuing at a step.
//! - [`LossTableWriter`] / [`LossTableReader`]: Parquet tables of per-unit losses.
//! - [`select_next_round`]: the next round's plan from the previous one and its losses
//!   (softmax-loss Gumbel-top-k, top-loss, uniform; batch or unit level).
//! - [`HeldOut`]: a seeded sample of units spread over a pool that no plan draws (validation).
//! - [`summarize`]: counts, shares and the loss histogram of a plan against its loss tables.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod binned;
mod error;
mod heldout;
mod keyed;
mod locate;
mod losses;
mod mixture;
mod plan;
mod round_one;
mod select;
mod show;
mod topk;

pub use error::{Error, Result};
pub use heldout::{HELD_OUT_FILE, HELD_OUT_FORMAT, HELD_OUT_VERSION, HeldOut, stratified_sample};
pub use keyed::Permutation;
pub use locate::Locator;
pub use losses::{
    LossChunk, LossTableReader, LossTableReport, LossTableWriter, ROW_GROUP_ROWS, loss_schema,
};
pub use plan::{
    Exhausted, ListOrder, PLAN_FORMAT, PLAN_VERSION, Plan, PlanHeader, PlanOrder, Pool,
    RoundOneSpec, SelectionInfo, UnitRef, dataset_units, rank_bounds, units_for_tokens,
};
pub use select::{Level, Method, SelectConfig, SelectReport, select_next_round};
pub use show::{Histogram, PlanSummary, PoolShare, histogram_svg, summarize, write_histogram_svg};
