//! Query computations for perfpilot: what the server turns store results
//! into before answering, and what the CLI and web UI read back.
//!
//! Everything here is pure computation on [`perfpilot_model::series::StackTable`]s
//! and strings: no I/O, no clock, no async.
//!
//! - [`flame_tree`]: a merged call tree truncated to a node budget, and its
//!   flamebearer encoding ([`FlameTree::to_flat`]); [`flat_flame`] builds
//!   that encoding directly, in perfpilot's layout or Pyroscope's
//!   ([`FlameOptions`]).
//! - [`top_functions`]: self and total per function.
//! - [`diff()`] / [`diff_with`]: per-function share changes with p-values
//!   and Benjamini–Hochberg q-values; [`diff_tree`] for diff flame graphs.
//! - [`sandwich()`]: one function's callers and callees, each as a table
//!   rooted at the function.
//! - [`to_profile`]: any table as a [`perfpilot_model::Profile`], for pprof
//!   export.
//! - [`parse_time`], [`parse_duration`], [`parse_range`], [`default_step`]:
//!   query arguments.
//! - [`Series`]: time series responses.
//! - [`leaks::find_leaks`]: stacks whose in-use bytes grow steadily.

pub mod diff;
pub mod error;
pub mod flame;
pub mod leaks;
pub mod pprof;
pub mod sandwich;
pub mod series;
pub mod time;
pub mod top;
mod tree;

/// The tests behind [`diff()`], from the workspace's statistics crate.
pub use perfpilot_stats as stats;

pub use diff::{
    diff, diff_tree, diff_with, Diff, DiffNode, DiffOptions, DiffRow, DiffTree, FlatDiff,
};
pub use error::QueryError;
pub use flame::{
    flame_tree, flat_flame, FlameNode, FlameOptions, FlameTree, FlatFlame, Layout, NameIds,
    NonPositive, Truncation,
};
pub use pprof::to_profile;
pub use sandwich::{sandwich, Sandwich};
pub use series::{to_series, Series};
pub use stats::TestMethod;
pub use time::{default_step, parse_duration, parse_range, parse_time};
pub use top::{top_functions, TopRow};
