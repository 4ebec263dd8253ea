//! Allocation profiles: what is in use (sampled allocations not freed
//! yet, per stack) across intervals, and which allocators to probe.
//!
//! The kernel counts sampled allocations and the frees of sampled
//! addresses as records of the same key; the difference, kept here from
//! the first drain on, is what each stack holds. A stack's frames are
//! kept while it holds anything: its later frees come without them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use perfpilot_bpf::{
    Drained, RawSample, SAMPLE_F_ALLOC, SAMPLE_F_ALLOC_FREE, SAMPLE_F_ALLOC_OBJECTS,
    SAMPLE_F_ALLOC_UNTRACKED,
};

pub use perfpilot_bpf::{AllocConfig, AllocStats, ALLOC_OBJECT_ONE};

/// Marks the in-use records [`InUse::snapshot`] makes (never set by the
/// kernel): their count is what is held at the snapshot.
pub const SAMPLE_F_INUSE: u32 = 1 << 30;

/// The flags that tell an allocation record's kind, not its key.
const KIND: u32 = SAMPLE_F_ALLOC_OBJECTS | SAMPLE_F_ALLOC_FREE | SAMPLE_F_ALLOC_UNTRACKED;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    tgid: u32,
    tid: u32,
    user: u64,
    python: u64,
    flags: u32,
}

#[derive(Debug, Clone)]
struct Held {
    bytes: i64,
    objects: i64,
    comm: [u8; 16],
    user: Vec<u64>,
    python: Vec<u64>,
}

/// What sampled allocations hold, per (thread, stacks).
#[derive(Debug, Default)]
pub struct InUse {
    held: HashMap<Key, Held>,
    /// Frees of allocations this never saw (made before the session
    /// started, or counted when the counts map was full): ignored.
    pub unmatched_frees: u64,
}

impl InUse {
    /// Adds a drain's allocation and free records. A drain holds both
    /// of an allocation freed within it, in no order: allocations first.
    pub fn absorb(&mut self, drained: &Drained) {
        let records = drained
            .samples
            .iter()
            .filter(|s| s.flags & SAMPLE_F_ALLOC != 0 && s.flags & SAMPLE_F_ALLOC_UNTRACKED == 0);
        let (frees, allocs): (Vec<&RawSample>, Vec<&RawSample>) =
            records.partition(|s| s.flags & SAMPLE_F_ALLOC_FREE != 0);
        for s in allocs.into_iter().chain(frees) {
            let key = Key {
                tgid: s.tgid,
                tid: s.tid,
                user: s.user_stack,
                python: s.python_stack,
                flags: s.flags & !KIND,
            };
            let n = i64::try_from(s.count).unwrap_or(i64::MAX);
            let objects = s.flags & SAMPLE_F_ALLOC_OBJECTS != 0;
            if s.flags & SAMPLE_F_ALLOC_FREE != 0 {
                let Some(h) = self.held.get_mut(&key) else {
                    self.unmatched_frees += 1;
                    continue;
                };
                if objects {
                    h.objects -= n;
                } else {
                    h.bytes -= n;
                }
                if h.bytes <= 0 && h.objects <= 0 {
                    self.held.remove(&key);
                }
                continue;
            }
            let h = self.held.entry(key).or_insert_with(|| Held {
                bytes: 0,
                objects: 0,
                comm: s.comm,
                user: drained
                    .stacks
                    .get(&s.user_stack)
                    .cloned()
                    .unwrap_or_default(),
                python: drained
                    .stacks
                    .get(&s.python_stack)
                    .cloned()
                    .unwrap_or_default(),
            });
            if objects {
                h.objects = h.objects.saturating_add(n);
            } else {
                h.bytes = h.bytes.saturating_add(n);
            }
        }
    }

    /// A process exited or replaced its image: what it held is gone.
    pub fn forget_processes(&mut self, pids: &HashSet<u32>) {
        if !pids.is_empty() {
            self.held.retain(|k, _| !pids.contains(&k.tgid));
        }
    }

    /// The processes holding anything.
    pub fn processes(&self) -> HashSet<u32> {
        self.held.keys().map(|k| k.tgid).collect()
    }

    /// Bytes held by every stack.
    pub fn bytes(&self) -> i64 {
        self.held.values().map(|h| h.bytes.max(0)).sum()
    }

    pub fn stacks(&self) -> usize {
        self.held.len()
    }

