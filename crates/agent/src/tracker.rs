//! Process tracking: which processes are sampled, what they map, and the
//! unwind tables the BPF unwinder needs for them.
//!
//! The tracker talks to the BPF maps only through [`UnwindSink`], so its
//! logic is tested without root against a recording fake.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use perfpilot_bpf::{BpfError, ExecMap, PythonProcess, Sampler};

use crate::cgroup::{labels_from_path, CgroupLabels};
use crate::objects::{self, ObjectInfo, ObjectKey};
use crate::perfmap::PerfMap;
use crate::procfs::{self, MapsEntry, ProcessSnapshot};
use crate::tables::{BuiltTable, TableBudget, TableTarget, TableWorker};

/// Where the unwinder's tables go. [`Sampler`] is the real one.
pub trait UnwindSink {
    fn load_table(&self, slot: u32, table: &BuiltTable) -> Result<(), BpfError>;
    fn unload_table(&self, slot: u32);
    fn set_process_maps(
        &self,
        tgid: u32,
        maps: &[ExecMap],
        python: Option<&PythonProcess>,
    ) -> Result<(), BpfError>;
    fn mark_kernel_thread(&self, tgid: u32) -> Result<(), BpfError>;
    fn remove_process(&self, tgid: u32);
}

impl UnwindSink for Sampler {
    fn load_table(&self, slot: u32, table: &BuiltTable) -> Result<(), BpfError> {
        match table {
            BuiltTable::Rows(rows) => self.load_unwind_table(slot, rows),
            BuiltTable::Kernel(t) => self.install_unwind_table(slot, t),
        }
    }
    fn unload_table(&self, slot: u32) {
        self.unload_unwind_table(slot)
    }
    fn set_process_maps(
        &self,
        tgid: u32,
        maps: &[ExecMap],
        python: Option<&PythonProcess>,
    ) -> Result<(), BpfError> {
        Sampler::set_process_maps(self, tgid, maps, python)
    }
    fn mark_kernel_thread(&self, tgid: u32) -> Result<(), BpfError> {
        Sampler::mark_kernel_thread(self, tgid)
    }
    fn remove_process(&self, tgid: u32) {
        Sampler::remove_process(self, tgid)
    }
}

/// Where the tracker reads processes from: /proc, unless something kept
/// what /proc said while the process lived (see [`crate::capture`]).
pub trait ProcessSource {
    fn snapshot(&self, pid: u32) -> std::io::Result<ProcessSnapshot>;
    fn read_maps(&self, pid: u32) -> std::io::Result<Vec<MapsEntry>>;
    /// The file behind a mapping.
    fn open(&self, pid: u32, map: &MapsEntry) -> Option<std::fs::File>;
}

/// /proc as it is now.
pub struct LiveProc;

impl ProcessSource for LiveProc {
    fn snapshot(&self, pid: u32) -> std::io::Result<ProcessSnapshot> {
        procfs::snapshot(pid)
    }
    fn read_maps(&self, pid: u32) -> std::io::Result<Vec<MapsEntry>> {
        procfs::read_maps(pid)
    }
    fn open(&self, pid: u32, map: &MapsEntry) -> Option<std::fs::File> {
        objects::open_mapped_file(pid, map)
    }
}

pub type ObjectId = u32;

/// One executable mapping of a tracked process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcMapping {
    pub start: u64,
    pub end: u64,
    pub bias: u64,
    /// `None` for anonymous executable memory (JIT code).
    pub object: Option<ObjectId>,
}

/// A tracked process.
#[derive(Debug)]
pub struct ProcessInfo {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub build_id: Option<String>,
    pub cgroup: Option<String>,
    pub cgroup_labels: CgroupLabels,
    /// Executable mappings, sorted by start.
    pub mappings: Vec<ProcMapping>,
    pub kernel_thread: bool,
    pub exited: bool,
    /// Set when the process runs a CPython perfpilot can unwind.
    pub python: Option<PythonProcess>,
    perf_map: Option<PerfMap>,
    fingerprint: u64,
    /// When it was registered (the tracker's clock), for eviction.
    registered: u64,
}

/// Where an address of a process lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// In an object file, at this ELF virtual address.
    Object { object: ObjectId, vaddr: u64 },
    /// In anonymous executable memory.
    Anonymous,
    /// Outside every known executable mapping.
    Unmapped,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrackerStats {
    pub processes_registered: u64,
    pub processes_vanished: u64,
    pub objects_loaded: u64,
    pub objects_failed: u64,
    pub objects_evicted: u64,
    pub rows_uploaded: u64,
    /// Objects whose table did not fit in the row array (frame pointers
    /// are used for them instead).
    pub tables_dropped: u64,
    pub map_errors: u64,
    /// Processes with more executable mappings than the unwinder searches.
    pub mappings_truncated: u64,
    /// Processes found gone without their exit having been reported (an
    /// exit between reading /proc and telling the unwinder, or a lost
    /// event).
    pub exits_missed: u64,
    /// Live processes forgotten to stay within [`MAX_PROCESSES`].
    pub processes_evicted: u64,
}

/// How many entries the tracker's structures hold: what must come back
/// down after processes exit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrackerSizes {
    pub processes: usize,
    /// Processes whose mappings the unwinder was given and not yet told
    /// to forget.
    pub processes_in_bpf: usize,
    pub objects: usize,
    /// Objects no process maps, kept for reuse.
    pub idle_objects: usize,
    pub failed_objects: usize,
    /// Evicted objects waiting for [`Tracker::take_evicted`].
    pub evicted_pending: usize,
    pub table_rows: u64,
}

