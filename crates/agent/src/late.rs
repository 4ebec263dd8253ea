//! Samples unwound late, in user space.
//!
//! The sampler cannot unwind a sample whose process it does not know yet,
//! or whose stack runs through an object whose table is still being
//! built, or through code mapped since the mappings were read (the
//! libraries the dynamic loader maps after exec). It copies such a
//! sample's user stack instead ([`RawStack`]). The copies are held here,
//! per process, until the process's mappings have been read after them
//! and every table those mappings need is loaded; then they are unwound
//! with the rows the BPF unwinder uses (mapped from the kernel, applied by
//! [`perfpilot_unwind::unwind`]) and join the drain as ordinary samples.
//! A process's exit is not passed on to the tracker while copies of it
//! are held, so its mappings and objects stay for them.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use perfpilot_bpf::{
    Drained, ExecMap, RawSample, RawStack, RawStacks, Sampler, MAX_EXEC_MAPS, MAX_FRAMES,
    SAMPLE_F_NO_UNWIND_INFO, SAMPLE_F_PY_NO_THREAD, SAMPLE_F_PY_TRUNCATED, SAMPLE_F_READ_ERROR,
    SAMPLE_F_TABLE_PENDING, SAMPLE_F_TRUNCATED, SAMPLE_F_UNSUPPORTED, TABLE_PENDING,
};
use perfpilot_unwind::{Mapping, Registers, Rows, StackCopy};

use crate::tracker::Tracker;

/// Where the rows of tables loaded in the kernel are read from.
pub trait LoadedTables {
    fn rows(&self, slot: u32) -> Option<Box<dyn Rows>>;
}

impl LoadedTables for Sampler {
    fn rows(&self, slot: u32) -> Option<Box<dyn Rows>> {
        self.kernel_table(slot)
            .ok()
            .map(|t| Box::new(t) as Box<dyn Rows>)
    }
}

/// Where a process's mappings, as given to the unwinder, come from.
pub trait ProcessMaps {
    fn exec_maps(&self, pid: u32) -> Option<Vec<ExecMap>>;
}

