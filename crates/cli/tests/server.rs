//! `perfpilot server` as its clients meet it: curl uploads, the real
//! Pyroscope Python SDK, perfpilot's agent (root), the query CLI, Go's
//! pprof tool, tokens, bad input, and `kill -9`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process on a free port, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    data: PathBuf,
    token: Option<PathBuf>,
}

impl Server {
    fn start(data: &Path, token: Option<&str>) -> Server {
        Self::start_on(data, alerting::free_port(), token)
    }

    fn start_on(data: &Path, port: u16, token: Option<&str>) -> Server {
        Self::start_with(data, port, token, &[])
    }

    /// With more `perfpilot server` flags.
    fn start_with(data: &Path, port: u16, token: Option<&str>, flags: &[&str]) -> Server {
        let token_file = token.map(|t| {
            let p = data.with_extension("token");
            std::fs::write(&p, format!("{t}\n")).unwrap();
            p
        });
        let mut cmd = perfpilot();
        cmd.args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .stderr(Stdio::piped());
        if let Some(t) = &token_file {
            cmd.arg("--auth-token-file").arg(t);
        }
        cmd.args(flags);
        let child = cmd.spawn().unwrap();
        let s = Server {
            child,
            port,
            data: data.to_path_buf(),
            token: token_file,
        };
        s.wait_ready();
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        // Generous: a loaded machine can take long to start a debug build.
        let end = Instant::now() + Duration::from_secs(120);
        while Instant::now() < end {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not start listening on {}", self.port);
    }

    /// `perfpilot query ...` against this server.
    fn query(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = perfpilot();
        cmd.arg("query")
            .arg(args[0])
            .args(["--server", &self.url()])
            .args(&args[1..]);
        if let Some(t) = &self.token {
            cmd.arg("--auth-token-file").arg(t);
        }
        cmd.output().unwrap()
    }

    fn kill9(mut self) -> PathBuf {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
        let data = self.data.clone();
        std::mem::forget(self);
        data
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A child killed and reaped when dropped, so a test that fails leaves
/// no profiler or workload behind to load the machine for the next ones.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        // -g: braces in Pyroscope names are not curl globs.
        .args(["-s", "-g", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/test.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// (function, self %) rows of `perfpilot query top` output.
fn top_rows(out: &std::process::Output) -> Vec<(String, f64)> {
    assert!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let self_pct: f64 = it.next()?.parse().ok()?;
            let _total = it.next()?;
            Some((it.collect::<Vec<_>>().join(" "), self_pct))
        })
        .collect()
}

fn share(rows: &[(String, f64)], needle: &str) -> f64 {
    rows.iter()
        .filter(|(n, _)| n.contains(needle))
        .map(|(_, p)| p)
        .sum()
}

#[test]
fn folded_upload_with_curl_then_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let body = "main;handle;parse 30\nmain;handle;render 10\nmain;idle 60\n";
    let file = dir.path().join("upload.folded");
    std::fs::write(&file, body).unwrap();
    let (code, text) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!(
            "{}/ingest?name=shop.cpu{{env=staging,region=eu}}&sampleRate=100&format=folded",
            server.url()
        ),
    ]);
    assert_eq!(code, 200, "{text}");
    let rows =
        top_rows(&server.query(&["top", "--query", "{service_name=\"shop\", env=\"staging\"}"]));
    assert!((share(&rows, "parse") - 30.0).abs() < 0.01, "{rows:?}");
    assert!((share(&rows, "idle") - 60.0).abs() < 0.01, "{rows:?}");
    // The folded flame graph on stdout, values in nanoseconds at 100 Hz.
    let out = server.query(&[
        "flamegraph",
        "--query",
        "{service_name=\"shop\"}",
        "--format",
        "folded",
    ]);
    let folded = String::from_utf8_lossy(&out.stdout);
    assert!(folded.contains("main;handle;parse 300000000"), "{folded}");
    // Labels are queryable.
    let (code, text) = curl(&[&format!(
        "{}/api/v1/label_values?name=region&query=%7Bservice_name%3D%22shop%22%7D",
        server.url()
    )]);
    assert_eq!((code, text.contains("\"eu\"")), (200, true), "{text}");
}

