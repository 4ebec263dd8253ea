//! `perfpilot baseline watch --config F`, and the same loop inside the
//! server: request logs and Prometheus series into the [`Engine`], alerts
//! out, baselines saved and hot-reloaded.
//!
//! The config is TOML:
//!
//! ```toml
//! window = "10s"           # feature window
//! lateness = "30s"         # how late an event may arrive and still count
//! state_dir = "/var/lib/perfpilot/baselines"   # saved baseline versions
//! save_every = "5m"
//! # tick = "200ms"        # fixed cadence instead of waking on events (see below)
//!
//! [[logs]]
//! path = "/var/log/nginx/access.log"   # "-" for stdin
//! format = "combined"                  # or "json"; detected when absent
//! service = "web"
//! follow = true                        # tail -F: survives rotation
//!
//! [[prometheus]]
//! url = "http://127.0.0.1:9090"
//! features = [
//!   { service = "checkout", name = "heap", query = "go_memstats_heap_inuse_bytes", kind = "memory" },
//!   { service = "checkout", name = "gc", query = "rate(go_gc_duration_seconds_sum[1m])" },
//!   { service = "checkout", name = "cpu", query = "rate(process_cpu_seconds_total[1m])", per_1k_requests = true },
//! ]
//!
//! # Inside `perfpilot server`/`up` only: the service's CPU (cores, and
//! # cores per 1,000 requests when its logs are watched) and the share of
//! # its CPU in each function listed.
//! [[profiles]]
//! service = "checkout"
//! functions = ["encrypt_data"]
//!
//! [alerts]
//! alertmanager = "http://127.0.0.1:9093"
//! webhooks = ["http://127.0.0.1:8080/hook"]
//! resend = "1m"
//! resolve_after = 3
//! ```
//!
//! The loop sleeps until something can change: events from a log, the
//! moment the next window can close (its end plus the lateness, on the
//! clock, for live input), a Prometheus poll, a save, or the once-a-second
//! housekeeping (resends, retries of failed deliveries, baselines written
//! by someone else), and at most 200 ms, to see the stop flag. A closed
//! window's alerts are delivered at once, so an alert leaves within
//! milliseconds of its window closing. Followed files are polled
//! adaptively (see [`FollowOptions`]). `tick` restores the earlier design,
//! in which the loop and the followed files were looked at on a fixed
//! cadence; it is kept to measure the difference against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::detectors::{FeatureKind, MonitorConfig};
use crate::engine::{Engine, EngineConfig};
use crate::error::BaselineError;
use crate::logs::{Event, FollowOptions, LineStats, LogFormat, LogReader, ParseOptions, Parser};
use crate::profiles::{self, ProfileFeatures, ProfileSource};
use crate::prom::Prometheus;
use crate::window::{WindowConfig, Windower};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    #[serde(default = "d_window")]
    pub window: String,
    #[serde(default = "d_lateness")]
    pub lateness: String,
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default = "d_save")]
    pub save_every: String,
    /// A fixed cadence for closing windows, delivering and polling
    /// followed files, instead of waking on events and window closes.
    #[serde(default)]
    pub tick: Option<String>,
    #[serde(default)]
    pub logs: Vec<LogSource>,
    #[serde(default)]
    pub prometheus: Vec<PromSource>,
    /// perfpilot's own profiles (only inside `perfpilot server`/`up`,
    /// which hold the store).
    #[serde(default)]
    pub profiles: Vec<ProfileFeatures>,
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Detector parameters (what calibration tunes).
    #[serde(default)]
    pub detectors: MonitorConfig,
}

