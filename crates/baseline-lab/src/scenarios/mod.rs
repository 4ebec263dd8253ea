//! Labelled scenarios for judging the engine's defaults: request logs of
//! services with injected incidents and with harmless patterns that must
//! not page, generated deterministically from a seed.
//!
//! Every scenario starts with a few hours of normal history; levels,
//! noise, incident times and magnitudes are drawn from realistic ranges
//! by the seed, so tuning on some seeds and testing on others is honest.
//!
//! - [`generate`]: the suite for one seed.
//! - [`write_suite`]: one directory per scenario (`requests.log` JSON
//!   lines, `heap.csv` where a heap series belongs, `labels.json`).
//! - [`score`]: raised incidents against labels (recall, precision, time
//!   to detect).
//! - [`harness`]: generate → engine in event time → score, in process.

pub mod harness;
pub mod score;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use perfpilot_baseline::alerts::rfc3339;
use perfpilot_baseline::logs::{parse_rfc3339, Event};
use perfpilot_baseline::BaselineError;
use serde::{Deserialize, Serialize};

/// 2026-01-05T00:00:00Z: a Monday, so days and hours line up with UTC.
pub const EPOCH_MS: i64 = 1_767_571_200_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// A small deterministic generator (SplitMix64): the suite must be the
/// same for a seed on every machine and every version of every crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Whole minutes in [lo, hi], as milliseconds.
    pub fn minutes(&mut self, lo: i64, hi: i64) -> i64 {
        (lo + (self.next_u64() % (hi - lo + 1) as u64) as i64) * MIN
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// What kind of incident a label is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    Step,
    Ramp,
    Variance,
    ErrorBurst,
    GcStorm,
    Leak,
}

impl IncidentKind {
    pub fn name(self) -> &'static str {
        match self {
            IncidentKind::Step => "step",
            IncidentKind::Ramp => "ramp",
            IncidentKind::Variance => "variance",
            IncidentKind::ErrorBurst => "error_burst",
            IncidentKind::GcStorm => "gc_storm",
            IncidentKind::Leak => "leak",
        }
    }
}

/// One labelled incident: `[start_ms, end_ms)` of event time.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub start_ms: i64,
    pub end_ms: i64,
    pub kind: IncidentKind,
}

/// `labels.json`: times in RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    pub scenario: String,
    pub service: String,
    pub seed: u64,
    pub start: String,
    pub end: String,
    pub incidents: Vec<LabelJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelJson {
    pub start: String,
    pub end: String,
    pub kind: IncidentKind,
}

impl Labels {
    /// The incidents with their times parsed.
    pub fn incidents(&self) -> Result<Vec<Incident>, BaselineError> {
        self.incidents
            .iter()
            .map(|l| {
                Ok(Incident {
                    start_ms: time(&l.start)?,
                    end_ms: time(&l.end)?,
                    kind: l.kind,
                })
            })
            .collect()
    }
}

pub(crate) fn time(s: &str) -> Result<i64, BaselineError> {
    parse_rfc3339(s.as_bytes()).ok_or_else(|| BaselineError::invalid(s, "not an RFC 3339 time"))
}

/// One generated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub service: String,
    pub seed: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// In time order.
    pub events: Vec<Event>,
    /// Heap bytes every 10 s, where the scenario has a heap series.
    pub heap: Vec<(i64, f64)>,
    pub incidents: Vec<Incident>,
}

impl Scenario {
    pub fn labels(&self) -> Labels {
        Labels {
            scenario: self.name.to_string(),
            service: self.service.clone(),
            seed: self.seed,
            start: rfc3339(self.start_ms),
            end: rfc3339(self.end_ms),
            incidents: self
                .incidents
                .iter()
                .map(|i| LabelJson {
                    start: rfc3339(i.start_ms),
                    end: rfc3339(i.end_ms),
                    kind: i.kind,
                })
                .collect(),
        }
    }
}

/// The scenarios, in the order [`generate`] returns them.
pub const NAMES: [&str; 11] = [
    "step",
    "ramp",
    "variance",
    "error_burst",
    "gc_storm",
    "leak",
    "seasonal_day",
    "traffic_surge",
    "quiet_period",
    "multi_endpoint",
    "low_traffic",
];

