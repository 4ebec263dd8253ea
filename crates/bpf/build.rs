//! Compiles the BPF C programs with clang and generates their skeletons.
//! vmlinux.h is dumped from the running kernel's BTF (bpftool), or taken
//! from PERFPILOT_VMLINUX_H when set (for building on a machine without
//! /sys/kernel/btf/vmlinux).

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

#[path = "vmlinux.rs"]
mod vmlinux;

const PROGRAMS: &[&str] = &["profiler", "follow"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = PathBuf::from("src/bpf");
    vmlinux::write_vmlinux_h(&out);
    println!("cargo:rerun-if-changed=vmlinux.rs");

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
    println!("cargo:rerun-if-changed=src/bpf/alloc.bpf.h");
    println!("cargo:rerun-if-changed=src/bpf/targets.h");
    println!("cargo:rerun-if-changed=src/bpf/lock.bpf.h");
}
