//! perfpilot's BPF programs and their loaders.
//!
//! The C sources live in `src/bpf/` and are compiled by `build.rs`. This
//! crate owns everything that touches the BPF syscall or perf events; the
//! agent above it deals only in plain Rust values ([`RawSample`],
//! [`ExecMap`], [`UnwindRow`]).

mod drain;
mod error;
mod lock;
mod perf;
mod profiler;
mod unwind_table;

pub use drain::{BatchDrainer, DrainError};
pub use error::BpfError;
pub use lock::LockConfig;
pub use perf::online_cpus;
pub use profiler::{
    AllocConfig, AllocStats, CfaRule, Drained, Event, ExecMap, KernelTable, OffCpuConfig,
    PythonName, PythonOffsets, PythonProcess, RawSample, RawStack, RawStacks, RbpRule, RingHook,
    Sampler, SamplerConfig, SamplerStats, UnwindRow, ALLOC_OBJECT_ONE, MAX_EXEC_MAPS, MAX_FRAMES,
    MAX_UNWIND_TABLES, RAW_STACK_MAX, SAMPLE_F_ALLOC, SAMPLE_F_ALLOC_FREE, SAMPLE_F_ALLOC_OBJECTS,
    SAMPLE_F_ALLOC_UNTRACKED, SAMPLE_F_FP_ONLY, SAMPLE_F_LOCK, SAMPLE_F_NO_UNWIND_INFO,
    SAMPLE_F_OFFCPU, SAMPLE_F_PY_NO_THREAD, SAMPLE_F_PY_TRUNCATED, SAMPLE_F_READ_ERROR,
    SAMPLE_F_RUNNABLE, SAMPLE_F_SHORT, SAMPLE_F_STACK_LOST, SAMPLE_F_TABLE_PENDING,
    SAMPLE_F_TRUNCATED, SAMPLE_F_UNSUPPORTED, TABLE_PENDING,
};
pub use unwind_table::KernelUnwindTable;

/// Checks what profiling needs from the kernel and the caller's
/// privileges, with an error a user can act on.
pub fn check_environment() -> Result<(), BpfError> {
    // Tests point this elsewhere to see the error a kernel without BTF
    // gives; no machine here lacks it.
    let btf = std::env::var_os("PERFPILOT_KERNEL_BTF")
        .unwrap_or_else(|| "/sys/kernel/btf/vmlinux".into());
    if !std::path::Path::new(&btf).exists() {
        return Err(BpfError::NoBtf);
    }
    if !perf::has_profiling_capabilities() {
        return Err(BpfError::NotPermitted {
            what: "loading BPF programs and opening perf events".into(),
        });
    }
    Ok(())
}
