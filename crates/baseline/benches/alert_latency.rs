//! From an incident's window closing to its alert at a webhook, through the
//! whole watch loop: a followed log written in real time, the reader, the
//! windows, the engine, the HTTP delivery. Goal: p99 ≤ 10 ms beyond the
//! window close.
//!
//! There is no peer in the field that alerts on request logs this way, so
//! the peer is perfpilot's previous design, run in the same process at the
//! same time on the same traffic: a loop that closed windows and delivered
//! on a fixed 200 ms tick, and followed files polled every 200 ms (the
//! watch config's `tick = "200ms"`).
//!
//! Each instance gets its own log file (the same lines are appended to all
//! at the same moment), its own engine and its own webhook receiver, a
//! thread that records when each POST's body has arrived. The old design's
//! wait depends on where its 200 ms cadence falls against the window
//! boundaries, which is set by when it started and barely drifts during a
//! run, so it runs as four instances started 50 ms apart and their
//! incidents are pooled: one instance alone would report one phase.
//!
//! Traffic is 100 requests/s in 1 s windows with 250 ms of lateness (more
//! than the old 200 ms poll, so both designs see every event and only the
//! waiting differs). After a warm-up, every other window holds an
//! incident: /cart answering 500 instead of 200 for the whole window, the
//! request count unchanged. (An error-rate baseline learns from its first
//! 60 windows, incidents included, and incidents are half of them here,
//! so a milder burst stops standing out once that baseline is ready.) An
//! error burst fires on the window it happens in (band breaches need N of
//! M windows), so each incident is measured from the close of its own
//! window: end + lateness, on the clock. The quiet window after it
//! resolves the incident (`resolve_quiet = "1s"`). At the end every loop idles
//! on its quiet log for 5 s, and the process's CPU time over that spell is
//! printed.
//!
//!     cargo bench -p perfpilot-baseline --bench alert_latency [-- --incidents 60]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use perfpilot_baseline::watch::{self, WatchConfig, WatchStats};

const WIDTH_MS: i64 = 1000;
const LATENESS_MS: i64 = 250;
const WARMUP_WINDOWS: i64 = 8;
/// Requests a second, alternating /pay and /cart.
const RATE: u64 = 100;

/// The clock in fractional milliseconds since the epoch.
fn clock_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

type Posts = Arc<Mutex<Vec<(f64, serde_json::Value)>>>;

/// The shared webhook receiver, its posts gathered for scanning.
fn receiver() -> Result<(String, Posts), std::io::Error> {
    let (url, rx) = common::webhook();
    let posts: Posts = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&posts);
    std::thread::spawn(move || {
        for post in rx {
            if let Ok(mut p) = sink.lock() {
                p.push(post);
            }
        }
    });
    Ok((url, posts))
}

struct Instance {
    name: String,
    design: &'static str,
    log: std::fs::File,
    posts: Posts,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Result<WatchStats, String>>,
}

fn start(
    design: &'static str,
    instance: usize,
    dir: &Path,
    tick: Option<&str>,
) -> Result<Instance, String> {
    let name = format!("{design} #{instance}");
    let path = dir.join(format!("{}-{instance}.jsonl", design.replace(' ', "-")));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (url, posts) = receiver().map_err(|e| format!("webhook receiver: {e}"))?;
    let tick = tick.map_or(String::new(), |t| format!("tick = {t:?}\n"));
    let text = format!(
        "window = \"{WIDTH_MS}ms\"\nlateness = \"{LATENESS_MS}ms\"\n{tick}\n\
         [[logs]]\npath = {path:?}\nformat = \"json\"\nservice = \"shop\"\nfollow = true\n\n\
         [alerts]\nwebhooks = [{url:?}]\nresend = \"1h\"\nresolve_quiet = \"1s\"\n\n\
         [detectors.baseline]\nwarmup = 5\n"
    );
    let cfg = WatchConfig::parse(&text, &name).map_err(|e| e.to_string())?;
    let engine = cfg.engine().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        watch::run(&cfg, engine, flag, &mut |_| {}).map_err(|e| e.to_string())
    });
    Ok(Instance {
        name,
        design,
        log,
        posts,
        stop,
        handle,
    })
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Process CPU time (user + system) in ms, from /proc (Linux only).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux architecture perfpilot runs on.
    Some(ticks * 10.0)
}

