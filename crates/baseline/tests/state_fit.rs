//! Saved baselines that do not fit the input are relearned, and said so,
//! instead of silently finding nothing: a state_dir reused on a log of an
//! earlier period, a version loaded and then a different log replayed.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use perfpilot_baseline::engine::{Engine, EngineConfig};
use perfpilot_baseline::logs::Event;
use perfpilot_baseline::watch::{self, WatchConfig};
use perfpilot_baseline::window::{windows, WindowConfig};

/// Two hours of one service's requests from `start_ms`, 20 a second;
/// latency triples from minute 90 to 100 when `incident`.
fn traffic(start_ms: i64, incident: bool) -> Vec<Event> {
    let (svc, ep): (Arc<str>, Arc<str>) = (Arc::from("shop"), Arc::from("/pay"));
    let mut n: u64 = 7;
    (0..2 * 3600 * 20)
        .map(|i: i64| {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jitter = (n >> 40) as f64 / (1u64 << 24) as f64;
            let minute = i / 20 / 60;
            let mut latency = 40.0 + 20.0 * jitter;
            if incident && (90..100).contains(&minute) {
                latency *= 3.0;
            }
            Event {
                ts_ms: start_ms + i * 50,
                latency_ms: latency,
                status: 200,
                endpoint: Arc::clone(&ep),
                service: Arc::clone(&svc),
            }
        })
        .collect()
}

fn run(engine: &mut Engine, events: &[Event]) -> usize {
    let (ws, _) = windows(events, WindowConfig::default()).unwrap();
    ws.iter().map(|w| engine.observe_window(w).len()).sum()
}

const LATER: i64 = 1_790_000_000_000;
const EARLIER: i64 = LATER - 86_400_000;

#[test]
fn a_saved_version_meeting_an_earlier_log_is_relearned_and_finds_the_incident() {
    let dir = tempfile::tempdir().unwrap();
    // Learned on a quiet log, saved.
    let mut first = Engine::new(EngineConfig::default());
    assert_eq!(run(&mut first, &traffic(LATER, false)), 0);
    first.save(dir.path(), LATER).unwrap();

    // The defect, as it was: a monitor ignores windows before its history,
    // so the saved monitors alone find nothing in the earlier log.
    let mut stale = Engine::new(EngineConfig::default());
    stale.reload(dir.path()).unwrap();
    let m = stale.monitor("shop", "latency_p50_ms").unwrap().clone();
    let mut m = m;
    let (ws, _) = windows(&traffic(EARLIER, true), WindowConfig::default()).unwrap();
    let found: usize = ws
        .iter()
        .filter(|w| w.is_aggregate())
        .map(|w| m.update(w.start_ms, w.p50).len())
        .sum();
    assert_eq!(found, 0);
    assert!(m.clock_jumps > 0);

    // Through the engine: reported and relearned, and the incident found.
    let mut e = Engine::new(EngineConfig::default());
    assert_eq!(e.reload(dir.path()).unwrap(), Some(1));
    let findings = run(&mut e, &traffic(EARLIER, true));
    assert!(findings > 0, "no findings after relearning");
    let lines = e.drain_fit_lines();
    assert!(
        lines.iter().any(|l| l.contains("shop")
            && l.contains("before all of it")
            && l.contains("relearned")),
        "{lines:#?}"
    );
    assert!(e.relearned() > 0);
}

#[test]
fn a_saved_version_long_before_the_input_is_relearned() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Engine::new(EngineConfig::default());
    run(&mut first, &traffic(EARLIER - 30 * 86_400_000, false));
    first.save(dir.path(), LATER).unwrap();
    let mut e = Engine::new(EngineConfig::default());
    e.reload(dir.path()).unwrap();
    run(&mut e, &traffic(LATER, true));
    let lines = e.drain_fit_lines();
    assert!(
        lines.iter().any(|l| l.contains("more than 7 days")),
        "{lines:#?}"
    );
}

#[test]
fn a_fitting_saved_version_is_kept_silently() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Engine::new(EngineConfig::default());
    run(&mut first, &traffic(EARLIER, false));
    first.save(dir.path(), LATER).unwrap();
    let mut e = Engine::new(EngineConfig::default());
    e.reload(dir.path()).unwrap();
    let findings = run(&mut e, &traffic(EARLIER + 2 * 3_600_000, true));
    assert!(findings > 0);
    assert_eq!(e.drain_fit_lines(), Vec::<String>::new());
    assert_eq!(e.relearned(), 0);
}

fn write_log(path: &std::path::Path, events: &[Event]) {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "{{\"ts\": {:.3}, \"latency_ms\": {:.2}, \"status\": {}, \"endpoint\": \"{}\", \"service\": \"{}\"}}\n",
            e.ts_ms as f64 / 1000.0,
            e.latency_ms,
            e.status,
            e.endpoint,
            e.service
        ));
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_reused_state_dir_on_an_earlier_log_still_finds_the_incident() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let quiet = dir.path().join("quiet.jsonl");
    let earlier = dir.path().join("earlier.jsonl");
    write_log(&quiet, &traffic(LATER, false));
    write_log(&earlier, &traffic(EARLIER, true));
    let config = |log: &std::path::Path| {
        let text = format!(
            "state_dir = {state:?}\n[[logs]]\npath = {log:?}\nfollow = false\n[alerts]\nresend = \"1h\"\n"
        );
        WatchConfig::parse(&text, "watch.toml").unwrap()
    };
    let cfg = config(&quiet);
    let stats = watch::run(
        &cfg,
        cfg.engine().unwrap(),
        Arc::new(AtomicBool::new(false)),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(stats.findings, 0);
    let cfg = config(&earlier);
    let mut lines = Vec::new();
    let stats = watch::run(
        &cfg,
        cfg.engine().unwrap(),
        Arc::new(AtomicBool::new(false)),
        &mut |l| lines.push(l.to_string()),
    )
    .unwrap();
    assert_eq!(stats.reloaded_version, Some(1));
    assert!(stats.findings > 0, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("relearned from scratch")),
        "{lines:#?}"
    );
}

#[test]
fn a_service_the_saved_version_lacks_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Engine::new(EngineConfig::default());
    run(&mut first, &traffic(EARLIER, false));
    first.save(dir.path(), LATER).unwrap();
    let mut e = Engine::new(EngineConfig::default());
    e.reload(dir.path()).unwrap();
    let other: Vec<Event> = traffic(EARLIER + 2 * 3_600_000, false)
        .into_iter()
        .map(|mut ev| {
            ev.service = Arc::from("billing");
            ev
        })
        .collect();
    run(&mut e, &other);
    let lines = e.drain_fit_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("service billing is not in saved version 1 (which has shop)")),
        "{lines:#?}"
    );
}
