//! Alertmanager's webhook (payload version 4) and the [`Inbox`] holding the
//! current state of every alert it reported.
//!
//! Alertmanager re-sends a group's alerts every `group_interval` and retries
//! failed posts, so the same alert arrives many times and posts may arrive
//! out of order. An alert is identified by its fingerprint (a hash of its
//! labels) and `startsAt`: the same pair is the same occurrence, a new
//! `startsAt` is a new occurrence of the same alert.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub type Labels = BTreeMap<String, String>;

/// What is wrong with a payload, and where (`alerts[2].startsAt`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PayloadError {
    pub path: String,
    pub message: String,
    /// The post as a whole is over a size limit (HTTP 413), rather than
    /// wrong somewhere (400).
    pub too_large: bool,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> PayloadError {
    PayloadError {
        path: path.into(),
        message: message.into(),
        too_large: false,
    }
}

/// What one webhook post may hold; each is a `perfpilot server` flag of
/// the same name, which the errors name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookLimits {
    /// Bytes of the post (`--max-webhook-body-mib`): it is parsed whole,
    /// and parsed JSON takes several times its size.
    pub max_body_bytes: usize,
    /// Alerts in one post (`--max-webhook-alerts`); Alertmanager's
    /// `max_alerts` in the receiver's `webhook_configs` keeps posts
    /// within it (the rest are counted in `truncatedAlerts`).
    pub max_alerts: usize,
    /// Bytes of each label or annotation name and value, of the alerts
    /// and of the post (`--max-alert-label-len`).
    pub max_label_len: usize,
    /// Alert occurrences the inbox holds across posts
    /// (`--max-inbox-alerts`); past it the oldest resolved ones are
    /// forgotten first, then the oldest firing ones.
    pub max_inbox_alerts: usize,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        WebhookLimits {
            max_body_bytes: 8 << 20,
            max_alerts: 1000,
            max_label_len: 16 << 10,
            max_inbox_alerts: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A webhook post as Alertmanager sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookPayload {
    pub receiver: String,
    pub status: AlertStatus,
    pub alerts: Vec<WebhookAlert>,
    pub group_labels: Labels,
    pub common_labels: Labels,
    pub common_annotations: Labels,
    pub external_url: String,
    pub group_key: String,
    /// Alerts left out of this post by the receiver's `max_alerts`.
    pub truncated_alerts: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAlert {
    pub status: AlertStatus,
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: OffsetDateTime,
    /// None for Go's zero time, which Alertmanager sends for "not ended".
    pub ends_at: Option<OffsetDateTime>,
    pub generator_url: String,
    pub fingerprint: String,
}

impl WebhookAlert {
    pub fn name(&self) -> Option<&str> {
        self.labels.get("alertname").map(String::as_str)
    }
}

/// Parses a webhook body within [`WebhookLimits::default`]; the error
/// names the first offending field.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookPayload, PayloadError> {
    parse_webhook_with(body, &WebhookLimits::default())
}

/// Parses a webhook body within `limits`: its size before it is parsed,
/// the number of alerts before any is read, label sizes as they are
/// read.
pub fn parse_webhook_with(
    body: &[u8],
    limits: &WebhookLimits,
) -> Result<WebhookPayload, PayloadError> {
    if body.len() > limits.max_body_bytes {
        return Err(PayloadError {
            too_large: true,
            ..err(
                "body",
                format!(
                    "{} bytes; the limit is {} (--max-webhook-body-mib)",
                    body.len(),
                    limits.max_body_bytes
                ),
            )
        });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| err("body", format!("not valid JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(err(
            "body",
            format!("expected a JSON object, got {}", kind(&value)),
        ));
    };
    let version = string(&top, "", "version", true)?;
    if version != "4" {
        return Err(err(
            "version",
            format!("unsupported payload version {version:?}: only \"4\" (Alertmanager 0.x) is understood"),
        ));
    }
    let alerts_value = top.get("alerts").ok_or_else(|| err("alerts", "missing"))?;
    let Value::Array(items) = alerts_value else {
        return Err(err(
            "alerts",
            format!("expected an array, got {}", kind(alerts_value)),
        ));
    };
    if items.len() > limits.max_alerts {
        return Err(PayloadError {
            too_large: true,
            ..err(
                "alerts",
                format!(
                    "{} alerts; the limit is {} a post (--max-webhook-alerts): set max_alerts \
                     in Alertmanager's webhook_configs to at most that",
                    items.len(),
                    limits.max_alerts
                ),
            )
        });
    }
    let alerts = items
        .iter()
        .enumerate()
        .map(|(i, v)| parse_alert(&format!("alerts[{i}]"), v, limits))
        .collect::<Result<Vec<_>, _>>()?;
    let truncated_alerts = match top.get("truncatedAlerts") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or_else(|| {
            err(
                "truncatedAlerts",
                format!("expected a non-negative integer, got {}", kind(v)),
            )
        })?,
    };
    Ok(WebhookPayload {
        receiver: string(&top, "", "receiver", false)?,
        status: status(&top, "")?,
        alerts,
        group_labels: labels(&top, "", "groupLabels", limits)?,
        common_labels: labels(&top, "", "commonLabels", limits)?,
        common_annotations: labels(&top, "", "commonAnnotations", limits)?,
        external_url: string(&top, "", "externalURL", false)?,
        group_key: string(&top, "", "groupKey", false)?,
        truncated_alerts,
    })
}

