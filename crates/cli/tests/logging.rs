//! Logs on standard error: readable lines by default, one JSON object a
//! line with `--log-format json`; a command's own output keeps its form.
//! The log line here is the store setting aside a damaged block when the
//! server opens it.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `perfpilot [ARGS] server` on a data directory holding a damaged
/// block and returns its standard error lines up to the server's
/// "web UI and API" line.
fn server_stderr(dir: &Path, args: &[&str]) -> Vec<String> {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("blocks")).unwrap();
    std::fs::write(data.join("blocks/000001.blk"), b"not a block").unwrap();
    let port = alerting::free_port();
    let mut child = Running(
        perfpilot()
            .args(args)
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(&data)
            .env_remove("PERFPILOT_LOG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("web UI and API on");
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(_) => panic!("the server did not start; its standard error:\n{lines:#?}"),
        }
    }
}

#[test]
fn log_lines_are_json_objects_with_log_format_json() {
    let dir = tempfile::tempdir().unwrap();
    let lines = server_stderr(dir.path(), &["--log-format", "json"]);
    let logged: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.contains("set aside"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    assert_eq!(logged.len(), 1, "{lines:#?}");
    let event = &logged[0];
    assert_eq!(event["level"], "WARN", "{event}");
    assert!(
        event["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("perfpilot_store")),
        "{event}"
    );
    assert!(
        event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("set aside ")),
        "{event}"
    );
    assert!(
        event["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("000001.blk")),
        "{event}"
    );
    assert!(event["timestamp"].is_string(), "{event}");
    // The command's own output is not a log: it keeps its form.
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("perfpilot server: web UI and API on"),
        "{last}"
    );
}

#[test]
fn log_lines_are_readable_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let lines = server_stderr(dir.path(), &[]);
    let logged: Vec<&String> = lines.iter().filter(|l| l.contains("set aside")).collect();
    assert_eq!(logged.len(), 1, "{lines:#?}");
    assert!(
        logged[0].starts_with("perfpilot store: warning: set aside ")
            && logged[0].contains("000001.blk"),
        "{lines:#?}"
    );
}
