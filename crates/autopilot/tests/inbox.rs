//! Alertmanager webhook payloads into the inbox: parsing with errors that
//! name the field, idempotence on (fingerprint, startsAt), resolution.

use perfpilot_autopilot::inbox::{
    parse_webhook, AlertStatus, Change, Inbox, Update, WebhookPayload,
};

/// Shaped as Alertmanager 0.25's webhook posts it for a group of two
/// alerts from one Prometheus rule: firing alerts carry Go's zero time as
/// `endsAt`, times have nanoseconds.
const FIRING: &str = r#"{
  "receiver": "perfpilot",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "CheckoutHighLatency", "instance": "checkout-1:8080", "job": "checkout", "severity": "page"},
      "annotations": {"summary": "checkout p99 above 500ms", "description": "p99 is 1.2s on checkout-1:8080"},
      "startsAt": "2026-11-22T10:15:30.123456789Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=histogram_quantile%280.99%2C+rate%28http_request_duration_seconds_bucket%5B1m%5D%29%29+%3E+0.5&g0.tab=1",
      "fingerprint": "8a5e1c4b7d2f9e03"
    },
    {
      "status": "firing",
      "labels": {"alertname": "CheckoutHighLatency", "instance": "checkout-2:8080", "job": "checkout", "severity": "page"},
      "annotations": {"summary": "checkout p99 above 500ms", "description": "p99 is 0.9s on checkout-2:8080"},
      "startsAt": "2026-11-22T10:15:45.5+00:00",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=histogram_quantile%280.99%2C+rate%28http_request_duration_seconds_bucket%5B1m%5D%29%29+%3E+0.5&g0.tab=1",
      "fingerprint": "1f0c6d2e9a8b4c57"
    }
  ],
  "groupLabels": {"alertname": "CheckoutHighLatency"},
  "commonLabels": {"alertname": "CheckoutHighLatency", "job": "checkout", "severity": "page"},
  "commonAnnotations": {"summary": "checkout p99 above 500ms"},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}/{severity=\"page\"}:{alertname=\"CheckoutHighLatency\"}",
  "truncatedAlerts": 0
}"#;

fn resolved_first() -> String {
    // The first alert resolved, as Alertmanager sends it: status and
    // endsAt change, the second stays firing in the same group.
    FIRING
        .replacen(
            r#""status": "firing",
      "labels": {"alertname": "CheckoutHighLatency", "instance": "checkout-1:8080""#,
            r#""status": "resolved",
      "labels": {"alertname": "CheckoutHighLatency", "instance": "checkout-1:8080""#,
            1,
        )
        .replacen(
            r#""endsAt": "0001-01-01T00:00:00Z""#,
            r#""endsAt": "2026-11-22T10:25:00.5Z""#,
            1,
        )
}

/// What the server does with a post: its changes, applied.
fn record(inbox: &mut Inbox, payload: &WebhookPayload) -> Vec<Update> {
    let updates = inbox.changes(payload);
    inbox.apply(updates.clone());
    updates
}

/// Whether an occurrence of the alert named `name` is firing.
fn firing(inbox: &Inbox, name: &str) -> bool {
    inbox
        .alerts()
        .iter()
        .any(|a| a.alert.status == AlertStatus::Firing && a.alert.name() == Some(name))
}

/// Whether the alert named `name` was ever posted.
fn knows(inbox: &Inbox, name: &str) -> bool {
    inbox.alerts().iter().any(|a| a.alert.name() == Some(name))
}

#[test]
fn parses_a_real_shaped_payload() {
    let p = parse_webhook(FIRING.as_bytes()).expect("a valid payload");
    assert_eq!(p.receiver, "perfpilot");
    assert_eq!(p.status, AlertStatus::Firing);
    assert_eq!(p.alerts.len(), 2);
    assert_eq!(p.group_labels["alertname"], "CheckoutHighLatency");
    assert_eq!(p.external_url, "http://alertmanager:9093");
    assert_eq!(p.truncated_alerts, 0);
    let a = &p.alerts[0];
    assert_eq!(a.name(), Some("CheckoutHighLatency"));
    assert_eq!(a.fingerprint, "8a5e1c4b7d2f9e03");
    assert_eq!(a.starts_at.unix_timestamp(), 1_795_342_530);
    assert_eq!(a.starts_at.nanosecond(), 123_456_789);
    assert_eq!(a.ends_at, None, "Go's zero time is no end");
    assert_eq!(a.labels["instance"], "checkout-1:8080");
}

#[test]
fn the_same_post_twice_or_a_thousand_times_is_one_alert_each() {
    let p = parse_webhook(FIRING.as_bytes()).expect("a valid payload");
    let mut inbox = Inbox::new();
    let first = record(&mut inbox, &p);
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|u| u.change == Change::New));
    assert!(
        record(&mut inbox, &p).is_empty(),
        "a second post changes nothing"
    );
    for _ in 0..1_000 {
        let again = parse_webhook(FIRING.as_bytes()).expect("a valid payload");
        assert!(record(&mut inbox, &again).is_empty());
    }
    assert_eq!(inbox.len(), 2);
    assert!(firing(&inbox, "CheckoutHighLatency"));
    assert!(!firing(&inbox, "SomethingElse"));
    assert!(!knows(&inbox, "SomethingElse"));
}

