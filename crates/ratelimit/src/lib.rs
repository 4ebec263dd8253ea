//! Rate limits on a cgroup's egress: `src/bpf/ratelimit.bpf.c` attached
//! to the cgroup v2 directory, its link pinned in bpffs so the limit
//! outlives the process that set it and a later call (or `rm`) can lift
//! it.
//!
//! A crate of its own because building it needs clang and the kernel's
//! BTF: the autopilot links it only through its `cgroup-ratelimit`
//! feature, so the server and the autopilot build without either.

use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::OpenObject;
use thiserror::Error;

mod skel {
    #![allow(clippy::all, dead_code, non_camel_case_types, unused_imports)]
    include!(concat!(env!("OUT_DIR"), "/ratelimit.skel.rs"));
}
use skel::{RatelimitSkel, RatelimitSkelBuilder};

/// Where the BPF filesystem is mounted by convention, and where perfpilot
/// mounts it when a pin under it needs it.
pub const BPFFS_DIR: &str = "/sys/fs/bpf";

/// Where limits are pinned when the caller does not say.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/perfpilot/ratelimit";

/// The fastest rate the BPF program prices without overflow: 10^13
/// bytes (80 Tbit) per second.
pub const MAX_RATE_BYTES_PER_S: u64 = 10_000_000_000_000;

/// The smallest bucket: a packet passes while the debt it leaves stays
/// within one burst, so a full bucket and its debt, two bursts, must hold
/// a 64 KiB GSO packet or such packets are never sent.
pub const MIN_BURST_BYTES: u64 = 32 * 1024;

/// The largest bucket: the program keeps tokens in a signed 64-bit count.
pub const MAX_BURST_BYTES: u64 = i64::MAX as u64;

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
        "{dir} is not on a BPF filesystem and mounting one at {BPFFS_DIR} failed ({source}): \
         mount one with `mount -t bpf bpf {BPFFS_DIR}`"
    )]
    MountBpffs {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot limit a cgroup to {rate} bytes/s: {why}")]
    BadRate { rate: u64, why: String },
    #[error("cannot give a cgroup limit a burst of {burst} bytes: {why}")]
    BadBurst { burst: u64, why: String },
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

/// Checks a limit's rate and burst against what the BPF program can
/// keep, and returns the nanoseconds the rate takes to earn a whole burst.
fn check_limit(rate_bytes_per_s: u64, burst_bytes: u64) -> Result<u64, RateLimitError> {
    let bad_rate = |why: String| RateLimitError::BadRate {
        rate: rate_bytes_per_s,
        why,
    };
    if rate_bytes_per_s == 0 {
        return Err(bad_rate(
            "the rate must be at least 1 byte per second (8bit)".into(),
        ));
    }
    if rate_bytes_per_s > MAX_RATE_BYTES_PER_S {
        return Err(bad_rate(format!(
            "the rate can be at most {MAX_RATE_BYTES_PER_S} bytes per second (80tbit)"
        )));
    }
    let bad_burst = |why: String| RateLimitError::BadBurst {
        burst: burst_bytes,
        why,
    };
    if burst_bytes > MAX_BURST_BYTES {
        return Err(bad_burst(format!(
            "the burst can be at most {MAX_BURST_BYTES} bytes (2^63 - 1)"
        )));
    }
    if burst_bytes < MIN_BURST_BYTES {
        return Err(bad_burst(format!(
            "the burst must be at least {MIN_BURST_BYTES} bytes (32kb): packets pass while the \
             bucket's debt stays within one burst, so two bursts must hold a 64 KiB GSO packet"
        )));
    }
    Ok(full_refill_ns(rate_bytes_per_s, burst_bytes))
}

/// ceil(burst * 10^9 / rate): the nanoseconds `rate_bytes_per_s` takes
/// to earn `burst_bytes`, saturated at u64::MAX (no gap is that long).
fn full_refill_ns(rate_bytes_per_s: u64, burst_bytes: u64) -> u64 {
    let ns = (u128::from(burst_bytes) * 1_000_000_000).div_ceil(u128::from(rate_bytes_per_s));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Opens and loads the program for one limit; `rate_bytes_per_s` and
/// `burst_bytes` are checked by `check_limit`, which gave `refill_ns`.
fn load<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    rate_bytes_per_s: u64,
    burst_bytes: u64,
    refill_ns: u64,
) -> Result<RatelimitSkel<'obj>, RateLimitError> {
    let mut open = RatelimitSkelBuilder::default()
        .open(storage)
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
    ro.full_refill_ns = refill_ns;
    open.load()
        .map_err(|e| bpf_error("loading the rate-limit BPF program", e))
}

