//! The NAB scorer port reproduces NAB's own normalised scores for its
//! reference detectors from their per-row outputs.

mod common;

use common::nab_dir;

use perfpilot_baseline_lab::nab::{self, Profile};

// From results/final_results.json.
const EXPECTED: [(&str, [f64; 3]); 3] = [
    ("numenta", [70.101_056, 63.116_842, 74.320_244]),
    ("windowedGaussian", [39.649_523, 20.867_986, 47.410_027]),
    ("null", [0.0, 0.0, 0.0]),
];

#[test]
fn reproduces_reference_detectors() {
    let dir = nab_dir();
    for (detector, expected) in EXPECTED {
        let report = nab::score_results(&dir, &dir.join("results").join(detector), None, None)
            .unwrap_or_else(|e| panic!("{detector}: {e}"));
        for (profile, want) in Profile::ALL.into_iter().zip(expected) {
            let got = report.score(profile).expect("profile scored");
            let best = report.best_threshold[&profile].normalized;
            println!("{detector} {profile}: {got:.6} (NAB {want:.6}), best threshold {best:.6}");
            assert!(
                (got - want).abs() < 0.1,
                "{detector} {profile}: {got:.4}, NAB has {want:.4}"
            );
            // The hill climb is NAB's own, so its numbers come out exactly.
            assert!((got - want).abs() < 1e-4, "{detector} {profile}: {got}");
            // No threshold beats the best one, and NAB's climb came within
            // 0.1 of it for these detectors.
            assert!(
                best >= got - 1e-9 && best - got < 0.1,
                "{detector} {profile}: best threshold {best}"
            );
        }
    }
}

#[test]
fn report_ends_with_the_summary_line() {
    let dir = nab_dir();
    let report = nab::score_results(&dir, &dir.join("results/numenta"), None, None)
        .expect("numenta results");
    let text = report.to_string();
    let last = text.lines().last().expect("report has lines");
    assert_eq!(
        last,
        "NAB standard=70.10 reward_low_FP_rate=63.12 reward_low_FN_rate=74.32"
    );
}
