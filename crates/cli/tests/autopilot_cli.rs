//! `perfpilot server --autopilot-dir`: Alertmanager's webhooks in, the
//! audit log out, through the binary.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::perfpilot;

#[test]
fn server_receives_alertmanager_webhooks_into_its_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = perfpilot()
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.path().join("data"))
        .arg("--autopilot-dir")
        .arg(dir.path().join("autopilot"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let ready = Instant::now() + Duration::from_secs(30);
    while ureq::get(format!("{base}/healthz")).call().is_err() {
        assert!(Instant::now() < ready, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let payload = r#"{"receiver":"perfpilot","status":"firing","alerts":[{"status":"firing",
        "labels":{"alertname":"CheckoutHighLatency","service":"checkout"},"annotations":{},
        "startsAt":"2026-11-22T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",
        "generatorURL":"http://prometheus/graph","fingerprint":"a1b2c3d4e5f60718"}],
        "groupLabels":{"alertname":"CheckoutHighLatency"},"commonLabels":{},"commonAnnotations":{},
        "externalURL":"http://alertmanager:9093","version":"4","groupKey":"{}:{alertname=\"CheckoutHighLatency\"}",
        "truncatedAlerts":0}"#;
    for _ in 0..3 {
        ureq::post(format!("{base}/api/v1/alertmanager"))
            .header("Content-Type", "application/json")
            .send(payload)
            .unwrap();
    }
    let bad = ureq::post(format!("{base}/api/v1/alertmanager"))
        .config()
        .http_status_as_error(false)
        .build()
        .send(r#"{"version": "4", "alerts": [{"startsAt": "yesterday"}]}"#)
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let audit: serde_json::Value = serde_json::from_str(
        &ureq::get(format!("{base}/api/v1/audit"))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    // Posted three times, recorded once.
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit:#}");
    assert_eq!(records[0]["alertname"], "CheckoutHighLatency");
    assert!(dir.path().join("autopilot/audit.jsonl").is_file());
}
