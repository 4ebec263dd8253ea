//! perf_event_open for the software cpu-clock event.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::BpfError;

// From include/uapi/linux/perf_event.h.
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const ATTR_FLAG_FREQ: u64 = 1 << 10;

#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period_or_freq: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    _reserved: u16,
}

/// Opens a cpu-clock sampling event on `cpu` for every process, firing
/// `frequency` times per second.
pub(crate) fn open_cpu_clock(cpu: u32, frequency: u64) -> Result<OwnedFd, BpfError> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_CPU_CLOCK,
        sample_period_or_freq: frequency,
        flags: ATTR_FLAG_FREQ,
        ..Default::default()
    };
    // SAFETY: attr is a valid perf_event_attr of the size it declares.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1 as libc::pid_t,
            cpu as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        let source = io::Error::last_os_error();
        return Err(match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => BpfError::NotPermitted {
                what: format!("opening a perf event on CPU {cpu}"),
            },
            _ => BpfError::PerfEvent { cpu, source },
        });
    }
    // SAFETY: the syscall returned a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Changes a running cpu-clock event's sampling period, in nanoseconds.
/// The kernel turns a cpu-clock event's frequency into a fixed period when
/// it is opened, so PERF_EVENT_IOC_PERIOD takes a period, and the timer
/// restarts with it without detaching the program.
pub(crate) fn set_cpu_clock_period(fd: &OwnedFd, period_ns: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // _IOW('$', 4, __u64)
    const PERF_EVENT_IOC_PERIOD: libc::c_ulong = 0x4008_2404;
    let value = period_ns;
    // SAFETY: the ioctl reads one u64 from the pointer we pass.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_PERIOD, &value as *const u64) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The online CPUs, from /sys/devices/system/cpu/online ("0-3,5").
pub fn online_cpus() -> Result<Vec<u32>, BpfError> {
    let path = "/sys/devices/system/cpu/online";
    let text = std::fs::read_to_string(path).map_err(|source| BpfError::Sysfs {
        path: path.into(),
        source,
    })?;
    parse_cpu_list(&text).ok_or_else(|| BpfError::Sysfs {
        path: path.into(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {text:?}")),
    })
}

fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// Whether this process has what loading BPF and sampling every CPU needs:
/// root, or CAP_BPF and CAP_PERFMON in its effective set.
pub(crate) fn has_profiling_capabilities() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << CAP_PERFMON) != 0 && eff & (1 << CAP_BPF) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3\n"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpu_list("0,2-3,7"), Some(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn attr_has_the_kernel_size() {
        // PERF_ATTR_SIZE_VER5
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 112);
    }
}
