//! The autopilot end to end through the `perfpilot server` binary: a real
//! Prometheus alerting through a real Alertmanager into the server, which
//! restarts the failing service; webhook storms against cooldowns and
//! hourly caps; failed actions retried with backoff; hostile alert labels;
//! malformed webhooks.
//!
//! Run with `--nocapture` to see the measured alert-to-action times.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::alerting::{
    free_port, get_text, labels, now_ms, tail, wait_until, webhook, Alertmanager, Prometheus,
    Supervisor,
};
use common::{action, policy, ServerProcess, API_VERSION};
use serde_json::{json, Value};

/// Long enough for a loaded CI machine; the waits poll, so a quick run
/// takes no longer for it.
const PATIENCE: Duration = Duration::from_secs(120);

/// `perfpilot server --policies DIR/policies --autopilot enforce
/// --autopilot-dir DIR/autopilot`, its log in DIR/server.log.
fn start_server(dir: &Path, policies: &[(&str, String)]) -> ServerProcess {
    let pdir = dir.join("policies");
    std::fs::create_dir_all(&pdir).unwrap();
    for (name, text) in policies {
        std::fs::write(pdir.join(format!("{name}.yaml")), text).unwrap();
    }
    let args: Vec<OsString> = vec![
        "--policies".into(),
        pdir.into(),
        "--autopilot".into(),
        "enforce".into(),
        "--autopilot-dir".into(),
        dir.join("autopilot").into(),
    ];
    ServerProcess::start(dir, &args)
}

/// A policy with one action, `act`, run without approval.
fn auto_policy(
    name: &str,
    target: &str,
    condition: &str,
    operation: Value,
    limits: &[&str],
) -> String {
    let fields: Vec<&str> = limits.iter().copied().chain(["approval: auto"]).collect();
    policy(
        name,
        target,
        &action("act", condition, operation, &fields),
        "",
    )
}

fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

fn of_policy<'a>(records: &'a [Value], kind: &str, policy: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["kind"] == kind && r["policy"] == policy)
        .collect()
}

