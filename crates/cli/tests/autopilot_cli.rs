//! `perfpilot server --autopilot-dir`: Alertmanager's webhooks in, the
//! audit log out, through the binary.

mod common;

use std::time::Duration;

use common::alerting::{free_port, labels, wait_until, webhook};
use common::{action, perfpilot, policy, touch, ServerProcess};

#[test]
fn server_receives_alertmanager_webhooks_into_its_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &[
            "--autopilot-dir".as_ref(),
            dir.path().join("autopilot").as_os_str(),
        ],
    );
    let payload = &firing();
    for _ in 0..3 {
        assert_eq!(server.post_json("/api/v1/alertmanager", payload).0, 200);
    }
    let (bad, why) = server.post_json(
        "/api/v1/alertmanager",
        r#"{"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "X"},
            "startsAt": "yesterday", "fingerprint": "f"}]}"#,
    );
    assert_eq!(bad, 400);
    let why = why["error"].as_str().unwrap();
    assert!(why.contains("alerts[0].startsAt"), "{why}");
    let audit = server.get_json("/api/v1/audit");
    drop(server);
    // Posted three times, recorded once.
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit:#}");
    assert_eq!(records[0]["alertname"], "CheckoutHighLatency");
    assert!(dir.path().join("autopilot/audit.jsonl").is_file());
}

fn start(dir: &std::path::Path, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<std::ffi::OsString> = vec!["--policies".into(), dir.join("policies").into()];
    args.extend(extra.iter().map(Into::into));
    ServerProcess::start(dir, &args)
}

/// A policy that touches `marker` while CheckoutHighLatency fires, and an
/// invalid file next to it that must not stop it from loading.
fn write_policies(dir: &std::path::Path, approval: &str) -> std::path::PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let marker = dir.join("marker");
    std::fs::write(
        policies.join("checkout.yaml"),
        policy(
            "checkout-latency",
            "checkout",
            &action(
                "mark",
                "alert(\"CheckoutHighLatency\").firing",
                touch(&marker),
                &[&format!("approval: {approval}")],
            ),
            "",
        ),
    )
    .unwrap();
    std::fs::write(
        policies.join("broken.yml"),
        "kind: AutopilotPolicy\nspec: 3\n",
    )
    .unwrap();
    marker
}

/// CheckoutHighLatency firing, for the checkout service.
fn firing() -> String {
    webhook(
        &labels(&[
            ("alertname", "CheckoutHighLatency"),
            ("service", "checkout"),
        ]),
        "firing",
        "2026-11-22T10:00:00Z",
        "a1b2c3d4e5f60718",
    )
}

/// How long to wait for what the server does on its own.
const PATIENCE: Duration = Duration::from_secs(10);

fn without_policy_changes(records: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    records
        .into_iter()
        .filter(|r| r["kind"] != "policy_change")
        .collect()
}

fn kinds(records: &[serde_json::Value]) -> Vec<&str> {
    records.iter().filter_map(|r| r["kind"].as_str()).collect()
}

#[test]
fn dry_run_records_the_decision_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = write_policies(dir.path(), "auto");
    let server = start(dir.path(), &[]);
    assert_eq!(server.post_json("/api/v1/alertmanager", &firing()).0, 200);
    let decision = wait_until(
        "a decision",
        PATIENCE,
        || server.context(),
        || {
            server
                .audit("")
                .into_iter()
                .find(|r| r["kind"] == "decision")
        },
    );
    assert_eq!(decision["mode"], "dry-run", "{decision:#}");
    assert_eq!(decision["policy"], "checkout-latency");
    assert_eq!(decision["policy_version"], "1");
    assert_eq!(
        decision["condition"],
        "alert(\"CheckoutHighLatency\").firing"
    );
    assert!(!decision["readings"].as_array().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!marker.exists(), "dry-run ran the action");
    assert!(!kinds(&server.audit("")).contains(&"action_run"));
    let actions = server.get_json("/api/v1/actions");
    assert_eq!(actions["mode"], "dry-run");
    assert_eq!(actions["recent"][0]["status"], "dry-run");
}

