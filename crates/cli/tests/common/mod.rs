//! Helpers shared by the integration tests: building the test workloads,
//! running perfpilot, reading folded output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn perfpilot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perfpilot"))
}

pub fn workload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/workloads")
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
