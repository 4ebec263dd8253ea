//! Processes read while they live.
//!
//! The session's loop reads a new process from /proc some time after it
//! started (when it is first sampled, or once it has lived a little), and
//! later still when the loop is busy (symbolizing a large binary, loading
//! a large table): a short-lived process may be gone by then, and with it
//! its mappings and the files behind them. So the thread that reads the
//! ring buffers reads a process at once when the first copy of its stack
//! arrives ([`CaptureHook`]): its snapshot and the files it maps (the
//! executable may be deleted later); and again as further copies arrive
//! from code outside what was read (the libraries the dynamic loader maps
//! after exec). Processes that are never sampled are never read. The
//! tracker reads /proc as before, through [`Captures`], which answers with
//! what was kept once /proc no longer can.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use perfpilot_bpf::{Event, RingHook};

use crate::objects::open_mapped_file;
use crate::procfs::{self, MapsEntry, ProcessSnapshot};
use crate::tracker::ProcessSource;

/// Processes kept at most, and for how long.
const MAX_CAPTURED: usize = 256;
const KEEP_FOR: Duration = Duration::from_secs(30);
/// Copies arriving within this of the last reading do not read again;
/// the wait doubles with each reading of a process, up to
/// [`REREAD_AFTER_MAX`], unless a copy comes from code outside what was
/// read (the dynamic loader's libraries, a dlopen).
const REREAD_AFTER: Duration = Duration::from_millis(5);
const REREAD_AFTER_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureStats {
    /// Processes read at exec or at their first copy.
    pub captured: u64,
    /// Mappings read again as copies arrived.
    pub reread: u64,
    /// Answers given from what was kept, the process being gone.
    pub used: u64,
}

struct Captured {
    /// Executable mappings only: the tracker uses no others.
    snapshot: ProcessSnapshot,
    /// The files behind them, by (device, inode).
    files: HashMap<(u64, u64), Arc<File>>,
    /// Where the main thread's stack began.
    start_stack: Option<u64>,
    at: Instant,
    /// Readings since the first.
    rereads: u32,
}

#[derive(Default)]
struct Inner {
    procs: HashMap<u32, Captured>,
    stats: CaptureStats,
}

/// What was read of processes while they lived; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Captures {
    inner: Arc<Mutex<Inner>>,
}

fn executable(mut maps: Vec<MapsEntry>) -> Vec<MapsEntry> {
    maps.retain(|m| m.executable);
    maps
}

/// Opens the files behind `maps` not in `known`.
fn open_new(
    pid: u32,
    maps: &[MapsEntry],
    known: &HashMap<(u64, u64), Arc<File>>,
) -> Vec<((u64, u64), Arc<File>)> {
    maps.iter()
        .filter(|m| m.is_file() && !known.contains_key(&(m.dev, m.inode)))
        .filter_map(|m| Some(((m.dev, m.inode), Arc::new(open_mapped_file(pid, m)?))))
        .collect()
}

impl Captures {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere leaves whole entries: keep using them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> CaptureStats {
        self.lock().stats
    }

    /// The hook for the sampler's ring reader thread.
    pub fn hook(&self) -> Box<dyn RingHook> {
        Box::new(CaptureHook {
            captures: self.clone(),
        })
    }

    /// Reads `pid` now: its snapshot, or (when kept already) its mappings
    /// again, and the files behind mappings not seen before.
    pub fn capture(&self, pid: u32) {
        let known = self.lock().procs.get(&pid).map(|c| (c.at, c.files.clone()));
        let now = Instant::now();
        match known {
            Some((at, _)) if now.saturating_duration_since(at) < REREAD_AFTER => {}
            Some((_, files)) => {
                let Ok(maps) = procfs::read_maps(pid) else {
                    return;
                };
                let maps = executable(maps);
                if maps.is_empty() {
                    return; // exited: keep what was read while it lived
                }
                let opened = open_new(pid, &maps, &files);
                let mut inner = self.lock();
                inner.stats.reread += 1;
                if let Some(c) = inner.procs.get_mut(&pid) {
                    c.snapshot.maps = maps;
                    c.files.extend(opened);
                    c.at = now;
                    c.rereads = c.rereads.saturating_add(1);
                }
            }
            None => {
                let Ok(mut snapshot) = procfs::snapshot(pid) else {
                    return;
                };
                snapshot.maps = executable(std::mem::take(&mut snapshot.maps));
                if snapshot.maps.is_empty() {
                    return; // a kernel thread, or exited already
                }
                let files = open_new(pid, &snapshot.maps, &HashMap::new())
                    .into_iter()
                    .collect();
                let start_stack = procfs::start_stack(pid);
                let mut inner = self.lock();
                inner.stats.captured += 1;
                inner.procs.insert(
                    pid,
                    Captured {
                        snapshot,
                        files,
                        start_stack,
                        at: now,
                        rereads: 0,
                    },
                );
                Self::bound(&mut inner, now);
            }
        }
    }

    /// A copy of `pid`'s stack taken at `ip` arrived: reads its mappings
    /// again when `ip` lies outside them, or (with a growing wait) in case
    /// the frames below lie outside them. Reading them for every copy
    /// slowed the ring reader enough to fill the ring. Returns where its
    /// main thread's stack began.
    fn copied(&self, pid: u32, ip: u64) -> Option<u64> {
        let now = Instant::now();
        let fresh = self.lock().procs.get(&pid).map(|c| {
            let covered = c.snapshot.maps.iter().any(|m| ip >= m.start && ip < m.end);
            let wait = REREAD_AFTER
                .saturating_mul(1 << c.rereads.min(16))
                .min(REREAD_AFTER_MAX);
            covered && now.saturating_duration_since(c.at) < wait
        });
        if fresh != Some(true) {
            self.capture(pid);
        }
        self.lock().procs.get(&pid)?.start_stack
    }