/// One interval's profile as the agent ships it: one sample of `leaf`.
fn agent_profile(service: &str, leaf: &str) -> perfpilot_model::Profile {
    use perfpilot_model::{Profile, ValueType};
    let mut p = Profile::new(vec![
        ValueType::new("samples", "count"),
        ValueType::new("cpu", "nanoseconds"),
    ]);
    p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
    p.period = 10_000_000;
    p.time_nanos = alerting::now_ms() * 1_000_000;
    let main = p.add_function_named("main");
    let leaf = p.add_function_named(leaf);
    let (l1, l2) = (p.add_function_location(leaf), p.add_function_location(main));
    let stack = p.add_stack(&[l1, l2]);
    let labels = p.add_label_set([("service_name", service)]);
    p.add_sample(stack, labels, &[1, 10_000_000]);
    p
}

/// The agent's shipper against a server with a token: batches it refuses
/// for the token, or because the address has no ingest route, are kept,
/// and arrive once the token file is fixed.
#[test]
fn batches_refused_for_the_token_arrive_once_it_is_fixed() {
    use perfpilot_agent::ship::{Cause, Shipper, ShipperConfig};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some("the-right-token"));
    let token = dir.path().join("agent.token");
    std::fs::write(&token, "a-wrong-token\n").unwrap();
    let config = ShipperConfig {
        server: server.url(),
        token: Some("a-wrong-token".into()),
        token_file: Some(token.clone()),
        spool_dir: dir.path().join("spool"),
        spool_max_bytes: 16 << 20,
        timeout: Duration::from_secs(30),
    };
    let mut shipper = Shipper::new(config.clone()).unwrap();
    shipper
        .ship(&agent_profile("shipped", "before_the_fix_one"))
        .unwrap();
    shipper
        .ship(&agent_profile("shipped", "before_the_fix_two"))
        .unwrap();
    assert_eq!(shipper.spooled(), 2, "{:?}", shipper.stats);
    assert_eq!(shipper.stats.rejected, 0);
    let notices: Vec<String> = shipper
        .take_notices()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].starts_with("the server refused the token (401")
            && notices[0].ends_with(&format!(
                "fix --auth-token-file; 1 batch kept in {}",
                dir.path().join("spool").display()
            )),
        "{notices:?}"
    );

    std::fs::write(&token, "the-right-token\n").unwrap();
    shipper
        .ship(&agent_profile("shipped", "after_the_fix"))
        .unwrap();
    assert_eq!(shipper.spooled(), 0, "{:?}", shipper.last_error);
    assert_eq!(shipper.stats.sent, 3);
    let rows = top_rows(&server.query(&[
        "top",
        "--query",
        "{service_name=\"shipped\"}",
        "--from",
        "now-1h",
    ]));
    for leaf in ["before_the_fix_one", "before_the_fix_two", "after_the_fix"] {
        assert!(share(&rows, leaf) > 30.0, "{leaf} missing: {rows:?}");
    }

    // A proxy path the server does not have: 404, kept as well.
    let mut astray = Shipper::new(ShipperConfig {
        server: format!("{}/profiling", server.url()),
        token: Some("the-right-token".into()),
        spool_dir: dir.path().join("spool-astray"),
        ..config
    })
    .unwrap();
    astray.ship(&agent_profile("astray", "astray")).unwrap();
    assert_eq!(astray.spooled(), 1);
    assert!(
        matches!(astray.held(), Some(Cause::NoRoute { status: 404, .. })),
        "{:?}",
        astray.held()
    );
}

#[test]
fn exported_pprof_reads_in_go_tool_pprof() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let file = dir.path().join("u.folded");
    std::fs::write(&file, "main;hot 90\nmain;cold 10\n").unwrap();
    let (code, text) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{}/ingest?name=gosvc.cpu&sampleRate=100", server.url()),
    ]);
    assert_eq!(code, 200, "{text}");
    let pprof = dir.path().join("export.pb.gz");
    let out = server.query(&[
        "flamegraph",
        "--query",
        "{service_name=\"gosvc\"}",
        "--format",
        "pprof",
        "-o",
        pprof.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = run_ok(
        Command::new("go")
            .args(["tool", "pprof", "-top"])
            .arg(&pprof)
            .env("HOME", dir.path()),
    );
    let text = String::from_utf8_lossy(&top.stdout);
    let first = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        first.ends_with(" hot") && first.contains("90.00%"),
        "{text}"
    );
}

