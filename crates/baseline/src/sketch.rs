//! A mergeable quantile sketch with bounded relative error (the DDSketch
//! construction: logarithmic buckets, so any quantile it returns is within
//! `relative_accuracy` of the true value of that rank).
//!
//! Why not the `sketches-ddsketch` crate: it has merge and quantiles with
//! relative accuracy, but keeps its buckets private (its `store` module is
//! not exported), and [`crate::drift`] needs the aligned buckets themselves
//! to compute divergences. This one is small, exposes its buckets, and
//! serialises with serde for saved feature summaries.

use serde::{Deserialize, Serialize};

use crate::BaselineError;

/// The default relative accuracy: quantiles within 1% of the true value.
pub const DEFAULT_RELATIVE_ACCURACY: f64 = 0.01;

/// Values at or below this (in the sketch's unit, milliseconds for
/// latencies) are counted in the zero bucket: a nanosecond is below any
/// latency a request log can measure.
pub const MIN_TRACKED: f64 = 1e-6;

/// Most buckets a sketch holds. With the default accuracy this spans a
/// ratio of about 1e35 between the smallest and the largest value, so
/// collapsing (which merges the lowest buckets and costs accuracy for low
/// quantiles only) never happens on real latencies; it only bounds memory
/// against absurd inputs.
pub const MAX_BINS: usize = 4096;

/// A DDSketch-style sketch over non-negative values.
///
/// Bucket `k` holds values in `(gamma^(k-1), gamma^k]` with
/// `gamma = (1 + a) / (1 - a)` for relative accuracy `a`; its representative
/// value `2 gamma^k / (gamma + 1)` is within `a` of everything in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SketchRepr", into = "SketchRepr")]
pub struct Sketch {
    alpha: f64,
    gamma: f64,
    inv_ln_gamma: f64,
    /// Key of `bins[0]`.
    offset: i32,
    bins: Vec<u64>,
    zero: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Whether low buckets were merged to respect [`MAX_BINS`].
    collapsed: bool,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::new()
    }
}

impl Sketch {
    /// An empty sketch with [`DEFAULT_RELATIVE_ACCURACY`].
    pub fn new() -> Sketch {
        Sketch::with_accuracy(DEFAULT_RELATIVE_ACCURACY).expect("the default accuracy is valid")
    }

