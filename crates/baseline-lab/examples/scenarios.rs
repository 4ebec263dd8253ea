//! The scenario suite over a range of seeds with the engine's defaults:
//! `cargo run --release -p perfpilot-baseline-lab --example scenarios -- 1 20`
//! (the tuning seeds; the test seeds are 1001 and up and are not for
//! tuning). `-v` lists every raised incident with its evidence.

use perfpilot_baseline::engine::EngineConfig;
use perfpilot_baseline_lab::scenarios::harness;
use perfpilot_baseline_lab::scenarios::score::SuiteScore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let (from, to) = match nums[..] {
        [a, b, ..] => (a, b),
        [a] => (a, a),
        [] => (1, 20),
    };
    let config = EngineConfig::default();
    let mut total = SuiteScore::default();
    for seed in from..=to {
        let (table, detail) = harness::suite(seed, &config)?;
        if verbose {
            for d in &detail {
                for (g, false_alert) in d.groups.iter().zip(&d.false_alert) {
                    println!(
                        "{} {} +{:.1} min: {:?}",
                        if *false_alert { "FALSE" } else { "ok   " },
                        d.scenario,
                        (g.raised_at_ms - d.start_ms) as f64 / 60_000.0,
                        g.evidence
                    );
                }
            }
        }
        total.extend(table);
    }
    // Per scenario over the seeds; `-v` lists every seed's row too.
    if verbose {
        print!("{total}");
    }
    print!("{}", total.by_scenario());
    Ok(())
}