fn parse_alert(
    path: &str,
    value: &Value,
    limits: &WebhookLimits,
) -> Result<WebhookAlert, PayloadError> {
    let Value::Object(o) = value else {
        return Err(err(
            path,
            format!("expected an object, got {}", kind(value)),
        ));
    };
    let fingerprint = string(o, path, "fingerprint", true)?;
    if fingerprint.is_empty() {
        return Err(err(field(path, "fingerprint"), "empty"));
    }
    let starts_at = time(o, path, "startsAt", true)?.ok_or_else(|| {
        err(
            field(path, "startsAt"),
            "the zero time: an alert must start",
        )
    })?;
    // Alertmanager identifies an alert by its labels (the fingerprint
    // hashes them) and never sends one without: a post that does is not
    // from Alertmanager, and an alert without an `alertname` could match
    // no policy.
    if matches!(o.get("labels"), None | Some(Value::Null)) {
        return Err(err(
            field(path, "labels"),
            "missing: every alert Alertmanager sends has labels (`alertname` at least)",
        ));
    }
    let alert_labels = labels(o, path, "labels", limits)?;
    if alert_labels.is_empty() {
        return Err(err(
            field(path, "labels"),
            "empty: every alert Alertmanager sends has labels (`alertname` at least)",
        ));
    }
    Ok(WebhookAlert {
        status: status(o, path)?,
        labels: alert_labels,
        annotations: labels(o, path, "annotations", limits)?,
        starts_at,
        ends_at: time(o, path, "endsAt", false)?,
        generator_url: string(o, path, "generatorURL", false)?,
        fingerprint,
    })
}

fn field(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field; absent or null optional fields read as "".
fn string(
    o: &Map<String, Value>,
    path: &str,
    name: &str,
    required: bool,
) -> Result<String, PayloadError> {
    match o.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        None => Err(err(field(path, name), "missing")),
        Some(v) => Err(err(
            field(path, name),
            format!("expected a string, got {}", kind(v)),
        )),
    }
}

fn status(o: &Map<String, Value>, path: &str) -> Result<AlertStatus, PayloadError> {
    match string(o, path, "status", true)?.as_str() {
        "firing" => Ok(AlertStatus::Firing),
        "resolved" => Ok(AlertStatus::Resolved),
        other => Err(err(
            field(path, "status"),
            format!("expected \"firing\" or \"resolved\", got {other:?}"),
        )),
    }
}

