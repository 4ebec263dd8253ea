//! `perfpilot baseline watch`, the server's alerts API with
//! `--baseline-config`, and their errors, through the binary.

mod common;

use std::time::{Duration, Instant};

use common::{perfpilot, ServerProcess};

/// Twelve minutes of a combined-format access log, 10 requests a second:
/// /search turns slow from minute 8 to 10. Plus two lines of garbage.
fn access_log(path: &std::path::Path) {
    let mut out = String::new();
    let months = ["Nov"];
    for i in 0..7200u64 {
        let secs = i / 10;
        let (m, s) = (secs / 60, secs % 60);
        let path = if i % 3 == 0 { "/search?q=x" } else { "/item/1" };
        let mut t = 0.020 + ((i * 7919) % 13) as f64 / 1000.0;
        if path.starts_with("/search") && (8..10).contains(&m) {
            t *= 8.0;
        }
        out.push_str(&format!(
            "10.0.0.{} - - [22/{}/2026:10:{m:02}:{s:02} +0000] \"GET {path} HTTP/1.1\" 200 512 \"-\" \"curl/8\" {t:.3}\n",
            i % 200,
            months[0]
        ));
        if i == 1000 || i == 4000 {
            out.push_str("\\x16\\x03\\x01 garbage\n");
        }
    }
    std::fs::write(path, out).unwrap();
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let log = dir.join("access.log");
    access_log(&log);
    let cfg = dir.join("watch.toml");
    std::fs::write(
        &cfg,
        format!(
            "window = \"10s\"\nstate_dir = {:?}\n\n[[logs]]\npath = {log:?}\nformat = \"combined\"\nservice = \"shop\"\nfollow = false\n\n[alerts]\nresolve_quiet = \"30s\"\n\n[detectors.baseline]\nwarmup = 20\n",
            dir.join("state")
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn watch_reports_the_incident_and_the_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = perfpilot()
        .args(["baseline", "watch", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // One incident, fired and resolved: "firing: incident ID shop: SUMMARY".
    let id_of = |verb: &str| -> Vec<String> {
        err.lines()
            .filter_map(|l| l.split(&format!("{verb}: incident ")).nth(1))
            .filter(|rest| rest.contains(" shop: ") && rest.contains("latency"))
            .filter_map(|rest| rest.split(' ').next().map(str::to_string))
            .collect()
    };
    let fired = id_of("firing");
    assert_eq!(fired.len(), 1, "{err}");
    assert_eq!(id_of("resolved"), fired, "{err}");
    assert!(!err.contains("/item/1 latency"), "{err}");
    assert!(err.contains("7200 events"), "{err}");
    assert!(err.contains("in 1 incidents (0 still firing)"), "{err}");
    assert!(err.contains("2 malformed lines"), "{err}");
    assert!(err.contains("line 1002: "), "{err}");
    assert!(dir.path().join("state/v000001.json").exists());
}

#[test]
fn bad_watch_config_is_exit_6_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.toml");
    std::fs::write(
        &cfg,
        "window = \"10s\"\n\n[[logs]]\npath = \"/x\"\nfollow = maybe\n",
    )
    .unwrap();
    let out = perfpilot()
        .args(["baseline", "watch", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:5:10", cfg.display())), "{err}");
}

#[test]
fn nab_without_a_corpus_says_so() {
    let out = perfpilot()
        .args(["baseline", "nab", "--data", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a NAB corpus"));
}

#[test]
fn server_lists_and_acknowledges_alerts() {
    // An incident with a finding about /search.
    let about_search = |a: &serde_json::Value| {
        a["findings"].as_array().is_some_and(|f| {
            f.iter().any(|f| {
                f["feature"]
                    .as_str()
                    .is_some_and(|x| x.starts_with("/search "))
            })
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let server = ServerProcess::start(dir.path(), &["--baseline-config".as_ref(), cfg.as_os_str()]);
    let base = server.base.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        assert!(Instant::now() < deadline, "no alert listed within 30 s");
        if let Ok(r) = ureq::get(format!("{base}/api/v1/alerts")).call() {
            let v: serde_json::Value =
                serde_json::from_str(&r.into_body().read_to_string().unwrap()).unwrap();
            let list = v["alerts"].as_array().cloned().unwrap_or_default();
            if list.iter().any(about_search) {
                assert_eq!(v["enabled"], true);
                break list;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let slow = alerts.iter().find(|a| about_search(a)).unwrap();
    assert_eq!(slow["labels"]["alertname"], "PerfpilotIncident");
    assert_eq!(slow["labels"]["incident"], slow["id"]);
    let id = slow["id"].as_str().unwrap();
    let (status, acked) =
        server.post_json(&format!("/api/v1/alerts/{id}/ack"), r#"{"by": "alice"}"#);
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["ack"]["by"], "alice");
    let (status, _) = server.post_json("/api/v1/alerts/nope/ack", "");
    assert_eq!(status, 404);

    // What normal looks like, per feature.
    let v = server.get_json("/api/v1/baselines");
    drop(server);
    assert_eq!(v["enabled"], true);
    let features = v["features"].as_array().unwrap();
    let find = |feature: &str| {
        features
            .iter()
            .find(|f| f["service"] == "shop" && f["feature"] == feature)
            .unwrap_or_else(|| panic!("no {feature} in {v:#}"))
    };
    let item = find("/item/1 latency_p50_ms");
    assert_eq!(item["kind"], "latency");
    // Warming up is `{"warming_up": {"have", "need"}}`; learned, a name.
    assert!(
        ["ready", "daily", "weekly"].contains(&item["band"]["state"].as_str().unwrap_or("")),
        "{item:#}"
    );
    // The log's latencies are 20 to 32 ms.
    let expected = item["band"]["expected"].as_f64().unwrap();
    assert!((20.0..=32.0).contains(&expected), "{item:#}");
    assert!(item["band"]["low"].as_f64().unwrap() <= expected);
    assert!(item["band"]["high"].as_f64().unwrap() >= expected);
    let last = item["latest"][1].as_f64().unwrap();
    assert!((20.0..=32.0).contains(&last), "{item:#}");
    assert_eq!(item["firing"], false);
    assert_eq!(find("errors")["kind"], "error_rate");
    assert_eq!(find("requests_per_s")["kind"], "rate");
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../baseline/testdata")
        .join(name)
}

#[test]
fn gate_passes_the_same_and_fails_a_slow_tail_as_a_ci_step() {
    let run = |candidate: &std::path::Path| {
        perfpilot()
            .args(["gate", "--baseline"])
            .arg(fixture("gate/baseline.jsonl"))
            .arg("--candidate")
            .arg(candidate)
            .args(["--max-regression", "10%"])
            .output()
            .unwrap()
    };
    let same = run(&fixture("gate/candidate_same.jsonl"));
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    assert!(String::from_utf8_lossy(&same.stdout).contains("verdict: pass"));
    let slow = run(&fixture("gate/candidate_slow_tail.jsonl"));
    assert_eq!(slow.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&slow.stdout).contains("REGRESSION (p99 latency)"));

    // A summary stands in for its log.
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("candidate.json");
    let out = perfpilot()
        .args(["baseline", "summarize"])
        .arg(fixture("gate/candidate_slow_tail.jsonl"))
        .arg("-o")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&summary).status.code(), Some(1));

    let bad = perfpilot()
        .args([
            "gate",
            "--baseline",
            "a",
            "--candidate",
            "b",
            "--max-regression",
            "lots",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn compare_shows_the_divergence_per_endpoint() {
    let out = perfpilot()
        .args(["baseline", "compare"])
        .arg(fixture("logs/access.log"))
        .arg(fixture("logs/access_candidate.log"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/api/v1/checkout"), "{text}");
    assert!(text.contains("Jensen-Shannon"), "{text}");
}

#[test]
fn a_function_taking_more_of_the_cpu_in_the_profiles_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("watch.toml");
    std::fs::write(
        &cfg,
        "window = \"1s\"\nlateness = \"1s\"\n\n[[profiles]]\nservice = \"checkout\"\nfunctions = [\"encrypt_data\"]\n\n[detectors.baseline]\nwarmup = 8\n",
    )
    .unwrap();
    let server = ServerProcess::start(dir.path(), &["--baseline-config".as_ref(), cfg.as_os_str()]);
    let share_alerts = || -> Vec<serde_json::Value> {
        server.get_json("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| {
                a["findings"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["feature"] == "cpu_share:encrypt_data"))
            })
            .collect()
    };
    // A profile a second: encrypt_data is 10% of the CPU for 20 s, then
    // 60%.
    let started = Instant::now();
    let mut found = None;
    for second in 0..40 {
        let (hot, rest) = if second < 20 { (10, 90) } else { (60, 40) };
        server.push_cpu(
            "checkout",
            &format!("main;handle;encrypt_data {hot}\nmain;handle;parse {rest}\n"),
        );
        let alerts = share_alerts();
        if second < 20 {
            assert!(alerts.is_empty(), "an alert before the change: {alerts:#?}");
        } else if let Some(a) = alerts.first() {
            found = Some(a.clone());
            break;
        }
        // On the next whole second since the start.
        let next = Duration::from_secs(second + 1);
        std::thread::sleep(next.saturating_sub(started.elapsed()));
    }
    drop(server);
    let a = found.expect("no alert for encrypt_data's share within 20 s of the change");
    assert_eq!(a["labels"]["service"], "checkout");
    let share = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "cpu_share:encrypt_data")
        .unwrap();
    assert!(
        share["message"].as_str().unwrap().contains("above"),
        "{a:#?}"
    );
}

#[test]
fn replay_writes_one_json_line_per_incident_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    // The config's warm-up, window and state_dir; its log named again on
    // the command line, without format or service there.
    let cfg = config(dir.path());
    let log = dir.path().join("access.log");
    let out_path = dir.path().join("incidents.jsonl");
    let run = || {
        perfpilot()
            .args(["baseline", "replay"])
            .arg(&log)
            .args(["--service", "shop", "--config"])
            .arg(&cfg)
            .arg("--alerts-out")
            .arg(&out_path)
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("detected") && err.contains("combined format"),
        "{err}"
    );
    assert!(err.contains("7200 events"), "{err}");
    assert!(err.contains("2 malformed lines"), "{err}");
    let text = std::fs::read_to_string(&out_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty(), "{err}");
    assert!(
        lines.iter().any(|l| l["service"] == "shop"
            && l["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["feature"].as_str().unwrap().contains("/search latency"))),
        "{text}"
    );
    for l in &lines {
        assert!(l["starts_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-22T10:"));
        assert!(l["raised_at"].is_string() && l.get("resolved_at").is_some());
    }
    assert!(err.contains(&format!("{} incidents", lines.len())), "{err}");
    // Event time only: the same file again.
    assert!(run().status.success());
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), text);
}

#[test]
fn watch_writes_incidents_with_alerts_out() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = perfpilot()
        .args([
            "baseline",
            "watch",
            "--quiet",
            "--alerts-out",
            "-",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["service"], "shop");
}

#[test]
fn replay_refuses_a_bad_series_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("heap.csv");
    std::fs::write(&csv, "t,v\n1790000000,1\n1790000010,oops\n").unwrap();
    let out = perfpilot()
        .args(["baseline", "replay", "--series"])
        .arg(format!("heap:memory={}", csv.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("heap.csv:3") && err.contains("oops"), "{err}");
}
