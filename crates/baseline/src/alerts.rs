//! Findings become alerts with a lifecycle: one alert per (service,
//! feature, detector), firing while its detector keeps finding, resolved
//! after a few quiet windows, re-sent while firing (Alertmanager forgets
//! alerts that are not repeated), acknowledged by people.
//!
//! Sinks: Alertmanager's `POST /api/v2/alerts` and plain webhooks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::detectors::{Finding, Severity};
use crate::error::BaselineError;
use crate::feature::FeatureKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// A fingerprint of the labels: stable across restarts and re-sends.
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// The latest finding behind it.
    pub finding: Finding,
    /// What its `feature` label means (absent from servers before it).
    #[serde(default)]
    pub feature_key: Option<FeatureKey>,
    pub ack: Option<Ack>,
    #[serde(skip)]
    quiet: u32,
    #[serde(skip)]
    last_sent_ms: Option<i64>,
    #[serde(skip)]
    resolution_sent: bool,
}

/// What changed in an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fired(String),
    Resolved(String),
}

#[derive(Debug, Clone)]
pub struct AlertBook {
    alerts: BTreeMap<String, Alert>,
    /// Windows without a finding before a firing alert resolves.
    pub resolve_after: u32,
    /// Resolved alerts kept for the API.
    pub keep_resolved: usize,
}

impl Default for AlertBook {
    fn default() -> Self {
        AlertBook {
            alerts: BTreeMap::new(),
            resolve_after: 3,
            keep_resolved: 500,
        }
    }
}

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

/// FNV-1a over the sorted labels, as hex.
fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

impl AlertBook {
    /// Takes the findings of one evaluated window of `feature` of
    /// `service` (empty when it found nothing). `extra` labels (env,
    /// endpoint) go on the alerts.
    pub fn update(
        &mut self,
        service: &str,
        feature: &str,
        extra: &BTreeMap<String, String>,
        findings: &[Finding],
        now_ms: i64,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for f in findings {
            let mut labels = extra.clone();
            labels.insert("alertname".into(), alert_name(&f.detector));
            labels.insert("service".into(), service.into());
            labels.insert("feature".into(), feature.into());
            labels.insert("detector".into(), f.detector.clone());
            let id = fingerprint(&labels);
            labels.insert(
                "severity".into(),
                match f.severity {
                    Severity::Warning => "warning",
                    Severity::Critical => "critical",
                }
                .into(),
            );
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".into(), f.message.clone());
            annotations.insert("observed".into(), format!("{}", f.observed));
            if let Some(b) = f.expected {
                annotations.insert("expected".into(), format!("[{}, {}]", b.low, b.high));
            }
            annotations.insert("since".into(), rfc3339(f.since_ms));
            annotations.insert("score".into(), format!("{:.3}", f.score));
            seen.push(id.clone());
            match self.alerts.get_mut(&id) {
                Some(a) if a.state == AlertState::Firing => {
                    // Severity can rise while it fires; it never falls.
                    if a.labels.get("severity").map(String::as_str) == Some("critical") {
                        labels.insert("severity".into(), "critical".into());
                    }
                    a.labels = labels;
                    a.annotations = annotations;
                    a.finding = f.clone();
                    a.updated_at_ms = now_ms;
                    a.quiet = 0;
                }
                _ => {
                    self.alerts.insert(
                        id.clone(),
                        Alert {
                            id: id.clone(),
                            labels,
                            annotations,
                            state: AlertState::Firing,
                            starts_at_ms: f.since_ms.min(now_ms),
                            ends_at_ms: None,
                            updated_at_ms: now_ms,
                            finding: f.clone(),
                            feature_key: Some(FeatureKey::parse(feature)),
                            ack: None,
                            quiet: 0,
                            last_sent_ms: None,
                            resolution_sent: false,
                        },
                    );
                    out.push(Transition::Fired(id));
                }
            }
        }
        for a in self.alerts.values_mut() {
            if a.state != AlertState::Firing
                || seen.contains(&a.id)
                || a.labels.get("service").map(String::as_str) != Some(service)
                || a.labels.get("feature").map(String::as_str) != Some(feature)
            {
                continue;
            }
            a.quiet += 1;
            if a.quiet >= self.resolve_after {
                a.state = AlertState::Resolved;
                a.ends_at_ms = Some(now_ms);
                a.updated_at_ms = now_ms;
                out.push(Transition::Resolved(a.id.clone()));
            }
        }
        self.prune();
        out
    }

    fn prune(&mut self) {
        let resolved: Vec<(i64, String)> = self
            .alerts
            .values()
            .filter(|a| a.state == AlertState::Resolved && a.resolution_sent)
            .map(|a| (a.updated_at_ms, a.id.clone()))
            .collect();
        if resolved.len() > self.keep_resolved {
            let mut resolved = resolved;
            resolved.sort();
            for (_, id) in resolved.iter().take(resolved.len() - self.keep_resolved) {
                self.alerts.remove(id);
            }
        }
    }

