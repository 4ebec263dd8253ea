//! Calibration (`perfpilot baseline calibrate`): detector parameters tuned
//! by differential evolution to maximise the alert quality of replays of a
//! watch config's logs against labelled incidents, the best then saved as
//! a new baseline version.
//!
//! Tuned, within bounds:
//!
//! | parameter | range | |
//! |---|---|---|
//! | `breach_n` | 1..5 | band breach in n of the last n+2 windows |
//! | `cusum_k` | 0.25..2 | CUSUM slack per window, in band scales |
//! | `cusum_h` | 4..30 | CUSUM threshold |
//! | `baseline.margin` | 0..1 | band widening |
//! | `baseline.upper_quantile` | 0.98..0.999 | lower is 1 − upper |
//! | `baseline.alpha` | 0.005..0.1 | EWMA weight of the level |
//! | `error_burst.min_errors` | 1..20 | fewer errors in a window never page |
//! | `error_burst.p_threshold` | 1e-8..1e-2 | Poisson tail that pages (searched in log10) |
//!
//! A gain measured on the data tuned on flatters: [`held_out`] scores the
//! configured and the tuned parameters on a part the search never saw (the
//! last part of the logs by time, or a second config and labels), and the
//! report shows it next to the training score.
//!
//! The search is DE/rand/1/bin with a fixed seed, so a run is
//! reproducible: each generation makes one trial per member from three
//! others, replays all of them (in parallel: replays are independent), and
//! a trial replaces its member when it scores at least as well. The
//! config's own parameters are a member of the first generation, so the
//! result is never worse than what was configured.
//!
//! The saved version is the engine of a replay with the best parameters:
//! each [`FeatureMonitor`](perfpilot_baseline::detectors::FeatureMonitor) stores its
//! config and the band breach and CUSUM built from it, so an engine that
//! loads the version (the watch loop does so while running) judges every
//! feature seen in the replay with the tuned parameters and the baselines
//! learned in it. Features first seen after that get the watch config's
//! `[detectors]`, which is why the result also prints them as TOML.
//! Monitors of the previous version that the replay has none of (a
//! watch's Prometheus series) are carried over unchanged.

use std::collections::btree_map::Entry;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::quality::{score, Incident, QualityReport, Replay, ScoreOptions};
use perfpilot_baseline::detectors::{ErrorBurst, MonitorConfig};
use perfpilot_baseline::engine::{latest_version, publish, Snapshot};
use perfpilot_baseline::BaselineError;

/// What calibration maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The NAB-style score of all detectors' alerts.
    Nab,
    /// F1 of all detectors' alerts.
    F1,
}

impl Objective {
    pub fn of(self, r: &QualityReport) -> f64 {
        let v = match self {
            Objective::Nab => r.overall.nab,
            Objective::F1 => r.overall.f1,
        };
        // A NaN would win or lose every comparison arbitrarily.
        if v.is_finite() {
            v
        } else {
            f64::NEG_INFINITY
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Objective::Nab => "NAB-style score",
            Objective::F1 => "F1",
        }
    }

    /// A score as reports print it.
    pub fn format(self, v: f64) -> String {
        match self {
            Objective::Nab => format!("{v:.1}"),
            Objective::F1 => format!("{v:.3}"),
        }
    }
}

impl FromStr for Objective {
    type Err = BaselineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nab" => Ok(Objective::Nab),
            "f1" => Ok(Objective::F1),
            _ => Err(BaselineError::invalid(
                "objective",
                format!("{s:?} is neither \"nab\" nor \"f1\""),
            )),
        }
    }
}

/// The tuned parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Params {
    pub breach_n: usize,
    pub cusum_k: f64,
    pub cusum_h: f64,
    pub margin: f64,
    pub upper_quantile: f64,
    pub alpha: f64,
    pub min_errors: u64,
    pub p_threshold: f64,
}

const DIMS: usize = 8;

/// Search bounds, in the order of [`Params::to_vector`]. `breach_n` is
/// searched over [0.5, 5.5] and rounded, so each of 1..5 gets an equal
/// share.
const BOUNDS: [(f64, f64); DIMS] = [
    (0.5, 5.5),
    (0.25, 2.0),
    (4.0, 30.0),
    (0.0, 1.0),
    (0.98, 0.999),
    (0.005, 0.1),
    (0.5, 20.5),
    (-8.0, -2.0),
];