/// A table loaded in the kernel: its slot and row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Table {
    slot: u32,
    rows: u32,
}

struct ObjectSlot {
    info: ObjectInfo,
    table: Option<Table>,
    /// Queued on the table worker: the unwinder is told, so samples
    /// through this object are copied for unwinding once it is loaded.
    table_pending: bool,
    refs: u32,
    last_used: u64,
}

/// Unreferenced objects kept for reuse (short-lived processes re-running
/// the same binaries) before their tables and handles are released.
const IDLE_OBJECTS_KEPT: usize = 512;
/// Most processes tracked at once: as many as the unwinder's `procs` map
/// holds. Beyond it the longest-tracked live process is forgotten (if it
/// is still sampled, the unwinder asks for it again).
pub const MAX_PROCESSES: usize = 16384;
/// Objects that could not be opened are not retried; this many are
/// remembered before the list starts afresh.
const MAX_FAILED_OBJECTS: usize = 4096;
/// How often tracked processes are checked for exits nobody reported.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Evicted objects held for [`Tracker::take_evicted`]; past this the
/// oldest are released unseen.
const MAX_EVICTED_PENDING: usize = 4096;

pub struct Tracker {
    objects: Vec<Option<ObjectSlot>>,
    by_key: HashMap<ObjectKey, ObjectId>,
    failed: HashSet<ObjectKey>,
    procs: HashMap<u32, ProcessInfo>,
    /// Pids whose mappings the unwinder holds (and must be told to drop).
    in_bpf: HashSet<u32>,
    tables: TableBudget,
    worker: TableWorker,
    source: Arc<dyn ProcessSource + Send + Sync>,
    clock: u64,
    last_sweep: Instant,
    /// Objects released from the cache whose names others may still
    /// cache (see [`take_evicted`](Self::take_evicted)).
    evicted: Vec<ObjectInfo>,
    pub stats: TrackerStats,
}

impl Tracker {
    /// A tracker whose unwind tables hold at most `max_rows` rows together,
    /// built in memory (see [`with_table_target`](Self::with_table_target)).
    pub fn new(max_rows: u64) -> Self {
        Self::with_table_target(max_rows, TableTarget::Memory)
    }

    /// A tracker whose tables are built in `target`: a sampler's are
    /// created in the kernel directly.
    pub fn with_table_target(max_rows: u64, target: TableTarget) -> Self {
        Tracker {
            objects: Vec::new(),
            by_key: HashMap::new(),
            failed: HashSet::new(),
            procs: HashMap::new(),
            in_bpf: HashSet::new(),
            tables: TableBudget::new(perfpilot_bpf::MAX_UNWIND_TABLES, max_rows),
            worker: TableWorker::new(target),
            source: Arc::new(LiveProc),
            clock: 0,
            last_sweep: Instant::now(),
            evicted: Vec::new(),
            stats: TrackerStats::default(),
        }
    }

    /// Reads processes through `source` instead of /proc directly.
    pub fn set_source(&mut self, source: Arc<dyn ProcessSource + Send + Sync>) {
        self.source = source;
    }

    pub fn process(&self, pid: u32) -> Option<&ProcessInfo> {
        self.procs.get(&pid)
    }

    pub fn object(&self, id: ObjectId) -> Option<&ObjectInfo> {
        self.objects.get(id as usize)?.as_ref().map(|s| &s.info)
    }

    pub fn is_tracked(&self, pid: u32) -> bool {
        self.procs.contains_key(&pid)
    }

    /// Rows of unwind tables loaded in the kernel.
    pub fn rows_in_use(&self) -> u64 {
        self.tables.rows_in_use()
    }

    /// The number of entries in each structure.
    pub fn sizes(&self) -> TrackerSizes {
        let objects = self.objects.iter().flatten();
        TrackerSizes {
            processes: self.procs.len(),
            processes_in_bpf: self.in_bpf.len(),
            objects: self.by_key.len(),
            idle_objects: objects.filter(|s| s.refs == 0).count(),
            failed_objects: self.failed.len(),
            evicted_pending: self.evicted.len(),
            table_rows: self.tables.rows_in_use(),
        }
    }

    /// Objects released since the last call. Their names may be cached
    /// elsewhere (the symbolizer) under their handle's path, which a new
    /// object can take once the handle is closed: forget them there
    /// before dropping these.
    pub fn take_evicted(&mut self) -> Vec<ObjectInfo> {
        std::mem::take(&mut self.evicted)
    }

    /// Reads a process from /proc and tells the unwinder about it. A
    /// process that is already gone is remembered as a bare pid so its
    /// samples still get labels.
    pub fn register(&mut self, pid: u32, sink: &dyn UnwindSink) {
        match self.source.snapshot(pid) {
            Ok(snap) => self.register_snapshot(snap, sink),
            Err(_) => {
                self.stats.processes_vanished += 1;
                self.clock += 1;
                let registered = self.clock;
                if !self.procs.contains_key(&pid) {
                    self.make_room(sink);
                }
                self.procs.entry(pid).or_insert_with(|| ProcessInfo {
                    pid,
                    comm: String::new(),
                    exe: None,
                    build_id: None,
                    cgroup: None,
                    cgroup_labels: CgroupLabels::default(),
                    mappings: Vec::new(),
                    kernel_thread: false,
                    exited: true,
                    python: None,
                    perf_map: None,
                    fingerprint: 0,
                    registered,
                });
            }
        }
    }

