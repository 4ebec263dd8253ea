//! Requests captured from the real pyroscope-io Python SDK (see
//! testdata/README.md), decoded end to end.

mod common;

use std::collections::BTreeSet;

use common::*;
use perfpilot_wire::{batch_from_legacy, batch_from_push, LegacyIngestParams, Limits};

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn request(name: &str) -> serde_json::Value {
    serde_json::from_slice(&testdata(name)).unwrap()
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn pyroscope_io_1_4_push() {
    let req = request("push-pyroscope-io-1.4.0.request.json");
    assert_eq!(req["path"], "/push.v1.PusherService/Push");
    let headers = &req["headers"];
    let body = testdata("push-pyroscope-io-1.4.0.body");
    // Captured at 2026-11-22T19:49:48Z.
    let now_ms = 1_795_376_990_000;
    let b = batch_from_push(
        headers["content-type"].as_str().unwrap(),
        headers["content-encoding"].as_str(),
        &body,
        now_ms,
        &Limits::default(),
    )
    .unwrap();
    assert_store_contract(&b);

    let types: BTreeSet<&str> = b
        .profiles
        .iter()
        .filter_map(|p| label(&p.labels, "__profile_type__"))
        .collect();
    assert_eq!(
        types,
        [
            "memory:alloc_objects:count:space:bytes",
            "memory:alloc_space:bytes:space:bytes",
            "memory:inuse_objects:count:space:bytes",
            "memory:inuse_space:bytes:space:bytes",
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        ]
        .into_iter()
        .collect()
    );
    for p in &b.profiles {
        assert_eq!(label(&p.labels, "service_name"), Some("perfpilot.capture"));
        assert_eq!(label(&p.labels, "env"), Some("test"));
        assert_eq!(label(&p.labels, "region"), Some("local"));
        assert_eq!(
            label(&p.labels, "otel.scope.name"),
            Some("com.grafana.pyroscope/python")
        );
        assert_eq!(label(&p.labels, "process.runtime.name"), Some("cpython"));
        assert_eq!(label(&p.labels, "__name__"), None);
        assert_eq!(p.time_ms, 1_795_376_988_413);
    }

    // CPU: the pid sample label became a series label, and the tagged
    // function carries the handler tag.
    let r = readable(&b);
    let cpu: Vec<_> = r
        .iter()
        .filter(|((l, _), _)| {
            label(l, "__profile_type__") == Some("process_cpu:cpu:nanoseconds:cpu:nanoseconds")
        })
        .collect();
    assert!(cpu.iter().all(|((l, _), _)| label(l, "pid").is_some()));
    let burn = cpu
        .iter()
        .find(|((l, _), _)| label(l, "handler") == Some("burn"))
        .expect("a series tagged handler=burn");
    assert!(
        burn.1
            .keys()
            .all(|s| s.starts_with("<module>;main;burn_cpu")),
        "{:?}",
        burn.1
    );
    assert!(burn.1.values().all(|&v| v > 0 && v % 10_000_000 == 0));
    let untagged = cpu
        .iter()
        .find(|((l, _), _)| label(l, "handler").is_none())
        .expect("an untagged series");
    assert!(
        untagged.1.keys().any(|s| s.contains("allocate")),
        "{:?}",
        untagged.1
    );
}

#[test]
fn pyroscope_io_0_8_ingest_pprof() {
    let req = request("ingest-pyroscope-io-0.8.16.request.json");
    let path = req["path"].as_str().unwrap();
    let (endpoint, query) = path.split_once('?').unwrap();
    assert_eq!(endpoint, "/ingest");
    let now_ms = 1_795_377_021_000;
    let params = LegacyIngestParams::parse(query, now_ms).unwrap();
    assert_eq!(params.from_ms, 1_795_377_010_000);
    let body = testdata("ingest-pyroscope-io-0.8.16.body");
    // The body is gzip (Content-Encoding: gzip); the decoder sees that from
    // the bytes.
    assert_eq!(req["headers"]["content-encoding"], "gzip");
    let b = batch_from_legacy(
        &params,
        req["headers"]["content-type"].as_str(),
        &body,
        now_ms,
        &Limits::default(),
    )
    .unwrap();
    assert_store_contract(&b);
    assert!(!b.profiles.is_empty());
    for p in &b.profiles {
        assert_eq!(
            label(&p.labels, "__profile_type__"),
            Some("process_cpu:cpu:nanoseconds:cpu:nanoseconds")
        );
        assert_eq!(label(&p.labels, "service_name"), Some("perfpilot.capture"));
        assert_eq!(label(&p.labels, "pyroscope_spy"), Some("pyspy"));
        // Tags travel as pprof sample labels in this SDK version.
        assert_eq!(label(&p.labels, "env"), Some("test"));
        assert_eq!(label(&p.labels, "region"), Some("local"));
        assert_eq!(label(&p.labels, "handler"), Some("burn"));
        assert_eq!(p.time_ms, 1_795_377_010_000);
    }
    let total: i64 = b
        .profiles
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| s.1))
        .sum();
    // Part of a ten-second window (the first one started mid-window) of one
    // busy thread, 10 ms per sample: 3.67 s in this capture.
    assert_eq!(total % 10_000_000, 0);
    assert!(total > 1_000_000_000 && total <= 11_000_000_000, "{total}");
    let names: BTreeSet<&str> = b.strings.iter().map(String::as_str).collect();
    assert!(names.contains("burn_cpu"), "{names:?}");
}
