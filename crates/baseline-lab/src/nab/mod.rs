//! The Numenta Anomaly Benchmark: its corpus, a port of its scorer, and a
//! runner that scores perfpilot's streaming detector (or any other) under
//! NAB's rules — each series once, in order, no look-ahead, one parameter
//! set for every file, one threshold per profile chosen over the corpus.
//!
//! - [`corpus`]: series, anomaly windows and cost profiles.
//! - [`scorer`]: windows, probation, sigmoid weighting, threshold sweep,
//!   normalisation.
//! - [`results`]: NAB's per-row results layout, read and written.
//!
//! The CLI's entry point is [`run`]; [`score_results`] scores a directory of
//! per-row outputs written by another detector.

pub mod corpus;
pub mod results;
pub mod scorer;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perfpilot_baseline::detectors::FeatureKind;
use perfpilot_baseline::engine::{Engine, EngineConfig};
use perfpilot_baseline::incidents::Transition;
use perfpilot_baseline::BaselineError;

pub use corpus::{load_corpus, Corpus, CostWeights, Profile, Series, Window, Windows};
pub use scorer::{FileScores, ProfileResult, ThresholdSearch};

/// What `perfpilot baseline nab` runs.
#[derive(Debug, Clone)]
pub struct NabOptions {
    /// The NAB checkout: `data/`, `labels/`, `config/`.
    pub data: PathBuf,
    /// The profile broken down by category in the report (all three are
    /// always scored); standard by default.
    pub profile: Option<Profile>,
    /// Also write the per-row scores in NAB's results layout here, as
    /// `<dir>/<category>/perfpilot_<file>.csv`.
    pub write_results: Option<PathBuf>,
}

impl NabOptions {
    pub fn new(data: impl Into<PathBuf>) -> Self {
        NabOptions {
            data: data.into(),
            profile: None,
            write_results: None,
        }
    }
}

/// The name perfpilot's detector goes by in results and reports.
pub const DETECTOR_NAME: &str = "perfpilot";

/// The live engine, with the defaults `watch` runs, seen as a detector of
/// one series: each row is a window of one gauge feature, and the row's
/// output is 1 where the engine raises a new incident, else 0. NAB's
/// threshold search therefore cannot pick an operating point the engine
/// does not use.
pub struct LiveEngine {
    engine: Engine,
    labels: BTreeMap<String, String>,
}

impl Default for LiveEngine {
    fn default() -> Self {
        LiveEngine::new(EngineConfig::default())
    }
}

impl LiveEngine {
    /// The service and feature a NAB series is fed as.
    pub const SERVICE: &'static str = "nab";
    pub const FEATURE: &'static str = "value";

