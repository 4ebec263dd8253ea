//! The streaming engine: feature windows and metric samples in, findings
//! and incidents out. One [`FeatureMonitor`] per (service, feature), one
//! [`IncidentBook`] for all (a service's findings are one incident), and
//! sinks (Alertmanager, webhooks) that are told what is due.
//!
//! Baselines are saved as numbered versions in a directory
//! (`v000001.json`, ...); the newest is loaded at start, and a newer one
//! written by someone else (calibration) is picked up while running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alerts::{Alertmanager, Webhook};
use crate::baseline::{Band, Baseline};
use crate::detectors::{ErrorBurst, FeatureKind, FeatureMonitor, Finding, MonitorConfig};
use crate::error::BaselineError;
use crate::feature::{FeatureKey, Metric};
use crate::fit::{FitCheck, FitNote};
use crate::incidents::{Incident, IncidentBook, Transition};
use crate::window::FeatureWindow;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub monitor: MonitorConfig,
    pub error_burst: ErrorBurst,
    pub resend: Duration,
    /// Event time a service goes without a finding before its incident
    /// resolves.
    pub resolve_quiet: Duration,
    /// Quiet updates before an incident raised from outside the
    /// detectors (the autopilot's) resolves.
    pub resolve_after: u32,
    /// Endpoints with fewer requests than this in a window are not judged
    /// on their own (their quantiles are noise); the service's aggregate
    /// still is.
    pub min_requests: u64,
    /// A latency quantile q is judged in a window only when the window
    /// holds at least this many requests beyond it (count·(1−q)): the
    /// p99.9 of 200 requests is their maximum, which moves with traffic
    /// alone (a surge raises it, no latency changing): every traffic
    /// surge of tuning seeds 1–3 paged on it before this rule.
    pub min_tail_requests: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            monitor: MonitorConfig::default(),
            error_burst: ErrorBurst::default(),
            resend: Duration::from_secs(60),
            resolve_quiet: Duration::from_secs(300),
            resolve_after: 3,
            min_requests: 20,
            min_tail_requests: 1.0,
        }
    }
}

/// What is saved: every monitor, under a version number.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u64,
    pub saved_at_ms: i64,
    /// By "service\u{1f}feature".
    pub monitors: BTreeMap<String, FeatureMonitor>,
    pub error_rates: BTreeMap<String, Baseline>,
}

/// One feature as [`Engine::features`] describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureSummary {
    pub service: String,
    /// The feature's name (`/search latency_p99_ms`), as alerts label it.
    pub feature: String,
    /// What it means: its endpoint (none: service-wide) and its metric.
    pub key: FeatureKey,
    /// `latency`, `rate`, `errors`, `memory`, `cpu`, `gauge` or
    /// `error_rate` (an error-burst baseline).
    pub kind: String,
    /// Its band now; `band.state` says whether it is still warming up.
    pub band: Band,
    /// The last value: (its window's start, the value).
    pub latest: Option<(i64, f64)>,
}

pub struct Engine {
    config: EngineConfig,
    monitors: BTreeMap<String, FeatureMonitor>,
    /// Error-rate baselines per service/endpoint, for error bursts.
    error_rates: BTreeMap<String, Baseline>,
    /// The last windows' (start, errors, requests) per error feature, for
    /// the pooled burst test.
    error_recent: BTreeMap<String, std::collections::VecDeque<(i64, u64, u64)>>,
    /// Recent request rates per service: (window start, end, requests/s),
    /// for efficiency features (a resource per 1,000 requests).
    rates: BTreeMap<String, std::collections::VecDeque<(i64, i64, f64)>>,
    book: IncidentBook,
    /// Shared with outboxes, which send without the engine locked.
    alertmanager: Option<Arc<Alertmanager>>,
    webhooks: Vec<Arc<Webhook>>,
    /// Deliveries that failed (each retried on the next call).
    delivery_errors: u64,
    last_delivery_error: Option<String>,
    /// The version of the baselines in use (0: learned from scratch).
    version: u64,
    transitions: Vec<Transition>,
    /// The last value of each feature, (window start, value), by
    /// "service\u{1f}feature": what the autopilot's conditions read.
    latest: BTreeMap<String, (i64, f64)>,
    /// Whether loaded baselines fit the input (see [`crate::fit`]).
    fit: FitCheck,
}