/// Posts each thread's bodies in order, the threads at once; the status
/// of every post (0 when it got no answer), in no particular order.
fn post_concurrently(base: &str, per_thread: Vec<Vec<String>>) -> Vec<u16> {
    let url = format!("{base}/api/v1/alertmanager");
    let threads: Vec<_> = per_thread
        .into_iter()
        .map(|bodies| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                bodies
                    .iter()
                    .map(|b| {
                        match agent
                            .post(&url)
                            .header("Content-Type", "application/json")
                            .send(b)
                        {
                            Ok(mut r) => {
                                let _ = r.body_mut().read_to_string();
                                r.status().as_u16()
                            }
                            Err(e) => {
                                eprintln!("a post got no answer: {e}");
                                0
                            }
                        }
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Seconds since the epoch, one per line, as `date +%s.%N` writes them.
fn stamps(path: &Path) -> Vec<f64> {
    lines(path)
        .iter()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("not a time: {l:?}"))
        })
        .collect()
}

/// Waits for the action's first run, gives the engine a few more ticks
/// while the alert keeps firing, and asserts it ran exactly once (its
/// cooldown is an hour); the audit log and the failure context then.
fn ran_once_and_settled(server: &ServerProcess, runs: &Path) -> (Vec<Value>, String) {
    wait_until(
        "the action to run",
        PATIENCE,
        || server.context(),
        || (!lines(runs).is_empty()).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(4));
    let records = server.audit("");
    let dump = server.context();
    assert_eq!(lines(runs).len(), 1, "ran once (cooldown 1h)\n{dump}");
    (records, dump)
}

/// An exec that appends the time to `file`: `["/bin/sh", "-c", ..., file]`.
fn append_time(file: &Path) -> Value {
    json!({"type": "exec", "command": ["/bin/sh", "-c", "date +%s.%N >> \"$0\"", file]})
}

// ---------------------------------------------------------------------------
// 1. Prometheus → Alertmanager → perfpilot → restart, with the real tools.

/// The test service: `/metrics` says `test_service_healthy 1` until
/// `/break` is requested, then 0 until it is restarted. Run directly
/// (shebang), so the kernel names the process after the script and the
/// policy can restart it by `processName`.
const SERVICE: &str = r##"#!/usr/bin/python3
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

healthy = 1

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global healthy
        if self.path == "/break":
            healthy = 0
            body = b"broken\n"
        elif self.path == "/metrics":
            body = (
                "# TYPE test_service_healthy gauge\n"
                "test_service_healthy %d\n"
                "# TYPE test_service_pid gauge\n"
                "test_service_pid %d\n" % (healthy, os.getpid())
            ).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"##;

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn prometheus_alert_restarts_the_service_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // The restart is the production path: the policy's `restart`
    // operation finds the process by name and sends it SIGTERM, and a
    // supervisor (standing in for systemd's Restart=always) starts a fresh
    // one. An exec of a restart script would test the test's script
    // instead of the operation. The name is unique to this test run (15
    // bytes at most: the kernel keeps that much of a process's name).
    let name = format!("ppsvc{}", std::process::id());
    let script = dir.join(&name);
    std::fs::write(&script, SERVICE).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let svc_port = free_port();
    let svc_url = format!("http://127.0.0.1:{svc_port}");
    let service = Supervisor::start(
        vec![script.clone().into(), svc_port.to_string().into()],
        dir.join("service.log"),
    );
    // The pid of the process answering, when it says it is healthy.
    let healthy = || {
        let text = get_text(&format!("{svc_url}/metrics"))?;
        let pid = metric(&text, "test_service_pid")? as u32;
        (metric(&text, "test_service_healthy") == Some(1.0)).then_some(pid)
    };
    let service_context = || {
        format!(
            "service runs: {:?}\nservice log ends:\n{}",
            service.lives(),
            tail(&dir.join("service.log"), 20)
        )
    };
    let first_pid = wait_until("the service to answer", PATIENCE, service_context, healthy);

    let server = start_server(
        dir,
        &[(
            "restart",
            format!(
                "apiVersion: {API_VERSION}\nkind: AutopilotPolicy\nmetadata: {{name: test-service-down}}\n\
                 spec:\n  targetRef: {{kind: Process, name: {name}}}\n  actions:\n    - name: restart\n      \
                 condition: 'alert(\"TestServiceDown\").firing'\n      \
                 operation: {{type: restart, processName: {name}, signal: SIGTERM}}\n      \
                 cooldown: 1m\n      approval: auto\n"
            ),
        )],
    );
    let mut alertmanager =
        Alertmanager::start(dir, &format!("{}/api/v1/alertmanager", server.base));
    let mut prometheus = Prometheus::start(
        dir,
        &format!("127.0.0.1:{svc_port}"),
        &format!(
            "groups:\n  - name: test_service\n    rules:\n      - alert: TestServiceDown\n        \
             expr: test_service_healthy == 0\n        for: 0s\n        \
             labels: {{severity: page, process: {name}}}\n        \
             annotations: {{summary: the test service reports itself unhealthy}}\n"
        ),
        &alertmanager.address,
    );
    let everything = || {
        format!(
            "{}{}\nPrometheus log ends:\n{}\nAlertmanager log ends:\n{}",
            server.context(),
            service_context(),
            tail(&prometheus.proc.log, 15),
            tail(&alertmanager.proc.log, 15)
        )
    };

    wait_until(
        "Prometheus to scrape the service healthy",
        PATIENCE,
        everything,
        || (prometheus.query("test_service_healthy") == Some(1.0)).then_some(()),
    );

    let broke_ms = now_ms();
    assert_eq!(
        get_text(&format!("{svc_url}/break")).as_deref(),
        Some("broken\n")
    );
    let run = wait_until(
        "the restart's action_run record",
        PATIENCE,
        everything,
        || {
            of_kind(&server.audit("kind=action_run"), "action_run")
                .first()
                .map(|r| (*r).clone())
        },
    );
    let new_pid = wait_until(
        "a fresh, healthy service process",
        PATIENCE,
        everything,
        || healthy().filter(|pid| *pid != first_pid),
    );
    let lives = service.lives();
    assert_eq!(lives[0].pid, first_pid, "{lives:?}");
    assert_eq!(
        lives[0].exit.and_then(|s| s.signal()),
        Some(libc::SIGTERM),
        "the first process ends by the policy's SIGTERM: {lives:?}"
    );
    wait_until(
        "Prometheus to scrape the new process healthy",
        PATIENCE,
        everything,
        || {
            (prometheus.query("test_service_pid") == Some(f64::from(new_pid))
                && prometheus.query("test_service_healthy") == Some(1.0))
            .then_some(())
        },
    );
    let resolved = wait_until(
        "Alertmanager's resolved notification",
        PATIENCE,
        everything,
        || {
            server
                .audit("kind=alert_received")
                .into_iter()
                .find(|r| r["status"] == "resolved" && r["alertname"] == "TestServiceDown")
        },
    );
    // The whole chain, in order, in the audit log.
    let records = server.audit("");
    let dump = everything();
    prometheus.proc.assert_running("Prometheus");
    alertmanager.proc.assert_running("Alertmanager");
    let firing = records
        .iter()
        .find(|r| r["kind"] == "alert_received" && r["status"] == "firing")
        .unwrap_or_else(|| panic!("no firing alert recorded\n{dump}"));
    assert_eq!(firing["alertname"], "TestServiceDown", "{dump}");
    assert_eq!(firing["source"], "alertmanager");
    assert_eq!(firing["labels"]["process"], name.as_str());
    let decisions = of_kind(&records, "decision");
    assert_eq!(decisions.len(), 1, "one decision (cooldown 1m)\n{dump}");
    let decision = decisions[0];
    let runs = of_kind(&records, "action_run");
    assert_eq!(runs.len(), 1, "one run\n{dump}");
    assert_eq!(runs[0], &run);
    assert_eq!(decision["policy"], "test-service-down");
    assert_eq!(decision["outcome"], "run", "{dump}");
    assert_eq!(decision["mode"], "enforce");
    assert_eq!(decision["target"], format!("Process/{name}"));
    assert!(
        decision["readings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("TestServiceDown")),
        "{decision}"
    );
    assert!(decision["decision"].is_u64(), "{decision}");
    assert_eq!(run["decision"], decision["decision"], "{dump}");
    assert_eq!(run["error"], Value::Null, "{dump}");
    assert_eq!(run["dry_run"], false);
    assert_eq!(run["attempts"], 1);
    assert_eq!(run["operation"], "restart");
    assert!(
        run["output"]
            .as_str()
            .unwrap()
            .contains(&format!("signalled {first_pid}")),
        "{run}"
    );
    assert_eq!(resolved["fingerprint"], firing["fingerprint"], "{dump}");
    assert_eq!(resolved["starts_at"], firing["starts_at"], "{dump}");
    let seq = |r: &Value| r["seq"].as_u64().unwrap();
    assert!(
        seq(firing) < seq(decision) && seq(decision) < seq(&run) && seq(&run) < seq(&resolved),
        "alert_received (firing) → decision → action_run → alert_received (resolved)\n{dump}"
    );

    let at = |r: &Value| r["at_ms"].as_i64().unwrap();
    let starts_ms = perfpilot_query::parse_time(firing["starts_at"].as_str().unwrap(), 0).unwrap();
    eprintln!(
        "prometheus_alert_restarts_the_service_end_to_end: /break → alert startsAt {} ms; \
         startsAt → webhook received {} ms; received → decision {} ms; decision → action_run {} ms",
        starts_ms - broke_ms,
        at(firing) - starts_ms,
        at(decision) - at(firing),
        at(&run) - at(decision),
    );
    eprintln!(
        "prometheus_alert_restarts_the_service_end_to_end: alert startsAt → action_run {} ms; \
         /break → action_run {} ms; action_run → resolved received {} ms",
        at(&run) - starts_ms,
        at(&run) - broke_ms,
        at(&resolved) - at(&run),
    );
}

// ---------------------------------------------------------------------------
// 2. Storms against cooldowns and hourly caps.

#[test]
fn a_thousand_duplicate_webhooks_run_the_action_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let runs = dir.join("runs");
    let server = start_server(
        dir,
        &[(
            "storm",
            auto_policy(
                "storm",
                "storm",
                "alert(\"StormAlert\").firing",
                append_time(&runs),
                &["cooldown: 1h", "maxPerHour: 2"],
            ),
        )],
    );
    let body = webhook(
        &labels(&[("alertname", "StormAlert"), ("service", "storm")]),
        "firing",
        "2026-11-22T10:00:00.123456789Z",
        "5707a1e5707a1e57",
    );
    let statuses = post_concurrently(&server.base, vec![vec![body; 250]; 4]);
    assert_eq!(statuses.len(), 1000);
    let bad: Vec<&u16> = statuses
        .iter()
        .filter(|s| !(200..300).contains(*s))
        .collect();
    assert!(bad.is_empty(), "posts not answered 2xx: {bad:?}");

    let (records, dump) = ran_once_and_settled(&server, &runs);
    assert_eq!(
        of_kind(&records, "alert_received").len(),
        1,
        "a thousand copies of one alert are one record\n{dump}"
    );
    assert_eq!(of_policy(&records, "decision", "storm").len(), 1, "{dump}");
    let run = of_policy(&records, "action_run", "storm");
    assert_eq!(run.len(), 1, "{dump}");
    assert_eq!(run[0]["exit_status"], 0, "{dump}");
}