    /// What is held now, as records a profile builder takes: one bytes
    /// and one objects record per stack, with [`SAMPLE_F_INUSE`].
    pub fn snapshot(&self) -> Drained {
        let mut out = Drained::default();
        for (k, h) in &self.held {
            if h.bytes <= 0 {
                continue;
            }
            if k.user != 0 {
                out.stacks.insert(k.user, h.user.clone());
            }
            if k.python != 0 {
                out.stacks.insert(k.python, h.python.clone());
            }
            let record = |flags: u32, count: i64| RawSample {
                tgid: k.tgid,
                tid: k.tid,
                user_stack: k.user,
                kernel_stack: 0,
                python_stack: k.python,
                flags: k.flags | SAMPLE_F_ALLOC | SAMPLE_F_INUSE | flags,
                count: count.max(0) as u64,
                events: 0,
                comm: h.comm,
            };
            out.samples.push(record(0, h.bytes));
            out.samples.push(record(SAMPLE_F_ALLOC_OBJECTS, h.objects));
        }
        out
    }
}

/// Keeps the allocation probes' hit rate within a budget: past it they
/// are detached for as long as brings the average down to it (at least
/// half a second, at most 30), then attached again.
#[derive(Debug)]
pub struct ProbeBudget {
    max_rate: u64,
    last_hits: u64,
    last_at: std::time::Instant,
    off_until: Option<std::time::Instant>,
    off_since: Option<std::time::Instant>,
    /// This interval's detachments and time detached.
    detached: u64,
    off: std::time::Duration,
}

impl ProbeBudget {
    pub fn new(max_rate: u64, now: std::time::Instant) -> Self {
        ProbeBudget {
            max_rate,
            last_hits: 0,
            last_at: now,
            off_until: None,
            off_since: None,
            detached: 0,
            off: std::time::Duration::ZERO,
        }
    }

    /// With `hits` probe hits so far (a running total): whether the probes
    /// must be detached now (and for how long is decided).
    pub fn over(&mut self, now: std::time::Instant, hits: u64) -> bool {
        if self.max_rate == 0 || self.off_until.is_some() {
            return false;
        }
        let dt = now.saturating_duration_since(self.last_at).as_secs_f64();
        let delta = hits.saturating_sub(self.last_hits);
        self.last_hits = hits;
        self.last_at = now;
        if dt <= 0.0 {
            return false;
        }
        let rate = delta as f64 / dt;
        let max = self.max_rate as f64;
        if rate <= max {
            return false;
        }
        // Off for long enough that the average over on and off is max.
        let off = (dt * (rate / max - 1.0)).clamp(0.5, 30.0);
        self.off_until = Some(now + std::time::Duration::from_secs_f64(off));
        self.off_since = Some(now);
        self.detached += 1;
        true
    }

    /// Whether the probes are detached and due to be attached again.
    pub fn reattach_due(&self, now: std::time::Instant) -> bool {
        self.off_until.is_some_and(|t| now >= t)
    }

    /// The probes were attached again, `hits` the running total then.
    pub fn attached(&mut self, now: std::time::Instant, hits: u64) {
        if let Some(since) = self.off_since.take() {
            self.off += now.saturating_duration_since(since);
        }
        self.off_until = None;
        self.last_hits = hits;
        self.last_at = now;
    }

    /// This interval's detachments and time detached (up to `now`), and
    /// a new interval.
    pub fn take_interval(&mut self, now: std::time::Instant) -> (u64, std::time::Duration) {
        let mut off = std::mem::take(&mut self.off);
        if let Some(since) = self.off_since.as_mut() {
            off += now.saturating_duration_since(*since);
            *since = now;
        }
        (std::mem::take(&mut self.detached), off)
    }
}

/// The allocators to probe for these processes: the C libraries (and
/// jemalloc or tcmalloc) they map
/// (ours with none given: the host's, and what a command we start maps
/// until it execs), each file once.
pub fn allocator_libraries(pids: &[u32]) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let sources: Vec<String> = if pids.is_empty() {
        vec!["self".to_string()]
    } else {
        pids.iter().map(|p| p.to_string()).collect()
    };
    for who in sources {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{who}/maps")) else {
            continue;
        };
        for path in libc_paths(&maps) {
            // Through the process's root, so a container's libc is its
            // own file; one probe set per file.
            let full = PathBuf::from(format!("/proc/{who}/root{}", path.display()));
            let id = std::fs::metadata(&full)
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    (m.dev(), m.ino())
                })
                .ok();
            if let Some(id) = id {
                if seen.insert(id) {
                    out.push(full);
                }
            }
        }
    }
    out
}

/// Whether a file name is an allocator whose malloc family the probes
/// attach to: a C library, jemalloc or tcmalloc (which, when mapped,
/// serve the program's malloc in place of the C library's).
fn is_allocator(name: &str) -> bool {
    let libc = name == "libc.so.6" || (name.starts_with("libc-") && name.ends_with(".so"));
    let other = ["libjemalloc.so", "libtcmalloc.so", "libtcmalloc_minimal.so"]
        .iter()
        .any(|lib| name.starts_with(lib));
    libc || other
}

