//! The agent under process churn: `perfpilot agent` profiling the host and
//! shipping to a `perfpilot server` while short processes start at a
//! steady rate. Prints the agent's RSS and CPU every 5 s, then the RSS
//! slope (least squares, after the first minute or tenth of the run), its
//! mean CPU, and the series the server holds for the processes. Needs
//! root.
//!
//!     cargo bench -p perfpilot --bench churn [-- --duration 600 --rate 100]
//!
//! `--perfpilot PATH` runs another build of the binary (to compare);
//! `--rate 0` starts no processes, for the agent's cost on the host alone.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn arg_u64(name: &str, default: u64) -> u64 {
    arg(name)
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a whole number, not {v:?}"))
        })
        .unwrap_or(default)
}

/// Resident set size and its anonymous part (heap, stacks) in KiB, from
/// /proc/PID/status. The rest is mapped files: the objects the symbolizer
/// holds, whose clean pages the kernel can take back.
fn rss_kib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// User plus system CPU seconds, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces: state is
    // field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// Starts short processes at `rate` per second until `stop`: a shell
/// running a loop of a millisecond or so, so that some are sampled.
fn churn(rate: u64, stop: Arc<AtomicBool>, started: Arc<AtomicU64>) {
    let every = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut next = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let child = Command::new("/bin/sh")
            .args(["-c", "i=0; while [ $i -lt 200 ]; do i=$((i+1)); done"])
            .stdout(Stdio::null())
            .spawn()
            .expect("starting /bin/sh");
        children.push(child);
        started.fetch_add(1, Ordering::SeqCst);
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        next += every;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            // Too far behind (a loaded machine): do not burst to catch up.
            next = now;
        }
    }
    for mut c in children {
        let _ = c.wait();
    }
}

fn get(url: &str) -> serde_json::Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let body = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_body()
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

fn main() {
    common::require_root();
    let duration = arg_u64("--duration", 600);
    let rate = arg_u64("--rate", 100);
    let perfpilot = arg("--perfpilot")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_perfpilot")));
    let dir = tempfile::tempdir().unwrap();
    let port = common::alerting::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(&perfpilot)
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.path().join("data"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut agent = Command::new(&perfpilot)
        .args(["agent", "-q", "--interval", "10s", "--server", &url])
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .spawn()
        .unwrap();
    let pid = agent.id();
    // Start-up (loading BPF, the first tables) is not churn.
    std::thread::sleep(Duration::from_secs(3));

    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let spawner = (rate > 0).then(|| {
        let (stop, started) = (Arc::clone(&stop), Arc::clone(&started));
        std::thread::spawn(move || churn(rate, stop, started))
    });
    let t0 = Instant::now();
    let cpu0 = cpu_seconds(pid);
    let (mut last_t, mut last_cpu) = (0.0, cpu0);
    let mut samples: Vec<(f64, f64, f64, f64)> = Vec::new(); // (s, RSS KiB, CPU %, anon KiB)
    println!("churn: {duration} s of {rate} processes/s, agent pid {pid}, RSS and CPU every 5 s");
    println!(
        "{:>6} {:>10} {:>10} {:>8} {:>10}",
        "s", "RSS MiB", "anon MiB", "CPU %", "processes"
    );
    let mut next = t0 + Duration::from_secs(5);
    while t0.elapsed() < Duration::from_secs(duration) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += Duration::from_secs(5);
        if let Ok(Some(status)) = agent.try_wait() {
            panic!("the agent exited early: {status}");
        }
        let t = t0.elapsed().as_secs_f64();
        let ((rss, anon), cpu) = (rss_kib(pid), cpu_seconds(pid));
        let pct = 100.0 * (cpu - last_cpu) / (t - last_t);
        (last_t, last_cpu) = (t, cpu);
        samples.push((t, rss, pct, anon));
        println!(
            "{t:>6.0} {:>10.1} {:>10.1} {pct:>8.2} {:>10}",
            rss / 1024.0,
            anon / 1024.0,
            started.load(Ordering::SeqCst)
        );
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_total = cpu_seconds(pid) - cpu0;
    stop.store(true, Ordering::SeqCst);
    if let Some(s) = spawner {
        s.join().unwrap();
    }
    let processes = started.load(Ordering::SeqCst);
    // SAFETY: signalling our own child: it ships its last profile and exits.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = agent.wait().unwrap();
    assert!(status.success(), "the agent failed: {status}");

    let series = get(&format!("{url}/api/v1/series?from=now-1h"))["series"]
        .as_array()
        .map_or(0, Vec::len);
    let values = |name: &str| {
        get(&format!(
            "{url}/api/v1/label_values?name={name}&from=now-1h"
        ))["values"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let (pids, names) = (values("pid"), values("process_name"));
    // The churned processes alone (the rest is the host).
    let churned = get(&format!(
        "{url}/api/v1/series?from=now-1h&query=%7Bprocess_name%3D%22sh%22%7D"
    ))["series"]
        .as_array()
        .map_or(0, Vec::len);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();

    let settled = (elapsed / 10.0).min(60.0);
    let tail = |pick: fn(&(f64, f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter(|s| s.0 >= settled)
            .map(|s| (s.0 / 60.0, pick(s)))
            .collect()
    };
    let (rss_tail, anon_tail) = (tail(|s| s.1), tail(|s| s.3));
    let ends = |t: &[(f64, f64)]| {
        (
            t.first().map_or(0.0, |s| s.1) / 1024.0,
            t.last().map_or(0.0, |s| s.1) / 1024.0,
        )
    };
    let ((first, last), (first_anon, last_anon)) = (ends(&rss_tail), ends(&anon_tail));
    let peak = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    let mean_cpu = 100.0 * cpu_total / elapsed;
    println!(
        "processes started: {processes} ({:.1}/s)",
        processes as f64 / elapsed
    );
    println!(
        "agent RSS after {settled:.0} s: {first:.1} -> {last:.1} MiB, slope {:+.1} KiB/min; peak {:.1} MiB",
        slope(&rss_tail),
        peak / 1024.0
    );
    println!(
        "  anonymous (heap): {first_anon:.1} -> {last_anon:.1} MiB, slope {:+.1} KiB/min; \
         the rest is mapped object files",
        slope(&anon_tail)
    );
    println!("agent CPU: {mean_cpu:.2}% of a core on average (goal <= 2%)");
    println!(
        "server: {series} series ({names} process names, {pids} pid label values); \
         {churned} of them for the {processes} churned processes (process_name=\"sh\")"
    );
}
