//! The CPU sampler: loading, attaching, feeding unwind tables, draining.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, OpenObject, RingBufferBuilder};

use crate::drain::BatchDrainer;
use crate::lock::LockConfig;
use crate::perf::{online_cpus, open_cpu_clock, set_cpu_clock_period};
use crate::unwind_table::KernelUnwindTable;
use crate::BpfError;

mod skel {
    #![allow(clippy::all, unused_imports, dead_code, non_camel_case_types)]
    include!(concat!(env!("OUT_DIR"), "/profiler.skel.rs"));
}
use skel::{ProfilerSkel, ProfilerSkelBuilder};

mod layout;

mod alloc;
pub use alloc::{
    AllocConfig, AllocStats, ALLOC_OBJECT_ONE, SAMPLE_F_ALLOC, SAMPLE_F_ALLOC_FREE,
    SAMPLE_F_ALLOC_OBJECTS, SAMPLE_F_ALLOC_UNTRACKED,
};

mod follow_skel {
    #![allow(clippy::all, unused_imports, dead_code, non_camel_case_types)]
    include!(concat!(env!("OUT_DIR"), "/follow.skel.rs"));
}
use follow_skel::{FollowSkel, FollowSkelBuilder};

/// Frames kept per stack (user and kernel alike).
pub const MAX_FRAMES: usize = 127;
/// Executable mappings per process the unwinder can search.
pub const MAX_EXEC_MAPS: usize = 256;
/// Unwind tables (object files) the kernel can hold at once.
pub const MAX_UNWIND_TABLES: u32 = 16384;
pub(crate) const BPF_F_INNER_MAP: u32 = 1 << 12;
pub(crate) const BPF_F_MMAPABLE: u32 = 1 << 10;
/// Arrays store each value in a slot rounded up to 8 bytes.
pub(crate) const UNWIND_ROW_STRIDE: usize = (UNWIND_ROW_SIZE + 7) & !7;

pub const SAMPLE_F_TRUNCATED: u32 = 1 << 0;
pub const SAMPLE_F_FP_ONLY: u32 = 1 << 1;
pub const SAMPLE_F_READ_ERROR: u32 = 1 << 2;
pub const SAMPLE_F_NO_UNWIND_INFO: u32 = 1 << 3;
pub const SAMPLE_F_STACK_LOST: u32 = 1 << 4;
pub const SAMPLE_F_UNSUPPORTED: u32 = 1 << 5;
pub const SAMPLE_F_PY_TRUNCATED: u32 = 1 << 6;
pub const SAMPLE_F_PY_NO_THREAD: u32 = 1 << 7;
/// Unwound in the kernel through code whose table was still being built
/// (and not copied raw: over the rate, or the ring was full).
pub const SAMPLE_F_TABLE_PENDING: u32 = 1 << 8;
/// An off-CPU record: its count is nanoseconds blocked at its stacks.
pub const SAMPLE_F_OFFCPU: u32 = 1 << 9;
/// An off-CPU record of the wall view only: runnable, waiting for a CPU
/// after a preemption.
pub const SAMPLE_F_RUNNABLE: u32 = 1 << 10;
/// An off-CPU record of the wall view only: blocks shorter than the
/// minimum.
pub const SAMPLE_F_SHORT: u32 = 1 << 11;
/// A lock contention record: its count is nanoseconds waited in futex
/// waits at its stacks, its events the number of waits.
pub const SAMPLE_F_LOCK: u32 = 1 << 13;
/// [`ExecMap::table`] of an object whose table is still being built:
/// samples through it are copied for unwinding in user space.
pub const TABLE_PENDING: u32 = u32::MAX;
/// Bytes of user stack a raw copy holds at most, from the stack pointer up.
pub const RAW_STACK_MAX: usize = 16384;
const PROC_F_PYTHON: u32 = 1;
const PROC_F_KTHREAD: u32 = 2;
const PY_NAME_LEN: usize = 64;
const PY_FILE_LEN: usize = 96;
/// `struct pp_py_proc`: three u64s, eighteen u16 offsets, a u32.
const PY_PROC_SIZE: usize = 64;

const SAMPLE_KEY_SIZE: usize = 40;
const SAMPLE_VALUE_SIZE: usize = 32;
const STACK_SIZE: usize = 8 + 8 * MAX_FRAMES;
pub(crate) const UNWIND_ROW_SIZE: usize = 12;
const EXEC_MAP_SIZE: usize = 32;
const PROC_MAPS_SIZE: usize = 8 + EXEC_MAP_SIZE * MAX_EXEC_MAPS;
/// struct pp_raw_stack, the header of a raw copy.
const RAW_HEADER_SIZE: usize = 72;
const STAT_COUNT: usize = 26;

pub use perfpilot_unwind::{CfaRule, RbpRule, UnwindRow};

fn decode_row(b: &[u8]) -> Option<UnwindRow> {
    let pc = u32::from_ne_bytes(b.get(0..4)?.try_into().ok()?);
    let offset = i32::from_ne_bytes(b.get(4..8)?.try_into().ok()?);
    let rbp_offset = i16::from_ne_bytes(b.get(8..10)?.try_into().ok()?);
    // Kinds the BPF unwinder does not know fall back to frame pointers
    // there, as CfaRule::None does here.
    let cfa = match *b.get(10)? {
        1 => CfaRule::RspOffset(offset),
        2 => CfaRule::RbpOffset(offset),
        3 => CfaRule::Plt {
            threshold: offset.clamp(0, 255) as u8,
        },
        4 => CfaRule::End,
        5 => CfaRule::Unsupported,
        _ => CfaRule::None,
    };
    let rbp = match *b.get(11)? {
        1 => RbpRule::Offset(rbp_offset),
        _ => RbpRule::Same,
    };
    Some(UnwindRow { pc, cfa, rbp })
}

pub(crate) fn encode_row(row: &UnwindRow, out: &mut Vec<u8>) {
    {
        let (kind, offset): (u8, i32) = match row.cfa {
            CfaRule::None => (0, 0),
            CfaRule::RspOffset(o) => (1, o),
            CfaRule::RbpOffset(o) => (2, o),
            CfaRule::Plt { threshold } => (3, threshold as i32),
            CfaRule::End => (4, 0),
            CfaRule::Unsupported => (5, 0),
        };
        let (rbp_kind, rbp_offset): (u8, i16) = match row.rbp {
            RbpRule::Same => (0, 0),
            RbpRule::Offset(o) => (1, o),
        };
        out.extend_from_slice(&row.pc.to_ne_bytes());
        out.extend_from_slice(&offset.to_ne_bytes());
        out.extend_from_slice(&rbp_offset.to_ne_bytes());
        out.push(kind);
        out.push(rbp_kind);
    }
}

/// One executable mapping of a process, as the BPF unwinder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecMap {
    pub start: u64,
    pub end: u64,
    /// Runtime address minus ELF virtual address.
    pub bias: u64,
    /// The object's unwind table (see [`Sampler::load_unwind_table`]).
    pub table: u32,
    /// 0 when the object has no unwind table (frame pointers are used).
    pub row_count: u32,
}

pub use perfpilot_pyruntime::PythonOffsets;

/// A Python process, as the BPF Python unwinder needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonProcess {
    /// Runtime address of `_PyRuntime`.
    pub runtime: u64,
    /// The process's pid namespace (device, inode), so thread ids can be
    /// matched from inside containers; (0, 0) when the same as ours.
    pub pidns: (u64, u64),
    pub offsets: PythonOffsets,
}

impl PythonProcess {
    fn encode(&self) -> Vec<u8> {
        let o = &self.offsets;
        let mut v = Vec::with_capacity(PY_PROC_SIZE);
        v.extend_from_slice(&self.runtime.to_ne_bytes());
        v.extend_from_slice(&self.pidns.0.to_ne_bytes());
        v.extend_from_slice(&self.pidns.1.to_ne_bytes());
        for f in [
            o.runtime_interp_head,
            o.runtime_tstate_current,
            o.interp_threads_head,
            o.tstate_next,
            o.tstate_native_thread_id,
            o.tstate_cframe,
            o.cframe_current_frame,
            o.frame_code,
            o.frame_previous,
            o.frame_is_entry,
            o.code_qualname,
            o.code_filename,
            o.code_firstlineno,
            o.unicode_state,
            o.unicode_ascii_data,
            o.unicode_compact_data,
            o.frame_owner,
            o.flags,
        ] {
            v.extend_from_slice(&f.to_ne_bytes());
        }
        let fsbase = if o.flags & PythonOffsets::PTHREAD_ID != 0 {
            task_fsbase_offset().unwrap_or(0)
        } else {
            0
        };
        v.extend_from_slice(&fsbase.to_ne_bytes());
        v
    }
}

/// Where the running kernel keeps a task's `%fs` base
/// (`task_struct.thread.fsbase`, x86-64), from its BTF: CPython before
/// 3.11 identifies threads by `pthread_self()`, which is that base. Read
/// once, and only when such a process is seen.
fn task_fsbase_offset() -> Option<u32> {
    use libbpf_rs::btf::types::{self, MemberAttr};
    use libbpf_rs::btf::Btf;
    static OFFSET: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        let btf = Btf::from_vmlinux().ok()?;
        let member = |s: &types::Struct<'_>, name: &str| {
            s.iter()
                .find(|m| m.name.is_some_and(|n| n == name))
                .map(|m| match m.attr {
                    MemberAttr::Normal { offset } | MemberAttr::BitField { offset, .. } => {
                        (offset / 8, m.ty)
                    }
                })
        };
        let task: types::Struct<'_> = btf.type_by_name("task_struct")?;
        let (thread, ty) = member(&task, "thread")?;
        let thread_struct: types::Struct<'_> = btf.type_by_id(ty)?;
        let (fsbase, _) = member(&thread_struct, "fsbase")?;
        Some(thread + fsbase)
    })
}

