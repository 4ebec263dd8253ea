//! Events into fixed feature windows per service and endpoint, plus one
//! all-endpoints window per service (endpoint [`ALL_ENDPOINTS`]).
//!
//! Event time, not arrival time, decides the window. The watermark is the
//! largest timestamp seen minus the allowed lateness; a window closes (and
//! is emitted) once the watermark reaches its end. An event whose window is
//! still open lands in it however out of order it came; one whose window
//! has closed is counted in [`Windower::dropped_late`] and dropped.
//!
//! Gaps: a window in which nothing happened is not emitted, so a gap in the
//! data is a gap in the windows (absent data is not zero traffic, and must
//! not look like an outage to a detector).
//!
//! Clock jumps: an event more than `clock_jump_ms` behind the watermark is
//! not late but a clock reset (a host's clock stepped back, or logs of
//! another period concatenated): every open window is emitted, time
//! restarts at that event, and [`Windower::clock_resets`] counts it. A jump
//! forward looks the same from the other side, so the events after a
//! single far-future line are not all dropped. Windows are then emitted out
//! of time order across the reset.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::logs::Event;
use crate::sketch::{Sketch, DEFAULT_RELATIVE_ACCURACY};
use crate::BaselineError;

/// Names in windows come from request logs, so untrusted: foldhash is
/// seeded per process (unlike FxHash) and is faster than SipHash on short
/// strings.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The endpoint name of a service's all-endpoints window.
pub const ALL_ENDPOINTS: &str = "*";

/// Window width, lateness and sketch accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowConfig {
    pub width_ms: i64,
    /// How far behind the largest timestamp seen an event may be and still
    /// be placed in its window.
    pub lateness_ms: i64,
    /// Beyond this far behind the watermark, an event is a clock reset
    /// rather than late (see the module's documentation).
    pub clock_jump_ms: i64,
    pub relative_accuracy: f64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            width_ms: 10_000,
            lateness_ms: 5_000,
            clock_jump_ms: 10 * 60_000,
            relative_accuracy: DEFAULT_RELATIVE_ACCURACY,
        }
    }
}

impl WindowConfig {
    pub fn validate(&self) -> Result<(), BaselineError> {
        if self.width_ms <= 0 {
            return Err(BaselineError::invalid(
                "window width",
                format!("must be positive, got {} ms", self.width_ms),
            ));
        }
        if self.lateness_ms < 0 {
            return Err(BaselineError::invalid(
                "window lateness",
                format!("must not be negative, got {} ms", self.lateness_ms),
            ));
        }
        if self.clock_jump_ms <= self.lateness_ms {
            return Err(BaselineError::invalid(
                "clock jump threshold",
                format!(
                    "must exceed the lateness ({} ms), got {} ms",
                    self.lateness_ms, self.clock_jump_ms
                ),
            ));
        }
        Sketch::with_accuracy(self.relative_accuracy)?;
        Ok(())
    }
}

/// The features of one window of one service and endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureWindow {
    pub service: Arc<str>,
    /// An endpoint, or [`ALL_ENDPOINTS`].
    pub endpoint: Arc<str>,
    /// `[start_ms, end_ms)`, milliseconds since the epoch.
    pub start_ms: i64,
    pub end_ms: i64,
    pub count: u64,
    /// Requests per second over the whole window.
    pub rate_per_s: f64,
    /// Responses with status >= 500.
    pub errors: u64,
    pub error_rate: f64,
    /// Latency quantiles in milliseconds, within the sketch's relative
    /// accuracy.
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub sketch: Sketch,
}

impl FeatureWindow {
    pub fn is_aggregate(&self) -> bool {
        &*self.endpoint == ALL_ENDPOINTS
    }
}

#[derive(Clone, Debug)]
struct Acc {
    count: u64,
    errors: u64,
    sketch: Sketch,
}

impl Acc {
    #[inline]
    fn add(&mut self, key: Option<i32>, latency_ms: f64, error: bool) {
        self.count += 1;
        self.errors += error as u64;
        self.sketch.add_keyed(key, latency_ms);
    }
}

#[derive(Debug)]
struct ServiceWindow {
    all: Acc,
    endpoints: HashMap<Arc<str>, Acc>,
}