#[test]
fn a_resolved_post_resolves_and_a_late_firing_retry_does_not_undo_it() {
    let mut inbox = Inbox::new();
    record(
        &mut inbox,
        &parse_webhook(FIRING.as_bytes()).expect("valid"),
    );
    let resolved = parse_webhook(resolved_first().as_bytes()).expect("valid");
    let updates = record(&mut inbox, &resolved);
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].change, Change::Resolved);
    assert_eq!(updates[0].alert.alert.fingerprint, "8a5e1c4b7d2f9e03");
    assert!(updates[0].alert.alert.ends_at.is_some());
    // The second instance still fires.
    assert!(firing(&inbox, "CheckoutHighLatency"));
    assert!(
        record(&mut inbox, &resolved).is_empty(),
        "resolving again is no change"
    );
    // A retried firing post that arrives late changes nothing.
    assert!(record(
        &mut inbox,
        &parse_webhook(FIRING.as_bytes()).expect("valid")
    )
    .is_empty());
    // Both resolved: no longer firing.
    let both = resolved_first().replace(r#""status": "firing""#, r#""status": "resolved""#);
    let updates = record(&mut inbox, &parse_webhook(both.as_bytes()).expect("valid"));
    assert_eq!(updates.len(), 1);
    assert!(!firing(&inbox, "CheckoutHighLatency"));
    assert!(knows(&inbox, "CheckoutHighLatency"));
    assert_eq!(inbox.alerts().len(), 2);
}

#[test]
fn a_new_starts_at_is_a_new_occurrence() {
    let mut inbox = Inbox::new();
    record(
        &mut inbox,
        &parse_webhook(resolved_first().as_bytes()).expect("valid"),
    );
    let refired = FIRING.replacen("2026-11-22T10:15:30.123456789Z", "2026-11-22T11:00:00Z", 1);
    let updates = record(
        &mut inbox,
        &parse_webhook(refired.as_bytes()).expect("valid"),
    );
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].change, Change::New);
    assert_eq!(inbox.len(), 3);
    // The same instant written with another offset is the same occurrence.
    let same = refired.replacen("2026-11-22T11:00:00Z", "2026-11-22T12:00:00+01:00", 1);
    assert!(record(&mut inbox, &parse_webhook(same.as_bytes()).expect("valid")).is_empty());
}

#[test]
fn changed_annotations_are_an_update_and_a_moving_ends_at_is_not() {
    let mut inbox = Inbox::new();
    record(
        &mut inbox,
        &parse_webhook(FIRING.as_bytes()).expect("valid"),
    );
    let later_end = FIRING.replace(
        r#""endsAt": "0001-01-01T00:00:00Z""#,
        r#""endsAt": "2026-11-22T10:30:00Z""#,
    );
    assert!(record(
        &mut inbox,
        &parse_webhook(later_end.as_bytes()).expect("valid")
    )
    .is_empty());
    let new_value = FIRING.replace("p99 is 1.2s", "p99 is 2.5s");
    let updates = record(
        &mut inbox,
        &parse_webhook(new_value.as_bytes()).expect("valid"),
    );
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].change, Change::Updated);
    assert_eq!(
        updates[0].alert.alert.annotations["description"],
        "p99 is 2.5s on checkout-1:8080"
    );
}