/// Incidents on their way to the sinks ([`Engine::outbox`]).
pub struct Outbox {
    due: Vec<Incident>,
    now_ms: i64,
    alertmanager: Option<Arc<Alertmanager>>,
    webhooks: Vec<Arc<Webhook>>,
}

impl Outbox {
    /// Sends to every sink (each is tried); the last error, if any.
    pub fn send(&self) -> Option<String> {
        let mut error = None;
        if let Some(am) = &self.alertmanager {
            if let Err(e) = am.send(&self.due, self.now_ms) {
                error = Some(e.to_string());
            }
        }
        for hook in &self.webhooks {
            if let Err(e) = hook.send(&self.due) {
                error = Some(e.to_string());
            }
        }
        error
    }
}

fn key(service: &str, feature: &str) -> String {
    format!("{service}\u{1f}{feature}")
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let book = IncidentBook::new(config.resolve_quiet, config.resolve_after);
        Engine {
            config,
            monitors: BTreeMap::new(),
            error_rates: BTreeMap::new(),
            error_recent: BTreeMap::new(),
            rates: BTreeMap::new(),
            book,
            alertmanager: None,
            webhooks: Vec::new(),
            delivery_errors: 0,
            last_delivery_error: None,
            version: 0,
            transitions: Vec::new(),
            latest: BTreeMap::new(),
            fit: FitCheck::default(),
        }
    }

    pub fn with_alertmanager(mut self, url: &str) -> Self {
        self.alertmanager = Some(Arc::new(Alertmanager::new(url, self.config.resend)));
        self
    }

    pub fn with_webhook(mut self, url: &str) -> Self {
        self.webhooks.push(Arc::new(Webhook::new(url)));
        self
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The incidents, read-only: they change only through the engine.
    pub fn book(&self) -> &IncidentBook {
        &self.book
    }

    /// Deliveries that failed (each retried on the next call).
    pub fn delivery_errors(&self) -> u64 {
        self.delivery_errors
    }

    pub fn last_delivery_error(&self) -> Option<&str> {
        self.last_delivery_error.as_deref()
    }

    /// The version of the baselines in use (0: learned from scratch).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Findings from outside the detectors (the autopilot's own alerts:
    /// an action that made its target worse) for `feature` of `service`;
    /// empty while quiet, so it resolves after `resolve_after` calls. They
    /// are an incident of their own, named after their detector, and go
    /// to the same sinks as the engine's.
    pub fn raise(
        &mut self,
        service: &str,
        feature: &str,
        labels: &BTreeMap<String, String>,
        findings: &[Finding],
        now_ms: i64,
    ) {
        let t = self.book.raise(service, feature, labels, findings, now_ms);
        self.transitions.extend(t);
    }

    /// Findings of detectors run outside the engine's monitors about
    /// `service`, at event time `now_ms`: they join its incident as the
    /// engine's own findings do.
    pub fn add_findings(
        &mut self,
        service: &str,
        labels: &BTreeMap<String, String>,
        findings: &[Finding],
        now_ms: i64,
    ) {
        let t = self.book.observe(service, labels, findings, now_ms);
        self.transitions.extend(t);
    }

    /// One value of a feature of a service (a latency quantile, a rate, a
    /// Prometheus series) for the window starting at `t_ms`.
    pub fn observe(
        &mut self,
        service: &str,
        feature: &str,
        kind: FeatureKind,
        t_ms: i64,
        x: f64,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Finding> {
        let k = key(service, feature);
        let span = self.monitors.get(&k).and_then(|m| m.baseline.span());
        if self.fit.check(&k, service, feature, t_ms, span, true) {
            self.monitors.remove(&k);
        }
        let cfg = &self.config.monitor;
        let m = self
            .monitors
            .entry(k)
            .or_insert_with(|| FeatureMonitor::new(feature, kind, cfg.clone()));
        let findings = m.update(t_ms, x);
        let step = m.step_ms();
        self.book.note_step(service, step);
        self.remember(service, feature, t_ms, x);
        let t = self.book.observe(service, labels, &findings, t_ms);
        self.transitions.extend(t);
        findings
    }

    /// A resource the service uses (CPU cores, heap bytes) in the window
    /// at `t_ms`, as a feature of its own and, when the service's request
    /// logs give its request rate for that window, per 1,000 requests: a
    /// service doing the same work with more CPU is less efficient, even
    /// when its CPU alone looks normal for the traffic of the hour.
    pub fn observe_resource(
        &mut self,
        service: &str,
        name: &str,
        kind: FeatureKind,
        t_ms: i64,
        x: f64,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Finding> {
        let mut out = self.observe(service, name, kind, t_ms, x, labels);
        // Heap is not spent per request: memory per 1,000 requests would
        // swing with every change of traffic.
        if kind == FeatureKind::Memory {
            return out;
        }
        let rps = self.rates.get(service).and_then(|r| {
            r.iter()
                .rev()
                .find(|(start, end, _)| *start <= t_ms && t_ms < *end)
                .map(|(_, _, rps)| *rps)
        });
        if let Some(rps) = rps.filter(|r| *r > 0.0) {
            let per_1k = x / rps * 1000.0;
            out.extend(self.observe(
                service,
                &format!("{name}_per_1k_requests"),
                // Less work per resource is no incident; more is.
                FeatureKind::Cpu,
                t_ms,
                per_1k,
                labels,
            ));
        }
        out
    }

    /// Error counts of a window: a burst detector against the learned
    /// error rate.
    pub fn observe_errors(
        &mut self,
        service: &str,
        feature: &str,
        t_ms: i64,
        errors: u64,
        requests: u64,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Finding> {
        let k = key(service, feature);
        let span = self.error_rates.get(&k).and_then(Baseline::span);
        if self.fit.check(&k, service, feature, t_ms, span, false) {
            self.error_rates.remove(&k);
        }
        let cfg = &self.config.monitor.baseline;
        let base = self
            .error_rates
            .entry(k)
            .or_insert_with(|| Baseline::new(cfg.clone()));
        let expected = base.mean(t_ms);
        let recent = self.error_recent.entry(key(service, feature)).or_default();
        // A gap in the data ends the pool: the errors before it are old.
        let pool = self.config.error_burst.pool_windows.max(1);
        let width = 10_000 * pool as i64;
        recent.retain(|(t, _, _)| t_ms - t < width && *t < t_ms);
        if recent.len() == pool {
            recent.pop_front();
        }
        recent.push_back((t_ms, errors, requests));
        let finding =
            self.config
                .error_burst
                .update_pooled(feature, recent.make_contiguous(), expected);
        if requests > 0 {
            let rate = errors as f64 / requests as f64;
            base.observe(t_ms, rate, finding.is_some());
            self.remember(service, feature, t_ms, rate);
        }
        let findings: Vec<Finding> = finding.into_iter().collect();
        let t = self.book.observe(service, labels, &findings, t_ms);
        self.transitions.extend(t);
        findings
    }

    /// A closed window of request-log features: latency quantiles and rate
    /// as levels, errors as bursts.
    pub fn observe_window(&mut self, w: &FeatureWindow) -> Vec<Finding> {
        let mut labels = BTreeMap::new();
        let endpoint = if w.is_aggregate() {
            None
        } else {
            if w.count < self.config.min_requests {
                return Vec::new();
            }
            labels.insert("endpoint".to_string(), w.endpoint.to_string());
            Some(w.endpoint.to_string())
        };
        let name = |metric: Metric| {
            FeatureKey {
                endpoint: endpoint.clone(),
                metric,
            }
            .to_string()
        };
        let latency = |q: &str| Metric::LatencyQuantile {
            quantile: q.to_string(),
        };
        let mut out = Vec::new();
        let t = w.start_ms;
        if w.is_aggregate() {
            let r = self.rates.entry(w.service.to_string()).or_default();
            if r.len() == 720 {
                r.pop_front();
            }
            r.push_back((w.start_ms, w.end_ms, w.rate_per_s));
        }
        for (metric, x, kind, tail) in [
            (latency("50"), w.p50, FeatureKind::Latency, 0.5),
            (latency("90"), w.p90, FeatureKind::Latency, 0.1),
            (latency("99"), w.p99, FeatureKind::Latency, 0.01),
            (latency("999"), w.p999, FeatureKind::Latency, 0.001),
            (Metric::RequestRate, w.rate_per_s, FeatureKind::Rate, 1.0),
        ] {
            if kind == FeatureKind::Latency
                && (w.count == 0 || (w.count as f64) * tail < self.config.min_tail_requests)
            {
                // Not judged, but still the window's value: the
                // autopilot's conditions (`p99 > 500ms`) read it.
                if w.count > 0 {
                    self.remember(&w.service, &name(metric), t, x);
                }
                continue;
            }
            out.extend(self.observe(&w.service, &name(metric), kind, t, x, &labels));
        }
        out.extend(self.observe_errors(
            &w.service,
            &name(Metric::ErrorRate),
            t,
            w.errors,
            w.count,
            &labels,
        ));
        out
    }

    /// Sends what is due to the sinks; failed deliveries are retried on
    /// the next call.
    /// Sends what is due to the sinks, with the engine held throughout:
    /// for callers that own it alone. Shared engines take an
    /// [`Outbox`], send it unlocked and report back with
    /// [`delivered`](Self::delivered).
    pub fn deliver(&mut self, now_ms: i64) {
        if let Some(outbox) = self.outbox(now_ms) {
            let error = outbox.send();
            self.delivered(&outbox, error);
        }
    }

    /// What is due to the sinks now, marked sent; None when nothing is.
    pub fn outbox(&mut self, now_ms: i64) -> Option<Outbox> {
        let due = self.book.due(now_ms, self.config.resend);
        (!due.is_empty()).then(|| Outbox {
            due,
            now_ms,
            alertmanager: self.alertmanager.clone(),
            webhooks: self.webhooks.clone(),
        })
    }

    /// An outbox's result: on failure its incidents are due again next
    /// time.
    pub fn delivered(&mut self, outbox: &Outbox, error: Option<String>) {
        if let Some(e) = error {
            self.delivery_errors += 1;
            self.last_delivery_error = Some(e);
            let ids: Vec<String> = outbox.due.iter().map(|a| a.id.clone()).collect();
            self.book.unsend(&ids);
        }
    }

    /// Every incident held: firing first, newest first.
    pub fn incidents(&self) -> Vec<&Incident> {
        self.book.list()
    }

    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.book.get(id)
    }

    /// Acknowledges an incident; None when there is no such incident.
    pub fn ack(&mut self, id: &str, by: &str, now_ms: i64) -> Option<Incident> {
        self.book.ack(id, by, now_ms).cloned()
    }

    fn remember(&mut self, service: &str, feature: &str, t_ms: i64, x: f64) {
        let slot = self
            .latest
            .entry(key(service, feature))
            .or_insert((t_ms, x));
        // Late windows do not replace newer ones.
        if t_ms >= slot.0 {
            *slot = (t_ms, x);
        }
    }

    /// The feature's last value: (its window's start, the value). Error
    /// features (`errors`, `/search errors`) give the error rate, 0 to 1.
    pub fn latest(&self, service: &str, feature: &str) -> Option<(i64, f64)> {
        self.latest.get(&key(service, feature)).copied()
    }

    /// Every feature the engine follows, with its band at `t_ms` and its
    /// last value, sorted by service then feature: what normal looks like
    /// now, for people to read (`GET /api/v1/baselines`).
    pub fn features(&self, t_ms: i64) -> Vec<FeatureSummary> {
        summaries(self.bands(), &self.latest, t_ms)
    }

    /// What the feature's baseline expects at `t_ms`, once it has learned
    /// enough to say (for error features, the expected error rate).
    pub fn expected(&self, service: &str, feature: &str, t_ms: i64) -> Option<f64> {
        let k = key(service, feature);
        let base = match self.monitors.get(&k) {
            Some(m) => &m.baseline,
            None => self.error_rates.get(&k)?,
        };
        expected_of(base, t_ms)
    }

    /// Every baseline by key, with its monitor's kind (None: an error
    /// rate).
    fn bands(&self) -> impl Iterator<Item = (&String, Option<FeatureKind>, &Baseline)> {
        self.monitors
            .iter()
            .map(|(k, m)| (k, Some(m.kind), &m.baseline))
            .chain(self.error_rates.iter().map(|(k, b)| (k, None, b)))
    }

    /// A read-only copy of what readers of the engine ask for (alerts,
    /// last values, baselines), taken by its owner to publish.
    pub fn snapshot(&self, now_ms: i64) -> EngineSnapshot {
        EngineSnapshot {
            taken_at_ms: now_ms,
            incidents: self.book.list().into_iter().cloned().collect(),
            baselines: self
                .bands()
                .map(|(k, kind, b)| (k.clone(), (kind, b.clone())))
                .collect(),
            latest: self.latest.clone(),
            resolve_after: self.book.resolve_after,
            delivery_errors: self.delivery_errors,
            last_delivery_error: self.last_delivery_error.clone(),
            version: self.version,
        }
    }

    pub fn monitor(&self, service: &str, feature: &str) -> Option<&FeatureMonitor> {
        self.monitors.get(&key(service, feature))
    }

    pub fn monitors(&self) -> impl Iterator<Item = &FeatureMonitor> {
        self.monitors.values()
    }

    /// Writes the baselines as the next version in `dir` (atomically:
    /// a reader never sees half a file) and returns its path.
    pub fn save(&mut self, dir: &Path, now_ms: i64) -> Result<PathBuf, BaselineError> {
        let (version, path) = publish(dir, self.version, |version| {
            let snap = Snapshot {
                version,
                saved_at_ms: now_ms,
                monitors: self.monitors.clone(),
                error_rates: self.error_rates.clone(),
            };
            serde_json::to_vec(&snap)
                .map_err(|e| BaselineError::invalid(dir.display().to_string(), e.to_string()))
        })?;
        self.version = version;
        Ok(path)
    }

    /// Loads the newest version in `dir` if it is newer than the one in
    /// use; returns its version when it did.
    pub fn reload(&mut self, dir: &Path) -> Result<Option<u64>, BaselineError> {
        let Some((version, path)) = latest_version(dir)? else {
            return Ok(None);
        };
        if version <= self.version {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|e| BaselineError::io(&path, e))?;
        let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
            BaselineError::invalid(
                format!("{}:{}:{}", path.display(), e.line(), e.column()),
                format!("not a saved baseline: {e}"),
            )
        })?;
        self.monitors = snap.monitors;
        self.error_rates = snap.error_rates;
        self.version = version;
        self.fit
            .loaded(version, self.monitors.keys().chain(self.error_rates.keys()));
        Ok(Some(version))
    }

    /// Baselines relearned because they did not fit the input, since the
    /// last call (see [`crate::fit`]).
    pub fn drain_fit_notes(&mut self) -> Vec<FitNote> {
        self.fit.drain()
    }

    /// The same, in words: one line per service and reason.
    pub fn drain_fit_lines(&mut self) -> Vec<String> {
        self.fit.drain_lines()
    }

    /// Baselines relearned so far because they did not fit the input.
    pub fn relearned(&self) -> u64 {
        self.fit.relearned
    }

    /// Incidents that fired or resolved since the last call.
    pub fn drain_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// A line for a log of incident transitions:
    /// `firing: incident ID SERVICE: SUMMARY`.
    pub fn describe(&self, t: &Transition) -> String {
        let (verb, id) = match t {
            Transition::Fired(id) => ("firing", id),
            Transition::Resolved(id) => ("resolved", id),
        };
        match self.book.get(id) {
            Some(a) => format!("{verb}: incident {id} {}: {}", a.service, a.summary),
            None => format!("{verb}: incident {id}"),
        }
    }
}