/// `x` to `places` decimals. Dividing by the power of ten (rather than
/// multiplying by a step) gives the double nearest the decimal, so it
/// prints as written.
fn round_to(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

impl Params {
    /// `c`'s parameters, with the error-burst detector's defaults.
    pub fn of(c: &MonitorConfig) -> Params {
        Params::of_both(c, &ErrorBurst::default())
    }

    pub fn of_both(c: &MonitorConfig, e: &ErrorBurst) -> Params {
        Params {
            breach_n: c.breach_n,
            cusum_k: c.cusum_k,
            cusum_h: c.cusum_h,
            margin: c.baseline.margin,
            upper_quantile: c.baseline.upper_quantile,
            alpha: c.baseline.alpha,
            min_errors: e.min_errors,
            p_threshold: e.p_threshold,
        }
    }

    /// `base` with these error-burst parameters.
    pub fn apply_error_burst(&self, base: &ErrorBurst) -> ErrorBurst {
        ErrorBurst {
            min_errors: self.min_errors,
            p_threshold: self.p_threshold,
            ..base.clone()
        }
    }

    /// `base` with these parameters (band breach in n of n+2, symmetric
    /// quantiles).
    pub fn apply(&self, base: &MonitorConfig) -> MonitorConfig {
        let mut c = base.clone();
        c.breach_n = self.breach_n;
        c.breach_m = self.breach_n + 2;
        c.cusum_k = self.cusum_k;
        c.cusum_h = self.cusum_h;
        c.baseline.margin = self.margin;
        c.baseline.upper_quantile = self.upper_quantile;
        c.baseline.lower_quantile = round_to(1.0 - self.upper_quantile, 4);
        c.baseline.alpha = self.alpha;
        c
    }

    fn to_vector(self) -> [f64; DIMS] {
        let v = [
            self.breach_n as f64,
            self.cusum_k,
            self.cusum_h,
            self.margin,
            self.upper_quantile,
            self.alpha,
            self.min_errors as f64,
            self.p_threshold.max(f64::MIN_POSITIVE).log10(),
        ];
        let mut out = [0.0; DIMS];
        for (j, x) in v.into_iter().enumerate() {
            let (lo, hi) = BOUNDS[j];
            out[j] = if x.is_finite() { x.clamp(lo, hi) } else { lo };
        }
        out
    }

    /// Rounded to steps that matter, so what is printed, saved and put
    /// in a config is exactly what was scored.
    fn from_vector(v: &[f64; DIMS]) -> Params {
        Params {
            breach_n: (v[0].round() as usize).clamp(1, 5),
            cusum_k: round_to(v[1], 2),
            cusum_h: round_to(v[2], 1),
            margin: round_to(v[3], 2),
            upper_quantile: round_to(v[4], 4),
            alpha: round_to(v[5], 4),
            min_errors: (v[6].round() as u64).clamp(1, 20),
            // One significant digit and a half: 1e-4, 3e-4, ...
            p_threshold: {
                let e = round_to(v[7], 1);
                let m = round_to(10f64.powf(e - e.floor()), 0);
                m * 10f64.powi(e.floor() as i32)
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    pub objective: Objective,
    pub population: usize,
    pub generations: usize,
    pub seed: u64,
    /// Replays run at once; 0 for every core.
    pub threads: usize,
    /// Differential weight and crossover rate.
    pub f: f64,
    pub cr: f64,
    pub score: ScoreOptions,
    /// The error-burst parameters to start from (the config's).
    pub error_burst: ErrorBurst,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            objective: Objective::Nab,
            population: 15,
            generations: 20,
            seed: 1,
            threads: 0,
            f: 0.7,
            cr: 0.9,
            score: ScoreOptions::default(),
            error_burst: ErrorBurst::default(),
        }
    }
}

/// Where a calibration is after a generation (0: the initial population).
#[derive(Debug, Clone)]
pub struct Generation {
    pub index: usize,
    pub of: usize,
    pub best: f64,
    pub best_params: Params,
    pub replays: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub objective: Objective,
    pub before: Params,
    pub after: Params,
    pub before_score: f64,
    pub after_score: f64,
    pub before_report: QualityReport,
    pub after_report: QualityReport,
    /// The config to replay and save with: the input's with the tuned
    /// parameters, or the input itself when nothing beat it.
    #[serde(skip)]
    pub tuned: MonitorConfig,
    /// The error-burst parameters to replay and print with.
    #[serde(skip)]
    pub tuned_error_burst: ErrorBurst,
    /// The score on a part the search never saw, when one was given.
    pub held_out: Option<HeldOut>,
    pub improved: bool,
    pub generations: usize,
    pub population: usize,
    pub replays: usize,
    /// The best score after each generation (the first: the initial
    /// population).
    pub history: Vec<f64>,
}

/// SplitMix64: small, fast, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n - 1)
    }
}

