//! Small streaming statistics the detectors share.

use std::collections::VecDeque;

pub use perfpilot_stats::{erfc, normal_tail};

/// Surprise of a tail probability on [0, 1]: -log10(p) / 10, so p = 1e-5
/// maps to 0.5 and p <= 1e-10 to 1. Spreading the extreme tail out this way
/// keeps distinct alarm levels apart for NAB's threshold search.
pub fn surprise(p: f64) -> f64 {
    (-(p.max(1e-10)).log10() / 10.0).clamp(0.0, 1.0)
}

/// Mean and variance of the last `cap` values pushed.
#[derive(Debug, Clone)]
pub struct RollingMoments {
    cap: usize,
    values: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    /// Pushes since the sums were last recomputed.
    pushes: usize,
}

impl RollingMoments {
    pub fn new(cap: usize) -> Self {
        RollingMoments {
            cap: cap.max(1),
            values: VecDeque::with_capacity(cap.max(1)),
            sum: 0.0,
            sum_sq: 0.0,
            pushes: 0,
        }
    }

    pub fn push(&mut self, v: f64) {
        if self.values.len() == self.cap {
            if let Some(old) = self.values.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.values.push_back(v);
        self.sum += v;
        self.sum_sq += v * v;
        self.pushes += 1;
        // Recompute now and then so cancellation errors cannot build up.
        if self.pushes >= 4096 {
            self.pushes = 0;
            self.sum = self.values.iter().sum();
            self.sum_sq = self.values.iter().map(|x| x * x).sum();
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            0.0
        } else {
            self.sum / self.values.len() as f64
        }
    }

    pub fn std(&self) -> f64 {
        let n = self.values.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        let m = self.sum / n;
        (self.sum_sq / n - m * m).max(0.0).sqrt()
    }
}

/// The last `cap` values, kept sorted too, for rolling quantiles.
#[derive(Debug, Clone)]
pub struct RollingQuantiles {
    cap: usize,
    order: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl RollingQuantiles {
    pub fn new(cap: usize) -> Self {
        RollingQuantiles {
            cap: cap.max(1),
            order: VecDeque::with_capacity(cap.max(1)),
            sorted: Vec::with_capacity(cap.max(1)),
        }
    }

    pub fn push(&mut self, v: f64) {
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                let i = self.sorted.partition_point(|&x| x < old);
                if i < self.sorted.len() {
                    self.sorted.remove(i);
                }
            }
        }
        self.order.push_back(v);
        let i = self.sorted.partition_point(|&x| x < v);
        self.sorted.insert(i, v);
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The q-quantile (nearest rank), or 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let i = (q.clamp(0.0, 1.0) * (self.sorted.len() - 1) as f64).round() as usize;
        self.sorted[i.min(self.sorted.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_match_known_values() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.96) - 0.024_997_9).abs() < 1e-6);
        assert!((normal_tail(-1.0) - 0.841_344_7).abs() < 1e-6);
        let p = normal_tail(6.0);
        assert!((p / 9.865_876e-10 - 1.0).abs() < 1e-5, "{p}");
        assert!((surprise(1e-5) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn rolling_windows_forget_old_values() {
        let mut m = RollingMoments::new(3);
        let mut q = RollingQuantiles::new(3);
        for v in [100.0, 1.0, 2.0, 3.0] {
            m.push(v);
            q.push(v);
        }
        assert_eq!(m.mean(), 2.0);
        assert_eq!(q.quantile(0.5), 2.0);
        assert_eq!(q.quantile(1.0), 3.0);
    }
}
