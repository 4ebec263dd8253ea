//! Peak RSS of a whole-host `perfpilot record` while large binaries run:
//! two `perfpilot server`s (the release binary with debug info, about
//! 120 MB) on other ports, kept busy with ingests and queries so they are
//! sampled, are the workload. Prints the recorder's peak RSS and CPU time
//! and the share of samples that came from the servers. Needs root.
//!
//!     cargo bench -p perfpilot --bench large_binaries [-- --seconds 10]
//!
//! `--perfpilot PATH` records with another build of the binary (to
//! compare); `--workload PATH` runs another large binary as the servers.

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

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn start_server(binary: &PathBuf, data: PathBuf) -> Server {
    let port = common::alerting::free_port();
    let child = Command::new(binary)
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "a server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Ingests folded profiles and asks for flame graphs, top tables and
/// diffs in a loop, so the servers run much of their code.
fn keep_busy(url: String, stop: Arc<AtomicBool>, requests: Arc<AtomicU64>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let folded: String = (0..200)
            .map(|k| {
                format!(
                    "main;serve;handler_{};work_{} {}\n",
                    k % 17,
                    (k + i) % 23,
                    k + 1
                )
            })
            .collect();
        let _ = agent
            .post(&format!(
                "{url}/ingest?name=busy{{n={}}}&format=folded",
                i % 5
            ))
            .send(folded.as_bytes());
        for path in [
            "/api/v1/flamegraph?query=%7B%7D&from=now-1h",
            "/api/v1/top?query=%7B%7D&from=now-1h",
            "/api/v1/diff?query=%7B%7D&from=now-5m&base_from=now-1h&base_until=now-5m",
        ] {
            let _ = agent
                .get(&format!("{url}{path}"))
                .call()
                .map(|r| r.into_body().read_to_vec());
        }
        requests.fetch_add(4, Ordering::SeqCst);
    }
}

/// Waits for a child that must succeed and returns its resource usage.
fn wait_usage(child: Child) -> libc::rusage {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it for our child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting on our own child with valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "perfpilot record exited with status {status}"
    );
    ru
}

fn main() {
    common::require_root();
    let seconds: f64 = arg("--seconds").map_or(10.0, |s| {
        s.parse()
            .unwrap_or_else(|_| panic!("--seconds takes a number, not {s:?}"))
    });
    let own = PathBuf::from(env!("CARGO_BIN_EXE_perfpilot"));
    let recorder = arg("--perfpilot").map_or_else(|| own.clone(), PathBuf::from);
    let workload = arg("--workload").map_or_else(|| own.clone(), PathBuf::from);
    let size = std::fs::metadata(&workload).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    let servers = [
        start_server(&workload, dir.path().join("a")),
        start_server(&workload, dir.path().join("b")),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let busy: Vec<_> = servers
        .iter()
        .map(|s| {
            let (url, stop, requests) = (s.url.clone(), Arc::clone(&stop), Arc::clone(&requests));
            std::thread::spawn(move || keep_busy(url, stop, requests))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let out = dir.path().join("host.pb.gz");
    let ru = wait_usage(
        Command::new(&recorder)
            .args(["record", "-q", "-d", &seconds.to_string(), "-o"])
            .arg(&out)
            .spawn()
            .unwrap(),
    );
    stop.store(true, Ordering::SeqCst);
    for b in busy {
        let _ = b.join();
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = secs(ru.ru_utime) + secs(ru.ru_stime);
    let profile = perfpilot_model::pprof::decode(&std::fs::read(&out).unwrap()).unwrap();
    let server_pids: Vec<String> = servers.iter().map(|s| s.child.id().to_string()).collect();
    let (mut all, mut theirs) = (0i64, 0i64);
    for s in profile.samples() {
        let n = s.values.first().copied().unwrap_or(0);
        all += n;
        if profile
            .label(s, perfpilot_model::labels::PID)
            .is_some_and(|p| server_pids.iter().any(|x| x == p))
        {
            theirs += n;
        }
    }
    println!(
        "large_binaries: {seconds} s whole-host record with two servers of a {:.0} MB binary busy ({} requests)",
        size as f64 / 1e6,
        requests.load(Ordering::SeqCst)
    );
    println!(
        "  samples: {all}, {theirs} of them in the servers ({:.0}%)",
        100.0 * theirs as f64 / all.max(1) as f64
    );
    println!("  perfpilot record CPU: {cpu:.2} s");
    println!(
        "  perfpilot record peak RSS: {:.1} MiB (goal <= 64)",
        ru.ru_maxrss as f64 / 1024.0
    );
}