fn d_window() -> String {
    "10s".into()
}
fn d_lateness() -> String {
    "30s".into()
}
fn d_save() -> String {
    "5m".into()
}
fn d_true() -> bool {
    true
}
fn d_resend() -> String {
    "1m".into()
}
fn d_resolve() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSource {
    pub path: PathBuf,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default = "d_true")]
    pub follow: bool,
    /// JSON field names, when they are not `ts`, `latency_ms`, `status`,
    /// `endpoint`, `service`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromSource {
    pub url: String,
    pub features: Vec<PromFeature>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromFeature {
    pub service: String,
    pub name: String,
    pub query: String,
    #[serde(default)]
    pub kind: Option<String>,
    /// Also judge the value per 1,000 requests of the service (from its
    /// request logs): CPU or memory per unit of work.
    #[serde(default)]
    pub per_1k_requests: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default)]
    pub alertmanager: Option<String>,
    #[serde(default)]
    pub webhooks: Vec<String>,
    #[serde(default = "d_resend")]
    pub resend: String,
    #[serde(default = "d_resolve")]
    pub resolve_after: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            alertmanager: None,
            webhooks: Vec::new(),
            resend: d_resend(),
            resolve_after: d_resolve(),
        }
    }
}

/// `10s`, `5m`, `1h`, `1d`, `500ms`, `1.5h`, `1h30m` in milliseconds, which
/// must be positive. The grammar is [`perfpilot_units`]' with fractions
/// (each part rounded to the millisecond).
pub fn parse_duration(s: &str, what: &str) -> Result<i64, BaselineError> {
    use perfpilot_units::DurationError;
    let v = match perfpilot_units::parse_duration_ms_with(s, perfpilot_units::Fractions::Allowed) {
        Ok(v) => v,
        // Saturated rather than refused, as this config always has.
        Err(DurationError::TooLarge) => i64::MAX,
        Err(DurationError::UnknownUnit { unit }) => {
            return Err(BaselineError::invalid(
                what,
                format!("{s:?}: unknown unit {unit:?} (use ms, s, m, h, d or w)"),
            ))
        }
        Err(_) => {
            return Err(BaselineError::invalid(
                what,
                format!("{s:?} is not a duration like 10s, 5m, 1h"),
            ))
        }
    };
    if v <= 0 {
        return Err(BaselineError::invalid(
            what,
            format!("{s:?} must be positive"),
        ));
    }
    Ok(v)
}

/// How deep `toml` lets arrays, inline tables and dotted keys nest.
const TOML_MAX_DEPTH: usize = 80;

