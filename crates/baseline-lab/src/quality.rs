//! Alert quality against labelled incidents (`perfpilot baseline score`):
//! per detector, how soon incidents were detected (MTTD), how soon alerts
//! were acknowledged (MTTA), false positives per day, missed incidents, a
//! NAB-style score and F1. [`Replay`] runs a watch config's request logs
//! through a fresh [`Engine`] with given detector parameters, which is how
//! `score` gets alerts without a running watch and how calibration judges
//! a parameter set.
//!
//! # Labels
//!
//! ```json
//! {"incidents": [
//!   {"service": "shop", "name": "slow search", "feature": "latency",
//!    "start": "2026-11-22T10:08:00Z", "end": 1795342380000}
//! ]}
//! ```
//!
//! - `service`: the alerts' `service` label (the log's service).
//! - `start`, `end`: RFC 3339, or Unix milliseconds.
//! - `name` (optional): how reports call it.
//! - `feature` (optional): a substring the alert's `feature` label must
//!   contain to count for this incident: `"latency"`, `"errors"`,
//!   `"/search"`, `"/search latency_p99_ms"`. Without it any feature of
//!   the service counts.
//!
//! Mistakes are reported as `file:line:column` (an incident that ends
//! before it starts: just past it, and by name).
//!
//! # Scoring
//!
//! An alert *detects* an incident when it is of the incident's service
//! (and feature) and was raised from `slack` before the incident's start
//! to `grace` after its end (labels are approximate, and a short incident
//! may only be recognised as it ends). An alert that detects nothing is a
//! false positive.
//!
//! - MTTD: from the incident's start to the first alert that detects it
//!   (negative when it came within the slack before the start).
//! - MTTA: from an alert to its acknowledgement, over acknowledged alerts
//!   (replays have none: acknowledgements come from saved alerts).
//! - NAB-style score: NAB's rules in continuous time, with each incident's
//!   detection window its slack and grace around it. The first detection
//!   in a window earns `tp` weighted by NAB's scaled sigmoid of how early
//!   it is; a window without one costs `fn`; a false positive costs `fp`,
//!   less when it comes soon after a window (the incident's tail). Later
//!   detections in a window count for nothing. Normalised like NAB: 0 for
//!   a detector that never fires, 100 for one that fires at the start of
//!   every window. Standard profile weights by default (1, 1, 0.11).
//! - F1: precision over alerts (those detecting an incident), recall over
//!   incidents.
//!
//! The alerts scored are the engine's incidents: one per problem of a
//! service, however many features and detectors found it. An incident is
//! scored as the detector and feature of the finding that raised it, and
//! concerns a labelled incident's feature when any of its findings does.
//!
//! An incident's time is when it was raised: the end of the window that
//! raised it in a replay (when its data was complete; a live watch also
//! waits out the lateness). Saved incidents (`GET /api/v1/alerts`) are
//! scored at their `starts_at_ms`, which the detectors backdate to when
//! they saw the anomaly begin: MTTD reads shorter there.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::nab::scorer::scaled_sigmoid;
use perfpilot_baseline::alerts::rfc3339;
use perfpilot_baseline::detectors::{ErrorBurst, MonitorConfig};
use perfpilot_baseline::engine::Engine;
use perfpilot_baseline::incidents::{Incident as Raised, Transition};
use perfpilot_baseline::logs::LineStats;
use perfpilot_baseline::replay::MergedLogs;
use perfpilot_baseline::watch::{parse_duration, WatchConfig};
use perfpilot_baseline::window::{FeatureWindow, WindowConfig, Windower};
use perfpilot_baseline::BaselineError;

const DAY_MS: f64 = 86_400_000.0;

/// A labelled incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub service: String,
    pub name: String,
    pub feature: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Incident {
    /// Whether an alert with these labels is about this incident (its
    /// time aside).
    fn concerns(&self, service: &str, feature: &str) -> bool {
        self.service == service && self.feature.as_deref().is_none_or(|f| feature.contains(f))
    }
}