    /// Registers a process from a snapshot (split out for tests).
    pub fn register_snapshot(&mut self, snap: ProcessSnapshot, sink: &dyn UnwindSink) {
        let pid = snap.pid;
        if let Some(old) = self.procs.remove(&pid) {
            self.release_mappings(&old.mappings);
        } else {
            self.make_room(sink);
        }
        self.stats.processes_registered += 1;
        self.clock += 1;
        let registered = self.clock;
        let exe = snap.exe.as_ref().map(|p| p.to_string_lossy().into_owned());
        let (mappings, fingerprint) = self.load_mappings(pid, &snap.maps);
        let build_id = exe.as_ref().and_then(|exe| {
            // The executable's object is usually among the mappings already.
            snap.maps
                .iter()
                .find(|m| m.is_file() && &m.path == exe)
                .and_then(|m| {
                    self.by_key.get(&ObjectKey::File {
                        dev: m.dev,
                        inode: m.inode,
                    })
                })
                .and_then(|&id| self.object(id)?.build_id.clone())
                .or_else(|| objects::build_id_of(&PathBuf::from(format!("/proc/{pid}/exe"))))
        });
        let cgroup_labels = snap
            .cgroup
            .as_deref()
            .map(labels_from_path)
            .unwrap_or_default();
        let python = self.python_of(pid, &mappings);
        let info = ProcessInfo {
            pid,
            comm: snap.comm,
            exe,
            build_id,
            cgroup: snap.cgroup,
            cgroup_labels,
            mappings,
            kernel_thread: snap.kernel_thread,
            exited: false,
            python,
            perf_map: None,
            fingerprint,
            registered,
        };
        self.push_to_bpf(&info, sink);
        self.procs.insert(pid, info);
    }

    /// Re-reads a process's mappings after the unwinder met an address
    /// outside them; re-uploads only if they changed.
    pub fn refresh(&mut self, pid: u32, sink: &dyn UnwindSink) {
        if !self.procs.contains_key(&pid) {
            self.register(pid, sink);
            return;
        }
        self.reread_maps(pid, sink);
    }

    /// Re-reads the mappings of a tracked process that has not exited (a
    /// scheduled look after exec: most short-lived processes are gone by
    /// then, and reading /proc for them is wasted work).
    pub fn refresh_live(&mut self, pid: u32, sink: &dyn UnwindSink) {
        if self.procs.get(&pid).is_none_or(|p| p.exited) {
            return;
        }
        self.reread_maps(pid, sink);
    }

    /// Reads a tracked process's mappings again, through the source: an
    /// exited one's copied stacks are unwound with what was captured.
    fn reread_maps(&mut self, pid: u32, sink: &dyn UnwindSink) {
        // An exited process (a zombie) reads as no mappings: keep the last.
        let maps = match self.source.read_maps(pid) {
            Ok(m) if !m.is_empty() => m,
            _ => return,
        };
        let new_fp = fingerprint(&maps);
        if self.procs.get(&pid).map(|p| p.fingerprint) == Some(new_fp) {
            return;
        }
        let (mappings, fp) = self.load_mappings(pid, &maps);
        if let Some(mut p) = self.procs.remove(&pid) {
            self.release_mappings(&p.mappings);
            p.python = self.python_of(pid, &mappings);
            p.mappings = mappings;
            p.fingerprint = fp;
            self.push_to_bpf(&p, sink);
            self.procs.insert(pid, p);
        }
    }

    /// The process exited; its data stays until [`reap`](Self::reap) so
    /// samples already in the kernel still get named frames. Returns
    /// whether it was tracked.
    pub fn mark_exited(&mut self, pid: u32) -> bool {
        match self.procs.get_mut(&pid) {
            Some(p) => {
                p.exited = true;
                true
            }
            None => false,
        }
    }

    /// Marks as exited the tracked processes that are gone although no
    /// exit was reported: one that exits between its /proc files being
    /// read and the unwinder being told about it raises no exit event,
    /// and events can be lost. Returns how many were found.
    pub fn sweep_exited(&mut self) -> usize {
        self.last_sweep = Instant::now();
        let mut found = 0;
        for p in self.procs.values_mut().filter(|p| !p.exited) {
            if !procfs::process_alive(p.pid) {
                p.exited = true;
                found += 1;
            }
        }
        self.stats.exits_missed += found as u64;
        found
    }

    /// Forgets exited processes (call after a drain) and releases objects
    /// no process uses beyond the idle cache. Every [`SWEEP_EVERY`] it
    /// first looks for exits nobody reported. Returns the pids forgotten.
    pub fn reap(&mut self, sink: &dyn UnwindSink) -> Vec<u32> {
        self.reap_keeping(sink, |_| false)
    }

    /// [`reap`](Self::reap), keeping the exited processes `keep` names:
    /// those whose copied stacks still need their mappings (an exit found
    /// by the sweep is not held back as a reported one is).
    pub fn reap_keeping(&mut self, sink: &dyn UnwindSink, keep: impl Fn(u32) -> bool) -> Vec<u32> {
        if self.last_sweep.elapsed() >= SWEEP_EVERY {
            self.sweep_exited();
        }
        let gone: Vec<u32> = self
            .procs
            .iter()
            .filter(|(&pid, p)| p.exited && !keep(pid))
            .map(|(&pid, _)| pid)
            .collect();
        for &pid in &gone {
            if let Some(p) = self.procs.remove(&pid) {
                self.forget_in_bpf(pid, sink);
                self.release_mappings(&p.mappings);
            }
        }
        self.evict_idle(IDLE_OBJECTS_KEPT, sink);
        gone
    }

