//! The CPU budget: the profiler measures what it costs (its own CPU time
//! plus the time the kernel spends in its BPF programs, most of which is
//! charged to the profiled threads) and sheds load by sampling less.
//!
//! Every collector has one *knob*, a setting whose rate of work the budget
//! divides by a common *shed factor* (1: nothing shed):
//!
//! - a [`KnobKind::Rate`] is divided by it (the CPU sampler's frequency);
//! - a [`KnobKind::Interval`] is multiplied by it (off-CPU records one
//!   blocking switch in N; an allocation sampler's mean bytes between
//!   samples; a lock sampler's 1-in-N contentions).
//!
//! Each knob has a limit (a lowest rate, a longest interval) past which it
//! is never pushed, so a profile stays useful whatever the load; beyond
//! it that collector simply sheds no more. Every value a collector reports
//! must stay unbiased: it weights each sample by the setting it was taken
//! at (CPU samples by their period, off-CPU blocks by their N).
//!
//! Adding a collector: a [`Collector`] variant, a [`Knob`] in
//! [`crate::session::Session`]'s list built from its config, and one arm
//! in `Session::apply_budget` that gives the sampler the knob's setting.

use std::fmt::Write as _;

/// The profiler's default budget, in percent of one core: 1 % per 16
/// CPUs, at least 1 %. A profiler's work grows with the samples it takes,
/// which grow with the CPUs it samples, so the allowance does too; the
/// 1 % floor is what a small host can spare for always-on profiling.
pub fn default_max_cpu_percent(cpus: usize) -> f64 {
    (cpus as f64 / 16.0).max(1.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collector {
    Cpu,
    OffCpu,
    Alloc,
    Lock,
}

impl Collector {
    pub fn name(self) -> &'static str {
        match self {
            Collector::Cpu => "cpu",
            Collector::OffCpu => "offcpu",
            Collector::Alloc => "alloc",
            Collector::Lock => "lock",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobKind {
    /// Work per second is the setting (samples per second).
    Rate,
    /// Work per second is inverse to the setting (1 in N, bytes between
    /// samples).
    Interval,
}

/// One collector's rate setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knob {
    pub collector: Collector,
    pub kind: KnobKind,
    /// The setting asked for (nothing shed).
    pub base: u64,
    /// The lowest rate or longest interval the budget may set.
    pub limit: u64,
    /// What the setting means, for logs and profile comments ("Hz",
    /// "switches", "bytes").
    pub unit: &'static str,
}

impl Knob {
    /// The CPU sampler's frequency: never below 10 Hz (or the base, if
    /// lower), 20 samples a second on two busy CPUs.
    pub fn cpu(frequency_hz: u64) -> Knob {
        let base = frequency_hz.max(1);
        Knob {
            collector: Collector::Cpu,
            kind: KnobKind::Rate,
            base,
            limit: base.min(10),
            unit: "Hz",
        }
    }

    /// Off-CPU's 1-in-N switch sampling: at most 64 times the base N. The
    /// capture at a blocking switch (the stack walk) is the cost; the
    /// minimum block length does not save it (it is known only when the
    /// block ends), so it is not a knob.
    pub fn offcpu(sample_every: u32) -> Knob {
        let base = u64::from(sample_every.max(1));
        Knob {
            collector: Collector::OffCpu,
            kind: KnobKind::Interval,
            base,
            limit: base.saturating_mul(64),
            unit: "switches",
        }
    }

    /// The lock profile's 1-in-N futex wait sampling: at most 64 times the
    /// base N (the unwind at a wait's end is the cost).
    pub fn lock(sample_every: u32) -> Knob {
        let base = u64::from(sample_every.max(1));
        Knob {
            collector: Collector::Lock,
            kind: KnobKind::Interval,
            base,
            limit: base.saturating_mul(64),
            unit: "futex waits",
        }
    }

    /// The largest shed factor this knob can follow.
    pub fn max_factor(&self) -> f64 {
        match self.kind {
            KnobKind::Rate => self.base as f64 / self.limit.clamp(1, self.base) as f64,
            KnobKind::Interval => self.limit.max(self.base) as f64 / self.base.max(1) as f64,
        }
    }

    /// The setting for shed factor `factor`, within the limit.
    pub fn setting(&self, factor: f64) -> u64 {
        let f = factor.clamp(1.0, self.max_factor());
        match self.kind {
            KnobKind::Rate => ((self.base as f64 / f).round() as u64)
                .clamp(self.limit.min(self.base).max(1), self.base),
            KnobKind::Interval => {
                ((self.base as f64 * f).round() as u64).clamp(self.base, self.limit.max(self.base))
            }
        }
    }

    /// The factor a setting actually sheds (settings are whole numbers).
    pub fn factor_of(&self, setting: u64) -> f64 {
        match self.kind {
            KnobKind::Rate => self.base as f64 / setting.max(1) as f64,
            KnobKind::Interval => setting as f64 / self.base.max(1) as f64,
        }
    }
}

/// What [`Controller::observe`] decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Keep the settings.
    Hold,
    /// Apply [`Controller::settings`]: shedding starts (from factor 1),
    /// changes, or stops (back to 1).
    Start {
        factor: f64,
        usage: f64,
    },
    Change {
        factor: f64,
        usage: f64,
    },
    Stop {
        usage: f64,
    },
}

/// Shedding is raised when the smoothed cost is above this share of the
/// budget, and lowered when below [`LOW`]; in between it holds, so it does
/// not chase noise.
const HIGH: f64 = 1.1;
const LOW: f64 = 0.6;
/// Where a change aims, as a share of the budget: between the two, so a
/// change that lands as predicted holds.
const AIM: f64 = 0.8;
/// Weight of a new interval in the smoothed cost.
const ALPHA: f64 = 0.5;

/// Per collector, what was shed over a profile's span.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Span {
    nanos: f64,
    factor_nanos: f64,
    min_setting: u64,
    max_setting: u64,
}

/// Keeps the measured cost within the budget by a multiplicative,
/// proportional controller with a hysteresis band: cost is taken to grow
/// with the rate (cost × factor is the unshed cost), each change aims at
/// [`AIM`] of the budget, raising at most 4× and lowering at most 2× a
/// step (recovery is slow so a burst does not make it oscillate).
#[derive(Debug, Clone)]
pub struct Controller {
    /// Share of one core (0.01 is 1 %).
    budget: f64,
    knobs: Vec<Knob>,
    factor: f64,
    smoothed: Option<f64>,
    last_usage: f64,
    spans: Vec<Span>,
    measured_nanos: f64,
    measured_cost: f64,
}

impl Controller {
    /// `max_cpu_percent` is in percent of one core.
    pub fn new(max_cpu_percent: f64, knobs: Vec<Knob>) -> Controller {
        let spans = knobs.iter().map(|k| Span::fresh(k.base)).collect();
        Controller {
            budget: (max_cpu_percent / 100.0).max(1e-6),
            knobs,
            factor: 1.0,
            smoothed: None,
            last_usage: 0.0,
            spans,
            measured_nanos: 0.0,
            measured_cost: 0.0,
        }
    }

    pub fn knobs(&self) -> &[Knob] {
        &self.knobs
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The budget in percent of one core.
    pub fn max_cpu_percent(&self) -> f64 {
        self.budget * 100.0
    }

    /// The settings at the current factor, in the order of the knobs.
    pub fn settings(&self) -> Vec<u64> {
        self.knobs.iter().map(|k| k.setting(self.factor)).collect()
    }

    fn max_factor(&self) -> f64 {
        self.knobs.iter().map(Knob::max_factor).fold(1.0, f64::max)
    }

    /// One interval of `wall_nanos` in which the profiler cost `cost_nanos`
    /// of CPU; the settings in force during it are the current ones.
    pub fn observe(&mut self, wall_nanos: u64, cost_nanos: u64) -> Decision {
        if wall_nanos == 0 {
            return Decision::Hold;
        }
        let settings = self.settings();
        for ((span, knob), s) in self.spans.iter_mut().zip(&self.knobs).zip(settings) {
            span.add(wall_nanos as f64, knob.factor_of(s), s);
        }
        self.measured_nanos += wall_nanos as f64;
        self.measured_cost += cost_nanos as f64;
        let usage = cost_nanos as f64 / wall_nanos as f64;
        self.last_usage = usage;
        let smoothed = match self.smoothed {
            Some(s) => s + ALPHA * (usage - s),
            None => usage,
        };
        self.smoothed = Some(smoothed);
        let load = smoothed / self.budget;
        let unshed = self.factor * load / AIM;
        let next = if load > HIGH {
            unshed.clamp(self.factor * 1.25, self.factor * 4.0)
        } else if load < LOW && self.factor > 1.0 {
            unshed.clamp(self.factor / 2.0, self.factor)
        } else {
            return Decision::Hold;
        };
        let next = next.clamp(1.0, self.max_factor());
        // Whole-number settings: a change none of them follows is none.
        let before = self.settings();
        let old = self.factor;
        self.factor = next;
        if self.settings() == before {
            self.factor = old;
            return Decision::Hold;
        }
        // The next interval is measured at the new settings alone.
        self.smoothed = None;
        let percent = usage * 100.0;
        if old <= 1.0 {
            Decision::Start {
                factor: next,
                usage: percent,
            }
        } else if next <= 1.0 {
            Decision::Stop { usage: percent }
        } else {
            Decision::Change {
                factor: next,
                usage: percent,
            }
        }
    }

    /// The last interval's cost, in percent of one core.
    pub fn last_usage_percent(&self) -> f64 {
        self.last_usage * 100.0
    }

    /// Says what was shed for `collector` since the last call for it (a
    /// profile's comment), and starts a new span. `None` when that
    /// collector has no knob.
    pub fn take_summary(&mut self, collector: Collector) -> Option<String> {
        let i = self.knobs.iter().position(|k| k.collector == collector)?;
        let knob = self.knobs[i];
        let now = knob.setting(self.factor);
        let span = std::mem::replace(&mut self.spans[i], Span::fresh(now));
        let mean = if span.nanos > 0.0 {
            span.factor_nanos / span.nanos
        } else {
            knob.factor_of(now)
        };
        let (lo, hi) = if span.nanos > 0.0 {
            (span.min_setting, span.max_setting)
        } else {
            (now, now)
        };
        let mut text = format!(
            "budget: at most {:.2}% of one core (profiler CPU plus BPF run time); {} ",
            self.max_cpu_percent(),
            collector.name()
        );
        if mean <= 1.0 + 1e-9 {
            let _ = write!(text, "not shed ({} {})", knob.base, knob.unit);
        } else {
            let range = if lo == hi {
                format!("{lo}")
            } else {
                format!("{lo}-{hi}")
            };
            let setting = match knob.kind {
                KnobKind::Rate => format!("sampled at {range} {} of {}", knob.unit, knob.base),
                KnobKind::Interval => {
                    format!(
                        "recorded 1 in {range} {} (asked 1 in {})",
                        knob.unit, knob.base
                    )
                }
            };
            let _ = write!(
                text,
                "shed: {setting}, mean shed factor {mean:.2}; values weighted by the rate \
                 each sample was taken at"
            );
        }
        if self.measured_nanos > 0.0 {
            let _ = write!(
                text,
                "; measured {:.2}% of one core",
                100.0 * self.measured_cost / self.measured_nanos
            );
        }
        Some(text)
    }

    /// Ends the measured-cost span shared by every summary (call once
    /// after taking every collector's summary of a profile).
    pub fn end_span(&mut self) {
        self.measured_nanos = 0.0;
        self.measured_cost = 0.0;
    }
}

impl Span {
    fn fresh(setting: u64) -> Span {
        Span {
            min_setting: setting,
            max_setting: setting,
            ..Span::default()
        }
    }

    fn add(&mut self, nanos: f64, factor: f64, setting: u64) {
        if self.nanos == 0.0 {
            self.min_setting = setting;
            self.max_setting = setting;
        }
        self.nanos += nanos;
        self.factor_nanos += nanos * factor;
        self.min_setting = self.min_setting.min(setting);
        self.max_setting = self.max_setting.max(setting);
    }
}

/// The profiler's own CPU time (every thread: user plus system), in
/// nanoseconds.
pub fn own_cpu_nanos() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: initialized by the successful call.
    let u = unsafe { usage.assume_init() };
    let nanos = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    nanos(u.ru_utime) + nanos(u.ru_stime)
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profiler whose cost is a fixed part plus a part per unit of rate
    /// (nanoseconds of CPU per second of wall).
    fn run(c: &mut Controller, fixed: f64, per_rate: f64, seconds: usize) -> Vec<f64> {
        let mut usages = Vec::new();
        for _ in 0..seconds {
            let work: f64 = c
                .knobs()
                .iter()
                .zip(c.settings())
                .map(|(k, s)| k.base as f64 / k.factor_of(s))
                .sum();
            let cost = fixed + per_rate * work;
            c.observe(1_000_000_000, cost as u64);
            usages.push(cost / 1e9);
        }
        usages
    }

    fn knobs() -> Vec<Knob> {
        vec![Knob::cpu(99), Knob::offcpu(1)]
    }

    #[test]
    fn the_default_budget_grows_with_the_cpus() {
        assert_eq!(default_max_cpu_percent(2), 1.0);
        assert_eq!(default_max_cpu_percent(16), 1.0);
        assert_eq!(default_max_cpu_percent(64), 4.0);
    }

    #[test]
    fn settings_follow_the_factor_within_their_limits() {
        let cpu = Knob::cpu(99);
        assert_eq!(cpu.setting(1.0), 99);
        assert_eq!(cpu.setting(2.0), 50);
        assert_eq!(cpu.setting(1000.0), 10);
        let off = Knob::offcpu(2);
        assert_eq!(off.setting(3.0), 6);
        assert_eq!(off.setting(1000.0), 128);
        assert!((off.factor_of(6) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn converges_to_the_budget_under_load() {
        // 1 % budget; unshed, the profiler would cost 5 %.
        let mut c = Controller::new(1.0, knobs());
        let per = 0.05e9 / 100.0;
        let usages = run(&mut c, 0.0, per, 30);
        let last: f64 = usages[20..].iter().sum::<f64>() / 10.0;
        assert!((0.006..=0.011).contains(&last), "{usages:?}");
        assert!(c.factor() > 4.0, "{}", c.factor());
    }

    #[test]
    fn recovers_when_the_load_drops() {
        let mut c = Controller::new(1.0, knobs());
        run(&mut c, 0.0, 0.05e9 / 100.0, 20);
        assert!(c.factor() > 1.0);
        // The host quietens: unshed it costs 0.3 %.
        run(&mut c, 0.0, 0.003e9 / 100.0, 20);
        assert_eq!(c.factor(), 1.0);
        assert_eq!(c.settings(), [99, 1]);
    }

    #[test]
    fn floors_hold_when_the_fixed_cost_alone_is_over_budget() {
        let mut c = Controller::new(1.0, knobs());
        run(&mut c, 0.05e9, 1e3, 30);
        let s = c.settings();
        assert_eq!(s[0], 10, "the CPU sampler never goes below 10 Hz");
        assert_eq!(s[1], 64, "off-CPU never records fewer than 1 in 64");
    }

    #[test]
    fn holds_inside_the_band() {
        let mut c = Controller::new(1.0, knobs());
        // 0.8 % unshed: inside the band, nothing shed and no decision.
        for _ in 0..10 {
            assert_eq!(c.observe(1_000_000_000, 8_000_000), Decision::Hold);
        }
        assert_eq!(c.factor(), 1.0);
    }

    #[test]
    fn decisions_say_when_shedding_starts_and_stops() {
        let mut c = Controller::new(1.0, knobs());
        assert!(matches!(
            c.observe(1_000_000_000, 30_000_000),
            Decision::Start { .. }
        ));
        let mut stopped = false;
        for _ in 0..20 {
            if let Decision::Stop { .. } = c.observe(1_000_000_000, 1_000_000) {
                stopped = true;
            }
        }
        assert!(stopped);
    }

    #[test]
    fn summaries_say_what_was_shed() {
        let mut c = Controller::new(1.0, knobs());
        let quiet = c.take_summary(Collector::Cpu).unwrap_or_default();
        assert!(quiet.contains("cpu not shed (99 Hz)"), "{quiet}");
        run(&mut c, 0.0, 0.05e9 / 100.0, 10);
        let cpu = c.take_summary(Collector::Cpu).unwrap_or_default();
        assert!(cpu.contains("at most 1.00% of one core"), "{cpu}");
        assert!(cpu.contains("cpu shed: sampled at "), "{cpu}");
        assert!(cpu.contains("Hz of 99"), "{cpu}");
        assert!(cpu.contains("mean shed factor"), "{cpu}");
        let off = c.take_summary(Collector::OffCpu).unwrap_or_default();
        assert!(off.contains("offcpu shed: recorded 1 in "), "{off}");
        assert!(c.take_summary(Collector::Alloc).is_none());
    }
}