/// A time in the labels: RFC 3339 or Unix milliseconds.
struct Timestamp(i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time like \"2026-11-22T10:08:00Z\" or Unix milliseconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                // Unix seconds would be read as January 1970: a likely
                // mistake, refused rather than scored against nothing.
                if v.abs() < 100_000_000_000 {
                    return Err(E::custom(format!(
                        "{v} looks like Unix seconds; give Unix milliseconds or an RFC 3339 time"
                    )));
                }
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                let v = i64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is too large for Unix milliseconds")))?;
                self.visit_i64(v)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
                perfpilot_baseline::logs::parse_rfc3339(s.as_bytes())
                    .map(Timestamp)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "{s:?} is not an RFC 3339 time like \"2026-11-22T10:08:00Z\""
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncident {
    service: String,
    start: Timestamp,
    end: Timestamp,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    feature: Option<String>,
}

/// An incident checked while it is parsed, so a bad one is reported at
/// its place in the file.
#[derive(Deserialize)]
#[serde(try_from = "RawIncident")]
struct Checked(Incident);

impl TryFrom<RawIncident> for Checked {
    type Error = String;

    fn try_from(r: RawIncident) -> Result<Self, String> {
        let name = r
            .name
            .unwrap_or_else(|| format!("{} at {}", r.service, rfc3339(r.start.0)));
        if r.end.0 < r.start.0 {
            return Err(format!(
                "incident {name:?} ends ({}) before it starts ({})",
                rfc3339(r.end.0),
                rfc3339(r.start.0)
            ));
        }
        if r.service.is_empty() {
            return Err(format!("incident {name:?}: service is empty"));
        }
        Ok(Checked(Incident {
            service: r.service,
            name,
            feature: r.feature.filter(|f| !f.is_empty()),
            start_ms: r.start.0,
            end_ms: r.end.0,
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsFile {
    incidents: Vec<Checked>,
}

/// A serde_json error as `location:line:column: message`.
fn json_error(location: &str, e: &serde_json::Error) -> BaselineError {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let reason = text.strip_suffix(&suffix).unwrap_or(&text);
    BaselineError::invalid(
        format!("{location}:{}:{}", e.line(), e.column()),
        reason.to_string(),
    )
}

/// Parses a labels file's text; `location` names it in errors.
pub fn parse_labels(text: &str, location: &str) -> Result<Vec<Incident>, BaselineError> {
    let file: LabelsFile = serde_json::from_str(text).map_err(|e| json_error(location, &e))?;
    Ok(file.incidents.into_iter().map(|c| c.0).collect())
}

pub fn load_labels(path: &Path) -> Result<Vec<Incident>, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|e| BaselineError::io(path, e))?;
    parse_labels(&text, &path.display().to_string())
}

#[derive(Deserialize)]
struct SavedAlerts {
    alerts: Vec<Raised>,
}

/// Incidents saved from `GET /api/v1/alerts` (`{"alerts": [...]}`), or a
/// bare list of them.
pub fn parse_alerts(text: &str, location: &str) -> Result<Vec<Raised>, BaselineError> {
    let bare = text.trim_start().starts_with('[');
    if bare {
        serde_json::from_str(text).map_err(|e| json_error(location, &e))
    } else {
        serde_json::from_str::<SavedAlerts>(text)
            .map(|s| s.alerts)
            .map_err(|e| json_error(location, &e))
    }
}

pub fn load_alerts(path: &Path) -> Result<Vec<Raised>, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|e| BaselineError::io(path, e))?;
    parse_alerts(&text, &path.display().to_string())
}

/// An incident and when it was raised, where that is known. It is scored
/// as its first finding's detector, and concerns a labelled incident's
/// feature when any of its findings does.
#[derive(Debug, Clone, Serialize)]
pub struct RaisedAlert {
    pub alert: Raised,
    /// `None` for saved alerts: their `starts_at_ms` stands in.
    pub raised_at_ms: Option<i64>,
}

impl RaisedAlert {
    pub fn saved(alert: Raised) -> RaisedAlert {
        RaisedAlert {
            alert,
            raised_at_ms: None,
        }
    }

    /// The time the alert is scored at.
    pub fn at_ms(&self) -> i64 {
        self.raised_at_ms.unwrap_or(self.alert.starts_at_ms)
    }

    /// The detector of the finding that raised it.
    pub fn detector(&self) -> &str {
        self.alert
            .findings
            .first()
            .map_or("", |f| f.detector.as_str())
    }

    /// The feature of the finding that raised it.
    pub fn feature(&self) -> &str {
        self.alert
            .findings
            .first()
            .map_or("", |f| f.feature.as_str())
    }

    fn concerns(&self, inc: &Incident) -> bool {
        if self.alert.findings.is_empty() {
            return inc.concerns(&self.alert.service, "");
        }
        self.alert
            .findings
            .iter()
            .any(|f| inc.concerns(&self.alert.service, &f.feature))
    }
}

/// NAB's cost weights of a detection, a missed incident and a false
/// positive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    pub tp: f64,
    pub fn_: f64,
    pub fp: f64,
}

impl Weights {
    /// NAB's standard profile.
    pub const STANDARD: Weights = Weights {
        tp: 1.0,
        fn_: 1.0,
        fp: 0.11,
    };
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOptions {
    /// How long before an incident's labelled start an alert still counts
    /// for it.
    pub slack_ms: i64,
    /// How long after its labelled end.
    pub grace_ms: i64,
    pub weights: Weights,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            slack_ms: 60_000,
            grace_ms: 60_000,
            weights: Weights::STANDARD,
        }
    }
}