#[test]
fn enforce_with_auto_approval_runs_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let marker = write_policies(dir.path(), "auto");
    let server = start(dir.path(), &["--autopilot", "enforce"]);
    assert_eq!(server.post_json("/api/v1/alertmanager", &firing()).0, 200);
    wait_until(
        "the marker",
        PATIENCE,
        || server.context(),
        || marker.exists().then_some(()),
    );
    let records = wait_until(
        "the action's record",
        PATIENCE,
        || server.context(),
        || {
            let r = server.audit("");
            kinds(&r).contains(&"action_run").then_some(r)
        },
    );
    // Oldest first; the policy's loading comes before everything else.
    let loaded = &records[0];
    assert_eq!(loaded["kind"], "policy_change", "{records:#?}");
    assert_eq!(loaded["change"], "loaded");
    assert_eq!(loaded["version"], 1);
    let records = without_policy_changes(records);
    assert_eq!(
        kinds(&records),
        ["alert_received", "decision", "action_run"],
        "{records:#?}"
    );
    assert_eq!(records[1]["mode"], "enforce");
    assert_eq!(records[2]["exit_status"], 0);
    assert_eq!(records[2]["dry_run"], false);
}

#[test]
fn manual_approval_waits_for_approve() {
    let dir = tempfile::tempdir().unwrap();
    let marker = write_policies(dir.path(), "manual");
    let server = start(dir.path(), &["--autopilot", "enforce"]);
    assert_eq!(server.post_json("/api/v1/alertmanager", &firing()).0, 200);
    let id = wait_until(
        "a pending approval",
        PATIENCE,
        || server.context(),
        || server.get_json("/api/v1/actions")["pending"][0]["id"].as_u64(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!marker.exists(), "ran before it was approved");
    let (status, _) = server.post_json("/api/v1/actions/999/approve", "");
    assert_eq!(status, 404);
    let (status, run) = server.post_json(
        &format!("/api/v1/actions/{id}/approve"),
        r#"{"by": "alice"}"#,
    );
    assert_eq!(status, 200, "{run:#}");
    assert_eq!(run["status"], "succeeded");
    assert!(marker.exists());
    let records = without_policy_changes(server.audit(""));
    assert_eq!(
        kinds(&records),
        ["alert_received", "decision", "approval", "action_run"],
        "{records:#?}"
    );
    assert_eq!(records[2]["by"], "alice");
    assert_eq!(records[2]["approved"], true);
    assert_eq!(records[3]["exit_status"], 0);
    assert!(server.get_json("/api/v1/actions")["pending"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        server.post_json("/api/v1/actions/pause", "").1["paused"],
        true
    );
    assert_eq!(server.get_json("/api/v1/actions")["paused"], true);
}

#[test]
fn a_server_that_exits_fails_start_at_once_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let failure =
        std::panic::catch_unwind(|| ServerProcess::start(dir.path(), &["--no-such-flag"]))
            .err()
            .expect("the server cannot start");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("the server exited"), "{message}");
    assert!(
        message.contains("unexpected argument '--no-such-flag'"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{message}");
}

/// `perfpilot server ARGS --listen 127.0.0.1:PORT --data DIR/data`, expected
/// to exit: (exit code, stderr); killed if it is still up after 30 s.
fn server_exit(dir: &std::path::Path, port: u16, args: &[&str]) -> (Option<i32>, String) {
    let mut child = perfpilot()
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.join("data"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn enforce_or_prometheus_without_policies_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let autopilot = dir.path().join("autopilot");
    for args in [
        &["--autopilot", "enforce"][..],
        &[
            "--autopilot",
            "enforce",
            "--autopilot-dir",
            autopilot.to_str().unwrap(),
        ][..],
        &["--prometheus", "http://127.0.0.1:9090"][..],
    ] {
        let (code, err) = server_exit(dir.path(), free_port(), args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("--policies <DIR>"), "{args:?}: {err}");
        // Refused before anything was opened.
        assert!(!dir.path().join("data").exists(), "{args:?}");
        assert!(!autopilot.exists(), "{args:?}");
    }
    // `up` shares the flags (and parses them before it needs root).
    let out = perfpilot()
        .args(["up", "--autopilot", "enforce"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--policies <DIR>"), "{err}");
}

#[test]
fn a_taken_port_starts_no_autopilot() {
    let dir = tempfile::tempdir().unwrap();
    write_policies(dir.path(), "auto");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let autopilot = dir.path().join("autopilot");
    let (code, err) = server_exit(
        dir.path(),
        port,
        &[
            "--policies",
            dir.path().join("policies").to_str().unwrap(),
            "--autopilot",
            "enforce",
            "--autopilot-dir",
            autopilot.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    // The audit log was never opened, so no engine ran.
    assert!(!autopilot.exists(), "{err}");
}
