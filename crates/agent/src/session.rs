//! A sampling session: the BPF sampler plus everything that turns its
//! output into labelled, named profiles.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perfpilot_bpf::{BpfError, Drained, Event, RawStacks, Sampler, SamplerConfig, SamplerStats};
pub use perfpilot_bpf::{LockConfig, OffCpuConfig};
use perfpilot_model::Profile;
use thiserror::Error;

use crate::aggregate::{ProfileBuilder, SampleFlags};
use crate::budget::{Collector, Controller, Decision, Knob};
use crate::capture::{CaptureStats, Captures};
use crate::late::{LateConfig, LateStats, LateUnwinder};
use crate::symbolize::{Symbolizer, SymbolizerStats};
use crate::tables::TableTarget;
use crate::tracker::{Tracker, TrackerStats};

#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("process {0} does not exist")]
    NoSuchProcess(u32),
    // The daemon's errors (crate::daemon). The source carries the detail.
    #[error("cannot prepare the spool")]
    SpoolSetup(#[source] crate::ship::ShipError),
    #[error("cannot spool a profile")]
    Ship(#[source] crate::ship::ShipError),
    #[error("cannot start a thread")]
    Thread(#[source] std::io::Error),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

/// What to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every process on the host.
    Host,
    /// These processes only.
    Pids(Vec<u32>),
    /// These processes and every process they start.
    Tree(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub frequency_hz: u64,
    pub scope: Scope,
    pub include_idle: bool,
    pub kernel_stacks: bool,
    /// Most unwind rows kept in the kernel (12 bytes a row); objects
    /// beyond it fall back to frame pointers.
    pub unwind_rows: u64,
    /// Samples taken before their process's tables were loaded have their
    /// stack copied for unwinding in user space: a burst at first, then at
    /// most this many per process per second (0: frame pointers for them
    /// instead).
    pub raw_stack_rate: u32,
    /// Most bytes of such copies held while their tables are built.
    pub raw_stack_memory: usize,
    /// Copy every sample's stack besides unwinding it in the kernel (to
    /// compare the two unwinders; see [`Session::take_raw_stacks`]).
    pub raw_stacks_always: bool,
    /// Objects whose DWARF is larger are named from their symbol table
    /// only (see [`Symbolizer::with_max_dwarf_bytes`]).
    pub max_dwarf_bytes: u64,
    /// What blazesym keeps parsed, in bytes of the sections it read (see
    /// [`Symbolizer::with_symbol_cache_bytes`]).
    pub symbol_cache_bytes: u64,
    /// Label samples with their pid and tid. A recording wants them; a
    /// server would make every process and thread a series of its own.
    pub pid_labels: bool,
    /// Sample on-CPU stacks (the CPU profile).
    pub cpu: bool,
    /// Record off-CPU time too (the off-CPU profile).
    pub offcpu: Option<OffCpuConfig>,
    /// The wall view (on- plus off-CPU time per thread), with the
    /// off-CPU settings of `offcpu` (or their defaults when it is `None`);
    /// it samples CPU and records every switch, whichever profiles are
    /// asked for.
    pub wall: bool,
    /// Most CPU the profiler may use, in percent of one core (its own CPU
    /// time plus its BPF programs' run time); over it, collectors sample
    /// less (see [`crate::budget`]). `None`: no budget.
    pub max_cpu_percent: Option<f64>,
    /// Allocation profiles: uprobes on the C library's allocator.
    pub alloc: Option<crate::alloc::AllocConfig>,
    /// Record lock contention, futex waits (the lock profile).
    pub lock: Option<LockConfig>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            frequency_hz: 99,
            scope: Scope::Host,
            include_idle: false,
            kernel_stacks: true,
            unwind_rows: 4 << 20,
            raw_stack_rate: 50,
            raw_stack_memory: LateConfig::default().max_held_bytes,
            raw_stacks_always: false,
            max_dwarf_bytes: crate::symbolize::DEFAULT_MAX_DWARF_BYTES,
            symbol_cache_bytes: crate::symbolize::DEFAULT_SYMBOL_CACHE_BYTES,
            pid_labels: true,
            cpu: true,
            offcpu: None,
            wall: false,
            max_cpu_percent: None,
            alloc: None,
            lock: None,
        }
    }
}

/// Counters of a whole session, for the end-of-run summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionReport {
    pub sampler: SamplerStats,
    pub tracker: TrackerStats,
    pub symbolizer: SymbolizerStats,
    /// Samples unwound in user space from copied stacks.
    pub late: LateStats,
    /// Processes read while they lived, for when they are gone.
    pub capture: CaptureStats,
    pub flags: SampleFlags,
    pub samples: u64,
    pub frames: u64,
    pub named_frames: u64,
    pub drains: u64,
    /// Off-CPU records (distinct blocked stacks per drain) and the
    /// nanoseconds they hold.
    pub offcpu_records: u64,
    pub offcpu_nanos: u64,
    /// The budget's shed factor now (1: nothing shed) and the changes it
    /// made.
    pub shed_factor: f64,
    pub shed_changes: u64,
    /// Time the kernel spent in the sampler's BPF programs (`None`: the
    /// kernel keeps no such statistics).
    pub bpf_run_nanos: Option<u64>,
    /// The allocation probes' counters.
    pub alloc: crate::alloc::AllocStats,
    /// Allocator libraries probed.
    pub alloc_libraries: u64,
    /// Estimated bytes allocated (sampled allocations' weights).
    pub alloc_bytes: u64,
    /// Estimated bytes held by sampled allocations not freed, at the last
    /// drain.
    pub inuse_bytes: u64,
    /// Times the allocation probes were detached to keep within
    /// `max_probe_rate`, and the time they were detached.
    pub alloc_detached: u64,
    pub alloc_detached_ns: u64,
    /// Lock records (distinct waiting stacks per drain), the futex waits
    /// and the nanoseconds they hold (before 1-in-N scaling).
    pub lock_records: u64,
    pub lock_waits: u64,
    pub lock_nanos: u64,
}