    /// Keeps the process table within [`MAX_PROCESSES`] before one more
    /// is added: exited processes are kept until the next reap, so the
    /// longest-tracked live one goes (its mappings leave the unwinder
    /// too; a sample of it registers it again).
    fn make_room(&mut self, sink: &dyn UnwindSink) {
        while self.procs.len() >= MAX_PROCESSES {
            let oldest = self
                .procs
                .values()
                .min_by_key(|p| (!p.exited, p.registered))
                .map(|p| p.pid);
            let Some(pid) = oldest else { return };
            if let Some(p) = self.procs.remove(&pid) {
                self.forget_in_bpf(pid, sink);
                self.release_mappings(&p.mappings);
                if !p.exited {
                    self.stats.processes_evicted += 1;
                }
            }
        }
    }

    fn forget_in_bpf(&mut self, pid: u32, sink: &dyn UnwindSink) {
        self.in_bpf.remove(&pid);
        sink.remove_process(pid);
    }

    /// Where `addr` lies in process `pid`.
    pub fn resolve(&self, pid: u32, addr: u64) -> Resolved {
        let Some(p) = self.procs.get(&pid) else {
            return Resolved::Unmapped;
        };
        let i = p.mappings.partition_point(|m| m.start <= addr);
        let Some(m) = i.checked_sub(1).map(|i| &p.mappings[i]) else {
            return Resolved::Unmapped;
        };
        if addr >= m.end {
            return Resolved::Unmapped;
        }
        match m.object {
            Some(object) => Resolved::Object {
                object,
                vaddr: addr.wrapping_sub(m.bias),
            },
            None => Resolved::Anonymous,
        }
    }

    /// Names an address in anonymous executable memory from the process's
    /// perf map (`/tmp/perf-PID.map`, written by JITs), reloading it when it
    /// changed.
    pub fn jit_symbol(&mut self, pid: u32, addr: u64) -> Option<String> {
        let p = self.procs.get_mut(&pid)?;
        let path = format!("/tmp/perf-{pid}.map");
        let fresh = match &p.perf_map {
            Some(m) => !m.is_current(&path),
            None => true,
        };
        if fresh {
            p.perf_map = PerfMap::load(&path);
        }
        p.perf_map.as_ref()?.lookup(addr).map(str::to_string)
    }

    /// Whether unwind tables are still being built.
    pub fn tables_pending(&self) -> bool {
        self.worker.pending() > 0
    }

    /// Loads the unwind tables the worker has finished, waiting up to
    /// `wait` for the first, and tells the unwinder about the processes
    /// that use them. Returns how many were loaded.
    pub fn poll_tables(&mut self, wait: std::time::Duration, sink: &dyn UnwindSink) -> usize {
        let mut loaded = 0;
        let mut timeout = wait;
        let mut touched: Vec<ObjectId> = Vec::new();
        while let Some((key, built)) = self.worker.next(timeout) {
            timeout = std::time::Duration::ZERO;
            let Some(&id) = self.by_key.get(&key) else {
                continue; // evicted meanwhile
            };
            let table = match built {
                Ok(built) => self.upload_table(&built, sink),
                Err(_) => {
                    self.stats.map_errors += 1;
                    None
                }
            };
            if let Some(Some(slot)) = self.objects.get_mut(id as usize) {
                if let Some(old) = slot.table.take() {
                    sink.unload_table(old.slot);
                    self.tables.release(old.slot, old.rows);
                }
                slot.table = table;
                slot.table_pending = false;
            }
            if table.is_some() {
                loaded += 1;
            }
            // Re-sent with or without a table: either way no longer pending.
            touched.push(id);
        }
        if !touched.is_empty() {
            let pids: Vec<u32> = self
                .procs
                .values()
                .filter(|p| {
                    !p.exited
                        && p.mappings
                            .iter()
                            .any(|m| m.object.is_some_and(|o| touched.contains(&o)))
                })
                .map(|p| p.pid)
                .collect();
            for pid in pids {
                if let Some(p) = self.procs.remove(&pid) {
                    self.push_to_bpf(&p, sink);
                    self.procs.insert(pid, p);
                }
            }
        }
        loaded
    }