/// A change to the normal model over `[start, end)`.
#[derive(Debug, Clone)]
enum Effect {
    /// Latency × factor; ramped linearly from 1 over `ramp_ms` first.
    Latency {
        factor: f64,
        ramp_ms: i64,
        endpoint: Option<usize>,
    },
    /// The spread of log-latency × factor (median unchanged).
    Spread(f64),
    /// Extra share of requests failing.
    Errors(f64),
    /// A share of requests stalls in a pause of up to `pause_ms`.
    Pauses { share: f64, pause_ms: f64 },
    /// Traffic × factor, latency × `latency` (a surge the service absorbs).
    Traffic { factor: f64, latency: f64 },
    /// No requests at all.
    Silence,
}

#[derive(Debug, Clone)]
struct Endpoint {
    name: String,
    share: f64,
    median_ms: f64,
}

/// A daily cycle: traffic × (1 + rate_amp·c), latency × (1 + lat_amp·c)
/// with c = sin(2π(t − phase)/day).
#[derive(Debug, Clone)]
struct Daily {
    rate_amp: f64,
    lat_amp: f64,
    phase_ms: i64,
}

#[derive(Debug, Clone)]
struct Model {
    rps: f64,
    endpoints: Vec<Endpoint>,
    sigma: f64,
    error_p: f64,
    daily: Option<Daily>,
    effects: Vec<(i64, i64, Effect)>,
}

impl Model {
    fn new(rng: &mut Rng, rps: f64) -> Model {
        Model {
            rps,
            endpoints: vec![Endpoint {
                name: "/api".into(),
                share: 1.0,
                median_ms: rng.range(20.0, 200.0),
            }],
            sigma: rng.range(0.25, 0.6),
            error_p: rng.range(0.0005, 0.005),
            daily: None,
            effects: Vec::new(),
        }
    }

    fn cycle(&self, t: i64) -> f64 {
        match &self.daily {
            Some(d) => {
                let x = (t - d.phase_ms) as f64 / (24 * HOUR) as f64;
                (2.0 * std::f64::consts::PI * x).sin()
            }
            None => 0.0,
        }
    }

    fn active(&self, t: i64) -> impl Iterator<Item = &Effect> {
        self.effects
            .iter()
            .filter(move |(a, b, _)| *a <= t && t < *b)
            .map(|(_, _, e)| e)
    }

    fn rate(&self, t: i64) -> f64 {
        let mut r = self.rps;
        if let Some(d) = &self.daily {
            r *= 1.0 + d.rate_amp * self.cycle(t);
        }
        for e in self.active(t) {
            match e {
                Effect::Traffic { factor, .. } => r *= factor,
                Effect::Silence => r = 0.0,
                _ => {}
            }
        }
        r
    }

    /// The end of a silence at `t`, if one is active.
    fn silent_until(&self, t: i64) -> Option<i64> {
        self.effects
            .iter()
            .find(|(a, b, e)| matches!(e, Effect::Silence) && *a <= t && t < *b)
            .map(|(_, b, _)| *b)
    }

    fn request(&self, t: i64, rng: &mut Rng) -> (usize, f64, u16) {
        let mut pick = rng.unit();
        let mut ep = self.endpoints.len() - 1;
        for (i, e) in self.endpoints.iter().enumerate() {
            if pick < e.share {
                ep = i;
                break;
            }
            pick -= e.share;
        }
        let mut median = self.endpoints[ep].median_ms;
        if let Some(d) = &self.daily {
            median *= 1.0 + d.lat_amp * self.cycle(t);
        }
        let mut sigma = self.sigma;
        let mut error_p = self.error_p;
        let mut pause = 0.0;
        for (a, _, e) in self.effects.iter().filter(|(a, b, _)| *a <= t && t < *b) {
            match e {
                Effect::Latency {
                    factor,
                    ramp_ms,
                    endpoint,
                } if endpoint.is_none_or(|x| x == ep) => {
                    let progress = if *ramp_ms > 0 {
                        ((t - a) as f64 / *ramp_ms as f64).min(1.0)
                    } else {
                        1.0
                    };
                    median *= 1.0 + (factor - 1.0) * progress;
                }
                Effect::Spread(f) => sigma *= f,
                Effect::Errors(p) => error_p += p,
                Effect::Pauses { share, pause_ms } if rng.unit() < *share => {
                    pause = pause_ms * rng.range(0.3, 1.0);
                }
                Effect::Traffic { latency, .. } => median *= latency,
                _ => {}
            }
        }
        let latency = median * (sigma * rng.normal()).exp() + pause;
        let status = if rng.unit() < error_p {
            if rng.unit() < 0.7 {
                500
            } else {
                503
            }
        } else {
            200
        };
        (ep, latency, status)
    }