impl SessionReport {
    /// Share of sampled frames (weighted by samples) that got a name.
    pub fn named_share(&self) -> f64 {
        if self.frames == 0 {
            return 0.0;
        }
        self.named_frames as f64 / self.frames as f64
    }
}

pub struct Session {
    sampler: Sampler,
    tracker: Tracker,
    symbolizer: Symbolizer,
    builder: ProfileBuilder,
    offcpu_builder: Option<ProfileBuilder>,
    wall_builder: Option<ProfileBuilder>,
    alloc_builder: Option<ProfileBuilder>,
    /// What sampled allocations hold, across profiles.
    inuse: crate::alloc::InUse,
    /// Processes that exec'd (or exited) since the last poll, whose
    /// addresses the kernel forgets.
    alloc_gone: std::collections::HashSet<u32>,
    /// Processes that exited: what they held stays in the profile being
    /// built (held at exit) and goes after it.
    alloc_exited: std::collections::HashSet<u32>,
    probe_budget: crate::alloc::ProbeBudget,
    lock_builder: Option<ProfileBuilder>,
    config: SessionConfig,
    drained: Drained,
    events: Vec<Event>,
    /// Processes to re-read shortly after exec, once the dynamic loader
    /// has mapped their libraries.
    refresh_at: Vec<(Instant, u32)>,
    /// New processes to read once they have lived [`REGISTER_AFTER`]
    /// (sooner when sampled): most short-lived ones exit before, and
    /// reading /proc for each of them was most of the agent's cost under
    /// process churn.
    register_at: Vec<(Instant, u32)>,
    raw: RawStacks,
    late: LateUnwinder,
    captures: Captures,
    /// The next drain unwinds every copy held, ready or not.
    flush_late: bool,
    profile_started: Instant,
    report: SessionReport,
    budget: Option<Budget>,
    /// The memory caps' eviction counts last logged.
    evictions_logged: Evictions,
}

/// What the memory caps evicted so far (see [`Session::log_evictions`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Evictions {
    processes: u64,
    tables_unloaded: u64,
    tables_left_out: u64,
    symbol_caches: u64,
}

/// The budget's controller and where its last interval started.
struct Budget {
    controller: Controller,
    since: Instant,
    cost_since: u64,
}

/// How long to wait for events: at most `max`, until the next refresh
/// is due, and 10 ms while tables are being built (they are loaded as
/// soon as they are ready). Rounded up to whole milliseconds, the unit the
/// ring buffer's poll takes: a refresh due in 0.4 ms would otherwise make
/// it return at once, again and again until then (at 100 exec/s, a fifth
/// of a core spent polling).
fn poll_timeout(max: Duration, next_refresh: Option<Duration>, tables_pending: bool) -> Duration {
    let mut timeout = next_refresh.map_or(max, |r| max.min(r));
    if tables_pending {
        timeout = timeout.min(Duration::from_millis(10));
    }
    Duration::from_millis(timeout.as_micros().div_ceil(1000) as u64)
}

/// How long a new process lives before it is read unless sampled first.
/// A sampled one is read at its first sample; its stacks before its
/// tables load are copied and unwound later.
const REGISTER_AFTER: Duration = Duration::from_millis(20);

/// Most new processes waiting for [`REGISTER_AFTER`]; past it the newest
/// are left to be read at their first sample.
const MAX_WAITING: usize = 4096;

