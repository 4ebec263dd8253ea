//! Findings become incidents: one per problem of a service, not one alert
//! per (feature, detector).
//!
//! Every finding about a service while it has an incident open joins that
//! incident as evidence (the quantiles of one latency distribution, an
//! endpoint and its service aggregate, several detectors, latency and
//! errors together). An incident is firing until its service has gone
//! [`IncidentBook::resolve_quiet_ms`] of event time, and at least
//! [`IncidentBook::resolve_windows`] of its windows, without a finding; it
//! never re-fires while open, and a finding after it resolved opens a new
//! one. Its severity is the highest of its findings; it began at the
//! earliest `since` of its findings.
//!
//! Alerts raised from outside the detectors (the autopilot's own) are
//! incidents of their own group per (service, feature): they keep their
//! alert name and labels (policies and the autopilot's door match them)
//! and resolve after [`IncidentBook::resolve_after`] quiet updates, as
//! their raiser expects.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alerts::rfc3339;
use crate::detectors::{Finding, Severity};
use crate::feature::FeatureKey;

/// The alert name every detector incident carries in Alertmanager.
pub const INCIDENT_ALERTNAME: &str = "PerfpilotIncident";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Firing,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at_ms: i64,
}

/// What changed in an update: the incident's id.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fired(String),
    Resolved(String),
}

/// The evidence of one (feature, detector) inside an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The feature's name (`/search latency_p99_ms`).
    pub feature: String,
    /// What it means: its endpoint (none: service-wide) and its metric.
    pub feature_key: FeatureKey,
    pub detector: String,
    /// The highest of its findings.
    pub severity: Severity,
    /// When the detector says the anomaly began (earliest of its findings).
    pub since_ms: i64,
    /// The windows of its first and latest finding.
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: u64,
    /// The latest finding's value, band and message.
    pub observed: f64,
    pub expected: Option<crate::baseline::Band>,
    pub score: f64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Unique per incident: a second problem of the same service later is
    /// another id.
    pub id: String,
    pub service: String,
    pub state: IncidentState,
    /// The highest severity of its findings.
    pub severity: Severity,
    /// The estimate of when the problem began: the earliest `since` of its
    /// findings (of its band breaches and error bursts, when it has any).
    pub starts_at_ms: i64,
    /// The event time of the window that raised it.
    pub raised_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// One line a person reads.
    pub summary: String,
    /// Per (feature, detector), in the order they first appeared.
    pub findings: Vec<Evidence>,
    /// For Alertmanager (and the autopilot's alert conditions).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub ack: Option<Ack>,
    /// The window of its latest finding, which the quiet time runs from.
    #[serde(default)]
    pub last_finding_ms: i64,
    #[serde(skip)]
    group: Group,
    #[serde(skip)]
    quiet: u32,
    #[serde(skip)]
    last_sent_ms: Option<i64>,
    #[serde(skip)]
    resolution_sent: bool,
}

/// Who an incident belongs to: the detectors of a service, or one alert
/// raised from outside them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    #[default]
    Service,
    Raised(String),
}

/// One line of a JSON-lines incident log (`--alerts-out`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub id: String,
    pub service: String,
    /// RFC 3339.
    pub starts_at: String,
    pub raised_at: String,
    /// None while it still fires (the input ended first).
    pub resolved_at: Option<String>,
    pub severity: Severity,
    pub summary: String,
    pub findings: Vec<FindingRecord>,
}

/// One piece of an incident's evidence in an [`IncidentRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    pub feature: String,
    /// None: the service as a whole.
    pub endpoint: Option<String>,
    pub detector: String,
    pub severity: Severity,
    pub since: String,
    pub first_at: String,
    pub last_at: String,
    pub count: u64,
    pub observed: f64,
    /// `[low, expected, high]`, where a band applies.
    pub band: Option<[f64; 3]>,
    pub message: String,
}

impl Incident {
    pub fn firing(&self) -> bool {
        self.state == IncidentState::Firing
    }