    /// Forgets entries past [`KEEP_FOR`], then the oldest beyond
    /// [`MAX_CAPTURED`].
    fn bound(inner: &mut Inner, now: Instant) {
        inner
            .procs
            .retain(|_, c| now.saturating_duration_since(c.at) < KEEP_FOR);
        if inner.procs.len() > MAX_CAPTURED {
            let mut by_age: Vec<(Instant, u32)> =
                inner.procs.iter().map(|(&p, c)| (c.at, p)).collect();
            by_age.sort_unstable();
            let excess = inner.procs.len() - MAX_CAPTURED;
            for (_, pid) in by_age.into_iter().take(excess) {
                inner.procs.remove(&pid);
            }
        }
    }

    fn kept<T>(&self, pid: u32, f: impl FnOnce(&Captured) -> Option<T>) -> Option<T> {
        let mut inner = self.lock();
        let answer = inner.procs.get(&pid).and_then(f);
        if answer.is_some() {
            inner.stats.used += 1;
        }
        answer
    }
}

impl ProcessSource for Captures {
    fn snapshot(&self, pid: u32) -> std::io::Result<ProcessSnapshot> {
        match procfs::snapshot(pid) {
            Ok(s) if !s.maps.is_empty() => Ok(s),
            live => self
                .kept(pid, |c| Some(c.snapshot.clone()))
                .map_or(live, Ok),
        }
    }

    fn read_maps(&self, pid: u32) -> std::io::Result<Vec<MapsEntry>> {
        match procfs::read_maps(pid) {
            Ok(m) if !m.is_empty() => Ok(m),
            live => self
                .kept(pid, |c| Some(c.snapshot.maps.clone()))
                .map_or(live, Ok),
        }
    }

    fn open(&self, pid: u32, map: &MapsEntry) -> Option<File> {
        open_mapped_file(pid, map).or_else(|| {
            self.kept(pid, |c| {
                c.files.get(&(map.dev, map.inode))?.try_clone().ok()
            })
        })
    }
}

/// Reads processes on the ring reader thread: at exec, and as copies of
/// their stacks arrive.
pub struct CaptureHook {
    captures: Captures,
}

impl RingHook for CaptureHook {
    fn event(&mut self, event: &Event) {
        if let Event::Exec(pid) = *event {
            // A new image: what was kept of the old one no longer applies.
            // It is read at its first copied stack, not here: most new
            // processes under churn are never sampled.
            self.captures.lock().procs.remove(&pid);
        }
    }

    fn copy(&mut self, tgid: u32, ip: u64) -> Option<u64> {
        self.captures.copied(tgid, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_process_read_while_it_lived_is_answered_for_after_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("sleeper");
        std::fs::copy("/bin/sleep", &exe).unwrap();
        let mut child = Command::new(&exe)
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        // Past the dynamic loader.
        let end = Instant::now() + Duration::from_secs(30);
        while procfs::read_maps(pid).map_or(0, |m| m.iter().filter(|m| m.executable).count()) < 3
            && Instant::now() < end
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let captures = Captures::new();
        let mut hook = captures.hook();
        // An exec alone reads nothing (most new processes are never
        // sampled); the first copy of its stack does.
        hook.event(&Event::Exec(pid));
        assert_eq!(captures.stats().captured, 0);
        hook.copy(pid, 0);
        assert_eq!(captures.stats().captured, 1);
        let live = procfs::read_maps(pid).unwrap();
        let exe_map = live
            .iter()
            .find(|m| m.executable && m.path.ends_with("sleeper"))
            .cloned()
            .unwrap();

        // The binary is deleted and the process killed and reaped.
        std::fs::remove_file(&exe).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(procfs::snapshot(pid).is_err());

        let snap = captures.snapshot(pid).unwrap();
        assert_eq!(snap.pid, pid);
        assert!(snap.maps.iter().all(|m| m.executable));
        assert_eq!(
            captures.read_maps(pid).unwrap(),
            live.iter()
                .filter(|m| m.executable)
                .cloned()
                .collect::<Vec<_>>()
        );
        let file = captures.open(pid, &exe_map).expect("kept open");
        assert!(file.metadata().unwrap().len() > 0);
        assert!(captures.stats().used >= 3);
        // Nothing kept for others.
        assert!(captures.snapshot(u32::MAX - 3).is_err());
    }

    #[test]
    fn entries_are_bounded() {
        let mut inner = Inner::default();
        let now = Instant::now();
        for pid in 0..(MAX_CAPTURED as u32 + 10) {
            inner.procs.insert(
                pid,
                Captured {
                    snapshot: ProcessSnapshot::default(),
                    files: HashMap::new(),
                    start_stack: None,
                    at: now + Duration::from_millis(pid as u64),
                    rereads: 0,
                },
            );
        }
        Captures::bound(&mut inner, now + Duration::from_secs(1));
        assert_eq!(inner.procs.len(), MAX_CAPTURED);
        assert!(!inner.procs.contains_key(&0) && inner.procs.contains_key(&265));
        Captures::bound(&mut inner, now + KEEP_FOR + Duration::from_secs(2));
        assert!(inner.procs.is_empty());
    }
}