impl ProcessMaps for Tracker {
    fn exec_maps(&self, pid: u32) -> Option<Vec<ExecMap>> {
        Tracker::exec_maps(self, pid)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LateConfig {
    /// Most bytes of copies held; beyond it the oldest processes' copies
    /// are unwound with the tables there are.
    pub max_held_bytes: usize,
    /// Longest a copy waits for its tables.
    pub max_hold: Duration,
}

impl Default for LateConfig {
    fn default() -> Self {
        LateConfig {
            max_held_bytes: 16 << 20,
            max_hold: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LateStats {
    /// Copies received from the sampler, and their bytes.
    pub received: u64,
    pub received_bytes: u64,
    /// Unwound once their mappings were read and every table they needed
    /// was loaded.
    pub unwound: u64,
    /// Unwound before that: held too long or over the memory bound, at the
    /// end of the session, or their process vanished unread.
    pub unwound_early: u64,
    /// Most bytes of copies held at once.
    pub peak_held_bytes: u64,
    /// CPU time spent receiving, holding and unwinding copies.
    pub cpu_ns: u64,
}

struct Held {
    records: RawStacks,
    since: Instant,
    /// Copies arrived after the mappings were last read.
    unread: bool,
    /// Its exit was held back from the tracker.
    exited: bool,
}

pub struct LateUnwinder {
    config: LateConfig,
    held: HashMap<u32, Held>,
    held_bytes: usize,
    pub stats: LateStats,
}

/// Processes' copies picked for unwinding, and whether they wait no more
/// for anything.
struct Pick {
    pid: u32,
    complete: bool,
}

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

impl LateUnwinder {
    pub fn new(config: LateConfig) -> Self {
        LateUnwinder {
            config,
            held: HashMap::new(),
            held_bytes: 0,
            stats: LateStats::default(),
        }
    }

    /// Bytes of copies held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Keeps copies the sampler sent.
    pub fn receive(&mut self, raw: &RawStacks) {
        if raw.is_empty() {
            return;
        }
        let started = thread_cpu_ns();
        let now = Instant::now();
        for r in raw.iter() {
            let h = self.held.entry(r.tgid).or_insert_with(|| Held {
                records: RawStacks::default(),
                since: now,
                unread: true,
                exited: false,
            });
            if h.records.push(r.record()) {
                h.unread = true;
                self.held_bytes += r.record().len();
                self.stats.received += 1;
                self.stats.received_bytes += r.record().len() as u64;
            }
        }
        self.stats.peak_held_bytes = self.stats.peak_held_bytes.max(self.held_bytes as u64);
        self.stats.cpu_ns += thread_cpu_ns().saturating_sub(started);
    }

    /// Live processes with copies newer than their mappings as last read:
    /// read them again (then [`mark_read`](Self::mark_read)).
    pub fn to_read(&self) -> Vec<u32> {
        self.held
            .iter()
            .filter(|(_, h)| h.unread && !h.exited)
            .map(|(&pid, _)| pid)
            .collect()
    }

    /// The mappings of `pid` were read after every copy held for it.
    pub fn mark_read(&mut self, pid: u32) {
        if let Some(h) = self.held.get_mut(&pid) {
            h.unread = false;
        }
    }

    /// `pid` exited. True when copies of it are held: its exit is held
    /// back from the tracker until they are unwound (and returned by
    /// [`unwind`](Self::unwind) then).
    pub fn process_exited(&mut self, pid: u32) -> bool {
        match self.held.get_mut(&pid) {
            Some(h) => {
                h.exited = true;
                true
            }
            None => false,
        }
    }

    /// Whether copies of `pid` are held (its mappings must stay).
    pub fn holds(&self, pid: u32) -> bool {
        self.held.contains_key(&pid)
    }

    /// Whether some copy still waits for its process's mappings or tables.
    pub fn waiting(&self, maps: &dyn ProcessMaps) -> bool {
        self.held
            .iter()
            .any(|(&pid, h)| !self.is_ready(pid, h, maps))
    }

    fn is_ready(&self, pid: u32, h: &Held, maps: &dyn ProcessMaps) -> bool {
        if h.unread && !h.exited {
            return false;
        }
        match maps.exec_maps(pid) {
            Some(m) => !m.iter().any(|m| m.table == TABLE_PENDING),
            None => false,
        }
    }

    /// Unwinds the copies of processes that wait for nothing more (and,
    /// with `all`, of every process) into `out`, as samples and stacks
    /// beside what the sampler drained. Returns the processes whose exit
    /// was held back and may now be passed on.
    pub fn unwind(
        &mut self,
        maps: &dyn ProcessMaps,
        tables: &dyn LoadedTables,
        now: Instant,
        all: bool,
        out: &mut Drained,
    ) -> Vec<u32> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let started = thread_cpu_ns();
        let mut picks: Vec<Pick> = Vec::new();
        let mut kept: Vec<(Instant, u32, usize)> = Vec::new();
        for (&pid, h) in &self.held {
            let complete = self.is_ready(pid, h, maps);
            if complete || all || now.saturating_duration_since(h.since) >= self.config.max_hold {
                picks.push(Pick { pid, complete });
            } else {
                kept.push((h.since, pid, h.records.bytes()));
            }
        }
        // Over the memory bound: the oldest go now, with what there is.
        let mut left: usize = kept.iter().map(|k| k.2).sum();
        kept.sort_unstable();
        for (_, pid, bytes) in kept {
            if left <= self.config.max_held_bytes {
                break;
            }
            left -= bytes;
            picks.push(Pick {
                pid,
                complete: false,
            });
        }

        let mut tables_open = OpenTables::new();
        let mut index: HashMap<SampleKey, usize> = HashMap::new();
        let mut frames = Vec::with_capacity(MAX_FRAMES);
        let mut released = Vec::new();
        for pick in picks {
            let Some(h) = self.held.remove(&pick.pid) else {
                continue;
            };
            self.held_bytes = self.held_bytes.saturating_sub(h.records.bytes());
            if h.exited {
                released.push(pick.pid);
            }
            let exec = maps.exec_maps(pick.pid).unwrap_or_default();
            let complete = pick.complete && !exec.is_empty();
            let n = h.records.len() as u64;
            if complete {
                self.stats.unwound += n;
            } else {
                self.stats.unwound_early += n;
            }
            open_tables(&exec, tables, &mut tables_open);
            let pending = exec.iter().any(|m| m.table == TABLE_PENDING);
            let mappings = mappings(&exec, &tables_open);
            for r in h.records.iter() {
                frames.clear();
                let outcome = unwind_copy(&r, &mappings, &mut frames);
                let mut flags = r.flags & (SAMPLE_F_PY_NO_THREAD | SAMPLE_F_PY_TRUNCATED);
                for (set, flag) in [
                    (outcome.truncated, SAMPLE_F_TRUNCATED),
                    (outcome.read_error, SAMPLE_F_READ_ERROR),
                    (outcome.no_unwind_info, SAMPLE_F_NO_UNWIND_INFO),
                    (outcome.unsupported, SAMPLE_F_UNSUPPORTED),
                    (pending && outcome.no_unwind_info, SAMPLE_F_TABLE_PENDING),
                ] {
                    if set {
                        flags |= flag;
                    }
                }
                let kernel: Vec<u64> = r.kernel().collect();
                let python: Vec<u64> = r.python().collect();
                let key = SampleKey {
                    tgid: r.tgid,
                    tid: r.tid,
                    user: intern(out, &frames),
                    kernel: intern(out, &kernel),
                    python: intern(out, &python),
                    flags,
                    comm: r.comm,
                };
                match index.get(&key) {
                    Some(&i) => {
                        out.samples[i].count += 1;
                        out.samples[i].events += 1;
                    }
                    None => {
                        index.insert(key, out.samples.len());
                        out.samples.push(RawSample {
                            tgid: key.tgid,
                            tid: key.tid,
                            user_stack: key.user,
                            kernel_stack: key.kernel,
                            python_stack: key.python,
                            flags: key.flags,
                            count: 1,
                            events: 1,
                            comm: key.comm,
                        });
                    }
                }
            }
        }
        self.stats.cpu_ns += thread_cpu_ns().saturating_sub(started);
        released
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SampleKey {
    tgid: u32,
    tid: u32,
    user: u64,
    kernel: u64,
    python: u64,
    flags: u32,
    comm: [u8; 16],
}

/// Tables the unwinder would use for `exec`, opened once each.
pub type OpenTables = HashMap<u32, Option<Box<dyn Rows>>>;

/// Opens the tables `exec` uses that are not open yet.
pub fn open_tables(exec: &[ExecMap], tables: &dyn LoadedTables, open: &mut OpenTables) {
    for m in exec.iter().take(MAX_EXEC_MAPS) {
        if m.row_count > 0 && m.table != TABLE_PENDING {
            open.entry(m.table).or_insert_with(|| tables.rows(m.table));
        }
    }
}

/// The mappings the BPF unwinder searches for `exec` (at most
/// [`MAX_EXEC_MAPS`]), with their tables from `open`.
pub fn mappings<'a>(exec: &[ExecMap], open: &'a OpenTables) -> Vec<Mapping<'a>> {
    exec.iter()
        .take(MAX_EXEC_MAPS)
        .map(|m| Mapping {
            start: m.start,
            end: m.end,
            bias: m.bias,
            rows: if m.row_count > 0 && m.table != TABLE_PENDING {
                open.get(&m.table).and_then(|t| t.as_deref())
            } else {
                None
            },
        })
        .collect()
}

/// Unwinds one copy through `mappings`.
pub fn unwind_copy(
    r: &RawStack<'_>,
    mappings: &[Mapping<'_>],
    frames: &mut Vec<u64>,
) -> perfpilot_unwind::Outcome {
    let memory = StackCopy {
        base: r.sp,
        bytes: r.stack,
    };
    let regs = Registers {
        ip: r.ip,
        sp: r.sp,
        bp: r.bp,
    };
    perfpilot_unwind::unwind(regs, mappings, &memory, MAX_FRAMES, frames)
}

/// Adds a stack to a drain's stacks by content hash (0, "no stack", for
/// an empty one), stepping past the hash of a different stack.
fn intern(out: &mut Drained, stack: &[u64]) -> u64 {
    if stack.is_empty() {
        return 0;
    }
    let mut h = DefaultHasher::new();
    stack.hash(&mut h);
    let mut key = h.finish().max(1);
    loop {
        match out.stacks.get(&key) {
            Some(s) if s.as_slice() == stack => return key,
            Some(_) => key = key.wrapping_add(1).max(1),
            None => {
                out.stacks.insert(key, stack.to_vec());
                return key;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfpilot_bpf::{CfaRule, RbpRule, UnwindRow, SAMPLE_F_FP_ONLY};

    /// One mapping at 0x400000 (bias 0x400000) and a fake kernel table.
    struct Fake {
        maps: HashMap<u32, Vec<ExecMap>>,
        rows: Vec<UnwindRow>,
    }

    impl ProcessMaps for Fake {
        fn exec_maps(&self, pid: u32) -> Option<Vec<ExecMap>> {
            self.maps.get(&pid).cloned()
        }
    }

    struct FakeRows(Vec<UnwindRow>);
    impl Rows for FakeRows {
        fn row_count(&self) -> u32 {
            self.0.len() as u32
        }
        fn row(&self, index: u32) -> Option<UnwindRow> {
            self.0.get(index as usize).copied()
        }
    }

    impl LoadedTables for Fake {
        fn rows(&self, slot: u32) -> Option<Box<dyn Rows>> {
            (slot == 3).then(|| Box::new(FakeRows(self.rows.clone())) as Box<dyn Rows>)
        }
    }

    fn map(table: u32, row_count: u32) -> ExecMap {
        ExecMap {
            start: 0x400000,
            end: 0x401000,
            bias: 0x400000,
            table,
            row_count,
        }
    }

    /// A copy of a two-frame stack: leaf at 0x400100 (CFA = rsp + 16),
    /// its caller at 0x400200 (the end of the stack).
    fn record(tgid: u32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&tgid.to_ne_bytes());
        r.extend_from_slice(&tgid.to_ne_bytes());
        for v in [0x400100u64, 0x7000, 0, 0] {
            r.extend_from_slice(&v.to_ne_bytes());
        }
        r.extend_from_slice(&SAMPLE_F_FP_ONLY.to_ne_bytes());
        r.extend_from_slice(&1u16.to_ne_bytes()); // one kernel frame
        r.extend_from_slice(&0u16.to_ne_bytes());
        r.extend_from_slice(&16u32.to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        r.extend_from_slice(b"short\0\0\0\0\0\0\0\0\0\0\0");
        r.extend_from_slice(&0xffff_ffff_8100_0000u64.to_ne_bytes());
        r.extend_from_slice(&0x5555u64.to_ne_bytes()); // a local
        r.extend_from_slice(&0x400205u64.to_ne_bytes()); // return address
        r
    }

    fn fake(table: u32, row_count: u32) -> Fake {
        Fake {
            maps: HashMap::from([(7, vec![map(table, row_count)])]),
            rows: vec![
                UnwindRow {
                    pc: 0x100,
                    cfa: CfaRule::RspOffset(16),
                    rbp: RbpRule::Same,
                },
                UnwindRow {
                    pc: 0x200,
                    cfa: CfaRule::End,
                    rbp: RbpRule::Same,
                },
            ],
        }
    }

    fn received(late: &mut LateUnwinder, n: usize) {
        let mut raw = RawStacks::default();
        for _ in 0..n {
            assert!(raw.push(&record(7)));
        }
        late.receive(&raw);
    }

    #[test]
    fn copies_wait_for_their_mappings_and_tables_then_unwind_completely() {
        let mut late = LateUnwinder::new(LateConfig::default());
        received(&mut late, 3);
        let now = Instant::now();
        let mut out = Drained::default();
        // Mappings not read since the copies arrived: nothing yet.
        let pending = fake(TABLE_PENDING, 0);
        assert!(late
            .unwind(&pending, &pending, now, false, &mut out)
            .is_empty());
        assert!(out.samples.is_empty());
        assert_eq!(late.to_read(), vec![7]);
        late.mark_read(7);
        // Read, but the table is still being built.
        assert!(late.waiting(&pending));
        late.unwind(&pending, &pending, now, false, &mut out);
        assert!(out.samples.is_empty());
        // Loaded: the three copies are one sample of three, unwound to
        // the end of the stack.
        let loaded = fake(3, 2);
        assert!(!late.waiting(&loaded));
        late.unwind(&loaded, &loaded, now, false, &mut out);
        assert_eq!(out.samples.len(), 1);
        let s = out.samples[0];
        assert_eq!((s.tgid, s.count, s.flags), (7, 3, 0));
        assert_eq!(out.stacks[&s.user_stack], vec![0x400100, 0x400205]);
        assert_eq!(out.stacks[&s.kernel_stack], vec![0xffff_ffff_8100_0000]);
        assert_eq!(s.python_stack, 0);
        assert_eq!(late.held_bytes(), 0);
        assert_eq!(
            (
                late.stats.received,
                late.stats.unwound,
                late.stats.unwound_early
            ),
            (3, 3, 0)
        );
    }

    #[test]
    fn an_exit_is_held_back_until_the_copies_are_unwound() {
        let mut late = LateUnwinder::new(LateConfig::default());
        assert!(!late.process_exited(9), "nothing held for it");
        received(&mut late, 1);
        assert!(late.process_exited(7));
        // An exited process cannot be read again: its copies wait only
        // for tables.
        assert!(late.to_read().is_empty());
        let mut out = Drained::default();
        let loaded = fake(3, 2);
        assert_eq!(
            late.unwind(&loaded, &loaded, Instant::now(), false, &mut out),
            vec![7]
        );
        assert_eq!(out.samples.len(), 1);
    }

    #[test]
    fn copies_held_too_long_or_over_the_bound_go_with_what_there_is() {
        let config = LateConfig {
            max_held_bytes: 1 << 20,
            max_hold: Duration::from_secs(5),
        };
        let pending = fake(TABLE_PENDING, 0);
        let mut late = LateUnwinder::new(config);
        received(&mut late, 2);
        late.mark_read(7);
        let mut out = Drained::default();
        let later = Instant::now() + Duration::from_secs(6);
        late.unwind(&pending, &pending, later, false, &mut out);
        assert_eq!(out.samples.len(), 1);
        // Frame pointers through the missing table: bp is 0, so the leaf.
        let s = out.samples[0];
        assert_eq!(out.stacks[&s.user_stack], vec![0x400100]);
        assert_ne!(s.flags & SAMPLE_F_TABLE_PENDING, 0);
        assert_eq!(late.stats.unwound_early, 2);

        let mut late = LateUnwinder::new(LateConfig {
            max_held_bytes: 100,
            ..config
        });
        received(&mut late, 2);
        let mut out = Drained::default();
        late.unwind(&pending, &pending, Instant::now(), false, &mut out);
        assert_eq!(out.samples.iter().map(|s| s.count).sum::<u64>(), 2);
        assert_eq!(late.held_bytes(), 0);

        // At the end of a session everything goes.
        let mut late = LateUnwinder::new(config);
        received(&mut late, 1);
        let mut out = Drained::default();
        late.unwind(&pending, &pending, Instant::now(), true, &mut out);
        assert_eq!(out.samples.len(), 1);
    }

    #[test]
    fn interned_stacks_never_take_another_stacks_key() {
        let mut out = Drained::default();
        let a = intern(&mut out, &[1, 2, 3]);
        assert_eq!(intern(&mut out, &[1, 2, 3]), a);
        // A different stack already under the key `b` would hash to.
        let mut h = DefaultHasher::new();
        [4u64, 5].as_slice().hash(&mut h);
        out.stacks.insert(h.finish().max(1), vec![9]);
        let b = intern(&mut out, &[4, 5]);
        assert_eq!(out.stacks[&b], vec![4, 5]);
        assert_eq!(intern(&mut out, &[]), 0);
    }
}