    /// The incident as one JSON line of an incident log describes it.
    pub fn record(&self) -> IncidentRecord {
        IncidentRecord {
            id: self.id.clone(),
            service: self.service.clone(),
            starts_at: rfc3339(self.starts_at_ms),
            raised_at: rfc3339(self.raised_at_ms),
            resolved_at: self.resolved_at_ms.map(rfc3339),
            severity: self.severity,
            summary: self.summary.clone(),
            findings: self
                .findings
                .iter()
                .map(|e| FindingRecord {
                    feature: e.feature.clone(),
                    endpoint: e.feature_key.endpoint.clone(),
                    detector: e.detector.clone(),
                    severity: e.severity,
                    since: rfc3339(e.since_ms),
                    first_at: rfc3339(e.first_ms),
                    last_at: rfc3339(e.last_ms),
                    count: e.count,
                    observed: e.observed,
                    band: e.expected.map(|b| [b.low, b.expected, b.high]),
                    message: e.message.clone(),
                })
                .collect(),
        }
    }

    fn add(&mut self, f: &Finding) {
        match self
            .findings
            .iter_mut()
            .find(|e| e.feature == f.feature && e.detector == f.detector)
        {
            Some(e) => {
                e.severity = e.severity.max(f.severity);
                e.since_ms = e.since_ms.min(f.since_ms);
                e.first_ms = e.first_ms.min(f.at_ms);
                e.last_ms = e.last_ms.max(f.at_ms);
                e.count += 1;
                e.observed = f.observed;
                e.expected = f.expected;
                e.score = f.score;
                e.message = f.message.clone();
            }
            None => self.findings.push(Evidence {
                feature: f.feature.clone(),
                feature_key: FeatureKey::parse(&f.feature),
                detector: f.detector.clone(),
                severity: f.severity,
                since_ms: f.since_ms,
                first_ms: f.at_ms,
                last_ms: f.at_ms,
                count: 1,
                observed: f.observed,
                expected: f.expected,
                score: f.score,
                message: f.message.clone(),
            }),
        }
        self.severity = self.severity.max(f.severity);
        self.last_finding_ms = self.last_finding_ms.max(f.at_ms);
        // A change point's or a leak's `since` is where a drift began to
        // accumulate: earlier and vaguer than where data left its band or
        // errors burst, which are preferred when the incident has any.
        let vague = |d: &str| d == "change_point" || d == "leak";
        let sharp = self
            .findings
            .iter()
            .filter(|e| !vague(&e.detector))
            .map(|e| e.since_ms)
            .min();
        let any = self.findings.iter().map(|e| e.since_ms).min();
        if let Some(start) = sharp.or(any) {
            self.starts_at_ms = start;
        }
    }

    /// The finding a person reads first: the most severe, then the
    /// earliest, the service as a whole before its endpoints.
    fn lead(&self) -> Option<&Evidence> {
        self.findings.iter().min_by(|a, b| {
            (b.severity, a.first_ms, a.feature_key.endpoint.is_some()).cmp(&(
                a.severity,
                b.first_ms,
                b.feature_key.endpoint.is_some(),
            ))
        })
    }

    /// Summary, labels' severity and annotations, from the evidence.
    fn describe(&mut self) {
        let more = self.findings.len().saturating_sub(1);
        let features = {
            let mut f: Vec<&str> = self.findings.iter().map(|e| e.feature.as_str()).collect();
            f.sort_unstable();
            f.dedup();
            f.len()
        };
        // Messages that do not name their feature (error bursts) get it.
        let lead = self.lead().map_or(String::new(), |e| {
            if e.message.starts_with(&e.feature) {
                e.message.clone()
            } else {
                format!("{}: {}", e.feature, e.message)
            }
        });
        self.summary = match more {
            0 => lead,
            _ => format!(
                "{lead} (and {more} more finding{} on {features} feature{})",
                if more == 1 { "" } else { "s" },
                if features == 1 { "" } else { "s" },
            ),
        };
        self.labels.insert(
            "severity".into(),
            match self.severity {
                Severity::Warning => "warning",
                Severity::Critical => "critical",
            }
            .into(),
        );
        let description: Vec<String> = self
            .findings
            .iter()
            .map(|e| {
                let band = e.expected.map_or(String::new(), |b| {
                    format!(" band [{:.4}, {:.4}]", b.low, b.high)
                });
                format!(
                    "{} {}: observed {:.4}{band} since {} ({}x): {}",
                    e.feature,
                    e.detector,
                    e.observed,
                    rfc3339(e.since_ms),
                    e.count,
                    e.message
                )
            })
            .collect();
        self.annotations
            .insert("summary".into(), self.summary.clone());
        self.annotations
            .insert("description".into(), description.join("\n"));
        self.annotations
            .insert("since".into(), rfc3339(self.starts_at_ms));
        self.annotations
            .insert("raised_at".into(), rfc3339(self.raised_at_ms));
    }
}