/// One detector's (or all detectors') quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorQuality {
    /// The `detector` label, or `all`.
    pub detector: String,
    pub alerts: usize,
    /// Alerts that detected an incident.
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_positives_per_day: f64,
    pub detected: usize,
    pub missed: usize,
    pub mttd_median_ms: Option<i64>,
    pub mttd_max_ms: Option<i64>,
    /// Acknowledged alerts, and their time to acknowledgement.
    pub acked: usize,
    pub mtta_median_ms: Option<i64>,
    pub mtta_max_ms: Option<i64>,
    /// Normalised NAB-style score: 0 never fires, 100 perfect.
    pub nab: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// How one incident was detected (by any detector).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentResult {
    pub incident: Incident,
    /// The first alert that detected it: its detector, feature and time.
    pub first_detector: Option<String>,
    pub first_feature: Option<String>,
    pub first_alert_ms: Option<i64>,
    pub mttd_ms: Option<i64>,
    /// Every detector that detected it.
    pub detectors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    pub span_start_ms: i64,
    pub span_end_ms: i64,
    pub slack_ms: i64,
    pub grace_ms: i64,
    pub weights: Weights,
    /// Whether alert times are when they were raised (replays) rather than
    /// their backdated starts (saved alerts).
    pub raised_times: bool,
    pub detectors: Vec<DetectorQuality>,
    pub overall: DetectorQuality,
    pub incidents: Vec<IncidentResult>,
}

impl QualityReport {
    pub fn detector(&self, name: &str) -> Option<&DetectorQuality> {
        if name == "all" {
            return Some(&self.overall);
        }
        self.detectors.iter().find(|d| d.detector == name)
    }
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        // Midpoint without overflow.
        v[n / 2 - 1] + (v[n / 2] - v[n / 2 - 1]) / 2
    })
}

/// The detection window of each incident: `[lo, hi]`.
fn windows(incidents: &[Incident], opts: &ScoreOptions) -> Vec<(i64, i64)> {
    incidents
        .iter()
        .map(|i| {
            (
                i.start_ms.saturating_sub(opts.slack_ms),
                i.end_ms.saturating_add(opts.grace_ms),
            )
        })
        .collect()
}

