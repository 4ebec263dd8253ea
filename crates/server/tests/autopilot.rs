//! The autopilot's endpoints over HTTP through an in-process server:
//! `POST /api/v1/alertmanager` and `GET /api/v1/audit`.

mod common;

use std::path::Path;

use common::{answer, client, TestServer};
use perfpilot_server::api::{AuditResponse, WebhookResponse};
use perfpilot_server::{AutopilotHandle, ServerConfig};

/// A server on a free port with the autopilot's state in `dir` (or
/// without the autopilot).
fn start(autopilot_dir: Option<&Path>, token: Option<&str>) -> TestServer {
    TestServer::start_with(ServerConfig {
        token: token.map(str::to_string),
        autopilot: autopilot_dir
            .map(|d| AutopilotHandle::open(d).expect("opening the autopilot dir")),
        ..Default::default()
    })
}

fn read(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let (status, _, body) = answer(r);
    (status, body)
}

fn post(s: &TestServer, body: &str) -> (u16, String) {
    read(
        client()
            .post(&s.url("/api/v1/alertmanager"))
            .header("Content-Type", "application/json")
            .send(body),
    )
}

fn get(s: &TestServer, path: &str) -> (u16, String) {
    read(client().get(&s.url(path)).call())
}

fn audit(s: &TestServer, query: &str) -> AuditResponse {
    let (status, body) = get(s, &format!("/api/v1/audit{query}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("an audit answer")
}

/// Alertmanager 0.25's webhook for one firing alert.
const FIRING: &str = r#"{
  "receiver": "perfpilot",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "CheckoutHighLatency", "instance": "checkout-1:8080", "job": "checkout", "severity": "page"},
      "annotations": {"summary": "checkout p99 above 500ms"},
      "startsAt": "2026-11-22T10:15:30.123456789Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=up&g0.tab=1",
      "fingerprint": "8a5e1c4b7d2f9e03"
    }
  ],
  "groupLabels": {"alertname": "CheckoutHighLatency"},
  "commonLabels": {"alertname": "CheckoutHighLatency", "instance": "checkout-1:8080", "job": "checkout", "severity": "page"},
  "commonAnnotations": {"summary": "checkout p99 above 500ms"},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\"CheckoutHighLatency\"}",
  "truncatedAlerts": 0
}"#;

fn resolved() -> String {
    FIRING
        .replace(r#""status": "firing""#, r#""status": "resolved""#)
        .replace(
            r#""endsAt": "0001-01-01T00:00:00Z""#,
            r#""endsAt": "2026-11-22T10:25:00Z""#,
        )
}

#[test]
fn a_thousand_identical_posts_record_one_alert_and_resolution_is_recorded() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let s = start(Some(dir.path()), None);
    let (status, body) = post(&s, FIRING);
    assert_eq!(status, 200, "{body}");
    let first: WebhookResponse = serde_json::from_str(&body).expect("a webhook answer");
    assert_eq!((first.alerts, first.new), (1, 1));
    assert_eq!(first.audit_seqs, vec![1]);
    for _ in 0..1_000 {
        let (status, body) = post(&s, FIRING);
        assert_eq!(status, 200, "{body}");
        let again: WebhookResponse = serde_json::from_str(&body).expect("a webhook answer");
        assert!(again.audit_seqs.is_empty(), "{body}");
    }
    let records = audit(&s, "").records;
    assert_eq!(records.len(), 1, "one alert, one record");

    let (status, body) = post(&s, &resolved());
    assert_eq!(status, 200, "{body}");
    let r: WebhookResponse = serde_json::from_str(&body).expect("a webhook answer");
    assert_eq!(r.resolved, 1);
    let (_, body) = get(&s, "/api/v1/audit?kind=alert_received");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let recs = v["records"].as_array().expect("records");
    assert_eq!(recs.len(), 2);
    // Newest first.
    assert_eq!(recs[0]["seq"], 2);
    assert_eq!(recs[0]["change"], "resolved");
    assert_eq!(recs[0]["status"], "resolved");
    assert_eq!(recs[0]["ends_at"], "2026-11-22T10:25:00Z");
    assert_eq!(recs[1]["change"], "new");
    assert_eq!(recs[1]["alertname"], "CheckoutHighLatency");
    assert_eq!(recs[1]["labels"]["instance"], "checkout-1:8080");
    assert_eq!(recs[1]["starts_at"], "2026-11-22T10:15:30.123456789Z");
    assert_eq!(audit(&s, "?limit=1").records.len(), 1);
    assert!(audit(&s, "?kind=decision").records.is_empty());
    assert!(audit(&s, "?policy=checkout").records.is_empty());
    assert_eq!(audit(&s, "?since=now-1h").records.len(), 2);
    drop(s);

    // The log outlives the server: a restart reads it back.
    let s = start(Some(dir.path()), None);
    assert_eq!(audit(&s, "").records.len(), 2);
}

#[test]
fn malformed_webhooks_get_400_naming_the_field() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let s = start(Some(dir.path()), None);
    let cases = [
        (
            FIRING.replace("2026-11-22T10:15:30.123456789Z", "soon"),
            "alerts[0].startsAt: not an RFC 3339 time",
        ),
        (
            FIRING.replace(r#""version": "4""#, r#""version": 4"#),
            "version: expected a string, got a number",
        ),
        ("not json".to_string(), "body: not valid JSON"),
    ];
    for (body, expected) in cases {
        let (status, answer) = post(&s, &body);
        assert_eq!(status, 400, "{answer}");
        let v: serde_json::Value = serde_json::from_str(&answer).expect("a JSON error");
        let message = v["error"].as_str().expect("an error message");
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    assert!(audit(&s, "").records.is_empty(), "nothing recorded");

    for (query, expected) in [
        ("?kind=nope", "kind: unknown kind"),
        ("?limit=0", "limit: expected a number"),
        ("?since=whenever", "since:"),
    ] {
        let (status, answer) = get(&s, &format!("/api/v1/audit{query}"));
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(answer.contains(expected), "{answer} lacks {expected:?}");
    }
}

#[test]
fn without_the_autopilot_the_endpoints_say_how_to_enable_it() {
    let s = start(None, None);
    for (status, body) in [post(&s, FIRING), get(&s, "/api/v1/audit")] {
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("--autopilot-dir"), "{body}");
    }
}

#[test]
fn the_webhook_needs_the_token() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let s = start(Some(dir.path()), Some("sekrit"));
    assert_eq!(post(&s, FIRING).0, 401);
    assert_eq!(get(&s, "/api/v1/audit").0, 401);
    let (status, body) = read(
        client()
            .post(&s.url("/api/v1/alertmanager"))
            .header("Authorization", "Bearer sekrit")
            .send(FIRING),
    );
    assert_eq!(status, 200, "{body}");
}