/// A Python function's name as captured at sample time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonName {
    pub qualname: String,
    pub filename: String,
    pub first_line: u32,
}

/// Something the BPF side wants user space to know about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Sampled, but the unwinder has no mappings for it yet.
    NewProcess(u32),
    /// A sampled address fell outside its known mappings (dlopen, JIT).
    MapsStale(u32),
    Exec(u32),
    Exit(u32),
}

/// Counts of one (process, thread, stacks) since the last drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSample {
    pub tgid: u32,
    pub tid: u32,
    /// Key into [`Drained::stacks`]; 0 when there is no user stack.
    pub user_stack: u64,
    pub kernel_stack: u64,
    /// Python code objects, leaf first; 0 when the process is not Python.
    /// Each is the object's address, bit 0 set when the frame was entered
    /// from C, and a hash of its name and file in the top 16 bits, so that
    /// a freed code object's address reused by another is another key.
    pub python_stack: u64,
    pub flags: u32,
    /// Samples; for off-CPU and lock records, nanoseconds.
    pub count: u64,
    /// Records added into `count`: samples, blocks or waits.
    pub events: u64,
    pub comm: [u8; 16],
}

impl RawSample {
    pub fn comm(&self) -> &str {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(16);
        std::str::from_utf8(&self.comm[..end]).unwrap_or("?")
    }
}

/// Everything one drain moved out of the kernel.
#[derive(Debug, Default)]
pub struct Drained {
    pub samples: Vec<RawSample>,
    /// Stacks by hash: return addresses, leaf first.
    pub stacks: HashMap<u64, Vec<u64>>,
}

impl Drained {
    pub fn clear(&mut self) {
        self.samples.clear();
        self.stacks.clear();
    }
}

/// One sample whose user stack was copied for unwinding in user space
/// (because its process or some of its tables were not loaded yet), as
/// the sampler sent it.
#[derive(Debug, Clone, Copy)]
pub struct RawStack<'a> {
    pub tgid: u32,
    pub tid: u32,
    /// User registers at the sample.
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// The in-kernel unwind of the same sample (key into
    /// [`Drained::stacks`]) when every stack is copied for comparison
    /// ([`SamplerConfig::raw_stacks_always`]); else 0.
    pub user_stack: u64,
    /// `SAMPLE_F_*` of the in-kernel attempt: [`SAMPLE_F_FP_ONLY`] for a
    /// process not known yet, [`SAMPLE_F_TABLE_PENDING`] for code whose
    /// table was being built.
    pub flags: u32,
    pub comm: [u8; 16],
    kernel: &'a [u8],
    python: &'a [u8],
    /// Stack memory from `sp` upwards (at most [`RAW_STACK_MAX`] bytes,
    /// up to the first unreadable page).
    pub stack: &'a [u8],
    record: &'a [u8],
}

fn u64s(b: &[u8]) -> impl Iterator<Item = u64> + '_ {
    b.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
}

impl<'a> RawStack<'a> {
    /// Reads a record as the sampler wrote it (see
    /// [`record`](Self::record)); `None` when it is cut short.
    pub fn parse(record: &'a [u8]) -> Option<RawStack<'a>> {
        let header = record.get(..RAW_HEADER_SIZE)?;
        let u16_at = |o: usize| u16::from_ne_bytes([header[o], header[o + 1]]) as usize;
        let u32_at = |o: usize| u32::from_ne_bytes(header[o..o + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |o: usize| u64::from_ne_bytes(header[o..o + 8].try_into().unwrap_or([0; 8]));
        let (nk, np, ns) = (u16_at(44) * 8, u16_at(46) * 8, u32_at(48) as usize);
        let data = &record[RAW_HEADER_SIZE..];
        let kernel = data.get(..nk)?;
        let python = data.get(nk..nk + np)?;
        let stack = data.get(nk + np..nk + np + ns)?;
        let mut comm = [0u8; 16];
        comm.copy_from_slice(&header[56..72]);
        Some(RawStack {
            tgid: u32_at(0),
            tid: u32_at(4),
            ip: u64_at(8),
            sp: u64_at(16),
            bp: u64_at(24),
            user_stack: u64_at(32),
            flags: u32_at(40),
            comm,
            kernel,
            python,
            stack,
            record: &record[..RAW_HEADER_SIZE + nk + np + ns],
        })
    }

    /// Kernel return addresses, leaf first.
    pub fn kernel(&self) -> impl Iterator<Item = u64> + 'a {
        u64s(self.kernel)
    }

    /// Python entries, as in [`RawSample::python_stack`]'s stacks.
    pub fn python(&self) -> impl Iterator<Item = u64> + 'a {
        u64s(self.python)
    }

    /// The whole record, to keep and [`parse`](Self::parse) again later.
    pub fn record(&self) -> &'a [u8] {
        self.record
    }
}

/// Raw stack records received since the last [`Sampler::take_raw_stacks`],
/// back to back in one buffer.
#[derive(Debug, Default)]
pub struct RawStacks {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl RawStacks {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Appends a record; false (and nothing kept) when it does not parse.
    pub fn push(&mut self, record: &[u8]) -> bool {
        let Some(r) = RawStack::parse(record) else {
            return false;
        };
        self.bytes.extend_from_slice(r.record());
        self.ends.push(self.bytes.len());
        true
    }

    /// Appends a record with at most `stack` bytes of its stack memory
    /// (none: registers and kernel and Python stacks, a sample with its
    /// leaf frame).
    pub fn push_trimmed(&mut self, record: &[u8], stack: usize) -> bool {
        let Some(r) = RawStack::parse(record) else {
            return false;
        };
        let stack = stack.min(r.stack.len());
        let kept = r.record().len() - r.stack.len() + stack;
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&r.record()[..kept]);
        self.bytes[start + 48..start + 52].copy_from_slice(&(stack as u32).to_ne_bytes());
        self.ends.push(self.bytes.len());
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = RawStack<'_>> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .filter_map(|(a, b)| RawStack::parse(&self.bytes[a..b]))
    }
}

/// What the ring reader thread hands over.
#[derive(Default)]
struct RingShared {
    events: Vec<Event>,
    /// An event the session should see at once arrived since the last
    /// wake-up. Execs alone do not wake it: it reads new processes only
    /// once they have lived a little, and at 100 exec/s the wake-ups were
    /// a fifth of the agent's cost.
    urgent: bool,
    /// Events dropped because the session had not taken
    /// [`MAX_PENDING_EVENTS`] already.
    events_dropped: u64,
    stacks: RawStacks,
    /// Bytes of `stacks` per process, and of their stack memory.
    per_process: HashMap<u32, usize>,
    stack_bytes: HashMap<u32, usize>,
    malformed: u64,
    /// Copies kept without their stack memory, and dropped, to stay
    /// within the bound.
    trimmed: u64,
    dropped: u64,
}

fn decode_event(data: &[u8]) -> Option<Event> {
    let kind = u32::from_ne_bytes(data.get(0..4)?.try_into().ok()?);
    let tgid = u32::from_ne_bytes(data.get(4..8)?.try_into().ok()?);
    match kind {
        1 => Some(Event::NewProcess(tgid)),
        2 => Some(Event::MapsStale(tgid)),
        3 => Some(Event::Exec(tgid)),
        4 => Some(Event::Exit(tgid)),
        _ => None,
    }
}

impl RingShared {
    /// Keeps a copy whole while the buffer is under `max_bytes` and its
    /// process has under half of it (so one process whose tables take
    /// long cannot crowd out the rest); else without its stack memory
    /// while under twice `max_bytes`; else not at all.
    /// A main thread's copy is first cut `ABOVE_START_STACK` bytes above
    /// `start_stack`.
    fn keep(&mut self, data: &[u8], max_bytes: usize, start_stack: Option<u64>) {
        let Some(r) = RawStack::parse(data) else {
            self.malformed += 1;
            return;
        };
        let mut stack = r.stack.len();
        if let Some(top) = start_stack.filter(|&t| r.tid == r.tgid && t > r.sp) {
            let useful = (top - r.sp).saturating_add(ABOVE_START_STACK);
            stack = stack.min(usize::try_from(useful).unwrap_or(usize::MAX));
        }
        let theirs = self.per_process.get(&r.tgid).copied().unwrap_or(0);
        let len = r.record().len() - r.stack.len() + stack;
        if self.stacks.bytes() + len > max_bytes && theirs + len <= max_bytes / 2 {
            // Full: the process holding the most gives up its stacks (its
            // samples keep their leaf) before one holding less loses its
            // own. Each eviction frees much, so rebuilding is rare.
            let hog = self
                .stack_bytes
                .iter()
                .max_by_key(|(_, &b)| b)
                .filter(|(&p, &b)| p != r.tgid && b > theirs + len)
                .map(|(&p, _)| p);
            if let Some(hog) = hog {
                self.trim_process(hog);
            }
        }
        let before = self.stacks.bytes();
        if before + len <= max_bytes && theirs + len <= max_bytes / 2 {
            self.stacks.push_trimmed(data, stack);
        } else if before + len - stack <= 2 * max_bytes {
            self.stacks.push_trimmed(data, 0);
            self.trimmed += 1;
        } else {
            self.dropped += 1;
            return;
        }
        let added = self.stacks.bytes() - before;
        *self.per_process.entry(r.tgid).or_default() += added;
        *self.stack_bytes.entry(r.tgid).or_default() += added - (len - stack).min(added);
    }
}

