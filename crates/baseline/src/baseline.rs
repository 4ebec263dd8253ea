//! What normal looks like for one feature of one service: an expected band
//! for the next window, learned from the windows before it.
//!
//! The band is rolling quantiles of recent residuals around an EWMA level:
//! the level follows slow, legitimate change (traffic growing over weeks),
//! the quantiles give the spread the feature really has (latency is skewed,
//! so mean ± k·σ would be wrong on one side). Once enough history exists,
//! a daily or weekly profile shifts the level by time of day or of week, so
//! the evening peak is not an anomaly every evening. Windows a detector
//! calls anomalous are not learned from: an incident must not become the
//! new normal while it lasts.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineConfig {
    /// Residuals kept for the band's quantiles (360 ten-second windows: an
    /// hour).
    pub history: usize,
    /// Windows needed before the band is trusted.
    pub warmup: usize,
    /// Weight of a new window in the EWMA level.
    pub alpha: f64,
    /// Quantiles of the residuals that bound the band.
    pub lower_quantile: f64,
    pub upper_quantile: f64,
    /// The band is widened by this share of its width on each side, and by
    /// at least `min_width` in absolute terms, so a flat series (a constant
    /// p50 of 3 ms) does not alarm on its first jitter.
    pub margin: f64,
    pub min_width: f64,
    /// And by at least this share of the expected value: a feature that
    /// sits in one sketch bucket (p50 of a steady service) has no spread
    /// at all, and a change of a few percent is not an incident.
    pub min_relative_width: f64,
    /// Seasonal buckets: 24 per day, 168 per week.
    pub seasonality: bool,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            history: 360,
            warmup: 60,
            alpha: 0.02,
            lower_quantile: 0.005,
            upper_quantile: 0.995,
            margin: 0.25,
            min_width: 0.0,
            min_relative_width: 0.05,
            seasonality: true,
        }
    }
}

/// Which knowledge the band comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandState {
    /// Fewer than `warmup` windows seen: no band yet.
    WarmingUp { have: usize, need: usize },
    /// Recent history only.
    Ready,
    /// Recent history shifted by the time-of-day profile.
    Daily,
    /// Recent history shifted by the time-of-week profile.
    Weekly,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub low: f64,
    pub expected: f64,
    pub high: f64,
    pub state: BandState,
}

impl Band {
    pub fn ready(&self) -> bool {
        !matches!(self.state, BandState::WarmingUp { .. })
    }

    /// How far outside the band `x` is, in band half-widths (0 inside).
    pub fn excess(&self, x: f64) -> f64 {
        if !self.ready() {
            return 0.0;
        }
        let up = (self.high - self.expected).max(f64::EPSILON);
        let down = (self.expected - self.low).max(f64::EPSILON);
        if x > self.high {
            (x - self.high) / up
        } else if x < self.low {
            (self.low - x) / down
        } else {
            0.0
        }
    }
}

/// Per-bucket means of the series itself (not of deviations from a level,
/// which would move with the season and bias them); a bucket's offset is
/// its mean minus the mean of all buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    period_ms: i64,
    offsets: Vec<f64>,
    seen: Vec<u32>,
}

impl Profile {
    fn new(period_ms: i64, buckets: usize) -> Self {
        Profile {
            period_ms,
            offsets: vec![0.0; buckets],
            seen: vec![0; buckets],
        }
    }

    fn bucket(&self, t_ms: i64) -> usize {
        let n = self.offsets.len() as i64;
        (t_ms.rem_euclid(self.period_ms) * n / self.period_ms) as usize
    }

    fn learn(&mut self, t_ms: i64, x: f64) {
        let b = self.bucket(t_ms);
        self.seen[b] = self.seen[b].saturating_add(1);
        // An average at first, then an EWMA across cycles.
        let w = (1.0 / self.seen[b] as f64).max(0.02);
        self.offsets[b] += w * (x - self.offsets[b]);
    }

    /// Whether every bucket has been seen at least `cycles` times.
    fn covered(&self, windows_per_bucket: u32) -> bool {
        self.seen.iter().all(|&s| s >= windows_per_bucket)
    }