#[test]
fn duplicates_within_one_post_are_one_alert() {
    let p = parse_webhook(FIRING.as_bytes()).expect("valid");
    let mut doubled = p.clone();
    doubled.alerts.extend(p.alerts.iter().cloned());
    let mut inbox = Inbox::new();
    let updates = record(&mut inbox, &doubled);
    assert_eq!(updates.len(), 2);
    assert_eq!(inbox.len(), 2);
}

fn error_of(body: &str) -> String {
    match parse_webhook(body.as_bytes()) {
        Ok(p) => panic!("accepted {body}: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_payloads_name_the_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            FIRING.replacen("2026-11-22T10:15:45.5+00:00", "yesterday", 1),
            "alerts[1].startsAt: not an RFC 3339 time: \"yesterday\"",
        ),
        (
            FIRING.replacen(r#""fingerprint": "1f0c6d2e9a8b4c57""#, r#""fp": "x""#, 1),
            "alerts[1].fingerprint: missing",
        ),
        (
            FIRING.replacen(r#""severity": "page"}"#, r#""severity": 3}"#, 1),
            "alerts[0].labels.severity: expected a string, got a number",
        ),
        (
            FIRING.replacen(r#""status": "firing""#, r#""status": "burning""#, 1),
            "status: expected \"firing\" or \"resolved\", got \"burning\"",
        ),
        (
            FIRING.replacen(r#""version": "4""#, r#""version": "3""#, 1),
            "version: unsupported payload version \"3\"",
        ),
        (
            FIRING
                .replacen(r#""alerts": ["#, r#""alerts": {"x": ["#, 1)
                .replacen(
                    r#"],
  "groupLabels""#,
                    r#"]},
  "groupLabels""#,
                    1,
                ),
            "alerts: expected an array, got an object",
        ),
        (
            FIRING.replacen(r#""truncatedAlerts": 0"#, r#""truncatedAlerts": -1"#, 1),
            "truncatedAlerts: expected a non-negative integer",
        ),
        (
            FIRING.replacen(
                r#""endsAt": "0001-01-01T00:00:00Z""#,
                r#""endsAt": "2026-13-01T00:00:00Z""#,
                1,
            ),
            "alerts[0].endsAt: not an RFC 3339 time",
        ),
        (
            "[1, 2]".to_string(),
            "body: expected a JSON object, got an array",
        ),
        ("{\"version\": \"4\"".to_string(), "body: not valid JSON"),
        ("{}".to_string(), "version: missing"),
        (
            FIRING.replacen(
                r#""labels": {"alertname": "CheckoutHighLatency", "instance": "checkout-2:8080", "job": "checkout", "severity": "page"},"#,
                "",
                1,
            ),
            "alerts[1].labels: missing: every alert Alertmanager sends has labels",
        ),
        (
            FIRING.replacen(
                r#""labels": {"alertname": "CheckoutHighLatency", "instance": "checkout-1:8080", "job": "checkout", "severity": "page"}"#,
                r#""labels": {}"#,
                1,
            ),
            "alerts[0].labels: empty: every alert Alertmanager sends has labels",
        ),
        (
            r#"{"version": "4", "status": "firing", "alerts": [7]}"#.to_string(),
            "alerts[0]: expected an object, got a number",
        ),
    ];
    for (body, expected) in cases {
        let e = error_of(&body);
        assert!(
            e.starts_with(expected),
            "{e:?} should start with {expected:?}"
        );
    }
}

#[test]
fn webhook_limits_are_checked_before_the_alerts_are_read() {
    use perfpilot_autopilot::inbox::{parse_webhook_with, WebhookLimits};
    let limits = WebhookLimits {
        max_body_bytes: FIRING.len() * 3,
        max_alerts: 2,
        max_label_len: 32,
        ..WebhookLimits::default()
    };
    assert!(parse_webhook_with(FIRING.as_bytes(), &limits).is_ok());
    // Three alerts: refused as a whole (413), before any is parsed: the
    // third is not even valid.
    let v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
    let mut three = v.clone();
    let alert = v["alerts"][0].clone();
    three["alerts"] = serde_json::json!([alert.clone(), alert, "not an alert"]);
    let err = parse_webhook_with(three.to_string().as_bytes(), &limits).unwrap_err();
    assert!(err.too_large, "{err}");
    assert_eq!(
        err.to_string(),
        "alerts: 3 alerts; the limit is 2 a post (--max-webhook-alerts): set max_alerts in \
         Alertmanager's webhook_configs to at most that"
    );
    // A body over the size limit is not parsed at all.
    let big = format!("{FIRING}{}", " ".repeat(FIRING.len() * 3));
    let err = parse_webhook_with(big.as_bytes(), &limits).unwrap_err();
    assert!(err.too_large && err.path == "body", "{err}");
    assert!(err.message.ends_with("(--max-webhook-body-mib)"), "{err}");
    // Long label and annotation values and names, wherever they are.
    let mut long = v.clone();
    long["commonLabels"]["team"] = serde_json::json!("x".repeat(33));
    let err = parse_webhook_with(long.to_string().as_bytes(), &limits).unwrap_err();
    assert!(!err.too_large);
    assert_eq!(
        err.to_string(),
        "commonLabels.team: the value is 33 bytes long; the limit is 32 (--max-alert-label-len)"
    );
    let mut long = v;
    long["alerts"][0]["annotations"]["y".repeat(40)] = serde_json::json!("v");
    let err = parse_webhook_with(long.to_string().as_bytes(), &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "alerts[0].annotations.{}…: the name is 40 bytes long; the limit is 32 \
             (--max-alert-label-len)",
            "y".repeat(32)
        )
    );
}

/// A post of one alert named `name`, firing or resolved.
fn one_alert(name: &str, status: &str, starts: &str, ends: &str) -> String {
    format!(
        r#"{{"receiver": "perfpilot", "status": "{status}", "alerts": [{{"status": "{status}",
        "labels": {{"alertname": "{name}"}}, "annotations": {{}}, "startsAt": "{starts}",
        "endsAt": "{ends}", "fingerprint": "fp-{name}"}}], "groupLabels": {{}},
        "commonLabels": {{}}, "commonAnnotations": {{}}, "externalURL": "http://am:9093",
        "version": "4", "groupKey": "{{}}", "truncatedAlerts": 0}}"#
    )
}