/// Removes the entries due by `now` and returns their processes.
fn take_due(waiting: &mut Vec<(Instant, u32)>, now: Instant) -> Vec<u32> {
    let due = waiting
        .iter()
        .filter(|(t, _)| *t <= now)
        .map(|(_, p)| *p)
        .collect();
    waiting.retain(|(t, _)| *t > now);
    due
}

/// Whether `pid` lives and can be profiled. Most new processes under
/// churn are gone when asked; a signal-0 kill says so without the cost
/// of opening /proc.
fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let gone = unsafe { libc::kill(raw, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    !gone && crate::procfs::process_exists(pid)
}

/// What the kernel records off CPU: the off-CPU profile's settings, with
/// the wall view's extra records when it is on.
fn kernel_offcpu(config: &SessionConfig) -> Option<OffCpuConfig> {
    if !config.wall {
        return config.offcpu;
    }
    Some(OffCpuConfig {
        wall: true,
        ..config.offcpu.unwrap_or_default()
    })
}

fn new_wall_builder(config: &SessionConfig) -> Option<ProfileBuilder> {
    let c = kernel_offcpu(config).filter(|_| config.wall)?;
    Some(
        ProfileBuilder::new_wall(config.frequency_hz, c, unix_nanos())
            .with_pid_labels(config.pid_labels),
    )
}

fn unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Session {
    pub fn start(config: SessionConfig) -> Result<Session, AgentError> {
        crate::memory::tune();
        let (targets, follow) = match &config.scope {
            Scope::Host => (None, false),
            Scope::Pids(p) => (Some(p.clone()), false),
            Scope::Tree(p) => (Some(p.clone()), true),
        };
        if let Some(pids) = &targets {
            for &pid in pids {
                if !crate::procfs::process_exists(pid) {
                    return Err(AgentError::NoSuchProcess(pid));
                }
            }
        }
        let mut sampler = Sampler::load(&SamplerConfig {
            frequency_hz: config.frequency_hz,
            include_idle: config.include_idle,
            targets: targets.clone(),
            follow_children: follow,
            kernel_stacks: config.kernel_stacks,
            user_stacks: true,
            raw_stack_rate: config.raw_stack_rate,
            raw_buffer_bytes: config.raw_stack_memory,
            raw_stacks_always: config.raw_stacks_always,
            cpu: config.cpu || config.wall,
            offcpu: kernel_offcpu(&config),
            alloc: config.alloc,
            lock: config.lock,
            ..Default::default()
        })?;
        let mut alloc_libraries = 0;
        if config.alloc.is_some() {
            // Probes for given processes spare every other process the
            // trap each call costs; the host is probed by file. (A
            // tree's later children are not probed: see ARCHITECTURE.)
            match &config.scope {
                Scope::Pids(pids) | Scope::Tree(pids) => {
                    for &pid in pids {
                        for lib in crate::alloc::allocator_libraries(&[pid]) {
                            sampler.attach_allocator(&lib, Some(pid))?;
                            alloc_libraries += 1;
                        }
                    }
                }
                Scope::Host => {
                    for lib in crate::alloc::allocator_libraries(&[]) {
                        sampler.attach_allocator(&lib, None)?;
                        alloc_libraries += 1;
                    }
                }
            }
        }
        let mut tracker = Tracker::with_table_target(config.unwind_rows, TableTarget::Kernel);
        // Processes are read at exec on the ring reader thread, so that
        // those gone before this loop reads them are still known.
        let captures = Captures::new();
        sampler.set_ring_hook(captures.hook());
        tracker.set_source(std::sync::Arc::new(captures.clone()));
        // Targets get their tables before the first sample is taken.
        for pid in targets.unwrap_or_default() {
            tracker.register(pid, &sampler);
        }
        tracker.wait_for_tables(Duration::from_secs(10), &sampler);
        sampler.start_sampling()?;
        let late = LateUnwinder::new(LateConfig {
            max_held_bytes: config.raw_stack_memory,
            ..LateConfig::default()
        });
        Ok(Session {
            sampler,
            tracker,
            symbolizer: Symbolizer::new()
                .with_max_dwarf_bytes(config.max_dwarf_bytes)
                .with_symbol_cache_bytes(config.symbol_cache_bytes),
            builder: ProfileBuilder::new(config.frequency_hz, unix_nanos())
                .with_pid_labels(config.pid_labels),
            offcpu_builder: config.offcpu.map(|c| {
                ProfileBuilder::new_offcpu(c, unix_nanos()).with_pid_labels(config.pid_labels)
            }),
            wall_builder: new_wall_builder(&config),
            alloc_builder: config.alloc.map(|c| {
                ProfileBuilder::new_alloc(c, unix_nanos()).with_pid_labels(config.pid_labels)
            }),
            inuse: crate::alloc::InUse::default(),
            alloc_gone: std::collections::HashSet::new(),
            alloc_exited: std::collections::HashSet::new(),
            probe_budget: crate::alloc::ProbeBudget::new(
                config.alloc.map_or(0, |a| a.max_probe_rate),
                Instant::now(),
            ),
            lock_builder: config.lock.map(|c| {
                ProfileBuilder::new_lock(c, unix_nanos()).with_pid_labels(config.pid_labels)
            }),
            config,
            drained: Drained::default(),
            events: Vec::new(),
            refresh_at: Vec::new(),
            register_at: Vec::new(),
            raw: RawStacks::default(),
            late,
            captures,
            flush_late: false,
            profile_started: Instant::now(),
            report: SessionReport {
                alloc_libraries,
                ..SessionReport::default()
            },
            budget: None,
            evictions_logged: Evictions::default(),
        }
        .with_budget())
    }

    /// Starts the budget's controller, with one knob per collector on.
    fn with_budget(mut self) -> Session {
        let Some(percent) = self.config.max_cpu_percent else {
            return self;
        };
        let mut knobs = Vec::new();
        if self.config.cpu || self.config.wall {
            knobs.push(Knob::cpu(self.config.frequency_hz));
        }
        if let Some(off) = kernel_offcpu(&self.config) {
            knobs.push(Knob::offcpu(off.sample_every));
        }
        if let Some(lock) = self.config.lock {
            knobs.push(Knob::lock(lock.sample_every));
        }
        self.budget = Some(Budget {
            controller: Controller::new(percent, knobs),
            since: Instant::now(),
            cost_since: self.cost_nanos(),
        });
        self
    }

    /// What the profiler has cost so far: its CPU time and its BPF
    /// programs' run time.
    fn cost_nanos(&self) -> u64 {
        crate::budget::own_cpu_nanos() + self.sampler.bpf_run_time_ns().unwrap_or(0)
    }

    /// Measures the interval since the last call, lets the controller
    /// decide, and gives the samplers its settings; logs when shedding
    /// starts, changes or stops.
    fn apply_budget(&mut self) {
        let cost = self.cost_nanos();
        let Some(b) = &mut self.budget else {
            return;
        };
        let now = Instant::now();
        let wall = now.duration_since(b.since).as_nanos() as u64;
        let spent = cost.saturating_sub(b.cost_since);
        b.since = now;
        b.cost_since = cost;
        let decision = b.controller.observe(wall, spent);
        if decision == Decision::Hold {
            return;
        }
        let budget = b.controller.max_cpu_percent();
        let settings: Vec<(Knob, u64)> = b
            .controller
            .knobs()
            .iter()
            .copied()
            .zip(b.controller.settings())
            .collect();
        let factor = b.controller.factor();
        let described = settings
            .iter()
            .map(|(k, s)| format!("{} {s} {}", k.collector.name(), k.unit))
            .collect::<Vec<_>>()
            .join(", ");
        match decision {
            Decision::Start { usage, .. } => tracing::info!(
                usage_percent = format!("{usage:.2}"),
                max_cpu_percent = budget,
                factor = format!("{factor:.2}"),
                "over the CPU budget: sampling less ({described})"
            ),
            Decision::Change { usage, .. } => tracing::info!(
                usage_percent = format!("{usage:.2}"),
                max_cpu_percent = budget,
                factor = format!("{factor:.2}"),
                "CPU budget: sampling at {described}"
            ),
            Decision::Stop { usage } => tracing::info!(
                usage_percent = format!("{usage:.2}"),
                max_cpu_percent = budget,
                "within the CPU budget again: sampling at full rate ({described})"
            ),
            Decision::Hold => {}
        }
        self.report.shed_changes += 1;
        for (knob, setting) in settings {
            let result = match knob.collector {
                Collector::Cpu => self.sampler.set_cpu_frequency(setting).map(|_| ()),
                Collector::OffCpu => self
                    .sampler
                    .set_offcpu_every(u32::try_from(setting).unwrap_or(u32::MAX)),
                Collector::Lock => match self.config.lock {
                    Some(c) => {
                        let c = LockConfig {
                            sample_every: u32::try_from(setting).unwrap_or(u32::MAX),
                            ..c
                        };
                        self.config.lock = Some(c);
                        self.sampler.set_lock_config(c)
                    }
                    None => Ok(()),
                },
                // Allocation probes' cost is per call, not per sample: their
                // own `max_probe_rate` bounds it, not this budget.
                Collector::Alloc => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, collector = knob.collector.name(), "cannot change the sampling rate");
            }
        }
    }

    /// Adds what the budget shed to a profile's comments.
    fn note_shedding(&mut self, profile: &mut Profile, collector: Collector) {
        if let Some(text) = self
            .budget
            .as_mut()
            .and_then(|b| b.controller.take_summary(collector))
        {
            profile.comments.push(text);
        }
    }

    /// Waits up to `timeout` for process events and handles them.
    pub fn poll(&mut self, timeout: Duration) {
        let next_refresh = self
            .refresh_at
            .iter()
            .chain(&self.register_at)
            .map(|(t, _)| *t)
            .min();
        let timeout = poll_timeout(
            timeout,
            next_refresh.map(|t| t.saturating_duration_since(Instant::now())),
            self.tracker.tables_pending(),
        );
        self.sampler.poll_events(timeout, &mut self.events);
        if !self.config.raw_stacks_always {
            self.sampler.take_raw_stacks(&mut self.raw);
            self.late.receive(&self.raw);
        }
        for event in std::mem::take(&mut self.events) {
            match event {
                Event::NewProcess(pid) => {
                    if !self.tracker.is_tracked(pid) {
                        self.tracker.register(pid, &self.sampler);
                    }
                }
                Event::MapsStale(pid) => self.tracker.refresh(pid, &self.sampler),
                Event::Exec(pid) if self.tracker.is_tracked(pid) => {
                    if self.config.alloc.is_some() {
                        self.alloc_gone.insert(pid);
                    }
                    // A new image of a known process: its old tables no
                    // longer apply.
                    self.tracker.register(pid, &self.sampler);
                    let now = Instant::now();
                    self.refresh_at.push((now + Duration::from_millis(20), pid));
                    self.refresh_at
                        .push((now + Duration::from_millis(250), pid));
                }
                Event::Exec(pid) => {
                    if self.config.alloc.is_some() {
                        self.alloc_gone.insert(pid);
                    }
                    if self.register_at.len() < MAX_WAITING
                        && !self.register_at.iter().any(|&(_, p)| p == pid)
                    {
                        self.register_at
                            .push((Instant::now() + REGISTER_AFTER, pid));
                    }
                }
                Event::Exit(pid) => {
                    self.register_at.retain(|&(_, p)| p != pid);
                    // Copied stacks of it still need its mappings.
                    if !self.late.process_exited(pid) {
                        self.exited(pid);
                    }
                }
            }
        }
        let now = Instant::now();
        for pid in take_due(&mut self.refresh_at, now) {
            self.tracker.refresh_live(pid, &self.sampler);
        }
        for pid in take_due(&mut self.register_at, now) {
            if !self.tracker.is_tracked(pid) && alive(pid) {
                self.tracker.register(pid, &self.sampler);
                // The dynamic loader may still be mapping libraries.
                self.refresh_at
                    .push((now + Duration::from_millis(230), pid));
            }
        }
        // Copies are unwound with mappings read after they were taken.
        for pid in self.late.to_read() {
            self.tracker.refresh(pid, &self.sampler);
            self.late.mark_read(pid);
        }
        self.tracker.poll_tables(Duration::ZERO, &self.sampler);
        self.symbolizer.forget_objects(&self.tracker.take_evicted());
        self.forget_allocations();
        if self.probe_budget.reattach_due(Instant::now()) {
            if let Err(e) = self.sampler.reattach_allocators() {
                tracing::warn!("attaching the allocation probes again: {e}");
            }
            let stats = self.sampler.alloc_stats();
            self.probe_budget
                .attached(Instant::now(), stats.calls * 2 + stats.frees);
        }
    }

    /// Drops what exec'd processes held: their memory went with the old
    /// image (an exited one's goes after the current profile). The
    /// kernel's addresses of a process are swept only when it held
    /// something here (a walk over the whole map).
    fn forget_allocations(&mut self) {
        if self.alloc_gone.is_empty() {
            return;
        }
        let gone = std::mem::take(&mut self.alloc_gone);
        let holding = self.inuse.processes();
        let held = gone.intersection(&holding).copied().collect();
        let execd: std::collections::HashSet<u32> =
            gone.difference(&self.alloc_exited).copied().collect();
        self.inuse.forget_processes(&execd);
        self.sampler.forget_allocations(&held);
    }

    /// Moves samples out of the kernel into the current profile.
    pub fn drain(&mut self) -> Result<(), AgentError> {
        self.drained.clear();
        // The samples about to be drained were taken at the period in
        // force until now; a new one applies to the next drain's.
        let period = self.sampler.cpu_period_ns();
        let lock_every = self.config.lock.map(|c| c.sample_every);
        self.apply_budget();
        self.builder.set_period_ns(period);
        if let Some(b) = &mut self.wall_builder {
            b.set_period_ns(period);
        }
        if let (Some(b), Some(every)) = (&mut self.lock_builder, lock_every) {
            b.set_lock_every(every);
        }
        let result = self.sampler.drain(&mut self.drained);
        let released = self.late.unwind(
            &self.tracker,
            &self.sampler,
            Instant::now(),
            self.flush_late,
            &mut self.drained,
        );
        for pid in released {
            self.exited(pid);
        }
        // Whatever was drained before an error is still used.
        for s in &self.drained.samples {
            if !self.tracker.is_tracked(s.tgid) {
                self.tracker.register(s.tgid, &self.sampler);
            }
        }
        for s in &self.drained.samples {
            let Some(py) = self.drained.stacks.get(&s.python_stack) else {
                continue;
            };
            for &entry in py {
                let code = entry & !1;
                let sampler = &self.sampler;
                self.symbolizer.resolve_python(s.tgid, code, || {
                    sampler
                        .python_name(s.tgid, code)
                        .map(|n| (n.qualname, n.filename, n.first_line))
                });
            }
        }
        let before = (
            self.builder.samples,
            self.builder.frames,
            self.builder.named_frames,
        );
        self.builder.add(
            &self.drained,
            &mut self.tracker,
            &mut self.symbolizer,
            &mut self.report.flags,
        );
        self.report.samples += self.builder.samples - before.0;
        self.report.frames += self.builder.frames - before.1;
        self.report.named_frames += self.builder.named_frames - before.2;
        if let Some(b) = &mut self.offcpu_builder {
            let records = b.samples;
            b.add(
                &self.drained,
                &mut self.tracker,
                &mut self.symbolizer,
                &mut self.report.flags,
            );
            self.report.offcpu_records += b.samples - records;
        }
        if let Some(b) = &mut self.wall_builder {
            b.add(
                &self.drained,
                &mut self.tracker,
                &mut self.symbolizer,
                &mut SampleFlags::default(),
            );
        }
        if let Some(b) = &mut self.alloc_builder {
            b.add(
                &self.drained,
                &mut self.tracker,
                &mut self.symbolizer,
                &mut SampleFlags::default(),
            );
            self.inuse.absorb(&self.drained);
            // In use is a snapshot, resolved now while its processes are
            // known; the last one before the profile ends is kept.
            b.clear_inuse();
            b.add(
                &self.inuse.snapshot(),
                &mut self.tracker,
                &mut self.symbolizer,
                &mut SampleFlags::default(),
            );
            use perfpilot_bpf::{SAMPLE_F_ALLOC, SAMPLE_F_ALLOC_FREE, SAMPLE_F_ALLOC_OBJECTS};
            let kind = SAMPLE_F_ALLOC | SAMPLE_F_ALLOC_FREE | SAMPLE_F_ALLOC_OBJECTS;
            self.report.alloc_bytes += self
                .drained
                .samples
                .iter()
                .filter(|s| s.flags & kind == SAMPLE_F_ALLOC)
                .map(|s| s.count)
                .sum::<u64>();
            self.report.inuse_bytes = self.inuse.bytes().max(0) as u64;
            let stats = self.sampler.alloc_stats();
            // A call traps at its entry and its return, a free at its entry.
            let hits = stats.calls * 2 + stats.frees;
            if self.probe_budget.over(Instant::now(), hits) {
                self.sampler.detach_allocators();
                // Frees go unseen while detached: in use starts again.
                self.inuse = crate::alloc::InUse::default();
                b.clear_inuse();
                self.report.alloc_detached += 1;
            }
        }
        if self.config.offcpu.is_some() {
            use perfpilot_bpf::{SAMPLE_F_OFFCPU, SAMPLE_F_RUNNABLE, SAMPLE_F_SHORT};
            self.report.offcpu_nanos += self
                .drained
                .samples
                .iter()
                .filter(|s| {
                    s.flags & (SAMPLE_F_OFFCPU | SAMPLE_F_RUNNABLE | SAMPLE_F_SHORT)
                        == SAMPLE_F_OFFCPU
                })
                .map(|s| s.count)
                .sum::<u64>();
        }
        if let Some(b) = &mut self.lock_builder {
            let records = b.samples;
            b.add(
                &self.drained,
                &mut self.tracker,
                &mut self.symbolizer,
                &mut SampleFlags::default(),
            );
            self.report.lock_records += b.samples - records;
            for s in &self.drained.samples {
                if s.flags & perfpilot_bpf::SAMPLE_F_LOCK != 0 {
                    self.report.lock_waits += s.events;
                    self.report.lock_nanos += s.count;
                }
            }
        }
        self.report.drains += 1;
        // What a drain freed goes back now and then (the walk over the
        // heaps is not free, and `up` shares them with the server).
        if self.report.drains.is_multiple_of(10) {
            crate::memory::trim();
            self.log_evictions();
        }
        let late = &self.late;
        for pid in self
            .tracker
            .reap_keeping(&self.sampler, |pid| late.holds(pid))
        {
            self.symbolizer.forget_process(pid);
            self.forget_target(pid);
        }
        self.symbolizer.forget_objects(&self.tracker.take_evicted());
        result.map_err(AgentError::from)
    }

    /// Logs what the memory caps evicted when it changed (checked every
    /// ten drains, so a cap evicting steadily costs a line per ten).
    fn log_evictions(&mut self) {
        let t = &self.tracker.stats;
        let now = Evictions {
            processes: t.processes_evicted,
            tables_unloaded: t.objects_evicted,
            tables_left_out: t.tables_dropped,
            symbol_caches: self.symbolizer.stats.symbol_cache_evictions,
        };
        if now == self.evictions_logged {
            return;
        }
        // The symbol cache evicting is routine on a busy host (objects
        // are parsed again when they have new addresses): at debug level
        // when it is all that changed.
        let routine = Evictions {
            symbol_caches: now.symbol_caches,
            ..self.evictions_logged
        } == now;
        self.evictions_logged = now;
        macro_rules! log_at {
            ($level:ident) => {
                tracing::$level!(
                    processes_forgotten = now.processes,
                    idle_tables_unloaded = now.tables_unloaded,
                    tables_left_out = now.tables_left_out,
                    symbol_cache_evictions = now.symbol_caches,
                    "memory caps evicted (totals so far)"
                )
            };
        }
        if routine {
            log_at!(debug);
        } else {
            log_at!(info);
        }
    }

    /// The last drain of a session: waits up to `limit` for the mappings
    /// and tables that copied stacks still need, then drains, unwinding
    /// every copy held.
    pub fn drain_final(&mut self, limit: Duration) -> Result<(), AgentError> {
        let end = Instant::now() + limit;
        self.poll(Duration::ZERO);
        while self.late.waiting(&self.tracker) && Instant::now() < end {
            self.poll(Duration::from_millis(10));
        }
        self.flush_late = true;
        let result = self.drain();
        self.flush_late = false;
        result
    }

    /// With [`SessionConfig::raw_stacks_always`]: the copies received so
    /// far (each with its in-kernel unwind, see
    /// [`RawStack::user_stack`](perfpilot_bpf::RawStack)), for comparing
    /// the two unwinders.
    pub fn take_raw_stacks(&mut self, out: &mut RawStacks) {
        self.sampler.take_raw_stacks(out);
    }

    /// The unwinder's view of a process's mappings and the kernel's
    /// tables, to unwind copies as [`late`](crate::late) does.
    pub fn unwind_view(&self) -> (&Tracker, &Sampler) {
        (&self.tracker, &self.sampler)
    }

    /// Turns the lock profile's knobs while it runs (for a CPU budget);
    /// profiles cut from now on say so in their comments. An error when
    /// the session has no lock profile.
    pub fn set_lock_config(&mut self, config: LockConfig) -> Result<(), AgentError> {
        if self.config.lock.is_none() {
            return Err(AgentError::from(perfpilot_bpf::BpfError::Load {
                what: "setting the lock profile's knobs".into(),
                message: "the session records no lock profile".into(),
            }));
        }
        self.sampler.set_lock_config(config)?;
        self.config.lock = Some(config);
        Ok(())
    }

    /// Ends the current CPU profile and starts a new one (off-CPU records
    /// stay for [`take_profiles`](Self::take_profiles)).
    pub fn take_profile(&mut self) -> Profile {
        let fresh = ProfileBuilder::new(self.config.frequency_hz, unix_nanos())
            .with_pid_labels(self.config.pid_labels);
        let old = std::mem::replace(&mut self.builder, fresh);
        let duration = self.profile_started.elapsed().as_nanos() as i64;
        self.profile_started = Instant::now();
        let mut profile = old.finish(duration);
        self.note_shedding(&mut profile, Collector::Cpu);
        if let Some(b) = &mut self.budget {
            b.controller.end_span();
        }
        profile
    }

    /// Ends the current profile of every enabled type (CPU, off-CPU,
    /// wall, lock) and starts new ones; each type is a profile of its own, as
    /// the server keeps each as its own profile type.
    pub fn take_profiles(&mut self) -> Vec<Profile> {
        let duration = self.profile_started.elapsed().as_nanos() as i64;
        let mut out = Vec::with_capacity(2);
        // The CPU summary is shared with the wall view; the measured cost
        // span ends with the last profile.
        let cpu_note = self
            .budget
            .as_mut()
            .and_then(|b| b.controller.take_summary(Collector::Cpu));
        let mut cpu = std::mem::replace(
            &mut self.builder,
            ProfileBuilder::new(self.config.frequency_hz, unix_nanos())
                .with_pid_labels(self.config.pid_labels),
        )
        .finish(duration);
        self.profile_started = Instant::now();
        let off_note = self
            .budget
            .as_mut()
            .and_then(|b| b.controller.take_summary(Collector::OffCpu));
        let lock_note = self
            .budget
            .as_mut()
            .and_then(|b| b.controller.take_summary(Collector::Lock));
        if let Some(b) = &mut self.budget {
            b.controller.end_span();
        }
        if self.config.cpu {
            cpu.comments.extend(cpu_note.clone());
            out.push(cpu);
        }
        if let (Some(b), Some(c)) = (&mut self.offcpu_builder, self.config.offcpu) {
            let fresh =
                ProfileBuilder::new_offcpu(c, unix_nanos()).with_pid_labels(self.config.pid_labels);
            let mut p = std::mem::replace(b, fresh).finish(duration);
            p.comments.extend(off_note.clone());
            out.push(p);
        }
        if let Some(b) = &mut self.wall_builder {
            if let Some(fresh) = new_wall_builder(&self.config) {
                let mut p = std::mem::replace(b, fresh).finish(duration);
                p.comments.extend(cpu_note);
                p.comments.extend(off_note);
                out.push(p);
            }
        }
        if let (Some(b), Some(c)) = (&mut self.alloc_builder, self.config.alloc) {
            let fresh =
                ProfileBuilder::new_alloc(c, unix_nanos()).with_pid_labels(self.config.pid_labels);
            // In use: the snapshot of the last drain.
            let mut old = std::mem::replace(b, fresh);
            let (detached, off) = self.probe_budget.take_interval(Instant::now());
            self.report.alloc_detached_ns += off.as_nanos() as u64;
            if detached > 0 || !off.is_zero() {
                old.add_comment(format!(
                    "allocation probes detached {detached} times, {:.1} s of {:.1} s, to keep \
                     their hits under {} a second: allocations then are not counted, and in \
                     use restarts at each re-attach (frees were unseen)",
                    off.as_secs_f64(),
                    duration as f64 / 1e9,
                    c.max_probe_rate
                ));
            }
            out.push(old.finish(duration));
            let exited = std::mem::take(&mut self.alloc_exited);
            self.inuse.forget_processes(&exited);
        }
        if let (Some(b), Some(c)) = (&mut self.lock_builder, self.config.lock) {
            let fresh =
                ProfileBuilder::new_lock(c, unix_nanos()).with_pid_labels(self.config.pid_labels);
            let mut p = std::mem::replace(b, fresh).finish(duration);
            p.comments.extend(lock_note);
            out.push(p);
        }
        out
    }

    /// In-use bytes by stack at the last drain (process name, then frames
    /// root first); empty without allocation profiles.
    pub fn inuse_by_stack(&self) -> Vec<(Vec<String>, i64)> {
        self.alloc_builder
            .as_ref()
            .map(|b| b.inuse_by_stack())
            .unwrap_or_default()
    }

    /// A process exited (its copied stacks, if any, unwound).
    fn exited(&mut self, pid: u32) {
        if self.config.alloc.is_some() {
            self.alloc_gone.insert(pid);
            self.alloc_exited.insert(pid);
        }
        // A process never tracked (a target's child that was never
        // sampled) has only its kernel entries to drop.
        if !self.tracker.mark_exited(pid) {
            self.sampler.remove_process(pid);
            self.forget_target(pid);
        }
    }

    /// Takes an exited process out of the set the kernel filters on.
    fn forget_target(&self, pid: u32) {
        if self.config.scope != Scope::Host {
            self.sampler.remove_target(pid);
        }
    }

    /// Whether `pid` is still sampled (a target, or a child of one).
    pub fn is_target(&self, pid: u32) -> bool {
        self.sampler.is_target(pid)
    }

    pub fn report(&self) -> SessionReport {
        SessionReport {
            sampler: self.sampler.stats(),
            tracker: self.tracker.stats,
            symbolizer: self.symbolizer.stats,
            late: self.late.stats,
            capture: self.captures.stats(),
            shed_factor: self.budget.as_ref().map_or(1.0, |b| b.controller.factor()),
            bpf_run_nanos: self.sampler.bpf_run_time_ns(),
            alloc: self.sampler.alloc_stats(),
            ..self.report
        }
    }
}

#[cfg(test)]
mod tests {
    use super::poll_timeout;
    use std::time::Duration;

    #[test]
    fn poll_timeouts_are_whole_milliseconds_that_never_round_to_zero_early() {
        let ms = Duration::from_millis;
        let max = ms(100);
        assert_eq!(poll_timeout(max, None, false), max);
        assert_eq!(
            poll_timeout(max, Some(Duration::from_micros(400)), false),
            ms(1)
        );
        assert_eq!(
            poll_timeout(max, Some(Duration::from_micros(1_001)), false),
            ms(2)
        );
        assert_eq!(
            poll_timeout(max, Some(Duration::ZERO), false),
            Duration::ZERO
        );
        assert_eq!(poll_timeout(max, Some(ms(30)), true), ms(10));
        assert_eq!(poll_timeout(ms(5), Some(ms(30)), true), ms(5));
    }
}