    /// The profile at `t_ms`: the bucket's step, or interpolated between
    /// bucket centres. A smooth daily curve read as hourly steps is off by
    /// a large part of an hour's change at each bucket's edges; a step
    /// pattern (a nightly batch) read smoothly is off around its edges.
    /// Both are tracked and the one that fits better is used.
    fn offset(&self, t_ms: i64, smooth: bool) -> f64 {
        let n = self.offsets.len();
        let mean = self.offsets.iter().sum::<f64>() / n as f64;
        if !smooth {
            return self.offsets[self.bucket(t_ms)] - mean;
        }
        let pos = t_ms.rem_euclid(self.period_ms) as f64 * n as f64 / self.period_ms as f64 - 0.5;
        let i = pos.floor();
        let frac = pos - i;
        let at = |k: f64| self.offsets[(k as i64).rem_euclid(n as i64) as usize];
        at(i) + frac * (at(i + 1.0) - at(i)) - mean
    }
}

/// A learned baseline for one feature (say p99 latency of checkout).
/// Serialisable: baselines are saved, versioned and reloaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub config: BaselineConfig,
    /// Windows learned from.
    pub learned: u64,
    /// Windows left out as anomalous.
    pub skipped: u64,
    /// Level and residuals of the series as it is, and deseasonalised by
    /// the daily and the weekly profile: all three are kept up to date, so
    /// switching to a profile once it is trusted starts from a level that
    /// already means the same thing.
    /// (Raw; daily as steps, smooth; weekly as steps, smooth.)
    tracks: [Track; 5],
    daily: Profile,
    weekly: Profile,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    /// Window length, learned from the spacing of observations.
    step_ms: i64,
    /// The values are events per second over each window (a request
    /// rate): the band is never narrower than their counting noise.
    #[serde(default)]
    pub counts_per_s: bool,
}

impl Baseline {
    pub fn new(config: BaselineConfig) -> Self {
        Baseline {
            tracks: Default::default(),
            config,
            learned: 0,
            skipped: 0,
            daily: Profile::new(DAY_MS, 24),
            weekly: Profile::new(WEEK_MS, 168),
            first_ms: None,
            last_ms: None,
            step_ms: 0,
            counts_per_s: false,
        }
    }

    /// Marks the values as events per second (see `counts_per_s`).
    pub fn counting_per_s(mut self, yes: bool) -> Self {
        self.counts_per_s = yes;
        self
    }

    fn season(&self) -> BandState {
        if !self.config.seasonality || self.step_ms <= 0 {
            return BandState::Ready;
        }
        let span = match (self.first_ms, self.last_ms) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        // A profile is used once its history spans two cycles and each of
        // its buckets has seen at least a cycle and a half of windows.
        let enough = |p: &Profile| {
            let per_bucket = (p.period_ms / p.offsets.len() as i64 / self.step_ms).max(1);
            p.covered((per_bucket * 3 / 2).max(1) as u32)
        };
        if span >= 2 * WEEK_MS && enough(&self.weekly) {
            BandState::Weekly
        } else if span >= 2 * DAY_MS && enough(&self.daily) {
            BandState::Daily
        } else {
            BandState::Ready
        }
    }

    /// The track in use at `t_ms` and its seasonal offset there.
    fn mode(&self, t_ms: i64) -> (BandState, usize, f64) {
        let (state, profile, first) = match self.season() {
            BandState::Weekly => (BandState::Weekly, &self.weekly, 3),
            BandState::Daily => (BandState::Daily, &self.daily, 1),
            s => return (s, 0, 0.0),
        };
        let smooth = self.tracks[first + 1].spread() < self.tracks[first].spread();
        let track = first + smooth as usize;
        (state, track, profile.offset(t_ms, smooth))
    }