#[test]
fn a_flapping_alert_runs_the_action_once_within_its_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let runs = dir.join("runs");
    let server = start_server(
        dir,
        &[(
            "flap",
            auto_policy(
                "flap",
                "flappy",
                "alert(\"FlappingAlert\").firing",
                append_time(&runs),
                &["cooldown: 1h", "maxPerHour: 2"],
            ),
        )],
    );
    let l = labels(&[("alertname", "FlappingAlert"), ("service", "flappy")]);
    // A thousand occurrences, each with its own startsAt, each firing then
    // resolved: four threads, each posting its occurrences in order.
    let mut per_thread = vec![Vec::new(); 4];
    for i in 0..1000 {
        let starts = format!("2026-11-22T10:{:02}:{:02}Z", i / 60, i % 60);
        let bodies: &mut Vec<String> = &mut per_thread[i % 4];
        bodies.push(webhook(&l, "firing", &starts, "f1a9f1a9f1a9f1a9"));
        bodies.push(webhook(&l, "resolved", &starts, "f1a9f1a9f1a9f1a9"));
    }
    let started = Instant::now();
    let statuses = post_concurrently(&server.base, per_thread);
    eprintln!(
        "a_flapping_alert_runs_the_action_once_within_its_cooldown: {} posts in {:?}",
        statuses.len(),
        started.elapsed()
    );
    assert_eq!(statuses.len(), 2000);
    let bad: Vec<&u16> = statuses
        .iter()
        .filter(|s| !(200..300).contains(*s))
        .collect();
    assert!(bad.is_empty(), "posts not answered 2xx: {bad:?}");
    // And it fires once more and stays firing, so the engine certainly
    // sees it firing for several ticks.
    let (status, _) = server.post_json(
        "/api/v1/alertmanager",
        &webhook(&l, "firing", "2026-11-22T12:00:00Z", "f1a9f1a9f1a9f1a9"),
    );
    assert_eq!(status, 200);

    let (records, dump) = ran_once_and_settled(&server, &runs);
    let received = of_kind(&records, "alert_received");
    assert_eq!(
        received.len(),
        2001,
        "every occurrence new and resolved, and the last one\n{dump}"
    );
    assert_eq!(
        received
            .iter()
            .filter(|r| r["status"] == "resolved")
            .count(),
        1000
    );
    assert_eq!(of_policy(&records, "decision", "flap").len(), 1, "{dump}");
    assert_eq!(of_policy(&records, "action_run", "flap").len(), 1, "{dump}");
}

