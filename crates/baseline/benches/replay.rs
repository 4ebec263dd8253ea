//! `perfpilot baseline replay`'s engine loop on a 3-hour log at 20
//! requests a second (216,000 JSON lines, one service, four endpoints,
//! an incident in the middle): read, detect fields, merge, window, judge,
//! write incidents. Goal: under a second in release.
//!
//!     cargo bench -p perfpilot-baseline --bench replay [-- --reps 3]

use std::io::Write;
use std::time::Instant;

use perfpilot_baseline::engine::{Engine, EngineConfig};
use perfpilot_baseline::replay;
use perfpilot_baseline::watch::LogSource;
use perfpilot_baseline::window::WindowConfig;

fn write_log(path: &std::path::Path) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create the log"));
    let start = 1_790_000_000_000i64;
    let mut n: u64 = 0x9e3779b97f4a7c15;
    let endpoints = ["/cart", "/pay", "/search", "/login"];
    let lines = 3 * 3600 * 20;
    for i in 0..lines {
        n ^= n << 13;
        n ^= n >> 7;
        n ^= n << 17;
        let jitter = (n >> 11) as f64 / (1u64 << 53) as f64;
        let minute = i / 20 / 60;
        let mut latency = 20.0 + 30.0 * jitter;
        if (90..100).contains(&minute) {
            latency *= 3.0;
        }
        let status = if n.is_multiple_of(1000) { 500 } else { 200 };
        writeln!(
            out,
            "{{\"ts\":{:.3},\"duration_ms\":{latency:.2},\"status\":{status},\"path\":\"{}\",\"app\":\"shop\"}}",
            (start + i * 50) as f64 / 1000.0,
            endpoints[(n % 4) as usize]
        )
        .expect("write the log");
    }
    lines as u64
}

fn main() {
    let mut reps = 3;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--reps") {
        reps = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(3);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("access.jsonl");
    let lines = write_log(&path);
    let src = LogSource {
        path,
        format: None,
        service: None,
        follow: false,
        fields: Default::default(),
    };
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let mut engine = Engine::new(EngineConfig::default());
        let mut incidents = 0;
        let t = Instant::now();
        let s = replay::run(
            std::slice::from_ref(&src),
            WindowConfig::default(),
            &[],
            &mut engine,
            &mut |_| {
                incidents += 1;
                Ok(())
            },
        )
        .expect("replay");
        let took = t.elapsed().as_secs_f64();
        best = best.min(took);
        assert_eq!(s.events, lines);
        println!(
            "replay: {lines} lines, {} windows, {incidents} incidents in {took:.3} s ({:.0} lines/s)",
            s.windows,
            lines as f64 / took
        );
    }
    println!("replay of a 3-hour, 20 requests/s log: best {best:.3} s (goal: under 1 s)");
}
