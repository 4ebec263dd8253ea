//! Calibration that generalises: the report gives the score on a part it
//! did not tune on next to the training score, and the error-burst
//! detector is tuned too (its parameters move when errors are all there
//! is to get right).

use std::io::Write;
use std::path::Path;

use perfpilot_baseline::watch::WatchConfig;
use perfpilot_baseline_lab::calibrate::{self, CalibrateOptions, Objective};
use perfpilot_baseline_lab::quality::{Incident, Replay};

const START: i64 = 1_790_000_000_000;
const HOURS: i64 = 4;

/// 20 requests a second with steady latency. Every 20 minutes a harmless
/// blip of 6 errors in a second; every 40 minutes from minute 55 a real
/// burst: 40% errors for a minute (the labelled incidents).
fn write_log(path: &Path) -> Vec<Incident> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut n: u64 = 5;
    let mut incidents = Vec::new();
    for i in 0..HOURS * 3600 * 20 {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (n >> 40) as f64 / (1u64 << 24) as f64;
        let t = START + i * 50;
        let s = i / 20;
        let minute = s / 60;
        let burst = minute >= 55 && (minute - 55) % 40 == 0;
        let blip = minute % 20 == 7 && s % 60 == 30 && i % 20 < 6;
        let status = if blip || (burst && u < 0.4) { 503 } else { 200 };
        writeln!(
            out,
            "{{\"ts\":{:.3},\"latency_ms\":{:.2},\"status\":{status},\"endpoint\":\"/api\",\"service\":\"svc\"}}",
            t as f64 / 1000.0,
            30.0 + 5.0 * u
        )
        .unwrap();
    }
    let mut m = 55;
    while m < HOURS * 60 {
        incidents.push(Incident {
            service: "svc".into(),
            name: format!("errors at minute {m}"),
            feature: None,
            start_ms: START + m * 60_000,
            end_ms: START + (m + 1) * 60_000,
        });
        m += 40;
    }
    incidents
}

fn setup(dir: &Path) -> (WatchConfig, Replay, Vec<Incident>) {
    let log = dir.join("svc.jsonl");
    let incidents = write_log(&log);
    let cfg = WatchConfig::parse(
        &format!("[[logs]]\npath = {log:?}\nfollow = false\n"),
        "watch.toml",
    )
    .unwrap();
    let replay = Replay::load(&cfg).unwrap();
    (cfg, replay, incidents)
}

#[test]
fn error_burst_parameters_move_when_errors_are_the_only_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, replay, incidents) = setup(dir.path());
    let opts = CalibrateOptions {
        population: 8,
        generations: 3,
        objective: Objective::F1,
        ..CalibrateOptions::default()
    };
    let cal =
        calibrate::calibrate(&replay, &incidents, &cfg.detectors, &opts, &mut |_| {}).unwrap();
    assert!(
        cal.before_report.overall.false_positives > 0,
        "{}",
        cal.before_report
    );
    assert!(cal.improved, "{cal}");
    assert!(
        cal.after.min_errors != cal.before.min_errors
            || cal.after.p_threshold != cal.before.p_threshold,
        "{cal}"
    );
    assert_eq!(cal.tuned_error_burst.min_errors, cal.after.min_errors);
    let toml = cal.toml();
    assert!(toml.contains("[error_burst]"), "{toml}");
    // What it prints loads back as a watch config.
    let parsed = WatchConfig::parse(
        &format!("{toml}\n[[logs]]\npath = \"x\"\nfollow = false\n"),
        "tuned.toml",
    )
    .unwrap();
    assert_eq!(parsed.error_burst.min_errors, cal.after.min_errors);
    assert_eq!(parsed.error_burst.p_threshold, cal.after.p_threshold);
}

#[test]
fn the_report_shows_the_held_out_score_next_to_the_training_score() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, full, incidents) = setup(dir.path());
    let split = full.split_at(0.7);
    assert!(split > full.span.0 && split < full.span.1);
    let head = full.head(split);
    assert_eq!(head.span.1, split);
    let train: Vec<Incident> = incidents
        .iter()
        .filter(|i| i.start_ms < split)
        .cloned()
        .collect();
    assert!(train.len() < incidents.len());
    let opts = CalibrateOptions {
        population: 6,
        generations: 2,
        objective: Objective::F1,
        ..CalibrateOptions::default()
    };
    let mut cal = calibrate::calibrate(&head, &train, &cfg.detectors, &opts, &mut |_| {}).unwrap();
    let h = calibrate::held_out(
        &full,
        &incidents,
        Some(split),
        &cfg.detectors,
        &cal,
        &opts,
        "the last 30%".into(),
    )
    .unwrap();
    // Only the incidents after the split are scored there.
    let tested = incidents.iter().filter(|i| i.start_ms >= split).count();
    assert_eq!(h.after_report.incidents.len(), tested);
    cal.held_out = Some(h);
    let text = cal.to_string();
    assert!(text.contains("F1 (training):"), "{text}");
    assert!(text.contains("F1 (held out: the last 30%):"), "{text}");
}
