//! The autopilot's engine in `perfpilot server`, through the binary:
//! conditions on the baseline engine's p99, the impact check that rolls
//! back an action that made things worse and raises an alert, policy
//! versions and `perfpilot policy rollback`, and state (caps, the pause
//! switch, queued approvals) that survives a restart, driven with
//! `perfpilot actions`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::alerting::{labels, wait_until, webhook};
use common::{action, perfpilot, policy, touch, ServerProcess};
use serde_json::json;

/// DIR/policies, created.
fn policy_dir(dir: &Path) -> PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    policies
}

/// The server's arguments to run the policies in `policies` for real.
fn enforcing(policies: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "--policies".into(),
        policies.into(),
        "--autopilot".into(),
        "enforce".into(),
    ]
}

/// Runs `perfpilot ARGS --server BASE`; (exit code, stdout, stderr).
fn cli(server: &ServerProcess, args: &[&str]) -> (i32, String, String) {
    let out = perfpilot()
        .args(args)
        .args(["--server", &server.base])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Appends request-log lines (JSON, 50 a second) with the latency in
/// `latency_ms`, until dropped.
struct LogWriter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    fn start(path: PathBuf, latency_ms: Arc<AtomicU64>) -> LogWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            while !s.load(Ordering::SeqCst) {
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                let l = latency_ms.load(Ordering::SeqCst);
                let mut lines = String::new();
                for _ in 0..5 {
                    lines.push_str(&format!(
                        "{{\"ts\":{ts:.3},\"latency_ms\":{l},\"status\":200,\"endpoint\":\"/pay\"}}\n"
                    ));
                }
                f.write_all(lines.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        LogWriter {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn an_action_that_makes_p99_worse_is_rolled_back_and_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let cfg = dir.path().join("watch.toml");
    std::fs::write(
        &cfg,
        format!(
            "window = \"1s\"\nlateness = \"1s\"\n\n[[logs]]\npath = {log:?}\nformat = \"json\"\nservice = \"shop\"\nfollow = true\n"
        ),
    )
    .unwrap();
    let policies = policy_dir(dir.path());
    let ran = dir.path().join("ran");
    let rolled = dir.path().join("rolled-back");
    // p99 in seconds: the log's 800 ms reads as 0.8.
    let action = action(
        "restart",
        "p99 > 500ms",
        touch(&ran),
        &[
            &format!("rollback: {}", touch(&rolled)),
            "cooldown: 1h",
            "approval: auto",
        ],
    );
    std::fs::write(
        policies.join("shop.yaml"),
        policy(
            "shop-latency",
            "shop",
            &action,
            "  guard: {impactWindow: 8s, rollbackIf: worse}\n",
        ),
    )
    .unwrap();
    let mut args = enforcing(&policies);
    args.extend(["--baseline-config".into(), cfg.into_os_string()]);
    let server = ServerProcess::start(dir.path(), &args);
    let latency = Arc::new(AtomicU64::new(800));
    let writer = LogWriter::start(log, Arc::clone(&latency));
    wait_until(
        "the action",
        Duration::from_secs(60),
        || server.context(),
        || ran.exists().then_some(()),
    );
    // The "restart" made it worse.
    latency.store(2000, Ordering::SeqCst);
    // The record, not the file: the rollback's record is written once
    // its command has exited, a moment after the file appears.
    let records = wait_until(
        "the rollback's record",
        Duration::from_secs(60),
        || server.context(),
        || {
            let r = server.audit("");
            r.iter().any(|r| r["kind"] == "rollback").then_some(r)
        },
    );
    assert!(rolled.exists());
    drop(writer);
    let decision = records
        .iter()
        .find(|r| r["kind"] == "decision")
        .expect("a decision");
    let id = decision["decision"].clone();
    let readings: Vec<&str> = decision["readings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    let p99: f64 = readings
        .iter()
        .find_map(|r| r.strip_prefix("p99 = "))
        .unwrap_or_else(|| panic!("no p99 reading: {readings:?}"))
        .parse()
        .unwrap();
    assert!((p99 - 0.8).abs() < 0.02, "p99 read as {p99} s, not 0.8 s");
    let impact = records
        .iter()
        .find(|r| r["kind"] == "impact")
        .expect("an impact record");
    assert_eq!(impact["decision"], id, "{impact:#}");
    assert_eq!(impact["verdict"], "worse", "{impact:#}");
    assert_eq!(impact["signal"], "p99");
    let (before, after) = (
        impact["before"].as_f64().unwrap(),
        impact["after"].as_f64().unwrap(),
    );
    assert!((before - 0.8).abs() < 0.02, "{impact:#}");
    // The windows closing just after the action may still hold the old
    // latency (a window closes a second after its end), so the median
    // after is 2.0 s, or between the two on a slow machine.
    assert!(after > 1.2 && after < 2.05, "{impact:#}");
    let rollback = records
        .iter()
        .find(|r| r["kind"] == "rollback")
        .expect("a rollback record");
    assert_eq!(rollback["decision"], id);
    assert_eq!(rollback["exit_status"], 0);
    let kinds: Vec<&str> = records
        .iter()
        .filter(|r| r["decision"] == id)
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["decision", "action_run", "impact", "rollback"]);
    // The same chain, asked for by decision: from the API (newest first)
    // and from `perfpilot actions audit` (oldest first).
    let chain = server.get_json(&format!("/api/v1/audit?decision={id}"));
    let chain_kinds: Vec<&str> = chain["records"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(chain_kinds, kinds);
    let id_text = id.to_string();
    let (code, out, err) = cli(&server, &["actions", "audit", "--decision", &id_text]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("        |"))
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (line, kind) in lines.iter().zip(kinds.iter()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((fields[2], fields[3]), (*kind, "shop-latency"), "{line}");
        assert!(line.contains(&format!("#{id} restart")), "{line}");
    }
    assert!(lines[0].contains("when p99 > 500ms [p99 = 0.8"), "{out}");
    assert!(lines[1].contains("-> exit 0 (1 attempt,"), "{out}");
    assert!(
        lines[2].contains(": worse (p99: median 0.8 in the 8s before, 2 in the 8s after)"),
        "{out}"
    );
    assert!(
        lines[3].contains("restart rolled back (impact worse: "),
        "{out}"
    );
    let (code, _, err) = cli(&server, &["actions", "audit", "--decision", "nine"]);
    assert_eq!(code, 2, "a decision id is a number: {err}");
    let (status, body) = server.get_status("/api/v1/audit?decision=nine");
    assert_eq!(status, 400);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["error"],
        "decision: expected a decision id, got \"nine\""
    );
    let actions = server.get_json("/api/v1/actions");
    let view = &actions["recent"][0];
    assert_eq!(view["status"], "rolled-back", "{view:#}");
    assert_eq!(view["impact"]["status"], "worse");
    assert_eq!(view["impact"]["rollback"], "succeeded");
    // And an alert says so, through the baseline engine's alerts.
    let alert = wait_until(
        "the alert",
        Duration::from_secs(10),
        || server.context(),
        || {
            server.get_json("/api/v1/alerts")["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == "PerfpilotAutopilotMadeWorse")
                .cloned()
        },
    );
    assert_eq!(alert["labels"]["service"], "shop");
    assert_eq!(alert["labels"]["policy"], "shop-latency");
    assert_eq!(alert["state"], "firing");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("it was rolled back"),
        "{alert:#}"
    );
}

#[test]
fn policies_are_versioned_rolled_back_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policy_dir(dir.path());
    let (m1, m2) = (dir.path().join("m1"), dir.path().join("m2"));
    let file = policies.join("checkout.yaml");
    let write = |marker: &Path| {
        std::fs::write(
            &file,
            policy(
                "checkout",
                "checkout",
                &action(
                    "mark",
                    "alert(\"Slow\").firing",
                    touch(marker),
                    &["approval: auto"],
                ),
                "",
            ),
        )
        .unwrap()
    };
    write(&m1);
    let server = ServerProcess::start(dir.path(), &enforcing(&policies));
    let version = |server: &ServerProcess| {
        server.get_json("/api/v1/policies")["policies"][0]["version"].as_u64()
    };
    assert_eq!(version(&server), Some(1));
    write(&m2);
    wait_until(
        "version 2",
        Duration::from_secs(20),
        || server.context(),
        || (version(&server) == Some(2)).then_some(()),
    );
    // Rewriting the same content is no new version.
    write(&m2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(version(&server), Some(2));

    let (code, _, err) = cli(&server, &["policy", "rollback", "checkout", "--to", "9"]);
    assert_ne!(code, 0);
    assert!(err.contains("has no version 9"), "{err}");
    let (code, out, err) = cli(
        &server,
        &[
            "policy", "rollback", "checkout", "--to", "1", "--by", "dana",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("v3 (rolled back to v1's content)"), "{out}");
    let (code, out, _) = cli(&server, &["policy", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("versions: v1 v2 v3"), "{out}");

    // Version 3 is version 1's content: it touches m1.
    assert_eq!(
        server
            .post_json(
                "/api/v1/alertmanager",
                &webhook(
                    &labels(&[("alertname", "Slow"), ("service", "checkout")]),
                    "firing",
                    "2026-11-23T10:00:00Z",
                    "f1"
                )
            )
            .0,
        200
    );
    wait_until(
        "the action of version 3",
        Duration::from_secs(20),
        || server.context(),
        || m1.exists().then_some(()),
    );
    assert!(!m2.exists());
    let records = server.audit("");
    let decision = records.iter().find(|r| r["kind"] == "decision").unwrap();
    assert_eq!(decision["policy_version"], "3");
    let rolled_back = records
        .iter()
        .find(|r| r["kind"] == "policy_change" && r["change"] == "rolled_back")
        .expect("the rollback in the audit log");
    assert_eq!(rolled_back["restored"], 1);
    assert_eq!(rolled_back["source"], "dana");

    // Removing the file takes the policy out of force.
    std::fs::remove_file(&file).unwrap();
    wait_until(
        "the removal",
        Duration::from_secs(20),
        || server.context(),
        || {
            server.get_json("/api/v1/policies")["policies"]
                .as_array()?
                .is_empty()
                .then_some(())
        },
    );
    let (_, out, _) = cli(&server, &["policy", "list"]);
    assert!(out.contains("no policies are loaded"), "{out}");
    assert!(server
        .audit("")
        .iter()
        .any(|r| r["kind"] == "policy_change" && r["change"] == "removed"));
}

#[test]
fn caps_pause_and_queued_approvals_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policy_dir(dir.path());
    let auto_log = dir.path().join("auto.log");
    let manual = dir.path().join("manual");
    // The auto action appends a line per run, so runs can be counted.
    std::fs::write(
        policies.join("checkout.yaml"),
        policy(
            "checkout",
            "checkout",
            &action(
                "note",
                "alert(\"Slow\").firing",
                json!({"type": "exec", "command": [
                    "/usr/bin/python3",
                    "-c",
                    "import sys; open(sys.argv[1], \"a\").write(\"run\\n\")",
                    auto_log,
                ]}),
                &["maxPerHour: 1", "cooldown: 1s", "approval: auto"],
            ),
            "",
        ) + "---\n"
            + &policy(
                "search",
                "search",
                &action(
                    "fix",
                    "alert(\"Slow\").firing",
                    touch(&manual),
                    &["approval: manual"],
                ),
                "",
            ),
    )
    .unwrap();
    let args = enforcing(&policies);
    let runs = || {
        std::fs::read_to_string(&auto_log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let server = ServerProcess::start(dir.path(), &args);
    // An alert that names no service concerns every target.
    let slow = &webhook(
        &labels(&[("alertname", "Slow")]),
        "firing",
        "2026-11-23T10:00:00Z",
        "s1",
    );
    assert_eq!(server.post_json("/api/v1/alertmanager", slow).0, 200);
    wait_until(
        "the first run",
        Duration::from_secs(20),
        || server.context(),
        || (runs() == 1).then_some(()),
    );
    let pending = wait_until(
        "the queued approval",
        Duration::from_secs(20),
        || server.context(),
        || server.get_json("/api/v1/actions")["pending"][0]["id"].as_u64(),
    );
    let (code, out, err) = cli(&server, &["actions", "pause", "--by", "erin"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused"), "{out}");
    drop(server);

    let server = ServerProcess::start(dir.path(), &args);
    assert_eq!(server.post_json("/api/v1/alertmanager", slow).0, 200);
    let (code, out, err) = cli(&server, &["actions", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mode enforce, paused"), "{out}");
    assert!(out.contains("waiting for approval: 1"), "{out}");
    assert!(out.contains(&format!("{pending:>5}")), "{out}");
    // Paused, the approval is refused with the reason.
    let (code, _, err) = cli(&server, &["actions", "approve", &pending.to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("paused"), "{err}");
    let (code, _, _) = cli(&server, &["actions", "resume"]);
    assert_eq!(code, 0);
    let (code, out, err) = cli(
        &server,
        &["actions", "approve", &pending.to_string(), "--by", "carol"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("succeeded by carol"), "{out}");
    assert!(manual.exists());
    // The hourly cap of one still holds after the restart, however long
    // the alert fires.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(runs(), 1, "the cap was reset by the restart");
    let (code, _, err) = cli(&server, &["actions", "reject", "424242"]);
    assert_ne!(code, 0);
    assert!(err.contains("no pending decision 424242"), "{err}");
    let pauses: Vec<serde_json::Value> = server
        .audit("")
        .into_iter()
        .filter(|r| r["kind"] == "pause")
        .collect();
    assert_eq!(pauses.len(), 2, "{pauses:#?}");
    assert_eq!(pauses[0]["by"], "erin");
    assert_eq!(pauses[0]["paused"], true);
}

/// checkout's stacks: `hot` samples in encrypt_data and `rest` elsewhere.
fn checkout(hot: u64, rest: u64) -> String {
    format!("main;handle;encrypt_data {hot}\nmain;handle;parse {rest}\n")
}

#[test]
fn without_baselines_an_action_made_worse_still_raises_an_alert() {
    // No --baseline-config: the judged signal is a hotspot from the
    // stored profiles, and the alert goes to a book of the autopilot's own.
    let dir = tempfile::tempdir().unwrap();
    let policies = policy_dir(dir.path());
    let ran = dir.path().join("ran");
    let rolled = dir.path().join("rolled-back");
    let action = action(
        "shed",
        "hotspot(\"encrypt_data\") > 50%",
        touch(&ran),
        &[
            &format!("rollback: {}", touch(&rolled)),
            "cooldown: 1h",
            "approval: auto",
        ],
    );
    std::fs::write(
        policies.join("checkout.yaml"),
        policy(
            "checkout-crypto",
            "checkout",
            &action,
            // Profiles are read at most every 10 s: the window must hold
            // mostly values read after the action.
            "  guard: {impactWindow: 30s, rollbackIf: worse}\n",
        ),
    )
    .unwrap();
    let server = ServerProcess::start(dir.path(), &enforcing(&policies));
    let alerts = server.get_json("/api/v1/alerts");
    assert_eq!(
        (alerts["enabled"].as_bool(), alerts["baselines"].as_bool()),
        (Some(true), Some(false)),
        "{alerts:#}"
    );
    assert_eq!(server.get_json("/api/v1/baselines")["enabled"], false);
    // 60% in encrypt_data: the action runs.
    server.push_cpu("checkout", &checkout(60, 40));
    wait_until(
        "the action",
        Duration::from_secs(30),
        || server.context(),
        || ran.exists().then_some(()),
    );
    // Then encrypt_data takes nearly everything: worse.
    for _ in 0..5 {
        server.push_cpu("checkout", &checkout(1000, 0));
    }
    let alert = wait_until(
        "the alert",
        Duration::from_secs(60),
        || server.context(),
        || {
            server.get_json("/api/v1/alerts")["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == "PerfpilotAutopilotMadeWorse")
                .cloned()
        },
    );
    assert!(rolled.exists(), "the rollback ran");
    assert_eq!(alert["labels"]["service"], "checkout");
    assert_eq!(alert["labels"]["policy"], "checkout-crypto");
    assert_eq!(alert["labels"]["action"], "shed");
    assert_eq!(alert["state"], "firing");
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("made checkout worse; it was rolled back"),
        "{summary}"
    );
    assert!(
        summary.contains("hotspot(\"encrypt_data\"): median 0.6 in the 30s before"),
        "{summary}"
    );
    let impact = server
        .audit("")
        .into_iter()
        .find(|r| r["kind"] == "impact")
        .expect("an impact record");
    assert_eq!(impact["verdict"], "worse", "{impact:#}");
    assert!(impact["after"].as_f64().unwrap() > 0.9, "{impact:#}");
    // It can be acknowledged like any other.
    let id = alert["id"].as_str().unwrap();
    let (status, acked) =
        server.post_json(&format!("/api/v1/alerts/{id}/ack"), r#"{"by": "dana"}"#);
    assert_eq!(status, 200, "{acked:#}");
    assert_eq!(acked["ack"]["by"], "dana");
}

#[test]
fn a_hotspot_condition_reads_the_function_share_from_the_stored_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policy_dir(dir.path());
    let ran = dir.path().join("ran");
    std::fs::write(
        policies.join("checkout.yaml"),
        policy(
            "checkout-crypto",
            "checkout",
            &action(
                "shed",
                "hotspot(\"encrypt_data\") > 50%",
                touch(&ran),
                &["approval: auto"],
            ),
            "",
        ),
    )
    .unwrap();
    let server = ServerProcess::start(dir.path(), &enforcing(&policies));
    let push = |hot: u64, rest: u64| server.push_cpu("checkout", &checkout(hot, rest));
    // 40% of the CPU: below the threshold, nothing happens.
    push(40, 60);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!ran.exists(), "acted on a 40% share");
    assert!(server.audit("").iter().all(|r| r["kind"] != "decision"));
    // Another service's profile does not count for checkout.
    server.push_cpu("search", "main;encrypt_data 1000\n");
    // Profiles are read once every 10 s at most: wait out the cached 40%.
    push(400, 0);
    wait_until(
        "the action",
        Duration::from_secs(30),
        || server.context(),
        || ran.exists().then_some(()),
    );
    let decision = server
        .audit("")
        .into_iter()
        .find(|r| r["kind"] == "decision")
        .unwrap();
    let reading = decision["readings"][0].as_str().unwrap().to_string();
    let share: f64 = reading
        .strip_prefix("hotspot(\"encrypt_data\") = ")
        .unwrap_or_else(|| panic!("{reading}"))
        .parse()
        .unwrap();
    // (40 + 400) of (100 + 400) samples in the last minute.
    assert!((share - 0.88).abs() < 1e-9, "{reading}");
}

#[test]
fn a_policy_nested_too_deep_is_reported_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policy_dir(dir.path());
    let marker = dir.path().join("ran");
    let good = policy(
        "checkout",
        "checkout",
        &action("mark", "p99 > 1", touch(&marker), &[]),
        "",
    );
    std::fs::write(policies.join("checkout.yaml"), &good).unwrap();
    let server = ServerProcess::start(dir.path(), &enforcing(&policies));
    let names = |server: &ServerProcess| -> Vec<String> {
        server.get_json("/api/v1/policies")["policies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some(p["name"].as_str()?.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&server), ["checkout"]);
    // The same policy under another name, with a webhook body nested 2,000
    // levels deep (block style: flow style stops at the scanner's own
    // limit of 255 levels): this used to overflow the autopilot thread's
    // stack and abort the server.
    let deep = policies.join("deep.yaml");
    std::fs::write(
        &deep,
        policy(
            "deep",
            "checkout",
            &format!(
                "    - name: hook\n      condition: p99 > 1\n      operation:\n        \
                 type: webhook\n        url: 'http://127.0.0.1:9'\n        body:\n          {}1\n",
                "- ".repeat(2_000)
            ),
            "",
        ),
    )
    .unwrap();
    let reported = format!("{} is invalid and was not loaded", deep.display());
    let log = wait_until(
        "the deep file reported",
        Duration::from_secs(60),
        || server.log_tail(40),
        || {
            let log = server.log_tail(40);
            log.contains(&reported).then_some(log)
        },
    );
    assert!(
        log.contains("YAML nests more than 64 levels deep (the limit for a policy file)"),
        "{log}"
    );
    assert_eq!(
        server.get_status("/healthz").0,
        200,
        "{}",
        server.log_tail(40)
    );
    assert_eq!(names(&server), ["checkout"]);
}
