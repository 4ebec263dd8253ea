//! perfpilot's single-series anomaly detector, as run on NAB.

use std::collections::{HashMap, VecDeque};

use super::stats::{normal_tail, surprise, RollingMoments, RollingQuantiles};
use super::StreamingDetector;

/// The detector's parameters: one set for every series (NAB's rule). The
/// defaults are the ones scored on NAB.
#[derive(Debug, Clone)]
pub struct NabParams {
    /// Quantisation levels over the range seen so far, for contexts.
    pub levels: u32,
    /// Longest context (run of consecutive quantised values) remembered.
    pub max_context: usize,
    /// Rows behind the robust z-score's median and spread.
    pub z_window: usize,
    /// Rows of raw scores behind a likelihood's reference distribution.
    pub history: usize,
    /// Rows of raw scores averaged for a likelihood's recent level.
    pub short: usize,
    /// Floor of the raw scores' spread in a likelihood, so that a series
    /// whose raw score never moved does not alarm on its first wobble.
    pub min_std: f64,
    /// Scale of the spatial score, as a fraction of the range seen so far:
    /// a value this far outside it scores 0.63.
    pub spatial_tolerance: f64,
    /// Rows scored 0 while the range and windows fill.
    pub warmup: usize,
    /// Score at which an alarm starts a rest period.
    pub alarm: f64,
    /// Rows of the rest period: NAB credits only the first detection in a
    /// window and charges for every false one, so repeats are damped.
    pub rest: usize,
    /// Factor applied to scores during the rest period.
    pub rest_factor: f64,
}

impl Default for NabParams {
    fn default() -> Self {
        NabParams {
            levels: 10,
            max_context: 4,
            z_window: 400,
            history: 2000,
            short: 10,
            min_std: 0.02,
            spatial_tolerance: 0.01,
            warmup: 100,
            alarm: 0.5,
            rest: 150,
            rest_factor: 0.5,
        }
    }
}

/// Turns a raw score stream into how unusual its recent level is against its
/// own longer history (the tail probability of a normal fit), as surprise.
#[derive(Debug, Clone)]
struct Likelihood {
    history: RollingMoments,
    recent: RollingMoments,
    min_std: f64,
}

impl Likelihood {
    fn new(p: &NabParams) -> Self {
        Likelihood {
            history: RollingMoments::new(p.history),
            recent: RollingMoments::new(p.short),
            min_std: p.min_std,
        }
    }

    fn update(&mut self, raw: f64) -> f64 {
        self.recent.push(raw);
        let out = if self.history.len() < 2 {
            0.0
        } else {
            let z =
                (self.recent.mean() - self.history.mean()) / self.history.std().max(self.min_std);
            surprise(normal_tail(z))
        };
        self.history.push(raw);
        out
    }
}

/// Novelty of the recent sequence of quantised values: the fraction of
/// context lengths whose current context was never seen before.
#[derive(Debug, Clone)]
struct Contexts {
    recent: VecDeque<u64>,
    seen: HashMap<u64, u32>,
    max_context: usize,
}

impl Contexts {
    fn new(p: &NabParams) -> Self {
        Contexts {
            recent: VecDeque::with_capacity(p.max_context + 1),
            seen: HashMap::new(),
            max_context: p.max_context.max(1),
        }
    }

    fn update(&mut self, level: u64) -> f64 {
        self.recent.push_front(level);
        self.recent.truncate(self.max_context);
        let mut novel = 0;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, &l) in self.recent.iter().enumerate() {
            // FNV-style mixing of the level and the context length.
            h = (h ^ (l + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0x0100_0000_01b3);
            let key = h ^ ((k as u64) << 58);
            let count = self.seen.entry(key).or_insert(0);
            if *count == 0 {
                novel += 1;
            }
            *count = count.saturating_add(1);
        }
        novel as f64 / self.max_context as f64
    }
}

/// perfpilot's NAB detector. Three kinds of evidence, the largest wins:
///
/// - spatial: how far the value lies outside every value seen before it;
/// - deviation: a robust z-score (median and interquartile spread of a
///   recent window), as a likelihood against its own history;
/// - novelty: the share of the recent runs of quantised values (contexts of
///   1 to `max_context` rows) never seen before, as a likelihood against its
///   own history — it catches changed shapes that stay within range.
///
/// After an alarm, scores are damped for a rest period, except for a new
/// extreme.
#[derive(Debug, Clone)]
pub struct NabDetector {
    p: NabParams,
    rows: usize,
    min: f64,
    max: f64,
    values: RollingQuantiles,
    contexts: Contexts,
    deviation: Likelihood,
    novelty: Likelihood,
    since_alarm: usize,
    last: Explanation,
}

