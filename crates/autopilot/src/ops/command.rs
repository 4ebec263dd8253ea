//! Running a program for an operation: an argv, never a shell, in its own
//! process group with a timeout, its output captured and truncated.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{OpError, Ops, Outcome};

impl Ops {
    pub(super) fn command(
        &self,
        argv: &[String],
        env: &[(String, String)],
        timeout: Duration,
    ) -> Outcome {
        self.command_stdout(argv, env, timeout).0
    }

    /// Like `command`, with stdout alone as well, for output that is parsed.
    pub(super) fn command_stdout(
        &self,
        argv: &[String],
        env: &[(String, String)],
        timeout: Duration,
    ) -> (Outcome, String) {
        let started = Instant::now();
        let Some((program, args)) = argv.split_first() else {
            return (
                Outcome::failed(OpError::EmptyCommand, started.elapsed()),
                String::new(),
            );
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills what it started too.
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let error = OpError::Spawn {
                    program: program.clone(),
                    message: e.to_string(),
                };
                return (Outcome::failed(error, started.elapsed()), String::new());
            }
        };
        let stdout = child.stdout.take().map(|s| drain(s, self.output_limit));
        let stderr = child.stderr.take().map(|s| drain(s, self.output_limit));
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() >= timeout => {
                    timed_out = true;
                    kill_group(child.id());
                    let _ = child.kill();
                    break child.wait();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => break Err(e),
            }
        };
        // A grandchild may hold the pipes open: do not wait for it forever.
        let collect = |rx: Option<mpsc::Receiver<String>>| {
            rx.and_then(|rx| rx.recv_timeout(Duration::from_millis(500)).ok())
                .unwrap_or_default()
        };
        let (out, err) = (collect(stdout), collect(stderr));
        let mut output = out.clone();
        if !err.is_empty() {
            if !output.is_empty() && !output.ends_with('\n') {
                output.push('\n');
            }
            output.push_str("[stderr]\n");
            output.push_str(&err);
        }
        let duration = started.elapsed();
        let program = program.clone();
        let (exit_status, error) = match status {
            Err(e) => (
                None,
                Some(OpError::Spawn {
                    program,
                    message: e.to_string(),
                }),
            ),
            Ok(_) if timed_out => (None, Some(OpError::Timeout { program, timeout })),
            Ok(s) => match (s.code(), s.signal()) {
                (Some(0), _) => (Some(0), None),
                (Some(code), _) => (
                    Some(code),
                    Some(OpError::ExitStatus {
                        program,
                        status: code,
                    }),
                ),
                (None, signal) => (
                    None,
                    Some(OpError::KilledBySignal {
                        program,
                        signal: signal.unwrap_or(0),
                    }),
                ),
            },
        };
        let outcome = Outcome {
            ok: error.is_none(),
            exit_status,
            output,
            error,
            duration,
        };
        (outcome, out)
    }
}

/// Puts a summary line before a command's own output.
pub(super) fn prepend(output: &mut String, line: &str) {
    *output = format!("{line}\n{output}");
}

/// Reads a pipe to its end in a thread, keeping the first `limit` bytes
/// but draining the rest so the child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static, limit: usize) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut dropped = 0usize;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len()).min(n);
                    kept.extend_from_slice(&buf[..room]);
                    dropped += n - room;
                }
            }
        }
        let mut text = String::from_utf8_lossy(&kept).into_owned();
        if dropped > 0 {
            text.push_str(&format!("\n... ({dropped} bytes more)"));
        }
        let _ = tx.send(text);
    });
    rx
}

fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) takes plain integers and touches no memory.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}
