//! Request logs: both formats, configurable fields, malformed lines, and
//! following a file through rotation and truncation.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use perfpilot_baseline::logs::{
    parse_clf_time, parse_rfc3339, read_file, FollowOptions, JsonFields, LatencyUnit, LineError,
    LogFormat, LogReader, ParseOptions, Parser, OTHER_ENDPOINT, UNPARSED_ENDPOINT,
};
use rand::{Rng, SeedableRng};

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(p)
}

fn parser() -> Parser {
    Parser::new(&ParseOptions::default())
}

#[test]
fn json_line_with_default_fields() {
    let mut p = parser();
    let ev = p
        .parse(br#"{"ts":"2026-03-02T14:00:00.250+01:00","service":"cart","endpoint":"/api/items?x=1","status":503,"latency_ms":12.5}"#)
        .unwrap()
        .unwrap();
    assert_eq!(ev.ts_ms, 1_772_456_400_250);
    assert_eq!(&*ev.service, "cart");
    assert_eq!(&*ev.endpoint, "/api/items");
    assert_eq!(ev.status, 503);
    assert_eq!(ev.latency_ms, 12.5);
    assert!(ev.is_error());
}

#[test]
fn epoch_seconds_and_numeric_strings() {
    let mut p = parser();
    let ev = p
        .parse(br#"{"ts":1772460000.5,"endpoint":"/","status":"200","latency_ms":"3"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(ev.ts_ms, 1_772_460_000_500);
    assert_eq!(ev.status, 200);
    assert_eq!(ev.latency_ms, 3.0);
    // No service field: the configured default.
    assert_eq!(&*ev.service, "default");
    let ev = p
        .parse(br#"{"ts":"1772460000","endpoint":"/","status":200,"latency_ms":1}"#)
        .unwrap()
        .unwrap();
    assert_eq!(ev.ts_ms, 1_772_460_000_000);
}

#[test]
fn configurable_field_names_and_units() {
    let opts = ParseOptions {
        fields: JsonFields {
            ts: "@timestamp".into(),
            latency: "duration".into(),
            latency_unit: LatencyUnit::Seconds,
            status: "http.status".into(),
            endpoint: "url.path".into(),
            service: "app".into(),
        },
        default_service: "unnamed".into(),
        ..ParseOptions::default()
    };
    let mut p = Parser::new(&opts);
    let ev = p
        .parse(br#"{"@timestamp":"2026-03-02T14:00:00Z","app":"search","url.path":"/q","http.status":200,"duration":0.0125,"latency_ms":999}"#)
        .unwrap()
        .unwrap();
    assert_eq!(&*ev.service, "search");
    assert_eq!(&*ev.endpoint, "/q");
    assert!((ev.latency_ms - 12.5).abs() < 1e-9);
    let err = p
        .parse(br#"{"@timestamp":"2026-03-02T14:00:00Z","url.path":"/q","http.status":200}"#)
        .unwrap_err();
    assert_eq!(err, LineError::MissingField("duration".into()));
}

#[test]
fn escaped_strings_are_decoded() {
    let mut p = parser();
    let ev = p
        .parse(br#"{"ts":0,"endpoint":"\/caf\u00e9\/\"x\"?q","service":"s\u00fcd","status":200,"latency_ms":1}"#)
        .unwrap()
        .unwrap();
    assert_eq!(&*ev.endpoint, "/café/\"x\"");
    assert_eq!(&*ev.service, "süd");
}

#[test]
fn numbers_read_exactly_as_the_float_parser_does() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut p = parser();
    for _ in 0..20_000 {
        let v: f64 = rng.gen_range(0.0..100_000.0);
        let text = format!("{:.*}", rng.gen_range(0..7), v);
        let line = format!(r#"{{"ts":0,"endpoint":"/","status":200,"latency_ms":{text}}}"#);
        let ev = p.parse(line.as_bytes()).unwrap().unwrap();
        assert_eq!(ev.latency_ms, text.parse::<f64>().unwrap(), "{text}");
    }
    for text in ["1e3", "-0.0", "12345678901234567.5", "0.000000000000000001"] {
        let line = format!(r#"{{"ts":0,"endpoint":"/","status":200,"latency_ms":{text}}}"#);
        match p.parse(line.as_bytes()) {
            Ok(Some(ev)) => assert_eq!(ev.latency_ms, text.parse::<f64>().unwrap().abs()),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(p
        .parse(br#"{"ts":0,"endpoint":"/","status":200,"latency_ms":-1}"#)
        .is_err());
    assert!(p
        .parse(br#"{"ts":0,"endpoint":"/","status":200,"latency_ms":inf}"#)
        .is_err());
}

#[test]
fn rfc3339_agrees_with_chrono() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..20_000 {
        let ms = rng.gen_range(-2_000_000_000_000i64..8_000_000_000_000);
        let offset = FixedOffset::east_opt(rng.gen_range(-14 * 60..=14 * 60) * 60).unwrap();
        let t = offset.timestamp_millis_opt(ms).unwrap();
        let text = t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string();
        assert_eq!(parse_rfc3339(text.as_bytes()), Some(ms), "{text}");
        let chrono = DateTime::parse_from_rfc3339(&text)
            .unwrap()
            .timestamp_millis();
        assert_eq!(chrono, ms);
        let clf = t.format("%d/%b/%Y:%H:%M:%S %z").to_string();
        assert_eq!(
            parse_clf_time(clf.as_bytes()),
            Some(ms - ms.rem_euclid(1000)),
            "{clf}"
        );
    }
    let z = Utc
        .timestamp_millis_opt(1_772_460_000_123)
        .unwrap()
        .to_rfc3339();
    assert_eq!(parse_rfc3339(z.as_bytes()), Some(1_772_460_000_123));
}

#[test]
fn combined_log_fixture() {
    let (events, stats) =
        read_file(&testdata("logs/access.log"), &ParseOptions::default()).unwrap();
    assert_eq!(stats.parsed, 301);
    assert_eq!(stats.malformed, 2);
    assert_eq!(events.len(), 301);
    // Line numbers count the file's lines, the refused ones included.
    assert_eq!(stats.samples[0].line_no, 11);
    assert_eq!(
        stats.samples[0].reason,
        "not combined log format: no $request_time after the user agent"
    );
    assert_eq!(stats.samples[1].line_no, 253);
    assert!(stats.samples[1].text.starts_with("garbage"));
    let tls: Vec<_> = events
        .iter()
        .filter(|e| &*e.endpoint == UNPARSED_ENDPOINT)
        .collect();
    assert_eq!(tls.len(), 1);
    assert_eq!(tls[0].status, 400);
    assert!(events.iter().all(|e| &*e.service == "default"));
    assert!(events.iter().any(|e| &*e.endpoint == "/api/v1/checkout"));
    let first = &events[0];
    assert_eq!(
        first.ts_ms,
        parse_clf_time(b"02/Mar/2026:13:59:58 +0000").unwrap()
    );
    assert!((first.latency_ms - 58.0).abs() < 1e-9);
}

#[test]
fn json_fixture_counts_malformed_lines_without_failing() {
    let (events, stats) =
        read_file(&testdata("gate/baseline.jsonl"), &ParseOptions::default()).unwrap();
    assert_eq!((stats.parsed, stats.malformed), (600, 2));
    assert_eq!(events.len(), 600);
    assert!(
        stats.samples[0].reason.starts_with("invalid JSON"),
        "{}",
        stats.samples[0].reason
    );
    assert_eq!(
        stats.samples[1].reason,
        "field \"latency_ms\": not a number"
    );
    let shown = stats.to_string();
    assert!(shown.contains("600 lines parsed, 2 malformed"), "{shown}");
    // Query strings are gone from endpoints.
    assert!(events.iter().all(|e| !e.endpoint.contains('?')));
}

#[test]
fn forced_format_refuses_the_other() {
    let mut p = Parser::new(&ParseOptions {
        format: Some(LogFormat::Combined),
        ..ParseOptions::default()
    });
    assert!(matches!(
        p.parse(br#"{"ts":0,"endpoint":"/","status":200,"latency_ms":1}"#),
        Err(LineError::Combined(_))
    ));
    assert_eq!(p.parse(b"   ").unwrap(), None);
}

#[test]
fn endpoint_cardinality_is_bounded() {
    let mut p = Parser::new(&ParseOptions {
        max_endpoints: 100,
        ..ParseOptions::default()
    });
    let mut other = 0;
    for i in 0..1000 {
        let line = format!(r#"{{"ts":0,"endpoint":"/users/{i}","status":200,"latency_ms":1}}"#);
        let ev = p.parse(line.as_bytes()).unwrap().unwrap();
        other += (&*ev.endpoint == OTHER_ENDPOINT) as usize;
    }
    assert_eq!(other, 900);
}

#[test]
fn reads_a_last_line_without_newline_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    fs::write(&path, "one\r\ntwo\n\nthree").unwrap();
    let mut r = LogReader::open(&path).unwrap();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    while let Some(n) = r.next_line(&mut buf).unwrap() {
        got.push((n, String::from_utf8(buf.clone()).unwrap()));
    }
    assert_eq!(
        got,
        [
            (1, "one".to_string()),
            (2, "two".into()),
            (3, "".into()),
            (4, "three".into())
        ]
    );
    assert!(LogReader::open(&dir.path().join("missing")).is_err());
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Waits until `n` lines arrived (or fails after 10 s).
fn wait_for(rx: &mpsc::Receiver<String>, got: &mut Vec<String>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => got.push(l),
            Err(_) => panic!("waited for {n} lines, got {got:?}"),
        }
    }
}

#[test]
fn follow_survives_rename_rotation_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    append(&path, "a1\na2\n");
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = FollowOptions::new(stop.clone());
    opts.poll_interval = Duration::from_millis(5);
    let mut reader = LogReader::open(&path).unwrap().follow(opts);
    let (tx, rx) = mpsc::channel();
    let follower = std::thread::spawn(move || {
        let mut buf = Vec::new();
        while let Some(_n) = reader.next_line(&mut buf).unwrap() {
            tx.send(String::from_utf8(buf.clone()).unwrap()).unwrap();
        }
        reader.reopens()
    });
    let mut got = Vec::new();
    wait_for(&rx, &mut got, 2);

    // Appended lines keep coming, a partial line only once it is whole.
    append(&path, "a3\na4-par");
    wait_for(&rx, &mut got, 3);
    append(&path, "tial\n");
    wait_for(&rx, &mut got, 4);

    // Rotation by rename: the writer still finishes a line in the old
    // file before the new one appears; both are read, in order.
    let rotated = dir.path().join("access.log.1");
    fs::rename(&path, &rotated).unwrap();
    append(&rotated, "a5\n");
    wait_for(&rx, &mut got, 5);
    append(&path, "b1\nb2\nb3\n");
    wait_for(&rx, &mut got, 8);

    // copytruncate: the same file, emptied and written again.
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    append(&path, "c1\n");
    wait_for(&rx, &mut got, 9);

    stop.store(true, Ordering::Relaxed);
    let reopens = follower.join().unwrap();
    assert_eq!(
        got,
        ["a1", "a2", "a3", "a4-partial", "a5", "b1", "b2", "b3", "c1"]
    );
    assert_eq!(reopens, 2);
}
