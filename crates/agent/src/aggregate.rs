//! Turning drained kernel samples into a [`Profile`]: resolve each address
//! to an object or the kernel, name it, intern locations and label sets.

use std::collections::HashMap;

use perfpilot_bpf::{
    Drained, LockConfig, OffCpuConfig, RawSample, SAMPLE_F_ALLOC, SAMPLE_F_ALLOC_FREE,
    SAMPLE_F_ALLOC_OBJECTS, SAMPLE_F_LOCK, SAMPLE_F_OFFCPU, SAMPLE_F_RUNNABLE, SAMPLE_F_SHORT,
};
use perfpilot_model::{
    labels, Function, Line, Location, LocationId, Mapping, MappingId, Profile, ValueType,
};

use crate::objects::ObjectKey;
use crate::symbolize::{Names, Symbolizer};
use crate::tracker::{Resolved, Tracker};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LocKey {
    User(ObjectKey, u64),
    Kernel(u64),
    /// JIT or unmapped code: only meaningful within its process.
    Anonymous(u32, u64),
    /// A Python code object of a process.
    Python(u32, u64),
}

/// The native function that runs Python frames; each call of it runs one
/// group of Python frames (ending at a frame entered from C).
const PYTHON_EVAL: &str = "_PyEval_EvalFrameDefault";

/// The off-CPU profile's sample and period type.
pub const OFF_CPU: &str = "off_cpu";
/// The wall view's sample and period type.
pub const WALL: &str = "wall";
/// The allocation profile's sample types (Go's heap profile names) and
/// its period type.
pub const ALLOC_OBJECTS: &str = "alloc_objects";
pub const ALLOC_SPACE: &str = "alloc_space";
pub const INUSE_OBJECTS: &str = "inuse_objects";
pub const INUSE_SPACE: &str = "inuse_space";
pub const SPACE: &str = "space";

/// The lock profile's sample types (Go's mutex profile names): waits, and
/// nanoseconds waited; the first is also its period type.
pub const CONTENTIONS: &str = "contentions";
pub const DELAY: &str = "delay";

/// Builds one profile from any number of drains.
pub struct ProfileBuilder {
    profile: Profile,
    period_ns: i64,
    locations: HashMap<LocKey, LocationId>,
    mappings: HashMap<ObjectKey, MappingId>,
    kernel_mapping: Option<MappingId>,
    anon_mapping: Option<MappingId>,
    python_mapping: Option<MappingId>,
    label_sets: HashMap<(u32, u32, [u8; 16]), u32>,
    pid_labels: bool,
    /// Builds the off-CPU profile (records with `SAMPLE_F_OFFCPU`, in
    /// nanoseconds) rather than the CPU one (samples).
    offcpu: Option<OffCpuConfig>,
    /// Builds the wall view: CPU samples as their period's nanoseconds plus
    /// every off-CPU record (with `offcpu` set too).
    wall: bool,
    /// Builds the allocation profile (records with `SAMPLE_F_ALLOC`).
    alloc: bool,
    /// The latest in-use snapshot's samples, added at [`finish`](Self::finish):
    /// resolved when given, while their processes are known.
    inuse: Vec<(u32, u32, [i64; 4])>,
    /// Builds the lock profile (records with `SAMPLE_F_LOCK`).
    lock: Option<LockConfig>,
    /// CPU: samples; off-CPU: records (distinct blocked stacks per drain).
    pub samples: u64,
    pub frames: u64,
    pub named_frames: u64,
}

/// Per-sample unwinding outcome counts for one profile.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SampleFlags {
    pub truncated: u64,
    pub fp_only: u64,
    pub read_error: u64,
    pub no_unwind_info: u64,
    pub stack_lost: u64,
    /// Samples of Python processes whose Python frames could not be found.
    pub python_no_thread: u64,
}

impl ProfileBuilder {
    /// Whether a native frame is the eval loop's own: the outermost
    /// function of its location, since the sampled address is often in
    /// a helper inlined into it (3.8–3.10 call Python functions from an
    /// inlined `call_function`).
    fn runs_python(&self, loc: LocationId) -> bool {
        let p = &self.profile;
        p.locations()[loc as usize]
            .lines
            .last()
            .map_or(p.location_name(loc), |l| {
                p.functions()[l.function as usize].name.as_str()
            })
            == PYTHON_EVAL
    }

