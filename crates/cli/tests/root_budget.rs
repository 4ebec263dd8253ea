//! The CPU budget and the memory cap end to end with real eBPF. Needs
//! root (CI runs as root). A recording of the known CPU workload (main ->
//! driver -> mid -> leaf_heavy | leaf_light, 3:1) with a budget far below
//! what 999 Hz costs must sample less, say so in its log and in the
//! profile's comments, and keep the split, its samples weighted by the
//! period each was taken at; profiling large binaries must keep the
//! agent's peak RSS within 64 MiB.

mod common;
use common::*;

use perfpilot_model::{Format, Profile};

/// CPU nanoseconds of the samples whose stack holds `function`.
fn cpu_nanos(p: &Profile, function: &str) -> i64 {
    p.samples()
        .iter()
        .filter(|s| {
            p.stack(s.stack)
                .iter()
                .any(|&l| p.location_name(l) == function)
        })
        .map(|s| s.values[1])
        .sum()
}

#[test]
fn root_a_tiny_budget_lowers_the_rate_and_keeps_the_split() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let argv = build("c-nofp", dir.path());
    let out_path = dir.path().join("out.pb.gz");
    let out = run_ok(
        perfpilot()
            .args(["record", "-F", "999", "--max-cpu", "0.1", "-o"])
            .arg(&out_path)
            .arg("--")
            .args(&argv)
            .arg("4"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("over the CPU budget: sampling less"),
        "no shedding logged:\n{stderr}"
    );
    let p = Format::Pprof
        .decode(&std::fs::read(&out_path).unwrap())
        .unwrap();
    let comments = p.comments.join("\n");
    assert!(comments.contains("at most 0.10% of one core"), "{comments}");
    let shed = comments
        .lines()
        .find(|l| l.contains("cpu shed: sampled at "))
        .unwrap_or_else(|| panic!("no shedding in the comments:\n{comments}"));
    // "sampled at LO-HI Hz of 999": the lowest rate is well under 999.
    let lowest: u64 = shed
        .split("sampled at ")
        .nth(1)
        .and_then(|r| r.split([' ', '-']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {shed:?}"));
    assert!(lowest < 500, "{shed}");

    let (heavy, light) = (cpu_nanos(&p, "leaf_heavy"), cpu_nanos(&p, "leaf_light"));
    assert!(heavy + light > 0, "no leaf samples:\n{comments}");
    let split = heavy as f64 / (heavy + light) as f64;
    assert!(
        (split - 0.75).abs() <= 0.05,
        "leaf_heavy has {:.1}% of the leaf CPU time (want 75% +- 5)\n{comments}",
        split * 100.0
    );
    // Samples at a lowered rate weigh more: the CPU time the profile
    // holds stays near what the workload used (4 s), not the share of it
    // sampled at 999 Hz.
    let total: i64 = p.samples().iter().map(|s| s.values[1]).sum();
    let seconds = total as f64 / 1e9;
    assert!(
        (2.5..=6.0).contains(&seconds),
        "the profile holds {seconds:.2} s of CPU for a 4 s workload\n{comments}"
    );
}