/// A config's objective and the report it came from.
type Scored = (f64, QualityReport);

/// Scores every config by a replay, `threads` at a time.
fn evaluate(
    replay: &Replay,
    incidents: &[Incident],
    configs: &[(MonitorConfig, ErrorBurst)],
    opts: &CalibrateOptions,
) -> Result<Vec<Scored>, BaselineError> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, configs.len().max(1));
    let next = AtomicUsize::new(0);
    let one = |(c, e): &(MonitorConfig, ErrorBurst)| -> Result<Scored, BaselineError> {
        let run = replay.run_with(c, e)?;
        let report = score(&run.alerts, incidents, replay.span, &opts.score);
        Ok((opts.objective.of(&report), report))
    };
    let mut done: Vec<(usize, Result<Scored, BaselineError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(c) = configs.get(i) else { break };
                        out.push((i, one(c)));
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::with_capacity(configs.len());
        for h in handles {
            match h.join() {
                Ok(v) => all.extend(v),
                Err(_) => all.push((
                    usize::MAX,
                    Err(BaselineError::invalid("calibration", "a replay panicked")),
                )),
            }
        }
        all
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Tunes `base`'s parameters on `replay` against `incidents`. `progress`
/// is told about every generation.
pub fn calibrate(
    replay: &Replay,
    incidents: &[Incident],
    base: &MonitorConfig,
    opts: &CalibrateOptions,
    progress: &mut dyn FnMut(&Generation),
) -> Result<Calibration, BaselineError> {
    if incidents.is_empty() {
        return Err(BaselineError::invalid(
            "labels",
            "no incidents: calibration needs at least one labelled incident",
        ));
    }
    // rand/1 needs three members besides the target.
    let np = opts.population.max(4);
    let mut rng = Rng(opts.seed);
    let base_eb = &opts.error_burst;
    let both = |p: Params| (p.apply(base), p.apply_error_burst(base_eb));
    let mut pop: Vec<[f64; DIMS]> = vec![Params::of_both(base, base_eb).to_vector()];
    while pop.len() < np {
        let mut v = [0.0; DIMS];
        for (x, (lo, hi)) in v.iter_mut().zip(BOUNDS) {
            *x = lo + rng.unit() * (hi - lo);
        }
        pop.push(v);
    }
    let configs: Vec<(MonitorConfig, ErrorBurst)> =
        std::iter::once((base.clone(), base_eb.clone()))
            .chain(pop.iter().map(|v| both(Params::from_vector(v))))
            .collect();
    let mut scored = evaluate(replay, incidents, &configs, opts)?.into_iter();
    let (before_score, before_report) = scored
        .next()
        .ok_or_else(|| BaselineError::invalid("calibration", "no replay ran"))?;
    let mut members: Vec<Scored> = scored.collect();
    let mut replays = configs.len();
    let best = |m: &[Scored]| (0..m.len()).fold(0, |b, i| if m[i].0 > m[b].0 { i } else { b });
    let mut history = Vec::with_capacity(opts.generations + 1);
    let mut report = |index: usize, pop: &[[f64; DIMS]], m: &[Scored], n| {
        let b = best(m);
        history.push(m[b].0);
        progress(&Generation {
            index,
            of: opts.generations,
            best: m[b].0,
            best_params: Params::from_vector(&pop[b]),
            replays: n,
        });
    };
    report(0, &pop, &members, replays);
    for g in 1..=opts.generations {
        let trials: Vec<[f64; DIMS]> = (0..np)
            .map(|i| {
                let mut pick = |taken: &[usize]| loop {
                    let r = rng.below(np);
                    if !taken.contains(&r) {
                        return r;
                    }
                };
                let r1 = pick(&[i]);
                let r2 = pick(&[i, r1]);
                let r3 = pick(&[i, r1, r2]);
                let forced = rng.below(DIMS);
                let mut t = pop[i];
                for (j, (lo, hi)) in BOUNDS.into_iter().enumerate() {
                    if j == forced || rng.unit() < opts.cr {
                        let v = pop[r1][j] + opts.f * (pop[r2][j] - pop[r3][j]);
                        // Out of bounds: halfway from the member to the
                        // bound, which keeps the diversity clipping loses.
                        t[j] = if v < lo {
                            (pop[i][j] + lo) / 2.0
                        } else if v > hi {
                            (pop[i][j] + hi) / 2.0
                        } else {
                            v
                        };
                    }
                }
                t
            })
            .collect();
        let configs: Vec<(MonitorConfig, ErrorBurst)> = trials
            .iter()
            .map(|v| both(Params::from_vector(v)))
            .collect();
        let scored = evaluate(replay, incidents, &configs, opts)?;
        replays += configs.len();
        for (i, (t, s)) in trials.into_iter().zip(scored).enumerate() {
            // At least as good: plateaus (many parameter sets raise the
            // same alerts) are crossed rather than stuck on.
            if s.0 >= members[i].0 {
                pop[i] = t;
                members[i] = s;
            }
        }
        report(g, &pop, &members, replays);
    }
    let b = best(&members);
    let (after_score, after_report) = members.swap_remove(b);
    let improved = after_score > before_score;
    let before = Params::of_both(base, base_eb);
    let (after, (tuned, tuned_error_burst), after_score, after_report) = if improved {
        let p = Params::from_vector(&pop[b]);
        (p, both(p), after_score, after_report)
    } else {
        (
            before,
            (base.clone(), base_eb.clone()),
            before_score,
            before_report.clone(),
        )
    };
    Ok(Calibration {
        objective: opts.objective,
        before,
        after,
        before_score,
        after_score,
        before_report,
        after_report,
        tuned,
        tuned_error_burst,
        held_out: None,
        improved,
        generations: opts.generations,
        population: np,
        replays,
        history,
    })
}

/// A version calibration saved.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub version: u64,
    pub path: PathBuf,
    /// Monitors of the previous version that the replay has none of
    /// (Prometheus series, features absent from the logs), kept as they
    /// were.
    pub carried: usize,
}

