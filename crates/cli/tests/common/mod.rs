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
        "c-wall" => {
            let out = dir.join(kind);
            run_ok(
                Command::new("gcc")
                    .args(["-O2", "-g", "-fomit-frame-pointer", "-pthread", "-o"])
                    .arg(&out)
                    .arg(workload("wall.c")),
            );
            vec![s(&out)]
        }
        "c-alloc" => {
            let out = dir.join(kind);
            run_ok(
                Command::new("gcc")
                    .args(["-O2", "-g", "-fomit-frame-pointer", "-o"])
                    .arg(&out)
                    .arg(workload("alloc.c")),
            );
            vec![s(&out)]
        }
        "c-lock" => {
            let out = dir.join(kind);
            run_ok(
                Command::new("gcc")
                    .args(["-O2", "-g", "-fomit-frame-pointer", "-pthread", "-o"])
                    .arg(&out)
                    .arg(workload("lock.c")),
            );
            vec![s(&out)]
        }
        "c-offcpu" => {
            let out = dir.join(kind);
            run_ok(
                Command::new("gcc")
                    .args(["-O2", "-g", "-fomit-frame-pointer", "-pthread", "-o"])
                    .arg(&out)
                    .arg(workload("offcpu.c")),
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
        "rust-lock" => {
            let out = dir.join(kind);
            // A default release build: no frame pointers.
            run_ok(
                Command::new("rustc")
                    .args([
                        "-C",
                        "opt-level=3",
                        "-C",
                        "debuginfo=1",
                        "--crate-name",
                        "lock",
                        "-o",
                    ])
                    .arg(&out)
                    .arg(workload("lock.rs")),
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

/// Runs the no-frame-pointer C workload for `seconds` of CPU time and
/// records it with both profilers at `hz` until it exits: on a loaded
/// machine it takes longer, and both still get about `seconds * hz`
/// samples.
pub fn compare_with_perf(hz: u32, seconds: f64) -> PerfComparison {
    use inferno::collapse::Collapse;
    let dir = tempfile::tempdir().unwrap();
    let argv = build("c-nofp", dir.path());
    let mut workload = Command::new(&argv[0])
        .arg(format!("{seconds}"))
        .spawn()
        .unwrap();
    let pid = workload.id().to_string();
    let perf_data = dir.path().join("perf.data");
    // Both follow the process until it exits.
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
        .spawn()
        .expect("perf is installed by scripts/test.sh (linux-perf)");
    let ours = dir.path().join("ours.folded");
    run_ok(
        perfpilot()
            .args(["record", "-q", "-F", &hz.to_string(), "--pid", &pid, "-o"])
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

/// Runs `perfpilot top --batch N ARGS --pid PID` on the workload `argv
/// ARG` (killed after), checks it succeeded, and returns the text of its
/// last snapshot.
pub fn top_last_snapshot(argv: &[String], arg: &str, batch: u32, args: &[&str]) -> String {
    let mut workload = Command::new(&argv[0]).arg(arg).spawn().unwrap();
    let out = perfpilot()
        .args(["top", "--batch", &batch.to_string()])
        .args(args)
        .args(["--pid", &workload.id().to_string()])
        .output();
    let _ = workload.kill();
    workload.wait().unwrap();
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split(&format!("snapshot {batch} of {batch}, "))
        .nth(1)
        .unwrap_or_else(|| panic!("{batch} snapshots:\n{text}"))
        .to_string()
}

/// `perfpilot server --listen (a free port) --data DIR/data ARGS...`, its
/// stdout and stderr in DIR/server.log, answering `/healthz` when `start`
/// returns; killed when dropped.
pub struct ServerProcess {
    proc: alerting::Proc,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServerProcess {
    /// Fails the test, with the end of the server's log, when the server
    /// exits (rejecting its flags, say) or does not answer within 30 s.
    pub fn start<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> ServerProcess {
        let port = alerting::free_port();
        let mut argv: Vec<std::ffi::OsString> = vec![
            "server".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}").into(),
            "--data".into(),
            dir.join("data").into(),
        ];
        argv.extend(args.iter().map(|a| a.as_ref().to_owned()));
        let mut proc = alerting::Proc::spawn(
            Path::new(env!("CARGO_BIN_EXE_perfpilot")),
            &argv,
            dir.join("server.log"),
        );
        let base = format!("http://127.0.0.1:{port}");
        alerting::wait_ready(
            &mut proc,
            &format!("{base}/healthz"),
            "the server",
            std::time::Duration::from_secs(30),
        );
        ServerProcess { proc, base }
    }

    /// Profiles the workload `argv ARGS` with `perfpilot agent --profiles
    /// PROFILES --pid` (1 s intervals) shipping here, until the workload
    /// exits (it should start its work after a delay, once the agent is
    /// attached); then stops the agent with a signal, its last profile
    /// shipped, and returns the profile types the server lists. Without
    /// the default CPU budget: on a loaded machine it would sample 1 in N
    /// blocks or waits, and these tests check the collectors' exact
    /// counts (root_budget tests the budget).
    pub fn agent_on(
        &self,
        dir: &Path,
        profiles: &str,
        argv: &[String],
        args: &[&str],
    ) -> Vec<String> {
        let mut workload = Command::new(&argv[0]).args(args).spawn().unwrap();
        let pid = workload.id().to_string();
        let mut agent = Command::new(env!("CARGO_BIN_EXE_perfpilot"))
            .args([
                "agent",
                "--quiet",
                "--profiles",
                profiles,
                "--interval",
                "1s",
                "--max-cpu",
                "off",
            ])
            .args(["--server", &self.base, "--pid", &pid, "--spool-dir"])
            .arg(dir.join("spool"))
            .spawn()
            .unwrap();
        assert!(workload.wait().unwrap().success());
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
        let status = agent.wait().unwrap();
        assert!(status.success(), "agent: {status}");
        let types = self.get_json("/api/v1/profile_types?from=now-10m");
        types["profile_types"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        alerting::tail(&self.proc.log, lines)
    }

    /// GET `path` as JSON (a 2xx is expected).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let body = ureq::get(format!("{}{path}", self.base))
            .call()
            .and_then(|r| r.into_body().read_to_string())
            .unwrap_or_else(|e| {
                panic!(
                    "GET {path}: {e}; the server's log ends:\n{}",
                    self.log_tail(30)
                )
            });
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

    /// The audit log's records, oldest first; `query` narrows them, like
    /// `kind=decision` (or "" for all).
    pub fn audit(&self, query: &str) -> Vec<serde_json::Value> {
        let answer = self.get_json(&format!("/api/v1/audit?limit=10000&{query}"));
        let mut records = answer["records"]
            .as_array()
            .unwrap_or_else(|| panic!("no records in {answer}"))
            .clone();
        records.reverse();
        records
    }

    /// What a failure message shows: the last audit records and the end
    /// of the server's log.
    pub fn context(&self) -> String {
        let records = self.audit("");
        let mut out = format!(
            "audit log ({} records, the last 60 shown):\n",
            records.len()
        );
        for r in &records[records.len().saturating_sub(60)..] {
            out.push_str(&format!("  {r}\n"));
        }
        out.push_str(&format!("server log ends:\n{}\n", self.log_tail(30)));
        out
    }

    /// Uploads one second of `service`'s CPU profile, ending now, as
    /// folded stacks (100 samples a second).
    pub fn push_cpu(&self, service: &str, folded: &str) {
        let now = alerting::now_ms() / 1000;
        ureq::post(format!(
            "{}/ingest?name={service}.cpu&from={}&until={now}&sampleRate=100&format=folded",
            self.base,
            now - 1
        ))
        .send(folded)
        .unwrap();
    }
}

/// The apiVersion of AutopilotPolicy documents.
pub const API_VERSION: &str = "perfpilot.dev/v1alpha1";

/// An AutopilotPolicy for the Service `target`: `actions` the list's items
/// (see `action`), `extra` more of the spec after them, like
/// `"  guard: {impactWindow: 8s, rollbackIf: worse}\n"`.
pub fn policy(name: &str, target: &str, actions: &str, extra: &str) -> String {
    format!(
        "apiVersion: {API_VERSION}\nkind: AutopilotPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         targetRef: {{kind: Service, name: {target}}}\n  actions:\n{actions}{extra}"
    )
}

/// One item of a policy's actions; the condition and the operation go in
/// as JSON, which is YAML too, and each of `fields` (`"approval: auto"`)
/// on its own line.
pub fn action(
    name: &str,
    condition: &str,
    operation: serde_json::Value,
    fields: &[&str],
) -> String {
    let mut item = format!(
        "    - name: {name}\n      condition: {}\n      operation: {operation}\n",
        serde_json::to_string(condition).unwrap()
    );
    for f in fields {
        item.push_str(&format!("      {f}\n"));
    }
    item
}

/// An exec operation that touches `marker`.
pub fn touch(marker: &Path) -> serde_json::Value {
    serde_json::json!({"type": "exec", "command": ["/usr/bin/touch", marker]})
}
