//! Alertmanager's webhook JSON (`POST /api/v1/alertmanager`) through
//! `parse_webhook_with`, then the inbox that keeps its alerts: no panic;
//! a post is within the limits it was parsed with (its size, its alert
//! count, every label and annotation); and the inbox is idempotent on
//! (fingerprint, startsAt): a retried post changes nothing.

use std::collections::HashSet;

use perfpilot_autopilot::{parse_webhook_with, Inbox, WebhookLimits, WebhookPayload};

use crate::refused;

/// Small enough for inputs of a few KiB to pass each.
fn limits() -> WebhookLimits {
    WebhookLimits {
        max_body_bytes: 16 << 10,
        max_alerts: 8,
        max_label_len: 64,
        // Above max_alerts, so one post always fits and a retry of it
        // finds every alert as it left it.
        max_inbox_alerts: 16,
    }
}

fn check_limits(body: &[u8], p: &WebhookPayload, limits: &WebhookLimits) {
    assert!(
        body.len() <= limits.max_body_bytes,
        "a post of {} bytes",
        body.len()
    );
    assert!(
        p.alerts.len() <= limits.max_alerts,
        "{} alerts past the limit",
        p.alerts.len()
    );
    let sets = [&p.group_labels, &p.common_labels, &p.common_annotations]
        .into_iter()
        .chain(p.alerts.iter().flat_map(|a| [&a.labels, &a.annotations]));
    for set in sets {
        for (k, v) in set {
            assert!(
                k.len() <= limits.max_label_len && v.len() <= limits.max_label_len,
                "label {k:?} past the length limit"
            );
        }
    }
}

pub fn run(data: &[u8]) {
    let limits = limits();
    let payload = match parse_webhook_with(data, &limits) {
        Ok(p) => p,
        Err(e) => {
            assert!(
                e.too_large || data.len() <= limits.max_body_bytes,
                "a post over the size limit refused as bad, not as too large: {e:?}"
            );
            return refused("parse_webhook_with", format!("{}: {}", e.path, e.message));
        }
    };
    check_limits(data, &payload, &limits);
    let mut inbox = Inbox::with_limit(limits.max_inbox_alerts);
    let updates = inbox.changes(&payload);
    inbox.apply(updates);
    let keys: HashSet<_> = payload
        .alerts
        .iter()
        .map(|a| (&a.fingerprint, a.starts_at))
        .collect();
    let again = inbox.changes(&payload);
    // With one alert per key, the retry finds each as it left it.
    if keys.len() == payload.alerts.len() {
        assert!(again.is_empty(), "a retried post changed {again:?}");
    }
    inbox.apply(again);
    let _ = inbox.alerts();
    let _ = inbox.forget_resolved_before_ms(i64::MAX);
}