/// Mounts the BPF filesystem at [`BPFFS_DIR`] when `pin_dir` is under it
/// and nothing is mounted there yet, as on a machine where no BPF program
/// has pinned anything since boot. A `pin_dir` elsewhere is the caller's
/// choice, and is left as it is.
fn mount_bpffs_for(pin_dir: &Path) -> Result<(), RateLimitError> {
    let at = Path::new(BPFFS_DIR);
    if !pin_dir.starts_with(at) || is_bpffs(at) {
        return Ok(());
    }
    let failed = |source: std::io::Error| {
        if source.raw_os_error() == Some(libc::EPERM) {
            RateLimitError::NotPermitted {
                what: format!("mounting a BPF filesystem at {BPFFS_DIR}"),
            }
        } else {
            RateLimitError::MountBpffs {
                dir: pin_dir.display().to_string(),
                source,
            }
        }
    };
    // Under a lock on the directory (sysfs's, which later lookups no
    // longer reach), so processes that find it unmounted at once mount
    // it once: a second mount would hide the first one's pins.
    let dir = std::fs::File::open(at).map_err(failed)?;
    // SAFETY: flock takes an open descriptor and flags; `dir` outlives
    // the lock, which closing it releases.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    if is_bpffs(at) {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (source, target, fstype, options) = (c("bpf"), c(BPFFS_DIR), c("bpf"), c("mode=700"));
    // SAFETY: every pointer is a valid C string for the call's duration.
    let mounted = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if mounted != 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Makes `pin_dir`, telling a missing BPF filesystem from a missing
/// permission: a directory that is not on bpffs (such as /sys/fs/bpf on
/// sysfs when nothing is mounted there) may refuse mkdir with EPERM too.
fn create_pin_dir(pin_dir: &Path) -> Result<(), RateLimitError> {
    mount_bpffs_for(pin_dir)?;
    std::fs::create_dir_all(pin_dir).map_err(|e| {
        let nearest = pin_dir.ancestors().find(|a| a.exists());
        match nearest {
            Some(a) if !is_bpffs(a) => RateLimitError::NoBpffs {
                dir: pin_dir.display().to_string(),
            },
            _ => io("creating", pin_dir, e),
        }
    })
}

/// What a new limit's pin adds to the cgroup's pin name.
const NEW_PIN_INFIX: &str = "-new-";

/// A name in the pin directory for a new limit's pin until it takes the
/// old one's place: unique to this call, and known to `clear_cgroup` as
/// belonging to the cgroup.
fn new_pin_path(pin: &Path) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut name = pin.file_name().unwrap_or_default().to_os_string();
    // No dots: bpffs keeps names with them for itself (EPERM).
    name.push(format!("{NEW_PIN_INFIX}{}-{n}", std::process::id()));
    pin.with_file_name(name)
}

/// Limits the egress of the cgroup at `dir` (and its descendants) to
/// `rate_bytes_per_s`, with bursts up to `burst_bytes`, replacing any
/// limit perfpilot set on it before. Returns the pin.
///
/// The rate must be 1 to [`MAX_RATE_BYTES_PER_S`], the burst
/// [`MIN_BURST_BYTES`] to [`MAX_BURST_BYTES`]; they are checked before
/// anything is made or loaded.
pub fn limit_cgroup(
    dir: &Path,
    rate_bytes_per_s: u64,
    burst_bytes: u64,
    pin_dir: &Path,
) -> Result<PathBuf, RateLimitError> {
    let refill_ns = check_limit(rate_bytes_per_s, burst_bytes)?;
    create_pin_dir(pin_dir)?;
    let pin = pin_path(dir, pin_dir)?;
    let cgroup = std::fs::File::open(dir).map_err(|e| io("opening", dir, e))?;

    let mut storage = MaybeUninit::<OpenObject>::uninit();
    let skel = load(&mut storage, rate_bytes_per_s, burst_bytes, refill_ns)?;
    let mut link = skel
        .progs
        .limit_egress
        .attach_cgroup(cgroup.as_raw_fd())
        .map_err(|e| bpf_error(&format!("attaching to cgroup {}", dir.display()), e))?;
    // The new limit is pinned beside the old one and renamed over it, so
    // the cgroup is never without a limit, and a failure leaves the old
    // one in place. Until the rename both apply, and the stricter wins.
    let new_pin = new_pin_path(&pin);
    link.pin(&new_pin).map_err(|e| {
        if is_bpffs(pin_dir) {
            bpf_error(&format!("pinning the limit at {}", new_pin.display()), e)
        } else {
            RateLimitError::NoBpffs {
                dir: pin_dir.display().to_string(),
            }
        }
    })?;
    if let Err(e) = std::fs::rename(&new_pin, &pin) {
        let _ = std::fs::remove_file(&new_pin);
        return Err(io("replacing the limit pinned at", &pin, e));
    }
    Ok(pin)
}

