//! NAB's scoring rules: anomaly windows, the probation period, sigmoid
//! weighting of detections, one threshold per profile optimised over the
//! whole corpus, and normalisation between the null and a perfect detector.
//!
//! Every row after probation gets the score it would earn if it were a
//! detection (a true positive weighted by how early it is in its window, or
//! a false positive weighted by its distance past the previous window); the
//! rows of the whole corpus sorted by anomaly score then give the corpus
//! score at every threshold (a row is a detection when its score is >= the
//! threshold). The threshold is chosen from that curve by NAB's hill climb,
//! or by trying every distinct score ([`ThresholdSearch`]).

use std::collections::BTreeMap;

use perfpilot_baseline::BaselineError;

use super::corpus::{CostWeights, Profile, Profiles, Window, Windows};

/// One detector's per-row anomaly scores for one series.
#[derive(Debug, Clone)]
pub struct FileScores {
    /// `category/file.csv`, the key of the series in the windows file.
    pub name: String,
    pub timestamps: Vec<i64>,
    pub scores: Vec<f64>,
}

/// The rows NAB leaves unscored at the start of a series of `len` rows.
pub fn probation_period(len: usize) -> usize {
    // Same float arithmetic as NAB: floor(0.15 * n), capped at 0.15 * 5000.
    let p = (0.15 * len as f64).floor().min(750.0);
    p as usize
}