fn labels(
    o: &Map<String, Value>,
    path: &str,
    name: &str,
    limits: &WebhookLimits,
) -> Result<Labels, PayloadError> {
    let here = field(path, name);
    let too_long = |what: &str, len: usize| {
        format!(
            "{what} is {len} bytes long; the limit is {} (--max-alert-label-len)",
            limits.max_label_len
        )
    };
    match o.get(name) {
        None | Some(Value::Null) => Ok(Labels::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                if k.len() > limits.max_label_len {
                    let start: String = k.chars().take(32).collect();
                    return Err(err(
                        format!("{here}.{start}…"),
                        too_long("the name", k.len()),
                    ));
                }
                match v {
                    Value::String(s) if s.len() > limits.max_label_len => {
                        Err(err(format!("{here}.{k}"), too_long("the value", s.len())))
                    }
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(err(
                        format!("{here}.{k}"),
                        format!("expected a string, got {}", kind(v)),
                    )),
                }
            })
            .collect(),
        Some(v) => Err(err(
            here,
            format!("expected an object of strings, got {}", kind(v)),
        )),
    }
}

/// An RFC 3339 time; Go's zero time (year 1) reads as None.
fn time(
    o: &Map<String, Value>,
    path: &str,
    name: &str,
    required: bool,
) -> Result<Option<OffsetDateTime>, PayloadError> {
    let s = string(o, path, name, required)?;
    if s.is_empty() && !required {
        return Ok(None);
    }
    let t = OffsetDateTime::parse(&s, &Rfc3339)
        .map_err(|_| err(field(path, name), format!("not an RFC 3339 time: {s:?}")))?;
    Ok((t.year() > 1).then_some(t))
}

/// Formats a time as RFC 3339 (UTC offsets kept as given).
pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| format!("{}", t.unix_timestamp()))
}

/// The current state of one occurrence of an alert: the alert as the
/// post that last changed it had it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxAlert {
    pub alert: WebhookAlert,
    /// The receiver of that post.
    pub receiver: String,
}

impl InboxAlert {
    fn key(&self) -> Key {
        (self.alert.fingerprint.clone(), self.alert.starts_at)
    }
}

/// How a post changed an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A fingerprint and startsAt not seen before.
    New,
    /// Was firing, now resolved.
    Resolved,
    /// Still firing, with other labels or annotations (annotations often
    /// carry the current value).
    Updated,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Resolved => "resolved",
            Change::Updated => "updated",
        }
    }
}

/// One alert a post changes, with its state after the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub change: Change,
    pub alert: InboxAlert,
}

type Key = (String, OffsetDateTime);

/// The current state of the alert occurrences posted so far, at most
/// [`WebhookLimits::max_inbox_alerts`] of them.
#[derive(Debug, Clone)]
pub struct Inbox {
    alerts: HashMap<Key, InboxAlert>,
    limit: usize,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::with_limit(WebhookLimits::default().max_inbox_alerts)
    }
}

impl Inbox {
    pub fn new() -> Inbox {
        Inbox::default()
    }

    /// An inbox that holds at most `limit` occurrences (at least one).
    pub fn with_limit(limit: usize) -> Inbox {
        Inbox {
            alerts: HashMap::new(),
            limit: limit.max(1),
        }
    }

