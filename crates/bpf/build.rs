//! Compiles the BPF C programs with clang and generates their skeletons.
//! vmlinux.h is dumped from the running kernel's BTF (bpftool), or taken
//! from PERFPILOT_VMLINUX_H when set (for building on a machine without
//! /sys/kernel/btf/vmlinux).

use std::env;
use std::path::PathBuf;
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

const PROGRAMS: &[&str] = &["profiler", "follow"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = PathBuf::from("src/bpf");
    let vmlinux = out.join("vmlinux.h");

    println!("cargo:rerun-if-env-changed=PERFPILOT_VMLINUX_H");
    if let Some(given) = env::var_os("PERFPILOT_VMLINUX_H") {
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

    for name in PROGRAMS {
        let source = src.join(format!("{name}.bpf.c"));
        let skel = out.join(format!("{name}.skel.rs"));
        SkeletonBuilder::new()
            .source(&source)
            .clang_args([
                "-I".as_ref(),
                out.as_os_str(),
                "-I".as_ref(),
                src.as_os_str(),
                "-Wall".as_ref(),
                "-Wno-unused-function".as_ref(),
            ])
            .build_and_generate(&skel)
            .unwrap_or_else(|e| panic!("building {}: {e:#}", source.display()));
        println!("cargo:rerun-if-changed={}", source.display());
    }
    println!("cargo:rerun-if-changed=src/bpf/profiler.h");
    println!("cargo:rerun-if-changed=src/bpf/targets.h");
}