impl RingShared {
    /// Keeps `pid`'s copies without their stack memory.
    fn trim_process(&mut self, pid: u32) {
        let mut kept = RawStacks::default();
        for r in self.stacks.iter() {
            if r.tgid == pid && !r.stack.is_empty() {
                kept.push_trimmed(r.record(), 0);
                self.trimmed += 1;
            } else {
                kept.push(r.record());
            }
        }
        let theirs: usize = kept
            .iter()
            .filter(|r| r.tgid == pid)
            .map(|r| r.record().len())
            .sum();
        self.per_process.insert(pid, theirs);
        self.stack_bytes.remove(&pid);
        self.stacks = kept;
    }
}

type Shared = Arc<(Mutex<RingShared>, Condvar)>;

/// Events held for the session at most (a stalled session loop must not
/// grow the queue without end); the ring's own loss counter covers the
/// kernel's side.
const MAX_PENDING_EVENTS: usize = 1 << 16;

impl RingShared {
    fn push_event(&mut self, e: Event) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events_dropped += 1;
            return;
        }
        self.urgent |= !matches!(e, Event::Exec(_));
        self.events.push(e);
    }
}

/// Called on the ring reader thread as records arrive, before the session
/// sees them: for what must happen while a process still lives (reading
/// its mappings at exec, before a short-lived process is gone).
pub trait RingHook: Send {
    /// An event, before it is handed over.
    fn event(&mut self, event: &Event);
    /// A stack copy of `tgid` arrived, taken at user address `ip`.
    /// Returns where its main thread's stack began, if known: a main
    /// thread's copy is cut there (what lies above is arguments and
    /// environment, never a frame).
    fn copy(&mut self, tgid: u32, ip: u64) -> Option<u64>;
}

/// Bytes kept above the main thread's initial stack pointer.
const ABOVE_START_STACK: u64 = 256;

type HookSlot = Arc<Mutex<Option<Box<dyn RingHook>>>>;

fn call_hook<T>(slot: &HookSlot, f: impl FnOnce(&mut dyn RingHook) -> T) -> Option<T> {
    slot.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .map(|h| f(h.as_mut()))
}