/// The allocator libraries a /proc/PID/maps text names.
fn libc_paths(maps: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        let name = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        if is_allocator(name) && path.starts_with('/') && !out.iter().any(|p| p == Path::new(path))
        {
            out.push(PathBuf::from(path));
        }
    }
    out
}

/// Whether `s` is an allocation profile's record.
pub fn is_alloc(s: &RawSample) -> bool {
    s.flags & SAMPLE_F_ALLOC != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: u64, flags: u32, count: u64) -> RawSample {
        RawSample {
            tgid: 7,
            tid: 7,
            user_stack: user,
            kernel_stack: 0,
            python_stack: 0,
            flags: SAMPLE_F_ALLOC | flags,
            count,
            events: 0,
            comm: [0; 16],
        }
    }

    #[test]
    fn frees_give_back_what_their_allocations_held_across_drains() {
        let mut u = InUse::default();
        let mut d = Drained::default();
        d.stacks.insert(1, vec![0x10, 0x20]);
        d.stacks.insert(2, vec![0x30]);
        d.samples = vec![
            rec(1, 0, 1000),
            rec(1, SAMPLE_F_ALLOC_OBJECTS, 2048),
            rec(2, 0, 500),
            rec(2, SAMPLE_F_ALLOC_OBJECTS, 1024),
            rec(3, SAMPLE_F_ALLOC_UNTRACKED, 99),
        ];
        u.absorb(&d);
        assert_eq!(u.bytes(), 1500);
        // The next drain frees stack 2's allocation without its frames.
        let d = Drained {
            samples: vec![
                // Freed in the drain that allocated it, listed first.
                rec(4, SAMPLE_F_ALLOC_FREE, 70),
                rec(4, 0, 70),
                rec(2, SAMPLE_F_ALLOC_FREE, 500),
                rec(2, SAMPLE_F_ALLOC_FREE | SAMPLE_F_ALLOC_OBJECTS, 1024),
                rec(9, SAMPLE_F_ALLOC_FREE, 5),
            ],
            ..Drained::default()
        };
        u.absorb(&d);
        assert_eq!(u.bytes(), 1000);
        assert_eq!(u.stacks(), 1);
        assert_eq!(u.unmatched_frees, 1);
        let snap = u.snapshot();
        assert_eq!(snap.samples.len(), 2);
        assert_eq!(snap.stacks.get(&1), Some(&vec![0x10, 0x20]));
        assert!(snap.samples.iter().all(|s| s.flags & SAMPLE_F_INUSE != 0));
        u.forget_processes(&HashSet::from([7]));
        assert_eq!(u.bytes(), 0);
    }

    #[test]
    fn over_the_budget_the_probes_rest_long_enough_to_average_it() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let mut b = ProbeBudget::new(10_000, t0);
        // 8k hits in a second: within.
        assert!(!b.over(t0 + Duration::from_secs(1), 8_000));
        // 40k in the next: off for 3 s, so 40k over 4 s is the budget.
        let t2 = t0 + Duration::from_secs(2);
        assert!(b.over(t2, 48_000));
        assert!(!b.reattach_due(t2 + Duration::from_millis(2900)));
        assert!(b.reattach_due(t2 + Duration::from_secs(3)));
        // Not over again while detached.
        assert!(!b.over(t2 + Duration::from_secs(1), 48_000));
        b.attached(t2 + Duration::from_secs(3), 48_100);
        assert!(!b.over(t2 + Duration::from_secs(4), 49_000));
        let (n, off) = b.take_interval(t2 + Duration::from_secs(5));
        assert_eq!((n, off), (1, Duration::from_secs(3)));
        assert_eq!(
            b.take_interval(t2 + Duration::from_secs(6)),
            (0, Duration::ZERO)
        );
        // No budget: never.
        let mut none = ProbeBudget::new(0, t0);
        assert!(!none.over(t0 + Duration::from_secs(1), u64::MAX));
    }

    #[test]
    fn libc_is_found_in_maps() {
        let maps = "7f00-7f10 r--p 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
                    7f10-7f20 r-xp 00010000 08:01 12 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
                    7f30-7f40 r-xp 00000000 08:01 13 /usr/lib/libcrypto.so.3\n\
                    7f50-7f60 r-xp 00000000 08:01 14 /lib/libc-2.31.so\n\
                    7f60-7f70 r-xp 00000000 08:01 15 /usr/lib/libjemalloc.so.2\n\
                    7f70-7f80 r-xp 00000000 08:01 16 /usr/lib/libcap.so.2\n\
                    7ffd-7ffe rw-p 00000000 00:00 0 [stack]\n";
        assert_eq!(
            libc_paths(maps),
            vec![
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib/libc-2.31.so"),
                PathBuf::from("/usr/lib/libjemalloc.so.2")
            ]
        );
    }
}
