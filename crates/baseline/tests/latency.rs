//! What the event-driven watch loop promises, asserted as behaviour with
//! generous time limits (the figures are in `benches/alert_latency.rs`):
//! an incident appended to a quiet followed log alerts without any further
//! input, in both the event-driven and the fixed-tick designs; a follower
//! that just saw data sees the next line long before its idle poll.

mod common;

use common::webhook;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perfpilot_baseline::logs::{FollowOptions, LogReader};
use perfpilot_baseline::watch::{self, WatchConfig};

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Appends one burst of errors at the start of a window to an otherwise
/// silent followed log and waits for its alert.
fn incident_alerts_on_a_quiet_log(tick: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    append(&log, "");
    let (url, posts) = webhook();
    let tick = tick.map_or(String::new(), |t| format!("tick = {t:?}\n"));
    let cfg = WatchConfig::parse(
        &format!(
            "window = \"1s\"\nlateness = \"100ms\"\n{tick}\n[[logs]]\npath = {log:?}\nformat = \"json\"\nservice = \"shop\"\n\n[alerts]\nwebhooks = [{url:?}]\nresend = \"1h\"\n"
        ),
        "watch.toml",
    )
    .unwrap();
    let engine = cfg.engine().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let watcher = std::thread::spawn(move || watch::run(&cfg, engine, flag, &mut |_| {}));

    // Early in a window, so the whole burst lands in it.
    let ms = now_ms();
    std::thread::sleep(Duration::from_millis(
        (1000 - ms.rem_euclid(1000)) as u64 + 20,
    ));
    let ts = now_ms();
    let window = ts.div_euclid(1000) * 1000;
    let mut burst = String::new();
    for i in 0..40 {
        let status = if i % 2 == 0 { 500 } else { 200 };
        burst.push_str(&format!(
            "{{\"ts\": {:.3}, \"latency_ms\": 12, \"status\": {status}, \"endpoint\": \"/cart\"}}\n",
            ts as f64 / 1000.0
        ));
    }
    append(&log, &burst);

    // Nothing else is written: the alert must not wait for more input.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    let alert = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((_, body)) = posts.recv_timeout(left) else {
            panic!("no error-burst alert within 15 s; posts: {seen:#?}");
        };
        let found = body["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "PerfpilotIncident"
                        && a["findings"][0]["detector"] == "error_burst"
                })
                .cloned()
        });
        if let Some(a) = found {
            break a;
        }
        seen.push(body);
    };
    let arrived = now_ms();
    assert_eq!(alert["state"], "firing", "{alert:#?}");
    assert_eq!(alert["labels"]["service"], "shop", "{alert:#?}");
    assert_eq!(alert["starts_at_ms"].as_i64(), Some(window), "{alert:#?}");
    // It cannot come before its window closed (end + lateness).
    assert!(arrived >= window + 1000 + 100, "{arrived} vs {window}");

    stop.store(true, Ordering::Relaxed);
    let stats = watcher.join().unwrap().unwrap();
    assert_eq!(stats.events, 40);
    assert_eq!(stats.dropped_late, 0);
}

#[test]
fn an_incident_on_a_quiet_followed_log_alerts() {
    incident_alerts_on_a_quiet_log(None);
}

#[test]
fn the_fixed_tick_design_alerts_too() {
    incident_alerts_on_a_quiet_log(Some("200ms"));
}

#[test]
fn a_bad_tick_is_refused() {
    let err = WatchConfig::parse("tick = \"soon\"\n[[logs]]\npath = \"x\"\n", "watch.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("tick"), "{err}");
}

/// Right after a line came, the follower looks again within milliseconds
/// rather than after its 200 ms idle interval: a line appended just after
/// another is seen well within 100 ms. Five tries and their median keep a
/// loaded machine from failing it.
#[test]
fn a_follower_that_just_saw_data_sees_the_next_line_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    append(&path, "");
    let stop = Arc::new(AtomicBool::new(false));
    let opts = FollowOptions::new(Arc::clone(&stop));
    assert_eq!(opts.poll_interval, Duration::from_millis(200));
    let mut reader = LogReader::open(&path).unwrap().follow(opts);
    let (tx, rx) = mpsc::channel();
    let follower = std::thread::spawn(move || {
        let mut buf = Vec::new();
        while let Some(_n) = reader.next_line(&mut buf).unwrap() {
            let _ = tx.send((Instant::now(), String::from_utf8_lossy(&buf).into_owned()));
        }
    });
    let mut waits = Vec::new();
    for i in 0..5 {
        // After a quiet spell the follower is at its idle interval.
        std::thread::sleep(Duration::from_millis(400));
        append(&path, &format!("first {i}\n"));
        let (_, first) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(first, format!("first {i}"));
        let sent = Instant::now();
        append(&path, &format!("second {i}\n"));
        let (at, second) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(second, format!("second {i}"));
        waits.push(at.saturating_duration_since(sent));
    }
    stop.store(true, Ordering::Relaxed);
    follower.join().unwrap();
    waits.sort();
    assert!(
        waits[2] < Duration::from_millis(100),
        "median wait for a line right after another: {waits:?}"
    );
}