    /// An empty sketch whose quantiles are within `relative_accuracy`
    /// (0 < a < 1, e.g. 0.01) of the true values.
    pub fn with_accuracy(relative_accuracy: f64) -> Result<Sketch, BaselineError> {
        if !(relative_accuracy > 0.0 && relative_accuracy < 1.0) {
            return Err(BaselineError::invalid(
                "sketch",
                format!("relative accuracy must be in (0, 1), got {relative_accuracy}"),
            ));
        }
        let gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy);
        Ok(Sketch {
            alpha: relative_accuracy,
            gamma,
            inv_ln_gamma: 1.0 / gamma.ln(),
            offset: 0,
            bins: Vec::new(),
            zero: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            collapsed: false,
        })
    }

    pub fn relative_accuracy(&self) -> f64 {
        self.alpha
    }

    /// The bucket a value falls in: `None` for the zero bucket (values at
    /// or below [`MIN_TRACKED`], negatives and NaN).
    #[inline]
    pub fn key_of(&self, v: f64) -> Option<i32> {
        if v > MIN_TRACKED {
            // Clamped so +inf maps to a finite (large) key, not i32::MAX.
            Some((v.min(f64::MAX).ln() * self.inv_ln_gamma).ceil() as i32)
        } else {
            None
        }
    }

    /// Bounds `(low, high]` of bucket `key`.
    pub fn bucket_bounds(&self, key: i32) -> (f64, f64) {
        (self.gamma.powi(key - 1), self.gamma.powi(key))
    }

    /// The value reported for anything in bucket `key`.
    pub fn bucket_value(&self, key: i32) -> f64 {
        2.0 * self.gamma.powi(key) / (self.gamma + 1.0)
    }

    /// Adds one value.
    #[inline]
    pub fn add(&mut self, v: f64) {
        let key = self.key_of(v);
        self.add_keyed(key, v);
    }

    /// Adds a value whose bucket was computed with [`Sketch::key_of`] on a
    /// sketch of the same accuracy: lets a caller feeding several sketches
    /// take the logarithm once.
    #[inline]
    pub fn add_keyed(&mut self, key: Option<i32>, v: f64) {
        match key {
            None => self.zero += 1,
            Some(k) => {
                let i = self.slot(k);
                self.bins[i] += 1;
            }
        }
        self.count += 1;
        // NaN never reaches here from the log parsers; keep the summary
        // statistics finite regardless.
        let v = if v.is_nan() { 0.0 } else { v };
        self.sum += v;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
    }

    /// The index of key `k` in `bins`, growing (or collapsing) as needed.
    #[inline]
    fn slot(&mut self, k: i32) -> usize {
        if self.bins.is_empty() {
            self.offset = k;
            self.bins.push(0);
            return 0;
        }
        let lo = self.offset as i64;
        let hi = lo + self.bins.len() as i64 - 1;
        let k64 = k as i64;
        if k64 >= lo && k64 <= hi {
            return (k64 - lo) as usize;
        }
        self.extend_to(k64.min(lo), k64.max(hi));
        // After extending, a key below the range was collapsed into bin 0.
        (k64 - self.offset as i64).max(0) as usize
    }

    /// Makes bins cover `[new_lo, new_hi]`, collapsing the lowest buckets
    /// if that spans more than [`MAX_BINS`].
    fn extend_to(&mut self, mut new_lo: i64, new_hi: i64) {
        let lo = self.offset as i64;
        if new_hi - new_lo + 1 > MAX_BINS as i64 {
            new_lo = new_hi - MAX_BINS as i64 + 1;
            self.collapsed = true;
        }
        let mut bins = vec![0u64; (new_hi - new_lo + 1) as usize];
        for (i, &c) in self.bins.iter().enumerate() {
            let k = lo + i as i64;
            let j = (k - new_lo).max(0) as usize;
            bins[j] += c;
        }
        self.bins = bins;
        self.offset = new_lo as i32;
    }

    /// Adds everything in `other`; both must have the same accuracy so
    /// their buckets align.
    pub fn merge(&mut self, other: &Sketch) -> Result<(), BaselineError> {
        if self.alpha != other.alpha {
            return Err(BaselineError::invalid(
                "sketch merge",
                format!(
                    "relative accuracies differ ({} and {})",
                    self.alpha, other.alpha
                ),
            ));
        }
        if !other.bins.is_empty() {
            let olo = other.offset as i64;
            let ohi = olo + other.bins.len() as i64 - 1;
            if self.bins.is_empty() {
                self.offset = other.offset;
                self.bins = other.bins.clone();
            } else {
                let lo = self.offset as i64;
                let hi = lo + self.bins.len() as i64 - 1;
                if olo < lo || ohi > hi {
                    self.extend_to(olo.min(lo), ohi.max(hi));
                }
                for (i, &c) in other.bins.iter().enumerate() {
                    let j = (olo + i as i64 - self.offset as i64).max(0) as usize;
                    self.bins[j] += c;
                }
            }
        }
        self.zero += other.zero;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.collapsed |= other.collapsed;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Values in the zero bucket.
    pub fn zero_count(&self) -> u64 {
        self.zero
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Whether low buckets were merged to bound memory (low quantiles are
    /// then no longer within the accuracy bound).
    pub fn collapsed(&self) -> bool {
        self.collapsed
    }

    /// Non-empty buckets as `(key, count)`, in increasing key order (the
    /// zero bucket is [`Sketch::zero_count`]).
    pub fn bins(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.bins
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(move |(i, &c)| (self.offset + i as i32, c))
    }

    /// The value of 0-based rank `rank` in sorted order (within the
    /// accuracy bound), or `None` when `rank >= count`.
    pub fn value_at_rank(&self, rank: u64) -> Option<f64> {
        if rank >= self.count {
            return None;
        }
        // The extremes are kept exactly.
        if rank == 0 {
            return Some(self.min);
        }
        if rank == self.count - 1 {
            return Some(self.max);
        }
        if rank < self.zero {
            return Some(self.min.max(0.0));
        }
        let mut seen = self.zero;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c;
            if rank < seen {
                let v = self.bucket_value(self.offset + i as i32);
                // Never report beyond the exact extremes.
                return Some(v.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The `q`-quantile (`q` clamped to [0, 1]) as the value of rank
    /// `floor(q (n - 1))`, or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        self.value_at_rank(rank)
    }
}

/// The serialised form: a dense run of bucket counts from `offset`.
#[derive(Serialize, Deserialize)]
struct SketchRepr {
    relative_accuracy: f64,
    offset: i32,
    bins: Vec<u64>,
    zero: u64,
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    collapsed: bool,
}

impl From<Sketch> for SketchRepr {
    fn from(s: Sketch) -> SketchRepr {
        SketchRepr {
            relative_accuracy: s.alpha,
            offset: s.offset,
            min: s.min(),
            max: s.max(),
            bins: s.bins,
            zero: s.zero,
            count: s.count,
            sum: s.sum,
            collapsed: s.collapsed,
        }
    }
}

impl TryFrom<SketchRepr> for Sketch {
    type Error = String;

    fn try_from(r: SketchRepr) -> Result<Sketch, String> {
        let mut s = Sketch::with_accuracy(r.relative_accuracy).map_err(|e| e.to_string())?;
        if r.bins.len() > MAX_BINS {
            return Err(format!(
                "sketch has {} buckets, at most {MAX_BINS} allowed",
                r.bins.len()
            ));
        }
        if (r.offset as i64) + (r.bins.len() as i64) > i32::MAX as i64 {
            return Err("sketch bucket keys overflow".into());
        }
        let total = r
            .bins
            .iter()
            .try_fold(r.zero, |acc, &c| acc.checked_add(c))
            .ok_or("sketch counts overflow")?;
        if total != r.count {
            return Err(format!(
                "sketch count is {} but its buckets hold {total}",
                r.count
            ));
        }
        match (r.count, r.min, r.max) {
            (0, _, _) => {}
            (_, Some(min), Some(max)) if min.is_finite() && max.is_finite() && min <= max => {
                s.min = min;
                s.max = max;
            }
            _ => return Err("a non-empty sketch needs finite min <= max".into()),
        }
        if !r.sum.is_finite() {
            return Err("sketch sum is not finite".into());
        }
        s.offset = r.offset;
        s.bins = r.bins;
        s.zero = r.zero;
        s.count = r.count;
        s.sum = r.sum;
        s.collapsed = r.collapsed;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sketch_has_no_quantiles() {
        let s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.min(), None);
    }

    #[test]
    fn rejects_invalid_accuracy() {
        assert!(Sketch::with_accuracy(0.0).is_err());
        assert!(Sketch::with_accuracy(1.0).is_err());
        assert!(Sketch::with_accuracy(f64::NAN).is_err());
    }

    #[test]
    fn zero_and_tiny_values_go_to_the_zero_bucket() {
        let mut s = Sketch::new();
        s.add(0.0);
        s.add(1e-9);
        s.add(5.0);
        assert_eq!(s.zero_count(), 2);
        assert_eq!(s.quantile(0.0), Some(0.0));
        let top = s.quantile(1.0).unwrap();
        assert!((top - 5.0).abs() <= 0.05);
    }

    #[test]
    fn collapses_lowest_buckets_beyond_max_bins() {
        let mut s = Sketch::new();
        s.add(1e-5);
        s.add(1e300);
        assert!(s.collapsed());
        assert!(s.bins.len() <= MAX_BINS);
        assert_eq!(s.count(), 2);
        assert_eq!(s.quantile(1.0), Some(1e300));
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let mut s = Sketch::new();
        for i in 1..100 {
            s.add(i as f64 * 0.7);
        }
        let json = serde_json::to_string(&s).unwrap();
        let back: Sketch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let bad = json.replace("\"count\":99", "\"count\":98");
        let err = serde_json::from_str::<Sketch>(&bad).unwrap_err();
        assert!(err.to_string().contains("count"), "{err}");
    }
}
