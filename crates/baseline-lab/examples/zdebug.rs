use perfpilot_baseline::window::{windows, WindowConfig};
use perfpilot_baseline_lab::scenarios::{scenario, NAMES};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args[1].parse().unwrap();
    let idx: usize = args[2].parse().unwrap();
    let s = scenario(seed, idx, NAMES[idx]);
    let (ws, _) = windows(&s.events, WindowConfig::default()).unwrap();
    let inc = &s.incidents[0];
    println!(
        "{:?} dur {} min",
        inc.kind,
        (inc.end_ms - inc.start_ms) / 60000
    );
    for w in ws
        .iter()
        .filter(|w| {
            w.is_aggregate()
                && w.start_ms >= inc.start_ms - 60_000
                && w.start_ms < inc.end_ms + 60_000
        })
        .step_by(3)
    {
        println!(
            "{} n={} err={} p50={:.1} p90={:.1} p99={:.1}",
            (w.start_ms - inc.start_ms) / 1000,
            w.count,
            w.errors,
            w.p50,
            w.p90,
            w.p99
        );
    }
}
