//! Helpers shared by the integration tests: building the test workloads,
//! running perfpilot, reading folded output.
#![allow(dead_code)]

pub mod alerting;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn perfpilot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perfpilot"))
}

pub fn workload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../workloads")
        .join(name)
}

/// Fails the test with a clear message unless running as root (CI does).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test loads BPF programs and must run as root (CI runs it as root)"
    );
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds a workload into `dir` and returns the argv to run it.
pub fn build(kind: &str, dir: &Path) -> Vec<String> {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    match kind {
        "c-nofp" | "c-fp" => {
            let out = dir.join(kind);
            let fp = if kind == "c-fp" {
                "-fno-omit-frame-pointer"
            } else {
                "-fomit-frame-pointer"
            };
            run_ok(
                Command::new("gcc")
                    .args(["-O2", "-g", fp, "-o"])
                    .arg(&out)
                    .arg(workload("work.c")),
            );
            vec![s(&out)]
        }
        "cpp" => {
            let out = dir.join("cpp-work");
            run_ok(
                Command::new("g++")
                    .args(["-O2", "-g", "-o"])
                    .arg(&out)
                    .arg(workload("work.cpp")),
            );
            vec![s(&out)]
        }
        "rust" => {
            let out = dir.join("rust-work");
            // A default release build: no frame pointers.
            run_ok(
                Command::new("rustc")
                    .args([
                        "-C",
                        "opt-level=3",
                        "-C",
                        "debuginfo=1",
                        "--crate-name",
                        "work",
                        "-o",
                    ])
                    .arg(&out)
                    .arg(workload("work.rs")),
            );
            vec![s(&out)]
        }
        "go" => {
            let out = dir.join("go-work");
            run_ok(
                Command::new("go")
                    .args(["build", "-o"])
                    .arg(&out)
                    .arg(workload("work.go"))
                    .env("GOCACHE", dir.join("gocache"))
                    .env("GO111MODULE", "off"),
            );
            vec![s(&out)]
        }
        "python" => vec!["/usr/bin/python3".into(), s(&workload("work.py"))],
        other => panic!("unknown workload {other}"),
    }
}

/// Folded lines as (frames root first, count).
pub fn parse_folded(text: &str) -> Vec<(Vec<String>, u64)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (stack, count) = l.rsplit_once(' ').expect("folded line has a count");
            (
                stack.split(';').map(str::to_string).collect(),
                count.parse().expect("count is an integer"),
            )
        })
        .collect()
}

/// Whether `frames` contains `chain` as consecutive frames.
pub fn has_chain(frames: &[String], chain: &[&str]) -> bool {
    frames
        .windows(chain.len())
        .any(|w| w.iter().zip(chain).all(|(a, b)| a == b))
}

/// perfpilot against `perf record --call-graph dwarf`, profiling the same
/// process at the same time.
pub struct PerfComparison {
    /// Share of samples whose folded stack is identical in both: the
    /// overlap of the two stack distributions, sum over stacks of
    /// min(share in perfpilot, share in perf).
    pub identical_share: f64,
    pub perfpilot_samples: u64,
    pub perf_samples: u64,
    /// Stacks with the largest share difference (share ours - share perf).
    pub differences: Vec<(String, f64)>,
}

fn distribution(lines: &[(Vec<String>, u64)]) -> (std::collections::HashMap<String, f64>, u64) {
    let total: u64 = lines.iter().map(|(_, c)| c).sum();
    let mut d = std::collections::HashMap::new();
    for (frames, c) in lines {
        *d.entry(frames.join(";")).or_insert(0.0) += *c as f64 / total.max(1) as f64;
    }
    (d, total)
}

/// Runs the no-frame-pointer C workload and records it with both
/// profilers for `seconds` at `hz`.
pub fn compare_with_perf(hz: u32, seconds: f64) -> PerfComparison {
    use inferno::collapse::Collapse;
    let dir = tempfile::tempdir().unwrap();
    let argv = build("c-nofp", dir.path());
    let mut workload = Command::new(&argv[0])
        .arg(format!("{}", seconds + 2.0))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = workload.id().to_string();
    let perf_data = dir.path().join("perf.data");
    let mut perf = Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            &hz.to_string(),
            "--call-graph",
            "dwarf",
            "-p",
            &pid,
            "-o",
        ])
        .arg(&perf_data)
        .args(["--", "sleep", &format!("{seconds}")])
        .spawn()
        .expect("perf is installed by scripts/test.sh (linux-perf)");
    let ours = dir.path().join("ours.folded");
    run_ok(
        perfpilot()
            .args([
                "record",
                "-q",
                "-F",
                &hz.to_string(),
                "--pid",
                &pid,
                "-d",
                &format!("{seconds}"),
                "-o",
            ])
            .arg(&ours),
    );
    assert!(perf.wait().unwrap().success(), "perf record failed");
    let _ = workload.wait();
    let script = run_ok(Command::new("perf").args(["script", "-i"]).arg(&perf_data)).stdout;
    let mut collapsed = Vec::new();
    inferno::collapse::perf::Folder::default()
        .collapse(&script[..], &mut collapsed)
        .unwrap();
    let theirs = parse_folded(&String::from_utf8_lossy(&collapsed));
    let ours = parse_folded(&std::fs::read_to_string(&ours).unwrap());
    let (a, na) = distribution(&ours);
    // inferno weighs perf's samples by period; count the samples themselves.
    let (b, _) = distribution(&theirs);
    let nb = String::from_utf8_lossy(&script)
        .lines()
        .filter(|l| l.contains(" cpu-clock"))
        .count() as u64;
    let mut identical = 0.0;
    let mut differences: Vec<(String, f64)> = Vec::new();
    let keys: std::collections::HashSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (
            a.get(k).copied().unwrap_or(0.0),
            b.get(k).copied().unwrap_or(0.0),
        );
        identical += x.min(y);
        differences.push((k.clone(), x - y));
    }
    differences.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
    differences.truncate(5);
    PerfComparison {
        identical_share: identical,
        perfpilot_samples: na,
        perf_samples: nb,
        differences,
    }
}

/// `perfpilot server --listen (a free port) --data DIR/data ARGS...`,
/// answering `/healthz` when `start` returns; killed when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServerProcess {
    pub fn start<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> ServerProcess {
        Self::start_with_stderr(dir, args, std::process::Stdio::null())
    }

    /// `start`, with the server's stderr (its log) sent to `stderr`.
    pub fn start_with_stderr<S: AsRef<std::ffi::OsStr>>(
        dir: &Path,
        args: &[S],
        stderr: impl Into<std::process::Stdio>,
    ) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = perfpilot()
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(dir.join("data"))
            .args(args)
            .stderr(stderr)
            .spawn()
            .unwrap();
        let server = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let ready = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while ureq::get(format!("{}/healthz", server.base))
            .call()
            .is_err()
        {
            assert!(
                std::time::Instant::now() < ready,
                "the server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        server
    }

    /// GET `path` as JSON (a 2xx is expected).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let body = ureq::get(format!("{}{path}", self.base))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// GET `path` whatever the status: (status, body).
    pub fn get_status(&self, path: &str) -> (u16, String) {
        let mut resp = ureq::get(format!("{}{path}", self.base))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        let text = resp.body_mut().read_to_string().unwrap();
        (resp.status().as_u16(), text)
    }

    /// POST `body` as JSON to `path`: (status, answer as JSON or null).
    pub fn post_json(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let mut resp = ureq::post(format!("{}{path}", self.base))
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            resp.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
