//! `perfpilot baseline replay`'s library side: fields detected, a memory
//! series with a leak judged beside the logs, one JSON line per incident
//! in event time, the same on every run.

use std::io::Write;

use perfpilot_baseline::engine::{Engine, EngineConfig};
use perfpilot_baseline::replay::{self, IncidentLine, Series};
use perfpilot_baseline::series::SeriesSpec;
use perfpilot_baseline::watch::LogSource;
use perfpilot_baseline::window::WindowConfig;

const START: i64 = 1_790_000_000_000;

/// Two hours at 20 requests a second, fields under other common names;
/// latency triples from minute 80 to 90.
fn write_log(path: &std::path::Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut n: u64 = 11;
    for i in 0..2 * 3600 * 20i64 {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = (n >> 40) as f64 / (1u64 << 24) as f64;
        let mut latency = 0.020 + 0.010 * jitter;
        if (80..90).contains(&(i / 20 / 60)) {
            latency *= 3.0;
        }
        writeln!(
            out,
            "{{\"time\":\"{}\",\"request_time\":{latency:.4},\"status_code\":200,\"route\":\"/pay\",\"app\":\"shop\"}}",
            perfpilot_baseline::alerts::rfc3339(START + i * 50)
        )
        .unwrap();
    }
}

/// Heap every 10 s: flat with a sawtooth for an hour, then growing.
fn write_heap(path: &std::path::Path) {
    let mut out = String::from("timestamp,value\n");
    for i in 0..720i64 {
        let saw = (i % 6) as f64 * 1e6;
        let growth = if i > 360 { (i - 360) as f64 * 2e6 } else { 0.0 };
        out.push_str(&format!(
            "{},{}\n",
            (START + i * 10_000) / 1000,
            500e6 + saw + growth
        ));
    }
    std::fs::write(path, out).unwrap();
}

fn run(dir: &std::path::Path) -> (Vec<IncidentLine>, replay::ReplaySummary) {
    let log = dir.join("access.jsonl");
    let heap = dir.join("heap.csv");
    if !log.exists() {
        write_log(&log);
        write_heap(&heap);
    }
    let src = LogSource {
        path: log,
        format: None,
        service: None,
        follow: false,
        fields: Default::default(),
    };
    let spec = SeriesSpec::parse(&format!("heap:memory={}", heap.display())).unwrap();
    let series = vec![Series::load(spec).unwrap()];
    let mut engine = Engine::new(EngineConfig::default());
    let mut lines = Vec::new();
    let s = replay::run(
        &[src],
        WindowConfig::default(),
        &series,
        &mut engine,
        &mut |l| {
            lines.push(l.clone());
            Ok(())
        },
    )
    .unwrap();
    (lines, s)
}

#[test]
fn a_log_and_a_heap_series_give_incidents_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, s) = run(dir.path());
    assert_eq!(s.events, 2 * 3600 * 20);
    assert_eq!(s.lines.malformed, 0);
    assert_eq!(s.series_points, 720);
    assert!(
        s.detected[0].contains("\"time\"")
            && s.detected[0].contains("\"request_time\" in seconds")
            && s.detected[0].contains("\"app\""),
        "{:?}",
        s.detected
    );
    assert!(!lines.is_empty());
    let rfc = perfpilot_baseline::alerts::rfc3339;
    let slow = START + 80 * 60_000;
    let (from, to) = (rfc(slow - 60_000), rfc(slow + 60_000));
    // One incident per service problem: the slowdown's findings may join
    // the leak's incident, each with its own start.
    assert!(
        lines.iter().any(|l| l.service == "shop"
            && l.findings
                .iter()
                .any(|f| f.feature.contains("latency") && f.since >= from && f.since <= to)),
        "{lines:#?}"
    );
    // The series took the logs' only service.
    assert!(
        lines
            .iter()
            .any(|l| l.service == "shop" && l.findings.iter().any(|f| f.detector == "leak")),
        "{lines:#?}"
    );
    for l in &lines {
        let v = serde_json::to_value(l).unwrap();
        for k in [
            "id",
            "service",
            "starts_at",
            "raised_at",
            "resolved_at",
            "severity",
            "summary",
            "findings",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert!(l.starts_at.ends_with('Z') && l.raised_at.ends_with('Z'));
        assert!(l.raised_at >= l.starts_at, "{l:?}");
    }
    // Event time only: the same again.
    let (again, _) = run(dir.path());
    assert_eq!(again, lines);
}

#[test]
fn a_log_without_a_latency_field_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("odd.jsonl");
    std::fs::write(&log, "{\"ts\":1790000000,\"took\":3,\"status\":200}\n").unwrap();
    let src = LogSource {
        path: log,
        format: None,
        service: None,
        follow: false,
        fields: Default::default(),
    };
    let mut engine = Engine::new(EngineConfig::default());
    let e = replay::run(
        &[src],
        WindowConfig::default(),
        &[],
        &mut engine,
        &mut |_| Ok(()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("odd.jsonl") && e.contains("no latency field"),
        "{e}"
    );
    assert!(e.contains("status, took, ts"), "{e}");
}