#[test]
fn a_token_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some("s3cret-token"));
    let url = format!("{}/api/v1/profile_types", server.url());
    assert_eq!(curl(&[&url]).0, 401);
    assert_eq!(curl(&["-H", "Authorization: Bearer wrong", &url]).0, 401);
    assert_eq!(
        curl(&["-H", "Authorization: Bearer s3cret-token", &url]).0,
        200
    );
    assert_eq!(
        curl(&["-u", "tenant:s3cret-token", &url]).0,
        200,
        "basic auth, as SDKs send it"
    );
    assert_eq!(
        curl(&[&format!("{}/healthz", server.url())]).0,
        200,
        "health needs no token"
    );
    // The query CLI passes the token from its file.
    let out = server.query(&["top"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = perfpilot()
        .args(["query", "top", "--server", &server.url()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[test]
fn bad_input_is_rejected_with_the_reason_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let push = format!("{}/push.v1.PusherService/Push", server.url());
    // Garbage protobuf.
    let (code, text) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/proto",
        "--data-binary",
        "\u{1}\u{2}garbage",
        &push,
    ]);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("invalid_argument"), "{text}");
    // A gzip bomb: 1 GiB of zeros, compressed to about 1 MB.
    let bomb = dir.path().join("bomb.gz");
    run_ok(Command::new("sh").arg("-c").arg(format!(
        "head -c 1G /dev/zero | gzip -1 > {}",
        bomb.display()
    )));
    let (code, text) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/proto",
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &format!("@{}", bomb.display()),
        &push,
    ]);
    assert_eq!(code, 413, "{text}");
    assert!(
        text.contains("64 MiB (--max-decompressed-mib)") && text.contains("resource_exhausted"),
        "{text}"
    );
    // Stopped at the cap, not after inflating the whole GiB: told by the
    // server's peak memory (time would depend on the machine's load).
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in\n{status}"));
    assert!(
        peak_kib < 512 * 1024,
        "the bomb was not stopped early: the server peaked at {peak_kib} KiB"
    );
    // Too many labels.
    let tags: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
    let (code, text) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        "main 1",
        &format!("{}/ingest?name=x.cpu{{{}}}", server.url(), tags.join(",")),
    ]);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("labels"), "{text}");
    // A timestamp a day in the future.
    let future = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400)
        .to_string();
    let (code, text) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        "main 1",
        &format!(
            "{}/ingest?name=late.cpu&from={future}&until={future}",
            server.url()
        ),
    ]);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("future"), "{text}");
    // A folded line without a count, on line 2.
    let (code, text) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        "main 1\nmain;oops\n",
        &format!("{}/ingest?name=half.cpu", server.url()),
    ]);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("line 2"), "{text}");
    // A bad selector names where it is wrong.
    let (code, text) = curl(&[&format!(
        "{}/api/v1/top?query=%7Ba%3D%22b%22%20c%7D",
        server.url()
    )]);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("character"), "{text}");
    // None of it was stored.
    let (_, text) = curl(&[&format!(
        "{}/api/v1/label_values?name=service_name&from=now-2d&until=now%2B2d",
        server.url()
    )]);
    assert_eq!(text.trim(), "{\"values\":[]}", "{text}");
}