    /// Requests as a Poisson process over `[start, end)`.
    fn events(&self, service: &str, start: i64, end: i64, rng: &mut Rng) -> Vec<Event> {
        let svc: Arc<str> = Arc::from(service);
        let eps: Vec<Arc<str>> = self
            .endpoints
            .iter()
            .map(|e| Arc::from(e.name.as_str()))
            .collect();
        let mut out = Vec::new();
        let mut t = start as f64;
        while (t as i64) < end {
            let now = t as i64;
            if let Some(until) = self.silent_until(now) {
                t = until as f64;
                continue;
            }
            let rate = self.rate(now).max(1e-3);
            t += -(1.0 - rng.unit()).ln() / rate * 1000.0;
            let ts = t as i64;
            if ts >= end || self.silent_until(ts).is_some() {
                continue;
            }
            let (ep, latency, status) = self.request(ts, rng);
            out.push(Event {
                ts_ms: ts,
                latency_ms: (latency * 1000.0).round() / 1000.0,
                status,
                endpoint: Arc::clone(&eps[ep]),
                service: Arc::clone(&svc),
            });
        }
        out
    }
}

/// A heap with a garbage collector: grows at `alloc` bytes/s from its
/// live size and drops back when it reaches `live + headroom`; the live
/// size grows by `leak` (share per hour) from `leak_from`, and allocation
/// runs `storm`× faster in `[storm_from, storm_to)`.
struct Heap {
    live: f64,
    headroom: f64,
    alloc: f64,
    leak: f64,
    leak_from: i64,
    storm: (i64, i64, f64),
}

impl Heap {
    fn series(&self, start: i64, end: i64, rng: &mut Rng) -> Vec<(i64, f64)> {
        let mut used = rng.range(0.0, self.headroom);
        let mut out = Vec::new();
        let mut t = start;
        while t < end {
            let hours = ((t - self.leak_from) as f64 / HOUR as f64).max(0.0);
            let live = self.live * (1.0 + self.leak * hours);
            let speed = if self.storm.0 <= t && t < self.storm.1 {
                self.storm.2
            } else {
                1.0
            };
            used += self.alloc * speed * 10.0 * rng.range(0.7, 1.3);
            if used >= self.headroom {
                used = rng.range(0.0, 0.05) * self.headroom;
            }
            out.push((t, (live + used).round()));
            t += 10_000;
        }
        out
    }
}

fn mib(x: f64) -> f64 {
    x * 1024.0 * 1024.0
}

/// Every scenario of the suite for `seed`.
pub fn generate(seed: u64) -> Vec<Scenario> {
    NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| scenario(seed, i, name))
        .collect()
}