fn expected_of(base: &Baseline, t_ms: i64) -> Option<f64> {
    let band = base.band(t_ms);
    band.ready().then_some(band.expected)
}

fn summaries<'a>(
    bands: impl Iterator<Item = (&'a String, Option<FeatureKind>, &'a Baseline)>,
    latest: &BTreeMap<String, (i64, f64)>,
    t_ms: i64,
) -> Vec<FeatureSummary> {
    let mut out: Vec<FeatureSummary> = bands
        .map(|(k, kind, base)| {
            let (service, feature) = k.split_once('\u{1f}').unwrap_or(("", k));
            FeatureSummary {
                latest: latest.get(k).copied(),
                service: service.to_string(),
                key: FeatureKey::parse(feature),
                feature: feature.to_string(),
                kind: kind.map_or("error_rate", FeatureKind::name).to_string(),
                band: base.band(t_ms),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.service, &a.feature).cmp(&(&b.service, &b.feature)));
    out
}

/// What the engine's owner publishes for everyone else to read: the
/// incidents, the last value of each feature and copies of the baselines
/// (so bands are computed at the reader's time, as before). Readers hold
/// an `Arc` of one; the engine is never locked for them.
#[derive(Debug, Clone, Default)]
pub struct EngineSnapshot {
    pub taken_at_ms: i64,
    /// Firing first, newest first.
    incidents: Vec<Incident>,
    baselines: BTreeMap<String, (Option<FeatureKind>, Baseline)>,
    latest: BTreeMap<String, (i64, f64)>,
    /// Quiet updates before an incident raised from outside resolves.
    pub resolve_after: u32,
    pub delivery_errors: u64,
    pub last_delivery_error: Option<String>,
    pub version: u64,
}

impl EngineSnapshot {
    /// Firing first, newest first.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.incidents.iter().find(|a| a.id == id)
    }

    /// See [`Engine::latest`].
    pub fn latest(&self, service: &str, feature: &str) -> Option<(i64, f64)> {
        self.latest.get(&key(service, feature)).copied()
    }

    /// See [`Engine::expected`].
    pub fn expected(&self, service: &str, feature: &str, t_ms: i64) -> Option<f64> {
        let (_, base) = self.baselines.get(&key(service, feature))?;
        expected_of(base, t_ms)
    }

    /// See [`Engine::features`].
    pub fn features(&self, t_ms: i64) -> Vec<FeatureSummary> {
        summaries(
            self.baselines.iter().map(|(k, (kind, b))| (k, *kind, b)),
            &self.latest,
            t_ms,
        )
    }
}

