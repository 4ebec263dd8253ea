//! Leaks by stack: series of in-use bytes (one snapshot per interval)
//! whose growth is steady, by a Mann–Kendall trend test with its
//! Theil–Sen slope. A heap that saws up and down between snapshots has no
//! monotonic trend; one that only grows has.

use serde::{Deserialize, Serialize};

use perfpilot_stats::{mann_kendall, theil_sen};

/// What counts as a leak.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeakOptions {
    /// Significance level of the trend test.
    pub alpha: f64,
    /// Fewest snapshots tested (the test cannot reach small p-values on
    /// fewer: 6 increasing points give p ≈ 0.009).
    pub min_points: usize,
    /// Smallest growth over the window, in bytes, that is reported.
    pub min_growth_bytes: f64,
}

impl Default for LeakOptions {
    fn default() -> Self {
        LeakOptions {
            alpha: 0.01,
            min_points: 6,
            min_growth_bytes: 1024.0 * 1024.0,
        }
    }
}

/// A stack whose in-use bytes grow steadily.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leak {
    /// The stack (root first, as in folded lines), with what names its
    /// series (its process, by the caller's choice).
    pub stack: Vec<String>,
    /// Theil–Sen slope: bytes per second.
    pub growth_bytes_per_second: f64,
    /// The slope over the window: bytes.
    pub growth_bytes: f64,
    /// In use at the last snapshot.
    pub inuse_bytes: f64,
    /// Mann–Kendall two-sided p-value.
    pub p_value: f64,
    /// 1 − p.
    pub confidence: f64,
    pub snapshots: usize,
    pub from_ms: i64,
    pub until_ms: i64,
}

/// A stack and its (unix ms, in-use bytes) points, in time order.
pub type StackSeries = (Vec<String>, Vec<(i64, f64)>);

/// The leaks among `series`, steepest first.
pub fn find_leaks(series: &[StackSeries], options: &LeakOptions) -> Vec<Leak> {
    let mut out: Vec<Leak> = series
        .iter()
        .filter_map(|(stack, points)| leak(stack, points, options))
        .collect();
    out.sort_by(|a, b| {
        b.growth_bytes_per_second
            .total_cmp(&a.growth_bytes_per_second)
    });
    out
}

fn leak(stack: &[String], points: &[(i64, f64)], options: &LeakOptions) -> Option<Leak> {
    if points.len() < options.min_points.max(3) {
        return None;
    }
    let p = mann_kendall(points);
    let slope_per_ms = theil_sen(points);
    if p >= options.alpha || slope_per_ms <= 0.0 {
        return None;
    }
    let (from, until) = (points.first()?.0, points.last()?.0);
    let growth = slope_per_ms * (until - from) as f64;
    if growth < options.min_growth_bytes {
        return None;
    }
    Some(Leak {
        stack: stack.to_vec(),
        growth_bytes_per_second: slope_per_ms * 1000.0,
        growth_bytes: growth,
        inuse_bytes: points.last()?.1,
        p_value: p,
        confidence: 1.0 - p,
        snapshots: points.len(),
        from_ms: from,
        until_ms: until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(name: &str) -> Vec<String> {
        vec!["main".to_string(), name.to_string()]
    }

    #[test]
    fn steady_growth_is_a_leak_and_a_sawtooth_is_not() {
        let mb = 1024.0 * 1024.0;
        // 2 MiB/s with noise of a sampled estimate.
        let leak: Vec<(i64, f64)> = (0..10)
            .map(|i| {
                (
                    i * 1000,
                    i as f64 * 2.0 * mb + if i % 2 == 0 { 0.3 * mb } else { 0.0 },
                )
            })
            .collect();
        // Up and down around 8 MiB.
        let saw: Vec<(i64, f64)> = (0..10)
            .map(|i| (i * 1000, 8.0 * mb + if i % 3 == 0 { 4.0 * mb } else { 0.0 }))
            .collect();
        // Growing, but by less than the minimum.
        let small: Vec<(i64, f64)> = (0..10).map(|i| (i * 1000, i as f64 * 1000.0)).collect();
        let found = find_leaks(
            &[
                (stack("leaky"), leak),
                (stack("saw"), saw),
                (stack("small"), small),
            ],
            &LeakOptions::default(),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let l = &found[0];
        assert_eq!(l.stack, stack("leaky"));
        assert!((l.growth_bytes_per_second / mb - 2.0).abs() < 0.1, "{l:?}");
        assert!((l.growth_bytes / mb - 18.0).abs() < 1.0, "{l:?}");
        assert!(l.p_value < 0.001 && l.confidence > 0.999);
        assert_eq!(l.snapshots, 10);
    }

    #[test]
    fn too_few_snapshots_say_nothing() {
        let points: Vec<(i64, f64)> = (0..4).map(|i| (i * 1000, i as f64 * 1e8)).collect();
        assert!(find_leaks(&[(stack("x"), points)], &LeakOptions::default()).is_empty());
    }
}