fn read_snapshot(path: &Path) -> Result<Snapshot, BaselineError> {
    let bytes = std::fs::read(path).map_err(|e| BaselineError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        BaselineError::invalid(
            format!("{}:{}:{}", path.display(), e.line(), e.column()),
            format!("not a saved baseline: {e}"),
        )
    })
}

/// Replays with `tuned` and saves the engine's baselines as the next
/// version in `dir`.
///
/// A loading engine replaces all its monitors with a version's, so the
/// previous version's monitors that the replay did not produce are carried
/// over: a watch that also follows Prometheus keeps those baselines. The
/// merged snapshot is published like any version (written aside, linked
/// in under a number no other writer takes), so a watch never loads half
/// of it or the unmerged one.
pub fn save(
    replay: &Replay,
    tuned: &MonitorConfig,
    dir: &Path,
    now_ms: i64,
) -> Result<Saved, BaselineError> {
    let mut run = replay.run(tuned)?;
    let scratch = dir.join(format!(".calibrate-{}", std::process::id()));
    let written = run
        .engine
        .save(&scratch, now_ms)
        .and_then(|p| read_snapshot(&p));
    // Best effort: a leftover scratch directory holds no `vNNNNNN.json`
    // of `dir`, so nothing loads it.
    let _ = std::fs::remove_dir_all(&scratch);
    let mut snap = written?;
    let previous = latest_version(dir)?;
    let mut carried = 0;
    if let Some((_, path)) = &previous {
        let prev = read_snapshot(path)?;
        for (k, m) in prev.monitors {
            if let Entry::Vacant(e) = snap.monitors.entry(k) {
                e.insert(m);
                carried += 1;
            }
        }
        for (k, b) in prev.error_rates {
            snap.error_rates.entry(k).or_insert(b);
        }
    }
    let (version, path) = publish(dir, previous.map_or(0, |(v, _)| v), |version| {
        snap.version = version;
        serde_json::to_vec(&snap)
            .map_err(|e| BaselineError::invalid(dir.display().to_string(), e.to_string()))
    })?;
    Ok(Saved {
        version,
        path,
        carried,
    })
}

impl Calibration {
    /// The tuned parameters as watch-config TOML, for features the saved
    /// version has not seen.
    pub fn toml(&self) -> String {
        let c = &self.tuned;
        format!(
            "[detectors]\nbreach_n = {}\nbreach_m = {}\ncusum_k = {}\ncusum_h = {}\n\n[detectors.baseline]\nmargin = {}\nlower_quantile = {}\nupper_quantile = {}\nalpha = {}\n",
            c.breach_n,
            c.breach_m,
            c.cusum_k,
            c.cusum_h,
            c.baseline.margin,
            c.baseline.lower_quantile,
            c.baseline.upper_quantile,
            c.baseline.alpha
        ) + &format!(
            "\n[error_burst]\nmin_errors = {}\np_threshold = {:e}\n",
            self.tuned_error_burst.min_errors, self.tuned_error_burst.p_threshold
        )
    }
}

