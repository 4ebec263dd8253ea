use thiserror::Error;

/// Why the sampler could not start or run. The messages are meant for the
/// person at the terminal: they say what to do.
#[derive(Debug, Error)]
pub enum BpfError {
    #[error(
        "permission denied while {what}: run perfpilot as root (sudo), or give it \
         CAP_BPF and CAP_PERFMON, plus CAP_SYS_PTRACE and CAP_SYS_ADMIN to read other \
         users' processes: setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_sys_admin+ep perfpilot"
    )]
    NotPermitted { what: String },
    #[error(
        "this kernel has no BTF type information (/sys/kernel/btf/vmlinux is missing): \
         perfpilot needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.8 or later)"
    )]
    NoBtf,
    #[error(
        "the kernel refused to open a cpu-clock perf event on CPU {cpu} ({source}): \
         it needs CONFIG_PERF_EVENTS; check /proc/sys/kernel/perf_event_paranoid"
    )]
    PerfEvent {
        cpu: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel rejected perfpilot's BPF program while {what}: {message}")]
    Load { what: String, message: String },
    #[error("BPF map operation failed while {what}: {message}")]
    Map { what: String, message: String },
    #[error("cannot read {path}: {source}")]
    Sysfs {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl BpfError {
    pub(crate) fn from_libbpf(what: &str, err: libbpf_rs::Error) -> BpfError {
        use libbpf_rs::ErrorKind;
        match err.kind() {
            // The verifier also answers EACCES; only a missing privilege
            // is the user's to fix.
            ErrorKind::PermissionDenied if !crate::perf::has_profiling_capabilities() => {
                BpfError::NotPermitted { what: what.into() }
            }
            _ => {
                // libbpf reports EPERM for a missing capability as a plain
                // OS error in some paths.
                let message = format!("{err:#}");
                if message.contains("Operation not permitted")
                    && !crate::perf::has_profiling_capabilities()
                {
                    BpfError::NotPermitted { what: what.into() }
                } else {
                    BpfError::Load {
                        what: what.into(),
                        message,
                    }
                }
            }
        }
    }

    pub(crate) fn map(what: &str, err: impl std::fmt::Display) -> BpfError {
        BpfError::Map {
            what: what.into(),
            message: err.to_string(),
        }
    }
}
