//! Rate limits on a cgroup's egress: `ratelimit.bpf.c` attached to the
//! cgroup v2 directory, its link pinned in bpffs so the limit outlives the
//! process that set it and a later call (or `rm`) can lift it.

use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::OpenObject;
use thiserror::Error;

mod skel {
    #![allow(clippy::all, dead_code, non_camel_case_types, unused_imports)]
    include!(concat!(env!("OUT_DIR"), "/ratelimit.skel.rs"));
}
use skel::RatelimitSkelBuilder;

/// Where limits are pinned when the caller does not say.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/perfpilot/ratelimit";

#[derive(Debug, Error)]
pub enum RateLimitError {
    #[error(
        "no cgroup v2 hierarchy is mounted (looked for a cgroup2 entry in /proc/self/mountinfo): \
         cgroup rate limits attach a BPF program to a cgroup v2 directory; mount one with \
         `mount -t cgroup2 none /sys/fs/cgroup/unified` or boot with systemd.unified_cgroup_hierarchy=1"
    )]
    NoCgroup2,
    #[error("no cgroup `{cgroup}`: {path} does not exist in the cgroup v2 hierarchy")]
    NoSuchCgroup { cgroup: String, path: String },
    #[error(
        "{dir} is not on a BPF filesystem, so the limit could not be pinned to outlive perfpilot: \
         mount one with `mount -t bpf bpf /sys/fs/bpf`"
    )]
    NoBpffs { dir: String },
    #[error(
        "permission denied while {what}: cgroup rate limits need root, or CAP_BPF, \
         CAP_NET_ADMIN and CAP_SYS_ADMIN"
    )]
    NotPermitted { what: String },
    #[error("{what}: {message}")]
    Bpf { what: String, message: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn bpf_error(what: &str, e: libbpf_rs::Error) -> RateLimitError {
    let message = format!("{e:#}");
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied
        || message.contains("Operation not permitted")
    {
        RateLimitError::NotPermitted { what: what.into() }
    } else {
        RateLimitError::Bpf {
            what: what.into(),
            message,
        }
    }
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> RateLimitError {
    if source.kind() == std::io::ErrorKind::PermissionDenied {
        return RateLimitError::NotPermitted {
            what: format!("{what} {}", path.display()),
        };
    }
    RateLimitError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Where the cgroup v2 hierarchy is mounted: `/sys/fs/cgroup` on a
/// unified host, `/sys/fs/cgroup/unified` on a hybrid one.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        // "36 25 0:31 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let at = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount(at)))
    })
}

/// mountinfo writes spaces and a few other bytes as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of `cgroup`: a path in the hierarchy, such as
/// `system.slice/web.service`, or an absolute path under the mount. On a
/// hybrid host `/sys/fs/cgroup/X` means X in the v2 hierarchy mounted at
/// `/sys/fs/cgroup/unified`, as it would on a unified one.
pub fn cgroup_dir(cgroup: &str) -> Result<PathBuf, RateLimitError> {
    let root = cgroup2_mount().ok_or(RateLimitError::NoCgroup2)?;
    let given = Path::new(cgroup);
    let dir = if given.starts_with(&root) {
        given.to_path_buf()
    } else {
        let inside = given.strip_prefix("/sys/fs/cgroup").unwrap_or(given);
        root.join(inside.to_string_lossy().trim_start_matches('/'))
    };
    if !dir.is_dir() {
        return Err(RateLimitError::NoSuchCgroup {
            cgroup: cgroup.to_string(),
            path: dir.display().to_string(),
        });
    }
    Ok(dir)
}

/// The pin of `dir`'s limit: named by the cgroup's id (its inode), so a
/// cgroup removed and made again is a different one.
fn pin_path(dir: &Path, pin_dir: &Path) -> Result<PathBuf, RateLimitError> {
    let meta = std::fs::metadata(dir).map_err(|e| io("reading", dir, e))?;
    Ok(pin_dir.join(format!("cgroup-{}", meta.ino())))
}

/// Limits the egress of the cgroup at `dir` (and its descendants) to
/// `rate_bytes_per_s`, with bursts up to `burst_bytes`, replacing any
/// limit perfpilot set on it before. Returns the pin.
pub fn limit_cgroup(
    dir: &Path,
    rate_bytes_per_s: u64,
    burst_bytes: u64,
    pin_dir: &Path,
) -> Result<PathBuf, RateLimitError> {
    std::fs::create_dir_all(pin_dir).map_err(|e| io("creating", pin_dir, e))?;
    let pin = pin_path(dir, pin_dir)?;
    let cgroup = std::fs::File::open(dir).map_err(|e| io("opening", dir, e))?;

    let mut storage = MaybeUninit::<OpenObject>::uninit();
    let mut open = RatelimitSkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| bpf_error("opening the rate-limit BPF object", e))?;
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .ok_or_else(|| RateLimitError::Bpf {
            what: "configuring the rate limit".into(),
            message: "the BPF object has no .rodata section".into(),
        })?;
    ro.rate_bytes_per_s = rate_bytes_per_s;
    ro.burst_bytes = burst_bytes;
    let skel = open
        .load()
        .map_err(|e| bpf_error("loading the rate-limit BPF program", e))?;
    let mut link = skel
        .progs
        .limit_egress
        .attach_cgroup(cgroup.as_raw_fd())
        .map_err(|e| bpf_error(&format!("attaching to cgroup {}", dir.display()), e))?;
    // The new limit holds before the old one goes: for a moment both
    // apply, and the stricter wins.
    match std::fs::remove_file(&pin) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("removing the old limit", &pin, e)),
    }
    link.pin(&pin).map_err(|e| {
        if is_bpffs(pin_dir) {
            bpf_error(&format!("pinning the limit at {}", pin.display()), e)
        } else {
            RateLimitError::NoBpffs {
                dir: pin_dir.display().to_string(),
            }
        }
    })?;
    Ok(pin)
}

/// Lifts the limit perfpilot set on the cgroup at `dir`. False when there
/// was none.
pub fn clear_cgroup(dir: &Path, pin_dir: &Path) -> Result<bool, RateLimitError> {
    let pin = pin_path(dir, pin_dir)?;
    match std::fs::remove_file(&pin) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("removing the limit", &pin, e)),
    }
}

fn is_bpffs(dir: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` is written by statfs before
    // it is read, only on success.
    if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: statfs succeeded, so `st` is initialised.
    // f_type is i64 on x86-64 glibc, narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    let magic = unsafe { st.assume_init() }.f_type as i64;
    magic == BPF_FS_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mount("/x\\"), "/x\\");
    }
}