    pub fn new(frequency_hz: u64, start_unix_nanos: i64) -> Self {
        let period_ns = 1_000_000_000 / frequency_hz.max(1) as i64;
        let mut profile = Profile::new(vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ]);
        profile.period_type = Some(ValueType::new("cpu", "nanoseconds"));
        profile.period = period_ns;
        profile.time_nanos = start_unix_nanos;
        ProfileBuilder {
            profile,
            period_ns,
            locations: HashMap::new(),
            mappings: HashMap::new(),
            kernel_mapping: None,
            anon_mapping: None,
            python_mapping: None,
            label_sets: HashMap::new(),
            pid_labels: true,
            offcpu: None,
            wall: false,
            alloc: false,
            inuse: Vec::new(),
            lock: None,
            samples: 0,
            frames: 0,
            named_frames: 0,
        }
    }

    /// The off-CPU profile: one sample type, `off_cpu`/`nanoseconds`
    /// (the type id `off_cpu:off_cpu:nanoseconds:off_cpu:nanoseconds` on the
    /// server), the time threads were blocked at each stack. With 1-in-N
    /// switch sampling each record stands for N, so values are scaled by N
    /// (an estimate); the comments say how it was collected.
    pub fn new_offcpu(config: OffCpuConfig, start_unix_nanos: i64) -> Self {
        let mut b = ProfileBuilder::new(1, start_unix_nanos);
        let mut profile = Profile::new(vec![ValueType::new(OFF_CPU, "nanoseconds")]);
        profile.period_type = Some(ValueType::new(OFF_CPU, "nanoseconds"));
        profile.period = 1;
        profile.time_nanos = start_unix_nanos;
        let every = config.sample_every.max(1);
        profile.comments = vec![
            format!(
                "off-CPU: time threads were blocked (switched out while not runnable), \
                 by the stack they blocked at; blocks shorter than {} ns are not counted",
                config.min_block_ns
            ),
            format!(
                "off-CPU sampling: 1 in {every} blocking switches recorded, values \
                 multiplied by {every}"
            ),
        ];
        b.profile = profile;
        b.period_ns = 1;
        b.offcpu = Some(OffCpuConfig {
            sample_every: every,
            ..config
        });
        b
    }

    /// The wall view: per stack, on-CPU time (CPU samples times their
    /// period, at `frequency_hz`) plus off-CPU time, blocked or runnable
    /// waiting for a CPU, so a thread's total is its elapsed time. One
    /// sample type, `wall`/`nanoseconds` (Pyroscope's `wall` profile).
    /// `config` must have been given to the sampler with `wall` set.
    pub fn new_wall(frequency_hz: u64, config: OffCpuConfig, start_unix_nanos: i64) -> Self {
        let mut b = ProfileBuilder::new(frequency_hz, start_unix_nanos);
        let mut profile = Profile::new(vec![ValueType::new(WALL, "nanoseconds")]);
        profile.period_type = Some(ValueType::new(WALL, "nanoseconds"));
        profile.period = 1;
        profile.time_nanos = start_unix_nanos;
        let every = config.sample_every.max(1);
        profile.comments = vec![
            format!(
                "wall: on-CPU time estimated from samples at {} Hz, plus off-CPU time \
                 (blocked, or runnable waiting for a CPU), per stack",
                frequency_hz.max(1)
            ),
            format!(
                "off-CPU sampling: 1 in {every} switches recorded, values multiplied by {every}"
            ),
        ];
        b.profile = profile;
        b.offcpu = Some(OffCpuConfig {
            sample_every: every,
            ..config
        });
        b.wall = true;
        b
    }

    /// The allocation profile: four sample types, alloc_objects/count,
    /// alloc_space/bytes (allocated during the profile's interval),
    /// inuse_objects/count and inuse_space/bytes (held at its end, from
    /// [`InUse::snapshot`](crate::alloc::InUse::snapshot) given to
    /// [`add`](Self::add) last); period type space/bytes, the mean bytes
    /// between samples. Values are estimates: each sampled allocation
    /// counts for the bytes and objects it stands for.
    pub fn new_alloc(config: crate::alloc::AllocConfig, start_unix_nanos: i64) -> Self {
        let mut b = ProfileBuilder::new(1, start_unix_nanos);
        let mut profile = Profile::new(vec![
            ValueType::new(ALLOC_OBJECTS, "count"),
            ValueType::new(ALLOC_SPACE, "bytes"),
            ValueType::new(INUSE_OBJECTS, "count"),
            ValueType::new(INUSE_SPACE, "bytes"),
        ]);
        profile.period_type = Some(ValueType::new(SPACE, "bytes"));
        profile.period = config.sample_bytes as i64;
        profile.time_nanos = start_unix_nanos;
        profile.comments = vec![
            format!(
                "allocations: sampled once per {} bytes allocated on average (Poisson), \
                 each sample weighted by the bytes and objects it stands for",
                config.sample_bytes
            ),
            "inuse: sampled allocations not freed at the end of the interval, since the \
             agent started (a snapshot, not a sum over the interval)"
                .to_string(),
        ];
        b.profile = profile;
        b.period_ns = 1;
        b.alloc = true;
        b
    }

    /// The lock profile: two sample types, `contentions`/`count` (futex
    /// waits) and `delay`/`nanoseconds` (time waited), period type
    /// `contentions`/`count` — Go's mutex profile, so the server's type ids
    /// are `mutex:contentions:count:contentions:count` and
    /// `mutex:delay:nanoseconds:contentions:count`. With 1-in-N sampling
    /// both are multiplied by N (an estimate); the comments say how it was
    /// collected.
    pub fn new_lock(config: LockConfig, start_unix_nanos: i64) -> Self {
        let mut b = ProfileBuilder::new(1, start_unix_nanos);
        let mut profile = Profile::new(vec![
            ValueType::new(CONTENTIONS, "count"),
            ValueType::new(DELAY, "nanoseconds"),
        ]);
        profile.period_type = Some(ValueType::new(CONTENTIONS, "count"));
        profile.period = 1;
        profile.time_nanos = start_unix_nanos;
        let every = config.sample_every.max(1);
        profile.comments = vec![
            format!(
                "lock: futex waits (mutexes, condition variables, rwlocks, idle pools) by \
                 the user stack that waited; waits shorter than {} ns, or that did not \
                 sleep, are not counted",
                config.min_wait_ns
            ),
            format!("lock sampling: 1 in {every} futex waits timed, values multiplied by {every}"),
        ];
        b.profile = profile;
        b.period_ns = 1;
        b.lock = Some(LockConfig {
            sample_every: every,
            ..config
        });
        b
    }

    /// Whether samples are labelled with their pid and tid (the default).
    /// Without, the processes and threads of one program with the same
    /// name share their label sets.
    pub fn with_pid_labels(mut self, on: bool) -> Self {
        self.pid_labels = on;
        self
    }

    /// Adds a drain. Processes seen for the first time are registered with
    /// the tracker (through `register`) so their frames can be named.
    pub fn add(
        &mut self,
        drained: &Drained,
        tracker: &mut Tracker,
        symbolizer: &mut Symbolizer,
        flags: &mut SampleFlags,
    ) {
        self.resolve_all(drained, tracker, symbolizer);
        let empty: Vec<u64> = Vec::new();
        let mut stack: Vec<LocationId> = Vec::with_capacity(64);
        let kind = self.kind();
        let alloc = kind == Kind::Alloc;
        for s in drained.samples.iter().filter(|s| takes(kind, s)) {
            // Frames and flags are weighed by samples; an off-CPU, lock or
            // allocation record is one observation whatever its count.
            let off_record = s.flags & (SAMPLE_F_OFFCPU | SAMPLE_F_LOCK) != 0;
            let weight = if off_record || alloc { 1 } else { s.count };
            if !alloc || s.flags & SAMPLE_F_ALLOC_OBJECTS == 0 {
                count_flags(s, weight, flags);
            }
            stack.clear();
            let kernel = drained.stacks.get(&s.kernel_stack).unwrap_or(&empty);
            let user = drained.stacks.get(&s.user_stack).unwrap_or(&empty);
            for (i, &ip) in kernel.iter().enumerate() {
                let addr = if i == 0 { ip } else { ip.wrapping_sub(1) };
                let loc = self.kernel_location(addr, symbolizer);
                stack.push(loc);
            }
            let python = drained.stacks.get(&s.python_stack).unwrap_or(&empty);
            let mut groups = python_groups(python).into_iter();
            for (i, &ip) in user.iter().enumerate() {
                let addr = if i == 0 { ip } else { ip.wrapping_sub(1) };
                let loc = self.user_location(s.tgid, addr, tracker, symbolizer);
                if self.runs_python(loc) {
                    if let Some(group) = groups.next() {
                        for code in group {
                            let l = self.python_location(s.tgid, code, symbolizer);
                            stack.push(l);
                        }
                        continue;
                    }
                }
                stack.push(loc);
            }
            // Python frames whose interpreter frames were not unwound go
            // at the root, in order.
            for group in groups {
                for code in group {
                    let l = self.python_location(s.tgid, code, symbolizer);
                    stack.push(l);
                }
            }
            self.frames += stack.len() as u64 * weight;
            self.named_frames += stack
                .iter()
                .filter(|&&l| !self.profile.locations()[l as usize].lines.is_empty())
                .count() as u64
                * weight;
            let stack_id = self.profile.add_stack(&stack);
            let labels = self.labels(s, tracker);
            let count = s.count as i64;
            if alloc {
                if s.flags & crate::alloc::SAMPLE_F_INUSE != 0 {
                    self.inuse.push((stack_id, labels, alloc_values(s)));
                } else {
                    self.profile.add_sample(stack_id, labels, &alloc_values(s));
                    self.samples += weight;
                }
                continue;
            }
            if let Some(c) = self.lock {
                let every = c.sample_every as i64;
                let waits = (s.events as i64).saturating_mul(every);
                let ns = count.saturating_mul(every);
                self.profile.add_sample(stack_id, labels, &[waits, ns]);
                self.samples += weight;
                continue;
            }
            match self.offcpu {
                // The kernel scaled it by the 1-in-N rate it was recorded
                // at (which the budget may change while a profile runs).
                Some(_) if off_record => {
                    self.profile.add_sample(stack_id, labels, &[count]);
                }
                // The wall view's on-CPU part.
                Some(_) => {
                    let ns = count.saturating_mul(self.period_ns);
                    self.profile.add_sample(stack_id, labels, &[ns]);
                }
                None => self
                    .profile
                    .add_sample(stack_id, labels, &[count, count * self.period_ns]),
            }
            self.samples += weight;
        }
    }

    /// The period of the CPU samples added from now on (the budget
    /// changes it while a profile runs): each is weighted by its own.
    pub fn set_period_ns(&mut self, period_ns: u64) {
        if self.offcpu.is_none() || self.wall {
            self.period_ns = period_ns.max(1) as i64;
        }
    }

    /// The 1-in-N sampling of the lock records added from now on (the
    /// budget changes it while a profile runs): each is scaled by its own.
    pub fn set_lock_every(&mut self, every: u32) {
        if let Some(c) = &mut self.lock {
            c.sample_every = every.max(1);
        }
    }

    /// In use at the latest snapshot by stack: the process name, then the
    /// frames root first (threads of a process summed), in bytes.
    pub fn inuse_by_stack(&self) -> Vec<(Vec<String>, i64)> {
        let mut by: HashMap<Vec<String>, i64> = HashMap::new();
        for &(stack, set, values) in &self.inuse {
            let process = self
                .profile
                .label_set(set)
                .iter()
                .find(|(k, _)| k == labels::PROCESS_NAME)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let names: Vec<String> = std::iter::once(process)
                .chain(
                    self.profile
                        .stack(stack)
                        .iter()
                        .rev()
                        .map(|&l| self.profile.location_name(l).to_string()),
                )
                .collect();
            *by.entry(names).or_default() += values[3];
        }
        by.into_iter().collect()
    }

    /// Adds a line to the profile's comments (how it was collected).
    pub fn add_comment(&mut self, line: String) {
        self.profile.comments.push(line);
    }

    /// Drops the in-use samples given so far: a newer snapshot follows.
    pub fn clear_inuse(&mut self) {
        self.inuse.clear();
    }

    fn kind(&self) -> Kind {
        if self.lock.is_some() {
            Kind::Lock
        } else if self.alloc {
            Kind::Alloc
        } else if self.wall {
            Kind::Wall
        } else if self.offcpu.is_some() {
            Kind::OffCpu
        } else {
            Kind::Cpu
        }
    }

    pub fn finish(mut self, duration_nanos: i64) -> Profile {
        for (stack, labels, values) in std::mem::take(&mut self.inuse) {
            self.profile.add_sample(stack, labels, &values);
        }
        self.profile.duration_nanos = duration_nanos;
        self.profile
    }

    /// Registers unknown processes and names every new address of this
    /// drain in batches (one blazesym call per object).
    fn resolve_all(
        &mut self,
        drained: &Drained,
        tracker: &mut Tracker,
        symbolizer: &mut Symbolizer,
    ) {
        symbolizer.trim();
        let mut per_object: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut kernel_addrs = Vec::new();
        let kind = self.kind();
        for s in drained.samples.iter().filter(|s| takes(kind, s)) {
            if let Some(k) = drained.stacks.get(&s.kernel_stack) {
                for (i, &ip) in k.iter().enumerate() {
                    let addr = if i == 0 { ip } else { ip.wrapping_sub(1) };
                    if !self.locations.contains_key(&LocKey::Kernel(addr)) {
                        kernel_addrs.push(addr);
                    }
                }
            }
            if let Some(u) = drained.stacks.get(&s.user_stack) {
                for (i, &ip) in u.iter().enumerate() {
                    let addr = if i == 0 { ip } else { ip.wrapping_sub(1) };
                    if let Resolved::Object { object, vaddr } = tracker.resolve(s.tgid, addr) {
                        per_object.entry(object).or_default().push(vaddr);
                    }
                }
            }
        }
        symbolizer.resolve_kernel(&kernel_addrs);
        for (object, vaddrs) in per_object {
            if let Some(info) = tracker.object(object) {
                symbolizer.resolve_object(info, &vaddrs);
            }
        }
    }

    fn kernel_location(&mut self, addr: u64, symbolizer: &Symbolizer) -> LocationId {
        let key = LocKey::Kernel(addr);
        if let Some(&l) = self.locations.get(&key) {
            return l;
        }
        let mapping = *self.kernel_mapping.get_or_insert_with(|| {
            self.profile.add_mapping(Mapping {
                file: "[kernel.kallsyms]".into(),
                ..Default::default()
            })
        });
        let names = symbolizer.cached_kernel(addr).cloned().flatten();
        let loc = self.intern_location(mapping, addr, names.as_deref());
        self.locations.insert(key, loc);
        loc
    }

    fn user_location(
        &mut self,
        pid: u32,
        addr: u64,
        tracker: &mut Tracker,
        symbolizer: &Symbolizer,
    ) -> LocationId {
        match tracker.resolve(pid, addr) {
            Resolved::Object { object, vaddr } => {
                let Some(info) = tracker.object(object) else {
                    return self.anonymous_location(pid, addr, None);
                };
                let key = LocKey::User(info.key, vaddr);
                if let Some(&l) = self.locations.get(&key) {
                    return l;
                }
                let mapping = match self.mappings.get(&info.key) {
                    Some(&m) => m,
                    None => {
                        let m = self.profile.add_mapping(Mapping {
                            file: info.path.clone(),
                            build_id: info.build_id.clone().unwrap_or_default(),
                            ..Default::default()
                        });
                        self.mappings.insert(info.key, m);
                        m
                    }
                };
                let names: Names = symbolizer.cached(info.key, vaddr).cloned().flatten();
                let loc = self.intern_location(mapping, vaddr, names.as_deref());
                self.locations.insert(key, loc);
                loc
            }
            Resolved::Anonymous => {
                let name = tracker.jit_symbol(pid, addr);
                self.anonymous_location(pid, addr, name)
            }
            Resolved::Unmapped => self.anonymous_location(pid, addr, None),
        }
    }

    fn python_location(&mut self, pid: u32, code: u64, symbolizer: &Symbolizer) -> LocationId {
        let key = LocKey::Python(pid, code);
        if let Some(&l) = self.locations.get(&key) {
            return l;
        }
        let mapping = *self.python_mapping.get_or_insert_with(|| {
            self.profile.add_mapping(Mapping {
                file: "[python]".into(),
                ..Default::default()
            })
        });
        let names = symbolizer.cached_python(pid, code).cloned().flatten();
        let loc = match names.as_deref() {
            Some([f]) => {
                let function = self.profile.add_function(Function {
                    name: f.name.clone(),
                    system_name: f.name.clone(),
                    file: f.file.clone().unwrap_or_default(),
                    start_line: f.line as i64,
                });
                self.profile.add_location(Location {
                    mapping: Some(mapping),
                    address: code,
                    lines: vec![Line { function, line: 0 }],
                })
            }
            _ => self.intern_location(mapping, code, None),
        };
        self.locations.insert(key, loc);
        loc
    }

    fn anonymous_location(&mut self, pid: u32, addr: u64, name: Option<String>) -> LocationId {
        let key = LocKey::Anonymous(pid, addr);
        if let Some(&l) = self.locations.get(&key) {
            return l;
        }
        let mapping = *self.anon_mapping.get_or_insert_with(|| {
            self.profile.add_mapping(Mapping {
                file: "[anon]".into(),
                ..Default::default()
            })
        });
        let frames = name.map(|n| {
            vec![crate::symbolize::FrameInfo {
                name: n,
                file: None,
                line: 0,
            }]
        });
        let loc = self.intern_location(mapping, addr, frames.as_deref());
        self.locations.insert(key, loc);
        loc
    }

    fn intern_location(
        &mut self,
        mapping: MappingId,
        address: u64,
        names: Option<&[crate::symbolize::FrameInfo]>,
    ) -> LocationId {
        let lines = names
            .unwrap_or(&[])
            .iter()
            .map(|f| Line {
                function: self.profile.add_function(Function {
                    name: f.name.clone(),
                    system_name: f.name.clone(),
                    file: f.file.clone().unwrap_or_default(),
                    start_line: 0,
                }),
                line: f.line as i64,
            })
            .collect();
        self.profile.add_location(Location {
            mapping: Some(mapping),
            address,
            lines,
        })
    }

    fn labels(&mut self, s: &RawSample, tracker: &Tracker) -> u32 {
        let key = (s.tgid, s.tid, s.comm);
        if let Some(&id) = self.label_sets.get(&key) {
            return id;
        }
        let mut set: Vec<(&str, String)> = Vec::with_capacity(12);
        if self.pid_labels {
            set.push((labels::PID, s.tgid.to_string()));
            set.push((labels::TID, s.tid.to_string()));
        }
        set.push((labels::THREAD_NAME, s.comm().to_string()));
        match tracker.process(s.tgid) {
            Some(p) => {
                let name = if p.comm.is_empty() {
                    s.comm().to_string()
                } else {
                    p.comm.clone()
                };
                set.push((
                    labels::SERVICE_NAME,
                    service_name(p.cgroup_labels.systemd_unit.as_deref(), &name),
                ));
                set.push((labels::PROCESS_NAME, name));
                if let Some(exe) = &p.exe {
                    set.push((labels::EXE, exe.clone()));
                }
                if let Some(b) = &p.build_id {
                    set.push((labels::BUILD_ID, b.clone()));
                }
                if let Some(c) = &p.cgroup {
                    set.push((labels::CGROUP, c.clone()));
                }
                let cl = &p.cgroup_labels;
                if let Some(c) = &cl.container_id {
                    set.push((labels::CONTAINER_ID, c.clone()));
                }
                if let Some(u) = &cl.systemd_unit {
                    set.push((labels::SYSTEMD_UNIT, u.clone()));
                }
                if let Some(u) = &cl.pod_uid {
                    set.push((labels::POD_UID, u.clone()));
                }
            }
            None => {
                set.push((labels::SERVICE_NAME, s.comm().to_string()));
                set.push((labels::PROCESS_NAME, s.comm().to_string()));
            }
        }
        let id = self.profile.add_label_set(set);
        self.label_sets.insert(key, id);
        id
    }
}

