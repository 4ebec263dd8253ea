//! Alertmanager's webhook JSON (`POST /api/v1/alertmanager`), then the
//! inbox that keeps its alerts: no panic, and the inbox is idempotent on
//! (fingerprint, startsAt): a retried post changes nothing.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use perfpilot_autopilot::{parse_webhook, Inbox};

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = parse_webhook(data) else {
        return;
    };
    let mut inbox = Inbox::new();
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
});