/// Quality of one set of alerts; `first` gets each incident's first
/// detecting alert.
fn judge(
    detector: &str,
    alerts: &[&RaisedAlert],
    incidents: &[Incident],
    wins: &[(i64, i64)],
    span_days: f64,
    opts: &ScoreOptions,
    first: &mut [Option<(i64, usize)>],
) -> DetectorQuality {
    let w = opts.weights;
    let mut raw = 0.0;
    let (mut tp, mut fp) = (0, 0);
    let mut mtta = Vec::new();
    for (k, a) in alerts.iter().enumerate() {
        let t = a.at_ms();
        let mut hit = false;
        // The latest window of this alert's incidents that closed before
        // it, for the cost of a false positive.
        let mut before: Option<(i64, i64)> = None;
        for (i, inc) in incidents.iter().enumerate() {
            if !a.concerns(inc) {
                continue;
            }
            let (lo, hi) = wins[i];
            if (lo..=hi).contains(&t) {
                hit = true;
                if first[i].is_none_or(|(f, _)| t < f) {
                    first[i] = Some((t, k));
                }
            } else if hi < t && before.is_none_or(|(_, h)| hi > h) {
                before = Some((lo, hi));
            }
        }
        if hit {
            tp += 1;
        } else {
            fp += 1;
            raw += match before {
                Some((lo, hi)) => {
                    let width = (hi - lo).max(1) as f64;
                    w.fp * scaled_sigmoid((t - hi) as f64 / width)
                }
                None => -w.fp,
            };
        }
        if let Some(ack) = &a.alert.ack {
            mtta.push(ack.at_ms - t);
        }
    }
    let max_tp = scaled_sigmoid(-1.0);
    let mut mttd = Vec::new();
    let mut missed = 0;
    for (i, inc) in incidents.iter().enumerate() {
        match first[i] {
            Some((t, _)) => {
                let (lo, hi) = wins[i];
                let width = (hi - lo).max(1) as f64;
                raw += w.tp * scaled_sigmoid((t - hi) as f64 / width) / max_tp;
                mttd.push(t - inc.start_ms);
            }
            None => {
                raw -= w.fn_;
                missed += 1;
            }
        }
    }
    let n = incidents.len() as f64;
    let (null, perfect) = (-n * w.fn_, n * w.tp);
    let nab = if perfect > null {
        100.0 * (raw - null) / (perfect - null)
    } else {
        0.0
    };
    let detected = incidents.len() - missed;
    let precision = if alerts.is_empty() {
        0.0
    } else {
        tp as f64 / alerts.len() as f64
    };
    let recall = if incidents.is_empty() {
        0.0
    } else {
        detected as f64 / n
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    DetectorQuality {
        detector: detector.to_string(),
        alerts: alerts.len(),
        true_positives: tp,
        false_positives: fp,
        false_positives_per_day: fp as f64 / span_days,
        detected,
        missed,
        mttd_max_ms: mttd.iter().copied().max(),
        mttd_median_ms: median(mttd),
        acked: mtta.len(),
        mtta_max_ms: mtta.iter().copied().max(),
        mtta_median_ms: median(mtta),
        nab,
        precision,
        recall,
        f1,
    }
}

/// Scores `alerts` against `incidents` over `span` (start and end in Unix
/// ms, for false positives per day): per detector (the `detector` label)
/// and overall.
pub fn score(
    alerts: &[RaisedAlert],
    incidents: &[Incident],
    span: (i64, i64),
    opts: &ScoreOptions,
) -> QualityReport {
    let wins = windows(incidents, opts);
    let span_days = (span.1 - span.0).max(1) as f64 / DAY_MS;
    let mut by_detector: BTreeMap<&str, Vec<&RaisedAlert>> = BTreeMap::new();
    for a in alerts {
        by_detector.entry(a.detector()).or_default().push(a);
    }
    let mut found_by: Vec<Vec<String>> = vec![Vec::new(); incidents.len()];
    let mut detectors = Vec::new();
    for (name, list) in &by_detector {
        let mut first = vec![None; incidents.len()];
        let name = if name.is_empty() { "(none)" } else { name };
        detectors.push(judge(
            name, list, incidents, &wins, span_days, opts, &mut first,
        ));
        for (i, f) in first.iter().enumerate() {
            if f.is_some() {
                found_by[i].push(name.to_string());
            }
        }
    }
    let all: Vec<&RaisedAlert> = alerts.iter().collect();
    let mut first = vec![None; incidents.len()];
    let overall = judge("all", &all, incidents, &wins, span_days, opts, &mut first);
    let incidents = incidents
        .iter()
        .zip(first)
        .zip(found_by)
        .map(|((inc, first), detectors)| {
            let alert = first.and_then(|(_, k)| all.get(k));
            IncidentResult {
                incident: inc.clone(),
                first_detector: alert.map(|a| a.detector().to_string()),
                first_feature: alert.map(|a| a.feature().to_string()),
                first_alert_ms: first.map(|(t, _)| t),
                mttd_ms: first.map(|(t, _)| t - inc.start_ms),
                detectors,
            }
        })
        .collect();
    QualityReport {
        span_start_ms: span.0,
        span_end_ms: span.1,
        slack_ms: opts.slack_ms,
        grace_ms: opts.grace_ms,
        weights: opts.weights,
        raised_times: alerts.iter().all(|a| a.raised_at_ms.is_some()),
        detectors,
        overall,
        incidents,
    }
}

/// `45s`, `-10s`, `2m05s`, `1h02m`.
pub fn format_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let s = (ms.unsigned_abs() + 500) / 1000;
    let body = if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    };
    format!("{sign}{body}")
}

fn opt_duration(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_string(), format_duration)
}