/// Each incident's latency (ms beyond its window's close) and how many had
/// no alert.
fn latencies(posts: &Posts, incidents: &[i64]) -> (Vec<f64>, usize) {
    let posts = posts.lock().map(|p| p.clone()).unwrap_or_default();
    let mut out = Vec::new();
    let mut missed = 0;
    for &start in incidents {
        let close = (start + WIDTH_MS + LATENESS_MS) as f64;
        let first = posts
            .iter()
            .filter(|(_, body)| {
                body["alerts"].as_array().is_some_and(|alerts| {
                    alerts.iter().any(|a| {
                        a["labels"]["alertname"] == "PerfpilotIncident"
                            && a["findings"][0]["detector"] == "error_burst"
                            && a["state"] == "firing"
                            && a["starts_at_ms"].as_i64() == Some(start)
                    })
                })
            })
            .map(|(at, _)| *at)
            .min_by(f64::total_cmp);
        match first {
            Some(at) => out.push(at - close),
            None => missed += 1,
        }
    }
    out.sort_by(f64::total_cmp);
    (out, missed)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let mut incidents_n: i64 = 60;
    if let Some(i) = args.iter().position(|a| a == "--incidents") {
        incidents_n = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .ok_or("--incidents takes a positive count")?;
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    const NEW: &str = "event-driven";
    const OLD: &str = "fixed 200 ms tick";
    let mut instances = vec![start(NEW, 0, dir.path(), None)?];
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(50));
        instances.push(start(OLD, i, dir.path(), Some("200ms"))?);
    }

    let first = (clock_ms() as i64 / WIDTH_MS + 1) * WIDTH_MS;
    let incident_starts: Vec<i64> = (0..incidents_n)
        .map(|i| first + (WARMUP_WINDOWS + 2 * i) * WIDTH_MS)
        .collect();
    let end = incident_starts.last().copied().unwrap_or(first) + 3 * WIDTH_MS;
    eprintln!(
        "alert_latency: {} s of traffic at {RATE} requests/s, {incidents_n} incidents",
        (end as f64 - clock_ms()) / 1e3
    );

    // Real-time traffic, each line appended to every design's log at once.
    let period = Duration::from_micros(1_000_000 / RATE);
    let mut next = std::time::Instant::now();
    let mut seq: u64 = 0x9e3779b97f4a7c15;
    let mut i: u64 = 0;
    loop {
        let now = clock_ms();
        let now_ms = now as i64;
        if now_ms >= end {
            break;
        }
        let start = now_ms.div_euclid(WIDTH_MS) * WIDTH_MS;
        let incident = start >= incident_starts[0]
            && (start - incident_starts[0]) % (2 * WIDTH_MS) == 0
            && start <= incident_starts[incident_starts.len() - 1];
        seq ^= seq << 13;
        seq ^= seq >> 7;
        seq ^= seq << 17;
        let jitter = (seq >> 11) as f64 / (1u64 << 53) as f64;
        let (endpoint, latency) = if i.is_multiple_of(2) {
            ("/pay", 40.0 + 20.0 * jitter)
        } else {
            ("/cart", 10.0 + 5.0 * jitter)
        };
        let status = if endpoint == "/cart" && incident {
            500
        } else {
            200
        };
        let line = format!(
            "{{\"ts\": {:.3}, \"latency_ms\": {latency:.2}, \"status\": {status}, \"endpoint\": \"{endpoint}\", \"service\": \"shop\"}}\n",
            now / 1e3
        );
        for d in &mut instances {
            d.log
                .write_all(line.as_bytes())
                .map_err(|e| format!("{}: {e}", d.name))?;
        }
        i += 1;
        next += period;
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }

    // Every loop idle on a quiet log: what waiting costs.
    let idle = Duration::from_secs(5);
    let cpu_before = cpu_ms();
    std::thread::sleep(idle);
    let idle_cpu = cpu_ms().zip(cpu_before).map(|(a, b)| a - b);

    for d in &instances {
        d.stop.store(true, Ordering::Relaxed);
    }
    // Per design: latencies, incidents without an alert, late events.
    let mut results: Vec<(&str, Vec<f64>, usize, u64)> =
        vec![(NEW, Vec::new(), 0, 0), (OLD, Vec::new(), 0, 0)];
    for d in instances {
        let stats = d
            .handle
            .join()
            .map_err(|_| format!("{}: the watch loop panicked", d.name))??;
        let (lat, missed) = latencies(&d.posts, &incident_starts);
        if let Some(r) = results.iter_mut().find(|r| r.0 == d.design) {
            r.1.extend(lat);
            r.2 += missed;
            r.3 += stats.dropped_late;
        }
    }
    for r in &mut results {
        r.1.sort_by(f64::total_cmp);
    }

    println!(
        "alert latency beyond the window close (end + {LATENESS_MS} ms lateness), {WIDTH_MS} ms windows, {incidents_n} error-burst incidents"
    );
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6}",
        "design", "incidents", "p50 ms", "p99 ms", "max ms", "min ms", "missed", "late"
    );
    for (name, lat, missed, late) in &results {
        if lat.is_empty() {
            println!("{name:<20} no alerts arrived ({missed} missed)");
            continue;
        }
        println!(
            "{:<20} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>6}",
            name,
            lat.len() + missed,
            quantile(lat, 0.5),
            quantile(lat, 0.99),
            quantile(lat, 1.0),
            lat[0],
            missed,
            late
        );
    }
    if let [(_, new, _, _), (_, old, _, _)] = &results[..] {
        if !new.is_empty() && !old.is_empty() {
            let (n50, n99) = (quantile(new, 0.5), quantile(new, 0.99));
            let (o50, o99) = (quantile(old, 0.5), quantile(old, 0.99));
            println!(
                "fixed tick / event-driven: p50 {:.0}x, p99 {:.0}x",
                o50 / n50.max(1e-3),
                o99 / n99.max(1e-3)
            );
            println!(
                "goal p99 <= 10 ms beyond the window close: {} ({n99:.2} ms)",
                if n99 <= 10.0 { "met" } else { "NOT met" }
            );
        }
    }
    if let Some(ms) = idle_cpu {
        println!(
            "all five loops idle for {} s: {ms:.0} ms of CPU (10 ms resolution)",
            idle.as_secs()
        );
    }
    Ok(())
}