fn lock(shared: &Shared) -> MutexGuard<'_, RingShared> {
    // A poisoned lock only means a thread panicked while holding it; the
    // buffers hold whole records.
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the event and raw stack ring buffers on a thread of its own, so
/// copies keep flowing while the session's loop is busy (symbolizing,
/// loading tables): a stalled reader would let the ring fill and lose
/// them. Both rings are read by one consumer, events first, so a copy
/// taken before an event (a process's last samples before its exit) is
/// always handed over no later than the event.
struct RingReader {
    shared: Shared,
    hook: HookSlot,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RingReader {
    fn start(events: MapHandle, raw: MapHandle, max_bytes: usize) -> Result<RingReader, BpfError> {
        let shared: Shared = Arc::new((Mutex::new(RingShared::default()), Condvar::new()));
        let hook: HookSlot = Arc::new(Mutex::new(None));
        let (event_hook, copy_hook) = (Arc::clone(&hook), Arc::clone(&hook));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), BpfError>>();
        let (for_events, for_raw, thread_shared) = (
            Arc::clone(&shared),
            Arc::clone(&shared),
            Arc::clone(&shared),
        );
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pp-rings".into())
            .spawn(move || {
                let mut rb = RingBufferBuilder::new();
                let built = rb
                    .add(&events, move |data: &[u8]| {
                        if let Some(e) = decode_event(data) {
                            call_hook(&event_hook, |h| h.event(&e));
                            lock(&for_events).push_event(e);
                        }
                        0
                    })
                    .and_then(|rb| {
                        rb.add(&raw, move |data: &[u8]| {
                            let start_stack = RawStack::parse(data)
                                .and_then(|r| call_hook(&copy_hook, |h| h.copy(r.tgid, r.ip)))
                                .flatten();
                            lock(&for_raw).keep(data, max_bytes, start_stack);
                            0
                        })
                    })
                    .map(|_| ())
                    .and_then(|()| rb.build());
                let ring = match built {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(BpfError::map("opening the ring buffers", e)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while !stopped.load(Ordering::Relaxed) {
                    // Errors are EINTR; the loop polls again. poll reads
                    // the rings that signalled; consume reads both, in
                    // order, whatever they signalled.
                    let _ = ring.poll(Duration::from_millis(50));
                    let _ = ring.consume();
                    let urgent = std::mem::take(&mut lock(&thread_shared).urgent);
                    if urgent {
                        thread_shared.1.notify_all();
                    }
                }
            })
            .map_err(|e| BpfError::map("starting the ring reader", e))?;
        ready_rx
            .recv()
            .map_err(|e| BpfError::map("starting the ring reader", e))??;
        Ok(RingReader {
            shared,
            hook,
            stop,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> MutexGuard<'_, RingShared> {
        lock(&self.shared)
    }

    /// Waits up to `timeout` for events, and moves them to `out`.
    fn wait_events(&self, timeout: Duration, out: &mut Vec<Event>) {
        let guard = self.lock();
        let (mut guard, _) = self
            .shared
            .1
            .wait_timeout_while(guard, timeout, |s| s.events.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        out.append(&mut guard.events);
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Rows of a [`KernelTable`] mapped at once: a search reads one window.
/// (The kernel maps a BPF array's pages when it is mapped, so a mapping
/// costs its whole length in resident memory at once: a large library's
/// table, mapped whole, is tens of MiB.)
const TABLE_WINDOW_ROWS: u32 = 4096;
/// Windows kept mapped per table, most recently used first.
const TABLE_WINDOWS_KEPT: usize = 4;

/// An unwind table as loaded in the kernel, read a window at a time: the
/// rows the BPF unwinder searches, for unwinding copied stacks in user
/// space. The first pc of every window is read once, so a lookup maps
/// only the window its row is in.
pub struct KernelTable {
    map: MapHandle,
    rows: u32,
    /// The pc of each window's first row (see [`KernelTable::firsts`]).
    firsts: std::cell::OnceCell<Option<Vec<u32>>>,
    pub(crate) windows: std::cell::RefCell<Vec<TableWindow>>,
}

pub(crate) struct TableWindow {
    number: u32,
    area: *mut libc::c_void,
    len: usize,
}

impl Drop for TableWindow {
    fn drop(&mut self) {
        // SAFETY: unmapping a window mapped in KernelTable::read, used
        // no more (windows are dropped only when evicted or with the table).
        unsafe { libc::munmap(self.area, self.len) };
    }
}

impl KernelTable {
    pub(crate) fn open(map: MapHandle) -> Result<KernelTable, BpfError> {
        let rows = map.max_entries();
        if rows == 0 {
            return Err(BpfError::map("reading an unwind table", "it has no rows"));
        }
        Ok(KernelTable {
            map,
            rows,
            firsts: std::cell::OnceCell::new(),
            windows: std::cell::RefCell::new(Vec::with_capacity(TABLE_WINDOWS_KEPT)),
        })
    }

    /// The pc of each window's first row, read on the first search (many
    /// tables are opened and never searched); `None` when one cannot be.
    fn firsts(&self) -> Option<&[u32]> {
        self.firsts
            .get_or_init(|| {
                (0..self.rows.div_ceil(TABLE_WINDOW_ROWS))
                    .map(|w| {
                        let key = (w * TABLE_WINDOW_ROWS).to_ne_bytes();
                        let value = self.map.lookup(&key, MapFlags::ANY).ok()??;
                        decode_row(&value).map(|r| r.pc)
                    })
                    .collect()
            })
            .as_deref()
    }

    /// Row `index`, through its window (mapped on first use).
    fn read(&self, index: u32) -> Option<UnwindRow> {
        if index >= self.rows {
            return None;
        }
        let number = index / TABLE_WINDOW_ROWS;
        let mut windows = self.windows.borrow_mut();
        match windows.iter().position(|w| w.number == number) {
            Some(0) => {}
            Some(at) => {
                let w = windows.remove(at);
                windows.insert(0, w);
            }
            None => {
                let first = number * TABLE_WINDOW_ROWS;
                let count = (self.rows - first).min(TABLE_WINDOW_ROWS) as usize;
                let len = count * UNWIND_ROW_STRIDE;
                // SAFETY: mapping part of the array's value area read-only,
                // at a page-aligned offset (a window is a whole number of
                // pages) and within its `rows` slots.
                let area = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ,
                        libc::MAP_SHARED,
                        self.map.as_fd().as_raw_fd(),
                        (first as usize * UNWIND_ROW_STRIDE) as libc::off_t,
                    )
                };
                if area == libc::MAP_FAILED {
                    return None;
                }
                windows.truncate(TABLE_WINDOWS_KEPT - 1);
                windows.insert(0, TableWindow { number, area, len });
            }
        }
        let w = windows.first()?;
        let at = (index - number * TABLE_WINDOW_ROWS) as usize * UNWIND_ROW_STRIDE;
        // SAFETY: `area` is a live read-only mapping of `len` bytes, kept
        // while the window is in the list. The agent writes a table once
        // before installing it and never after.
        let bytes = unsafe { std::slice::from_raw_parts(w.area.cast::<u8>(), w.len) };
        decode_row(bytes.get(at..at + UNWIND_ROW_SIZE)?)
    }
}

impl perfpilot_unwind::Rows for KernelTable {
    fn row_count(&self) -> u32 {
        self.rows
    }
    fn row(&self, index: u32) -> Option<UnwindRow> {
        self.read(index)
    }
    fn narrow(&self, target: u64) -> (u32, u32) {
        let Some(firsts) = self.firsts() else {
            return (0, self.rows);
        };
        // The last window starting at or below the target holds its row.
        let after = firsts.partition_point(|&pc| pc as u64 <= target) as u32;
        match after.checked_sub(1) {
            Some(w) => (
                w * TABLE_WINDOW_ROWS,
                (after * TABLE_WINDOW_ROWS).min(self.rows),
            ),
            None => (0, 0),
        }
    }
}

/// Counters kept by the BPF programs, summed over CPUs, since load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SamplerStats {
    pub samples: u64,
    pub idle: u64,
    pub filtered: u64,
    /// Samples lost because the counts map was full.
    pub counts_full: u64,
    /// Stacks lost because the stacks map was full.
    pub stacks_full: u64,
    /// Stacks dropped because another stack had the same hash.
    pub stack_collisions: u64,
    /// Process events lost: the ring was full, or the session had not
    /// taken the ones waiting.
    pub events_lost: u64,
    pub unwind_truncated: u64,
    pub unwind_fp_only: u64,
    pub unwind_read_errors: u64,
    pub unwind_unsupported: u64,
    pub kernel_stack_errors: u64,
    /// Samples of Python processes whose thread state was not found.
    pub python_no_thread: u64,
    pub python_truncated: u64,
    /// User stacks copied for unwinding in user space.
    pub raw_taken: u64,
    /// Not copied, over its process's [`SamplerConfig::raw_stack_rate`]
    /// (unwound in the kernel with what it had).
    pub raw_rate_limited: u64,
    /// Not copied, the raw stack ring buffer was full.
    pub raw_ring_full: u64,
    /// Copies kept without their stack memory (their samples keep only
    /// their leaf), because more than [`SamplerConfig::raw_buffer_bytes`]
    /// waited to be taken or half of it was one process's.
    pub raw_trimmed: u64,
    /// Copies dropped, samples lost: twice that waited.
    pub raw_dropped: u64,
    /// Raw stack records that did not parse (counted in user space).
    pub raw_malformed: u64,
    /// Batch drain calls that failed (counted in user space).
    pub drain_errors: u64,
    /// Off-CPU blocks counted (at least [`OffCpuConfig::min_block_ns`]).
    pub offcpu_blocks: u64,
    /// Off-CPU blocks shorter than the minimum, not counted.
    pub offcpu_short: u64,
    /// Blocking switches not recorded (1 in
    /// [`OffCpuConfig::sample_every`] is).
    pub offcpu_skipped: u64,
    /// Blocks lost: the kernel had no task storage for the thread.
    pub offcpu_no_storage: u64,
    /// Stacks lost because no memory could be had for them at that moment
    /// (the map was not full).
    pub stacks_nomem: u64,
    /// Futex waits counted (at least [`LockConfig::min_wait_ns`]).
    pub lock_waits: u64,
    /// Futex waits shorter than the minimum, or that did not sleep.
    pub lock_short: u64,
    /// Futex waits not timed (1 in [`LockConfig::sample_every`] is).
    pub lock_skipped: u64,
    /// Waits lost: the kernel had no task storage for the thread.
    pub lock_no_storage: u64,
}

/// Off-CPU profiling: time threads spend switched out while not runnable,
/// by the stacks at which they blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffCpuConfig {
    /// Blocks shorter than this are not counted (their time is lost, not
    /// attributed elsewhere): the many short waits of a busy host cost
    /// map updates and say little.
    pub min_block_ns: u64,
    /// Record one blocking switch in this many, chosen at random (1: all).
    /// Each recorded block stands for this many.
    pub sample_every: u32,
    /// For the wall view: also record time runnable after a preemption
    /// ([`SAMPLE_F_RUNNABLE`]) and blocks under the minimum
    /// ([`SAMPLE_F_SHORT`]), so on- plus off-CPU time is all of a
    /// thread's time. Every switch of a profiled thread is then captured.
    pub wall: bool,
}

impl Default for OffCpuConfig {
    fn default() -> Self {
        OffCpuConfig {
            min_block_ns: 1_000_000,
            sample_every: 1,
            wall: false,
        }
    }
}

/// What to sample and how much room to give it.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    pub frequency_hz: u64,
    pub include_idle: bool,
    /// Sample only these processes (and, with `follow_children`, the
    /// processes they fork); `None` samples every process.
    pub targets: Option<Vec<u32>>,
    pub follow_children: bool,
    pub kernel_stacks: bool,
    pub user_stacks: bool,
    pub max_counts: u32,
    pub max_stacks: u32,
    /// Samples whose process or tables are not loaded yet have their user
    /// stack copied: at first up to `raw_stack_burst` per process, then
    /// at most this many per process per second (0: never; frame pointers
    /// are used for them instead).
    pub raw_stack_rate: u32,
    pub raw_stack_burst: u32,
    /// Size of the ring buffer the copies go through (a power of two,
    /// at least a page).
    pub raw_ring_bytes: u32,
    /// Most bytes of copies read from the ring and not yet taken by
    /// [`Sampler::take_raw_stacks`].
    pub raw_buffer_bytes: usize,
    /// Copy every sample's stack as well as unwinding it in the kernel,
    /// to compare the two unwinders (tests and benchmarks).
    pub raw_stacks_always: bool,
    /// Sample on-CPU stacks with the cpu-clock event.
    pub cpu: bool,
    /// Also record off-CPU time (`None`: the sched_switch program is
    /// neither loaded nor attached, and costs nothing).
    pub offcpu: Option<OffCpuConfig>,
    /// Allocation profiles (`None`: the uprobe programs are not loaded;
    /// [`Sampler::attach_allocator`] then attaches nothing).
    pub alloc: Option<AllocConfig>,
    /// Also record lock contention, futex waits (`None`: the syscall
    /// tracepoint programs are neither loaded nor attached).
    pub lock: Option<LockConfig>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            frequency_hz: 99,
            include_idle: false,
            targets: None,
            follow_children: false,
            kernel_stacks: true,
            user_stacks: true,
            max_counts: 65536,
            max_stacks: 32768,
            raw_stack_rate: 50,
            raw_stack_burst: 500,
            raw_ring_bytes: 2 << 20,
            raw_buffer_bytes: 16 << 20,
            raw_stacks_always: false,
            cpu: true,
            offcpu: None,
            alloc: None,
            lock: None,
        }
    }
}

/// A loaded and attached sampler. Dropping it detaches everything.
pub struct Sampler {
    skel: ProfilerSkel<'static>,
    _follow: Option<FollowSkel<'static>>,
    _links: Vec<Link>,
    /// The allocation probes, apart: detached and attached again to keep
    /// their rate within a budget.
    alloc_links: Vec<Link>,
    /// What they were attached to, to attach them again.
    alloc_targets: Vec<(std::path::PathBuf, Option<u32>)>,
    rings: RingReader,
    counts_drainer: BatchDrainer,
    stacks_drainer: BatchDrainer,
    drain_errors: u64,
    frequency_hz: u64,
    cpu: bool,
    offcpu: bool,
    alloc: bool,
    lock: bool,
    sampling: bool,
    /// Duplicates of the cpu-clock events' fds (the links own the
    /// originals), to change their period while attached.
    clock_fds: Vec<OwnedFd>,
    /// The period the cpu-clock events run at, in nanoseconds.
    period_ns: u64,
    /// Keeps the kernel counting the programs' run time while held
    /// (BPF_ENABLE_STATS); `None` where the kernel refused.
    run_time_stats: Option<OwnedFd>,
}