#[derive(Debug, Clone)]
pub struct IncidentBook {
    incidents: BTreeMap<String, Incident>,
    /// The firing incident of each (service, group), by id.
    open: BTreeMap<(String, Group), String>,
    /// Event time without a finding before a service's incident resolves.
    pub resolve_quiet_ms: i64,
    /// And at least this many of the service's windows: a gauge sampled
    /// every 5 minutes would otherwise resolve after one quiet sample and
    /// page again on the next finding of the same problem.
    pub resolve_windows: i64,
    /// The longest window step of each service's features.
    steps: BTreeMap<String, i64>,
    /// Quiet updates before an incident raised from outside resolves.
    pub resolve_after: u32,
    /// Resolved incidents kept for the API.
    pub keep_resolved: usize,
}

impl Default for IncidentBook {
    fn default() -> Self {
        IncidentBook::new(Duration::from_secs(300), 3)
    }
}

/// `PerfpilotAutopilotMadeWorse` from `autopilot_made_worse`.
fn alert_name(detector: &str) -> String {
    let camel: String = detector
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect();
    format!("Perfpilot{camel}")
}

/// FNV-1a over the parts, as hex.
fn fingerprint(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

/// Quiet windows of its service an incident lasts at least; see
/// [`IncidentBook::resolve_windows`].
pub const RESOLVE_WINDOWS: i64 = 3;

impl IncidentBook {
    /// A feature of `service` is sampled every `step_ms` (0: not known
    /// yet): its incidents stay open for `resolve_windows` of those.
    pub fn note_step(&mut self, service: &str, step_ms: i64) {
        if step_ms <= 0 {
            return;
        }
        match self.steps.get_mut(service) {
            Some(s) => *s = (*s).max(step_ms),
            None => {
                self.steps.insert(service.to_string(), step_ms);
            }
        }
    }

    /// Event time `service` must go without a finding to resolve.
    pub fn quiet_ms(&self, service: &str) -> i64 {
        let step = self.steps.get(service).copied().unwrap_or(0);
        self.resolve_quiet_ms
            .max(step.saturating_mul(self.resolve_windows))
    }

    pub fn new(resolve_quiet: Duration, resolve_after: u32) -> Self {
        IncidentBook {
            incidents: BTreeMap::new(),
            open: BTreeMap::new(),
            resolve_quiet_ms: resolve_quiet.as_millis().min(i64::MAX as u128) as i64,
            resolve_windows: RESOLVE_WINDOWS,
            steps: BTreeMap::new(),
            resolve_after: resolve_after.max(1),
            keep_resolved: 500,
        }
    }

    /// Takes the detectors' findings of one evaluated window of `service`
    /// at event time `now_ms` (empty when they found nothing): they join
    /// its open incident, or open one; an incident quiet for long enough
    /// resolves. `extra` labels (env) go on a new incident; an endpoint
    /// label does not (the incident is the service's).
    pub fn observe(
        &mut self,
        service: &str,
        extra: &BTreeMap<String, String>,
        findings: &[Finding],
        now_ms: i64,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let id = match self.open_id(service, &Group::Service) {
            Some(id) => id,
            None if findings.is_empty() => return out,
            None => {
                let mut labels: BTreeMap<String, String> = extra
                    .iter()
                    .filter(|(k, _)| k.as_str() != "endpoint")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.insert("alertname".into(), INCIDENT_ALERTNAME.into());
                let id = self.open(service, Group::Service, labels, now_ms);
                out.push(Transition::Fired(id.clone()));
                id
            }
        };
        let quiet_ms = self.quiet_ms(service);
        let Some(inc) = self.incidents.get_mut(&id) else {
            return out;
        };
        if !findings.is_empty() {
            for f in findings {
                inc.add(f);
            }
            inc.updated_at_ms = inc.updated_at_ms.max(now_ms);
            inc.describe();
        } else if now_ms - inc.last_finding_ms >= quiet_ms {
            self.resolve(&id, now_ms);
            out.push(Transition::Resolved(id));
        }
        self.prune();
        out
    }

    /// Findings from outside the detectors for `feature` of `service`
    /// (empty while quiet: it resolves after `resolve_after` of those).
    /// They are an incident of their own, named by their detector and
    /// carrying `extra` labels.
    pub fn raise(
        &mut self,
        service: &str,
        feature: &str,
        extra: &BTreeMap<String, String>,
        findings: &[Finding],
        now_ms: i64,
    ) -> Vec<Transition> {
        let group = Group::Raised(feature.to_string());
        let mut out = Vec::new();
        let open = self.open_id(service, &group);
        let id = match (open, findings.first()) {
            (Some(id), _) => id,
            (None, None) => return out,
            (None, Some(f)) => {
                let mut labels = extra.clone();
                labels.insert("alertname".into(), alert_name(&f.detector));
                labels.insert("feature".into(), feature.into());
                labels.insert("detector".into(), f.detector.clone());
                let id = self.open(service, group, labels, now_ms);
                out.push(Transition::Fired(id.clone()));
                id
            }
        };
        let resolve_after = self.resolve_after;
        let Some(inc) = self.incidents.get_mut(&id) else {
            return out;
        };
        if findings.is_empty() {
            inc.quiet += 1;
            if inc.quiet >= resolve_after {
                self.resolve(&id, now_ms);
                out.push(Transition::Resolved(id));
            }
        } else {
            inc.quiet = 0;
            for f in findings {
                inc.add(f);
            }
            inc.updated_at_ms = inc.updated_at_ms.max(now_ms);
            inc.describe();
        }
        self.prune();
        out
    }

    fn open_id(&self, service: &str, group: &Group) -> Option<String> {
        self.open
            .get(&(service.to_string(), group.clone()))
            .cloned()
    }

    fn resolve(&mut self, id: &str, now_ms: i64) {
        if let Some(inc) = self.incidents.get_mut(id) {
            inc.state = IncidentState::Resolved;
            inc.resolved_at_ms = Some(now_ms);
            inc.updated_at_ms = now_ms;
            self.open.remove(&(inc.service.clone(), inc.group.clone()));
        }
    }

    fn open(
        &mut self,
        service: &str,
        group: Group,
        mut labels: BTreeMap<String, String>,
        now_ms: i64,
    ) -> String {
        let g = match &group {
            Group::Service => "",
            Group::Raised(f) => f.as_str(),
        };
        let at = now_ms.to_string();
        let mut id = fingerprint(&[service, g, &at]);
        let mut n = 0u32;
        while self.incidents.contains_key(&id) {
            n += 1;
            id = fingerprint(&[service, g, &at, &n.to_string()]);
        }
        labels.insert("service".into(), service.into());
        labels.insert("incident".into(), id.clone());
        self.open
            .insert((service.to_string(), group.clone()), id.clone());
        self.incidents.insert(
            id.clone(),
            Incident {
                id: id.clone(),
                service: service.into(),
                state: IncidentState::Firing,
                severity: Severity::Warning,
                starts_at_ms: now_ms,
                raised_at_ms: now_ms,
                resolved_at_ms: None,
                updated_at_ms: now_ms,
                summary: String::new(),
                findings: Vec::new(),
                labels,
                annotations: BTreeMap::new(),
                ack: None,
                last_finding_ms: now_ms,
                group,
                quiet: 0,
                last_sent_ms: None,
                resolution_sent: false,
            },
        );
        id
    }

    fn prune(&mut self) {
        let resolved: Vec<(i64, String)> = self
            .incidents
            .values()
            .filter(|a| a.state == IncidentState::Resolved && a.resolution_sent)
            .map(|a| (a.updated_at_ms, a.id.clone()))
            .collect();
        if resolved.len() > self.keep_resolved {
            let mut resolved = resolved;
            resolved.sort();
            for (_, id) in resolved.iter().take(resolved.len() - self.keep_resolved) {
                self.incidents.remove(id);
            }
        }
    }

    /// Incidents a sink should be told about now: firing ones not sent
    /// for `resend` (Alertmanager forgets alerts that are not repeated),
    /// and resolutions not sent yet. Marks them sent.
    pub fn due(&mut self, now_ms: i64, resend: Duration) -> Vec<Incident> {
        let resend_ms = resend.as_millis() as i64;
        let mut out = Vec::new();
        for a in self.incidents.values_mut() {
            let due = match a.state {
                IncidentState::Firing => a.last_sent_ms.is_none_or(|t| now_ms - t >= resend_ms),
                IncidentState::Resolved => !a.resolution_sent,
            };
            if due {
                a.last_sent_ms = Some(now_ms);
                if a.state == IncidentState::Resolved {
                    a.resolution_sent = true;
                }
                out.push(a.clone());
            }
        }
        out
    }

    /// Marks deliveries as failed so they are retried on the next call.
    pub fn unsend(&mut self, ids: &[String]) {
        for id in ids {
            if let Some(a) = self.incidents.get_mut(id) {
                a.last_sent_ms = None;
                a.resolution_sent = false;
            }
        }
    }

    pub fn ack(&mut self, id: &str, by: &str, now_ms: i64) -> Option<&Incident> {
        let a = self.incidents.get_mut(id)?;
        a.ack = Some(Ack {
            by: by.to_string(),
            at_ms: now_ms,
        });
        Some(a)
    }

    /// Firing first, newest first.
    pub fn list(&self) -> Vec<&Incident> {
        let mut v: Vec<&Incident> = self.incidents.values().collect();
        v.sort_by_key(|a| (!a.firing(), -a.updated_at_ms, a.id.clone()));
        v
    }

    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(feature: &str, detector: &str, t: i64, severity: Severity) -> Finding {
        Finding {
            detector: detector.into(),
            feature: feature.into(),
            score: 2.0,
            severity,
            observed: 300.0,
            expected: None,
            since_ms: t - 20,
            at_ms: t,
            message: format!("{feature} is high"),
        }
    }

    fn fired(t: &[Transition]) -> String {
        match t {
            [Transition::Fired(id)] => id.clone(),
            other => panic!("expected one firing, got {other:?}"),
        }
    }

    #[test]
    fn findings_of_a_service_are_one_incident_until_it_is_quiet() {
        let mut book = IncidentBook::new(Duration::from_millis(100), 3);
        let none = BTreeMap::new();
        let w = Severity::Warning;
        let id = fired(&book.observe(
            "checkout",
            &none,
            &[finding("latency_p99_ms", "band", 0, w)],
            0,
        ));
        let more = [
            finding("/pay latency_p99_ms", "band", 10, w),
            finding("latency_p50_ms", "change_point", 10, w),
            finding("errors", "error_burst", 10, Severity::Critical),
        ];
        assert!(book.observe("checkout", &none, &more, 10).is_empty());
        // Another service is another incident.
        fired(&book.observe(
            "search",
            &none,
            &[finding("errors", "error_burst", 10, w)],
            10,
        ));
        assert!(book.observe("checkout", &none, &[], 100).is_empty());
        assert_eq!(
            book.observe("checkout", &none, &[], 110),
            vec![Transition::Resolved(id.clone())]
        );
        let inc = book.get(&id).unwrap();
        assert_eq!(inc.findings.len(), 4);
        assert_eq!(inc.severity, Severity::Critical);
        assert_eq!(inc.labels["severity"], "critical");
        assert_eq!(inc.labels["alertname"], INCIDENT_ALERTNAME);
        assert_eq!(inc.labels["incident"], id);
        assert_eq!(inc.starts_at_ms, -20);
        assert_eq!(inc.raised_at_ms, 0);
        assert_eq!(inc.resolved_at_ms, Some(110));
        assert!(
            inc.summary
                .starts_with("errors is high (and 3 more findings on 4 features)"),
            "{}",
            inc.summary
        );
        let rec = inc.record();
        assert_eq!(rec.findings[1].endpoint.as_deref(), Some("/pay"));
        assert_eq!(rec.resolved_at.as_deref(), Some("1970-01-01T00:00:00.110Z"));
        // A finding after it resolved is a new incident.
        let again = fired(&book.observe(
            "checkout",
            &none,
            &[finding("errors", "error_burst", 200, w)],
            200,
        ));
        assert_ne!(again, id);
    }

    #[test]
    fn a_sparsely_sampled_service_stays_open_for_a_few_of_its_windows() {
        // 5 minutes of quiet, but a gauge sampled every 5 minutes.
        let mut book = IncidentBook::new(Duration::from_secs(300), 3);
        let none = BTreeMap::new();
        let step = 300_000;
        book.note_step("nab", step);
        assert_eq!(book.quiet_ms("nab"), 3 * step);
        assert_eq!(book.quiet_ms("shop"), step);
        let f = |t| [finding("value", "band", t, Severity::Warning)];
        let id = fired(&book.observe("nab", &none, &f(0), 0));
        // One quiet sample, then the same problem again: one incident.
        assert!(book.observe("nab", &none, &[], step).is_empty());
        assert!(book
            .observe("nab", &none, &f(2 * step), 2 * step)
            .is_empty());
        for k in 3..5 {
            assert!(book.observe("nab", &none, &[], k * step).is_empty());
        }
        assert_eq!(
            book.observe("nab", &none, &[], 5 * step),
            vec![Transition::Resolved(id)]
        );
    }

    #[test]
    fn resends_while_firing_and_sends_the_resolution_once() {
        let mut book = IncidentBook::new(Duration::from_secs(30), 3);
        let none = BTreeMap::new();
        book.observe(
            "svc",
            &none,
            &[finding("errors", "error_burst", 0, Severity::Warning)],
            0,
        );
        let resend = Duration::from_secs(60);
        assert_eq!(book.due(0, resend).len(), 1);
        assert!(book.due(30_000, resend).is_empty());
        assert_eq!(book.due(60_000, resend).len(), 1);
        book.observe("svc", &none, &[], 70_000);
        let due = book.due(100_000, resend);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].state, IncidentState::Resolved);
        assert!(book.due(200_000, resend).is_empty());
    }

    #[test]
    fn raised_alerts_keep_their_name_and_resolve_after_quiet_updates() {
        let mut book = IncidentBook::default();
        let mut labels = BTreeMap::new();
        labels.insert("policy".to_string(), "p".to_string());
        let f = finding(
            "autopilot p/a",
            "autopilot_made_worse",
            5,
            Severity::Critical,
        );
        let id = fired(&book.raise("svc", "autopilot p/a", &labels, &[f], 5));
        // The service's own incidents are apart.
        fired(&book.observe(
            "svc",
            &BTreeMap::new(),
            &[finding("errors", "error_burst", 6, Severity::Warning)],
            6,
        ));
        for t in 0..2 {
            assert!(book
                .raise("svc", "autopilot p/a", &labels, &[], 10 + t)
                .is_empty());
        }
        assert_eq!(
            book.raise("svc", "autopilot p/a", &labels, &[], 20),
            vec![Transition::Resolved(id.clone())]
        );
        let inc = book.get(&id).unwrap();
        assert_eq!(inc.labels["alertname"], "PerfpilotAutopilotMadeWorse");
        assert_eq!(inc.labels["policy"], "p");
        assert_eq!(inc.labels["feature"], "autopilot p/a");
    }
}
