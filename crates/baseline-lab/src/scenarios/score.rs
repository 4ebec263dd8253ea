//! Raised incidents against a scenario's labels.
//!
//! The rule: a labelled incident is detected when an incident is raised
//! (its `raised_at`) between the label's start and 5 minutes after its
//! end; every raised incident that detects no label is a false alert.
//! Time to detect is counted in windows (10 s) from the label's start to
//! the first raise that detects it.

use std::fmt;
use std::path::Path;

use perfpilot_baseline::BaselineError;
use serde::Deserialize;

use super::{time, Incident, IncidentKind, Labels};

/// How long after a label's end a raise still detects it.
pub const GRACE_MS: i64 = 5 * 60_000;
/// The window width time to detect is counted in.
pub const WINDOW_MS: i64 = 10_000;

/// An incident as the engine raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    pub service: String,
    pub raised_at_ms: i64,
}

/// The figures of one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioScore {
    pub scenario: String,
    pub incidents: usize,
    pub detected: usize,
    pub raised: usize,
    pub false_alerts: usize,
    /// Time to detect of each detected incident, in windows, with its kind.
    pub ttd: Vec<(IncidentKind, f64)>,
}

impl ScenarioScore {
    pub fn recall(&self) -> Option<f64> {
        (self.incidents > 0).then(|| self.detected as f64 / self.incidents as f64)
    }

    pub fn precision(&self) -> Option<f64> {
        (self.raised > 0).then(|| (self.raised - self.false_alerts) as f64 / self.raised as f64)
    }

    pub fn median_ttd(&self) -> Option<f64> {
        median(self.ttd.iter().map(|(_, t)| *t).collect())
    }
}

/// Scores `raised` against `labels` (raises of other services are
/// ignored: one scenario, one service).
pub fn score(scenario: &str, labels: &[Incident], raised: &[Raised]) -> ScenarioScore {
    let mut detected = 0;
    let mut ttd = Vec::new();
    for l in labels {
        let first = raised
            .iter()
            .map(|r| r.raised_at_ms)
            .filter(|t| l.start_ms <= *t && *t <= l.end_ms + GRACE_MS)
            .min();
        if let Some(t) = first {
            detected += 1;
            ttd.push((l.kind, (t - l.start_ms) as f64 / WINDOW_MS as f64));
        }
    }
    let false_alerts = raised
        .iter()
        .filter(|r| {
            !labels
                .iter()
                .any(|l| l.start_ms <= r.raised_at_ms && r.raised_at_ms <= l.end_ms + GRACE_MS)
        })
        .count();
    ScenarioScore {
        scenario: scenario.to_string(),
        incidents: labels.len(),
        detected,
        raised: raised.len(),
        false_alerts,
        ttd,
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(perfpilot_baseline::baseline::quantile_sorted(&v, 0.5))
}

/// A table of scenario scores with totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuiteScore {
    pub rows: Vec<ScenarioScore>,
}

impl SuiteScore {
    pub fn incidents(&self) -> usize {
        self.rows.iter().map(|r| r.incidents).sum()
    }
    pub fn detected(&self) -> usize {
        self.rows.iter().map(|r| r.detected).sum()
    }
    pub fn raised(&self) -> usize {
        self.rows.iter().map(|r| r.raised).sum()
    }
    pub fn false_alerts(&self) -> usize {
        self.rows.iter().map(|r| r.false_alerts).sum()
    }
    pub fn recall(&self) -> f64 {
        match self.incidents() {
            0 => 1.0,
            n => self.detected() as f64 / n as f64,
        }
    }
    pub fn precision(&self) -> f64 {
        match self.raised() {
            0 => 1.0,
            n => (n - self.false_alerts()) as f64 / n as f64,
        }
    }
    /// Median time to detect, in windows, over the incidents of `kinds`.
    pub fn median_ttd(&self, kinds: &[IncidentKind]) -> Option<f64> {
        median(
            self.rows
                .iter()
                .flat_map(|r| &r.ttd)
                .filter(|(k, _)| kinds.contains(k))
                .map(|(_, t)| *t)
                .collect(),
        )
    }

    /// Whether the goal is met: recall ≥ 95 %, precision ≥ 90 %,
    /// median time to detect ≤ 2 windows for steps and error bursts.
    pub fn meets_goal(&self) -> bool {
        self.recall() >= 0.95
            && self.precision() >= 0.90
            && self
                .median_ttd(&[IncidentKind::Step, IncidentKind::ErrorBurst])
                .is_some_and(|t| t <= 2.0)
    }

    pub fn extend(&mut self, other: SuiteScore) {
        self.rows.extend(other.rows);
    }