impl WatchConfig {
    pub fn load(path: &Path) -> Result<WatchConfig, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|e| BaselineError::io(path, e))?;
        WatchConfig::parse(&text, &path.display().to_string())
    }

    /// Parses and checks everything, so a bad config fails at start with
    /// the place of each problem, not an hour later.
    pub fn parse(text: &str, location: &str) -> Result<WatchConfig, BaselineError> {
        let cfg: WatchConfig = toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    let col = s.start
                        - text[..s.start.min(text.len())]
                            .rfind('\n')
                            .map_or(0, |i| i + 1)
                        + 1;
                    format!("{location}:{line}:{col}")
                })
                .unwrap_or_else(|| location.to_string());
            // The reader stops nesting (arrays, inline tables, dotted
            // keys) at its own limit, before it recurses further, in words
            // that do not say which limit.
            let message = match e.message() {
                m if m.contains("max recursion depth met") || m == "recursion limit" => format!(
                    "nests more than {TOML_MAX_DEPTH} levels deep (the limit for a config file)"
                ),
                m => m.to_string(),
            };
            BaselineError::invalid(place, message)
        })?;
        let mut problems = Vec::new();
        let mut check = |r: Result<i64, BaselineError>| {
            if let Err(e) = r {
                problems.push(e.to_string());
            }
        };
        check(parse_duration(&cfg.window, "window"));
        check(parse_duration(&cfg.lateness, "lateness"));
        check(parse_duration(&cfg.save_every, "save_every"));
        if let Some(t) = &cfg.tick {
            check(parse_duration(t, "tick"));
        }
        check(parse_duration(&cfg.alerts.resend, "alerts.resend"));
        for (i, l) in cfg.logs.iter().enumerate() {
            if let Some(f) = &l.format {
                if f != "json" && f != "combined" {
                    problems.push(format!(
                        "logs[{i}].format: {f:?} is neither \"json\" nor \"combined\""
                    ));
                }
            }
            for k in l.fields.keys() {
                if !["ts", "latency_ms", "status", "endpoint", "service"].contains(&k.as_str()) {
                    problems.push(format!(
                        "logs[{i}].fields: unknown field {k:?} (ts, latency_ms, status, endpoint, service)"
                    ));
                }
            }
        }
        for (i, p) in cfg.prometheus.iter().enumerate() {
            for (j, f) in p.features.iter().enumerate() {
                if let Some(k) = &f.kind {
                    if k != "level" && k != "memory" {
                        problems.push(format!(
                            "prometheus[{i}].features[{j}].kind: {k:?} is neither \"level\" nor \"memory\""
                        ));
                    }
                }
            }
        }
        if cfg.logs.is_empty() && cfg.prometheus.is_empty() && cfg.profiles.is_empty() {
            problems.push("nothing to watch: add [[logs]], [[prometheus]] or [[profiles]]".into());
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(BaselineError::invalid(location, problems.join("; ")))
        }
    }

    pub fn engine(&self) -> Result<Engine, BaselineError> {
        let resend = parse_duration(&self.alerts.resend, "alerts.resend")?;
        let mut engine = Engine::new(EngineConfig {
            monitor: self.detectors.clone(),
            resend: Duration::from_millis(resend as u64),
            resolve_after: self.alerts.resolve_after,
            ..EngineConfig::default()
        });
        if let Some(am) = &self.alerts.alertmanager {
            engine = engine.with_alertmanager(am);
        }
        for w in &self.alerts.webhooks {
            engine = engine.with_webhook(w);
        }
        Ok(engine)
    }
}

/// What a watch did, for its progress line and its end.
#[derive(Debug, Default, Clone)]
pub struct WatchStats {
    pub lines: LineStats,
    pub events: u64,
    pub windows: u64,
    pub findings: u64,
    pub dropped_late: u64,
    pub prometheus_errors: u64,
    pub last_prometheus_error: Option<String>,
    pub saved_version: Option<u64>,
    pub reloaded_version: Option<u64>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How long until the clock reads `deadline_ms`.
fn until_clock(deadline_ms: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_millis(deadline_ms.max(0) as u64).saturating_sub(now)
}

/// When the next window of live input can close, on the clock. Windows are
/// aligned to multiples of their width and the watermark of live input is
/// the clock minus the lateness, so windows close only as it passes a
/// multiple. Always later than `now_ms`.
fn next_close_ms(now_ms: i64, width_ms: i64, lateness_ms: i64) -> i64 {
    now_ms
        .saturating_sub(lateness_ms)
        .div_euclid(width_ms)
        .saturating_add(1)
        .saturating_mul(width_ms)
        .saturating_add(lateness_ms)
}

/// The longest the loop sleeps without looking at the stop flag, which
/// callers raise without waking it.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// Resends, retries of failed deliveries and picking up baselines saved by
/// someone else: due on no event, so on a slow cadence.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

enum Msg {
    Events(Vec<Event>),
    Stats(LineStats),
    Error(String),
    Done,
}

/// The parse options of a `[[logs]]` entry.
pub fn parse_options(src: &LogSource) -> ParseOptions {
    let mut opts = ParseOptions {
        format: match src.format.as_deref() {
            Some("json") => Some(LogFormat::Json),
            Some("combined") => Some(LogFormat::Combined),
            _ => None,
        },
        ..ParseOptions::default()
    };
    if let Some(s) = &src.service {
        opts.default_service = s.clone();
    }
    for (k, v) in &src.fields {
        let f = &mut opts.fields;
        match k.as_str() {
            "ts" => f.ts = v.clone(),
            "latency_ms" => f.latency = v.clone(),
            "status" => f.status = v.clone(),
            "endpoint" => f.endpoint = v.clone(),
            "service" => f.service = v.clone(),
            _ => {}
        }
    }
    opts
}

/// Reads one log on its own thread. `tick`: poll a followed file on that
/// fixed cadence instead of adaptively.
fn spawn_reader(
    src: LogSource,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Msg>,
    tick: Option<Duration>,
) {
    std::thread::spawn(move || {
        let opts = parse_options(&src);
        let mut reader = match LogReader::open(&src.path) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Msg::Error(e.to_string()));
                let _ = tx.send(Msg::Done);
                return;
            }
        };
        if src.follow {
            let mut opts = FollowOptions::new(Arc::clone(&stop));
            if let Some(t) = tick {
                opts.poll_interval = t;
                opts.min_poll_interval = t;
            }
            reader = reader.follow(opts);
        }
        let mut parser = Parser::new(&opts);
        let mut stats = parser.new_stats();
        let mut buf = Vec::new();
        let mut batch = Vec::with_capacity(1024);
        loop {
            match reader.next_line(&mut buf) {
                Ok(Some(no)) => {
                    if let Some(ev) = parser.parse_counted(no, &buf, &mut stats) {
                        batch.push(ev);
                    }
                    // Handed on before a read that may wait for input, so
                    // the last lines before a quiet spell are not held back
                    // until the next one comes.
                    if batch.len() >= 1024 || !reader.has_buffered_line() {
                        let _ = tx.send(Msg::Events(std::mem::take(&mut batch)));
                        let _ = tx.send(Msg::Stats(std::mem::replace(
                            &mut stats,
                            parser.new_stats(),
                        )));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Msg::Error(e.to_string()));
                    break;
                }
            }
        }
        let _ = tx.send(Msg::Events(batch));
        let _ = tx.send(Msg::Stats(stats));
        let _ = tx.send(Msg::Done);
    });
}