/// One scenario of the suite by its index in [`NAMES`].
pub fn scenario(seed: u64, index: usize, name: &'static str) -> Scenario {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(index as u64));
    // Somewhere in the first six hours of a day, so history is a few
    // hours and never starts at midnight exactly.
    let start = EPOCH_MS + (index as i64) * 24 * HOUR + rng.minutes(0, 360);
    let history = rng.minutes(150, 240);
    let t0 = start + history;
    let tail = rng.minutes(30, 60);
    let rps = rng.range(8.0, 25.0);
    let mut model = Model::new(&mut rng, rps);
    let mut heap = None;
    let mut incidents = Vec::new();
    let end;
    let service = format!("svc-{name}").replace('_', "-");
    let mut incident = |kind, a: i64, b: i64| {
        incidents.push(Incident {
            start_ms: a,
            end_ms: b,
            kind,
        })
    };
    match name {
        "step" => {
            let d = rng.minutes(15, 40);
            let factor = 1.0 + rng.range(0.3, 2.0);
            model.effects.push((
                t0,
                t0 + d,
                Effect::Latency {
                    factor,
                    ramp_ms: 0,
                    endpoint: None,
                },
            ));
            incident(IncidentKind::Step, t0, t0 + d);
            end = t0 + d + tail;
        }
        "ramp" => {
            let ramp = rng.minutes(20, 40);
            let hold = rng.minutes(5, 15);
            let factor = 1.0 + rng.range(0.5, 2.0);
            model.effects.push((
                t0,
                t0 + ramp + hold,
                Effect::Latency {
                    factor,
                    ramp_ms: ramp,
                    endpoint: None,
                },
            ));
            incident(IncidentKind::Ramp, t0, t0 + ramp + hold);
            end = t0 + ramp + hold + tail;
        }
        "variance" => {
            let d = rng.minutes(15, 30);
            let factor = rng.range(1.8, 3.0);
            model.effects.push((t0, t0 + d, Effect::Spread(factor)));
            incident(IncidentKind::Variance, t0, t0 + d);
            end = t0 + d + tail;
        }
        "error_burst" => {
            let d = rng.minutes(3, 10);
            let p = rng.range(0.05, 0.3);
            model.effects.push((t0, t0 + d, Effect::Errors(p)));
            incident(IncidentKind::ErrorBurst, t0, t0 + d);
            end = t0 + d + tail;
        }
        "gc_storm" => {
            let d = rng.minutes(5, 15);
            let share = rng.range(0.05, 0.2);
            // Pauses of a few times the service's own p99 (at least
            // 200 ms): a storm that stays inside the usual tail is no
            // incident anyone could see in latency.
            let p99 = model.endpoints[0].median_ms * (2.33 * model.sigma).exp();
            let pause_ms = (p99 * rng.range(2.0, 5.0)).max(200.0);
            model
                .effects
                .push((t0, t0 + d, Effect::Pauses { share, pause_ms }));
            incident(IncidentKind::GcStorm, t0, t0 + d);
            end = t0 + d + tail;
            let live = mib(rng.range(200.0, 800.0));
            heap = Some(Heap {
                live,
                headroom: live * rng.range(0.3, 0.8),
                alloc: live * rng.range(0.002, 0.01),
                leak: 0.0,
                leak_from: end,
                storm: (t0, t0 + d, rng.range(4.0, 10.0)),
            });
        }
        "leak" => {
            let d = rng.minutes(60, 90);
            let live = mib(rng.range(200.0, 800.0));
            heap = Some(Heap {
                live,
                headroom: live * rng.range(0.2, 0.5),
                alloc: live * rng.range(0.002, 0.01),
                leak: rng.range(0.1, 0.5),
                leak_from: t0,
                storm: (0, 0, 1.0),
            });
            incident(IncidentKind::Leak, t0, t0 + d);
            end = t0 + d;
        }
        "seasonal_day" => {
            // A full day and a bit, the cycle there from the first hour.
            model.daily = Some(Daily {
                rate_amp: rng.range(0.4, 0.7),
                lat_amp: rng.range(0.1, 0.3),
                phase_ms: rng.minutes(0, 24 * 60),
            });
            model.rps = rng.range(8.0, 15.0);
            end = start + 26 * HOUR;
        }
        "traffic_surge" => {
            let d = rng.minutes(10, 40);
            let factor = rng.range(2.0, 5.0);
            let latency = 1.0 + rng.range(0.0, 0.05);
            model
                .effects
                .push((t0, t0 + d, Effect::Traffic { factor, latency }));
            end = t0 + d + tail;
        }
        "quiet_period" => {
            let d = rng.minutes(10, 60);
            model.effects.push((t0, t0 + d, Effect::Silence));
            end = t0 + d + tail;
        }
        "multi_endpoint" => {
            let n = 4 + (rng.next_u64() % 3) as usize;
            let weights: Vec<f64> = (0..n).map(|_| rng.range(0.5, 2.0)).collect();
            let total: f64 = weights.iter().sum();
            model.rps = rng.range(40.0, 80.0);
            model.endpoints = weights
                .iter()
                .enumerate()
                .map(|(i, w)| Endpoint {
                    name: [
                        "/search",
                        "/cart",
                        "/checkout",
                        "/login",
                        "/items",
                        "/health",
                    ][i]
                        .to_string(),
                    share: w / total,
                    median_ms: rng.range(5.0, 300.0),
                })
                .collect();
            let victim = (rng.next_u64() % n as u64) as usize;
            let d = rng.minutes(15, 40);
            let factor = 1.0 + rng.range(0.5, 2.0);
            model.effects.push((
                t0,
                t0 + d,
                Effect::Latency {
                    factor,
                    ramp_ms: 0,
                    endpoint: Some(victim),
                },
            ));
            incident(IncidentKind::Step, t0, t0 + d);
            end = t0 + d + tail;
        }
        "low_traffic" => {
            model.rps = 1.0;
            let d = rng.minutes(20, 40);
            let factor = 1.0 + rng.range(0.8, 2.0);
            model.effects.push((
                t0,
                t0 + d,
                Effect::Latency {
                    factor,
                    ramp_ms: 0,
                    endpoint: None,
                },
            ));
            incident(IncidentKind::Step, t0, t0 + d);
            end = t0 + d + tail;
        }
        _ => {
            end = t0 + tail;
        }
    }
    let events = model.events(&service, start, end, &mut rng);
    let heap = heap.map_or_else(Vec::new, |h| h.series(start, end, &mut rng));
    Scenario {
        name,
        service,
        seed,
        start_ms: start,
        end_ms: end,
        events,
        heap,
        incidents,
    }
}