impl Sampler {
    /// Loads the programs and attaches the process lifecycle tracepoints;
    /// [`start_sampling`](Self::start_sampling) then attaches the sampler.
    pub fn load(config: &SamplerConfig) -> Result<Sampler, BpfError> {
        crate::check_environment()?;
        // The skeleton borrows its object storage for its whole life; one
        // small allocation per sampler is leaked to give it that.
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let builder = ProfilerSkelBuilder::default();
        let mut open = builder
            .open(storage)
            .map_err(|e| BpfError::from_libbpf("opening the BPF object", e))?;

        {
            let ro = open
                .maps
                .rodata_data
                .as_deref_mut()
                .ok_or_else(|| BpfError::Load {
                    what: "configuring".into(),
                    message: "the BPF object has no .rodata section".into(),
                })?;
            ro.include_idle = config.include_idle;
            ro.self_tgid = std::process::id();
            ro.filter_tgids = config.targets.is_some();
            ro.want_kernel_stacks = config.kernel_stacks;
            ro.want_user_stacks = config.user_stacks;
            ro.raw_stack_rate = config.raw_stack_rate as u64;
            ro.raw_stack_burst = config.raw_stack_burst.max(1) as u64;
            ro.raw_stacks_always = config.raw_stacks_always;
            if let Some(off) = &config.offcpu {
                ro.offcpu_min_ns = off.min_block_ns;
                ro.offcpu_sample_every = off.sample_every.max(1);
                ro.offcpu_wall = off.wall;
            }
            if let Some(a) = &config.alloc {
                alloc::configure(ro, a);
            }
        }
        alloc::set_autoload(&mut open, config.alloc.is_some());
        if let Some(a) = &config.alloc {
            open.maps
                .alloc_live
                .set_max_entries(a.max_live.max(1))
                .map_err(|e| BpfError::from_libbpf("sizing maps", e))?;
        }
        if config.offcpu.is_none() {
            // Loading a tp_btf program makes libbpf read the kernel's BTF,
            // a cost CPU-only sessions never pay.
            open.progs.on_switch.set_autoload(false);
            open.maps
                .offcpu_tasks
                .set_autocreate(false)
                .map_err(|e| BpfError::from_libbpf("configuring", e))?;
        }
        let syscall_tracepoints = config.lock.is_some() && crate::lock::syscall_tracepoints();
        let generic = config.lock.is_some() && !syscall_tracepoints;
        open.progs.on_futex_enter.set_autoload(generic);
        open.progs.on_futex_exit.set_autoload(generic);
        for prog in [
            &mut open.progs.on_futex_enter_tp,
            &mut open.progs.on_futex_exit_tp,
            &mut open.progs.on_futex_waitv_enter_tp,
            &mut open.progs.on_futex_waitv_exit_tp,
            &mut open.progs.on_futex2_enter_tp,
            &mut open.progs.on_futex2_exit_tp,
        ] {
            prog.set_autoload(syscall_tracepoints);
        }
        if config.lock.is_none() {
            open.maps
                .lock_tasks
                .set_autocreate(false)
                .map_err(|e| BpfError::from_libbpf("configuring", e))?;
        }
        let ring_bytes = config.raw_ring_bytes;
        if !ring_bytes.is_power_of_two() || ring_bytes < 4096 {
            return Err(BpfError::Load {
                what: "configuring".into(),
                message: format!(
                    "the raw stack ring buffer must be a power of two of at least 4096 bytes, not {ring_bytes}"
                ),
            });
        }
        open.maps
            .raw_stacks
            .set_max_entries(ring_bytes)
            .map_err(|e| BpfError::from_libbpf("sizing maps", e))?;
        let sizes = [
            (&mut open.maps.counts0, config.max_counts),
            (&mut open.maps.counts1, config.max_counts),
            (&mut open.maps.stacks0, config.max_stacks),
            (&mut open.maps.stacks1, config.max_stacks),
        ];
        for (map, n) in sizes {
            map.set_max_entries(n)
                .map_err(|e| BpfError::from_libbpf("sizing maps", e))?;
        }

        let skel = open.load().map_err(|e| {
            let err = BpfError::from_libbpf("loading the BPF programs", e);
            let err = if config.lock.is_some() {
                crate::lock::lock_error(err)
            } else {
                err
            };
            if config.offcpu.is_some() {
                offcpu_error(err)
            } else {
                err
            }
        })?;

        let mut skel = skel;
        if let Some(lock) = config.lock {
            set_lock_knobs(&mut skel, lock)?;
        }

        let checks = [
            ("counts0", skel.maps.counts0.key_size(), SAMPLE_KEY_SIZE),
            (
                "counts0 value",
                skel.maps.counts0.value_size(),
                SAMPLE_VALUE_SIZE,
            ),
            ("stacks0 value", skel.maps.stacks0.value_size(), STACK_SIZE),
            ("procs", skel.maps.procs.value_size(), PROC_MAPS_SIZE),
            ("py_procs", skel.maps.py_procs.value_size(), PY_PROC_SIZE),
            (
                "raw_scratch",
                skel.maps.raw_scratch.value_size(),
                RAW_HEADER_SIZE + 2 * MAX_FRAMES * 8 + RAW_STACK_MAX + 4096,
            ),
            (
                "py_names",
                skel.maps.py_names.value_size(),
                PY_NAME_LEN + PY_FILE_LEN + 8,
            ),
        ];
        for (name, got, want) in checks {
            if got as usize != want {
                return Err(BpfError::Load {
                    what: "checking map layouts".into(),
                    message: format!("{name} has size {got}, expected {want}"),
                });
            }
        }

        if let Some(targets) = &config.targets {
            for &tgid in targets {
                skel.maps
                    .targets
                    .update(&tgid.to_ne_bytes(), &[1], MapFlags::ANY)
                    .map_err(|e| BpfError::map("adding a target process", e))?;
            }
        }

        let mut links = Vec::new();
        let follow = if config.follow_children {
            Some(Self::load_follow(&skel, &mut links)?)
        } else {
            None
        };
        for prog in [&skel.progs.on_exec, &skel.progs.on_exit] {
            links.push(
                prog.attach()
                    .map_err(|e| BpfError::from_libbpf("attaching process tracepoints", e))?,
            );
        }
        let rings = RingReader::start(
            MapHandle::try_from(&skel.maps.events)
                .map_err(|e| BpfError::map("opening the event ring buffer", e))?,
            MapHandle::try_from(&skel.maps.raw_stacks)
                .map_err(|e| BpfError::map("opening the raw stack ring buffer", e))?,
            config.raw_buffer_bytes,
        )?;

        Ok(Sampler {
            skel,
            _follow: follow,
            _links: links,
            alloc_links: Vec::new(),
            alloc_targets: Vec::new(),
            rings,
            counts_drainer: BatchDrainer::new(SAMPLE_KEY_SIZE, SAMPLE_VALUE_SIZE, 1024),
            stacks_drainer: BatchDrainer::new(8, STACK_SIZE, 256),
            drain_errors: 0,
            frequency_hz: config.frequency_hz,
            cpu: config.cpu,
            offcpu: config.offcpu.is_some(),
            alloc: config.alloc.is_some(),
            lock: config.lock.is_some(),
            sampling: false,
            clock_fds: Vec::new(),
            period_ns: 1_000_000_000 / config.frequency_hz.max(1),
            run_time_stats: enable_run_time_stats(),
        })
    }

    /// Starts sampling: a cpu-clock event on every online CPU. Separate
    /// from loading so that known processes can be given their unwind
    /// tables first.
    pub fn start_sampling(&mut self) -> Result<(), BpfError> {
        if self.sampling {
            return Ok(());
        }
        if self.offcpu {
            let link = self.skel.progs.on_switch.attach().map_err(|e| {
                offcpu_error(BpfError::from_libbpf(
                    "attaching the sched_switch tracepoint (off-CPU)",
                    e,
                ))
            })?;
            self._links.push(link);
        }
        if self.lock {
            let p = &self.skel.progs;
            let (required, optional) = if p.on_futex_enter_tp.autoload() {
                (
                    [&p.on_futex_enter_tp, &p.on_futex_exit_tp],
                    vec![
                        &p.on_futex_waitv_enter_tp,
                        &p.on_futex_waitv_exit_tp,
                        &p.on_futex2_enter_tp,
                        &p.on_futex2_exit_tp,
                    ],
                )
            } else {
                ([&p.on_futex_enter, &p.on_futex_exit], vec![])
            };
            for prog in required {
                let link = prog.attach().map_err(|e| {
                    crate::lock::lock_error(BpfError::from_libbpf(
                        "attaching the futex syscall tracepoints (lock)",
                        e,
                    ))
                })?;
                self._links.push(link);
            }
            // The futex2 calls' tracepoints exist on newer kernels only.
            let mut links = Vec::new();
            for pair in optional.chunks(2) {
                if let (Ok(a), Ok(b)) = (pair[0].attach(), pair[1].attach()) {
                    links.extend([a, b]);
                }
            }
            self._links.extend(links);
        }
        if !self.cpu {
            self.sampling = true;
            return Ok(());
        }
        for cpu in online_cpus()? {
            let fd = open_cpu_clock(cpu, self.frequency_hz)?;
            let dup = fd
                .try_clone()
                .map_err(|source| BpfError::PerfEvent { cpu, source })?;
            // The link takes ownership of the perf event fd.
            let link = self
                .skel
                .progs
                .on_sample
                .attach_perf_event(fd.into_raw_fd())
                .map_err(|e| BpfError::from_libbpf("attaching to the cpu-clock event", e))?;
            self._links.push(link);
            self.clock_fds.push(dup);
        }
        self.sampling = true;
        Ok(())
    }

    /// Changes the CPU sampling rate while sampling (a budget sheds load
    /// this way). Returns the rate in effect: the period is whole
    /// nanoseconds, so the rate is `1e9 / period`.
    pub fn set_cpu_frequency(&mut self, hz: u64) -> Result<f64, BpfError> {
        let period = 1_000_000_000 / hz.max(1);
        if period != self.period_ns {
            for (cpu, fd) in self.clock_fds.iter().enumerate() {
                set_cpu_clock_period(fd, period).map_err(|source| BpfError::PerfEvent {
                    cpu: cpu as u32,
                    source,
                })?;
            }
            self.period_ns = period;
        }
        Ok(1e9 / self.period_ns as f64)
    }