    /// What `payload` would change, without changing anything: callers
    /// that must record changes durably first (the audit log) apply them
    /// only once recorded, so a failed write leaves the post to be retried.
    pub fn changes(&self, payload: &WebhookPayload) -> Vec<Update> {
        let mut planned: HashMap<Key, usize> = HashMap::new();
        let mut updates: Vec<Update> = Vec::new();
        for a in &payload.alerts {
            let key = (a.fingerprint.clone(), a.starts_at);
            let current = match planned.get(&key) {
                Some(&i) => updates.get(i).map(|u| &u.alert),
                None => self.alerts.get(&key),
            };
            let Some(change) = change(current, a) else {
                continue;
            };
            let alert = InboxAlert {
                alert: a.clone(),
                receiver: payload.receiver.clone(),
            };
            match planned.get(&key) {
                Some(&i) => {
                    if let Some(u) = updates.get_mut(i) {
                        // New stays new: the first record of it is this one.
                        if u.change != Change::New {
                            u.change = change;
                        }
                        u.alert = alert;
                    }
                }
                None => {
                    planned.insert(key, updates.len());
                    updates.push(Update { change, alert });
                }
            }
        }
        updates
    }

    /// Changes the limit; the next [`Self::apply`] enforces it.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// Makes the [`Self::changes`] of a post the current state, then
    /// forgets the oldest occurrences past the limit (resolved ones first);
    /// returns how many were forgotten. A later post about a forgotten
    /// occurrence reads as new.
    pub fn apply(&mut self, updates: Vec<Update>) -> usize {
        for u in updates {
            self.alerts.insert(u.alert.key(), u.alert);
        }
        let excess = self.alerts.len().saturating_sub(self.limit);
        if excess == 0 {
            return 0;
        }
        let mut keys: Vec<(bool, OffsetDateTime, Key)> = self
            .alerts
            .iter()
            .map(|(k, InboxAlert { alert: a, .. })| {
                let firing = a.status == AlertStatus::Firing;
                (firing, a.ends_at.unwrap_or(a.starts_at), k.clone())
            })
            .collect();
        // Resolved before firing, then by when they ended (or started).
        keys.select_nth_unstable_by(excess - 1, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, k) in keys.into_iter().take(excess) {
            self.alerts.remove(&k);
        }
        excess
    }

    /// Every occurrence, firing first, then newest first.
    pub fn alerts(&self) -> Vec<&InboxAlert> {
        let mut all: Vec<&InboxAlert> = self.alerts.values().collect();
        all.sort_by(|InboxAlert { alert: a, .. }, InboxAlert { alert: b, .. }| {
            (a.status == AlertStatus::Resolved)
                .cmp(&(b.status == AlertStatus::Resolved))
                .then(b.starts_at.cmp(&a.starts_at))
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        all
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Forgets resolved occurrences that ended before `before`, to bound
    /// memory. A retried post for one of them afterwards reads as new.
    pub fn forget_resolved(&mut self, before: OffsetDateTime) -> usize {
        let n = self.alerts.len();
        self.alerts.retain(|_, InboxAlert { alert: a, .. }| {
            a.status == AlertStatus::Firing || a.ends_at.is_none_or(|end| end >= before)
        });
        n - self.alerts.len()
    }
    /// [`Self::forget_resolved`] with a Unix millisecond, for callers
    /// without a time library.
    pub fn forget_resolved_before_ms(&mut self, before_ms: i64) -> usize {
        match OffsetDateTime::from_unix_timestamp_nanos(i128::from(before_ms) * 1_000_000) {
            Ok(before) => self.forget_resolved(before),
            Err(_) => 0,
        }
    }
}

/// How `incoming` changes `current`, or None when it changes nothing.
fn change(current: Option<&InboxAlert>, incoming: &WebhookAlert) -> Option<Change> {
    let Some(InboxAlert { alert: current, .. }) = current else {
        return Some(Change::New);
    };
    match (current.status, incoming.status) {
        // A resolved occurrence does not fire again with the same startsAt
        // (a re-fire starts anew): a firing post now is a late retry.
        (AlertStatus::Resolved, _) => None,
        (AlertStatus::Firing, AlertStatus::Resolved) => Some(Change::Resolved),
        (AlertStatus::Firing, AlertStatus::Firing) => {
            // endsAt moves on every re-send while firing: not a change.
            (current.labels != incoming.labels || current.annotations != incoming.annotations)
                .then_some(Change::Updated)
        }
    }
}