    /// Rows of several seeds (`SEED/NAME`) summed per scenario name, in
    /// the order names first appear.
    pub fn by_scenario(&self) -> SuiteScore {
        let mut rows: Vec<ScenarioScore> = Vec::new();
        for r in &self.rows {
            let name = r.scenario.rsplit('/').next().unwrap_or(&r.scenario);
            match rows.iter_mut().find(|x| x.scenario == name) {
                Some(x) => {
                    x.incidents += r.incidents;
                    x.detected += r.detected;
                    x.raised += r.raised;
                    x.false_alerts += r.false_alerts;
                    x.ttd.extend(r.ttd.iter().copied());
                }
                None => rows.push(ScenarioScore {
                    scenario: name.to_string(),
                    ..r.clone()
                }),
            }
        }
        SuiteScore { rows }
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{:.0}%", x * 100.0))
}

fn windows(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

impl fmt::Display for SuiteScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<28} {:>9} {:>8} {:>6} {:>7} {:>9} {:>8}",
            "scenario", "incidents", "detected", "false", "recall", "precision", "ttd(win)"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<28} {:>9} {:>8} {:>6} {:>7} {:>9} {:>8}",
                r.scenario,
                r.incidents,
                r.detected,
                r.false_alerts,
                pct(r.recall()),
                pct(r.precision()),
                windows(r.median_ttd())
            )?;
        }
        let steps = [IncidentKind::Step, IncidentKind::ErrorBurst];
        writeln!(
            f,
            "{:<28} {:>9} {:>8} {:>6} {:>7} {:>9} {:>8}",
            "total",
            self.incidents(),
            self.detected(),
            self.false_alerts(),
            pct(Some(self.recall())),
            pct(Some(self.precision())),
            windows(median(
                self.rows
                    .iter()
                    .flat_map(|r| &r.ttd)
                    .map(|(_, t)| *t)
                    .collect()
            ))
        )?;
        writeln!(
            f,
            "recall={:.3} precision={:.3} ttd_steps_bursts={} goal={}",
            self.recall(),
            self.precision(),
            windows(self.median_ttd(&steps)),
            if self.meets_goal() { "met" } else { "missed" }
        )
    }
}

/// One line of `incidents.jsonl` as the scorer reads it (other fields are
/// the reader's).
#[derive(Debug, Deserialize)]
struct IncidentLine {
    service: String,
    raised_at: String,
}

/// Raised incidents from an `--alerts-out` file.
pub fn read_incidents(path: &Path) -> Result<Vec<Raised>, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|e| BaselineError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let l: IncidentLine = serde_json::from_str(line)
            .map_err(|e| BaselineError::invalid(at(), format!("not an incident line: {e}")))?;
        out.push(Raised {
            service: l.service,
            raised_at_ms: time(&l.raised_at).map_err(|_| {
                BaselineError::invalid(at(), format!("raised_at {:?} is not RFC 3339", l.raised_at))
            })?,
        });
    }
    Ok(out)
}

/// Scores every scenario directory under `dir` (each with `labels.json`
/// and `incidents.jsonl`), sorted by name.
pub fn score_dir(dir: &Path) -> Result<SuiteScore, BaselineError> {
    let mut subs: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| BaselineError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("labels.json").is_file())
        .collect();
    subs.sort();
    if subs.is_empty() {
        return Err(BaselineError::invalid(
            dir.display().to_string(),
            "no scenario directories (with labels.json) in it",
        ));
    }
    let mut rows = Vec::new();
    for sub in subs {
        let path = sub.join("labels.json");
        let text = std::fs::read_to_string(&path).map_err(|e| BaselineError::io(&path, e))?;
        let labels: Labels = serde_json::from_str(&text).map_err(|e| {
            BaselineError::invalid(path.display().to_string(), format!("not labels: {e}"))
        })?;
        let raised: Vec<Raised> = read_incidents(&sub.join("incidents.jsonl"))?
            .into_iter()
            .filter(|r| r.service == labels.service)
            .collect();
        let name = format!("{}/{}", labels.seed, labels.scenario);
        rows.push(score(&name, &labels.incidents()?, &raised));
    }
    Ok(SuiteScore { rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raised(t: i64) -> Raised {
        Raised {
            service: "s".into(),
            raised_at_ms: t,
        }
    }

    #[test]
    fn the_rule_counts_raises_up_to_five_minutes_after_the_end() {
        let labels = [Incident {
            start_ms: 1_000_000,
            end_ms: 2_000_000,
            kind: IncidentKind::Step,
        }];
        let s = score(
            "x",
            &labels,
            &[
                raised(999_999),
                raised(1_020_000),
                raised(2_000_000 + GRACE_MS + 1),
            ],
        );
        assert_eq!((s.detected, s.raised, s.false_alerts), (1, 3, 2));
        assert_eq!(s.median_ttd(), Some(2.0));
        let late = score("x", &labels, &[raised(2_000_000 + GRACE_MS)]);
        assert_eq!(late.detected, 1);
        let quiet = score("y", &[], &[]);
        assert_eq!((quiet.recall(), quiet.precision()), (None, None));
    }
}