/// The service a process belongs to: its systemd service (not a user's
/// session manager), else its name.
fn service_name(unit: Option<&str>, process_name: &str) -> String {
    match unit.and_then(|u| u.strip_suffix(".service")) {
        Some(u) if !u.starts_with("user@") => u.to_string(),
        _ => process_name.to_string(),
    }
}

/// Splits a Python stack (code object addresses, bit 0 set on frames
/// entered from C; leaf first) into the groups each interpreter call ran.
fn python_groups(stack: &[u64]) -> Vec<Vec<u64>> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    for &entry in stack {
        current.push(entry & !1);
        if entry & 1 != 0 {
            groups.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Which profile a builder makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cpu,
    OffCpu,
    Wall,
    Lock,
    Alloc,
}

/// Whether a drained record belongs in a builder's profile: lock records
/// in the lock profile only, allocations (not frees) in the allocation
/// profile only; the wall view takes every other record, the off-CPU
/// profile blocks of at least the minimum, the CPU one samples.
fn takes(kind: Kind, s: &RawSample) -> bool {
    let lock = s.flags & SAMPLE_F_LOCK != 0;
    let alloc = s.flags & SAMPLE_F_ALLOC != 0;
    match kind {
        Kind::Lock => lock,
        Kind::Alloc => s.flags & (SAMPLE_F_ALLOC | SAMPLE_F_ALLOC_FREE) == SAMPLE_F_ALLOC,
        _ if lock || alloc => false,
        Kind::Wall => true,
        _ if s.flags & (SAMPLE_F_RUNNABLE | SAMPLE_F_SHORT) != 0 => false,
        Kind::OffCpu => s.flags & SAMPLE_F_OFFCPU != 0,
        Kind::Cpu => s.flags & SAMPLE_F_OFFCPU == 0,
    }
}

/// An allocation record's values: [alloc_objects, alloc_space,
/// inuse_objects, inuse_space].
fn alloc_values(s: &RawSample) -> [i64; 4] {
    let inuse = s.flags & crate::alloc::SAMPLE_F_INUSE != 0;
    let mut v = [0i64; 4];
    let slot = usize::from(inuse) * 2;
    if s.flags & SAMPLE_F_ALLOC_OBJECTS != 0 {
        let one = crate::alloc::ALLOC_OBJECT_ONE;
        v[slot] = ((s.count + one / 2) / one) as i64;
    } else {
        v[slot + 1] = s.count as i64;
    }
    v
}

fn count_flags(s: &RawSample, n: u64, f: &mut SampleFlags) {
    use perfpilot_bpf::*;
    if s.flags & SAMPLE_F_TRUNCATED != 0 {
        f.truncated += n;
    }
    if s.flags & SAMPLE_F_FP_ONLY != 0 {
        f.fp_only += n;
    }
    if s.flags & SAMPLE_F_READ_ERROR != 0 {
        f.read_error += n;
    }
    if s.flags & SAMPLE_F_NO_UNWIND_INFO != 0 {
        f.no_unwind_info += n;
    }
    if s.flags & SAMPLE_F_STACK_LOST != 0 {
        f.stack_lost += n;
    }
    if s.flags & SAMPLE_F_PY_NO_THREAD != 0 {
        f.python_no_thread += n;
    }
}

#[cfg(test)]
mod tests {
    use super::{python_groups, service_name, ProfileBuilder, SampleFlags};
    use crate::symbolize::Symbolizer;
    use crate::tracker::Tracker;
    use perfpilot_bpf::{
        Drained, LockConfig, OffCpuConfig, RawSample, SAMPLE_F_LOCK, SAMPLE_F_OFFCPU,
        SAMPLE_F_RUNNABLE, SAMPLE_F_SHORT,
    };
    use perfpilot_model::labels;

    /// 1,000 short-lived processes of one program, two threads each.
    fn churn() -> Drained {
        let mut d = Drained::default();
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"worker");
        for pid in 10_000..11_000 {
            for tid in [pid, pid + 100_000] {
                d.samples.push(RawSample {
                    tgid: pid,
                    tid,
                    user_stack: 0,
                    kernel_stack: 0,
                    python_stack: 0,
                    flags: 0,
                    count: 1,
                    events: 1,
                    comm,
                });
            }
        }
        d
    }

    fn label_sets(pid_labels: bool) -> Vec<Vec<(String, String)>> {
        let mut b = ProfileBuilder::new(99, 0).with_pid_labels(pid_labels);
        let mut tracker = Tracker::new(0);
        b.add(
            &churn(),
            &mut tracker,
            &mut Symbolizer::new(),
            &mut SampleFlags::default(),
        );
        let p = b.finish(1);
        let mut used: Vec<_> = p
            .samples()
            .iter()
            .map(|s| p.label_sets()[s.labels as usize].clone())
            .collect();
        used.sort();
        used.dedup();
        used
    }

    #[test]
    fn without_pid_labels_processes_of_a_program_share_label_sets() {
        let sets = label_sets(false);
        assert_eq!(sets.len(), 1, "{:?}", &sets[..sets.len().min(3)]);
        assert!(sets[0]
            .iter()
            .all(|(k, _)| k != labels::PID && k != labels::TID));
        assert!(sets[0]
            .iter()
            .any(|(k, v)| k == labels::PROCESS_NAME && v == "worker"));
        // With them, each thread of each process is a set (a series).
        assert_eq!(label_sets(true).len(), 2000);
    }

    #[test]
    fn offcpu_records_go_to_the_offcpu_profile_as_the_kernel_scaled_them() {
        let mut d = churn();
        d.samples.truncate(2);
        d.samples[1].flags = SAMPLE_F_OFFCPU;
        // 5 ms blocked, recorded 1 in 4: the kernel counted 20 ms.
        d.samples[1].count = 20_000_000;
        let config = OffCpuConfig {
            min_block_ns: 2_000_000,
            sample_every: 4,
            wall: false,
        };
        let mut tracker = Tracker::new(0);
        let mut symbolizer = Symbolizer::new();
        let mut flags = SampleFlags::default();
        let mut cpu = ProfileBuilder::new(99, 0);
        let mut off = ProfileBuilder::new_offcpu(config, 0);
        cpu.add(&d, &mut tracker, &mut symbolizer, &mut flags);
        off.add(&d, &mut tracker, &mut symbolizer, &mut flags);
        let (cpu, off) = (cpu.finish(1), off.finish(1));
        assert_eq!(cpu.samples().len(), 1);
        assert_eq!(cpu.samples()[0].values, [1, 1_000_000_000 / 99]);
        assert_eq!(off.sample_types.len(), 1);
        assert_eq!(off.sample_types[0].kind, "off_cpu");
        assert_eq!(off.sample_types[0].unit, "nanoseconds");
        assert_eq!(off.samples().len(), 1);
        assert_eq!(off.samples()[0].values, [20_000_000]);
        let comments = off.comments.join("\n");
        assert!(comments.contains("shorter than 2000000 ns"), "{comments}");
        assert!(comments.contains("1 in 4 blocking switches"), "{comments}");
    }

    /// Allocation records go to the allocation profile only, bytes and
    /// objects in their slots, frees nowhere; in use comes from the last
    /// snapshot given, at the end.
    #[test]
    fn allocation_records_fill_the_four_memory_types() {
        use perfpilot_bpf::{SAMPLE_F_ALLOC, SAMPLE_F_ALLOC_FREE, SAMPLE_F_ALLOC_OBJECTS};
        let mut d = churn();
        d.samples.truncate(4);
        d.samples[1].flags = SAMPLE_F_ALLOC;
        d.samples[1].count = 600_000;
        d.samples[2].flags = SAMPLE_F_ALLOC | SAMPLE_F_ALLOC_OBJECTS;
        d.samples[2].count = 3 * 1024 + 100;
        d.samples[3].flags = SAMPLE_F_ALLOC | SAMPLE_F_ALLOC_FREE;
        d.samples[3].count = 999;
        let mut tracker = Tracker::new(0);
        let mut symbolizer = Symbolizer::new();
        let mut flags = SampleFlags::default();
        let mut cpu = ProfileBuilder::new(99, 0);
        let config = crate::alloc::AllocConfig::default();
        let mut alloc = ProfileBuilder::new_alloc(config, 0);
        cpu.add(&d, &mut tracker, &mut symbolizer, &mut flags);
        alloc.add(&d, &mut tracker, &mut symbolizer, &mut flags);
        let mut held = d.samples[1];
        held.flags |= crate::alloc::SAMPLE_F_INUSE;
        held.count = 1;
        let old = Drained {
            samples: vec![held],
            ..Drained::default()
        };
        held.count = 400_000;
        let last = Drained {
            samples: vec![held],
            ..Drained::default()
        };
        for snapshot in [&old, &last] {
            alloc.clear_inuse();
            alloc.add(snapshot, &mut tracker, &mut symbolizer, &mut flags);
        }
        let (cpu, alloc) = (cpu.finish(1), alloc.finish(1));
        assert_eq!(cpu.samples().len(), 1);
        let types: Vec<&str> = alloc.sample_types.iter().map(|t| t.kind.as_str()).collect();
        use super::{ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE};
        assert_eq!(
            types,
            [ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE]
        );
        assert_eq!(alloc.period, 512 * 1024);
        let values: Vec<&[i64]> = alloc
            .samples()
            .iter()
            .map(|s| s.values.as_slice())
            .collect();
        // One stack and label set: its allocation and in use are one sample.
        assert_eq!(values, [&[0, 600_000, 0, 400_000][..], &[3, 0, 0, 0]]);
    }

    #[test]
    fn lock_records_go_to_the_lock_profile_only_with_waits_and_delay() {
        let mut d = churn();
        d.samples.truncate(3);
        d.samples[1].flags = SAMPLE_F_LOCK;
        d.samples[1].count = 7_000_000; // nanoseconds waited
        d.samples[1].events = 3; // waits
        d.samples[2].flags = SAMPLE_F_OFFCPU;
        d.samples[2].count = 5_000_000;
        let config = LockConfig {
            min_wait_ns: 10_000,
            sample_every: 2,
        };
        let mut tracker = Tracker::new(0);
        let mut symbolizer = Symbolizer::new();
        let mut flags = SampleFlags::default();
        let mut cpu = ProfileBuilder::new(99, 0);
        let mut off = ProfileBuilder::new_offcpu(OffCpuConfig::default(), 0);
        let mut wall = ProfileBuilder::new_wall(99, OffCpuConfig::default(), 0);
        let mut lock = ProfileBuilder::new_lock(config, 0);
        for b in [&mut cpu, &mut off, &mut wall, &mut lock] {
            b.add(&d, &mut tracker, &mut symbolizer, &mut flags);
        }
        // Only the lock profile has the lock record; the others keep theirs.
        assert_eq!(cpu.finish(1).samples().len(), 1);
        assert_eq!(off.finish(1).samples().len(), 1);
        assert_eq!(wall.finish(1).samples().len(), 2);
        let lock = lock.finish(1);
        let types: Vec<_> = lock
            .sample_types
            .iter()
            .map(|t| (t.kind.as_str(), t.unit.as_str()))
            .collect();
        assert_eq!(types, [("contentions", "count"), ("delay", "nanoseconds")]);
        let period = lock.period_type.as_ref().unwrap();
        assert_eq!(
            (period.kind.as_str(), period.unit.as_str()),
            ("contentions", "count")
        );
        assert_eq!(lock.samples().len(), 1);
        assert_eq!(lock.samples()[0].values, [6, 14_000_000]);
        let comments = lock.comments.join("\n");
        assert!(comments.contains("shorter than 10000 ns"), "{comments}");
        assert!(comments.contains("1 in 2 futex waits"), "{comments}");
    }

    #[test]
    fn the_wall_view_takes_every_record_and_off_cpu_only_long_blocks() {
        let mut d = churn();
        d.samples.truncate(4);
        // A CPU sample, a block, a runnable wait, a short block.
        let flags = [
            0,
            SAMPLE_F_OFFCPU,
            SAMPLE_F_OFFCPU | SAMPLE_F_RUNNABLE,
            SAMPLE_F_OFFCPU | SAMPLE_F_SHORT,
        ];
        let counts = [2, 5_000_000, 300_000, 400_000];
        for (s, (f, c)) in d.samples.iter_mut().zip(flags.iter().zip(counts)) {
            s.flags = *f;
            s.count = c;
        }
        let config = OffCpuConfig {
            wall: true,
            ..OffCpuConfig::default()
        };
        let mut tracker = Tracker::new(0);
        let mut symbolizer = Symbolizer::new();
        let mut flags = SampleFlags::default();
        let mut off = ProfileBuilder::new_offcpu(config, 0);
        let mut wall = ProfileBuilder::new_wall(100, config, 0);
        off.add(&d, &mut tracker, &mut symbolizer, &mut flags);
        wall.add(&d, &mut tracker, &mut symbolizer, &mut flags);
        let (off, wall) = (off.finish(1), wall.finish(1));
        let values = |p: &perfpilot_model::Profile| -> Vec<i64> {
            p.samples().iter().map(|s| s.values[0]).collect()
        };
        assert_eq!(values(&off), [5_000_000]);
        // Two samples at 100 Hz are 20 ms on CPU.
        assert_eq!(values(&wall), [20_000_000, 5_000_000, 300_000, 400_000]);
        assert_eq!(wall.sample_types[0].kind, "wall");
    }

    #[test]
    fn services_are_units_or_process_names() {
        assert_eq!(service_name(Some("nginx.service"), "nginx"), "nginx");
        assert_eq!(service_name(Some("user@0.service"), "bash"), "bash");
        assert_eq!(service_name(Some("session-3.scope"), "vim"), "vim");
        assert_eq!(service_name(None, "app"), "app");
    }

    #[test]
    fn python_frames_group_at_entry_frames() {
        // leaf, mid (entry), driver, main (entry), module (entry)
        let stack = [0x100, 0x201, 0x300, 0x401, 0x501];
        assert_eq!(
            python_groups(&stack),
            vec![vec![0x100, 0x200], vec![0x300, 0x400], vec![0x500]]
        );
        // A walk cut short keeps its last, open group.
        assert_eq!(python_groups(&[0x100, 0x200]), vec![vec![0x100, 0x200]]);
        assert!(python_groups(&[]).is_empty());
    }
}
