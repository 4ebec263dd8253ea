//! Incidents to the outside: Alertmanager's `POST /api/v2/alerts` (one
//! alert per incident, re-sent while it fires since Alertmanager forgets
//! alerts that are not repeated) and plain webhooks (the incidents as the
//! API lists them).
//!
//! The incidents themselves are [`crate::incidents`]'.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::error::BaselineError;
pub use crate::incidents::{Ack, Incident, IncidentState, Transition};

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

    pub fn send(&self, alerts: &[Incident], now_ms: i64) -> Result<(), BaselineError> {
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
                    a.resolved_at_ms
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

/// A plain webhook: `{"version": "2", "alerts": [...]}` with each
/// incident as the API lists it (its findings inside).
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

    pub fn send(&self, incidents: &[Incident]) -> Result<(), BaselineError> {
        if incidents.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec(&serde_json::json!({"version": "2", "alerts": incidents}))
            .map_err(|e| BaselineError::invalid(&self.url, format!("encoding alerts: {e}")))?;
        post_json(&self.agent, &self.url, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