/// Lifts the limit perfpilot set on the cgroup at `dir`, with any new
/// limit's pin that a process ended with before renaming it into place.
/// False when there was none.
pub fn clear_cgroup(dir: &Path, pin_dir: &Path) -> Result<bool, RateLimitError> {
    let pin = pin_path(dir, pin_dir)?;
    let mut cleared = false;
    if let (Ok(entries), Some(name)) = (std::fs::read_dir(pin_dir), pin.file_name()) {
        let prefix = format!("{}{NEW_PIN_INFIX}", name.to_string_lossy());
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => cleared = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("removing the limit", &entry.path(), e)),
                }
            }
        }
    }
    match std::fs::remove_file(&pin) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(cleared),
        Err(e) => Err(io("removing the limit", &pin, e)),
    }
}

fn is_bpffs(dir: &Path) -> bool {
    const BPF_FS_MAGIC: u32 = 0xcafe4a11;
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
    // f_type is i64 on x86-64 glibc and i32 on some targets, where the
    // magic is negative: compared as the 32 bits the kernel sets, it is
    // not sign-extended.
    #[allow(clippy::unnecessary_cast)]
    let magic = unsafe { st.assume_init() }.f_type as u32;
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

    #[test]
    fn limits_are_checked_before_anything_is_made() {
        // Neither exists: a check that passed would fail on them instead.
        let cgroup = Path::new("/nonexistent/perfpilot-cgroup");
        let pins = std::env::temp_dir().join(format!(
            "perfpilot-unmade-pins-{}/ratelimit",
            std::process::id()
        ));
        let error = |rate, burst| {
            let e = limit_cgroup(cgroup, rate, burst, &pins).unwrap_err();
            assert!(!pins.parent().unwrap().exists(), "{e}");
            e.to_string()
        };
        assert_eq!(
            error(0, 128 * 1024),
            "cannot limit a cgroup to 0 bytes/s: the rate must be at least 1 byte per second (8bit)"
        );
        assert_eq!(
            error(MAX_RATE_BYTES_PER_S + 1, 128 * 1024),
            "cannot limit a cgroup to 10000000000001 bytes/s: the rate can be at most \
             10000000000000 bytes per second (80tbit)"
        );
        assert_eq!(
            error(1_000_000, u64::MAX),
            "cannot give a cgroup limit a burst of 18446744073709551615 bytes: \
             the burst can be at most 9223372036854775807 bytes (2^63 - 1)"
        );
        assert_eq!(
            error(1_000_000, i64::MAX as u64 + 1),
            "cannot give a cgroup limit a burst of 9223372036854775808 bytes: \
             the burst can be at most 9223372036854775807 bytes (2^63 - 1)"
        );
        let small = error(1_000_000, MIN_BURST_BYTES - 1);
        assert!(
            small.starts_with(
                "cannot give a cgroup limit a burst of 32767 bytes: \
                 the burst must be at least 32768 bytes (32kb)"
            ) && small.contains("64 KiB GSO packet"),
            "{small}"
        );
        // The bounds themselves are limits the program keeps.
        for (rate, burst) in [
            (1, MIN_BURST_BYTES),
            (MAX_RATE_BYTES_PER_S, MAX_BURST_BYTES),
            (1, MAX_BURST_BYTES),
        ] {
            assert!(check_limit(rate, burst).is_ok(), "{rate} {burst}");
        }
    }

    #[test]
    fn a_full_refill_takes_the_bursts_time_rounded_up() {
        assert_eq!(full_refill_ns(1_000_000, 131_072), 131_072_000);
        // 10 MB at 1 MB/s: ten seconds, not the one a gap used to need.
        assert_eq!(full_refill_ns(1_000_000, 10_000_000), 10_000_000_000);
        assert_eq!(full_refill_ns(3, 32_768), 10_922_666_666_667);
        assert_eq!(full_refill_ns(MAX_RATE_BYTES_PER_S, MIN_BURST_BYTES), 4);
        // Longer than a u64 of nanoseconds: never reached.
        assert_eq!(full_refill_ns(1, MAX_BURST_BYTES), u64::MAX);
    }

    /// The bucket of a loaded limit, driven one packet at a time through
    /// BPF_PROG_TEST_RUN with the bucket set beforehand, so the refill's
    /// arithmetic is checked against bpf_ktime_get_ns (CLOCK_MONOTONIC).
    struct Bucket<'obj> {
        skel: RatelimitSkel<'obj>,
    }

    /// struct pp_bucket as the skeleton has it from the program's BTF, so
    /// the byte places the tests write follow the C.
    type BucketValue = skel::types::pp_bucket;
    const TOKENS: usize = std::mem::offset_of!(BucketValue, tokens);
    const LAST_NS: usize = std::mem::offset_of!(BucketValue, last_ns);

    /// A packet's payload as the program sees it (skb->len): test runs
    /// of cgroup_skb programs take an Ethernet frame and pull its header.
    const LEN: i64 = 1000;

    fn monotonic_ns() -> u64 {
        let mut ts = MaybeUninit::<libc::timespec>::uninit();
        // SAFETY: clock_gettime writes `ts`; CLOCK_MONOTONIC cannot fail.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr()) },
            0
        );
        // SAFETY: written above.
        let ts = unsafe { ts.assume_init() };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    impl<'obj> Bucket<'obj> {
        fn new(storage: &'obj mut MaybeUninit<OpenObject>, rate: u64, burst: u64) -> Self {
            // SAFETY: geteuid(2) takes nothing and cannot fail.
            assert_eq!(unsafe { libc::geteuid() }, 0, "loading BPF needs root");
            let refill_ns = check_limit(rate, burst).unwrap();
            Bucket {
                skel: load(storage, rate, burst, refill_ns).unwrap(),
            }
        }

        fn set(&self, tokens: i64, last_ns: u64) {
            use libbpf_rs::MapCore;
            let mut value = [0u8; size_of::<BucketValue>()];
            value[TOKENS..TOKENS + 8].copy_from_slice(&tokens.to_ne_bytes());
            value[LAST_NS..LAST_NS + 8].copy_from_slice(&last_ns.to_ne_bytes());
            self.skel
                .maps
                .buckets
                .update(&0u32.to_ne_bytes(), &value, libbpf_rs::MapFlags::ANY)
                .unwrap();
        }

        /// (tokens, last_ns)
        fn get(&self) -> (i64, u64) {
            use libbpf_rs::MapCore;
            let value = self
                .skel
                .maps
                .buckets
                .lookup(&0u32.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
                .unwrap()
                .unwrap();
            (
                i64::from_ne_bytes(value[TOKENS..TOKENS + 8].try_into().unwrap()),
                u64::from_ne_bytes(value[LAST_NS..LAST_NS + 8].try_into().unwrap()),
            )
        }

        /// Sends one packet of LEN bytes: 1 passed, 3 passed in debt, 2
        /// dropped.
        fn send(&self) -> u32 {
            let mut frame = vec![0u8; 14 + LEN as usize];
            frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let input = libbpf_rs::ProgramInput {
                data_in: Some(&frame),
                ..Default::default()
            };
            self.skel
                .progs
                .limit_egress
                .test_run(input)
                .unwrap()
                .return_value
        }
    }

    #[test]
    fn root_the_first_packet_finds_a_full_bucket() {
        let mut storage = MaybeUninit::uninit();
        let b = Bucket::new(&mut storage, 1_000_000, 131_072);
        let before = monotonic_ns();
        assert_eq!(b.send(), 1);
        let (tokens, last) = b.get();
        assert_eq!(tokens, 131_072 - LEN);
        assert!(last >= before && last <= monotonic_ns(), "{last}");
    }

    #[test]
    fn root_a_later_last_ns_is_no_time_and_stays() {
        // As when another CPU read the clock after this one and took the
        // lock first.
        let mut storage = MaybeUninit::uninit();
        let b = Bucket::new(&mut storage, 1_000_000, 131_072);
        let later = monotonic_ns() + 5_000_000_000;
        b.set(0, later);
        assert_eq!(b.send(), 3, "passed in debt, not refilled");
        assert_eq!(b.get(), (-LEN, later));
    }

    #[test]
    fn root_fractions_of_a_byte_are_kept_for_the_next_packet() {
        // A byte a millisecond.
        let mut storage = MaybeUninit::uninit();
        let b = Bucket::new(&mut storage, 1_000, 32_768);
        // Half a byte's time earns nothing, and is not thrown away.
        let last = monotonic_ns() - 500_000;
        b.set(5_000, last);
        assert_eq!(b.send(), 1);
        assert_eq!(b.get(), (5_000 - LEN, last));
        // Two and a half bytes' time earns two, and the half is kept.
        let last = monotonic_ns() - 2_500_000;
        b.set(5_000, last);
        assert_eq!(b.send(), 1);
        assert_eq!(b.get(), (5_000 + 2 - LEN, last + 2_000_000));
        // Many packets closer together than a byte's time still earn the
        // rate between them, and the clock is taken up to the last whole
        // byte.
        let start = monotonic_ns();
        b.set(20_000, start);
        let (mut sent, mut last_sent) = (0, start);
        while last_sent < start + 50_000_000 {
            last_sent = monotonic_ns();
            b.send();
            // Kept out of debt: the payload is given back.
            let (tokens, last) = b.get();
            b.set(tokens + LEN, last);
            sent += 1;
        }
        let end = monotonic_ns();
        let (tokens, last) = b.get();
        let earned = (tokens - 20_000) as u64;
        assert!(sent > 50, "{sent} packets in 50 ms");
        assert_eq!(last - start, earned * 1_000_000);
        assert!(
            (last_sent - start) / 1_000_000 <= earned && earned <= (end - start) / 1_000_000,
            "{earned} bytes in {} ns",
            end - start
        );
    }

    #[test]
    fn root_a_long_bucket_refills_at_the_rate() {
        // Ten seconds of burst at 1 MB/s: two seconds earn 2 MB of it.
        let mut storage = MaybeUninit::uninit();
        let b = Bucket::new(&mut storage, 1_000_000, 10_000_000);
        b.set(0, monotonic_ns() - 2_000_000_000);
        assert_eq!(b.send(), 1);
        let (tokens, _) = b.get();
        assert!(
            (2_000_000 - LEN..2_050_000).contains(&tokens),
            "{tokens} tokens"
        );
        // From the deepest debt, twelve seconds pay it and earn two more.
        b.set(-10_000_000, monotonic_ns() - 12_000_000_000);
        assert_eq!(b.send(), 1);
        let (tokens, _) = b.get();
        assert!(
            (2_000_000 - LEN..2_050_000).contains(&tokens),
            "{tokens} tokens"
        );
        // And eleven seconds pay for one and a bit.
        b.set(-10_000_000, monotonic_ns() - 11_000_000_000);
        b.send();
        let (tokens, _) = b.get();
        assert!(
            (1_000_000 - LEN..1_050_000).contains(&tokens),
            "{tokens} tokens"
        );
        // Twenty seconds fill it whatever it held.
        let before = monotonic_ns();
        b.set(-10_000_000, before - 20_000_000_000);
        assert_eq!(b.send(), 1);
        let (tokens, last) = b.get();
        assert_eq!(tokens, 10_000_000 - LEN);
        assert!(last >= before, "{last}");
    }

    #[test]
    fn root_debt_stops_at_one_burst() {
        let mut storage = MaybeUninit::uninit();
        let b = Bucket::new(&mut storage, 1_000, 32_768);
        let now = monotonic_ns();
        b.set(-32_768 + LEN, now);
        assert_eq!(b.send(), 3);
        assert_eq!(b.get().0, -32_768);
        assert_eq!(b.send(), 2);
        assert_eq!(b.get().0, -32_768);
    }

    #[test]
    fn root_the_extremes_do_not_overflow() {
        // The largest bucket at the fastest rate, from its deepest debt:
        // a second earns 10^13 bytes.
        let mut storage = MaybeUninit::uninit();
        let b = Bucket::new(&mut storage, MAX_RATE_BYTES_PER_S, MAX_BURST_BYTES);
        b.set(-i64::MAX, monotonic_ns() - 1_000_000_000);
        assert_eq!(b.send(), 3);
        let (tokens, _) = b.get();
        let earned = tokens + i64::MAX + LEN;
        assert!(
            (10_000_000_000_000..10_500_000_000_000).contains(&earned),
            "{earned}"
        );
        // Nearly full, a second more fills it without wrapping.
        b.set(i64::MAX - 10, monotonic_ns() - 1_000_000_000);
        assert_eq!(b.send(), 1);
        assert_eq!(b.get().0, i64::MAX - LEN);
        // The slowest rate with the largest bucket: its full refill is
        // beyond any gap, and twenty seconds earn twenty bytes.
        let mut storage = MaybeUninit::uninit();
        let b = Bucket::new(&mut storage, 1, MAX_BURST_BYTES);
        let last = monotonic_ns() - 20_000_000_000;
        b.set(0, last);
        assert_eq!(b.send(), 3);
        assert_eq!(b.get(), (20 - LEN, last + 20_000_000_000));
    }

    /// Programs attached to the egress of the cgroup at `dir`.
    fn egress_programs(dir: &Path) -> u32 {
        let cgroup = std::fs::File::open(dir).unwrap();
        let (mut flags, mut count) = (0u32, 0u32);
        // SAFETY: the fd is open for the call; with no id buffer the
        // kernel writes only the two counts given.
        let r = unsafe {
            libbpf_sys::bpf_prog_query(
                cgroup.as_raw_fd(),
                libbpf_sys::BPF_CGROUP_INET_EGRESS,
                0,
                &mut flags,
                std::ptr::null_mut(),
                &mut count,
            )
        };
        assert_eq!(r, 0, "BPF_PROG_QUERY on {}", dir.display());
        count
    }

    /// Runs `f` on a thread of its own in a mount namespace of its own,
    /// private, so mounts and unmounts there leave the machine's alone.
    fn in_private_mount_namespace<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: unshare and mount take no pointers but the C strings
            // given; CLONE_NEWNS moves only this thread (it unshares its
            // file-system context from the other threads').
            unsafe {
                assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0, "unshare");
                // Without this, unmounting would propagate to the host
                // when its mounts are shared (as systemd makes them).
                let root = std::ffi::CString::new("/").unwrap();
                assert_eq!(
                    libc::mount(
                        std::ptr::null(),
                        root.as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null()
                    ),
                    0,
                    "making / private"
                );
            }
            f()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn root_a_limit_mounts_bpffs_when_sys_fs_bpf_has_none() {
        // SAFETY: geteuid(2) takes nothing and cannot fail.
        assert_eq!(unsafe { libc::geteuid() }, 0, "loading BPF needs root");
        in_private_mount_namespace(|| {
            let bpf = Path::new(BPFFS_DIR);
            let target = std::ffi::CString::new(BPFFS_DIR).unwrap();
            // A fresh machine's /sys/fs/bpf: nothing mounted on it.
            while is_bpffs(bpf) {
                // SAFETY: a valid C string; detaching cannot affect the
                // host's namespace, made private above.
                assert_eq!(
                    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) },
                    0
                );
            }
            let root = cgroup2_mount().expect("a cgroup v2 hierarchy");
            let dir = root.join(format!("perfpilot-test-mount-{}", std::process::id()));
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let pins = bpf.join(format!(
                "perfpilot-test-mount-{}/ratelimit",
                std::process::id()
            ));
            let limited = limit_cgroup(&dir, 1_000_000, 131_072, &pins);
            let mounted = is_bpffs(bpf);
            let attached = egress_programs(&dir);
            let cleared = clear_cgroup(&dir, &pins);
            // Unpinned, the link goes once the kernel drops its last
            // reference: wait for it generously.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while egress_programs(&dir) > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let left = egress_programs(&dir);
            let _ = std::fs::remove_dir(&dir);
            let pin = limited.unwrap();
            assert!(mounted, "nothing mounted at {BPFFS_DIR}");
            assert!(pin.starts_with(&pins), "{}", pin.display());
            assert_eq!(attached, 1);
            assert!(cleared.unwrap());
            assert_eq!(left, 0, "the limit stayed attached after clearing");

            // With no /sys/fs/bpf to mount on (a tmpfs hides /sys/fs), the
            // error says what failed and what to do.
            let (none, fs, tmpfs) = (
                std::ffi::CString::new("none").unwrap(),
                std::ffi::CString::new("/sys/fs").unwrap(),
                std::ffi::CString::new("tmpfs").unwrap(),
            );
            // SAFETY: valid C strings; the mount is this namespace's only.
            let hidden = unsafe {
                libc::mount(
                    none.as_ptr(),
                    fs.as_ptr(),
                    tmpfs.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            assert_eq!(hidden, 0, "mounting a tmpfs on /sys/fs");
            let e = limit_cgroup(&dir, 1_000_000, 131_072, &pins).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "{} is not on a BPF filesystem and mounting one at /sys/fs/bpf failed \
                     (No such file or directory (os error 2)): mount one with \
                     `mount -t bpf bpf /sys/fs/bpf`",
                    pins.display()
                )
            );
        });
    }
}
