//! The request log behind the alert-quality and calibration tests, shared
//! by the baseline crate's tests and the CLI's (`#[path]`-included).
//!
//! 45 minutes of `shop` from 2026-11-22T10:00:00Z as JSON lines, 10
//! requests a second, a third to /search (40..60 ms) and the rest to /item
//! (10..15 ms). Three labelled incidents (`incidents.json` next to this
//! file):
//!
//! - 10:12:00–10:15:00 "slow search": /search five times slower;
//! - 10:24:00–10:28:00 "slow everything": every request 2.5 times slower;
//! - 10:36:00–10:37:00 "item errors": a third of /item answers 503.
//!
//! And noise that is no incident: /search three times slower for 30 s at
//! 10:08, 10:19, 10:31 and 10:41 (a GC pause, a cold cache). Three
//! windows out of the band is enough for the default band breach (3 of 5)
//! and for the default CUSUM threshold, so default parameters page for
//! each of them.

// Each test crate that includes this uses a part of it.
#![allow(dead_code)]

/// 2026-11-22T10:00:00Z in Unix milliseconds.
pub const START_MS: i64 = 1_795_341_600_000;
pub const MINUTES: i64 = 45;
/// (start, end) minutes after `START_MS` of the labelled incidents.
pub const INCIDENTS: [(i64, i64); 3] = [(12, 15), (24, 28), (36, 37)];
/// Starts (seconds after `START_MS`) of the 30-second noise spikes.
pub const SPIKES: [i64; 4] = [8 * 60, 19 * 60, 31 * 60, 41 * 60];

pub fn write(path: &std::path::Path) {
    let mut out = String::new();
    let mut n: u64 = 7;
    for i in 0..MINUTES * 600 {
        let ms = i * 100;
        let secs = ms / 1000;
        let minute = secs / 60;
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = (n >> 40) as f64 / (1u64 << 24) as f64;
        let search = i % 3 == 0;
        let (endpoint, mut latency) = if search {
            ("/search", 40.0 + 20.0 * jitter)
        } else {
            ("/item", 10.0 + 5.0 * jitter)
        };
        let mut status = 200;
        if search && (12..15).contains(&minute) {
            latency *= 5.0;
        }
        if (24..28).contains(&minute) {
            latency *= 2.5;
        }
        if !search && minute == 36 && (n >> 20).is_multiple_of(3) {
            status = 503;
        }
        if search && SPIKES.iter().any(|&s| (s..s + 30).contains(&secs)) {
            latency *= 3.0;
        }
        out.push_str(&format!(
            "{{\"ts\": {:.1}, \"latency_ms\": {latency:.2}, \"status\": {status}, \"endpoint\": \"{endpoint}\", \"service\": \"shop\"}}\n",
            (START_MS + ms) as f64 / 1000.0
        ));
    }
    std::fs::write(path, out).expect("writing the test log");
}

/// A watch config replaying `log` with a short warm-up, saving into
/// `state`. Incidents resolve after 30 quiet seconds: with the default
/// five minutes each spike would fall in the quiet tail of the incident
/// before it and be absorbed by it, and the tests want them apart.
pub fn config(log: &std::path::Path, state: &std::path::Path) -> String {
    format!(
        "window = \"10s\"\nstate_dir = {state:?}\n\n[[logs]]\npath = {log:?}\nformat = \"json\"\nfollow = true\n\n[alerts]\nwebhooks = [\"http://127.0.0.1:9/never-called\"]\nresolve_quiet = \"30s\"\n\n[detectors.baseline]\nwarmup = 30\n"
    )
}