/// One line of `requests.log`.
pub fn log_line(e: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(
        format!(
            "{{\"ts\":\"{}\",\"service\":\"{}\",\"endpoint\":\"{}\",\"latency_ms\":{},\"status\":{}}}\n",
            rfc3339(e.ts_ms),
            e.service,
            e.endpoint,
            e.latency_ms,
            e.status
        )
        .as_bytes(),
    );
}

/// Writes each scenario to `dir/NAME/` (`requests.log`, `heap.csv` where
/// it has one, `labels.json`).
pub fn write_suite(scenarios: &[Scenario], dir: &Path) -> Result<(), BaselineError> {
    for s in scenarios {
        let sub = dir.join(s.name);
        std::fs::create_dir_all(&sub).map_err(|e| BaselineError::io(&sub, e))?;
        let path = sub.join("requests.log");
        let file = std::fs::File::create(&path).map_err(|e| BaselineError::io(&path, e))?;
        let mut w = std::io::BufWriter::new(file);
        let mut line = Vec::with_capacity(160);
        for e in &s.events {
            line.clear();
            log_line(e, &mut line);
            w.write_all(&line)
                .map_err(|e| BaselineError::io(&path, e))?;
        }
        w.flush().map_err(|e| BaselineError::io(&path, e))?;
        let heap = sub.join("heap.csv");
        if s.heap.is_empty() {
            // A directory reused from an older suite must not keep one.
            let _ = std::fs::remove_file(&heap);
        } else {
            let mut text = String::from("timestamp,value\n");
            for (t, v) in &s.heap {
                text.push_str(&format!("{},{v}\n", rfc3339(*t)));
            }
            std::fs::write(&heap, text).map_err(|e| BaselineError::io(&heap, e))?;
        }
        let labels = sub.join("labels.json");
        let json = serde_json::to_string_pretty(&s.labels())
            .map_err(|e| BaselineError::invalid(labels.display().to_string(), e.to_string()))?;
        std::fs::write(&labels, json + "\n").map_err(|e| BaselineError::io(&labels, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_suite_and_another_seed_another() {
        let a = scenario(7, 0, "step");
        let b = scenario(7, 0, "step");
        let c = scenario(8, 0, "step");
        assert_eq!(a.events, b.events);
        assert_eq!(a.incidents, b.incidents);
        assert_ne!(a.incidents, c.incidents);
        assert!(a.events.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
        // A few hours of history before the incident.
        assert!(a.incidents[0].start_ms - a.start_ms >= 150 * MIN);
    }

    #[test]
    fn labels_round_trip_through_json() {
        let s = scenario(3, 3, "error_burst");
        let text = serde_json::to_string(&s.labels()).unwrap();
        let back: Labels = serde_json::from_str(&text).unwrap();
        assert_eq!(back.incidents().unwrap(), s.incidents);
    }

    #[test]
    fn quiet_period_has_no_requests_and_low_traffic_one_a_second() {
        let q = scenario(5, 8, "quiet_period");
        let gap = q
            .events
            .windows(2)
            .map(|w| w[1].ts_ms - w[0].ts_ms)
            .max()
            .unwrap();
        assert!(gap >= 10 * MIN, "{gap}");
        let l = scenario(5, 10, "low_traffic");
        let rps = l.events.len() as f64 / ((l.end_ms - l.start_ms) as f64 / 1000.0);
        assert!((0.8..1.2).contains(&rps), "{rps}");
    }
}