    /// Alerts a sink should be told about now: firing ones not sent for
    /// `resend`, and resolutions not sent yet. Marks them sent.
    pub fn due(&mut self, now_ms: i64, resend: Duration) -> Vec<Alert> {
        let resend_ms = resend.as_millis() as i64;
        let mut out = Vec::new();
        for a in self.alerts.values_mut() {
            let due = match a.state {
                AlertState::Firing => a.last_sent_ms.is_none_or(|t| now_ms - t >= resend_ms),
                AlertState::Resolved => !a.resolution_sent,
            };
            if due {
                a.last_sent_ms = Some(now_ms);
                if a.state == AlertState::Resolved {
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
            if let Some(a) = self.alerts.get_mut(id) {
                a.last_sent_ms = None;
                a.resolution_sent = false;
            }
        }
    }

    pub fn ack(&mut self, id: &str, by: &str, now_ms: i64) -> Option<&Alert> {
        let a = self.alerts.get_mut(id)?;
        a.ack = Some(Ack {
            by: by.to_string(),
            at_ms: now_ms,
        });
        Some(a)
    }

    /// Firing first, newest first.
    pub fn list(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.alerts.values().collect();
        v.sort_by_key(|a| (a.state != AlertState::Firing, -a.updated_at_ms));
        v
    }

    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id)
    }
}

/// RFC 3339 in UTC with milliseconds, from Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Alertmanager's v2 API.
pub struct Alertmanager {
    url: String,
    agent: ureq::Agent,
    /// How long Alertmanager keeps a firing alert that is not re-sent:
    /// a few resend intervals, as Prometheus does, so a perfpilot that
    /// dies does not leave alerts firing forever.
    pub hold: Duration,
    pub generator_url: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    generator_u_r_l: Option<&'a str>,
}

fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

fn post_json(agent: &ureq::Agent, url: &str, body: &[u8]) -> Result<(), BaselineError> {
    let resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| BaselineError::invalid(url, format!("cannot reach it: {e}")))?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text: String = resp
        .into_body()
        .read_to_string()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    Err(BaselineError::invalid(
        url,
        format!("answered {status}: {}", text.trim()),
    ))
}

impl Alertmanager {
    pub fn new(url: &str, resend: Duration) -> Self {
        Alertmanager {
            url: format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            agent: http_agent(Duration::from_secs(5)),
            hold: resend * 4,
            generator_url: None,
        }
    }

    pub fn send(&self, alerts: &[Alert], now_ms: i64) -> Result<(), BaselineError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let body: Vec<AmAlert<'_>> = alerts
            .iter()
            .map(|a| AmAlert {
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: rfc3339(a.starts_at_ms),
                ends_at: rfc3339(
                    a.ends_at_ms
                        .unwrap_or(now_ms + self.hold.as_millis() as i64),
                ),
                generator_u_r_l: self.generator_url.as_deref(),
            })
            .collect();
        let json = serde_json::to_vec(&body)
            .map_err(|e| BaselineError::invalid(&self.url, format!("encoding alerts: {e}")))?;
        post_json(&self.agent, &self.url, &json)
    }
}

/// A plain webhook: `{"version": "1", "alerts": [...]}` with each alert as
/// the API lists it.
pub struct Webhook {
    url: String,
    agent: ureq::Agent,
}

impl Webhook {
    pub fn new(url: &str) -> Self {
        Webhook {
            url: url.to_string(),
            agent: http_agent(Duration::from_secs(5)),
        }
    }

    pub fn send(&self, alerts: &[Alert]) -> Result<(), BaselineError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec(&serde_json::json!({"version": "1", "alerts": alerts}))
            .map_err(|e| BaselineError::invalid(&self.url, format!("encoding alerts: {e}")))?;
        post_json(&self.agent, &self.url, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(detector: &str, t: i64) -> Finding {
        Finding {
            detector: detector.into(),
            feature: "p99".into(),
            score: 2.0,
            severity: Severity::Warning,
            observed: 300.0,
            expected: None,
            since_ms: t,
            at_ms: t,
            message: "p99 is high".into(),
        }
    }

    #[test]
    fn fires_once_refreshes_and_resolves_after_quiet_windows() {
        let mut book = AlertBook::default();
        let none = BTreeMap::new();
        let t = book.update("checkout", "p99", &none, &[finding("band", 0)], 0);
        assert!(matches!(&t[..], [Transition::Fired(_)]));
        let id = match &t[0] {
            Transition::Fired(id) => id.clone(),
            _ => unreachable!(),
        };
        assert!(book
            .update("checkout", "p99", &none, &[finding("band", 10)], 10)
            .is_empty());
        // Another feature's quiet window does not count.
        book.update("checkout", "p50", &none, &[], 20);
        assert!(book.update("checkout", "p99", &none, &[], 20).is_empty());
        assert!(book.update("checkout", "p99", &none, &[], 30).is_empty());
        let t = book.update("checkout", "p99", &none, &[], 40);
        assert_eq!(t, vec![Transition::Resolved(id.clone())]);
        let a = book.get(&id).unwrap();
        assert_eq!(a.state, AlertState::Resolved);
        assert_eq!(a.ends_at_ms, Some(40));
        assert_eq!(a.labels["alertname"], "PerfpilotBand");
    }

    #[test]
    fn resends_while_firing_and_sends_the_resolution_once() {
        let mut book = AlertBook::default();
        let none = BTreeMap::new();
        book.update("svc", "errors", &none, &[finding("error_burst", 0)], 0);
        let resend = Duration::from_secs(60);
        assert_eq!(book.due(0, resend).len(), 1);
        assert!(book.due(30_000, resend).is_empty());
        assert_eq!(book.due(60_000, resend).len(), 1);
        for t in 1..=3 {
            book.update("svc", "errors", &none, &[], t * 10_000 + 60_000);
        }
        let due = book.due(100_000, resend);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].state, AlertState::Resolved);
        assert!(book.due(200_000, resend).is_empty());
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