#[test]
fn the_inbox_is_bounded_across_posts_forgetting_resolved_then_oldest_firing() {
    let mut inbox = Inbox::with_limit(3);
    let zero = "0001-01-01T00:00:00Z";
    for (i, name) in ["A", "B", "C"].iter().enumerate() {
        let body = one_alert(name, "firing", &format!("2026-11-22T10:0{i}:00Z"), zero);
        record(
            &mut inbox,
            &parse_webhook(body.as_bytes()).expect("a valid post"),
        );
    }
    // B resolves: it is the first to go when D arrives.
    let body = one_alert(
        "B",
        "resolved",
        "2026-11-22T10:01:00Z",
        "2026-11-22T10:30:00Z",
    );
    record(
        &mut inbox,
        &parse_webhook(body.as_bytes()).expect("a valid post"),
    );
    let body = one_alert("D", "firing", "2026-11-22T10:03:00Z", zero);
    let payload = parse_webhook(body.as_bytes()).expect("a valid post");
    let updates = inbox.changes(&payload);
    assert_eq!(inbox.apply(updates), 1);
    assert_eq!(inbox.len(), 3);
    assert!(!knows(&inbox, "B"), "the resolved occurrence goes first");
    assert!(firing(&inbox, "A") && firing(&inbox, "C") && firing(&inbox, "D"));
    // Only firing ones left: the one that started first goes.
    for name in ["E", "F"] {
        let body = one_alert(name, "firing", "2026-11-22T10:05:00Z", zero);
        record(
            &mut inbox,
            &parse_webhook(body.as_bytes()).expect("a valid post"),
        );
    }
    assert_eq!(inbox.len(), 3);
    assert!(!knows(&inbox, "A") && !knows(&inbox, "C"));
    assert!(firing(&inbox, "D") && firing(&inbox, "E") && firing(&inbox, "F"));
}
