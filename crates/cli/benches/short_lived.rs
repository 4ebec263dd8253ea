//! Short-lived processes, complete from their first sample: N processes of
//! 0.5 s and N of 0.1 s of CPU, each running a binary never seen before
//! (a fresh copy of the no-frame-pointer C workload, so its unwind table
//! is built only after it started), one after another beside two
//! CPU-bound processes, recorded host-wide by
//!
//! - `perfpilot record` (stacks copied until the tables are loaded),
//! - `perfpilot record --raw-stack-rate 0` (frame pointers until then, as
//!   before copies existed),
//! - `perf record --call-graph dwarf -a` (every stack copied),
//!
//! each in its own pass. Prints the share of each group's samples with
//! the complete chain (_start ... main;driver;mid), the copies taken,
//! unwound and lost, and what the copies cost: perfpilot's CPU on this
//! path and its sampler's kernel time (BPF statistics). Needs root,
//! linux-perf and bpftool. Goal: >= 95% complete for 0.5 s processes.
//!
//!     cargo bench -p perfpilot --bench short_lived [-- --runs 20 --hz 99]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Copies,
    NoCopies,
    Perf,
}

impl Pass {
    fn tag(self) -> &'static str {
        match self {
            Pass::Copies => "c",
            Pass::NoCopies => "n",
            Pass::Perf => "p",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Pass::Copies => "perfpilot record",
            Pass::NoCopies => "perfpilot record --raw-stack-rate 0",
            Pass::Perf => "perf record --call-graph dwarf -a",
        }
    }
}

struct Outcome {
    /// (complete, total) samples of the 0.5 s and the 0.1 s processes.
    long: (u64, u64),
    short: (u64, u64),
    cpu_seconds: f64,
    /// The sampler's kernel time in ns, and samples it handled.
    bpf: Option<(u64, u64)>,
    summary: String,
}

struct Hogs(Vec<Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of a finished child (wait4); fails with `stderr`.
fn wait_cpu(child: &Child, stderr: &str) -> f64 {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it for our child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waiting on our own child with valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4 failed");
    // perf record re-raises the SIGINT that ended it, once it has written
    // its data.
    let interrupted = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGINT;
    assert!(
        (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) || interrupted,
        "the profiler exited with status {status}:\n{stderr}"
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// run_time_ns and run_cnt of the `on_sample` program process `pid`
/// holds (found through its file descriptors).
fn bpf_stats(pid: u32) -> Option<(u64, u64)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    let ids: std::collections::BTreeSet<String> = fds
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("prog_id:").map(|v| v.trim().to_string()))
        })
        .collect();
    ids.iter().find_map(|id| {
        let out = Command::new("bpftool")
            .args(["-j", "prog", "show", "id", id])
            .output()
            .ok()?;
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        if p["name"].as_str() != Some("on_sample") {
            return None;
        }
        Some((p["run_time_ns"].as_u64()?, p["run_cnt"].as_u64()?))
    })
}

/// `perf script` output as (process name and frames root first, 1): one
/// entry per sample (inferno's folding weighs samples by their period).
fn perf_samples(script: &str) -> Vec<(Vec<String>, u64)> {
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in script.lines() {
        if line.trim().is_empty() {
            if let Some(mut s) = current.take() {
                s[1..].reverse();
                out.push((s, 1));
            }
        } else if !line.starts_with(char::is_whitespace) {
            let comm = line.split_whitespace().next().unwrap_or("").to_string();
            current = Some(vec![comm]);
        } else if let Some(s) = current.as_mut() {
            // "    addr symbol+0xoff (dso)"
            let symbol = line.split_whitespace().nth(1).unwrap_or("[unknown]");
            let name = symbol.rsplit_once("+0x").map_or(symbol, |(n, _)| n);
            s.push(name.to_string());
        }
    }
    if let Some(mut s) = current {
        s[1..].reverse();
        out.push((s, 1));
    }
    out
}

fn is_complete(frames: &[String]) -> bool {
    frames.get(1).is_some_and(|f| f == "_start")
        && common::has_chain(frames, &["main", "driver", "mid"])
}