    /// The cpu-clock events' period, in nanoseconds.
    pub fn cpu_period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Records one blocking switch in `every` from now on, in place of
    /// [`OffCpuConfig::sample_every`] (0 goes back to it). Blocks carry the
    /// rate they were recorded at, so their scaled time stays unbiased.
    pub fn set_offcpu_every(&mut self, every: u32) -> Result<(), BpfError> {
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref_mut()
            .ok_or_else(|| BpfError::Map {
                what: "setting the off-CPU rate".into(),
                message: "the BPF object has no .bss section".into(),
            })?;
        bss.offcpu_every_now = every;
        Ok(())
    }

    /// Time the kernel has spent running this sampler's programs, in
    /// nanoseconds, since they were loaded (`None` when the kernel keeps no
    /// such statistics). Most of it is spent in the profiled threads (a
    /// sample interrupts them; a switch runs in them), so it is the
    /// profiler's cost beside its own CPU time.
    pub fn bpf_run_time_ns(&self) -> Option<u64> {
        let stats_on = self.run_time_stats.is_some()
            || std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
                .is_ok_and(|v| v.trim() == "1");
        if !stats_on {
            return None;
        }
        let p = &self.skel.progs;
        let mut fds = vec![p.on_sample.as_fd(), p.on_exec.as_fd(), p.on_exit.as_fd()];
        if self.offcpu {
            fds.push(p.on_switch.as_fd());
        }
        if let Some(f) = &self._follow {
            fds.push(f.progs.on_fork.as_fd());
        }
        let mut total = 0u64;
        for fd in fds {
            total = total.saturating_add(prog_run_time_ns(fd)?);
        }
        Some(total)
    }