/// Assigns events to windows and emits each window once it closes.
#[derive(Debug)]
pub struct Windower {
    cfg: WindowConfig,
    empty: Sketch,
    all_name: Arc<str>,
    /// Open windows by start.
    open: BTreeMap<i64, HashMap<Arc<str>, ServiceWindow>>,
    max_ts: Option<i64>,
    dropped_late: u64,
    clock_resets: u64,
    accepted: u64,
    /// With several sources (see [`Windower::with_sources`]): each one's
    /// largest timestamp, and whether it is left out of the watermark.
    marks: Vec<Mark>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    max_ts: Option<i64>,
    /// Idle past its bound, or ended: it no longer holds windows open.
    idle: bool,
}

impl Windower {
    pub fn new(cfg: WindowConfig) -> Result<Windower, BaselineError> {
        cfg.validate()?;
        let empty = Sketch::with_accuracy(cfg.relative_accuracy)?;
        Ok(Windower {
            cfg,
            empty,
            all_name: Arc::from(ALL_ENDPOINTS),
            open: BTreeMap::new(),
            max_ts: None,
            dropped_late: 0,
            clock_resets: 0,
            accepted: 0,
            marks: Vec::new(),
        })
    }

    /// Events will come from `n` sources read side by side (followed
    /// logs): a window closes only once every source that is not idle has
    /// passed its end plus the lateness (per-source watermarks), so a
    /// source running ahead of another does not make the other's events
    /// late. Sources start active; [`Windower::set_idle`] leaves one out.
    pub fn with_sources(mut self, n: usize) -> Windower {
        self.marks = vec![Mark::default(); n];
        self
    }

    /// Leaves a source out of the watermark (idle past its bound, or
    /// ended) or takes it back in, appending the windows that closes.
    pub fn set_idle(&mut self, source: usize, idle: bool, out: &mut Vec<FeatureWindow>) {
        if let Some(m) = self.marks.get_mut(source) {
            if m.idle != idle {
                m.idle = idle;
                self.close_through_watermark(out);
            }
        }
    }

    /// Whether every source is idle (or there are none), so only the
    /// clock can move time on.
    pub fn all_idle(&self) -> bool {
        self.marks.iter().all(|m| m.idle)
    }

    /// [`Windower::push`] for an event of `source`.
    pub fn push_from(&mut self, source: usize, ev: &Event, out: &mut Vec<FeatureWindow>) {
        // Judged late against the watermark before this event moved it.
        self.push(ev, out);
        if let Some(m) = self.marks.get_mut(source) {
            if m.max_ts.is_none_or(|t| ev.ts_ms > t) {
                m.max_ts = Some(ev.ts_ms);
            }
            m.idle = false;
            self.close_through_watermark(out);
        }
    }

    /// The time windows close by: the largest timestamp seen, or with
    /// several sources the smallest of the active sources' largest.
    #[inline]
    fn horizon(&self) -> Option<i64> {
        if self.marks.is_empty() {
            return self.max_ts;
        }
        let mut active = self.marks.iter().filter(|m| !m.idle).peekable();
        if active.peek().is_none() {
            return self.max_ts;
        }
        let mut h: Option<i64> = None;
        for m in active {
            // An active source that has sent nothing yet holds everything.
            let t = m.max_ts?;
            h = Some(h.map_or(t, |h: i64| h.min(t)));
        }
        h
    }

    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Events dropped because their window had already closed.
    pub fn dropped_late(&self) -> u64 {
        self.dropped_late
    }

    /// Events far enough behind the watermark to be taken as clock resets.
    pub fn clock_resets(&self) -> u64 {
        self.clock_resets
    }

    /// Events placed in a window.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// The watermark: windows ending at or before it are closed.
    pub fn watermark(&self) -> Option<i64> {
        self.horizon()
            .map(|m| m.saturating_sub(self.cfg.lateness_ms))
    }