    /// The first and last window times it has seen.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.first_ms.zip(self.last_ms)
    }

    /// The band expected for the window starting at `t_ms`.
    pub fn band(&self, t_ms: i64) -> Band {
        let need = self.config.warmup.max(2);
        let (state, track, offset) = self.mode(t_ms);
        let track = &self.tracks[track];
        let (Some(level), true) = (track.level, self.learned >= need as u64) else {
            return Band {
                low: f64::NEG_INFINITY,
                expected: track.level.unwrap_or(f64::NAN),
                high: f64::INFINITY,
                state: BandState::WarmingUp {
                    have: self.learned as usize,
                    need,
                },
            };
        };
        let mut sorted: Vec<f64> = track.residuals.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| quantile_sorted(&sorted, p);
        let (lo, mid, hi) = (
            q(self.config.lower_quantile),
            q(0.5),
            q(self.config.upper_quantile),
        );
        let expected = level + offset + mid;
        let floor = self
            .config
            .min_width
            .max(expected.abs() * self.config.min_relative_width)
            .max(self.counting_noise(expected));
        let widen = |d: f64| (d.max(0.0) * (1.0 + self.config.margin)).max(floor);
        Band {
            low: expected - widen(mid - lo),
            expected,
            high: expected + widen(hi - mid),
            state,
        }
    }

    /// For a rate: the band's half-width that Poisson noise alone needs.
    /// Traffic generated at a steady rate (a synthetic load, a cron) has
    /// residuals of almost nothing, and a window of 26 requests where 30
    /// are expected would otherwise page as a drop; the band's quantile
    /// of that noise, widened by its margin as the learned spread is.
    fn counting_noise(&self, expected: f64) -> f64 {
        if !self.counts_per_s || self.step_ms <= 0 {
            return 0.0;
        }
        let window_s = self.step_ms as f64 / 1000.0;
        let sd = (expected.max(0.0) * window_s).sqrt() / window_s;
        normal_quantile(self.config.upper_quantile) * sd * (1.0 + self.config.margin)
    }

    /// The mean the baseline expects at `t_ms` (its level, without the
    /// median of the residuals that centres the band), once warmed up:
    /// a Poisson count's median sits below its mean, so error rates are
    /// judged against this.
    pub fn mean(&self, t_ms: i64) -> Option<f64> {
        let (_, track, offset) = self.mode(t_ms);
        let level = self.tracks[track].level?;
        (self.learned >= self.config.warmup.max(2) as u64).then_some(level + offset)
    }

    /// Learns from the window at `t_ms` unless a detector called it
    /// anomalous.
    pub fn observe(&mut self, t_ms: i64, x: f64, anomalous: bool) {
        if !x.is_finite() {
            return;
        }
        if let Some(last) = self.last_ms {
            let d = t_ms - last;
            if d > 0 && (self.step_ms == 0 || d < self.step_ms) {
                self.step_ms = d;
            }
        }
        self.first_ms.get_or_insert(t_ms);
        self.last_ms = Some(self.last_ms.map_or(t_ms, |l| l.max(t_ms)));
        if anomalous && self.band(t_ms).ready() {
            self.skipped += 1;
            return;
        }
        let alpha = if self.learned < self.config.warmup as u64 {
            1.0 / (self.learned as f64 + 1.0)
        } else {
            self.config.alpha
        };
        let offsets = [
            0.0,
            self.daily.offset(t_ms, false),
            self.daily.offset(t_ms, true),
            self.weekly.offset(t_ms, false),
            self.weekly.offset(t_ms, true),
        ];
        let history = self.config.history.max(1);
        for (track, offset) in self.tracks.iter_mut().zip(offsets) {
            track.learn(x - offset, alpha, history);
        }
        self.daily.learn(t_ms, x);
        self.weekly.learn(t_ms, x);
        self.learned += 1;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Track {
    level: Option<f64>,
    residuals: VecDeque<f64>,
}

impl Track {
    /// Mean absolute residual: how well this track's model fits.
    fn spread(&self) -> f64 {
        if self.residuals.is_empty() {
            return f64::INFINITY;
        }
        let n = self.residuals.len() as f64;
        let mean = self.residuals.iter().sum::<f64>() / n;
        self.residuals.iter().map(|r| (r - mean).abs()).sum::<f64>() / n
    }

    fn learn(&mut self, x: f64, alpha: f64, history: usize) {
        let level = *self.level.get_or_insert(x);
        if self.residuals.len() == history {
            self.residuals.pop_front();
        }
        self.residuals.push_back(x - level);
        self.level = Some(level + alpha * (x - level));
    }
}

/// Linear-interpolated quantile of sorted values.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// The standard normal quantile of `p`, by bisection on its tail.
pub fn normal_quantile(p: f64) -> f64 {
    let tail = 1.0 - p.clamp(1e-12, 1.0 - 1e-12);
    let (mut lo, mut hi) = (-8.0, 8.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if perfpilot_stats::normal_tail(mid) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_tables() {
        assert!((normal_quantile(0.995) - 2.5758).abs() < 1e-4);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.025) + 1.9600).abs() < 1e-4);
    }

    #[test]
    fn a_steady_rate_is_banded_by_its_counting_noise() {
        // Exactly 10 requests/s in 3 s windows: no spread at all to learn.
        let mut b = Baseline::new(BaselineConfig::default());
        b.counts_per_s = true;
        for i in 0..100 {
            b.observe(i * 3_000, 10.0, false);
        }
        let band = b.band(100 * 3_000);
        // 26 requests where 30 are expected is Poisson noise (0.7 σ)...
        assert_eq!(band.excess(26.0 / 3.0), 0.0, "{band:?}");
        // ...and so is the band's edge, 3.2 σ of it: √30/3 × 2.58 × 1.25.
        let sd = 30f64.sqrt() / 3.0;
        assert!((band.high - 10.0 - 3.22 * sd).abs() < 0.05 * sd, "{band:?}");
        // Two thirds of the traffic gone is not.
        assert!(band.excess(10.0 / 3.0) > 0.0, "{band:?}");
        // A latency, not a count, keeps the narrow band.
        b.counts_per_s = false;
        assert!(b.band(100 * 3_000).excess(26.0 / 3.0) > 0.0);
    }

    fn noise(i: u64) -> f64 {
        // Deterministic pseudo-random in [-1, 1).
        let x = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    #[test]
    fn warms_up_then_bands_the_noise() {
        let mut b = Baseline::new(BaselineConfig::default());
        assert!(matches!(
            b.band(0).state,
            BandState::WarmingUp { have: 0, need: 60 }
        ));
        for i in 0..200 {
            b.observe(i * 10_000, 100.0 + 5.0 * noise(i as u64), false);
        }
        let band = b.band(200 * 10_000);
        assert_eq!(band.state, BandState::Ready);
        assert!(band.low < 95.0 && band.low > 85.0, "{band:?}");
        assert!(band.high > 105.0 && band.high < 115.0, "{band:?}");
        assert_eq!(band.excess(100.0), 0.0);
        assert!(band.excess(130.0) > 1.0);
    }

    #[test]
    fn anomalous_windows_do_not_move_the_band() {
        let mut b = Baseline::new(BaselineConfig::default());
        for i in 0..100 {
            b.observe(i * 10_000, 50.0 + noise(i as u64), false);
        }
        let before = b.band(100 * 10_000);
        for i in 100..200 {
            b.observe(i * 10_000, 500.0, true);
        }
        let after = b.band(200 * 10_000);
        assert_eq!(
            before,
            Band {
                state: after.state,
                ..after
            }
        );
        assert_eq!(b.skipped, 100);
    }

    #[test]
    fn learns_a_weekly_profile() {
        // Hourly windows; weekends (days 5 and 6 of each week) run at a
        // third of weekday traffic.
        let step = 3_600_000;
        let value = |t: i64| {
            let day = (t / DAY_MS) % 7;
            let base = if day >= 5 { 100.0 } else { 300.0 };
            base + 2.0 * noise(t as u64)
        };
        let mut b = Baseline::new(BaselineConfig::default());
        let weeks = 3 * WEEK_MS / step;
        for i in 0..weeks {
            b.observe(i * step, value(i * step), false);
        }
        let saturday = 3 * WEEK_MS + 5 * DAY_MS + 12 * 3_600_000;
        let band = b.band(saturday);
        assert_eq!(band.state, BandState::Weekly);
        assert_eq!(band.excess(value(saturday)), 0.0, "{band:?}");
        // Weekday traffic on a Saturday is not normal.
        assert!(band.excess(300.0) > 1.0, "{band:?}");
    }

    #[test]
    fn learns_a_daily_profile() {
        let step = 60_000;
        let value = |t: i64| {
            let hour = (t / 3_600_000) % 24;
            let peak = if (18..22).contains(&hour) {
                400.0
            } else {
                100.0
            };
            peak + 3.0 * noise(t as u64)
        };
        let mut b = Baseline::new(BaselineConfig::default());
        let three_days = 3 * DAY_MS / step;
        for i in 0..three_days {
            let t = i * step;
            b.observe(t, value(t), false);
        }
        let evening = 3 * DAY_MS + 19 * 3_600_000;
        let band = b.band(evening);
        assert_eq!(band.state, BandState::Daily);
        assert_eq!(band.excess(value(evening)), 0.0, "{band:?}");
        let morning = 3 * DAY_MS + 9 * 3_600_000;
        let band = b.band(morning);
        assert_eq!(band.excess(value(morning)), 0.0, "{band:?}");
        // The evening's level in the morning is anomalous.
        assert!(band.excess(400.0) > 1.0, "{band:?}");
    }
}