    pub fn new(config: EngineConfig) -> Self {
        LiveEngine {
            engine: Engine::new(config),
            labels: BTreeMap::new(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl StreamingDetector for LiveEngine {
    fn update(&mut self, t: i64, value: f64) -> f64 {
        self.engine.observe(
            Self::SERVICE,
            Self::FEATURE,
            FeatureKind::Gauge,
            t.saturating_mul(1000),
            value,
            &self.labels,
        );
        let raised = self
            .engine
            .drain_transitions()
            .iter()
            .any(|t| matches!(t, Transition::Fired(_)));
        f64::from(u8::from(raised))
    }
}

/// Runs the live engine over the corpus and scores it.
pub fn run(opts: &NabOptions) -> Result<NabReport, BaselineError> {
    let corpus = load_corpus(&opts.data)?;
    let run = run_corpus(&corpus, LiveEngine::default);
    if let Some(dir) = &opts.write_results {
        results::write_results_dir(
            dir,
            DETECTOR_NAME,
            &corpus.series,
            &run.scores,
            &corpus.windows,
        )?;
    }
    report(
        DETECTOR_NAME,
        &corpus,
        &run.scores,
        Some(run.elapsed),
        opts.profile.unwrap_or(Profile::Standard),
    )
}

/// Scores per-row outputs in NAB's results layout (`dir/<category>/
/// <detector>_<file>.csv`); `detector` defaults to the directory's name.
pub fn score_results(
    data: &Path,
    dir: &Path,
    detector: Option<&str>,
    profile: Option<Profile>,
) -> Result<NabReport, BaselineError> {
    let corpus = load_corpus(data)?;
    let name = match detector {
        Some(d) => d.to_string(),
        None => results::detector_name(dir)?,
    };
    let scores = results::read_results_dir(dir, Some(&name), &corpus.windows)?;
    for (s, f) in corpus.series.iter().zip(&scores) {
        if s.timestamps != f.timestamps {
            return Err(BaselineError::invalid(
                results::results_path(dir, &name, &s.name)
                    .display()
                    .to_string(),
                format!("timestamps differ from data/{}", s.name),
            ));
        }
    }
    report(
        &name,
        &corpus,
        &scores,
        None,
        profile.unwrap_or(Profile::Standard),
    )
}

/// A detector that sees one series, one row at a time, and scores each row
/// before it sees the next (no look-ahead).
pub trait StreamingDetector {
    /// Takes the row at `t` (unix seconds) and returns its anomaly score in
    /// [0, 1].
    fn update(&mut self, t: i64, value: f64) -> f64;
}

/// A detector's per-row scores over the corpus and the time it took.
#[derive(Debug, Clone)]
pub struct CorpusRun {
    pub scores: Vec<FileScores>,
    pub points: usize,
    /// Time spent in the detector's updates alone.
    pub elapsed: Duration,
}

/// Runs a fresh detector from `make_detector` over each series, in order,
/// one row at a time. Scores are clamped to [0, 1]; NaN counts as 0.
pub fn run_corpus<D, F>(corpus: &Corpus, mut make_detector: F) -> CorpusRun
where
    D: StreamingDetector,
    F: FnMut() -> D,
{
    let mut scores = Vec::with_capacity(corpus.series.len());
    let mut elapsed = Duration::ZERO;
    for s in &corpus.series {
        let mut detector = make_detector();
        let mut out = Vec::with_capacity(s.len());
        let start = Instant::now();
        for (&t, &v) in s.timestamps.iter().zip(&s.values) {
            let a = detector.update(t, v);
            out.push(if a.is_nan() { 0.0 } else { a.clamp(0.0, 1.0) });
        }
        elapsed += start.elapsed();
        scores.push(FileScores {
            name: s.name.clone(),
            timestamps: s.timestamps.clone(),
            scores: out,
        });
    }
    CorpusRun {
        scores,
        points: corpus.points(),
        elapsed,
    }
}

/// Scores `scores` under every profile of the corpus.
pub fn report(
    detector: &str,
    corpus: &Corpus,
    scores: &[FileScores],
    elapsed: Option<Duration>,
    detail: Profile,
) -> Result<NabReport, BaselineError> {
    let score = |search| scorer::score(scores, &corpus.windows, &corpus.profiles, search);
    let results = score(ThresholdSearch::LocalSearch)?;
    let best_threshold = score(ThresholdSearch::Sweep)?;
    Ok(NabReport {
        detector: detector.to_string(),
        corpus: corpus.root.clone(),
        files: scores.len(),
        points: scores.iter().map(|f| f.scores.len()).sum(),
        windows: scores
            .iter()
            .filter_map(|f| corpus.windows.get(&f.name))
            .map(Vec::len)
            .sum(),
        elapsed,
        detail,
        results,
        best_threshold,
        tuning: tuning_split(scores.iter().map(|f| f.name.as_str())),
    })
}

/// The tuning half of the corpus: the files at even positions (0, 2, …)
/// of each category in name order. The odd ones are held out, so a default
/// chosen on one half can be checked on files it never saw.
pub fn tuning_split<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut by_category: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in names {
        let category = n.split_once('/').map_or("", |(c, _)| c);
        by_category.entry(category).or_default().push(n);
    }
    let mut out = BTreeSet::new();
    for files in by_category.values_mut() {
        files.sort_unstable();
        files.dedup();
        out.extend(files.iter().step_by(2).map(|n| n.to_string()));
    }
    out
}

/// A detector's NAB scores; its `Display` is the CLI's output, ending with
/// `NAB standard=S reward_low_FP_rate=F reward_low_FN_rate=N`.
#[derive(Debug, Clone)]
pub struct NabReport {
    pub detector: String,
    pub corpus: PathBuf,
    pub files: usize,
    pub points: usize,
    pub windows: usize,
    /// Detector time, when the detector ran here.
    pub elapsed: Option<Duration>,
    /// The profile broken down per category.
    pub detail: Profile,
    /// Scores at the threshold NAB's hill climb finds: how its published
    /// scoreboard (`results/final_results.json`) was made, so these compare
    /// with it.
    pub results: BTreeMap<Profile, ProfileResult>,
    /// Scores at the best threshold of all (a sweep over every distinct
    /// score); at least the hill climb's.
    pub best_threshold: BTreeMap<Profile, ProfileResult>,
    /// The files of [`tuning_split`]; the rest are held out.
    pub tuning: BTreeSet<String>,
}

impl NabReport {
    /// The normalised score under `profile` (0 = null detector, 100 = perfect).
    pub fn score(&self, profile: Profile) -> Option<f64> {
        self.results.get(&profile).map(|r| r.normalized)
    }

    /// The normalised score under `profile` over the tuning files and over
    /// the held-out ones (scored at the corpus's threshold).
    pub fn split_scores(&self, profile: Profile) -> (Option<f64>, Option<f64>) {
        let Some(r) = self.results.get(&profile) else {
            return (None, None);
        };
        (
            r.normalized_over(|n| self.tuning.contains(n)),
            r.normalized_over(|n| !self.tuning.contains(n)),
        )
    }

    /// Points per second through the detector.
    pub fn throughput(&self) -> Option<f64> {
        let secs = self.elapsed?.as_secs_f64();
        (secs > 0.0).then(|| self.points as f64 / secs)
    }
}

impl fmt::Display for NabReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "NAB corpus {}: {} files, {} points, {} anomaly windows",
            self.corpus.display(),
            self.files,
            self.points,
            self.windows
        )?;
        match (self.elapsed, self.throughput()) {
            (Some(e), Some(tp)) => writeln!(
                f,
                "detector {}: {:.3} s, {:.0} points/s",
                self.detector,
                e.as_secs_f64(),
                tp
            )?,
            _ => writeln!(f, "detector {} (scored from its results)", self.detector)?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:>10} {:>9} {:>7} {:>9} {:>7} {:>6} {:>14}",
            "profile", "threshold", "raw", "score", "detected", "missed", "FP", "(best thresh.)"
        )?;
        for r in self.results.values() {
            let best = self.best_threshold.get(&r.profile).map(|l| l.normalized);
            writeln!(
                f,
                "{:<20} {:>10.6} {:>9.3} {:>7.2} {:>9} {:>7} {:>6} {:>14}",
                r.profile.name(),
                r.threshold,
                r.tally.raw,
                r.normalized,
                r.tally.detected,
                r.tally.missed,
                r.tally.false_positives,
                best.map_or("-".to_string(), |l| format!("{l:.2}"))
            )?;
        }
        if let Some(r) = self.results.get(&self.detail) {
            writeln!(f)?;
            writeln!(f, "{} score by category:", r.profile.name())?;
            let mut categories: Vec<&str> = r
                .files
                .iter()
                .map(|x| x.name.split_once('/').map_or("", |(c, _)| c))
                .collect();
            categories.dedup();
            for c in categories {
                let prefix = format!("{c}/");
                let fp: usize = r
                    .files
                    .iter()
                    .filter(|x| x.name.starts_with(&prefix))
                    .map(|x| x.tally.false_positives)
                    .sum();
                match r.normalized_over(|n| n.starts_with(&prefix)) {
                    Some(s) => writeln!(f, "  {c:<24} {s:>7.2}  ({fp} FP)")?,
                    None => writeln!(f, "  {c:<24} {:>7}  ({fp} FP)", "-")?,
                }
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "split (files at even / odd positions of each category, in name order):"
        )?;
        let show = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.2}"));
        for p in Profile::ALL {
            let (tuning, held_out) = self.split_scores(p);
            writeln!(
                f,
                "  {:<20} tuning {:>7}  held-out {:>7}",
                p.name(),
                show(tuning),
                show(held_out)
            )?;
        }
        writeln!(f)?;
        write!(f, "NAB")?;
        for p in Profile::ALL {
            match self.score(p) {
                Some(s) => write!(f, " {}={s:.2}", p.name())?,
                None => write!(f, " {}=-", p.name())?,
            }
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_alternates_within_each_category() {
        let names = [
            "b/y.csv",
            "a/2.csv",
            "a/1.csv",
            "b/x.csv",
            "a/3.csv",
            "c/only.csv",
        ];
        let tuning = tuning_split(names);
        let want: BTreeSet<String> = ["a/1.csv", "a/3.csv", "b/x.csv", "c/only.csv"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(tuning, want);
    }
}