#[test]
fn an_alert_firing_on_runs_the_action_max_per_hour_times() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let runs = dir.join("runs");
    let server = start_server(
        dir,
        &[(
            "capped",
            auto_policy(
                "capped",
                "capped",
                "alert(\"KeepsFiring\").firing",
                append_time(&runs),
                &["cooldown: 1s", "maxPerHour: 2"],
            ),
        )],
    );
    let l = labels(&[("alertname", "KeepsFiring"), ("service", "capped")]);
    let firing = webhook(&l, "firing", "2026-11-22T10:00:00Z", "cafecafecafecafe");
    // Alertmanager re-sends a firing alert; the alert fires for at least
    // 6 s, and until both runs happened, and 4 s (ticks a third run would
    // need) beyond that.
    let started = Instant::now();
    let mut both: Option<Instant> = None;
    loop {
        let (status, answer) = server.post_json("/api/v1/alertmanager", &firing);
        assert_eq!(status, 200, "{answer}");
        if both.is_none() && lines(&runs).len() >= 2 {
            both = Some(Instant::now());
        }
        if let Some(t) = both {
            if t.elapsed() >= Duration::from_secs(4) && started.elapsed() >= Duration::from_secs(6)
            {
                break;
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the action did not run twice\n{}",
            server.context()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, _) = server.post_json(
        "/api/v1/alertmanager",
        &webhook(&l, "resolved", "2026-11-22T10:00:00Z", "cafecafecafecafe"),
    );
    assert_eq!(status, 200);
    let records = server.audit("");
    let dump = server.context();
    let times = stamps(&runs);
    assert_eq!(times.len(), 2, "maxPerHour: 2\n{dump}");
    assert!(
        times[1] - times[0] >= 0.9,
        "the runs are a cooldown (1s) apart: {times:?}"
    );
    let decisions = of_policy(&records, "decision", "capped");
    assert_eq!(decisions.len(), 2, "{dump}");
    assert_eq!(
        of_policy(&records, "action_run", "capped").len(),
        2,
        "{dump}"
    );
    // The decisions' own times (the actions API has them) are at least the
    // cooldown apart.
    let actions = server.get_json("/api/v1/actions");
    let mut at: Vec<i64> = actions["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["policy"] == "capped")
        .map(|a| a["at_ms"].as_i64().unwrap())
        .collect();
    at.sort_unstable();
    assert_eq!(at.len(), 2, "{actions:#}");
    assert!(at[1] - at[0] >= 1000, "{at:?}");
}

// ---------------------------------------------------------------------------
// 3. Failures retried with backoff and reported; the engine goes on.

#[test]
fn failing_actions_are_retried_with_backoff_reported_and_the_engine_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (fails, flaky, after) = (
        dir.join("fails-attempts"),
        dir.join("flaky-attempts"),
        dir.join("after-runs"),
    );
    let server = start_server(
        dir,
        &[
            (
                "fails",
                auto_policy(
                    "always-fails",
                    "disk",
                    "alert(\"DiskBroken\").firing",
                    json!({"type": "exec", "command": [
                        "/bin/sh", "-c",
                        "date +%s.%N >> \"$0\"; echo 'the disk is on fire' >&2; exit 3",
                        fails,
                    ]}),
                    &["cooldown: 1h"],
                ),
            ),
            (
                "flaky",
                auto_policy(
                    "fails-twice",
                    "cache",
                    "alert(\"DiskBroken\").firing",
                    json!({"type": "exec", "command": [
                        "/bin/sh", "-c",
                        "date +%s.%N >> \"$0\"; n=$(wc -l < \"$0\"); \
                         if [ \"$n\" -lt 3 ]; then echo \"attempt $n failed\" >&2; exit 1; fi; \
                         echo \"attempt $n worked\"",
                        flaky,
                    ]}),
                    &["cooldown: 1h"],
                ),
            ),
            (
                "after",
                auto_policy(
                    "runs-after",
                    "web",
                    "alert(\"WebSlow\").firing",
                    append_time(&after),
                    &["cooldown: 1h"],
                ),
            ),
        ],
    );
    let firing = |name: &str, service: &str, fp: &str| {
        let (status, answer) = server.post_json(
            "/api/v1/alertmanager",
            &webhook(
                &labels(&[("alertname", name), ("service", service)]),
                "firing",
                "2026-11-22T10:00:00Z",
                fp,
            ),
        );
        assert_eq!(status, 200, "{answer}");
    };
    // An alert with a `service` label concerns only that service's
    // policies: one occurrence for each.
    firing("DiskBroken", "disk", "d15cd15cd15cd15c");
    firing("DiskBroken", "cache", "cac4ecac4ecac4ec");
    let srv = &server;
    let done = |policy: &'static str| {
        move || {
            srv.audit("kind=action_run")
                .into_iter()
                .find(|r| r["policy"] == policy)
        }
    };
    let failed = wait_until(
        "the failing action's record",
        PATIENCE,
        || server.context(),
        done("always-fails"),
    );
    let recovered = wait_until(
        "the flaky action's record",
        PATIENCE,
        || server.context(),
        done("fails-twice"),
    );
    let dump = server.context();

    // Three attempts, 1 s then 2 s apart (the backoff doubles).
    let gaps = |file: &Path| -> Vec<f64> {
        let t = stamps(file);
        t.windows(2).map(|w| w[1] - w[0]).collect()
    };
    for (file, record) in [(&fails, &failed), (&flaky, &recovered)] {
        assert_eq!(record["attempts"], 3, "{record}\n{dump}");
        let g = gaps(file);
        assert_eq!(g.len(), 2, "three attempts in {}: {g:?}", file.display());
        assert!(
            g[0] >= 0.95 && g[1] >= 1.95 && g[1] > g[0],
            "the waits between attempts grow (1 s, then 2 s): {g:?}"
        );
        eprintln!(
            "failing_actions_are_retried_with_backoff_reported_and_the_engine_goes_on: {} \
             attempts {:.2} s and {:.2} s apart",
            record["policy"], g[0], g[1]
        );
    }
    assert_eq!(failed["exit_status"], 3, "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("exited with status 3"), "{failed}");
    assert!(
        failed["output"]
            .as_str()
            .unwrap()
            .contains("the disk is on fire"),
        "{failed}"
    );
    assert_eq!(recovered["exit_status"], 0, "{recovered}");
    assert_eq!(recovered["error"], Value::Null, "{recovered}");
    assert!(
        recovered["output"]
            .as_str()
            .unwrap()
            .contains("attempt 3 worked"),
        "{recovered}"
    );

    // The actions API shows the failure and the recovery.
    let actions = server.get_json("/api/v1/actions");
    let view = |policy: &str| {
        actions["recent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["policy"] == policy)
            .cloned()
            .unwrap_or_else(|| panic!("no {policy} in {actions:#}"))
    };
    let f = view("always-fails");
    assert_eq!(f["status"], "failed", "{f:#}");
    assert_eq!(f["exit_status"], 3, "{f:#}");
    assert_eq!(f["error"], error, "{f:#}");
    assert_eq!(view("fails-twice")["status"], "succeeded");

    // Another target's action still runs, once, after the failures.
    firing("WebSlow", "web", "3eb53eb53eb53eb5");
    let ok = wait_until(
        "the other policy's record",
        PATIENCE,
        || server.context(),
        done("runs-after"),
    );
    assert_eq!(ok["exit_status"], 0, "{ok}");
    assert_eq!(ok["attempts"], 1, "{ok}");
    assert_eq!(lines(&after).len(), 1);
    assert!(ok["seq"].as_u64() > failed["seq"].as_u64());
    assert_eq!(view_status(&server, "runs-after"), "succeeded");
    // Nothing was retried beyond its three attempts.
    assert_eq!(lines(&fails).len(), 3);
    assert_eq!(lines(&flaky).len(), 3);
}

fn view_status(server: &ServerProcess, policy: &str) -> String {
    server.get_json("/api/v1/actions")["recent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["policy"] == policy)
        .map(|a| a["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// 4. Shell metacharacters in alert labels reach the action as data.

#[test]
fn shell_metacharacters_in_labels_reach_the_action_verbatim_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let d = dir.display();
    let keep = dir.join("keep");
    std::fs::write(&keep, "still here").unwrap();
    let tmp_marker = PathBuf::from(format!("/tmp/..pwned-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp_marker);
    // Prints its argv and the PERFPILOT_ environment as JSON.
    let printer = "import json, os, sys; print(json.dumps({'argv': sys.argv, 'env': \
                   {k: v for k, v in os.environ.items() if k.startswith('PERFPILOT_')}}))";
    let server = start_server(
        dir,
        &[(
            "probe",
            auto_policy(
                "probe",
                "probe",
                "alert(\"InjectionProbe\").firing",
                json!({"type": "exec", "command": ["/usr/bin/python3", "-c", printer, "fixed"]}),
                &["cooldown: 1h"],
            ),
        )],
    );
    let hostile: Vec<(String, String)> = vec![
        ("alertname".into(), "InjectionProbe".into()),
        ("service".into(), "probe".into()),
        ("subst".into(), format!("$(touch {d}/pwned-subst)")),
        ("tmp".into(), format!("$(touch {})", tmp_marker.display())),
        (
            "semicolon".into(),
            format!("; touch {d}/pwned-semi; rm -rf {}", keep.display()),
        ),
        ("backticks".into(), format!("`touch {d}/pwned-tick`")),
        ("pipe".into(), format!("| touch {d}/pwned-pipe")),
        (
            "and_or".into(),
            format!("&& touch {d}/pwned-and || touch {d}/pwned-or"),
        ),
        ("redirect".into(), format!("> {d}/pwned-redirect")),
        ("quotes".into(), "'\"\\' \"$HOME\" ${IFS} * ?".into()),
        ("newline".into(), format!("x\ntouch {d}/pwned-newline\n")),
        ("unicode".into(), "ünïcødé ✓ \u{202e}".into()),
        // No environment variable can hold a NUL: it arrives as U+FFFD,
        // and the action still runs.
        ("nul".into(), "a\0b".into()),
        // A label name that is not a shell-safe variable name.
        (format!("x$(touch {d}/pwned-name)"), "named".into()),
    ];
    let label_map: BTreeMap<&str, &str> = hostile
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, answer) = server.post_json(
        "/api/v1/alertmanager",
        &webhook(
            &label_map,
            "firing",
            "2026-11-22T10:00:00Z",
            "0bad0bad0bad0bad",
        ),
    );
    assert_eq!(status, 200, "{answer}");
    let run = wait_until(
        "the probe's record",
        PATIENCE,
        || server.context(),
        || {
            server
                .audit("kind=action_run")
                .into_iter()
                .find(|r| r["policy"] == "probe")
        },
    );
    // Anything the labels could have started would have had the time the
    // action took and a few ticks more.
    std::thread::sleep(Duration::from_secs(2));
    let dump = server.context();
    assert_eq!(run["exit_status"], 0, "{run}\n{dump}");
    let output = run["output"].as_str().unwrap();
    let printed: Value = serde_json::from_str(output.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not the printer's JSON ({e}): {output:?}"));
    assert_eq!(
        printed["argv"],
        json!(["-c", "fixed"]),
        "labels never reach argv"
    );
    let mut expected: BTreeMap<String, String> = hostile
        .iter()
        .map(|(k, v)| {
            (
                perfpilot_autopilot::ops::label_env_name(k),
                v.replace('\0', "\u{FFFD}"),
            )
        })
        .collect();
    expected.insert("PERFPILOT_ALERT".into(), "InjectionProbe".into());
    expected.insert("PERFPILOT_TARGET".into(), "probe".into());
    let mut got: BTreeMap<String, String> = serde_json::from_value(printed["env"].clone()).unwrap();
    // The server's own environment reaches its actions too (the test
    // harness sets PERFPILOT_NAB_DIR and the like): those are not labels.
    got.retain(|k, v| {
        expected.contains_key(k) || std::env::var(k).ok().as_deref() != Some(v.as_str())
    });
    assert_eq!(
        got, expected,
        "every label verbatim (a NUL as U+FFFD), nothing else"
    );

    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned") || n == "keep")
        .collect();
    files.sort();
    assert_eq!(files, ["keep"], "no label ran as a command");
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "still here");
    assert!(!tmp_marker.exists(), "{} was created", tmp_marker.display());
    let records = server.audit("");
    assert_eq!(of_kind(&records, "action_run").len(), 1, "{dump}");
    assert_eq!(of_kind(&records, "decision").len(), 1, "{dump}");
    // The audit keeps the labels verbatim too.
    let received = of_kind(&records, "alert_received");
    assert_eq!(received[0]["labels"]["subst"], label_map["subst"]);
    assert_eq!(received[0]["labels"]["newline"], label_map["newline"]);
    assert_eq!(received[0]["labels"]["nul"], "a\0b");
}

// ---------------------------------------------------------------------------
// 5. Malformed webhooks: 400 with the reason, through the binary.

#[test]
fn malformed_webhooks_get_400_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server = start_server(dir, &[]);
    let good = webhook(
        &labels(&[("alertname", "Fine"), ("service", "x")]),
        "firing",
        "2026-11-22T10:00:00Z",
        "00ff00ff00ff00ff",
    );
    let mut v: Value = serde_json::from_str(&good).unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = v.clone();
        f(&mut c);
        c.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("this is not JSON".into(), "body: not valid JSON"),
        (String::new(), "body: not valid JSON"),
        ("[]".into(), "body: expected a JSON object, got an array"),
        (
            edit(&|c| c["version"] = json!("3")),
            "version: unsupported payload version \"3\"",
        ),
        (
            edit(&|c| {
                c.as_object_mut().unwrap().remove("version");
            }),
            "version: missing",
        ),
        (
            edit(&|c| {
                c["alerts"][0].as_object_mut().unwrap().remove("labels");
            }),
            "alerts[0].labels: missing",
        ),
        (
            edit(&|c| c["alerts"][0]["labels"] = json!({})),
            "alerts[0].labels: empty",
        ),
        (
            edit(&|c| c["alerts"][0]["startsAt"] = json!("yesterday")),
            "alerts[0].startsAt: not an RFC 3339 time: \"yesterday\"",
        ),
        (
            edit(&|c| c["alerts"][0]["status"] = json!("burning")),
            "alerts[0].status: expected \"firing\" or \"resolved\", got \"burning\"",
        ),
        (
            edit(&|c| {
                c["alerts"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("fingerprint");
            }),
            "alerts[0].fingerprint: missing",
        ),
    ];
    for (body, reason) in &cases {
        let (status, answer) = server.post_json("/api/v1/alertmanager", body);
        assert_eq!(status, 400, "{body:?} → {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("not an Alertmanager webhook: ") && message.contains(reason),
            "{body:?}: {message:?} should name {reason:?}"
        );
    }
    assert!(server.audit("").is_empty(), "nothing recorded");
    // The server is none the worse for them.
    v["alerts"][0]["labels"]["extra"] = json!("y");
    let (status, answer) = server.post_json("/api/v1/alertmanager", &v.to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["new"], 1);
}

// ---------------------------------------------------------------------------
// 6. A condition on a Prometheus query, with the real Prometheus.

#[test]
fn a_prometheus_signal_reads_the_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let script = dir.join("ppsignal");
    std::fs::write(&script, SERVICE).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let svc_port = free_port();
    let svc_url = format!("http://127.0.0.1:{svc_port}");
    let _service = Supervisor::start(
        vec![script.into(), svc_port.to_string().into()],
        dir.join("service.log"),
    );
    // No alerting here: the rule file is empty and the Alertmanager
    // address is never reached.
    let mut prometheus = Prometheus::start(
        dir,
        &format!("127.0.0.1:{svc_port}"),
        "groups: []\n",
        &format!("127.0.0.1:{}", free_port()),
    );
    wait_until(
        "Prometheus to scrape the service healthy",
        PATIENCE,
        || tail(&prometheus.proc.log, 15),
        || (prometheus.query("test_service_healthy") == Some(1.0)).then_some(()),
    );
    prometheus.proc.assert_running("Prometheus");

    let marker = dir.join("acted");
    let pdir = dir.join("policies");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(
        pdir.join("signal.yaml"),
        format!(
            "apiVersion: {API_VERSION}\nkind: AutopilotPolicy\nmetadata: {{name: svc-health}}\nspec:\n  \
             targetRef: {{kind: Service, name: svc}}\n  signals:\n    \
             - {{name: healthy, type: prometheus, query: 'min(test_service_healthy)'}}\n  \
             actions:\n    - name: act\n      condition: 'healthy < 1'\n      \
             operation: {{type: exec, command: [/usr/bin/touch, {}]}}\n      approval: auto\n",
            marker.display()
        ),
    )
    .unwrap();
    let args: Vec<OsString> = vec![
        "--policies".into(),
        pdir.into(),
        "--autopilot".into(),
        "enforce".into(),
        "--prometheus".into(),
        prometheus.url.clone().into(),
    ];
    let server = ServerProcess::start(dir, &args);
    // Healthy: the condition reads 1 and does not hold.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !marker.exists(),
        "acted on a healthy service\n{}",
        server.context()
    );
    get_text(&format!("{svc_url}/break")).expect("the service to answer /break");
    wait_until(
        "the action on the broken service",
        PATIENCE,
        || server.context(),
        || marker.exists().then_some(()),
    );
    let records = server.audit("kind=decision");
    let readings = records[0]["readings"].clone();
    assert_eq!(readings, json!(["healthy = 0"]), "{}", server.context());
}