    /// Loads the fork tracepoint that adds children of targets to the
    /// targets map it shares with the sampler.
    fn load_follow(
        skel: &ProfilerSkel<'static>,
        links: &mut Vec<Link>,
    ) -> Result<FollowSkel<'static>, BpfError> {
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = FollowSkelBuilder::default()
            .open(storage)
            .map_err(|e| BpfError::from_libbpf("opening the fork tracker", e))?;
        open.maps
            .targets
            .reuse_fd(skel.maps.targets.as_fd())
            .map_err(|e| BpfError::from_libbpf("sharing the targets map", e))?;
        let follow = open
            .load()
            .map_err(|e| BpfError::from_libbpf("loading the fork tracker", e))?;
        links.push(
            follow
                .progs
                .on_fork
                .attach()
                .map_err(|e| BpfError::from_libbpf("attaching the fork tracepoint", e))?,
        );
        Ok(follow)
    }

    /// Adds a process to the sampled set (when sampling targets only).
    pub fn add_target(&self, tgid: u32) -> Result<(), BpfError> {
        self.skel
            .maps
            .targets
            .update(&tgid.to_ne_bytes(), &[1], MapFlags::ANY)
            .map_err(|e| BpfError::map("adding a target process", e))
    }

    /// Takes an exited process out of the sampled set. Children of targets
    /// are added as they fork; without this, churn fills the set and new
    /// children go unsampled.
    pub fn remove_target(&self, tgid: u32) {
        // Absent (not filtering, or never a target) is fine.
        let _ = self.skel.maps.targets.delete(&tgid.to_ne_bytes());
    }

    /// Whether `tgid` is in the sampled set (including forked children).
    pub fn is_target(&self, tgid: u32) -> bool {
        matches!(
            self.skel
                .maps
                .targets
                .lookup(&tgid.to_ne_bytes(), MapFlags::ANY),
            Ok(Some(_))
        )
    }

    /// Loads an object's unwind table into slot `table` (below
    /// [`MAX_UNWIND_TABLES`]), replacing what was there. The kernel memory
    /// it takes is exactly its rows.
    pub fn load_unwind_table(&self, table: u32, rows: &[UnwindRow]) -> Result<(), BpfError> {
        let n = u32::try_from(rows.len())
            .map_err(|_| BpfError::map("loading an unwind table", "too many rows"))?;
        let built = KernelUnwindTable::create(n, |push| rows.iter().for_each(push))?;
        self.install_unwind_table(table, &built)
    }

    /// Puts a table built with [`KernelUnwindTable::create`] in slot
    /// `table` (below [`MAX_UNWIND_TABLES`]), replacing what was there.
    pub fn install_unwind_table(
        &self,
        table: u32,
        built: &KernelUnwindTable,
    ) -> Result<(), BpfError> {
        if table >= MAX_UNWIND_TABLES {
            return Err(BpfError::map(
                "installing an unwind table",
                format!("table {table} is out of range"),
            ));
        }
        let fd = built.fd() as u32;
        // The outer map keeps the table alive once our handle is dropped.
        self.skel
            .maps
            .unwind_tables
            .update(&table.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| BpfError::map("installing an unwind table", e))
    }

    /// Frees unwind table `table`.
    pub fn unload_unwind_table(&self, table: u32) {
        let _ = self.skel.maps.unwind_tables.delete(&table.to_ne_bytes());
    }

    /// Tells the unwinder about a process's executable mappings (sorted by
    /// start; at most [`MAX_EXEC_MAPS`], extra ones are ignored).
    pub fn set_process_maps(
        &self,
        tgid: u32,
        maps: &[ExecMap],
        python: Option<&PythonProcess>,
    ) -> Result<(), BpfError> {
        if let Some(py) = python {
            self.skel
                .maps
                .py_procs
                .update(&tgid.to_ne_bytes(), &py.encode(), MapFlags::ANY)
                .map_err(|e| BpfError::map("storing a Python process's layout", e))?;
        }
        let mut value = Vec::with_capacity(PROC_MAPS_SIZE);
        let n = maps.len().min(MAX_EXEC_MAPS);
        value.extend_from_slice(&(n as u32).to_ne_bytes());
        let flags = if python.is_some() { PROC_F_PYTHON } else { 0 };
        value.extend_from_slice(&flags.to_ne_bytes());
        for m in &maps[..n] {
            value.extend_from_slice(&m.start.to_ne_bytes());
            value.extend_from_slice(&m.end.to_ne_bytes());
            value.extend_from_slice(&m.bias.to_ne_bytes());
            value.extend_from_slice(&m.table.to_ne_bytes());
            value.extend_from_slice(&m.row_count.to_ne_bytes());
        }
        value.resize(PROC_MAPS_SIZE, 0);
        self.skel
            .maps
            .procs
            .update(&tgid.to_ne_bytes(), &value, MapFlags::ANY)
            .map_err(|e| BpfError::map("storing a process's mappings", e))
    }

    /// Marks a kernel thread, so its samples skip user-space unwinding
    /// without asking user space about it again.
    pub fn mark_kernel_thread(&self, tgid: u32) -> Result<(), BpfError> {
        let mut value = vec![0u8; PROC_MAPS_SIZE];
        value[4..8].copy_from_slice(&PROC_F_KTHREAD.to_ne_bytes());
        self.skel
            .maps
            .procs
            .update(&tgid.to_ne_bytes(), &value, MapFlags::ANY)
            .map_err(|e| BpfError::map("marking a kernel thread", e))
    }

    pub fn remove_process(&self, tgid: u32) {
        // Absent already is fine: the exec tracepoint deletes entries too.
        let _ = self.skel.maps.procs.delete(&tgid.to_ne_bytes());
        let _ = self.skel.maps.py_procs.delete(&tgid.to_ne_bytes());
    }

    /// The name the BPF side captured for a Python code object.
    pub fn python_name(&self, tgid: u32, code: u64) -> Option<PythonName> {
        let mut key = Vec::with_capacity(16);
        key.extend_from_slice(&tgid.to_ne_bytes());
        key.extend_from_slice(&0u32.to_ne_bytes());
        key.extend_from_slice(&code.to_ne_bytes());
        let v = self.skel.maps.py_names.lookup(&key, MapFlags::ANY).ok()??;
        if v.len() < PY_NAME_LEN + PY_FILE_LEN + 4 {
            return None;
        }
        let text = |b: &[u8]| {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            // Latin-1 strings are copied as bytes; map them to chars.
            b[..end].iter().map(|&c| c as char).collect::<String>()
        };
        Some(PythonName {
            qualname: text(&v[..PY_NAME_LEN]),
            filename: text(&v[PY_NAME_LEN..PY_NAME_LEN + PY_FILE_LEN]),
            first_line: u32::from_ne_bytes(
                v[PY_NAME_LEN + PY_FILE_LEN..PY_NAME_LEN + PY_FILE_LEN + 4]
                    .try_into()
                    .unwrap_or([0; 4]),
            ),
        })
    }

    /// Moves the raw stacks received since the last call into `out`
    /// (which is cleared first).
    pub fn take_raw_stacks(&mut self, out: &mut RawStacks) {
        out.clear();
        let mut shared = self.rings.lock();
        std::mem::swap(out, &mut shared.stacks);
        shared.per_process.clear();
        shared.stack_bytes.clear();
    }

    /// The rows of the unwind table in slot `table`, read from the kernel
    /// (a window at a time, mapped, not copied).
    pub fn kernel_table(&self, table: u32) -> Result<KernelTable, BpfError> {
        let id = self
            .skel
            .maps
            .unwind_tables
            .lookup(&table.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| BpfError::map("reading an unwind table", e))?
            .and_then(|v| Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)))
            .ok_or_else(|| {
                BpfError::map("reading an unwind table", format!("slot {table} is empty"))
            })?;
        let inner =
            MapHandle::from_map_id(id).map_err(|e| BpfError::map("opening an unwind table", e))?;
        KernelTable::open(inner)
    }

    /// Runs `hook` on the thread that reads the ring buffers, as records
    /// arrive (replacing any earlier hook).
    pub fn set_ring_hook(&self, hook: Box<dyn RingHook>) {
        *self.rings.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Waits up to `timeout` for events and appends them to `out`.
    pub fn poll_events(&mut self, timeout: Duration, out: &mut Vec<Event>) {
        self.rings.wait_events(timeout, out);
    }

    /// Moves all counts and stacks gathered since the last drain into `out`.
    pub fn drain(&mut self, out: &mut Drained) -> Result<(), BpfError> {
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref_mut()
            .ok_or_else(|| BpfError::Map {
                what: "draining".into(),
                message: "the BPF object has no .bss section".into(),
            })?;
        let old = bss.active_buffer & 1;
        bss.active_buffer = old ^ 1;
        // Programs that read the old index run in interrupt context and
        // finish within microseconds; give them ample time.
        std::thread::sleep(Duration::from_millis(2));

        let (counts, stacks) = if old == 0 {
            (&self.skel.maps.counts0, &self.skel.maps.stacks0)
        } else {
            (&self.skel.maps.counts1, &self.skel.maps.stacks1)
        };
        let samples = &mut out.samples;
        let r1 = self.counts_drainer.drain(counts.as_fd(), |k, v| {
            samples.push(decode_sample(k, v));
        });
        let stack_map = &mut out.stacks;
        let r2 = self.stacks_drainer.drain(stacks.as_fd(), |k, v| {
            let hash = u64::from_ne_bytes(k[..8].try_into().unwrap_or([0; 8]));
            let len =
                (u64::from_ne_bytes(v[..8].try_into().unwrap_or([0; 8])) as usize).min(MAX_FRAMES);
            let ips = (0..len)
                .map(|i| u64::from_ne_bytes(v[8 + 8 * i..16 + 8 * i].try_into().unwrap_or([0; 8])))
                .collect();
            stack_map.insert(hash, ips);
        });
        for r in [r1.map(|_| ()), r2.map(|_| ())] {
            if let Err(e) = r {
                self.drain_errors += 1;
                return Err(BpfError::map("draining samples", e));
            }
        }
        Ok(())
    }

    /// Changes the lock profile's knobs while it runs (a CPU budget's
    /// rate control): the minimum wait and the 1-in-N sampling. Waits in
    /// progress keep the sampling decision they were started with.
    pub fn set_lock_config(&mut self, config: LockConfig) -> Result<(), BpfError> {
        set_lock_knobs(&mut self.skel, config)
    }

    /// Counters summed over CPUs.
    pub fn stats(&self) -> SamplerStats {
        let (raw_trimmed, raw_dropped, raw_malformed, events_dropped) = {
            let shared = self.rings.lock();
            (
                shared.trimmed,
                shared.dropped,
                shared.malformed,
                shared.events_dropped,
            )
        };
        let mut v = [0u64; STAT_COUNT];
        for (i, slot) in v.iter_mut().enumerate() {
            if let Ok(Some(per_cpu)) = self
                .skel
                .maps
                .stats
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
            {
                *slot = per_cpu
                    .iter()
                    .filter_map(|b| b.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
                    .sum();
            }
        }
        SamplerStats {
            samples: v[0],
            idle: v[1],
            filtered: v[2],
            counts_full: v[3],
            stacks_full: v[4],
            stack_collisions: v[5],
            events_lost: v[6] + events_dropped,
            unwind_truncated: v[7],
            unwind_fp_only: v[8],
            unwind_read_errors: v[9],
            unwind_unsupported: v[10],
            kernel_stack_errors: v[11],
            python_no_thread: v[12],
            python_truncated: v[13],
            raw_taken: v[14],
            raw_rate_limited: v[15],
            raw_ring_full: v[16],
            raw_trimmed,
            raw_dropped,
            raw_malformed,
            drain_errors: self.drain_errors,
            offcpu_blocks: v[17],
            offcpu_short: v[18],
            offcpu_skipped: v[19],
            offcpu_no_storage: v[20],
            stacks_nomem: v[21],
            lock_waits: v[22],
            lock_short: v[23],
            lock_skipped: v[24],
            lock_no_storage: v[25],
        }
    }
}

fn set_lock_knobs(skel: &mut ProfilerSkel<'static>, lock: LockConfig) -> Result<(), BpfError> {
    let bss = skel
        .maps
        .bss_data
        .as_deref_mut()
        .ok_or_else(|| BpfError::Map {
            what: "setting the lock profile's knobs".into(),
            message: "the BPF object has no .bss section".into(),
        })?;
    bss.lock_min_ns = lock.min_wait_ns;
    bss.lock_sample_every = lock.sample_every.max(1);
    Ok(())
}

/// What to do when the off-CPU program does not load or attach, added to
/// the kernel's own answer.
const OFFCPU_HINT: &str = "off-CPU profiles attach a BPF program to the sched_switch \
    tracepoint through a BPF trampoline (tp_btf: CONFIG_DEBUG_INFO_BTF, CONFIG_BPF_JIT \
    and CONFIG_BPF_SYSCALL, x86-64) and keep each blocked thread's stacks in BPF task \
    storage (CONFIG_BPF_SYSCALL, kernel 5.12 or later); check `bpftool feature probe` \
    and dmesg, or profile without --profiles offcpu";

/// A load or attach error of a session with off-CPU profiling on, said
/// so the user knows it was the off-CPU part and what to change.
/// Asks the kernel to count BPF programs' run time for as long as the
/// returned fd is open (a sysctl left as it was by everyone else).
fn enable_run_time_stats() -> Option<OwnedFd> {
    // SAFETY: a plain syscall wrapper; a non-negative result is a new fd.
    let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
    // SAFETY: as above, the fd is ours.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn prog_run_time_ns(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: info is a bpf_prog_info of the size passed.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    (rc == 0).then_some(info.run_time_ns)
}

fn offcpu_error(err: BpfError) -> BpfError {
    match err {
        BpfError::Load { what, message } => BpfError::Load {
            what,
            message: format!("{message}; {OFFCPU_HINT}"),
        },
        other => other,
    }
}

fn decode_sample(k: &[u8], v: &[u8]) -> RawSample {
    let u32_at = |b: &[u8], o: usize| {
        u32::from_ne_bytes(
            b.get(o..o + 4)
                .and_then(|x| x.try_into().ok())
                .unwrap_or([0; 4]),
        )
    };
    let u64_at = |b: &[u8], o: usize| {
        u64::from_ne_bytes(
            b.get(o..o + 8)
                .and_then(|x| x.try_into().ok())
                .unwrap_or([0; 8]),
        )
    };
    let mut comm = [0u8; 16];
    comm.copy_from_slice(&v[8..24]);
    RawSample {
        tgid: u32_at(k, 0),
        tid: u32_at(k, 4),
        user_stack: u64_at(k, 8),
        kernel_stack: u64_at(k, 16),
        python_stack: u64_at(k, 24),
        flags: u32_at(k, 32),
        count: u64_at(v, 0),
        events: u64_at(v, 24),
        comm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_fs_base_in_the_kernels_task_struct() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            eprintln!("SKIPPED: this kernel has no BTF");
            return;
        }
        // thread_struct is task_struct's last member; tasks are a few KiB.
        let at = task_fsbase_offset().expect("task_struct.thread.fsbase in the kernel's BTF");
        assert!((1024..65536).contains(&at), "{at}");
    }

    #[test]
    fn python_processes_encode_to_the_c_layout() {
        let py = PythonProcess {
            runtime: 0x1000,
            pidns: (2, 3),
            offsets: PythonOffsets {
                unicode_compact_data: 72,
                frame_owner: 70,
                flags: PythonOffsets::SHIM_FRAMES,
                ..PythonOffsets::default()
            },
        };
        let v = py.encode();
        assert_eq!(v.len(), PY_PROC_SIZE);
        assert_eq!(&v[54..56], &72u16.to_ne_bytes());
        assert_eq!(&v[56..58], &70u16.to_ne_bytes());
        assert_eq!(&v[58..60], &PythonOffsets::SHIM_FRAMES.to_ne_bytes());
        // The fs base offset only for layouts that match pthread ids.
        assert_eq!(&v[60..64], &[0; 4]);
    }

    #[test]
    fn unwind_rows_encode_to_the_c_layout() {
        let mut out = Vec::new();
        encode_row(
            &UnwindRow {
                pc: 0x1234,
                cfa: CfaRule::RbpOffset(16),
                rbp: RbpRule::Offset(-16),
            },
            &mut out,
        );
        assert_eq!(out.len(), UNWIND_ROW_SIZE);
        assert_eq!(&out[0..4], &0x1234u32.to_ne_bytes());
        assert_eq!(&out[4..8], &16i32.to_ne_bytes());
        assert_eq!(&out[8..10], &(-16i16).to_ne_bytes());
        assert_eq!(out[10], 2);
        assert_eq!(out[11], 1);
    }

    #[test]
    fn unwind_rows_decode_as_encoded() {
        let rows = [
            UnwindRow {
                pc: 7,
                cfa: CfaRule::RspOffset(-8),
                rbp: RbpRule::Same,
            },
            UnwindRow {
                pc: 0xfffffff0,
                cfa: CfaRule::Plt { threshold: 11 },
                rbp: RbpRule::Offset(-24),
            },
            UnwindRow {
                pc: 0,
                cfa: CfaRule::End,
                rbp: RbpRule::Same,
            },
            UnwindRow {
                pc: 1,
                cfa: CfaRule::Unsupported,
                rbp: RbpRule::Same,
            },
            UnwindRow {
                pc: 2,
                cfa: CfaRule::None,
                rbp: RbpRule::Same,
            },
        ];
        for row in rows {
            let mut b = Vec::new();
            encode_row(&row, &mut b);
            assert_eq!(decode_row(&b), Some(row));
        }
        assert_eq!(decode_row(&[0; 11]), None);
    }

    fn raw_record(kernel: &[u64], python: &[u64], stack: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&11u32.to_ne_bytes());
        r.extend_from_slice(&12u32.to_ne_bytes());
        for v in [0x401000u64, 0x7ffd000, 0x7ffd100, 0] {
            r.extend_from_slice(&v.to_ne_bytes());
        }
        r.extend_from_slice(&SAMPLE_F_FP_ONLY.to_ne_bytes());
        r.extend_from_slice(&(kernel.len() as u16).to_ne_bytes());
        r.extend_from_slice(&(python.len() as u16).to_ne_bytes());
        r.extend_from_slice(&(stack.len() as u32).to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        r.extend_from_slice(b"short\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(r.len(), RAW_HEADER_SIZE);
        for v in kernel.iter().chain(python) {
            r.extend_from_slice(&v.to_ne_bytes());
        }
        r.extend_from_slice(stack);
        r
    }

    #[test]
    fn raw_stacks_decode_from_the_c_layout() {
        let rec = raw_record(
            &[0xffff_ffff_8100_0000, 2],
            &[0x51],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9],
        );
        let mut all = RawStacks::default();
        assert!(all.push(&rec));
        // The ring buffer pads records to 8 bytes; the padding is not kept.
        let mut padded = rec.clone();
        padded.extend_from_slice(&[0; 7]);
        assert!(all.push(&padded));
        assert!(!all.push(&rec[..rec.len() - 1]), "cut short");
        assert!(!all.push(&rec[..RAW_HEADER_SIZE - 1]), "no header");
        assert_eq!(all.len(), 2);
        assert_eq!(all.bytes(), 2 * rec.len());
        for r in all.iter() {
            assert_eq!((r.tgid, r.tid), (11, 12));
            assert_eq!((r.ip, r.sp, r.bp), (0x401000, 0x7ffd000, 0x7ffd100));
            assert_eq!(r.flags, SAMPLE_F_FP_ONLY);
            assert_eq!(
                r.kernel().collect::<Vec<_>>(),
                vec![0xffff_ffff_8100_0000, 2]
            );
            assert_eq!(r.python().collect::<Vec<_>>(), vec![0x51]);
            assert_eq!(r.stack, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
            assert_eq!(&r.comm[..5], b"short");
            assert_eq!(RawStack::parse(r.record()).map(|x| x.stack.len()), Some(9));
        }
    }

    #[test]
    fn a_process_holding_the_most_gives_up_its_stacks_before_another_loses_its_own() {
        let mut hog = raw_record(&[1], &[], &vec![7u8; 1000]);
        hog[0..4].copy_from_slice(&99u32.to_ne_bytes());
        let small = raw_record(&[1], &[], &[7u8; 100]);
        let mut s = RingShared::default();
        // Two processes fill their halves of 7000 bytes.
        let mut other = raw_record(&[1], &[], &vec![7u8; 1000]);
        other[0..4].copy_from_slice(&98u32.to_ne_bytes());
        for _ in 0..4 {
            s.keep(&hog, 7000, None);
            s.keep(&other, 7000, None);
        }
        // A process holding little still gets its copies whole.
        for _ in 0..5 {
            s.keep(&small, 7000, None);
        }
        let small_whole = s
            .stacks
            .iter()
            .filter(|r| r.tgid == 11 && r.stack.len() == 100)
            .count();
        assert_eq!(small_whole, 5);
        assert!(s.stacks.bytes() <= 7000);
        assert_eq!(s.dropped, 0);
        assert!(s.trimmed >= 3);
        let per: usize = s.per_process.values().sum();
        assert_eq!(per, s.stacks.bytes());
    }

    #[test]
    fn execs_alone_do_not_wake_the_session_and_waiting_events_are_bounded() {
        let mut s = RingShared::default();
        s.push_event(Event::Exec(7));
        s.push_event(Event::Exec(8));
        assert!(!s.urgent, "execs are taken at the session's next poll");
        s.push_event(Event::NewProcess(7));
        assert!(s.urgent);
        assert_eq!(
            s.events,
            vec![Event::Exec(7), Event::Exec(8), Event::NewProcess(7)],
            "in order"
        );
        for i in 0..MAX_PENDING_EVENTS as u32 {
            s.push_event(Event::Exit(i));
        }
        assert_eq!(s.events.len(), MAX_PENDING_EVENTS);
        assert_eq!(s.events_dropped, 3);
    }

    #[test]
    fn copies_beyond_the_bound_keep_their_sample_without_the_stack() {
        let stack = vec![7u8; 1000];
        let rec = raw_record(&[1], &[], &stack);
        let mut s = RingShared::default();
        // 3 whole copies fit in half of 8000 bytes for one process.
        for _ in 0..6 {
            s.keep(&rec, 8000, None);
        }
        let whole = s.stacks.iter().filter(|r| r.stack.len() == 1000).count();
        assert_eq!((whole, s.trimmed, s.dropped), (3, 3, 0));
        let trimmed = s.stacks.iter().find(|r| r.stack.is_empty()).unwrap();
        assert_eq!((trimmed.ip, trimmed.kernel().count()), (0x401000, 1));
        // Past twice the bound, copies are dropped.
        let mut s = RingShared::default();
        for _ in 0..100 {
            s.keep(&rec, 1200, None);
        }
        assert!(s.dropped > 0 && s.stacks.bytes() <= 2400);
        // A main thread's copy ends a little above where its stack began;
        // another thread's is whole. (tgid 11, tid 12, sp 0x7ffd000.)
        let mut s = RingShared::default();
        s.keep(&rec, 1 << 20, Some(0x7ffd000 + 100));
        assert_eq!(s.stacks.iter().next().unwrap().stack.len(), 1000);
        let mut main = rec.clone();
        main[4..8].copy_from_slice(&11u32.to_ne_bytes());
        s.keep(&main, 1 << 20, Some(0x7ffd000 + 100));
        s.keep(&main, 1 << 20, Some(0x7ffd000 + 10_000));
        s.keep(&main, 1 << 20, Some(0x7ffd000 - 8));
        let lens: Vec<usize> = s.stacks.iter().map(|r| r.stack.len()).collect();
        assert_eq!(lens, vec![1000, 356, 1000, 1000]);
        s.keep(b"short", 1200, None);
        assert_eq!(s.malformed, 1);
    }

    #[test]
    fn offcpu_failures_say_what_to_change() {
        let err = super::offcpu_error(BpfError::Load {
            what: "attaching the sched_switch tracepoint (off-CPU)".into(),
            message: "Operation not supported (os error 95)".into(),
        });
        let text = err.to_string();
        assert!(text.contains("sched_switch"), "{text}");
        assert!(text.contains("os error 95"), "{text}");
        assert!(text.contains("without --profiles offcpu"), "{text}");
        // A missing privilege stays the privilege error.
        let denied = super::offcpu_error(BpfError::NotPermitted {
            what: "loading".into(),
        });
        assert!(matches!(denied, BpfError::NotPermitted { .. }));
    }

    #[test]
    fn samples_decode_from_the_c_layout() {
        let mut k = Vec::new();
        k.extend_from_slice(&7u32.to_ne_bytes());
        k.extend_from_slice(&8u32.to_ne_bytes());
        k.extend_from_slice(&0xaau64.to_ne_bytes());
        k.extend_from_slice(&0xbbu64.to_ne_bytes());
        k.extend_from_slice(&0xccu64.to_ne_bytes());
        k.extend_from_slice(&3u32.to_ne_bytes());
        k.extend_from_slice(&0u32.to_ne_bytes());
        let mut v = Vec::new();
        v.extend_from_slice(&42u64.to_ne_bytes());
        v.extend_from_slice(b"worker\0\0\0\0\0\0\0\0\0\0");
        v.extend_from_slice(&5u64.to_ne_bytes());
        let s = decode_sample(&k, &v);
        assert_eq!(
            (
                s.tgid,
                s.tid,
                s.user_stack,
                s.kernel_stack,
                s.flags,
                s.count,
                s.events
            ),
            (7, 8, 0xaa, 0xbb, 3, 42, 5)
        );
        assert_eq!(s.comm(), "worker");
    }
}