/// Every ingest limit is a flag; each answer names the flag that changes
/// it, and limits that cannot fit together are refused at start.
#[test]
fn ingest_limits_are_flags_named_in_their_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        alerting::free_port(),
        None,
        &[
            "--retention",
            "1h",
            "--max-frames-per-stack",
            "3",
            "--max-labels-per-series",
            "4",
            "--max-function-name-len",
            "8",
            "--max-body-mib",
            "1",
            "--max-future",
            "1m",
        ],
    );
    let ingest = |query: &str, body: &str| {
        curl(&[
            "-X",
            "POST",
            "--data-binary",
            body,
            &format!("{}/ingest?{query}", server.url()),
        ])
    };
    let (code, text) = ingest("name=app.cpu", "a;b;c 1\nmain;a;b;c 1\n");
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("line 2") && text.contains("(--max-frames-per-stack)"),
        "{text}"
    );
    // service_name, __profile_type__ and three tags.
    let (code, text) = ingest("name=app.cpu{a=1,b=2,c=3}", "main 1");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("(--max-labels-per-series)"), "{text}");
    let (code, text) = ingest("name=app.cpu", "main;a_long_function 1");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("(--max-function-name-len)"), "{text}");
    let (code, text) = ingest("name=app.cpu&from=now-2h", "main 1");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("(--retention)"), "{text}");
    let (code, text) = ingest("name=app.cpu&from=now%2B5m", "main 1");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("(--max-future)"), "{text}");
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 2 << 20]).unwrap();
    let (code, text) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", big.display()),
        &format!("{}/ingest?name=app.cpu", server.url()),
    ]);
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("(--max-body-mib)"), "{text}");
    // Within the limits, the same server stores.
    let (code, text) = ingest("name=app.cpu{a=1}", "main;a 1");
    assert_eq!(code, 200, "{text}");

    // A request alone within --max-body-mib could never fit in 1 MiB.
    let out = perfpilot()
        .args(["server", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("other"))
        .args(["--max-inflight-body-mib", "1", "--max-body-mib", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--max-inflight-body-mib (1) must be at least --max-body-mib (2)"),
        "{err}"
    );
}

#[test]
fn acknowledged_batches_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None);
    let url = server.url();
    let port = server.port;
    // Four writers post numbered batches, each two stacks with a marker
    // function unique to the batch, and remember which were answered 2xx.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut acked = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let body = format!("main;batch_{w}_{i};a 3\nmain;batch_{w}_{i};b 4\n");
                    let r = agent
                        .post(&format!("{url}/ingest?name=crash.cpu&sampleRate=100"))
                        .send(body.as_bytes());
                    match r {
                        Ok(resp) if resp.status().as_u16() == 200 => acked.push(i),
                        _ => {}
                    }
                    i += 1;
                }
                (w, acked, i)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let data = server.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let results: Vec<(i32, Vec<i32>, i32)> =
        writers.into_iter().map(|w| w.join().unwrap()).collect();
    let acked_total: usize = results.iter().map(|r| r.1.len()).sum();
    assert!(
        acked_total > 20,
        "only {acked_total} batches were acknowledged before the kill"
    );

    let server = Server::start_on(&data, port, None);
    let out = server.query(&[
        "flamegraph",
        "--query",
        "{service_name=\"crash\"}",
        "--from",
        "now-1h",
        "--format",
        "folded",
    ]);
    let folded = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut present: std::collections::HashMap<String, Vec<i64>> = Default::default();
    for line in folded.lines() {
        let (stack, v) = line.rsplit_once(' ').unwrap();
        let marker = stack.split(';').nth(1).unwrap().to_string();
        present.entry(marker).or_default().push(v.parse().unwrap());
    }
    for (w, acked, _) in &results {
        for i in acked {
            let m = format!("batch_{w}_{i}");
            let mut vals = present.get(&m).cloned().unwrap_or_default();
            vals.sort();
            assert_eq!(
                vals,
                vec![30_000_000, 40_000_000],
                "acknowledged {m} is not whole after the crash"
            );
        }
    }
    // Whatever else is there (sent but not acknowledged) is whole too.
    for (m, vals) in &present {
        assert_eq!(vals.len(), 2, "{m} is half there: {vals:?}");
    }
}