/// What made up the last score, for explaining an alarm.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Explanation {
    /// Spatial score: how far outside the range seen before.
    pub spatial: f64,
    /// Likelihood (as surprise) of the robust z-score.
    pub deviation: f64,
    /// Likelihood (as surprise) of the context novelty.
    pub novelty: f64,
    /// The score was damped after an earlier alarm.
    pub damped: bool,
}

impl Default for NabDetector {
    fn default() -> Self {
        NabDetector::new(NabParams::default())
    }
}

impl NabDetector {
    pub fn new(p: NabParams) -> Self {
        NabDetector {
            rows: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            values: RollingQuantiles::new(p.z_window),
            contexts: Contexts::new(&p),
            deviation: Likelihood::new(&p),
            novelty: Likelihood::new(&p),
            since_alarm: usize::MAX,
            last: Explanation::default(),
            p,
        }
    }

    pub fn params(&self) -> &NabParams {
        &self.p
    }

    /// The parts of the last score.
    pub fn explain(&self) -> Explanation {
        self.last
    }

    /// The value's level over the range seen so far.
    fn level(&self, v: f64) -> u64 {
        let range = self.max - self.min;
        let levels = self.p.levels.max(1);
        if range <= 0.0 || !range.is_finite() {
            return 0;
        }
        let l = ((v - self.min) / range * f64::from(levels)).floor();
        l.clamp(0.0, f64::from(levels - 1)) as u64
    }
}

impl StreamingDetector for NabDetector {
    fn update(&mut self, _t: i64, v: f64) -> f64 {
        if !v.is_finite() {
            // Nothing to learn from; report no evidence rather than poison
            // the windows.
            return 0.0;
        }
        self.rows += 1;
        let range = self.max - self.min;

        // Graded so that a small step outside the range needs other
        // evidence, and a large one alarms by itself.
        let excess = (v - self.max).max(self.min - v);
        let spatial = if self.rows > self.p.warmup && range > 0.0 && excess > 0.0 {
            1.0 - (-excess / (self.p.spatial_tolerance * range)).exp()
        } else {
            0.0
        };

        // The spread is floored by the range so that a flat window does not
        // turn every wobble into an infinite z.
        let med = self.values.quantile(0.5);
        let iqr = self.values.quantile(0.75) - self.values.quantile(0.25);
        let sigma = (iqr / 1.349).max(1e-3 * range).max(1e-9);
        let z_raw = if self.values.len() < 10 {
            0.0
        } else {
            surprise(2.0 * normal_tail((v - med).abs() / sigma))
        };
        let deviation = self.deviation.update(z_raw);

        let level = self.level(v);
        let novelty = self.novelty.update(self.contexts.update(level));

        self.values.push(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.last = Explanation {
            spatial,
            deviation,
            novelty,
            damped: false,
        };
        if self.rows <= self.p.warmup {
            return 0.0;
        }
        let score = spatial.max(deviation).max(novelty);
        if spatial >= self.p.alarm {
            // A new extreme is news even right after an alarm.
            self.since_alarm = 0;
            return score;
        }
        if self.since_alarm < self.p.rest {
            self.since_alarm += 1;
            self.last.damped = true;
            return score * self.p.rest_factor;
        }
        if score >= self.p.alarm {
            self.since_alarm = 0;
        }
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
        let mut d = NabDetector::default();
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| d.update(i as i64 * 300, v))
            .collect()
    }

    #[test]
    fn a_spike_alarms_once_and_a_steady_series_does_not() {
        let wave = |i: usize| 50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 48.0).sin();
        let mut values: Vec<f64> = (0..2000).map(wave).collect();
        let steady = run(values.clone());
        assert!(
            steady[500..].iter().all(|&s| s < 0.5),
            "steady series alarmed"
        );

        values[1500] = 90.0;
        let spiked = run(values);
        assert!(spiked[1500] >= 0.99, "{}", spiked[1500]);
        let later = spiked[1501..1600].iter().filter(|&&s| s >= 0.5).count();
        assert_eq!(later, 0, "repeated alarms after the spike");
        assert!(spiked.iter().all(|s| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn a_changed_shape_within_range_is_noticed() {
        // A daily wave that goes flat mid-range for a while.
        let wave = |i: usize| 50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 96.0).sin();
        let values: Vec<f64> = (0..3000)
            .map(|i| {
                if (2000..2100).contains(&i) {
                    50.0
                } else {
                    wave(i)
                }
            })
            .collect();
        let scores = run(values);
        let before = scores[500..2000].iter().copied().fold(0.0, f64::max);
        let during = scores[2000..2100].iter().copied().fold(0.0, f64::max);
        assert!(during > before, "flat stretch {during} vs before {before}");
    }
}