    /// Waits (up to `limit`) until every queued table is loaded.
    pub fn wait_for_tables(&mut self, limit: std::time::Duration, sink: &dyn UnwindSink) {
        let end = std::time::Instant::now() + limit;
        while self.tables_pending() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            self.poll_tables(left.min(std::time::Duration::from_millis(50)), sink);
        }
    }

    /// All tracked pids.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.keys().copied().collect()
    }

    /// The Python unwinder's view of a process that maps a CPython
    /// interpreter of a known version.
    fn python_of(&self, pid: u32, mappings: &[ProcMapping]) -> Option<PythonProcess> {
        mappings.iter().find_map(|m| {
            let info = self.object(m.object?)?;
            let py = info.python?;
            Some(PythonProcess {
                runtime: py.runtime.wrapping_add(m.bias),
                pidns: crate::python::pid_namespace(pid),
                offsets: py.offsets?,
            })
        })
    }

    fn load_mappings(&mut self, pid: u32, maps: &[MapsEntry]) -> (Vec<ProcMapping>, u64) {
        let mut out = Vec::new();
        let source = Arc::clone(&self.source);
        for m in maps.iter().filter(|m| m.executable) {
            let object = if m.is_file() {
                self.object_for(
                    ObjectKey::File {
                        dev: m.dev,
                        inode: m.inode,
                    },
                    &m.path,
                    || source.open(pid, m),
                )
            } else if m.path == "[vdso]" {
                self.vdso()
            } else {
                None
            };
            let bias = match object.and_then(|id| self.object(id)) {
                Some(info) => info.bias(m),
                None => m.start,
            };
            if let Some(id) = object {
                if let Some(Some(slot)) = self.objects.get_mut(id as usize) {
                    slot.refs += 1;
                }
            }
            out.push(ProcMapping {
                start: m.start,
                end: m.end,
                bias,
                object,
            });
        }
        out.sort_by_key(|m| m.start);
        (out, fingerprint(maps))
    }

    fn vdso(&mut self) -> Option<ObjectId> {
        if let Some(&id) = self.by_key.get(&ObjectKey::Vdso) {
            return Some(id);
        }
        let image = objects::own_vdso()?;
        let info = objects::load_image(ObjectKey::Vdso, "[vdso]", image).ok()?;
        Some(self.insert_object(info))
    }

    fn object_for(
        &mut self,
        key: ObjectKey,
        path: &str,
        open: impl FnOnce() -> Option<std::fs::File>,
    ) -> Option<ObjectId> {
        self.clock += 1;
        if let Some(&id) = self.by_key.get(&key) {
            if let Some(Some(slot)) = self.objects.get_mut(id as usize) {
                slot.last_used = self.clock;
            }
            return Some(id);
        }
        if self.failed.contains(&key) {
            return None;
        }
        if self.failed.len() >= MAX_FAILED_OBJECTS {
            self.failed.clear();
        }
        let loaded = open()
            .ok_or_else(|| "cannot open".to_string())
            .and_then(|f| objects::load_file(key, path, f));
        match loaded {
            Ok(info) => Some(self.insert_object(info)),
            Err(_) => {
                self.stats.objects_failed += 1;
                self.failed.insert(key);
                None
            }
        }
    }

    /// Adds an object; its unwind table is built by the worker and loaded
    /// by [`poll_tables`](Self::poll_tables) (until then frames in it are
    /// unwound with frame pointers).
    fn insert_object(&mut self, info: ObjectInfo) -> ObjectId {
        self.stats.objects_loaded += 1;
        let key = info.key;
        let mut table_pending = false;
        if let Some(source) = info.table_source() {
            // Copies bridge the milliseconds a small object's table takes;
            // a large one's takes long enough (and is shared by enough
            // processes) that holding their copies would cost more than
            // frame pointers lose meanwhile.
            let small = crate::tables::is_small(&source);
            let queued = self.worker.submit(key, source);
            if !queued {
                self.stats.tables_dropped += 1;
            }
            table_pending = queued && small;
        }
        let slot = ObjectSlot {
            info,
            table: None,
            table_pending,
            refs: 0,
            last_used: self.clock,
        };
        let id = match self.objects.iter().position(Option::is_none) {
            Some(i) => {
                self.objects[i] = Some(slot);
                i as ObjectId
            }
            None => {
                self.objects.push(Some(slot));
                (self.objects.len() - 1) as ObjectId
            }
        };
        self.by_key.insert(key, id);
        id
    }

    fn upload_table(&mut self, built: &BuiltTable, sink: &dyn UnwindSink) -> Option<Table> {
        if built.rows() == 0 {
            return None;
        }
        let len = u32::try_from(built.rows()).ok()?;
        let slot = match self.tables.alloc(len) {
            Some(s) => s,
            None => {
                self.make_table_room(len, sink);
                match self.tables.alloc(len) {
                    Some(s) => s,
                    None => {
                        self.stats.tables_dropped += 1;
                        return None;
                    }
                }
            }
        };
        match sink.load_table(slot, built) {
            Ok(()) => {
                self.stats.rows_uploaded += len as u64;
                Some(Table { slot, rows: len })
            }
            Err(_) => {
                self.stats.map_errors += 1;
                self.tables.release(slot, len);
                None
            }
        }
    }

    fn push_to_bpf(&mut self, p: &ProcessInfo, sink: &dyn UnwindSink) {
        // Counted before the update: a failed one may still have left an
        // entry, and forgetting an absent one is harmless.
        self.in_bpf.insert(p.pid);
        if p.kernel_thread {
            if sink.mark_kernel_thread(p.pid).is_err() {
                self.stats.map_errors += 1;
            }
            return;
        }
        let maps = self.exec_maps_of(p);
        if maps.len() > perfpilot_bpf::MAX_EXEC_MAPS {
            self.stats.mappings_truncated += 1;
        }
        if sink
            .set_process_maps(p.pid, &maps, p.python.as_ref())
            .is_err()
        {
            self.stats.map_errors += 1;
        }
    }

    /// The unwinder's view of a process's mappings: table slots and rows,
    /// [`TABLE_PENDING`](perfpilot_bpf::TABLE_PENDING) for tables being
    /// built.
    fn exec_maps_of(&self, p: &ProcessInfo) -> Vec<ExecMap> {
        p.mappings
            .iter()
            .map(|m| {
                let slot = m
                    .object
                    .and_then(|id| self.objects.get(id as usize)?.as_ref());
                let table = slot.and_then(|s| s.table);
                let pending = slot.is_some_and(|s| s.table_pending);
                ExecMap {
                    start: m.start,
                    end: m.end,
                    bias: m.bias,
                    table: match table {
                        Some(t) => t.slot,
                        None if pending => perfpilot_bpf::TABLE_PENDING,
                        None => 0,
                    },
                    row_count: table.map_or(0, |t| t.rows),
                }
            })
            .collect()
    }

    /// The mappings of `pid` as last given to the unwinder (sorted by
    /// start), for unwinding copied stacks in user space with the same
    /// tables.
    pub fn exec_maps(&self, pid: u32) -> Option<Vec<ExecMap>> {
        self.procs.get(&pid).map(|p| self.exec_maps_of(p))
    }

    fn release_mappings(&mut self, mappings: &[ProcMapping]) {
        for m in mappings {
            if let Some(id) = m.object {
                if let Some(Some(slot)) = self.objects.get_mut(id as usize) {
                    slot.refs = slot.refs.saturating_sub(1);
                }
            }
        }
    }

    /// Releases unreferenced objects, least recently used first, until at
    /// most `keep` remain.
    fn evict_idle(&mut self, keep: usize, sink: &dyn UnwindSink) {
        let idle = self.idle_objects(|_| true);
        if idle.len() <= keep {
            return;
        }
        let excess = idle.len() - keep;
        for &i in idle.iter().take(excess) {
            self.evict_object(i, sink);
        }
    }

    /// Releases unreferenced objects with tables, least recently used
    /// first, until a table of `rows` rows fits. Only as many as needed:
    /// dropping every idle table made each process of a busy loop (its
    /// binary and libraries idle between runs) rebuild them.
    fn make_table_room(&mut self, rows: u32, sink: &dyn UnwindSink) {
        for i in self.idle_objects(|s| s.table.is_some()) {
            if self.tables.fits(rows) {
                break;
            }
            self.evict_object(i, sink);
        }
    }

    /// Unreferenced objects that `pick` accepts, least recently used first.
    fn idle_objects(&self, pick: impl Fn(&ObjectSlot) -> bool) -> Vec<usize> {
        let mut idle: Vec<(u64, usize)> = self
            .objects
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .filter(|s| s.refs == 0 && pick(s))
                    .map(|s| (s.last_used, i))
            })
            .collect();
        idle.sort_unstable();
        idle.into_iter().map(|(_, i)| i).collect()
    }

    fn evict_object(&mut self, i: usize, sink: &dyn UnwindSink) {
        if let Some(slot) = self.objects.get_mut(i).and_then(Option::take) {
            if let Some(t) = slot.table {
                sink.unload_table(t.slot);
                self.tables.release(t.slot, t.rows);
            }
            self.by_key.remove(&slot.info.key);
            self.stats.objects_evicted += 1;
            if self.evicted.len() >= MAX_EVICTED_PENDING {
                self.evicted.remove(0);
            }
            self.evicted.push(slot.info);
        }
    }
}

