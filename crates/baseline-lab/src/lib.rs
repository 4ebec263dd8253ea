//! perfpilot's baseline tools that run offline, beside the engine
//! (`perfpilot-baseline`) rather than in it: they score, tune and gate it.
//! Only the CLI links this crate; the server does not.
//!
//! - [`gate`]: the release gate, comparing two runs.
//! - [`quality`]: alert quality against labelled incidents (MTTD, MTTA,
//!   false positives per day, missed incidents, NAB-style score, F1).
//! - [`calibrate`]: detector parameters tuned on labelled incidents by
//!   differential evolution, saved as a baseline version.
//! - [`nab`]: the Numenta Anomaly Benchmark corpus, its scorer, and a runner
//!   that feeds each series through the live engine (`LiveEngine`).
//! - [`scenarios`]: labelled scenarios (a generator from a seed, a scorer,
//!   an in-process harness) that the engine's defaults are judged on.

pub mod calibrate;
pub mod gate;
pub mod nab;
pub mod quality;
pub mod scenarios;
