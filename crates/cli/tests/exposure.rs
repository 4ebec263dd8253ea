//! Who may reach a server (issue 10, finding 6): `up` takes a token as
//! `server` does; serving beyond loopback without one prints a warning,
//! and with `--autopilot enforce` is refused unless `--insecure-no-auth`.

mod common;
use common::*;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running perfpilot whose stderr is collected as it comes; killed when
/// dropped.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting perfpilot");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("a stderr pipe");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to 60 s for `text` on stderr.
    fn wait_for(&mut self, text: &str) {
        let end = Instant::now() + Duration::from_secs(60);
        while !self.stderr().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                if self.stderr().contains(text) {
                    return;
                }
                panic!(
                    "exited ({status}) without printing {text:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < end,
                "no {text:?} after 60 s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to 60 s for the exit code.
    fn exit_code(&mut self) -> i32 {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The reader thread may still hold the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "still running after 60 s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

const WARNING: &str = "is reachable beyond this host and no token is required";

fn policies(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("policies");
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// `perfpilot WHAT --listen LISTEN --data DATA`.
fn command(what: &str, data: &Path, listen: &str) -> Command {
    let mut cmd = perfpilot();
    cmd.args([what, "--listen", listen, "--data"]).arg(data);
    cmd
}

#[test]
fn server_beyond_loopback_without_a_token_warns() {
    let dir = tempfile::tempdir().unwrap();
    let port = alerting::free_port();
    let mut s = Running::spawn(&mut command(
        "server",
        &dir.path().join("data"),
        &format!("0.0.0.0:{port}"),
    ));
    s.wait_for(WARNING);
    assert!(s.stderr().contains("--auth-token-file"), "{}", s.stderr());
    // On loopback, or with a token, no warning.
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let port = alerting::free_port();
    let mut quiet = Running::spawn(
        command(
            "server",
            &dir.path().join("data2"),
            &format!("0.0.0.0:{port}"),
        )
        .arg("--auth-token-file")
        .arg(&token),
    );
    quiet.wait_for("token required");
    assert!(!quiet.stderr().contains(WARNING), "{}", quiet.stderr());
}

#[test]
fn enforce_beyond_loopback_without_a_token_is_refused() {
    for what in ["server", "up"] {
        let dir = tempfile::tempdir().unwrap();
        let port = alerting::free_port();
        let mut s = Running::spawn(
            command(what, &dir.path().join("data"), &format!("0.0.0.0:{port}"))
                .arg("--policies")
                .arg(policies(dir.path()))
                .args(["--autopilot", "enforce"]),
        );
        assert_eq!(s.exit_code(), 2, "{what}: {}", s.stderr());
        let err = s.stderr();
        assert!(
            err.contains("refusing to serve")
                && err.contains("--auth-token-file")
                && err.contains("--insecure-no-auth"),
            "{what}: {err}"
        );
    }
}

#[test]
fn enforce_beyond_loopback_runs_with_insecure_no_auth() {
    let dir = tempfile::tempdir().unwrap();
    let port = alerting::free_port();
    let mut s = Running::spawn(
        command(
            "server",
            &dir.path().join("data"),
            &format!("0.0.0.0:{port}"),
        )
        .arg("--policies")
        .arg(policies(dir.path()))
        .args(["--autopilot", "enforce", "--insecure-no-auth"]),
    );
    s.wait_for("web UI and API on");
    assert!(s.stderr().contains(WARNING), "{}", s.stderr());
    // And on loopback, enforce needs no token.
    let port = alerting::free_port();
    let mut local = Running::spawn(
        command(
            "server",
            &dir.path().join("data2"),
            &format!("127.0.0.1:{port}"),
        )
        .arg("--policies")
        .arg(policies(dir.path()))
        .args(["--autopilot", "enforce"]),
    );
    local.wait_for("web UI and API on");
    assert!(!local.stderr().contains(WARNING), "{}", local.stderr());
}

/// GET as curl does it: (status, body).
fn get_with(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(url).config().http_status_as_error(false).build();
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

#[test]
fn root_up_requires_its_token_and_its_agent_sends_it() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let port = alerting::free_port();
    let mut up = Running::spawn(
        command("up", &dir.path().join("data"), &format!("127.0.0.1:{port}"))
            .args(["-q", "--interval", "1s", "--auth-token-file"])
            .arg(&token),
    );
    up.wait_for("token required");
    let base = format!("http://127.0.0.1:{port}");
    let types = format!("{base}/api/v1/profile_types?from=now-10m");
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _) = get_with(&format!("{base}/healthz"), None);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < end, "up never answered:\n{}", up.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = get_with(&types, None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = get_with(&types, Some("wrong"));
    assert_eq!(status, 401, "{body}");
    // The built-in agent's profiles are stored: it sends the token.
    loop {
        let (status, body) = get_with(&types, Some("s3cret"));
        assert_eq!(status, 200, "{body}");
        if body.contains("process_cpu") {
            break;
        }
        assert!(
            Instant::now() < end,
            "no profile from the agent after 60 s: {body}\n{}",
            up.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn root_up_beyond_loopback_without_a_token_warns() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let port = alerting::free_port();
    let mut up = Running::spawn(
        command("up", &dir.path().join("data"), &format!("0.0.0.0:{port}"))
            .arg("--policies")
            .arg(policies(dir.path()))
            .args(["--autopilot", "enforce", "--insecure-no-auth"]),
    );
    up.wait_for(WARNING);
    up.wait_for("profiling this host");
    assert!(
        up.stderr().contains("act on the autopilot"),
        "{}",
        up.stderr()
    );
}