/// Scores on a part calibration did not tune on.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    /// What it is, for people ("the last 30% of the logs, from ...").
    pub what: String,
    pub before_score: f64,
    pub after_score: f64,
    pub before_report: QualityReport,
    pub after_report: QualityReport,
}

/// Scores `cal`'s configured and tuned parameters on `replay` against
/// `incidents`, counting only what happens from `from_ms` on (alerts
/// raised and incidents starting then; the earlier part still warms the
/// baselines up), or everything when None (a second labelled set).
/// Alerts inside an incident that began before `from_ms` are left out,
/// not called false.
pub fn held_out(
    replay: &Replay,
    incidents: &[Incident],
    from_ms: Option<i64>,
    base: &MonitorConfig,
    cal: &Calibration,
    opts: &CalibrateOptions,
    what: String,
) -> Result<HeldOut, BaselineError> {
    let from = from_ms.unwrap_or(i64::MIN);
    let test: Vec<Incident> = incidents
        .iter()
        .filter(|i| i.start_ms >= from)
        .cloned()
        .collect();
    let straddling: Vec<(i64, i64)> = incidents
        .iter()
        .filter(|i| i.start_ms < from && i.end_ms >= from)
        .map(|i| (i.start_ms, i.end_ms + opts.score.grace_ms))
        .collect();
    let span = (from.max(replay.span.0), replay.span.1);
    let one = |m: &MonitorConfig, e: &ErrorBurst| -> Result<Scored, BaselineError> {
        let run = replay.run_with(m, e)?;
        let alerts: Vec<_> = run
            .alerts
            .into_iter()
            .filter(|a| {
                let t = a.at_ms();
                t >= from && !straddling.iter().any(|(s, e)| (*s..=*e).contains(&t))
            })
            .collect();
        let report = score(&alerts, &test, span, &opts.score);
        Ok((opts.objective.of(&report), report))
    };
    let (before_score, before_report) = one(base, &opts.error_burst)?;
    let (after_score, after_report) = one(&cal.tuned, &cal.tuned_error_burst)?;
    Ok(HeldOut {
        what,
        before_score,
        after_score,
        before_report,
        after_report,
    })
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.objective;
        writeln!(
            f,
            "{} (training): {} before, {} after ({}); {} generations of {}, {} replays",
            o.name(),
            o.format(self.before_score),
            o.format(self.after_score),
            if self.improved {
                format!("+{}", o.format(self.after_score - self.before_score))
            } else {
                "nothing beat the configured parameters; kept".to_string()
            },
            self.generations,
            self.population,
            self.replays
        )?;
        if let Some(h) = &self.held_out {
            writeln!(
                f,
                "{} (held out: {}): {} before, {} after ({}{})",
                o.name(),
                h.what,
                o.format(h.before_score),
                o.format(h.after_score),
                if h.after_score >= h.before_score {
                    "+"
                } else {
                    ""
                },
                o.format(h.after_score - h.before_score)
            )?;
        }
        writeln!(f)?;
        let (b, a) = (&self.before, &self.after);
        writeln!(f, "{:<26} {:>12} {:>12}", "parameter", "before", "after")?;
        let rows = [
            (
                "band breach (n of n+2)",
                format!("{}", b.breach_n),
                format!("{}", a.breach_n),
            ),
            (
                "cusum_k",
                format!("{:.2}", b.cusum_k),
                format!("{:.2}", a.cusum_k),
            ),
            (
                "cusum_h",
                format!("{:.1}", b.cusum_h),
                format!("{:.1}", a.cusum_h),
            ),
            (
                "baseline.margin",
                format!("{:.2}", b.margin),
                format!("{:.2}", a.margin),
            ),
            (
                "baseline.upper_quantile",
                format!("{:.4}", b.upper_quantile),
                format!("{:.4}", a.upper_quantile),
            ),
            (
                "baseline.alpha",
                format!("{:.4}", b.alpha),
                format!("{:.4}", a.alpha),
            ),
            (
                "error_burst.min_errors",
                format!("{}", b.min_errors),
                format!("{}", a.min_errors),
            ),
            (
                "error_burst.p_threshold",
                format!("{:e}", b.p_threshold),
                format!("{:e}", a.p_threshold),
            ),
        ];
        for (name, x, y) in rows {
            writeln!(f, "{name:<26} {x:>12} {y:>12}")?;
        }
        Ok(())
    }
}