impl fmt::Display for QualityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "alert quality over {} .. {} ({}), {} incidents; an alert counts for an incident from {} before its start to {} after its end",
            rfc3339(self.span_start_ms),
            rfc3339(self.span_end_ms),
            format_duration(self.span_end_ms - self.span_start_ms),
            self.incidents.len(),
            format_duration(self.slack_ms),
            format_duration(self.grace_ms),
        )?;
        if !self.raised_times {
            writeln!(
                f,
                "times are the saved alerts' starts, backdated to when each detector saw the anomaly begin: MTTD reads shorter than the wait for the alert"
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<14} {:>6} {:>5} {:>5} {:>9} {:>8} {:>6} {:>8} {:>8} {:>8} {:>5} {:>7} {:>5}",
            "detector",
            "alerts",
            "TP",
            "FP",
            "FP/day",
            "detected",
            "missed",
            "MTTD p50",
            "MTTD max",
            "MTTA p50",
            "acked",
            "NAB",
            "F1"
        )?;
        for d in self.detectors.iter().chain([&self.overall]) {
            writeln!(
                f,
                "{:<14} {:>6} {:>5} {:>5} {:>9.1} {:>8} {:>6} {:>8} {:>8} {:>8} {:>5} {:>7.1} {:>5.2}",
                d.detector,
                d.alerts,
                d.true_positives,
                d.false_positives,
                d.false_positives_per_day,
                format!("{}/{}", d.detected, d.detected + d.missed),
                d.missed,
                opt_duration(d.mttd_median_ms),
                opt_duration(d.mttd_max_ms),
                opt_duration(d.mtta_median_ms),
                d.acked,
                d.nab,
                d.f1
            )?;
        }
        writeln!(
            f,
            "TP, FP: alerts that detected an incident, and that detected none; NAB: 0 never fires, 100 fires as every incident starts"
        )?;
        if self.incidents.is_empty() {
            return Ok(());
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:<10} {:<24} {:>8}  first alert",
            "incident", "service", "start", "MTTD"
        )?;
        for r in &self.incidents {
            let first = match (&r.first_detector, &r.first_feature) {
                (Some(d), Some(feat)) => {
                    let others: Vec<&str> = r
                        .detectors
                        .iter()
                        .map(String::as_str)
                        .filter(|o| o != d)
                        .collect();
                    if others.is_empty() {
                        format!("{d}: {feat}")
                    } else {
                        format!("{d}: {feat} (also {})", others.join(", "))
                    }
                }
                _ => "MISSED".to_string(),
            };
            writeln!(
                f,
                "{:<20} {:<10} {:<24} {:>8}  {first}",
                r.incident.name,
                r.incident.service,
                rfc3339(r.incident.start_ms),
                opt_duration(r.mttd_ms),
            )?;
        }
        Ok(())
    }
}

/// A watch config's request logs, read once into feature windows, to be
/// replayed through fresh engines with different detector parameters.
///
/// Differences from `watch::run` on the same config, on purpose: logs are
/// read to their end (never followed), Prometheus is not polled (its
/// past is not replayed), nothing is sent to sinks, and no baseline is
/// loaded or saved. Several logs are merged by timestamp (each file's
/// own order kept) rather than by which reader thread got ahead, so
/// every replay of a config sees the same windows in the same order.
pub struct Replay {
    config: WatchConfig,
    windows: Vec<FeatureWindow>,
    /// First window's start and last window's end.
    pub span: (i64, i64),
    pub width_ms: i64,
    pub events: u64,
    pub lines: LineStats,
    pub dropped_late: u64,
    /// What was detected of each log's format and fields.
    pub detected: Vec<String>,
}

/// What one replay produced: the engine as it ended (its monitors carry
/// the parameters and what they learned) and every alert it raised.
pub struct ReplayRun {
    pub engine: Engine,
    pub alerts: Vec<RaisedAlert>,
}

