//! The CPU sampler: loading, attaching, feeding unwind tables, draining.

use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};

use crate::drain::BatchDrainer;
use crate::perf::{online_cpus, open_cpu_clock};
use crate::unwind_table::KernelUnwindTable;
use crate::BpfError;

mod skel {
    #![allow(clippy::all, unused_imports, dead_code, non_camel_case_types)]
    include!(concat!(env!("OUT_DIR"), "/profiler.skel.rs"));
}
use skel::{ProfilerSkel, ProfilerSkelBuilder};

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
const PROC_F_PYTHON: u32 = 1;
const PROC_F_KTHREAD: u32 = 2;
const PY_NAME_LEN: usize = 64;
const PY_FILE_LEN: usize = 96;

const SAMPLE_KEY_SIZE: usize = 40;
const SAMPLE_VALUE_SIZE: usize = 24;
const STACK_SIZE: usize = 8 + 8 * MAX_FRAMES;
pub(crate) const UNWIND_ROW_SIZE: usize = 12;
const EXEC_MAP_SIZE: usize = 32;
const PROC_MAPS_SIZE: usize = 8 + EXEC_MAP_SIZE * MAX_EXEC_MAPS;

pub use perfpilot_unwind::{CfaRule, RbpRule, UnwindRow};

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

/// Where CPython keeps the state the Python unwinder reads: byte offsets
/// of fields, for one CPython version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PythonOffsets {
    pub runtime_interp_head: u16,
    pub runtime_tstate_current: u16,
    pub interp_threads_head: u16,
    pub tstate_next: u16,
    pub tstate_native_thread_id: u16,
    pub tstate_cframe: u16,
    pub cframe_current_frame: u16,
    pub frame_code: u16,
    pub frame_previous: u16,
    pub frame_is_entry: u16,
    pub code_qualname: u16,
    pub code_filename: u16,
    pub code_firstlineno: u16,
    pub unicode_state: u16,
    pub unicode_ascii_data: u16,
    pub unicode_compact_data: u16,
}

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
        let mut v = Vec::with_capacity(56);
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
        ] {
            v.extend_from_slice(&f.to_ne_bytes());
        }
        v
    }
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
    pub count: u64,
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
    pub events_lost: u64,
    pub unwind_truncated: u64,
    pub unwind_fp_only: u64,
    pub unwind_read_errors: u64,
    pub unwind_unsupported: u64,
    pub kernel_stack_errors: u64,
    /// Samples of Python processes whose thread state was not found.
    pub python_no_thread: u64,
    pub python_truncated: u64,
    /// Batch drain calls that failed (counted in user space).
    pub drain_errors: u64,
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
        }
    }
}

/// A loaded and attached sampler. Dropping it detaches everything.
pub struct Sampler {
    skel: ProfilerSkel<'static>,
    _follow: Option<FollowSkel<'static>>,
    _links: Vec<Link>,
    ring: RingBuffer<'static>,
    events: Rc<RefCell<Vec<Event>>>,
    counts_drainer: BatchDrainer,
    stacks_drainer: BatchDrainer,
    drain_errors: u64,
    frequency_hz: u64,
    sampling: bool,
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
        }
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

        let skel = open
            .load()
            .map_err(|e| BpfError::from_libbpf("loading the BPF programs", e))?;

        let checks = [
            ("counts0", skel.maps.counts0.key_size(), SAMPLE_KEY_SIZE),
            (
                "counts0 value",
                skel.maps.counts0.value_size(),
                SAMPLE_VALUE_SIZE,
            ),
            ("stacks0 value", skel.maps.stacks0.value_size(), STACK_SIZE),
            ("procs", skel.maps.procs.value_size(), PROC_MAPS_SIZE),
            ("py_procs", skel.maps.py_procs.value_size(), 56),
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
        let events = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&events);
        let mut rb = RingBufferBuilder::new();
        rb.add(&skel.maps.events, move |data: &[u8]| {
            if data.len() >= 8 {
                let kind = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
                let tgid = u32::from_ne_bytes([data[4], data[5], data[6], data[7]]);
                let event = match kind {
                    1 => Some(Event::NewProcess(tgid)),
                    2 => Some(Event::MapsStale(tgid)),
                    3 => Some(Event::Exec(tgid)),
                    4 => Some(Event::Exit(tgid)),
                    _ => None,
                };
                if let Some(e) = event {
                    sink.borrow_mut().push(e);
                }
            }
            0
        })
        .map_err(|e| BpfError::map("opening the event ring buffer", e))?;
        let ring = rb
            .build()
            .map_err(|e| BpfError::map("opening the event ring buffer", e))?;

        Ok(Sampler {
            skel,
            _follow: follow,
            _links: links,
            ring,
            events,
            counts_drainer: BatchDrainer::new(SAMPLE_KEY_SIZE, SAMPLE_VALUE_SIZE, 1024),
            stacks_drainer: BatchDrainer::new(8, STACK_SIZE, 256),
            drain_errors: 0,
            frequency_hz: config.frequency_hz,
            sampling: false,
        })
    }

    /// Starts sampling: a cpu-clock event on every online CPU. Separate
    /// from loading so that known processes can be given their unwind
    /// tables first.
    pub fn start_sampling(&mut self) -> Result<(), BpfError> {
        if self.sampling {
            return Ok(());
        }
        for cpu in online_cpus()? {
            let fd = open_cpu_clock(cpu, self.frequency_hz)?;
            // The link takes ownership of the perf event fd.
            let link = self
                .skel
                .progs
                .on_sample
                .attach_perf_event(fd.into_raw_fd())
                .map_err(|e| BpfError::from_libbpf("attaching to the cpu-clock event", e))?;
            self._links.push(link);
        }
        self.sampling = true;
        Ok(())
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

    /// Waits up to `timeout` for events and appends them to `out`.
    pub fn poll_events(&mut self, timeout: Duration, out: &mut Vec<Event>) {
        // An error here is EINTR from a signal; the caller polls again.
        let _ = self.ring.poll(timeout);
        out.append(&mut self.events.borrow_mut());
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

    /// Counters summed over CPUs.
    pub fn stats(&self) -> SamplerStats {
        let mut v = [0u64; 14];
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
            events_lost: v[6],
            unwind_truncated: v[7],
            unwind_fp_only: v[8],
            unwind_read_errors: v[9],
            unwind_unsupported: v[10],
            kernel_stack_errors: v[11],
            python_no_thread: v[12],
            python_truncated: v[13],
            drain_errors: self.drain_errors,
        }
    }
}

fn decode_sample(k: &[u8], v: &[u8]) -> RawSample {
    let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |b: &[u8], o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
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
        comm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = decode_sample(&k, &v);
        assert_eq!(
            (
                s.tgid,
                s.tid,
                s.user_stack,
                s.kernel_stack,
                s.flags,
                s.count
            ),
            (7, 8, 0xaa, 0xbb, 3, 42)
        );
        assert_eq!(s.comm(), "worker");
    }
}
