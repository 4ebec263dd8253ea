//! Streaming anomaly detectors over a single metric.
//!
//! - [`StreamingDetector`]: one row at a time, a score in [0, 1] per row,
//!   no look-ahead.
//! - [`NabDetector`]: perfpilot's detector as scored on NAB.
//! - [`stats`]: the rolling statistics and tail probabilities they share.

mod nab;
pub mod stats;

pub use nab::{Explanation, NabDetector, NabParams};

/// A detector that sees one series, one row at a time, and scores each row
/// before it sees the next (no look-ahead).
pub trait StreamingDetector {
    /// Takes the row at `t` (unix seconds) and returns its anomaly score in
    /// [0, 1].
    fn update(&mut self, t: i64, value: f64) -> f64;
}

impl<D: StreamingDetector + ?Sized> StreamingDetector for Box<D> {
    fn update(&mut self, t: i64, value: f64) -> f64 {
        (**self).update(t, value)
    }
}
