//! The watch loop end to end on a request log with known incidents:
//! incidents reach a webhook firing and resolved, malformed lines are counted, and
//! baselines are saved as versions and picked up again.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::webhook;

use perfpilot_baseline::watch::{self, WatchConfig};

/// An hour of a service's requests, 100 a window: /pay slows down from
/// minute 40 to 45, and /cart fails from minute 50 to 51.
fn log(path: &std::path::Path) {
    let mut out = String::new();
    let start = 1_790_000_000_000i64;
    let mut n: u64 = 1;
    for i in 0..36_000 {
        let ts = start + i * 100;
        let minute = i * 100 / 60_000;
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = (n >> 40) as f64 / (1u64 << 24) as f64;
        let (endpoint, mut latency, mut status) = if i % 2 == 0 {
            ("/pay", 40.0 + 20.0 * jitter, 200)
        } else {
            ("/cart", 10.0 + 5.0 * jitter, 200)
        };
        if endpoint == "/pay" && (40..45).contains(&minute) {
            latency *= 6.0;
        }
        if endpoint == "/cart" && minute == 50 {
            status = 503;
        }
        if i % 7 == 3 && status == 200 {
            status = if n.is_multiple_of(97) { 500 } else { 200 };
        }
        out.push_str(&format!(
            "{{\"ts\": {:.3}, \"latency_ms\": {latency:.2}, \"status\": {status}, \"endpoint\": \"{endpoint}\", \"service\": \"shop\"}}\n",
            ts as f64 / 1000.0
        ));
        if i == 100 || i == 2000 || i == 5000 {
            out.push_str("this is not a request\n");
        }
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn incidents_in_a_log_fire_and_resolve_at_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.jsonl");
    log(&log_path);
    let (url, got) = webhook();
    let state = dir.path().join("baselines");
    let config = format!(
        "window = \"10s\"\nstate_dir = {state:?}\n\n[[logs]]\npath = {log_path:?}\nformat = \"json\"\nfollow = false\n\n[alerts]\nwebhooks = [{url:?}]\nresend = \"1h\"\n"
    );
    let cfg = WatchConfig::parse(&config, "watch.toml").unwrap();
    let engine = cfg.engine().unwrap();
    let mut lines = Vec::new();
    let stats = watch::run(&cfg, engine, Arc::new(AtomicBool::new(false)), &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert_eq!(stats.lines.malformed, 3, "{:?}", stats.lines);
    assert_eq!(stats.events, 36_000);
    assert!(stats.windows >= 360 * 3, "{stats:?}");

    let posted: Vec<serde_json::Value> = got.try_iter().map(|(_, v)| v).collect();
    let alerts: Vec<&serde_json::Value> = posted
        .iter()
        .flat_map(|p| p["alerts"].as_array().unwrap())
        .collect();
    // Incidents, each with its findings inside.
    let has = |a: &serde_json::Value, feature: &str, detector: &str| {
        a["findings"].as_array().is_some_and(|fs| {
            fs.iter().any(|f| {
                f["feature"].as_str().is_some_and(|x| x.contains(feature))
                    && (detector.is_empty() || f["detector"] == detector)
            })
        })
    };
    let find = |feature: &str, detector: &str, state: &str| {
        alerts.iter().find(|a| {
            a["labels"]["alertname"] == "PerfpilotIncident"
                && a["state"] == state
                && has(a, feature, detector)
        })
    };
    let slow = find("/pay latency_p50_ms", "band", "firing")
        .unwrap_or_else(|| panic!("no latency incident for /pay: {alerts:#?}\n{lines:#?}"));
    assert_eq!(slow["labels"]["service"], "shop");
    assert_eq!(slow["labels"]["incident"], slow["id"]);
    let started = slow["starts_at_ms"].as_i64().unwrap();
    let incident = 1_790_000_000_000i64 + 40 * 60_000;
    assert!(
        (incident..incident + 60_000).contains(&started),
        "latency incident starts {} s after the incident",
        (started - incident) / 1000
    );
    // Its quantiles and the service aggregate are the same incident.
    let slow_id = slow["id"].clone();
    assert!(has(slow, "/pay latency_p90_ms", ""), "{slow:#?}");
    let resolved = alerts
        .iter()
        .find(|a| a["id"] == slow_id && a["state"] == "resolved")
        .unwrap_or_else(|| panic!("the /pay incident never resolved: {alerts:#?}"));
    assert!(resolved["resolved_at_ms"].as_i64().unwrap() > started);
    assert!(
        find("/cart errors", "error_burst", "firing").is_some(),
        "{alerts:#?}"
    );
    // Nothing about /cart's latency or the traffic, which never changed.
    assert!(
        !alerts.iter().any(|a| has(a, "/cart latency", "")),
        "{alerts:#?}"
    );
    assert!(
        !alerts.iter().any(|a| has(a, "requests_per_s", "")),
        "{alerts:#?}"
    );
    // Two problems, two incidents at most (one if the second came before
    // the first went quiet), not one per feature and detector.
    let ids: std::collections::BTreeSet<&str> =
        alerts.iter().filter_map(|a| a["id"].as_str()).collect();
    assert!(ids.len() <= 2, "{ids:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("firing: incident ")),
        "{lines:#?}"
    );

    // Saved as version 1; a second run starts from it.
    assert!(state.join("v000001.json").exists());
    let engine = cfg.engine().unwrap();
    let stats = watch::run(&cfg, engine, Arc::new(AtomicBool::new(false)), &mut |_| {}).unwrap();
    assert_eq!(stats.reloaded_version, Some(1));
    assert_eq!(stats.saved_version, Some(2));
}

#[test]
fn bad_configs_say_where() {
    let err = WatchConfig::parse(
        "window = \"10s\"\n[[logs]]\npath = \"x\"\nfromat = \"json\"\n",
        "w.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("w.toml:4:1"), "{err}");
    assert!(err.contains("fromat"), "{err}");
    let err = WatchConfig::parse(
        "window = \"10 parsecs\"\n[[logs]]\npath = \"x\"\n",
        "w.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("window"), "{err}");
    let err = WatchConfig::parse("", "w.toml").unwrap_err().to_string();
    assert!(err.contains("nothing to watch"), "{err}");
}

/// Runs `f` on a thread with Rust's default 2 MiB stack, the stack of the
/// server's threads that read configs and saved baselines.
fn on_a_2mib_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn configs_nested_thousands_deep_are_errors_not_crashes() {
    let message = "nests more than 80 levels deep (the limit for a config file)";
    let parse = |text: String| {
        on_a_2mib_stack(move || WatchConfig::parse(&text, "w.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let arrays = |levels| format!("window = {}1{}\n", "[".repeat(levels), "]".repeat(levels));
    // At the limit, only the type is wrong.
    let err = parse(arrays(80));
    assert!(err.contains("invalid type"), "{err}");
    // Past it, the first bracket too many.
    for levels in [81, 10_000] {
        assert_eq!(parse(arrays(levels)), format!("w.toml:1:90: {message}"));
    }
    let levels = 10_000;
    let tables = format!(
        "window = {}1{}\n",
        "{a = ".repeat(levels),
        "}".repeat(levels)
    );
    assert_eq!(parse(tables), format!("w.toml:1:410: {message}"));
    // Keys nested too deep have no position.
    for keys in [
        format!("{} = 1\n", vec!["a"; levels].join(".")),
        format!("[{}]\n", vec!["a"; levels].join(".")),
    ] {
        assert_eq!(parse(keys), format!("w.toml: {message}"));
    }
}

#[test]
fn a_saved_baseline_nested_thousands_deep_is_an_error_not_a_crash() {
    use perfpilot_baseline::engine::{Engine, EngineConfig};
    let dir = tempfile::tempdir().unwrap();
    let levels = 10_000;
    std::fs::write(
        dir.path().join("v000001.json"),
        format!(
            "{{\"unknown\": {}{}}}",
            "[".repeat(levels),
            "]".repeat(levels)
        ),
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    let err = on_a_2mib_stack(move || Engine::new(EngineConfig::default()).reload(&path))
        .unwrap_err()
        .to_string();
    // serde_json skips the unknown field without recursing.
    assert!(err.contains("v000001.json:1:"), "{err}");
}

#[test]
fn a_watch_service_publishes_its_alerts_and_is_joined() {
    use perfpilot_baseline::watch::{ServiceOptions, WatchService};
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.jsonl");
    log(&log_path);
    let config = format!(
        "window = \"10s\"\n\n[[logs]]\npath = {log_path:?}\nformat = \"json\"\nfollow = false\n"
    );
    let cfg = WatchConfig::parse(&config, "watch.toml").unwrap();
    let engine = cfg.engine().unwrap();
    let service = WatchService::spawn(cfg, engine, ServiceOptions::default()).unwrap();
    let feed = service.feed();
    let changes = feed.subscribe();
    let stats = service.join().unwrap();
    assert_eq!(stats.events, 36_000);
    // The snapshot has what the engine ended with; the feed, every
    // change since the subscription.
    let snap = feed.snapshot();
    assert!(
        snap.incidents().iter().any(|a| a
            .findings
            .iter()
            .any(|f| f.feature == "/pay latency_p50_ms")),
        "{:#?}",
        snap.incidents()
    );
    let got = changes.drain();
    assert!(got.iter().any(|c| c.fired), "{got:#?}");
    assert_eq!(changes.dropped(), 0);
    assert!(snap.latest("shop", "/pay latency_p50_ms").is_some());
    assert!(!snap.features(snap.taken_at_ms).is_empty());
}

#[test]
fn an_alerts_only_service_keeps_raised_alerts_until_stopped() {
    use perfpilot_baseline::detectors::{Finding, Severity};
    use perfpilot_baseline::engine::{Engine, EngineConfig};
    use perfpilot_baseline::feed::Command;
    use perfpilot_baseline::watch::{ServiceOptions, WatchService};
    use std::collections::BTreeMap;
    let service = WatchService::alerts_only(
        Engine::new(EngineConfig::default()),
        ServiceOptions::default(),
    )
    .unwrap();
    let feed = service.feed();
    let changes = feed.subscribe();
    let finding = Finding {
        detector: "autopilot_made_worse".into(),
        feature: "autopilot p/a".into(),
        score: 1.0,
        severity: Severity::Warning,
        observed: 0.0,
        expected: None,
        since_ms: 1_000,
        at_ms: 1_000,
        message: "worse".into(),
    };
    feed.send(Command::Raise {
        service: "shop".into(),
        feature: "autopilot p/a".into(),
        labels: BTreeMap::new(),
        findings: vec![finding],
        now_ms: 1_000,
    })
    .unwrap();
    let change = changes
        .receiver()
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    assert!(change.fired);
    let id = change.incident.id.clone();
    let acked = feed.ack(&id, "alice", 2_000).unwrap().unwrap();
    assert_eq!(acked.ack.unwrap().by, "alice");
    assert!(feed.ack("nope", "alice", 2_000).unwrap().is_none());
    assert_eq!(
        feed.snapshot()
            .incident(&id)
            .unwrap()
            .ack
            .as_ref()
            .unwrap()
            .by,
        "alice"
    );
    service.stop();
    service.join().unwrap();
    // Stopped: commands are refused, not left waiting.
    assert!(feed.ack(&id, "bob", 3_000).is_err());
}

#[test]
fn a_serving_watch_answers_acks_after_its_log_ends_until_stopped() {
    use perfpilot_baseline::watch::{ServiceOptions, WatchService};
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.jsonl");
    log(&log_path);
    let config = format!(
        "window = \"10s\"\n\n[[logs]]\npath = {log_path:?}\nformat = \"json\"\nfollow = false\n"
    );
    let cfg = WatchConfig::parse(&config, "watch.toml").unwrap();
    let engine = cfg.engine().unwrap();
    let opts = ServiceOptions {
        keep_serving: true,
        ..ServiceOptions::default()
    };
    let service = WatchService::spawn(cfg, engine, opts).unwrap();
    let feed = service.feed();
    // The log is read to its end (its last window published), and the
    // engine still answers.
    let last_window = 1_790_000_000_000i64 + 3_590_000;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not read within 60 s"
        );
        let snap = feed.snapshot();
        if snap
            .latest("shop", "requests_per_s")
            .is_some_and(|(t, _)| t >= last_window)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let id = feed.snapshot().incidents()[0].id.clone();
    let acked = feed.ack(&id, "alice", 1).unwrap().unwrap();
    assert_eq!(acked.ack.unwrap().by, "alice");
    service.stop();
    let stats = service.join().unwrap();
    assert_eq!(stats.events, 36_000);
}