#[test]
fn pyroscope_python_sdk_pushes_to_the_server() {
    let python = std::env::var("PERFPILOT_TEST_PYTHON")
        .unwrap_or_else(|_| "target/pyvenv/bin/python".into());
    let python = if Path::new(&python).is_absolute() {
        PathBuf::from(python)
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(python)
    };
    assert!(
        python.exists(),
        "{} not found: scripts/test.sh creates a virtualenv with pyroscope-io from PyPI",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let app = dir.path().join("app.py");
    std::fs::write(
        &app,
        r#"
import sys, time
import pyroscope
pyroscope.configure(application_name="sdk-app", server_address=sys.argv[1],
                    upload_interval=2, tags={"region": "test-region"})
def heavy_work(n):
    x = 0
    for i in range(3 * n):
        x = (x * 31 + i) % 1000003
    return x
def light_work(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x
end = time.time() + float(sys.argv[2])
while time.time() < end:
    heavy_work(20000)
    light_work(20000)
pyroscope.shutdown()
"#,
    )
    .unwrap();
    run_ok(Command::new(&python).arg(&app).arg(server.url()).arg("8"));
    let rows = top_rows(&server.query(&[
        "top",
        "--query",
        "process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name=\"sdk-app\", region=\"test-region\"}",
        "--from",
        "now-5m",
    ]));
    let heavy = share(&rows, "heavy_work");
    let light = share(&rows, "light_work");
    assert!(
        heavy + light > 50.0,
        "the SDK's profiles lack the busy functions: {rows:?}"
    );
    let split = heavy / (heavy + light);
    assert!(
        (split - 0.75).abs() < 0.08,
        "heavy share {split:.3} of the two: {rows:?}"
    );
}

#[test]
fn root_agent_pushes_a_live_workload() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let w = build("c-nofp", dir.path());
    let mut workload = KillOnDrop(Command::new(&w[0]).arg("300").spawn().unwrap());
    let mut agent = KillOnDrop(
        perfpilot()
            .args([
                "agent",
                "-q",
                "--freq",
                "499",
                "--interval",
                "2s",
                "--server",
                &server.url(),
                "--spool-dir",
            ])
            .arg(dir.path().join("spool"))
            .spawn()
            .unwrap(),
    );
    // Samples the agent takes before it knows the process come unnamed
    // (`[anon]`): when it starts it registers every process of the host,
    // which on a loaded machine (a debug build, a busy host) takes long.
    // The split is of the named samples, checked once the server holds
    // enough of them, while the workload runs.
    let query = || {
        top_rows(&server.query(&[
            "top",
            "--query",
            "{service_name=\"c-nofp\"}",
            "--from",
            "now-10m",
        ]))
    };
    let split = |rows: &[(String, f64)]| {
        let (heavy, light) = (share(rows, "leaf_heavy"), share(rows, "leaf_light"));
        let named = 100.0 - share(rows, "[anon]");
        heavy + light >= 10.0
            && heavy + light > 0.9 * named
            && (heavy / (heavy + light) - 0.75).abs() < 0.05
    };
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let rows = query();
        if split(&rows) {
            break;
        }
        assert!(Instant::now() < end, "after 600 s: {rows:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let _ = workload.0.kill();
    let _ = workload.0.wait();
    // SAFETY: signalling our own child; SIGINT makes it ship what it has.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGINT) };
    assert!(agent.0.wait().unwrap().success());
    // With what it shipped at the end too.
    let rows = query();
    assert!(split(&rows), "{rows:?}");
    // Per-process labels came along.
    let (_, text) = curl(&[&format!(
        "{}/api/v1/label_values?name=exe&query=%7Bservice_name%3D%22c-nofp%22%7D&from=now-10m",
        server.url()
    )]);
    assert!(text.contains(&w[0]), "{text}");
}

#[test]
fn root_up_profiles_the_host_answers_queries_and_runs_the_autopilot() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let port = alerting::free_port();
    let w = build("c-nofp", dir.path());
    // The autopilot in dry-run, on the host's own profiles: a condition on
    // the workload's hottest function.
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let marker = dir.path().join("acted");
    std::fs::write(
        policies.join("hot.yaml"),
        policy(
            "c-nofp-hot",
            "c-nofp",
            &action(
                "note",
                "hotspot(\"leaf_heavy\") > 30%",
                touch(&marker),
                &["approval: auto"],
            ),
            "",
        ),
    )
    .unwrap();
    let up = perfpilot()
        .args([
            "up",
            "-q",
            "--interval",
            "2s",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(dir.path().join("data"))
        .arg("--policies")
        .arg(&policies)
        .spawn()
        .unwrap();
    let mut up = KillOnDrop(up);
    let end = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Busy until the decision is seen: the condition reads the last
    // minute's shares, so the workload must still run however long a
    // loaded machine takes to profile, store and read them.
    let mut workload = KillOnDrop(Command::new(&w[0]).arg("120").spawn().unwrap());
    let end = Instant::now() + Duration::from_secs(300);
    let decision = loop {
        let (_, body) = curl(&[&format!(
            "http://127.0.0.1:{port}/api/v1/audit?kind=decision"
        )]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if let Some(d) = v["records"].as_array().and_then(|r| r.first()).cloned() {
            break d;
        }
        assert!(
            Instant::now() < end,
            "no decision on the host's profiles: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = workload.0.kill();
    let _ = workload.0.wait();
    assert_eq!(decision["mode"], "dry-run", "{decision}");
    assert!(
        decision["readings"][0]
            .as_str()
            .unwrap()
            .starts_with("hotspot(\"leaf_heavy\") = 0."),
        "{decision}"
    );
    assert!(!marker.exists(), "dry-run ran the action");
    // SAFETY: signalling our own child: the agent ships, then the server stops.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGINT) };
    assert!(up.0.wait().unwrap().success());
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/spool"))
            .unwrap()
            .count(),
        0,
        "the last profile was spooled instead of stored"
    );
    // Restarted as a plain server on the same data: the profile is there.
    let server = Server::start_on(&dir.path().join("data"), port, None);
    let rows = top_rows(&server.query(&[
        "top",
        "--query",
        "{service_name=\"c-nofp\"}",
        "--from",
        "now-5m",
    ]));
    let heavy = share(&rows, "leaf_heavy");
    let light = share(&rows, "leaf_light");
    // Of the named samples: those taken before the agent knew the process
    // are unnamed (see root_agent_pushes_a_live_workload).
    let named = 100.0 - share(&rows, "[anon]");
    assert!(
        heavy + light >= 10.0 && heavy + light > 0.9 * named,
        "{rows:?}"
    );
}

/// Grafana's Pyroscope data source speaks Connect with JSON bodies.
#[test]
fn grafana_querier_and_render_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let file = dir.path().join("u.folded");
    std::fs::write(&file, "main;api;db 6\nmain;api;json 2\nmain;gc 2\n").unwrap();
    let (code, _) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!(
            "{}/ingest?name=grafsvc.cpu{{zone=a}}&sampleRate=100",
            server.url()
        ),
    ]);
    assert_eq!(code, 200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (start, end) = (now - 600_000, now + 60_000);
    let call = |method: &str, body: String| -> serde_json::Value {
        let (code, text) = curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
            &format!("{}/querier.v1.QuerierService/{method}", server.url()),
        ]);
        assert_eq!(code, 200, "{method}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: {e}: {text}"))
    };
    let types = call(
        "ProfileTypes",
        format!(r#"{{"start":{start},"end":{end}}}"#),
    );
    assert!(types.to_string().contains("process_cpu"), "{types}");
    let names = call(
        "LabelNames",
        format!(r#"{{"matchers":["{{service_name=\"grafsvc\"}}"],"start":{start},"end":{end}}}"#),
    );
    assert!(
        names["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "zone"),
        "{names}"
    );
    let values = call(
        "LabelValues",
        format!(r#"{{"name":"zone","matchers":[],"start":{start},"end":{end}}}"#),
    );
    assert_eq!(values["names"], serde_json::json!(["a"]), "{values}");
    let pt = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    let merged = call(
        "SelectMergeStacktraces",
        format!(
            r#"{{"profileTypeID":"{pt}","labelSelector":"{{service_name=\"grafsvc\"}}","start":{start},"end":{end},"maxNodes":100}}"#
        ),
    );
    let fg = &merged["flamegraph"];
    let total: i64 = fg["total"]
        .as_str()
        .map(|s| s.parse().unwrap())
        .or(fg["total"].as_i64())
        .unwrap();
    assert_eq!(total, 10 * 10_000_000, "{merged}");
    let names = fg["names"].as_array().unwrap();
    assert!(
        names.iter().any(|n| n == "db") && names.iter().any(|n| n == "gc"),
        "{merged}"
    );
    let series = call(
        "SelectSeries",
        format!(
            r#"{{"profileTypeID":"{pt}","labelSelector":"{{service_name=\"grafsvc\"}}","start":{start},"end":{end},"step":60,"groupBy":["zone"]}}"#
        ),
    );
    assert!(
        series["series"].to_string().contains("\"zone\""),
        "{series}"
    );
    let (code, text) = curl(&[&format!(
        "{}/pyroscope/render?query={pt}%7Bservice_name%3D%22grafsvc%22%7D&from=now-10m&until=now%2B1m&format=json",
        server.url()
    )]);
    assert_eq!(code, 200, "{text}");
    let render: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        render["flamebearer"]["numTicks"].as_i64(),
        Some(100_000_000),
        "{render}"
    );
}
