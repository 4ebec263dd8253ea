//! CPython processes: the interpreter images themselves are recognised by
//! `perfpilot-pyruntime` (version, `_PyRuntime`, per-version layouts);
//! this adds what depends on the running process.

use std::os::unix::fs::MetadataExt;

pub use perfpilot_pyruntime::{inspect, Interpreter};

/// The pid namespace of `pid` as (device, inode) when it differs from
/// ours, else (0, 0).
pub fn pid_namespace(pid: u32) -> (u64, u64) {
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/pid"));
    let ours = std::fs::metadata("/proc/self/ns/pid");
    match (theirs, ours) {
        (Ok(t), Ok(o)) if t.ino() != o.ino() => (t.dev(), t.ino()),
        _ => (0, 0),
    }
}