/// NAB's scaled sigmoid: 2 / (1 + e^(5x)) - 1, and -1 beyond x = 3.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// Row ranges (inclusive) of a series' windows. A window opens at the first
/// row at or after its start and closes at the last row before the first
/// row past its end. NAB's series are not strictly ordered (repeated rows at
/// daylight-saving changes, one step back), so this scans rows as NAB does
/// rather than bisecting.
pub fn window_rows(
    name: &str,
    timestamps: &[i64],
    windows: &[Window],
) -> Result<Vec<(usize, usize)>, BaselineError> {
    let mut out = Vec::with_capacity(windows.len());
    let mut from = 0;
    for w in windows {
        let left = timestamps[from..]
            .iter()
            .position(|&t| t >= w.start)
            .map(|i| i + from);
        let right = left.and_then(|l| {
            let past = timestamps[l..]
                .iter()
                .position(|&t| t > w.end)
                .map_or(timestamps.len(), |i| i + l);
            // Ends exactly on a row (NAB's windows always do): stop at its
            // first occurrence.
            let exact = timestamps[l..past].iter().position(|&t| t == w.end);
            match exact {
                Some(i) => Some(l + i),
                None => past.checked_sub(1).filter(|&r| r >= l),
            }
        });
        match (left, right) {
            (Some(l), Some(r)) => {
                out.push((l, r));
                from = r + 1;
            }
            _ => {
                return Err(BaselineError::invalid(
                    name,
                    format!(
                        "anomaly window {} .. {} holds no rows of the series",
                        super::corpus::format_timestamp(w.start),
                        super::corpus::format_timestamp(w.end)
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// A scored row: what it earns if it is a detection.
#[derive(Debug, Clone, Copy)]
struct SweepPoint {
    anomaly: f64,
    earns: f64,
    /// Corpus-wide window number, for rows inside a window.
    window: Option<usize>,
}

/// Appends the sweep points of one file, numbering its windows from
/// `first_window`.
fn sweep_file(
    rows: &[(usize, usize)],
    scores: &[f64],
    weights: CostWeights,
    first_window: usize,
    out: &mut Vec<SweepPoint>,
) {
    let max_tp = scaled_sigmoid(-1.0);
    let probation = probation_period(scores.len());
    let mut next = 0; // the first window not yet passed
    for (i, &anomaly) in scores.iter().enumerate() {
        while next < rows.len() && rows[next].1 < i {
            next += 1;
        }
        let inside = rows.get(next).filter(|(l, _)| *l <= i);
        let (earns, window) = match inside {
            Some(&(left, right)) => {
                let width = (right - left + 1) as f64;
                let x = -((right - i + 1) as f64) / width;
                (
                    weights.tp * scaled_sigmoid(x) / max_tp,
                    Some(first_window + next),
                )
            }
            None if next == 0 => (-weights.fp, None),
            None => {
                let (left, right) = rows[next - 1];
                let width = (right - left + 1) as f64;
                // A one-row window leaves 0/0; NAB's far-past cost applies.
                let d = if width > 1.0 {
                    (i - right) as f64 / (width - 1.0)
                } else {
                    f64::INFINITY
                };
                (weights.fp * scaled_sigmoid(d), None)
            }
        };
        if i >= probation {
            out.push(SweepPoint {
                anomaly,
                earns,
                window,
            });
        }
    }
}

/// The outcome of one file or the corpus at one threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub raw: f64,
    /// Windows with a detection.
    pub detected: usize,
    /// Windows without one.
    pub missed: usize,
    /// Detections outside every window (after probation).
    pub false_positives: usize,
}

/// One file's result at the profile's corpus threshold.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub name: String,
    pub windows: usize,
    pub tally: Tally,
}

/// A detector's result for one profile.
#[derive(Debug, Clone)]
pub struct ProfileResult {
    pub profile: Profile,
    pub weights: CostWeights,
    pub threshold: f64,
    pub tally: Tally,
    /// Raw score of a detector that never fires: every window missed.
    pub null: f64,
    /// Raw score of a detector that fires on the first row of every window.
    pub perfect: f64,
    pub normalized: f64,
    pub files: Vec<FileResult>,
}

impl ProfileResult {
    /// Normalised score of a subset of files (e.g. a category), at the
    /// corpus threshold; `None` when the subset has no windows.
    pub fn normalized_over(&self, keep: impl Fn(&str) -> bool) -> Option<f64> {
        let (mut raw, mut windows) = (0.0, 0usize);
        for f in self.files.iter().filter(|f| keep(&f.name)) {
            raw += f.tally.raw;
            windows += f.windows;
        }
        if windows == 0 {
            return None;
        }
        let null = -(windows as f64) * self.weights.fn_;
        let perfect = windows as f64 * self.weights.tp;
        Some(normalize(raw, null, perfect))
    }
}

fn normalize(raw: f64, null: f64, perfect: f64) -> f64 {
    if perfect > null {
        100.0 * (raw - null) / (perfect - null)
    } else {
        0.0
    }
}

/// Scores a detector's outputs over the corpus for each profile.
pub fn score(
    files: &[FileScores],
    windows: &Windows,
    profiles: &Profiles,
    search: ThresholdSearch,
) -> Result<BTreeMap<Profile, ProfileResult>, BaselineError> {
    let mut rows = Vec::with_capacity(files.len());
    for f in files {
        if f.scores.len() != f.timestamps.len() {
            return Err(BaselineError::invalid(
                &f.name,
                format!(
                    "{} scores for {} timestamps",
                    f.scores.len(),
                    f.timestamps.len()
                ),
            ));
        }
        if let Some(i) = f.scores.iter().position(|s| !s.is_finite()) {
            return Err(BaselineError::invalid(
                &f.name,
                format!("row {i}: anomaly score {} is not finite", f.scores[i]),
            ));
        }
        let w = windows.get(&f.name).ok_or_else(|| {
            BaselineError::invalid(&f.name, "no entry for this file in the windows file")
        })?;
        rows.push(window_rows(&f.name, &f.timestamps, w)?);
    }
    let mut out = BTreeMap::new();
    for (&profile, &weights) in profiles {
        out.insert(
            profile,
            score_profile(search, files, &rows, profile, weights),
        );
    }
    Ok(out)
}

fn score_profile(
    search: ThresholdSearch,
    files: &[FileScores],
    rows: &[Vec<(usize, usize)>],
    profile: Profile,
    weights: CostWeights,
) -> ProfileResult {
    let mut points = Vec::new();
    let mut first_window = Vec::with_capacity(files.len());
    let mut n_windows = 0;
    for (f, r) in files.iter().zip(rows) {
        first_window.push(n_windows);
        sweep_file(r, &f.scores, weights, n_windows, &mut points);
        n_windows += r.len();
    }
    let curve = ScoreCurve::new(&mut points, n_windows, weights);
    let threshold = match search {
        ThresholdSearch::Sweep => curve.sweep(),
        ThresholdSearch::LocalSearch => curve.local_search(),
    };

    let mut files_out = Vec::with_capacity(files.len());
    let mut total = Tally::default();
    for ((f, r), &first) in files.iter().zip(rows).zip(&first_window) {
        points.clear();
        sweep_file(r, &f.scores, weights, first, &mut points);
        let tally = tally_at(&points, r.len(), first, threshold, weights);
        total.raw += tally.raw;
        total.detected += tally.detected;
        total.missed += tally.missed;
        total.false_positives += tally.false_positives;
        files_out.push(FileResult {
            name: f.name.clone(),
            windows: r.len(),
            tally,
        });
    }
    let null = -(n_windows as f64) * weights.fn_;
    let perfect = n_windows as f64 * weights.tp;
    ProfileResult {
        profile,
        weights,
        threshold,
        tally: total,
        null,
        perfect,
        normalized: normalize(total.raw, null, perfect),
        files: files_out,
    }
}

/// How the corpus threshold of a profile is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThresholdSearch {
    /// NAB's hill climb over [0, 1] from 0.5 with a first step of 0.1: it
    /// made the published scoreboard, which it reproduces exactly, and can
    /// stop at a local optimum.
    #[default]
    LocalSearch,
    /// Every distinct anomaly score is tried: the best threshold there is.
    Sweep,
}

/// Corpus score as a function of the threshold: `(level, total)` for every
/// distinct anomaly score, highest first, where `total` is the score when
/// rows scoring >= `level` are detections.
struct ScoreCurve {
    null: f64,
    levels: Vec<(f64, f64)>,
}

impl ScoreCurve {
    fn new(points: &mut [SweepPoint], n_windows: usize, weights: CostWeights) -> Self {
        points.sort_by(|a, b| b.anomaly.total_cmp(&a.anomaly));
        let mut window_score = vec![-weights.fn_; n_windows];
        let null = -(n_windows as f64) * weights.fn_;
        let mut windows_total = null;
        let mut fp_total = 0.0;
        let mut levels = Vec::new();
        let mut i = 0;
        while i < points.len() {
            let level = points[i].anomaly;
            while i < points.len() && points[i].anomaly == level {
                let p = points[i];
                match p.window {
                    // Earlier rows earn more, so the max is the first detection.
                    Some(w) if p.earns > window_score[w] => {
                        windows_total += p.earns - window_score[w];
                        window_score[w] = p.earns;
                    }
                    Some(_) => {}
                    None => fp_total += p.earns,
                }
                i += 1;
            }
            levels.push((level, windows_total + fp_total));
        }
        ScoreCurve { null, levels }
    }

    fn at(&self, threshold: f64) -> f64 {
        let n = self.levels.partition_point(|&(l, _)| l >= threshold);
        n.checked_sub(1).map_or(self.null, |i| self.levels[i].1)
    }

    /// The best threshold, the highest among ties; above every score when
    /// firing never pays.
    fn sweep(&self) -> f64 {
        let above_all = self.levels.first().map_or(1.1, |l| l.0.max(1.0) + 0.1);
        let (mut best, mut best_score) = (above_all, self.null);
        for &(level, total) in &self.levels {
            if total > best_score {
                (best, best_score) = (level, total);
            }
        }
        best
    }

    /// NAB's hill climb ("twiddle"): step up, else step down, doubling the
    /// step after an improvement and halving it otherwise, kept in [0, 1].
    fn local_search(&self) -> f64 {
        let (lo, hi) = (0.0, 1.0);
        let mut x: f64 = 0.5;
        let mut delta: f64 = 0.1;
        let mut best = self.at(x);
        while delta > 1e-7 {
            if x + delta > hi {
                delta = (hi - x).abs();
            }
            x += delta;
            let s = self.at(x);
            if s > best {
                best = s;
                delta *= 2.0;
                continue;
            }
            if x - delta < lo {
                delta = (lo - x).abs();
            }
            x -= 2.0 * delta;
            let s = self.at(x);
            if s > best {
                best = s;
                delta *= 2.0;
            } else {
                x += delta;
                delta *= 0.5;
            }
        }
        x
    }
}

fn tally_at(
    points: &[SweepPoint],
    n_windows: usize,
    first_window: usize,
    threshold: f64,
    weights: CostWeights,
) -> Tally {
    let mut window_score: Vec<Option<f64>> = vec![None; n_windows];
    let mut t = Tally::default();
    for p in points.iter().filter(|p| p.anomaly >= threshold) {
        match p.window {
            Some(w) => {
                let slot = &mut window_score[w - first_window];
                *slot = Some(slot.map_or(p.earns, |s: f64| s.max(p.earns)));
            }
            None => {
                t.raw += p.earns;
                t.false_positives += 1;
            }
        }
    }
    for s in window_score {
        match s {
            Some(s) => {
                t.raw += s;
                t.detected += 1;
            }
            None => {
                t.raw -= weights.fn_;
                t.missed += 1;
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> CostWeights {
        CostWeights {
            tp: 1.0,
            fn_: 1.0,
            fp: 0.11,
        }
    }

    #[test]
    fn sigmoid_matches_nab_constants() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614).abs() < 1e-6);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
        assert_eq!(probation_period(4032), 604);
        assert_eq!(probation_period(22_695), 750);
    }

    #[test]
    fn first_detection_in_window_counts_and_later_fp_is_cheap() {
        let n = 1000;
        let timestamps: Vec<i64> = (0..n).map(|i| i * 60).collect();
        let mut scores = vec![0.0; n as usize];
        // Window rows 500..=599; detections at its left edge and inside it,
        // and a false positive right after it.
        scores[500] = 1.0;
        scores[550] = 1.0;
        scores[601] = 1.0;
        let mut windows = Windows::new();
        windows.insert(
            "c/f.csv".into(),
            vec![Window {
                start: 500 * 60,
                end: 599 * 60,
            }],
        );
        let mut profiles = Profiles::new();
        profiles.insert(Profile::Standard, weights());
        let files = [FileScores {
            name: "c/f.csv".into(),
            timestamps,
            scores,
        }];
        let r = &score(&files, &windows, &profiles, ThresholdSearch::Sweep).expect("scores")
            [&Profile::Standard];
        assert_eq!(r.threshold, 1.0);
        assert_eq!(
            (r.tally.detected, r.tally.missed, r.tally.false_positives),
            (1, 0, 1)
        );
        let fp = 0.11 * scaled_sigmoid(2.0 / 99.0);
        assert!((r.tally.raw - (1.0 + fp)).abs() < 1e-12, "{}", r.tally.raw);
        assert!((r.normalized - 100.0 * (1.0 + fp + 1.0) / 2.0).abs() < 1e-9);
    }
}