fn run_pass(pass: Pass, binary: &Path, dir: &Path, runs: u64, hz: u64) -> Outcome {
    let out = dir.join(format!("{}.out", pass.tag()));
    let mut cmd = match pass {
        Pass::Perf => {
            let mut c = Command::new("perf");
            c.args(["record", "-q", "-e", "cpu-clock", "-F", &hz.to_string()]);
            // -N: no copies of every binary into ~/.debug.
            c.args(["--call-graph", "dwarf", "-a", "-N", "-o"])
                .arg(&out);
            c
        }
        _ => {
            let mut c = common::perfpilot();
            c.args(["record", "-F", &hz.to_string(), "-f", "folded", "-o"])
                .arg(&out);
            if pass == Pass::NoCopies {
                c.args(["--raw-stack-rate", "0"]);
            }
            c
        }
    };
    // Reaped by wait4 in wait_cpu, which also gives its CPU time.
    #[allow(clippy::zombie_processes)]
    let mut profiler = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let pid = profiler.id();
    eprintln!("short_lived: {}", pass.title());
    // Running once the sampler is attached (perfpilot), or once perf has
    // written its header; then a moment to settle.
    let ready = Instant::now() + Duration::from_secs(60);
    while Instant::now() < ready {
        let attached = match pass {
            Pass::Perf => out.exists(),
            _ => bpf_stats(pid).is_some(),
        };
        if attached {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let mut bpf = None;
    let mut names = (Vec::new(), Vec::new());
    for i in 0..runs {
        for (seconds, group) in [("0.5", &mut names.0), ("0.1", &mut names.1)] {
            let name = format!("{}{}-{i}", pass.tag(), &seconds[2..]);
            let copy: PathBuf = dir.join(&name);
            std::fs::copy(binary, &copy).unwrap();
            let status = Command::new(&copy).arg(seconds).status().unwrap();
            assert!(status.success());
            group.push(name);
        }
        if pass != Pass::Perf {
            bpf = bpf_stats(pid).or(bpf);
        }
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let started = Instant::now();
    let mut stderr = String::new();
    if let Some(mut e) = profiler.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
    }
    let mut cpu_seconds = wait_cpu(&profiler, &stderr);
    let lines = if pass == Pass::Perf {
        // perf's unwinding happens here, after the recording: its cost.
        // Only the short processes: unwinding the whole host's samples
        // would take minutes on a busy machine.
        let comms: Vec<&str> = names.0.iter().chain(&names.1).map(String::as_str).collect();
        let script = Command::new("perf")
            .args(["script", "-i"])
            .arg(&out)
            .arg("--comms")
            .arg(comms.join(","))
            .output()
            .unwrap();
        cpu_seconds += started.elapsed().as_secs_f64();
        perf_samples(&String::from_utf8_lossy(&script.stdout))
    } else {
        common::parse_folded(&std::fs::read_to_string(&out).unwrap())
    };
    let share = |group: &[String]| {
        lines
            .iter()
            .filter(|(f, _)| group.contains(&f[0]))
            .fold((0, 0), |(c, t), (f, n)| {
                (c + if is_complete(f) { *n } else { 0 }, t + n)
            })
    };
    let summary = stderr
        .lines()
        .filter(|l| l.contains("stacks copied") || l.contains("perfpilot itself"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n  ");
    let _ = profiler.kill();
    Outcome {
        long: share(&names.0),
        short: share(&names.1),
        cpu_seconds,
        bpf,
        summary,
    }
}

fn percent((complete, total): (u64, u64)) -> String {
    format!(
        "{:5.1}% of {total:>5}",
        complete as f64 * 100.0 / total.max(1) as f64
    )
}

fn main() {
    common::require_root();
    let runs = arg("--runs", 20);
    let hz = arg("--hz", 99);
    let dir = tempfile::tempdir().unwrap();
    let binary = PathBuf::from(&common::build("c-nofp", dir.path())[0]);
    // The sampler's kernel time, from BPF statistics while this runs.
    let stats_path = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_before = std::fs::read_to_string(stats_path).unwrap_or_default();
    let _ = std::fs::write(stats_path, "1");
    let _hogs = Hogs(
        (0..2)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let passes = [Pass::Copies, Pass::NoCopies, Pass::Perf];
    let outcomes: Vec<Outcome> = passes
        .iter()
        .map(|&p| run_pass(p, &binary, dir.path(), runs, hz))
        .collect();
    let _ = std::fs::write(stats_path, stats_before.trim());

    println!(
        "short-lived processes beside two CPU-bound ones: {runs} of 0.5 s and {runs} of 0.1 s CPU each, \
         every one a binary never seen before, {hz} Hz, host-wide"
    );
    println!(
        "{:<38} {:>19} {:>19} {:>9} {:>14}",
        "samples with the complete chain",
        "0.5 s processes",
        "0.1 s processes",
        "CPU s",
        "BPF ns/sample"
    );
    for (p, o) in passes.iter().zip(&outcomes) {
        let bpf = o
            .bpf
            .map(|(ns, n)| format!("{:.0}", ns as f64 / n.max(1) as f64))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<38} {:>19} {:>19} {:>9.2} {:>14}",
            p.title(),
            percent(o.long),
            percent(o.short),
            o.cpu_seconds,
            bpf
        );
    }
    for (p, o) in passes.iter().zip(&outcomes) {
        if !o.summary.is_empty() {
            println!("{}:\n  {}", p.title(), o.summary);
        }
    }
    let long = outcomes[0].long;
    println!(
        "goal: >= 95% complete for 0.5 s processes: {}",
        if long.0 * 100 >= long.1 * 95 {
            "ok"
        } else {
            "MISSED"
        }
    );
}