use std::path::PathBuf;

fn fingerprint(maps: &[MapsEntry]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in maps.iter().filter(|m| m.executable) {
        (m.start, m.end, m.offset, m.inode).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::time::Duration;

    #[derive(Default)]
    struct FakeSink {
        tables: RefCell<HashMap<u32, usize>>,
        procs: RefCell<HashMap<u32, Vec<ExecMap>>>,
        removed: RefCell<Vec<u32>>,
    }

    impl UnwindSink for FakeSink {
        fn load_table(&self, slot: u32, table: &BuiltTable) -> Result<(), BpfError> {
            self.tables.borrow_mut().insert(slot, table.rows());
            Ok(())
        }
        fn unload_table(&self, slot: u32) {
            self.tables.borrow_mut().remove(&slot);
        }
        fn set_process_maps(
            &self,
            tgid: u32,
            maps: &[ExecMap],
            _python: Option<&PythonProcess>,
        ) -> Result<(), BpfError> {
            self.procs.borrow_mut().insert(tgid, maps.to_vec());
            Ok(())
        }
        fn mark_kernel_thread(&self, tgid: u32) -> Result<(), BpfError> {
            self.procs.borrow_mut().insert(tgid, Vec::new());
            Ok(())
        }
        fn remove_process(&self, tgid: u32) {
            self.procs.borrow_mut().remove(&tgid);
            self.removed.borrow_mut().push(tgid);
        }
    }

    #[test]
    fn registers_own_process_with_tables_for_its_libraries() {
        let sink = FakeSink::default();
        let mut t = Tracker::new(4 << 20);
        let me = std::process::id();
        t.register(me, &sink);
        // Until their tables are built, the unwinder is told they are
        // coming (its samples through them are copied for later).
        let first = sink.procs.borrow().get(&me).cloned().unwrap();
        assert!(first
            .iter()
            .any(|m| m.table == perfpilot_bpf::TABLE_PENDING && m.row_count == 0));
        assert_eq!(t.exec_maps(me), Some(first));
        // Tables arrive from the worker; the process is re-sent with them.
        t.wait_for_tables(std::time::Duration::from_secs(30), &sink);
        assert!(!t.tables_pending());
        let p = t.process(me).unwrap();
        assert!(!p.mappings.is_empty());
        assert!(p.exe.is_some());
        let maps = sink.procs.borrow().get(&me).cloned().unwrap();
        assert!(maps.iter().all(|m| m.table != perfpilot_bpf::TABLE_PENDING));
        assert_eq!(t.exec_maps(me).as_ref(), Some(&maps));
        assert_eq!(maps.len(), p.mappings.len());
        assert!(maps.windows(2).all(|w| w[0].start < w[1].start));
        // libc and the test binary have .eh_frame: their tables were uploaded.
        assert!(maps.iter().filter(|m| m.row_count > 0).count() >= 2);
        assert!(t.stats.rows_uploaded > 1000);

        // An address of our own code resolves to an object and the right vaddr.
        let here = registers_own_process_with_tables_for_its_libraries as *const () as usize as u64;
        match t.resolve(me, here) {
            Resolved::Object { object, vaddr } => {
                let info = t.object(object).unwrap();
                assert!(
                    info.is_code(vaddr),
                    "{vaddr:#x} not in code of {}",
                    info.path
                );
            }
            other => panic!("own code resolved to {other:?}"),
        }
        assert_eq!(t.resolve(me, 8), Resolved::Unmapped);

        // Registering a second time does not leak references or rows.
        let used = t.rows_in_use();
        t.refresh(me, &sink);
        t.register(me, &sink);
        assert_eq!(t.rows_in_use(), used);

        t.mark_exited(me);
        assert_eq!(t.reap(&sink), vec![me]);
        assert!(t.process(me).is_none());
        assert_eq!(*sink.removed.borrow(), vec![me]);
    }

    /// Tables created in the kernel (streamed there) have the rows of
    /// tables built in memory.
    #[test]
    fn root_kernel_tables_have_the_rows_of_memory_tables() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "creates BPF maps: run as root"
        );
        let me = std::process::id();
        let rows = |target| {
            let sink = FakeSink::default();
            let mut t = Tracker::with_table_target(4 << 20, target);
            t.register(me, &sink);
            t.wait_for_tables(Duration::from_secs(60), &sink);
            assert_eq!(t.stats.map_errors, 0);
            let mut sizes: Vec<usize> = sink.tables.borrow().values().copied().collect();
            sizes.sort_unstable();
            sizes
        };
        let memory = rows(TableTarget::Memory);
        assert!(memory.len() >= 2, "{memory:?}");
        assert_eq!(rows(TableTarget::Kernel), memory);
    }

    #[test]
    fn tables_that_do_not_fit_fall_back_to_frame_pointers() {
        let sink = FakeSink::default();
        let mut t = Tracker::new(10);
        t.register(std::process::id(), &sink);
        t.wait_for_tables(std::time::Duration::from_secs(30), &sink);
        assert!(t.stats.tables_dropped >= 1);
        let maps = sink
            .procs
            .borrow()
            .get(&std::process::id())
            .cloned()
            .unwrap();
        // No longer pending either, or their samples would be copied for
        // a table that never comes.
        assert!(maps
            .iter()
            .all(|m| m.row_count == 0 && m.table != perfpilot_bpf::TABLE_PENDING));
    }

    /// Starts `n` processes that wait to be killed.
    fn sleepers(program: &std::path::Path, n: usize) -> Vec<std::process::Child> {
        (0..n)
            .map(|_| {
                std::process::Command::new(program)
                    .arg("600")
                    .spawn()
                    .unwrap()
            })
            .collect()
    }

    /// Waits until a process's executable is mapped (spawning returns once
    /// exec has begun, not once it has mapped everything).
    fn mapped(pid: u32) {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < end {
            let maps = procfs::read_maps(pid).unwrap();
            if maps.iter().any(|m| m.executable && m.path.contains("libc")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("process {pid} never mapped libc");
    }

    /// Registers short-lived processes as exec events would, kills them,
    /// reports the exit of all but every fifth (a lost event, or an exit
    /// before the unwinder knew the process), and reaps.
    fn churn(t: &mut Tracker, sink: &FakeSink, program: &std::path::Path, processes: usize) {
        let mut done = 0;
        while done < processes {
            let batch = (processes - done).min(50);
            let mut children = sleepers(program, batch);
            // As the session does: registered at exec, when the kernel
            // may still be mapping the binary, and read again later.
            for c in &children {
                t.register(c.id(), sink);
            }
            for c in &children {
                mapped(c.id());
                t.refresh(c.id(), sink);
            }
            for (i, c) in children.iter_mut().enumerate() {
                c.kill().unwrap();
                c.wait().unwrap();
                if i % 5 != 0 {
                    t.mark_exited(c.id());
                }
            }
            t.reap(sink);
            done += batch;
        }
    }

    #[test]
    fn thousands_of_short_processes_leave_nothing_behind() {
        let sink = FakeSink::default();
        let mut t = Tracker::new(4 << 20);
        let me = std::process::id();
        t.register(me, &sink);
        let sleep = std::path::PathBuf::from("/bin/sleep");
        // The first processes load `sleep` and its libraries, which stay
        // cached for the next ones.
        churn(&mut t, &sink, &sleep, 10);
        t.sweep_exited();
        t.reap(&sink);
        t.wait_for_tables(Duration::from_secs(60), &sink);
        let before = t.sizes();
        assert_eq!(before.processes, 1, "{before:?}");
        assert_eq!(sink.procs.borrow().len(), 1);

        churn(&mut t, &sink, &sleep, 2000);
        // Nobody reported the exits of 400 of them: they are found gone
        // (some already by the periodic sweep when reaping).
        t.sweep_exited();
        t.reap(&sink);
        t.wait_for_tables(Duration::from_secs(60), &sink);
        assert_eq!(t.sizes(), before);
        assert_eq!(sink.procs.borrow().len(), 1, "entries left in the unwinder");
        assert!(t.process(me).is_some());
        assert_eq!(t.stats.exits_missed, 402);
    }

    #[test]
    fn distinct_binaries_are_evicted_beyond_the_idle_cache() {
        let sink = FakeSink::default();
        let mut t = Tracker::new(4 << 20);
        let dir = tempfile::tempdir().unwrap();
        // Copies are distinct files (inodes): a build system's fresh
        // binaries, or deployments.
        let copies: Vec<_> = (0..IDLE_OBJECTS_KEPT + 100)
            .map(|i| {
                let p = dir.path().join(format!("sleep-{i}"));
                std::fs::copy("/bin/sleep", &p).unwrap();
                p
            })
            .collect();
        let shared = t.sizes().objects;
        for copy in &copies {
            churn(&mut t, &sink, copy, 1);
        }
        t.sweep_exited();
        t.reap(&sink);
        let sizes = t.sizes();
        assert_eq!(sizes.processes, 0);
        assert!(
            sizes.objects <= shared + IDLE_OBJECTS_KEPT + 8,
            "{sizes:?} ({shared} shared objects)"
        );
        // Every evicted object is handed over once, for the symbolizer.
        let evicted = t.take_evicted();
        assert!(
            evicted.len() >= 100 - 8,
            "{} evicted; {sizes:?} {:?}",
            evicted.len(),
            t.stats
        );
        assert_eq!(t.sizes().evicted_pending, 0);
    }

    /// Runs one process of `program` to its end, tables loaded and
    /// reaped.
    fn run_once(t: &mut Tracker, sink: &FakeSink, program: &std::path::Path) {
        churn(t, sink, program, 1);
        t.wait_for_tables(Duration::from_secs(60), sink);
        t.sweep_exited();
        t.reap(sink);
    }

    #[test]
    fn a_full_row_budget_drops_only_the_least_recently_used_tables() {
        let dir = tempfile::tempdir().unwrap();
        let copies: Vec<_> = (0..4)
            .map(|i| {
                let p = dir.path().join(format!("sleep-{i}"));
                std::fs::copy("/bin/sleep", &p).unwrap();
                p
            })
            .collect();
        // The rows of one process (its copy, libc, the loader, the vDSO)
        // and of one more copy.
        let sink = FakeSink::default();
        let mut probe = Tracker::new(u64::MAX);
        run_once(&mut probe, &sink, &copies[0]);
        let first = probe.rows_in_use();
        run_once(&mut probe, &sink, &copies[1]);
        let copy = probe.rows_in_use() - first;
        assert!(copy > 0);

        // Room for three copies and what they share.
        let sink = FakeSink::default();
        let mut t = Tracker::new(first + 2 * copy);
        for c in &copies[..3] {
            run_once(&mut t, &sink, c);
        }
        assert_eq!(t.rows_in_use(), first + 2 * copy);
        let objects = t.sizes().objects;
        // The fourth needs room: only the oldest copy's goes.
        run_once(&mut t, &sink, &copies[3]);
        assert_eq!(t.stats.tables_dropped, 0);
        assert_eq!(t.stats.objects_evicted, 1, "{:?}", t.sizes());
        assert_eq!(t.sizes().objects, objects);
        assert_eq!(t.rows_in_use(), first + 2 * copy);
    }

    /// A process read at exec that has exited by the time the tracker
    /// registers it (procfs now says NotFound for a zombie) is registered
    /// from what was captured, and outlives a sweep while copies of its
    /// stacks still need its mappings.
    #[test]
    fn a_captured_process_that_exited_is_registered_from_its_capture() {
        let sink = FakeSink::default();
        let mut t = Tracker::new(4 << 20);
        let captures = crate::capture::Captures::new();
        t.set_source(Arc::new(captures.clone()));
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let pid = child.id();
        mapped(pid);
        captures.capture(pid);
        child.kill().unwrap();
        let end = Instant::now() + Duration::from_secs(60);
        while procfs::snapshot(pid).is_ok() {
            assert!(Instant::now() < end, "{pid} did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        t.register(pid, &sink);
        assert_eq!(t.stats.processes_vanished, 0);
        let p = t.process(pid).unwrap();
        assert!(!p.exited && !p.mappings.is_empty());
        assert!(t.exec_maps(pid).is_some_and(|m| !m.is_empty()));

        child.wait().unwrap();
        assert_eq!(t.sweep_exited(), 1);
        assert!(t.reap_keeping(&sink, |p| p == pid).is_empty());
        assert!(t.exec_maps(pid).is_some(), "its copies need its mappings");
        assert_eq!(t.reap(&sink), vec![pid]);
        assert!(t.process(pid).is_none());
    }

    #[test]
    fn a_vanished_process_is_remembered_as_exited() {
        let sink = FakeSink::default();
        let mut t = Tracker::new(100);
        t.register(u32::MAX - 7, &sink);
        assert!(t.process(u32::MAX - 7).unwrap().exited);
        assert_eq!(t.stats.processes_vanished, 1);
    }
}
