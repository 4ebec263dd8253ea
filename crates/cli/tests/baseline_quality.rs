//! `perfpilot baseline score` and `perfpilot baseline calibrate` through
//! the binary, on the log of `crates/baseline-lab/testdata/quality/shop_log.rs`.

mod common;

#[path = "../../baseline-lab/testdata/quality/shop_log.rs"]
mod shop_log;

use std::path::{Path, PathBuf};

use common::perfpilot;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../baseline-lab/testdata/quality")
        .join(name)
}

fn config(dir: &Path) -> PathBuf {
    let log = dir.join("shop.jsonl");
    shop_log::write(&log);
    let cfg = dir.join("watch.toml");
    std::fs::write(&cfg, shop_log::config(&log, &dir.join("state"))).unwrap();
    cfg
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn score_replays_the_config_and_reports_per_detector() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = perfpilot()
        .args(["baseline", "score", "--config"])
        .arg(&cfg)
        .arg("--labels")
        .arg(fixture("incidents.json"))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("3 incidents"), "{stdout}");
    let all = stdout
        .lines()
        .find(|l| l.starts_with("all "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let cols: Vec<&str> = all.split_whitespace().collect();
    // alerts TP FP FP/day detected missed MTTD-p50 ...
    assert_eq!(cols[5], "3/3", "{all}");
    assert_eq!(cols[6], "0", "{all}");
    // Both latency incidents are found in their second 10 s window (two
    // windows far outside the band), the error burst in its first.
    assert_eq!(cols[7], "20s", "{all}");
    assert!(stdout.contains("error_burst"), "{stdout}");
    assert!(!stdout.contains("MISSED"), "{stdout}");

    let out = perfpilot()
        .args(["baseline", "score", "--json", "--slack", "0s", "--config"])
        .arg(&cfg)
        .arg("--labels")
        .arg(fixture("incidents.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["overall"]["missed"], 0);
    assert_eq!(v["slack_ms"], 0);
    assert_eq!(v["raised_times"], true);
    assert_eq!(v["incidents"][2]["first_detector"], "error_burst");
}

#[test]
fn score_of_saved_alerts_reports_time_to_acknowledge() {
    let out = perfpilot()
        .args(["baseline", "score", "--labels"])
        .arg(fixture("incidents.json"))
        .arg("--alerts")
        .arg(fixture("alerts_acked.json"))
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = stdout.lines().find(|l| l.starts_with("all ")).unwrap();
    let cols: Vec<&str> = all.split_whitespace().collect();
    // MTTA p50 and acked.
    assert_eq!((cols[9], cols[10]), ("2m00s", "3"), "{stdout}");
    assert!(stdout.contains("MISSED"), "{stdout}");
    assert!(stdout.contains("backdated"), "{stdout}");
}

#[test]
fn bad_labels_and_alerts_are_exit_6_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = fixture("bad_time.json");
    let out = perfpilot()
        .args(["baseline", "score", "--alerts"])
        .arg(fixture("alerts_acked.json"))
        .arg("--labels")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:6:32: ", bad.display())), "{err}");
    assert!(err.contains("not an RFC 3339 time"), "{err}");

    let alerts = dir.path().join("alerts.json");
    std::fs::write(&alerts, "{\"alerts\": [\n  {\"id\": \"x\"}\n]}\n").unwrap();
    let out = perfpilot()
        .args(["baseline", "score", "--labels"])
        .arg(fixture("incidents.json"))
        .arg("--alerts")
        .arg(&alerts)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:13: missing field", alerts.display())),
        "{err}"
    );

    // Calibration checks where it will save before it starts.
    let cfg = dir.path().join("nostate.toml");
    std::fs::write(&cfg, "[[logs]]\npath = \"/nonexistent.log\"\n").unwrap();
    let out = perfpilot()
        .args(["baseline", "calibrate", "--config"])
        .arg(&cfg)
        .arg("--labels")
        .arg(fixture("incidents.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}: no state_dir", cfg.display())),
        "{err}"
    );

    let out = perfpilot()
        .args(["baseline", "score", "--labels"])
        .arg(fixture("incidents.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn calibrate_improves_and_saves_the_next_version() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = perfpilot()
        .args([
            "baseline",
            "calibrate",
            "--generations",
            "2",
            "--population",
            "6",
            "--config",
        ])
        .arg(&cfg)
        .arg("--labels")
        .arg(fixture("incidents.json"))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // Progress, per generation.
    assert!(
        stderr.contains("first population: best NAB-style score"),
        "{stderr}"
    );
    assert!(stderr.contains("generation 2/2: best"), "{stderr}");
    // "NAB-style score: 43.2 before, 97.1 after (+54.0); ..."
    let head = stdout.lines().next().unwrap();
    let nums: Vec<f64> = head
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums.len() >= 2 && nums[1] >= nums[0], "{head}");
    assert!(stdout.contains("band breach (n of n+2)"), "{stdout}");
    let state = dir.path().join("state");
    assert!(
        stdout.contains(&format!(
            "saved version 1: {}",
            state.join("v000001.json").display()
        )),
        "{stdout}"
    );
    assert!(state.join("v000001.json").exists());
    assert!(stdout.contains("[detectors]\nbreach_n = "), "{stdout}");
}
