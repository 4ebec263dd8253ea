//! vmlinux.h for the BPF programs' builds, shared by the build scripts of
//! perfpilot-bpf and perfpilot-ratelimit (included with `#[path]`): dumped
//! from the running kernel's BTF with bpftool, or copied from
//! PERFPILOT_VMLINUX_H when set (for building on a machine without
//! /sys/kernel/btf/vmlinux).

use std::path::Path;
use std::process::Command;

/// Writes `out/vmlinux.h` unless it is already there (or copies the one
/// PERFPILOT_VMLINUX_H names); panics with what to do, as a build script
/// reports failures.
pub fn write_vmlinux_h(out: &Path) {
    let vmlinux = out.join("vmlinux.h");
    println!("cargo:rerun-if-env-changed=PERFPILOT_VMLINUX_H");
    if let Some(given) = std::env::var_os("PERFPILOT_VMLINUX_H") {
        std::fs::copy(&given, &vmlinux).unwrap_or_else(|e| {
            panic!(
                "cannot copy PERFPILOT_VMLINUX_H={}: {e}",
                given.to_string_lossy()
            )
        });
    } else if !vmlinux.exists() {
        let dump = Command::new("bpftool")
            .args([
                "btf",
                "dump",
                "file",
                "/sys/kernel/btf/vmlinux",
                "format",
                "c",
            ])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running bpftool to dump the kernel's BTF failed ({e}); \
                     install it (apt-get install bpftool) or set PERFPILOT_VMLINUX_H"
                )
            });
        if !dump.status.success() {
            panic!(
                "bpftool btf dump failed: {}",
                String::from_utf8_lossy(&dump.stderr)
            );
        }
        std::fs::write(&vmlinux, dump.stdout).expect("write vmlinux.h");
    }
}
