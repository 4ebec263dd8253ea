//! Lock contention: the settings of the futex wait programs
//! (`src/bpf/lock.bpf.h`), loaded by the [`Sampler`](crate::Sampler).

use crate::BpfError;

/// Lock contention profiling: time threads wait in futex waits
/// (`FUTEX_WAIT`, `FUTEX_WAIT_BITSET`, `FUTEX_LOCK_PI`, `FUTEX_LOCK_PI2`,
/// `FUTEX_WAIT_REQUEUE_PI`, `futex_waitv`, `futex_wait`), by user stack.
/// Its cost grows with the rate of waits; these are its knobs, which a CPU
/// budget can turn while it runs ([`Sampler::set_lock_config`]).
///
/// [`Sampler::set_lock_config`]: crate::Sampler::set_lock_config
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    /// Waits shorter than this are not counted, neither as a contention
    /// nor as delay, and cost no unwinding.
    pub min_wait_ns: u64,
    /// Time one futex wait in this many, chosen at random (1: all). Each
    /// counted wait stands for this many.
    pub sample_every: u32,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            min_wait_ns: 0,
            sample_every: 1,
        }
    }
}

/// Whether the futex syscalls' own tracepoints can be attached: tracefs
/// is mounted (libbpf finds a tracepoint's id there). They cost every
/// syscall of the host less than a program on all syscalls does (about
/// 70 against 160 ns per syscall on the test VM), so they are preferred.
pub(crate) fn syscall_tracepoints() -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|t| {
            std::path::Path::new(t)
                .join("events/syscalls/sys_enter_futex/id")
                .exists()
        })
}

/// What to do when the lock programs do not load or attach.
const LOCK_HINT: &str = "lock profiles attach BPF programs to the futex syscall \
    tracepoints (CONFIG_FTRACE_SYSCALLS, through tracefs when it is mounted, else to \
    sys_enter and sys_exit through BPF trampolines: CONFIG_DEBUG_INFO_BTF, CONFIG_BPF_JIT, \
    x86-64) and keep each waiting thread's start time in BPF task storage (kernel 5.12 or \
    later); check `bpftool feature probe` and dmesg, or profile without --profiles lock";

/// A load or attach error of a session with lock profiling on, said so
/// the user knows which part failed and what to change.
pub(crate) fn lock_error(err: BpfError) -> BpfError {
    match err {
        BpfError::Load { what, message } => BpfError::Load {
            what,
            message: format!("{message}; {LOCK_HINT}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_failures_say_what_to_change() {
        let err = lock_error(BpfError::Load {
            what: "loading".into(),
            message: "invalid argument".into(),
        });
        let text = err.to_string();
        assert!(text.contains("invalid argument"), "{text}");
        assert!(text.contains("without --profiles lock"), "{text}");
    }
}