    fn window_start(&self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.cfg.width_ms) * self.cfg.width_ms
    }

    /// Places one event, appending to `out` the windows its time closes.
    pub fn push(&mut self, ev: &Event, out: &mut Vec<FeatureWindow>) {
        let start = self.window_start(ev.ts_ms);
        let end = start.saturating_add(self.cfg.width_ms);
        if let Some(wm) = self.watermark() {
            if end <= wm {
                if ev.ts_ms >= wm.saturating_sub(self.cfg.clock_jump_ms) {
                    self.dropped_late += 1;
                    return;
                }
                self.clock_resets += 1;
                self.flush(out);
                self.max_ts = None;
                for m in &mut self.marks {
                    m.max_ts = None;
                }
            }
        }
        self.accepted += 1;
        let key = self.empty.key_of(ev.latency_ms);
        let error = ev.is_error();
        let services = self.open.entry(start).or_default();
        let sw = match services.get_mut(&ev.service) {
            Some(sw) => sw,
            None => services
                .entry(ev.service.clone())
                .or_insert_with(|| ServiceWindow {
                    all: Acc {
                        count: 0,
                        errors: 0,
                        sketch: self.empty.clone(),
                    },
                    endpoints: HashMap::default(),
                }),
        };
        sw.all.add(key, ev.latency_ms, error);
        let acc = match sw.endpoints.get_mut(&ev.endpoint) {
            Some(a) => a,
            None => sw
                .endpoints
                .entry(ev.endpoint.clone())
                .or_insert_with(|| Acc {
                    count: 0,
                    errors: 0,
                    sketch: self.empty.clone(),
                }),
        };
        acc.add(key, ev.latency_ms, error);
        if self.max_ts.is_none_or(|m| ev.ts_ms > m) {
            self.max_ts = Some(ev.ts_ms);
            self.close_through_watermark(out);
        }
    }

    /// Moves time forward without an event (a heartbeat for a followed log
    /// that went quiet), emitting the windows that closes.
    pub fn advance(&mut self, now_ms: i64, out: &mut Vec<FeatureWindow>) {
        if self.max_ts.is_none_or(|m| now_ms > m) {
            self.max_ts = Some(now_ms);
            self.close_through_watermark(out);
        }
    }

    /// Emits every open window (at the end of input).
    pub fn flush(&mut self, out: &mut Vec<FeatureWindow>) {
        while let Some((start, services)) = self.open.pop_first() {
            self.emit(start, services, out);
        }
    }

    fn close_through_watermark(&mut self, out: &mut Vec<FeatureWindow>) {
        let Some(wm) = self.watermark() else {
            return;
        };
        while let Some(entry) = self.open.first_entry() {
            if entry.key().saturating_add(self.cfg.width_ms) > wm {
                break;
            }
            let (start, services) = entry.remove_entry();
            self.emit(start, services, out);
        }
    }

    /// Appends one closed window's features: services in name order, each
    /// with its all-endpoints window first, then endpoints in name order.
    fn emit(
        &self,
        start: i64,
        services: HashMap<Arc<str>, ServiceWindow>,
        out: &mut Vec<FeatureWindow>,
    ) {
        let end = start.saturating_add(self.cfg.width_ms);
        let mut services: Vec<_> = services.into_iter().collect();
        services.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (service, sw) in services {
            out.push(self.features(&service, &self.all_name, start, end, sw.all));
            let mut eps: Vec<_> = sw.endpoints.into_iter().collect();
            eps.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (endpoint, acc) in eps {
                out.push(self.features(&service, &endpoint, start, end, acc));
            }
        }
    }

    fn features(
        &self,
        service: &Arc<str>,
        endpoint: &Arc<str>,
        start: i64,
        end: i64,
        acc: Acc,
    ) -> FeatureWindow {
        let q = |p: f64| acc.sketch.quantile(p).unwrap_or(0.0);
        FeatureWindow {
            service: service.clone(),
            endpoint: endpoint.clone(),
            start_ms: start,
            end_ms: end,
            count: acc.count,
            rate_per_s: acc.count as f64 * 1000.0 / self.cfg.width_ms as f64,
            errors: acc.errors,
            error_rate: acc.errors as f64 / acc.count.max(1) as f64,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            sketch: acc.sketch,
        }
    }
}

/// All windows of a batch of events (flushed at the end), with the
/// windower for its counters.
pub fn windows(
    events: &[Event],
    cfg: WindowConfig,
) -> Result<(Vec<FeatureWindow>, Windower), BaselineError> {
    let mut w = Windower::new(cfg)?;
    let mut out = Vec::new();
    for e in events {
        w.push(e, &mut out);
    }
    w.flush(&mut out);
    Ok((out, w))
}