/// Runs until `stop` is raised, or until every log is read to its end
/// when nothing is followed and no Prometheus is polled. `progress` gets a
/// line now and then and every alert transition.
pub fn run(
    cfg: &WatchConfig,
    engine: Arc<Mutex<Engine>>,
    stop: Arc<AtomicBool>,
    progress: &mut dyn FnMut(&str),
) -> Result<WatchStats, BaselineError> {
    run_with(cfg, engine, stop, None, progress)
}

/// [`run`], with the profile store `[[profiles]]` read from (the server
/// passes its own).
pub fn run_with(
    cfg: &WatchConfig,
    engine: Arc<Mutex<Engine>>,
    stop: Arc<AtomicBool>,
    profile_source: Option<&dyn ProfileSource>,
    progress: &mut dyn FnMut(&str),
) -> Result<WatchStats, BaselineError> {
    if !cfg.profiles.is_empty() && profile_source.is_none() {
        return Err(BaselineError::invalid(
            "profiles",
            "[[profiles]] reads perfpilot's profile store: run it inside the server \
             (perfpilot server --baseline-config FILE, or perfpilot up --baseline-config FILE)",
        ));
    }
    let profile_feats: &[ProfileFeatures] = if profile_source.is_some() {
        &cfg.profiles
    } else {
        &[]
    };
    let width = parse_duration(&cfg.window, "window")?;
    let lateness = parse_duration(&cfg.lateness, "lateness")?;
    let save_every = Duration::from_millis(parse_duration(&cfg.save_every, "save_every")? as u64);
    let tick = match &cfg.tick {
        Some(t) => Some(Duration::from_millis(parse_duration(t, "tick")? as u64)),
        None => None,
    };
    let mut windower = Windower::new(WindowConfig {
        width_ms: width,
        lateness_ms: lateness,
        ..WindowConfig::default()
    })?;
    let mut stats = WatchStats {
        lines: LineStats::new(ParseOptions::default().max_samples),
        ..WatchStats::default()
    };
    if let Some(dir) = &cfg.state_dir {
        let mut e = engine
            .lock()
            .map_err(|_| BaselineError::invalid("engine", "poisoned"))?;
        stats.reloaded_version = e.reload(dir)?;
    }
    let (tx, rx) = mpsc::channel();
    let mut readers = 0;
    let live = cfg.logs.iter().any(|l| l.follow)
        || !cfg.prometheus.is_empty()
        || !profile_feats.is_empty();
    for src in &cfg.logs {
        spawn_reader(src.clone(), Arc::clone(&stop), tx.clone(), tick);
        readers += 1;
    }
    // Kept open: once every reader is done, a disconnected channel would
    // return from `recv_timeout` at once and the loop would spin while
    // Prometheus keeps it running.
    let _open = tx;
    let proms: Vec<(Prometheus, &PromFeature)> = cfg
        .prometheus
        .iter()
        .flat_map(|p| p.features.iter().map(move |f| (Prometheus::new(&p.url), f)))
        .collect();
    let mut prom_last: Vec<i64> = vec![now_ms() - width; proms.len()];
    let start_ms = now_ms();
    let mut profile_last: Vec<i64> =
        vec![(start_ms - width).div_euclid(width) * width; profile_feats.len()];
    let polled = !proms.is_empty() || !profile_feats.is_empty();
    let mut next_poll = Instant::now();
    let mut last_save = Instant::now();
    let mut last_progress = Instant::now();
    let mut next_housekeeping = Instant::now();
    let mut windows = Vec::new();
    let none = BTreeMap::new();
    loop {
        let wait = match tick {
            Some(t) => t,
            None => {
                let now = Instant::now();
                let mut until = next_housekeeping
                    .min(last_progress + Duration::from_secs(10))
                    .saturating_duration_since(now)
                    .min(STOP_CHECK);
                if live {
                    until = until.min(until_clock(next_close_ms(now_ms(), width, lateness)));
                }
                if polled {
                    until = until.min(next_poll.saturating_duration_since(now));
                }
                if cfg.state_dir.is_some() {
                    until = until.min((last_save + save_every).saturating_duration_since(now));
                }
                until
            }
        };
        // One message a pass: the windows a batch closes are judged and
        // their alerts delivered before the next batch is taken, so in a
        // replayed log an alert that soon resolves is still sent firing.
        match rx.recv_timeout(wait) {
            Ok(Msg::Events(evs)) => {
                stats.events += evs.len() as u64;
                for ev in &evs {
                    windower.push(ev, &mut windows);
                }
            }
            Ok(Msg::Stats(s)) => stats.lines.merge(&s),
            Ok(Msg::Error(e)) => progress(&format!("log: {e}")),
            Ok(Msg::Done) => readers -= 1,
            Err(_) => {}
        }
        let finished = readers == 0 && !live;
        let stopping = stop.load(Ordering::Relaxed);
        if finished || stopping {
            windower.flush(&mut windows);
        } else if live {
            windower.advance(now_ms(), &mut windows);
        }
        stats.dropped_late = windower.dropped_late();
        let now = Instant::now();
        // The fixed-cadence design did all of it on every pass.
        let housekeeping = tick.is_some() || now >= next_housekeeping || finished || stopping;
        let poll_due = polled && now >= next_poll;
        let save_due =
            cfg.state_dir.is_some() && (last_save.elapsed() >= save_every || finished || stopping);
        let mut out = Vec::new();
        if !windows.is_empty() || housekeeping || poll_due || save_due {
            let mut e = engine
                .lock()
                .map_err(|_| BaselineError::invalid("engine", "poisoned"))?;
            for w in windows.drain(..) {
                stats.windows += 1;
                stats.findings += e.observe_window(&w).len() as u64;
            }
            if poll_due {
                next_poll = now + Duration::from_millis(width as u64);
                let end = now_ms() - lateness.min(width);
                for (i, (prom, f)) in proms.iter().enumerate() {
                    if end <= prom_last[i] {
                        continue;
                    }
                    let kind = if f.kind.as_deref() == Some("memory") {
                        FeatureKind::Memory
                    } else {
                        FeatureKind::Level
                    };
                    let step = Duration::from_millis(width as u64);
                    match prom.query_range(&f.query, prom_last[i] + width, end, step) {
                        Ok(series) => {
                            // Several series: each is its own feature.
                            for s in series {
                                let name = if s.labels.len() <= 1 {
                                    f.name.clone()
                                } else {
                                    let l: Vec<String> = s
                                        .labels
                                        .iter()
                                        .filter(|(k, _)| *k != "__name__")
                                        .map(|(k, v)| format!("{k}={v}"))
                                        .collect();
                                    format!("{}{{{}}}", f.name, l.join(","))
                                };
                                for (t, x) in s.points {
                                    let found = if f.per_1k_requests {
                                        e.observe_resource(&f.service, &name, kind, t, x, &none)
                                    } else {
                                        e.observe(&f.service, &name, kind, t, x, &none)
                                    };
                                    stats.findings += found.len() as u64;
                                }
                            }
                            prom_last[i] = end;
                        }
                        Err(err) => {
                            stats.prometheus_errors += 1;
                            stats.last_prometheus_error = Some(err.to_string());
                            out.push(format!("prometheus: {err} (retrying next window)"));
                        }
                    }
                }
            }
            if poll_due {
                if let Some(source) = profile_source {
                    // Whole windows that the agents' profiles (shipped every
                    // interval) have had time to reach.
                    let end = (now_ms() - lateness.max(width)).div_euclid(width) * width;
                    for (i, f) in profile_feats.iter().enumerate() {
                        if end <= profile_last[i] {
                            continue;
                        }
                        match profiles::sample(source, f, profile_last[i], end, width) {
                            Ok(samples) => {
                                for p in samples {
                                    let found = if p.feature == "cpu_cores" {
                                        e.observe_resource(
                                            &p.service, &p.feature, p.kind, p.t_ms, p.value, &none,
                                        )
                                    } else {
                                        e.observe(
                                            &p.service, &p.feature, p.kind, p.t_ms, p.value, &none,
                                        )
                                    };
                                    stats.findings += found.len() as u64;
                                }
                                profile_last[i] = end;
                            }
                            Err(err) => out.push(format!("profiles: {err}")),
                        }
                    }
                }
            }
            // Right after the windows: this is what an alert waits for.
            // Sent with the engine unlocked, so a slow sink holds up no
            // reader (the server's API shares it).
            if let Some(outbox) = e.outbox(now_ms()) {
                drop(e);
                let error = outbox.send();
                e = engine
                    .lock()
                    .map_err(|_| BaselineError::invalid("engine", "poisoned"))?;
                e.delivered(&outbox, error);
            }
            if let Some(dir) = &cfg.state_dir {
                if housekeeping {
                    if let Some(v) = e.reload(dir)? {
                        out.push(format!(
                            "baselines: loaded version {v} from {}",
                            dir.display()
                        ));
                        stats.reloaded_version = Some(v);
                    }
                }
                if save_due {
                    let path = e.save(dir, now_ms())?;
                    stats.saved_version = Some(e.version);
                    last_save = Instant::now();
                    if finished || stopping {
                        out.push(format!("baselines: saved {}", path.display()));
                    }
                }
            }
            for t in e.drain_transitions() {
                out.push(e.describe(&t));
            }
        }
        if housekeeping {
            next_housekeeping = now + HOUSEKEEPING;
        }
        for line in &out {
            progress(line);
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            progress(&format!(
                "{} events, {} windows, {} findings, {} malformed lines, {} late events dropped",
                stats.events,
                stats.windows,
                stats.findings,
                stats.lines.malformed,
                stats.dropped_late
            ));
        }
        if finished || stopping {
            break;
        }
    }
    Ok(stats)
}
