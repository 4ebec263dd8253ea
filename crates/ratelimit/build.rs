//! Compiles `src/bpf/ratelimit.bpf.c` with clang and generates its
//! skeleton. vmlinux.h is dumped from the running kernel's BTF (bpftool),
//! or taken from PERFPILOT_VMLINUX_H when set (for building on a machine
//! without /sys/kernel/btf/vmlinux), as perfpilot-bpf's build does.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

#[path = "../bpf/vmlinux.rs"]
mod vmlinux;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = PathBuf::from("src/bpf");
    vmlinux::write_vmlinux_h(&out);
    println!("cargo:rerun-if-changed=../bpf/vmlinux.rs");

    let source = src.join("ratelimit.bpf.c");
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
        .build_and_generate(out.join("ratelimit.skel.rs"))
        .unwrap_or_else(|e| panic!("building {}: {e:#}", source.display()));
    println!("cargo:rerun-if-changed={}", source.display());
}
