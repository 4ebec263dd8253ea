//! The release gate on request logs, wrk output and saved summaries, and
//! the calibration of its tests.

use std::path::{Path, PathBuf};

use perfpilot_baseline::logs::ParseOptions;
use perfpilot_baseline::sketch::Sketch;
use perfpilot_baseline_lab::gate::{
    detect_format, parse_percent, parse_wrk, quantile_test, quantile_test_sketches, run,
    two_proportion_test, FeatureSummary, GateOptions, GateReport, InputFormat, Metric, Test,
    Verdict,
};
use rand::{Rng, SeedableRng};

// The request-log fixtures are the online crate's (its drift tests share them).
fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../baseline/testdata")
        .join(p)
}

fn gate(baseline: &Path, candidate: &Path) -> GateReport {
    run(&GateOptions {
        baseline: baseline.to_path_buf(),
        candidate: candidate.to_path_buf(),
        ..GateOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn row(r: &GateReport, m: Metric) -> &perfpilot_baseline_lab::gate::GateRow {
    r.rows.iter().find(|x| x.metric == m).unwrap()
}

#[test]
fn detects_each_input_kind() {
    assert_eq!(
        detect_format(&testdata("gate/baseline.jsonl")).unwrap(),
        InputFormat::JsonLog
    );
    assert_eq!(
        detect_format(&testdata("logs/access.log")).unwrap(),
        InputFormat::CombinedLog
    );
    assert_eq!(
        detect_format(&testdata("gate/wrk_baseline.txt")).unwrap(),
        InputFormat::Wrk
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    let s = FeatureSummary::from_log(&testdata("gate/baseline.jsonl"), &ParseOptions::default())
        .unwrap();
    std::fs::write(&p, s.to_json().unwrap()).unwrap();
    assert_eq!(detect_format(&p).unwrap(), InputFormat::Summary);
}

#[test]
fn an_unchanged_service_passes() {
    let r = gate(
        &testdata("gate/baseline.jsonl"),
        &testdata("gate/candidate_same.jsonl"),
    );
    assert!(!r.regressed(), "{r}");
    for m in [Metric::P50, Metric::P99, Metric::ErrorRate] {
        assert_ne!(row(&r, m).verdict, Verdict::Regression, "{r}");
    }
    assert_eq!(row(&r, Metric::P50).test, Test::OrderStatistics);
    assert_eq!(r.baseline.requests, 600);
    assert_eq!(r.baseline.lines.as_ref().unwrap().malformed, 2);
    let shown = r.to_string();
    assert!(shown.contains("verdict: pass"), "{shown}");
    assert!(shown.contains("2 malformed lines skipped"), "{shown}");
}

#[test]
fn a_slow_tail_fails_on_p99_only() {
    let r = gate(
        &testdata("gate/baseline.jsonl"),
        &testdata("gate/candidate_slow_tail.jsonl"),
    );
    assert!(r.regressed(), "{r}");
    let p99 = row(&r, Metric::P99);
    assert_eq!(p99.verdict, Verdict::Regression, "{r}");
    assert!(p99.change > 1.0, "{r}");
    assert!(p99.p_value.unwrap() < 0.05, "{r}");
    let (lo, hi) = p99.ci.unwrap();
    assert!(lo > 0.05 && lo < p99.change && p99.change < hi, "{r}");
    assert_ne!(row(&r, Metric::P50).verdict, Verdict::Regression, "{r}");
    let shown = r.to_string();
    assert!(shown.contains("REGRESSION (p99 latency)"), "{shown}");
}

#[test]
fn more_server_errors_fail_on_error_rate() {
    let r = gate(
        &testdata("gate/baseline.jsonl"),
        &testdata("gate/candidate_errors.jsonl"),
    );
    let e = row(&r, Metric::ErrorRate);
    assert_eq!(e.verdict, Verdict::Regression, "{r}");
    assert_eq!(e.test, Test::TwoProportion);
    assert!(e.candidate > 0.03 && e.baseline < 0.02, "{r}");
    assert!(r.regressed());
}

#[test]
fn a_looser_threshold_lets_the_slow_tail_through() {
    let r = run(&GateOptions {
        baseline: testdata("gate/baseline.jsonl"),
        candidate: testdata("gate/candidate_slow_tail.jsonl"),
        max_regression: parse_percent("500%").unwrap(),
        ..GateOptions::default()
    })
    .unwrap();
    assert!(!r.regressed(), "{r}");
}

#[test]
fn wrk_runs_compare_point_estimates_and_say_the_latency_test_is_unavailable() {
    let r = gate(
        &testdata("gate/wrk_baseline.txt"),
        &testdata("gate/wrk_candidate.txt"),
    );
    assert_eq!(r.baseline.format, InputFormat::Wrk);
    let p99 = row(&r, Metric::P99);
    assert!(matches!(p99.test, Test::Unavailable(_)));
    assert_eq!(p99.verdict, Verdict::Regression);
    assert!((p99.baseline - 15.02).abs() < 1e-9 && (p99.candidate - 24.87).abs() < 1e-9);
    assert!(p99.p_value.is_none() && p99.ci.is_none());
    let p50 = row(&r, Metric::P50);
    assert_eq!(p50.verdict, Verdict::Ok, "+2.5% is within 5%");
    // Counts are enough for the error-rate test.
    let e = row(&r, Metric::ErrorRate);
    assert_eq!(e.test, Test::TwoProportion);
    assert_eq!(e.verdict, Verdict::Regression);
    assert!((e.candidate - 896.0 / 441_873.0).abs() < 1e-12);
    let t = row(&r, Metric::Throughput);
    assert!((t.change - (14719.29 / 15495.57 - 1.0)).abs() < 1e-9);
    assert_eq!(t.verdict, Verdict::Regression, "-5.0% throughput: {r}");
    let shown = r.to_string();
    assert!(shown.contains("unavailable"), "{shown}");
}

#[test]
fn wrk_output_is_parsed_field_by_field() {
    let text = std::fs::read_to_string(testdata("gate/wrk_candidate.txt")).unwrap();
    let w = parse_wrk(&text, "wrk_candidate.txt").unwrap();
    assert_eq!(w.requests, 441_873);
    assert!((w.duration_s - 30.02).abs() < 1e-9);
    assert!((w.requests_per_s - 14719.29).abs() < 1e-9);
    assert_eq!(
        w.percentiles,
        [(50.0, 3.71), (75.0, 5.02), (90.0, 7.35), (99.0, 24.87)]
    );
    assert_eq!(w.non_2xx_3xx, 884);
    assert_eq!(w.socket_errors, [0, 0, 0, 12]);
    assert_eq!(w.errors(), 896);

    // wrk2 prints fractional percents, and more after the distribution.
    let wrk2 = "Running 30s test @ http://127.0.0.1:80/\n  2 threads and 10 connections\n  Latency Distribution (HdrHistogram - Recorded Latency)\n 50.000%  812.00us\n 75.000%    1.10ms\n 90.000%    1.42ms\n 99.000%    2.31ms\n 99.900%    5.12ms\n100.000%   11.20ms\n\n  Detailed Percentile spectrum:\n  29998 requests in 30.00s, 9.71MB read\nRequests/sec:    999.93\n";
    let w = parse_wrk(wrk2, "wrk2").unwrap();
    assert_eq!(w.percentile(50.0), Some(0.812));
    assert_eq!(w.percentile(99.9), Some(5.12));

    let no_latency = text.replace("Latency Distribution", "Something else");
    let err = parse_wrk(&no_latency, "x.txt").unwrap_err().to_string();
    assert!(err.contains("--latency"), "{err}");
    assert!(parse_wrk("hello", "x.txt").is_err());
}

#[test]
fn saved_summaries_gate_like_the_logs_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for name in ["baseline", "candidate_slow_tail"] {
        let s = FeatureSummary::from_log(
            &testdata(&format!("gate/{name}.jsonl")),
            &ParseOptions::default(),
        )
        .unwrap();
        assert_eq!(s.requests, 600);
        let p = dir.path().join(format!("{name}.summary.json"));
        std::fs::write(&p, s.to_json().unwrap()).unwrap();
        let back = FeatureSummary::from_json(&std::fs::read_to_string(&p).unwrap(), "x").unwrap();
        // serde_json's float parsing may differ in the last bit; counts not.
        assert_eq!(
            back.latency.bins().collect::<Vec<_>>(),
            s.latency.bins().collect::<Vec<_>>()
        );
        assert_eq!(
            (back.requests, back.errors, back.endpoints.len()),
            (s.requests, s.errors, s.endpoints.len())
        );
        paths.push(p);
    }
    let r = gate(&paths[0], &paths[1]);
    assert_eq!(r.baseline.format, InputFormat::Summary);
    let p99 = row(&r, Metric::P99);
    assert_eq!(p99.test, Test::OrderStatistics);
    assert_eq!(p99.verdict, Verdict::Regression, "{r}");
    // A summary against the log it came from: nothing changed.
    let same = gate(&paths[0], &testdata("gate/baseline.jsonl"));
    assert!(!same.regressed(), "{same}");
    assert!(row(&same, Metric::P50).change.abs() <= 0.0101, "{same}");
}

#[test]
fn broken_summaries_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    std::fs::write(
        &p,
        r#"{"format":"perfpilot-feature-summary/1","requests":3}"#,
    )
    .unwrap();
    let e = run(&GateOptions {
        baseline: p.clone(),
        candidate: testdata("gate/baseline.jsonl"),
        ..GateOptions::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a feature summary"), "{e}");
    let e = run(&GateOptions {
        baseline: dir.path().join("missing.jsonl"),
        candidate: testdata("gate/baseline.jsonl"),
        ..GateOptions::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("missing.jsonl"), "{e}");
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "not a log\n").unwrap();
    let e = gate_err(&empty);
    assert!(e.contains("no requests"), "{e}");
}

fn gate_err(p: &Path) -> String {
    run(&GateOptions {
        baseline: p.to_path_buf(),
        candidate: testdata("gate/baseline.jsonl"),
        ..GateOptions::default()
    })
    .unwrap_err()
    .to_string()
}

fn lognormal(rng: &mut rand::rngs::StdRng, n: usize, median: f64) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            median * (0.6 * z).exp()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Under no change, p < 0.05 should happen about 5% of the time; under a
/// 15% shift with 2000 requests a side, nearly always at the median.
#[test]
fn the_quantile_test_is_calibrated() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let trials = 300;
    for q in [0.5, 0.99] {
        let mut false_alarms = 0;
        let mut found = 0;
        for _ in 0..trials {
            let a = lognormal(&mut rng, 2000, 20.0);
            let b = lognormal(&mut rng, 2000, 20.0);
            let c = lognormal(&mut rng, 2000, 23.0);
            false_alarms += (quantile_test(&a, &b, q, 0.05).unwrap().p_value < 0.05) as u32;
            found += (quantile_test(&a, &c, q, 0.05).unwrap().p_value < 0.05) as u32;
        }
        let rate = false_alarms as f64 / trials as f64;
        assert!(
            (0.01..=0.10).contains(&rate),
            "q={q}: false alarm rate {rate}"
        );
        let power = found as f64 / trials as f64;
        // The tail has far fewer samples near it: less power there.
        let want = if q == 0.5 { 0.95 } else { 0.3 };
        assert!(power >= want, "q={q}: power {power}");
    }
}

#[test]
fn the_sketch_test_agrees_with_the_sample_test() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let a = lognormal(&mut rng, 20_000, 20.0);
    let b = lognormal(&mut rng, 20_000, 26.0);
    let (mut sa, mut sb) = (Sketch::new(), Sketch::new());
    a.iter().for_each(|&v| sa.add(v));
    b.iter().for_each(|&v| sb.add(v));
    for q in [0.5, 0.99] {
        let exact = quantile_test(&a, &b, q, 0.05).unwrap();
        let sketched = quantile_test_sketches(&sa, &sb, q, 0.05).unwrap();
        // Each quantile is within 1%, so their ratio within about 2%.
        assert!(
            (exact.change - sketched.change).abs() < 0.03,
            "{exact:?} {sketched:?}"
        );
        // Bucketing only widens the interval.
        assert!(
            sketched.ci.1 - sketched.ci.0 >= exact.ci.1 - exact.ci.0 - 1e-9,
            "{exact:?} {sketched:?}"
        );
        assert!(sketched.p_value < 0.001);
    }
    // p99 needs five samples beyond it on each side.
    assert!(quantile_test(&a[..400], &b[..400], 0.99, 0.05).is_none());
}

#[test]
fn two_proportions() {
    assert_eq!(two_proportion_test(0, 1000, 0, 1000), 1.0);
    assert!(two_proportion_test(5, 1000, 50, 1000) < 1e-6);
    let p = two_proportion_test(10, 1000, 12, 1000);
    assert!(p > 0.5 && p < 1.0, "{p}");
}
