//! Overhead of system-wide profiling at 99 Hz: a CPU-bound benchmark's
//! throughput alone, under `perfpilot record`, and under `perf record -F 99
//! -g`, interleaved round by round; plus each profiler's own CPU time and
//! peak RSS. Needs root and linux-perf.
//!
//!     cargo bench -p perfpilot --bench overhead [-- --rounds 5 --seconds 10]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Alone,
    Perfpilot,
    Perf,
}

struct Usage {
    cpu_seconds: f64,
    max_rss_mib: f64,
}

/// Waits for a child and returns its resource usage.
fn wait_usage(child: std::process::Child) -> Usage {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it for our child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waiting on our own child with valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "profiler exited with status {status}"
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        cpu_seconds: secs(ru.ru_utime) + secs(ru.ru_stime),
        max_rss_mib: ru.ru_maxrss as f64 / 1024.0,
    }
}

fn run_bench(bench: &std::path::Path, seconds: u64) -> f64 {
    let out = common::run_ok(Command::new(bench).arg(seconds.to_string()));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("benchmark prints a number")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn main() {
    common::require_root();
    let rounds = arg("--rounds", 5);
    let seconds = arg("--seconds", 10);
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("cpubench");
    common::run_ok(
        Command::new("gcc")
            .args(["-O2", "-g", "-pthread", "-o"])
            .arg(&bench)
            .arg(common::workload("cpubench.c")),
    );
    let profile_secs = (seconds + 2).to_string();
    let mut throughput: Vec<(Mode, f64)> = Vec::new();
    let mut usage: Vec<(Mode, Usage)> = Vec::new();
    let modes = [Mode::Alone, Mode::Perfpilot, Mode::Perf];
    for round in 0..rounds {
        for i in 0..modes.len() {
            // Rotate the order so no mode always runs first or last.
            let mode = modes[(i + round as usize) % modes.len()];
            let child = match mode {
                Mode::Alone => None,
                Mode::Perfpilot => Some(
                    common::perfpilot()
                        .args(["record", "-q", "-F", "99", "-d", &profile_secs, "-o"])
                        .arg(dir.path().join("host.pb.gz"))
                        .stdout(Stdio::null())
                        .spawn()
                        .unwrap(),
                ),
                Mode::Perf => Some(
                    Command::new("perf")
                        .args(["record", "-q", "-F", "99", "-g", "-a", "-o"])
                        .arg(dir.path().join("perf.data"))
                        .args(["--", "sleep", &profile_secs])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("perf is installed by scripts/test.sh (linux-perf)"),
                ),
            };
            if child.is_some() {
                // Both profilers attach within a second.
                std::thread::sleep(Duration::from_secs(1));
            }
            let ops = run_bench(&bench, seconds);
            eprintln!("round {}: {mode:?} {ops:.0} blocks/s", round + 1);
            throughput.push((mode, ops));
            if let Some(c) = child {
                usage.push((mode, wait_usage(c)));
            }
        }
    }
    let ops = |m: Mode| {
        median(
            &mut throughput
                .iter()
                .filter(|(x, _)| *x == m)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>(),
        )
    };
    let cpu = |m: Mode| {
        median(
            &mut usage
                .iter()
                .filter(|(x, _)| *x == m)
                .map(|(_, u)| u.cpu_seconds)
                .collect::<Vec<_>>(),
        )
    };
    let rss = |m: Mode| {
        usage
            .iter()
            .filter(|(x, _)| *x == m)
            .map(|(_, u)| u.max_rss_mib)
            .fold(0.0, f64::max)
    };
    let alone = ops(Mode::Alone);
    println!("overhead: {rounds} rounds x {seconds} s, cpubench on every CPU, profilers at 99 Hz system-wide");
    println!(
        "{:<28} {:>14} {:>10} {:>12} {:>12}",
        "", "blocks/s", "loss", "CPU s", "peak RSS"
    );
    println!(
        "{:<28} {:>14.0} {:>10} {:>12} {:>12}",
        "alone", alone, "-", "-", "-"
    );
    for (name, m) in [
        ("perfpilot record", Mode::Perfpilot),
        ("perf record -F 99 -g", Mode::Perf),
    ] {
        println!(
            "{:<28} {:>14.0} {:>9.2}% {:>12.3} {:>9.1} MiB",
            name,
            ops(m),
            100.0 * (alone - ops(m)) / alone,
            cpu(m),
            rss(m)
        );
    }
    println!(
        "perfpilot CPU / perf CPU: {:.3} (goal <= 0.25); perfpilot throughput loss {:.2}% (goal <= 1%); perfpilot peak RSS {:.1} MiB (goal <= 64)",
        cpu(Mode::Perfpilot) / cpu(Mode::Perf),
        100.0 * (alone - ops(Mode::Perfpilot)) / alone,
        rss(Mode::Perfpilot)
    );
}