impl Replay {
    pub fn load(cfg: &WatchConfig) -> Result<Replay, BaselineError> {
        if cfg.logs.is_empty() {
            return Err(BaselineError::invalid(
                "logs",
                "nothing to replay: the config has no [[logs]] (Prometheus series are not replayed)",
            ));
        }
        let mut config = cfg.clone();
        config.alerts.alertmanager = None;
        config.alerts.webhooks.clear();
        config.prometheus.clear();
        for l in &mut config.logs {
            l.follow = false;
        }
        let width_ms = parse_duration(&cfg.window, "window")?;
        let mut windower = Windower::new(WindowConfig {
            width_ms,
            lateness_ms: parse_duration(&cfg.lateness, "lateness")?,
            ..WindowConfig::default()
        })?;
        let mut logs = MergedLogs::open(&config.logs)?;
        let min_requests = config.engine()?.config().min_requests;
        let mut windows = Vec::new();
        let mut closed = Vec::new();
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        let mut events = 0;
        let mut keep = |closed: &mut Vec<FeatureWindow>| {
            for mut w in closed.drain(..) {
                first = first.min(w.start_ms);
                last = last.max(w.end_ms);
                // The engine skips these; sketches it never reads.
                if w.is_aggregate() || w.count >= min_requests {
                    w.sketch = Default::default();
                    windows.push(w);
                }
            }
        };
        while let Some(ev) = logs.next_event()? {
            windower.push(&ev, &mut closed);
            events += 1;
            keep(&mut closed);
        }
        windower.flush(&mut closed);
        keep(&mut closed);
        if windows.is_empty() {
            let paths: Vec<String> = cfg
                .logs
                .iter()
                .map(|l| l.path.display().to_string())
                .collect();
            return Err(BaselineError::invalid(
                paths.join(", "),
                "no request in the logs to replay",
            ));
        }
        let lines = logs.stats();
        Ok(Replay {
            config,
            windows,
            span: (first, last),
            width_ms,
            events,
            lines,
            dropped_late: windower.dropped_late(),
            detected: logs.detected,
        })
    }

    /// The part of the replay before `until_ms` (windows starting before
    /// it): what calibration tunes on when a later part is held back.
    pub fn head(&self, until_ms: i64) -> Replay {
        let windows: Vec<FeatureWindow> = self
            .windows
            .iter()
            .filter(|w| w.start_ms < until_ms)
            .cloned()
            .collect();
        Replay {
            config: self.config.clone(),
            span: (self.span.0, until_ms.min(self.span.1)),
            width_ms: self.width_ms,
            events: windows
                .iter()
                .filter(|w| w.is_aggregate())
                .map(|w| w.count)
                .sum(),
            windows,
            lines: self.lines.clone(),
            dropped_late: self.dropped_late,
            detected: self.detected.clone(),
        }
    }

    /// The time `fraction` (0..1) of the way from the first window to
    /// the last, on a window boundary.
    pub fn split_at(&self, fraction: f64) -> i64 {
        let (a, b) = self.span;
        let t = a + ((b - a) as f64 * fraction.clamp(0.0, 1.0)) as i64;
        t.div_euclid(self.width_ms) * self.width_ms
    }

    /// Runs the windows through a fresh engine with `monitor`'s parameters
    /// (the config's alert settings otherwise).
    pub fn run(&self, monitor: &MonitorConfig) -> Result<ReplayRun, BaselineError> {
        self.run_with(monitor, &self.config.error_burst)
    }

    /// [`Replay::run`] with the error-burst detector's parameters too.
    pub fn run_with(
        &self,
        monitor: &MonitorConfig,
        error_burst: &ErrorBurst,
    ) -> Result<ReplayRun, BaselineError> {
        let mut config = self.config.clone();
        config.detectors = monitor.clone();
        config.error_burst = error_burst.clone();
        let mut engine = config.engine()?;
        let mut alerts: Vec<RaisedAlert> = Vec::new();
        // The book keeps one alert per id (a new firing replaces the last
        // one), so each firing is copied out as it happens.
        let mut firing: HashMap<String, usize> = HashMap::new();
        for w in &self.windows {
            engine.observe_window(w);
            for t in engine.drain_transitions() {
                match t {
                    Transition::Fired(id) => {
                        if let Some(a) = engine.incident(&id) {
                            firing.insert(id, alerts.len());
                            alerts.push(RaisedAlert {
                                alert: a.clone(),
                                raised_at_ms: Some(w.end_ms),
                            });
                        }
                    }
                    Transition::Resolved(id) => {
                        if let (Some(k), Some(a)) = (firing.remove(&id), engine.incident(&id)) {
                            alerts[k].alert = a.clone();
                        }
                    }
                }
            }
        }
        for (id, k) in firing {
            if let Some(a) = engine.incident(&id) {
                alerts[k].alert = a.clone();
            }
        }
        Ok(ReplayRun { engine, alerts })
    }
}

/// Replays `cfg`'s logs with `monitor`'s parameters: every alert raised,
/// and the span the logs cover.
pub fn replay(
    cfg: &WatchConfig,
    monitor: &MonitorConfig,
) -> Result<(Vec<RaisedAlert>, (i64, i64)), BaselineError> {
    let r = Replay::load(cfg)?;
    let run = r.run(monitor)?;
    Ok((run.alerts, r.span))
}
