//! The server under a connection flood (issue 10's load test), on
//! loopback: 10,000 idle connections (reopened as the server closes them)
//! and 100 slow uploads (half stalled, half trickling under the minimum
//! rate, each reopened once cut off) while a normal client ingests and
//! queries over keep-alive. Prints the normal client's latency
//! percentiles, what the server did with the attackers, and its peak RSS,
//! against the goals: p99 under 100 ms, RSS under 512 MiB.
//!
//!     cargo bench -p perfpilot --bench netload
//!
//! NETLOAD_SECS (default 30) sets the duration. The server runs with its
//! default limits.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IDLE: usize = 10_000;
const UPLOADS: usize = 100;
const FLOOD_THREADS: usize = 8;
const P99_GOAL_MS: f64 = 100.0;
const RSS_GOAL_MIB: f64 = 512.0;

fn raise_fd_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
    rl.rlim_cur
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Keeps `count` silent connections open, reopening those the server
/// closes; counts the connections made and the reopenings.
fn idle_flood(
    addr: String,
    count: usize,
    stop: Arc<AtomicBool>,
    made: Arc<AtomicU64>,
    reopened: Arc<AtomicU64>,
) {
    let connect = || loop {
        match TcpStream::connect(&addr) {
            Ok(c) => {
                let _ = c.set_nonblocking(true);
                made.fetch_add(1, Ordering::Relaxed);
                return Some(c);
            }
            Err(_) if stop.load(Ordering::Relaxed) => return None,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let mut conns: Vec<TcpStream> = Vec::with_capacity(count);
    while conns.len() < count && !stop.load(Ordering::Relaxed) {
        match connect() {
            Some(c) => conns.push(c),
            None => return,
        }
    }
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        for c in conns.iter_mut() {
            let closed = match c.read(&mut buf) {
                Ok(_) => true,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
            if closed {
                match connect() {
                    Some(n) => *c = n,
                    None => return,
                }
                reopened.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `UPLOADS` uploads of a declared 64 MiB: even ones send their first
/// kilobyte and stop, odd ones trickle 512 bytes every 100 ms (5 KiB/s);
/// each is reopened once the server answers or closes it. Counts 408s.
fn slow_uploads(addr: String, stop: Arc<AtomicBool>, cut: Arc<AtomicU64>) {
    let head = b"POST /ingest?name=slow&format=folded HTTP/1.1\r\nHost: bench\r\n\
                 Content-Length: 67108864\r\n\r\n";
    let chunk = b"main;slow;upload 1\n".repeat(27);
    let open = || -> Option<TcpStream> {
        let mut c = TcpStream::connect(&addr).ok()?;
        c.write_all(head).ok()?;
        c.write_all(&chunk[..512]).ok()?;
        c.write_all(&chunk[..512]).ok()?;
        c.set_nonblocking(true).ok()?;
        Some(c)
    };
    let mut conns: Vec<Option<TcpStream>> = (0..UPLOADS).map(|_| open()).collect();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        for (i, slot) in conns.iter_mut().enumerate() {
            let mut done = slot.is_none();
            if let Some(c) = slot.as_mut() {
                match c.read(&mut buf) {
                    Ok(0) => done = true,
                    Ok(n) => {
                        if buf[..n].starts_with(b"HTTP/1.1 408") {
                            cut.fetch_add(1, Ordering::Relaxed);
                        }
                        done = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => done = true,
                }
                if !done && i % 2 == 1 {
                    match c.write(&chunk[..512]) {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => done = true,
                    }
                }
            }
            if done {
                *slot = open();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let secs: u64 = std::env::var("NETLOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let fds = raise_fd_limit();
    if fds < (IDLE + UPLOADS + 1000) as u64 {
        eprintln!(
            "netload: needs {} open files, the limit is {fds}",
            IDLE + UPLOADS + 1000
        );
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = common::alerting::free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = common::perfpilot()
        .args(["server", "--listen", &addr, "--data"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the server");
    let pid = child.id();
    let _server = Server(child);
    let started = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("http://{addr}");
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let folded: String = (0..200)
        .map(|i| format!("main;serve;handler_{};work_{} {}\n", i % 20, i, 1 + i % 7))
        .collect();
    let ingest = |client: &ureq::Agent| {
        client
            .post(format!("{base}/ingest?name=normal&format=folded"))
            .send(folded.as_str())
            .map(|r| r.status().as_u16())
    };
    let query = |client: &ureq::Agent| {
        client
            .get(format!("{base}/api/v1/top"))
            .query("query", "{service_name=\"normal\"}")
            .query("from", "now-5m")
            .call()
            .and_then(|mut r| {
                let status = r.status().as_u16();
                r.body_mut().read_to_string().map(|_| status)
            })
    };
    // Warm up: some data to query.
    for _ in 0..20 {
        let _ = ingest(&client);
    }
    let rss_before = rss_mib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let reopened = Arc::new(AtomicU64::new(0));
    let made = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicU64::new(0));
    // Several dialers, so the flood is fully open within seconds rather
    // than paced by one thread's blocking connects.
    let floods: Vec<_> = (0..FLOOD_THREADS)
        .map(|_| {
            let (addr, stop, made, reopened) = (
                addr.clone(),
                Arc::clone(&stop),
                Arc::clone(&made),
                Arc::clone(&reopened),
            );
            std::thread::spawn(move || idle_flood(addr, IDLE / FLOOD_THREADS, stop, made, reopened))
        })
        .collect();
    let uploads = {
        let (addr, stop, cut) = (addr.clone(), Arc::clone(&stop), Arc::clone(&cut));
        std::thread::spawn(move || slow_uploads(addr, stop, cut))
    };
    // Measure only once every idle connection has been dialled (or a
    // minute has passed) and the uploads had time to start.
    let ramp = Instant::now();
    let mut peak_rss = rss_before;
    let mut peak_fds = 0;
    while ramp.elapsed() < Duration::from_secs(5)
        || (made.load(Ordering::Relaxed) < IDLE as u64 && ramp.elapsed() < Duration::from_secs(60))
    {
        std::thread::sleep(Duration::from_millis(200));
        peak_rss = peak_rss.max(rss_mib(pid));
        peak_fds = peak_fds.max(open_fds(pid));
    }
    let ramp_secs = ramp.elapsed().as_secs_f64();
    let made_in_ramp = made.load(Ordering::Relaxed);

    let mut latencies_ms: Vec<f64> = Vec::new();
    let mut failures = 0u64;
    let mut last_sample = Instant::now();
    let run = Instant::now();
    let mut i = 0u64;
    while run.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        let status = if i.is_multiple_of(2) {
            ingest(&client)
        } else {
            query(&client)
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match status {
            Ok(200) => latencies_ms.push(ms),
            _ => failures += 1,
        }
        i += 1;
        if last_sample.elapsed() >= Duration::from_millis(200) {
            peak_rss = peak_rss.max(rss_mib(pid));
            peak_fds = peak_fds.max(open_fds(pid));
            last_sample = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        let _ = f.join();
    }
    let _ = uploads.join();
    let rss_end = rss_mib(pid);

    latencies_ms.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies_ms, 0.50);
    let p99 = percentile(&latencies_ms, 0.99);
    let max = latencies_ms.last().copied().unwrap_or(f64::NAN);
    println!(
        "netload: {IDLE} idle connections and {UPLOADS} slow uploads against `perfpilot server` \
         (default limits), {secs} s"
    );
    println!(
        "  normal client: {} requests (ingest and top alternately), {} failed; \
         p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        latencies_ms.len(),
        failures
    );
    println!(
        "  flood: {made_in_ramp} connections dialled in the {ramp_secs:.1} s ramp, {} in all",
        made.load(Ordering::Relaxed)
    );
    println!(
        "  attackers: {} idle connections closed by the server and reopened, {} uploads \
         cut off with 408",
        reopened.load(Ordering::Relaxed),
        cut.load(Ordering::Relaxed)
    );
    println!(
        "  server: RSS {rss_before:.0} MiB before, peak {peak_rss:.0} MiB, {rss_end:.0} MiB at \
         the end; at most {peak_fds} open descriptors"
    );
    let ok = p99 < P99_GOAL_MS
        && peak_rss < RSS_GOAL_MIB
        && failures == 0
        && made_in_ramp >= IDLE as u64;
    println!(
        "  goals (all {IDLE} dialled, p99 < {P99_GOAL_MS} ms, RSS < {RSS_GOAL_MIB} MiB, no failure): {}",
        if ok { "met" } else { "MISSED" }
    );
}
