//! Symbolization on a whole-host profile: 30 s of every process while C,
//! Rust, Go and Python workloads run, then how fast distinct addresses
//! were named and what share of sampled frames got a name. Needs root.
//!
//!     cargo bench -p perfpilot --bench symbolize [-- --seconds 30]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use perfpilot_agent::{Scope, Session, SessionConfig};

fn main() {
    common::require_root();
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let mut workloads = Vec::new();
    for kind in ["c-nofp", "rust", "go", "python"] {
        let argv = common::build(kind, dir.path());
        workloads.push(
            Command::new(&argv[0])
                .args(&argv[1..])
                .arg((seconds + 2).to_string())
                .spawn()
                .unwrap(),
        );
    }
    let mut session = Session::start(SessionConfig {
        scope: Scope::Host,
        ..Default::default()
    })
    .expect("starting a host-wide session");
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut next_drain = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        session.poll(Duration::from_millis(100));
        if Instant::now() >= next_drain {
            session.drain().unwrap();
            next_drain += Duration::from_secs(1);
        }
    }
    session.drain().unwrap();
    for mut w in workloads {
        let _ = w.wait();
    }
    let r = session.report();
    let s = r.symbolizer;
    println!(
        "symbolize: {seconds} s whole host at 99 Hz, {} samples, {} sampled frames, {} processes",
        r.samples, r.frames, r.tracker.processes_registered
    );
    println!(
        "  {} distinct addresses named in {:.3} s: {:.0} addresses/s ({} named, {} rejected as data, {} errors)",
        s.resolved,
        s.elapsed.as_secs_f64(),
        s.resolved as f64 / s.elapsed.as_secs_f64().max(1e-9),
        s.named,
        s.rejected_data,
        s.errors
    );
    println!(
        "  sampled frames with a name: {:.1}% ({} of {})",
        r.named_share() * 100.0,
        r.named_frames,
        r.frames
    );
}
