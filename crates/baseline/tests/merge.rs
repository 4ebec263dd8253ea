//! Several logs of one watch config: merged by event time, so the same
//! events split over three files give what one file gives (the same
//! windows, the same alerts, nothing dropped as late), on every run.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use perfpilot_baseline::logs::Event;
use perfpilot_baseline::watch::{self, WatchConfig};
use perfpilot_baseline::window::{WindowConfig, Windower};

/// 40 minutes of two services, 50 requests a second; `shop`'s latency
/// quadruples from minute 25 to 30 and `auth` fails at minute 33.
fn lines() -> Vec<String> {
    let start = 1_790_000_000_000i64;
    let mut n: u64 = 3;
    (0..40 * 60 * 50)
        .map(|i: i64| {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jitter = (n >> 40) as f64 / (1u64 << 24) as f64;
            let ts = start + i * 20;
            let minute = i / 50 / 60;
            let service = if i % 2 == 0 { "shop" } else { "auth" };
            let mut latency = 30.0 + 10.0 * jitter;
            if service == "shop" && (25..30).contains(&minute) {
                latency *= 4.0;
            }
            let status = if service == "auth" && minute == 33 { 503 } else { 200 };
            format!(
                "{{\"ts\": {:.3}, \"latency_ms\": {latency:.2}, \"status\": {status}, \"endpoint\": \"/e{}\", \"service\": \"{service}\"}}",
                ts as f64 / 1000.0,
                i % 3
            )
        })
        .collect()
}

/// Alert transitions and counts of one watch over `files`.
fn watch_over(files: &[std::path::PathBuf]) -> (Vec<String>, u64, u64, u64) {
    let mut config =
        String::from("window = \"10s\"\nlateness = \"5s\"\n[alerts]\nresend = \"1h\"\n");
    for f in files {
        config.push_str(&format!("[[logs]]\npath = {f:?}\nfollow = false\n"));
    }
    let cfg = WatchConfig::parse(&config, "watch.toml").unwrap();
    let mut alerts = Vec::new();
    let stats = watch::run(
        &cfg,
        cfg.engine().unwrap(),
        Arc::new(AtomicBool::new(false)),
        &mut |l| {
            if l.starts_with("firing:") || l.starts_with("resolved:") {
                alerts.push(l.to_string());
            }
        },
    )
    .unwrap();
    (alerts, stats.windows, stats.events, stats.dropped_late)
}

#[test]
fn three_files_give_what_one_file_gives_on_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let all = lines();
    let one = dir.path().join("all.jsonl");
    std::fs::write(&one, all.join("\n") + "\n").unwrap();
    // Split by a rule unrelated to time: each file stays in time order,
    // and between files events interleave finely.
    let parts: Vec<std::path::PathBuf> = (0..3)
        .map(|k| {
            let p = dir.path().join(format!("part{k}.jsonl"));
            let text: Vec<&str> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| (i * 7 + i / 5) % 3 == k)
                .map(|(_, l)| l.as_str())
                .collect();
            std::fs::write(&p, text.join("\n") + "\n").unwrap();
            p
        })
        .collect();
    let single = watch_over(std::slice::from_ref(&one));
    assert_eq!(single.2, all.len() as u64);
    assert_eq!(single.3, 0, "no event late in one file");
    assert!(
        single.0.iter().any(|a| a.starts_with("firing:")),
        "{single:?}"
    );
    for run in 0..4 {
        let split = watch_over(&parts);
        assert_eq!(split.3, 0, "run {run}: events dropped as late");
        assert_eq!(split.2, single.2, "run {run}");
        assert_eq!(split.1, single.1, "run {run}: windows differ");
        assert_eq!(split.0, single.0, "run {run}: alerts differ");
    }
}

fn ev(ts_ms: i64) -> Event {
    Event {
        ts_ms,
        latency_ms: 1.0,
        status: 200,
        endpoint: Arc::from("/"),
        service: Arc::from("s"),
    }
}

#[test]
fn followed_sources_hold_windows_open_until_each_has_passed() {
    let cfg = WindowConfig {
        width_ms: 10_000,
        lateness_ms: 1_000,
        ..WindowConfig::default()
    };
    let mut w = Windower::new(cfg).unwrap().with_sources(2);
    let mut out = Vec::new();
    // Source 0 runs a minute ahead of source 1.
    for t in (0..60_000).step_by(500) {
        w.push_from(0, &ev(t), &mut out);
    }
    assert!(out.is_empty(), "closed before source 1 was heard from");
    for t in (0..60_000).step_by(500) {
        w.push_from(1, &ev(t + 250), &mut out);
    }
    assert_eq!(w.dropped_late(), 0);
    // Source 1 went quiet: idle, it no longer holds the rest open.
    w.set_idle(1, true, &mut out);
    w.set_idle(0, true, &mut out);
    let mut rest = Vec::new();
    w.flush(&mut rest);
    let total: u64 = out
        .iter()
        .chain(&rest)
        .filter(|f| f.is_aggregate())
        .map(|f| f.count)
        .sum();
    assert_eq!(total, 240);
}