/// Writes the next free version `vNNNNNN.json` in `dir` (above `at_least`)
/// with the bytes `build` makes for that number. Readers never see half a
/// file (it is written aside and synced, then linked in, and the
/// directory synced, so a version that was published survives a crash),
/// a failure leaves nothing behind, and two writers never take the same
/// number: the link fails when the name exists, and the next number is
/// tried.
pub fn publish(
    dir: &Path,
    at_least: u64,
    mut build: impl FnMut(u64) -> Result<Vec<u8>, BaselineError>,
) -> Result<(u64, PathBuf), BaselineError> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| BaselineError::io(dir, e))?;
    for _ in 0..100 {
        let version = latest_version(dir)?.map_or(0, |(v, _)| v).max(at_least) + 1;
        let path = dir.join(format!("v{version:06}.json"));
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".v{version:06}.{}.{seq}.tmp", std::process::id()));
        let bytes = build(version)?;
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(BaselineError::io(&tmp, e));
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| BaselineError::io(dir, e))?;
                return Ok((version, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(BaselineError::io(&path, e)),
        }
    }
    Err(BaselineError::invalid(
        dir.display().to_string(),
        "could not take a new version number after 100 tries",
    ))
}

/// The highest `vNNNNNN.json` in `dir`.
pub fn latest_version(dir: &Path) -> Result<Option<(u64, PathBuf)>, BaselineError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BaselineError::io(dir, e)),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name.strip_prefix('v').and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if let Ok(v) = num.parse::<u64>() {
            if best.as_ref().is_none_or(|(b, _)| v > *b) {
                best = Some((v, entry.path()));
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::logs::Event;
    use crate::window::{windows, WindowConfig};

    /// Requests at `rps` per second over `[from_s, until_s)`.
    fn traffic(from_s: i64, until_s: i64, rps: i64) -> Vec<Event> {
        let (svc, ep): (Arc<str>, Arc<str>) = (Arc::from("api"), Arc::from("/x"));
        (from_s * rps..until_s * rps)
            .map(|i| Event {
                ts_ms: i * 1000 / rps,
                latency_ms: 10.0 + (i % 7) as f64,
                status: 200,
                endpoint: Arc::clone(&ep),
                service: Arc::clone(&svc),
            })
            .collect()
    }

    #[test]
    fn concurrent_writers_never_share_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let taken: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let d = dir.path();
                    s.spawn(move || {
                        publish(d, 0, |v| {
                            Ok(format!("{{\"v\": {v}, \"w\": {i}}}").into_bytes())
                        })
                        .unwrap()
                        .0
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = taken.clone();
        sorted.sort();
        assert_eq!(sorted, (1..=8).collect::<Vec<u64>>(), "{taken:?}");
        for v in 1..=8u64 {
            let text = std::fs::read_to_string(dir.path().join(format!("v{v:06}.json"))).unwrap();
            assert!(text.starts_with(&format!("{{\"v\": {v},")), "{text}");
        }
    }

    #[test]
    fn cpu_per_request_is_judged_against_traffic() {
        let mut e = Engine::new(EngineConfig::default());
        let none = BTreeMap::new();
        // 100 req/s on one core for 20 minutes, then traffic and CPU both
        // double: the service is as efficient as before.
        let mut events = traffic(0, 1200, 100);
        events.extend(traffic(1200, 1800, 200));
        let (ws, _) = windows(&events, WindowConfig::default()).unwrap();
        let mut findings = Vec::new();
        for w in ws.iter().filter(|w| w.is_aggregate()) {
            e.observe_window(w);
            let cores = if w.start_ms < 1_200_000 { 1.0 } else { 2.0 };
            findings.extend(e.observe_resource(
                "api",
                "cpu_cores",
                FeatureKind::Level,
                w.start_ms,
                cores,
                &none,
            ));
        }
        assert!(
            findings
                .iter()
                .all(|f| f.feature != "cpu_cores_per_1k_requests"),
            "{findings:#?}"
        );
        // Now twice the CPU for the same traffic.
        let (ws, _) = windows(&traffic(1800, 2100, 200), WindowConfig::default()).unwrap();
        let mut worse = Vec::new();
        for w in ws.iter().filter(|w| w.is_aggregate()) {
            e.observe_window(w);
            worse.extend(e.observe_resource(
                "api",
                "cpu_cores",
                FeatureKind::Level,
                w.start_ms,
                4.0,
                &none,
            ));
        }
        assert!(
            worse
                .iter()
                .any(|f| f.feature == "cpu_cores_per_1k_requests"),
            "{worse:#?}"
        );
    }
}
