//! The server under a flood (issue 10, finding 5), as the load benchmark
//! runs it but checking what happens rather than how fast: with a
//! 1024-descriptor limit, 1,100 idle connections and stalled uploads
//! neither lock out a normal client nor exhaust the server's descriptors,
//! and the stalled uploads are cut off.

mod common;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(60);

/// Raises this process's soft open-file limit to its hard limit.
fn raise_own_fd_limit() -> u64 {
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

struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// `perfpilot server` limited to `fds` open files (soft and hard).
fn server_with_fd_limit(dir: &std::path::Path, fds: u64, args: &[&str]) -> Server {
    let port = alerting::free_port();
    let log = dir.join("server.log");
    let mut cmd = perfpilot();
    cmd.args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.join("data"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: fds,
                rlim_max: fds,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let end = Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, base, log }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into()
}

/// A request of the normal client: (status, body), 0 when it failed.
fn call(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    match r {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

#[test]
fn a_flood_of_idle_connections_and_stalled_uploads_locks_nobody_out() {
    assert!(
        raise_own_fd_limit() >= 2000,
        "this test needs 2000 descriptors"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_fd_limit(
        dir.path(),
        1024,
        &["--header-timeout", "10m", "--body-timeout", "2s"],
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    // 1,100 connections that never send anything: more than the server
    // has descriptors for.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        match TcpStream::connect(&addr) {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connecting: {e}"),
        }
    }
    // 20 uploads that stop after their first kilobyte.
    let mut stalled: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(
                b"POST /ingest?name=stalled&format=folded HTTP/1.1\r\nHost: t\r\n\
                  Content-Length: 64000000\r\n\r\n",
            )
            .unwrap();
            c.write_all(&b"main;work 1\n".repeat(85)).unwrap();
            c
        })
        .collect();
    // The normal client stores a profile and reads it back.
    let client = agent();
    let (status, body) = call(
        client
            .post(format!("{}/ingest?name=normal&format=folded", server.base))
            .send("main;handle;parse 3\nmain;idle 1\n"),
    );
    assert_eq!(
        status,
        200,
        "ingest: {body}; the server's log:\n{}",
        std::fs::read_to_string(&server.log).unwrap_or_default()
    );
    for _ in 0..5 {
        let (status, body) = call(
            client
                .get(format!("{}/api/v1/top", server.base))
                .query("query", "{service_name=\"normal\"}")
                .query("from", "now-5m")
                .call(),
        );
        assert_eq!(status, 200, "top: {body}");
        assert!(body.contains("parse"), "{body}");
    }
    // Every stalled upload is answered 408 and closed.
    let mut cut = 0;
    for (i, c) in stalled.iter_mut().enumerate() {
        c.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut answer = Vec::new();
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("upload {i}: still open after {:?}: {e}", start.elapsed()),
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        // An upload may also have been closed as idle to make room before
        // its body was read; none stays.
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "upload {i}: {answer}"
        );
        cut += usize::from(!answer.is_empty());
    }
    assert!(cut > 0, "no stalled upload was answered 408");
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    assert!(
        log.contains("the open-file limit is 1024"),
        "the cap was not lowered to fit the descriptors:\n{log}"
    );
    assert!(
        !log.contains("cannot accept"),
        "ran out of descriptors:\n{log}"
    );
    drop(idle);
}
