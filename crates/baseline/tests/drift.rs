//! Drift between latency distributions: same against shifted, and the
//! per-endpoint comparison of two logs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use perfpilot_baseline::drift::{
    compare, compare_files, js_divergence, js_noise_floor, kl_divergence, DriftOptions,
};
use perfpilot_baseline::logs::{Event, ParseOptions};
use perfpilot_baseline::sketch::Sketch;
use rand::{Rng, SeedableRng};

fn lognormal(seed: u64, n: usize, median: f64, sigma: f64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            median * (sigma * z).exp()
        })
        .collect()
}

fn sketch(values: &[f64]) -> Sketch {
    let mut s = Sketch::new();
    values.iter().for_each(|&v| s.add(v));
    s
}

#[test]
fn same_distribution_is_near_its_noise_floor_and_a_shift_is_not() {
    let a = sketch(&lognormal(1, 20_000, 20.0, 0.5));
    let same = sketch(&lognormal(2, 20_000, 20.0, 0.5));
    let slower = sketch(&lognormal(3, 20_000, 30.0, 0.5));
    let w = 0.1;
    let js_same = js_divergence(&a, &same, w).unwrap().unwrap();
    let noise = js_noise_floor(&a, &same, w).unwrap().unwrap();
    let js_shift = js_divergence(&a, &slower, w).unwrap().unwrap();
    assert!(js_same < 3.0 * noise, "same: {js_same}, noise {noise}");
    assert!(js_same < 0.005, "{js_same}");
    assert!(js_shift > 0.05, "shifted: {js_shift}");
    assert!(js_shift > 20.0 * js_same);
    // Symmetric and bounded.
    let back = js_divergence(&slower, &a, w).unwrap().unwrap();
    assert!((back - js_shift).abs() < 1e-12);
    assert_eq!(js_divergence(&a, &a, w).unwrap(), Some(0.0));

    let kl_same = kl_divergence(&a, &same, w, 0.5).unwrap().unwrap();
    let kl_shift = kl_divergence(&a, &slower, w, 0.5).unwrap().unwrap();
    assert!(kl_shift > 10.0 * kl_same, "{kl_same} {kl_shift}");
}

#[test]
fn disjoint_distributions_reach_one_bit_and_kl_stays_finite() {
    let fast = sketch(&vec![1.0; 1000]);
    let slow = sketch(&vec![1000.0; 1000]);
    let js = js_divergence(&fast, &slow, 0.1).unwrap().unwrap();
    assert!((js - 1.0).abs() < 1e-9, "{js}");
    let kl = kl_divergence(&fast, &slow, 0.1, 0.5).unwrap().unwrap();
    assert!(kl.is_finite() && kl > 5.0, "{kl}");
    assert!(kl_divergence(&fast, &slow, 0.1, 0.0).is_err());
    assert_eq!(js_divergence(&fast, &Sketch::new(), 0.1).unwrap(), None);
}

fn events(service: &str, endpoint: &str, latencies: &[f64]) -> Vec<Event> {
    let (s, e): (Arc<str>, Arc<str>) = (Arc::from(service), Arc::from(endpoint));
    latencies
        .iter()
        .enumerate()
        .map(|(i, &l)| Event {
            ts_ms: i as i64,
            latency_ms: l,
            status: 200,
            endpoint: e.clone(),
            service: s.clone(),
        })
        .collect()
}

#[test]
fn compare_reports_each_endpoint_and_the_service() {
    let mut a = events("api", "/stable", &lognormal(1, 5000, 10.0, 0.4));
    a.extend(events("api", "/drifting", &lognormal(2, 5000, 10.0, 0.4)));
    a.extend(events("api", "/gone", &lognormal(3, 100, 10.0, 0.4)));
    let mut b = events("api", "/stable", &lognormal(4, 5000, 10.0, 0.4));
    b.extend(events("api", "/drifting", &lognormal(5, 5000, 25.0, 0.4)));
    let report = compare(&a, &b, &DriftOptions::default()).unwrap();
    let names: Vec<&str> = report.rows.iter().map(|r| &*r.endpoint).collect();
    // The service first, then endpoints by decreasing divergence.
    assert_eq!(names, ["*", "/drifting", "/stable", "/gone"]);
    let row = |n: &str| report.rows.iter().find(|r| &*r.endpoint == n).unwrap();
    assert!(row("/drifting").js.unwrap() > 0.3);
    assert!(row("/stable").js.unwrap() < 0.01);
    assert_eq!(row("/gone").js, None);
    assert_eq!(row("/gone").b_count, 0);
    assert!(row("/drifting").b_p50.unwrap() > 2.0 * row("/drifting").a_p50.unwrap());
    let shown = report.to_string();
    assert!(
        shown.contains("/drifting") && shown.contains("JS"),
        "{shown}"
    );
}

#[test]
fn environments_with_different_service_names_compare_by_endpoint() {
    let a = events("api", "/x", &lognormal(1, 1000, 10.0, 0.4));
    let b = events("api-staging", "/x", &lognormal(2, 1000, 10.0, 0.4));
    let by_service = compare(&a, &b, &DriftOptions::default()).unwrap();
    assert!(by_service.rows.iter().all(|r| r.js.is_none()));
    let opts = DriftOptions {
        ignore_service: true,
        ..DriftOptions::default()
    };
    let by_endpoint = compare(&a, &b, &opts).unwrap();
    assert_eq!(by_endpoint.rows.len(), 2);
    assert!(by_endpoint.rows.iter().all(|r| r.js.is_some()));
}

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(p)
}

#[test]
fn compare_two_log_files() {
    let parse = ParseOptions::default();
    let r = compare_files(
        &testdata("gate/baseline.jsonl"),
        &testdata("gate/candidate_slow_tail.jsonl"),
        &parse,
        &DriftOptions::default(),
    )
    .unwrap();
    let all = r.rows.iter().find(|r| &*r.endpoint == "*").unwrap();
    assert_eq!((all.a_count, all.b_count), (600, 600));
    assert!(all.b_p99.unwrap() > 1.5 * all.a_p99.unwrap());
    assert_eq!(r.a_lines.as_ref().unwrap().malformed, 2);
    // Combined format against JSON: the services differ ("default" and
    // "checkout"), so compare by endpoint.
    let r = compare_files(
        &testdata("logs/access.log"),
        &testdata("gate/baseline.jsonl"),
        &parse,
        &DriftOptions {
            ignore_service: true,
            ..DriftOptions::default()
        },
    )
    .unwrap();
    assert!(r
        .rows
        .iter()
        .any(|r| &*r.endpoint == "/api/v1/cart" && r.js.is_some()));
    assert!(compare_files(
        &testdata("nope.log"),
        &testdata("logs/access.log"),
        &parse,
        &DriftOptions::default()
    )
    .is_err());
}
