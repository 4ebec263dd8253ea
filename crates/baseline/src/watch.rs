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
//! # The error-burst detector (what `calibrate` prints when it tunes it)
//! [error_burst]
//! min_errors = 5
//! p_threshold = 1e-4
//!
//! [alerts]
//! alertmanager = "http://127.0.0.1:9093"
//! webhooks = ["http://127.0.0.1:8080/hook"]
//! resend = "1m"
//! # A service's findings are one incident, resolved once the service
//! # has gone this long (event time) without a finding.
//! resolve_quiet = "5m"
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
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use serde::Deserialize;

use crate::detectors::{ErrorBurst, FeatureKind, MonitorConfig};
use crate::engine::{Engine, EngineConfig};
use crate::error::BaselineError;
use crate::feed::{self, FeedHandle, Publisher};
use crate::incidents::Transition;
use crate::logs::{Event, FollowOptions, LineStats, LogFormat, LogReader, ParseOptions, Parser};
use crate::profiles::{self, ProfileFeatures, ProfileSource};
use crate::prom::Prometheus;
use crate::window::{FeatureWindow, WindowConfig, Windower};

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
    /// The error-burst detector's parameters (calibration tunes them too).
    #[serde(default)]
    pub error_burst: ErrorBurst,
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
fn d_resolve_quiet() -> String {
    "5m".into()
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
    /// What it measures, which says which side pages: `latency`, `rate`,
    /// `errors`, `memory` (also runs the leak detector), `cpu`, or `gauge`
    /// (the default: both sides).
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
    /// Quiet updates before an alert raised from outside the detectors
    /// (the autopilot's) resolves.
    #[serde(default = "d_resolve")]
    pub resolve_after: u32,
    /// Event time a service goes without a finding before its incident
    /// resolves.
    #[serde(default = "d_resolve_quiet")]
    pub resolve_quiet: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            alertmanager: None,
            webhooks: Vec::new(),
            resend: d_resend(),
            resolve_after: d_resolve(),
            resolve_quiet: d_resolve_quiet(),
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
        check(parse_duration(
            &cfg.alerts.resolve_quiet,
            "alerts.resolve_quiet",
        ));
        for (i, p) in cfg.prometheus.iter().enumerate() {
            for (j, f) in p.features.iter().enumerate() {
                if let Some(Err(e)) = f.kind.as_deref().map(str::parse::<FeatureKind>) {
                    problems.push(format!("prometheus[{i}].features[{j}].kind: {e}"));
                }
            }
        }
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

    /// A config that watches nothing, every setting at its default (for
    /// [`WatchService::alerts_only`], and replays without a config).
    pub fn nothing() -> WatchConfig {
        WatchConfig {
            window: d_window(),
            lateness: d_lateness(),
            state_dir: None,
            save_every: d_save(),
            tick: None,
            logs: Vec::new(),
            prometheus: Vec::new(),
            profiles: Vec::new(),
            alerts: AlertsConfig::default(),
            detectors: MonitorConfig::default(),
            error_burst: ErrorBurst::default(),
        }
    }

    pub fn engine(&self) -> Result<Engine, BaselineError> {
        let resend = parse_duration(&self.alerts.resend, "alerts.resend")?;
        let quiet = parse_duration(&self.alerts.resolve_quiet, "alerts.resolve_quiet")?;
        let mut engine = Engine::new(EngineConfig {
            monitor: self.detectors.clone(),
            error_burst: self.error_burst.clone(),
            resend: Duration::from_millis(resend as u64),
            resolve_quiet: Duration::from_millis(quiet.max(0) as u64),
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
    /// Incidents opened, and how many fire now.
    pub incidents: u64,
    pub firing: u64,
    pub dropped_late: u64,
    pub prometheus_errors: u64,
    pub last_prometheus_error: Option<String>,
    pub saved_version: Option<u64>,
    pub reloaded_version: Option<u64>,
    /// Alert deliveries that failed (each retried), and the last error.
    pub delivery_errors: u64,
    pub last_delivery_error: Option<String>,
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
/// Batches (of up to [`BATCH`] events) a reader may be ahead of the
/// loop. A full channel makes the reader wait: a log read faster than it
/// is judged is held back, not dropped, and memory stays bounded.
pub const LOG_CHANNEL: usize = 64;
/// Events a reader hands on at once.
const BATCH: usize = 1024;

/// From a reader; sources are numbered (all finished logs together are
/// one source, merged by event time; each followed log is one).
enum Msg {
    Events(usize, Vec<Event>),
    Stats(LineStats),
    Error(String),
    Note(String),
    Done(usize),
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

/// The parse options of a `[[logs]]` entry, with its format and fields
/// detected from its first lines when the entry names no fields (and is
/// not `format = "combined"`, which has none to name); the second value
/// says what was detected. Stdin is not looked at ahead: the default
/// fields apply.
pub fn resolve_options(src: &LogSource) -> Result<(ParseOptions, Option<String>), BaselineError> {
    let mut opts = parse_options(src);
    if !src.fields.is_empty()
        || src.format.as_deref() == Some("combined")
        || src.path.as_os_str() == "-"
    {
        return Ok((opts, None));
    }
    let file = src.path.display().to_string();
    let d = crate::logs::detect(&file, &crate::logs::first_lines(&src.path)?)?;
    if src.format.is_none() {
        opts.format = Some(d.format);
    }
    if let Some(f) = d.fields {
        opts.fields = f;
    }
    Ok((opts, Some(d.note)))
}

/// Reads one log on its own thread. `tick`: poll a followed file on that
/// fixed cadence instead of adaptively. It waits while the channel is
/// full and ends when the loop is gone.
fn spawn_reader(
    index: usize,
    src: LogSource,
    stop: Arc<AtomicBool>,
    tx: Sender<Msg>,
    tick: Option<Duration>,
) {
    std::thread::spawn(move || {
        read_log(index, &src, stop, &tx, tick);
        let _ = tx.send(Msg::Done(index));
    });
}

/// Reads every finished (not followed) log on one thread, merged by event
/// time (see [`crate::replay`]): the windows do not depend on which
/// reader got ahead.
fn spawn_merged(index: usize, srcs: Vec<LogSource>, stop: Arc<AtomicBool>, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        read_merged(index, &srcs, &stop, &tx);
        let _ = tx.send(Msg::Done(index));
    });
}

fn read_merged(index: usize, srcs: &[LogSource], stop: &AtomicBool, tx: &Sender<Msg>) {
    let mut logs = match crate::replay::MergedLogs::open(srcs) {
        Ok(l) => l,
        Err(e) => {
            let _ = tx.send(Msg::Error(e.to_string()));
            return;
        }
    };
    for n in std::mem::take(&mut logs.detected) {
        let _ = tx.send(Msg::Note(format!("detected {n}")));
    }
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        match logs.next_event() {
            Ok(Some(ev)) => {
                batch.push(ev);
                if batch.len() >= BATCH {
                    let sent = tx
                        .send(Msg::Events(index, std::mem::take(&mut batch)))
                        .and_then(|()| tx.send(Msg::Stats(logs.take_stats())));
                    if sent.is_err() || stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Msg::Error(e.to_string()));
                break;
            }
        }
    }
    let _ = tx.send(Msg::Events(index, batch));
    let _ = tx.send(Msg::Stats(logs.take_stats()));
}

fn read_log(
    index: usize,
    src: &LogSource,
    stop: Arc<AtomicBool>,
    tx: &Sender<Msg>,
    tick: Option<Duration>,
) {
    let opts = match resolve_options(src) {
        Ok((opts, note)) => {
            if let Some(n) = note {
                let _ = tx.send(Msg::Note(format!("detected {n}")));
            }
            opts
        }
        Err(e) => {
            let _ = tx.send(Msg::Error(e.to_string()));
            return;
        }
    };
    let mut reader = match LogReader::open(&src.path) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Msg::Error(e.to_string()));
            return;
        }
    };
    if src.follow {
        let mut opts = FollowOptions::new(stop);
        if let Some(t) = tick {
            opts.poll_interval = t;
            opts.min_poll_interval = t;
        }
        reader = reader.follow(opts);
    }
    let mut parser = Parser::new(&opts);
    let mut stats = parser.new_stats();
    let mut buf = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        match reader.next_line(&mut buf) {
            Ok(Some(no)) => {
                if let Some(ev) = parser.parse_counted(no, &buf, &mut stats) {
                    batch.push(ev);
                }
                // Handed on before a read that may wait for input, so
                // the last lines before a quiet spell are not held back
                // until the next one comes.
                if batch.len() >= BATCH || !reader.has_buffered_line() {
                    let sent = tx
                        .send(Msg::Events(index, std::mem::take(&mut batch)))
                        .and_then(|()| {
                            tx.send(Msg::Stats(std::mem::replace(
                                &mut stats,
                                parser.new_stats(),
                            )))
                        });
                    if sent.is_err() {
                        // The loop has ended: nobody reads on.
                        return;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Msg::Error(e.to_string()));
                break;
            }
        }
    }
    let _ = tx.send(Msg::Events(index, batch));
    let _ = tx.send(Msg::Stats(stats));
}

/// Runs until `stop` is raised, or until every log is read to its end
/// when nothing is followed and no Prometheus is polled. `progress` gets a
/// line now and then and every alert transition.
pub fn run(
    cfg: &WatchConfig,
    engine: Engine,
    stop: Arc<AtomicBool>,
    progress: &mut dyn FnMut(&str),
) -> Result<WatchStats, BaselineError> {
    run_with(cfg, engine, stop, None, progress)
}

/// [`run`], with the profile store `[[profiles]]` read from (the server
/// passes its own).
pub fn run_with(
    cfg: &WatchConfig,
    engine: Engine,
    stop: Arc<AtomicBool>,
    profile_source: Option<&dyn ProfileSource>,
    progress: &mut dyn FnMut(&str),
) -> Result<WatchStats, BaselineError> {
    let (publisher, _readers) = feed::feed(engine.snapshot(now_ms()));
    let mut w = Watch::start(cfg, engine, stop, profile_source, &publisher, false)?;
    w.run(progress)?;
    Ok(w.finish())
}

/// How often and how late: the durations of the config, parsed.
struct Timing {
    width: i64,
    lateness: i64,
    save_every: Duration,
    tick: Option<Duration>,
}

impl Timing {
    fn of(cfg: &WatchConfig) -> Result<Timing, BaselineError> {
        Ok(Timing {
            width: parse_duration(&cfg.window, "window")?,
            lateness: parse_duration(&cfg.lateness, "lateness")?,
            save_every: Duration::from_millis(parse_duration(&cfg.save_every, "save_every")? as u64),
            tick: match &cfg.tick {
                Some(t) => Some(Duration::from_millis(parse_duration(t, "tick")? as u64)),
                None => None,
            },
        })
    }
}

/// What one pass has to do, decided after its message.
struct Due {
    finished: bool,
    stopping: bool,
    housekeeping: bool,
    poll: bool,
    save: bool,
    commands: usize,
}

/// The loop's state: the engine (its alone), the windower, the sources
/// and when each is next due.
struct Watch<'a> {
    cfg: &'a WatchConfig,
    timing: Timing,
    engine: Engine,
    publisher: &'a Publisher,
    stop: Arc<AtomicBool>,
    rx: Receiver<Msg>,
    /// Kept open: once every reader is done, a disconnected channel would
    /// return from the wait at once and the loop would spin while
    /// Prometheus keeps it running.
    _open: Sender<Msg>,
    readers: usize,
    /// Per source: when its last events came, and whether it ended
    /// (only with several sources, which get per-source watermarks).
    arrivals: Vec<(Instant, bool)>,
    /// Wall time without events after which a followed source stops
    /// holding windows open.
    idle_after: Duration,
    /// Runs until stopped, not until the logs end.
    live: bool,
    windower: Windower,
    windows: Vec<FeatureWindow>,
    stats: WatchStats,
    /// Lines for `progress` from the readers.
    notes: Vec<String>,
    proms: Vec<(Prometheus, &'a PromFeature)>,
    prom_last: Vec<i64>,
    profile_source: Option<&'a dyn ProfileSource>,
    profile_feats: &'a [ProfileFeatures],
    profile_last: Vec<i64>,
    polled: bool,
    next_poll: Instant,
    last_save: Instant,
    last_progress: Instant,
    next_housekeeping: Instant,
    /// `--alerts-out`, and the incidents it is following.
    incident_sink: Option<crate::replay::IncidentSink>,
    incidents: crate::replay::IncidentLog,
}

impl<'a> Watch<'a> {
    /// Checks the sources, reloads the saved baselines and starts a reader
    /// per log. `keep_alive`: run until stopped even with nothing to
    /// watch (an engine kept for alerts raised from outside).
    fn start(
        cfg: &'a WatchConfig,
        mut engine: Engine,
        stop: Arc<AtomicBool>,
        profile_source: Option<&'a dyn ProfileSource>,
        publisher: &'a Publisher,
        keep_alive: bool,
    ) -> Result<Watch<'a>, BaselineError> {
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
        let timing = Timing::of(cfg)?;
        let width = timing.width;
        let windower = Windower::new(WindowConfig {
            width_ms: width,
            lateness_ms: timing.lateness,
            ..WindowConfig::default()
        })?;
        let mut stats = WatchStats {
            lines: LineStats::new(ParseOptions::default().max_samples),
            ..WatchStats::default()
        };
        if let Some(dir) = &cfg.state_dir {
            stats.reloaded_version = engine.reload(dir)?;
        }
        let (tx, rx) = crossbeam_channel::bounded(LOG_CHANNEL);
        let finished: Vec<LogSource> = cfg.logs.iter().filter(|l| !l.follow).cloned().collect();
        let mut sources = 0;
        if !finished.is_empty() {
            spawn_merged(sources, finished, Arc::clone(&stop), tx.clone());
            sources += 1;
        }
        for src in cfg.logs.iter().filter(|l| l.follow) {
            spawn_reader(
                sources,
                src.clone(),
                Arc::clone(&stop),
                tx.clone(),
                timing.tick,
            );
            sources += 1;
        }
        let windower = if sources > 1 {
            windower.with_sources(sources)
        } else {
            windower
        };
        let live = keep_alive
            || cfg.logs.iter().any(|l| l.follow)
            || !cfg.prometheus.is_empty()
            || !profile_feats.is_empty();
        let proms: Vec<(Prometheus, &PromFeature)> = cfg
            .prometheus
            .iter()
            .flat_map(|p| p.features.iter().map(move |f| (Prometheus::new(&p.url), f)))
            .collect();
        let start_ms = now_ms();
        let now = Instant::now();
        Ok(Watch {
            cfg,
            engine,
            publisher,
            stop,
            rx,
            _open: tx,
            readers: sources,
            arrivals: if sources > 1 {
                vec![(Instant::now(), false); sources]
            } else {
                Vec::new()
            },
            idle_after: Duration::from_millis(width.max(timing.lateness) as u64),
            live,
            windower,
            windows: Vec::new(),
            stats,
            notes: Vec::new(),
            prom_last: vec![start_ms - width; proms.len()],
            polled: !proms.is_empty() || !profile_feats.is_empty(),
            proms,
            profile_source,
            profile_last: vec![(start_ms - width).div_euclid(width) * width; profile_feats.len()],
            profile_feats,
            timing,
            next_poll: now,
            last_save: now,
            last_progress: now,
            next_housekeeping: now,
            incident_sink: None,
            incidents: crate::replay::IncidentLog::default(),
        })
    }

    /// Passes until the logs end (nothing live) or the stop flag is
    /// raised.
    fn run(&mut self, progress: &mut dyn FnMut(&str)) -> Result<(), BaselineError> {
        self.publisher
            .publish_snapshot(self.engine.snapshot(now_ms()));
        loop {
            let due = self.take_input();
            let mut out = std::mem::take(&mut self.notes);
            if !self.windows.is_empty()
                || due.housekeeping
                || due.poll
                || due.save
                || due.commands > 0
            {
                self.judge_windows();
                if due.poll {
                    self.poll_prometheus(&mut out);
                    self.poll_profiles(&mut out);
                }
                // Right after the windows: this is what an alert waits for.
                self.engine.deliver(now_ms());
                self.persist(&due, &mut out)?;
                self.publish(&mut out);
            }
            if due.housekeeping {
                self.next_housekeeping = Instant::now() + HOUSEKEEPING;
            }
            for line in &out {
                progress(line);
            }
            self.report(progress);
            if due.finished || due.stopping {
                return Ok(());
            }
        }
    }

    /// How long the next wait may be: until the earliest of what is due,
    /// and never past the stop check.
    fn wait(&self) -> Duration {
        if let Some(t) = self.timing.tick {
            return t;
        }
        let now = Instant::now();
        let mut until = self
            .next_housekeeping
            .min(self.last_progress + Duration::from_secs(10))
            .saturating_duration_since(now)
            .min(STOP_CHECK);
        if self.live {
            until = until.min(until_clock(next_close_ms(
                now_ms(),
                self.timing.width,
                self.timing.lateness,
            )));
        }
        if self.polled {
            until = until.min(self.next_poll.saturating_duration_since(now));
        }
        if self.cfg.state_dir.is_some() {
            until =
                until.min((self.last_save + self.timing.save_every).saturating_duration_since(now));
        }
        until
    }

    /// Waits for one message (a log batch or a command) and closes the
    /// windows it allows; says what else is due.
    fn take_input(&mut self) -> Due {
        let wait = self.wait();
        // One message a pass: the windows a batch closes are judged and
        // their alerts delivered before the next batch is taken, so in a
        // replayed log an alert that soon resolves is still sent firing.
        let mut commands = 0;
        crossbeam_channel::select! {
            recv(self.rx) -> m => match m {
                Ok(Msg::Events(i, evs)) => {
                    self.stats.events += evs.len() as u64;
                    if let Some(a) = self.arrivals.get_mut(i) {
                        a.0 = Instant::now();
                        for ev in &evs {
                            self.windower.push_from(i, ev, &mut self.windows);
                        }
                    } else {
                        for ev in &evs {
                            self.windower.push(ev, &mut self.windows);
                        }
                    }
                }
                Ok(Msg::Stats(s)) => self.stats.lines.merge(&s),
                Ok(Msg::Error(e)) => self.notes.push(format!("log: {e}")),
                Ok(Msg::Note(n)) => self.notes.push(format!("log: {n}")),
                Ok(Msg::Done(i)) => {
                    self.readers -= 1;
                    if let Some(a) = self.arrivals.get_mut(i) {
                        a.1 = true;
                        self.windower.set_idle(i, true, &mut self.windows);
                    }
                }
                Err(_) => {}
            },
            recv(self.publisher.commands()) -> c => {
                if let Ok(c) = c {
                    self.publisher.apply(c, &mut self.engine);
                    commands = 1 + self.publisher.apply_commands(&mut self.engine);
                }
            },
            default(wait) => {}
        }
        let finished = self.readers == 0 && !self.live;
        let stopping = self.stop.load(Ordering::Relaxed);
        if finished || stopping {
            self.windower.flush(&mut self.windows);
        } else {
            for (i, (last, ended)) in self.arrivals.iter().enumerate() {
                if !ended && last.elapsed() >= self.idle_after {
                    self.windower.set_idle(i, true, &mut self.windows);
                }
            }
            // With several sources the clock moves time on only once all
            // are idle: before that, their own event times do.
            if self.live && self.windower.all_idle() {
                self.windower.advance(now_ms(), &mut self.windows);
            }
        }
        self.stats.dropped_late = self.windower.dropped_late();
        let now = Instant::now();
        Due {
            finished,
            stopping,
            // The fixed-cadence design did all of it on every pass.
            housekeeping: self.timing.tick.is_some()
                || now >= self.next_housekeeping
                || finished
                || stopping,
            poll: self.polled && now >= self.next_poll,
            save: self.cfg.state_dir.is_some()
                && (self.last_save.elapsed() >= self.timing.save_every || finished || stopping),
            commands,
        }
    }

    fn judge_windows(&mut self) {
        for w in self.windows.drain(..) {
            self.stats.windows += 1;
            self.stats.findings += self.engine.observe_window(&w).len() as u64;
        }
    }

    /// Every Prometheus feature since its last poll, a point a window.
    fn poll_prometheus(&mut self, out: &mut Vec<String>) {
        let (width, lateness) = (self.timing.width, self.timing.lateness);
        self.next_poll = Instant::now() + Duration::from_millis(width as u64);
        let end = now_ms() - lateness.min(width);
        let none = BTreeMap::new();
        for (i, (prom, f)) in self.proms.iter().enumerate() {
            if end <= self.prom_last[i] {
                continue;
            }
            // Checked when the config was read.
            let kind = f
                .kind
                .as_deref()
                .and_then(|k| k.parse().ok())
                .unwrap_or(FeatureKind::Gauge);
            let step = Duration::from_millis(width as u64);
            match prom.query_range(&f.query, self.prom_last[i] + width, end, step) {
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
                                self.engine
                                    .observe_resource(&f.service, &name, kind, t, x, &none)
                            } else {
                                self.engine.observe(&f.service, &name, kind, t, x, &none)
                            };
                            self.stats.findings += found.len() as u64;
                        }
                    }
                    self.prom_last[i] = end;
                }
                Err(err) => {
                    self.stats.prometheus_errors += 1;
                    self.stats.last_prometheus_error = Some(err.to_string());
                    out.push(format!("prometheus: {err} (retrying next window)"));
                }
            }
        }
    }

    /// Whole windows of the profile store that the agents' profiles
    /// (shipped every interval) have had time to reach.
    fn poll_profiles(&mut self, out: &mut Vec<String>) {
        let Some(source) = self.profile_source else {
            return;
        };
        let (width, lateness) = (self.timing.width, self.timing.lateness);
        let end = (now_ms() - lateness.max(width)).div_euclid(width) * width;
        let none = BTreeMap::new();
        for (i, f) in self.profile_feats.iter().enumerate() {
            if end <= self.profile_last[i] {
                continue;
            }
            match profiles::sample(source, f, self.profile_last[i], end, width) {
                Ok(samples) => {
                    for p in samples {
                        let e = &mut self.engine;
                        let found = if p.feature == "cpu_cores" {
                            e.observe_resource(
                                &p.service, &p.feature, p.kind, p.t_ms, p.value, &none,
                            )
                        } else {
                            e.observe(&p.service, &p.feature, p.kind, p.t_ms, p.value, &none)
                        };
                        self.stats.findings += found.len() as u64;
                    }
                    self.profile_last[i] = end;
                }
                Err(err) => out.push(format!("profiles: {err}")),
            }
        }
    }

    /// Picks up baselines saved by someone else (calibration) and saves
    /// the engine's own when due.
    fn persist(&mut self, due: &Due, out: &mut Vec<String>) -> Result<(), BaselineError> {
        let Some(dir) = &self.cfg.state_dir else {
            return Ok(());
        };
        if due.housekeeping {
            if let Some(v) = self.engine.reload(dir)? {
                out.push(format!(
                    "baselines: loaded version {v} from {}",
                    dir.display()
                ));
                self.stats.reloaded_version = Some(v);
            }
        }
        if due.save {
            let path = self.engine.save(dir, now_ms())?;
            self.stats.saved_version = Some(self.engine.version());
            self.last_save = Instant::now();
            if due.finished || due.stopping {
                out.push(format!("baselines: saved {}", path.display()));
            }
        }
        Ok(())
    }

    /// The pass's alert changes to the feed and the progress lines, and a
    /// new snapshot for readers.
    fn publish(&mut self, out: &mut Vec<String>) {
        out.extend(self.engine.drain_fit_lines());
        let transitions = self.engine.drain_transitions();
        if let Some(sink) = &mut self.incident_sink {
            if let Err(e) = self.incidents.observe(&self.engine, &transitions, sink) {
                out.push(format!("alerts-out: {e}"));
            }
        }
        self.publisher.publish_changes(&self.engine, &transitions);
        if !transitions.is_empty() {
            self.stats.incidents += transitions
                .iter()
                .filter(|t| matches!(t, Transition::Fired(_)))
                .count() as u64;
            self.stats.firing = self
                .engine
                .incidents()
                .iter()
                .filter(|i| i.firing())
                .count() as u64;
        }
        for t in &transitions {
            out.push(self.engine.describe(t));
        }
        self.publisher
            .publish_snapshot(self.engine.snapshot(now_ms()));
    }

    /// After the logs ended (nothing live): the engine still answers
    /// commands, resends and retries deliveries until stopped, for a
    /// server whose API reads and acknowledges its alerts.
    fn serve_until_stopped(&mut self, progress: &mut dyn FnMut(&str)) {
        while !self.stop.load(Ordering::Relaxed) {
            let mut applied = false;
            if let Ok(c) = self.publisher.commands().recv_timeout(STOP_CHECK) {
                self.publisher.apply(c, &mut self.engine);
                self.publisher.apply_commands(&mut self.engine);
                applied = true;
            }
            if applied || Instant::now() >= self.next_housekeeping {
                self.engine.deliver(now_ms());
                let mut out = Vec::new();
                self.publish(&mut out);
                for line in &out {
                    progress(line);
                }
                self.next_housekeeping = Instant::now() + HOUSEKEEPING;
            }
        }
    }

    /// A line of counts every ten seconds.
    fn report(&mut self, progress: &mut dyn FnMut(&str)) {
        if self.last_progress.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last_progress = Instant::now();
        let s = &self.stats;
        progress(&format!(
            "{} events, {} windows, {} findings, {} incidents ({} firing), {} malformed lines, {} late events dropped",
            s.events, s.windows, s.findings, s.incidents, s.firing, s.lines.malformed, s.dropped_late
        ));
    }

    /// Hands on the incidents still firing at the end.
    fn finish_incidents(&mut self, progress: &mut dyn FnMut(&str)) {
        if let Some(sink) = &mut self.incident_sink {
            if let Err(e) = self.incidents.finish(&self.engine, sink) {
                progress(&format!("alerts-out: {e}"));
            }
        }
    }

    fn finish(self) -> WatchStats {
        let mut stats = self.stats;
        stats.delivery_errors = self.engine.delivery_errors();
        stats.last_delivery_error = self.engine.last_delivery_error().map(str::to_string);
        stats
    }
}

/// Where a service's progress lines go.
pub type Progress = Box<dyn FnMut(&str) + Send>;

/// How a [`WatchService`] runs beside its config.
#[derive(Default)]
pub struct ServiceOptions {
    /// Where `[[profiles]]` are read from (the server's store).
    pub profile_source: Option<Box<dyn ProfileSource>>,
    /// A stop flag shared with others (the server's); one of its own
    /// otherwise. [`WatchService::stop`] raises it either way.
    pub stop: Option<Arc<AtomicBool>>,
    /// Gets each progress line and alert transition; logged when absent.
    pub progress: Option<Progress>,
    /// Gets each incident when it resolves, and those still firing when
    /// the watch ends (`--alerts-out`).
    pub incidents: Option<crate::replay::IncidentSink>,
    /// Once the logs end (nothing followed or polled), keep the engine
    /// answering commands until stopped instead of ending: a server's API
    /// still lists and acknowledges the alerts.
    pub keep_serving: bool,
}

/// The watch loop on its own thread, owning its engine: others read
/// alerts and baselines through its [`FeedHandle`] and ask for changes
/// with commands.
pub struct WatchService {
    feed: FeedHandle,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<WatchStats, BaselineError>>,
}

impl WatchService {
    /// Starts the loop of `cfg` with `engine`. Errors in the config's
    /// sources come back from [`join`](Self::join).
    pub fn spawn(
        cfg: WatchConfig,
        engine: Engine,
        opts: ServiceOptions,
    ) -> Result<WatchService, BaselineError> {
        Self::start(cfg, engine, opts, false)
    }

    /// An engine that watches nothing and runs until stopped: it keeps
    /// the alerts raised through commands (the autopilot's own) and
    /// delivers them to the engine's sinks.
    pub fn alerts_only(
        engine: Engine,
        opts: ServiceOptions,
    ) -> Result<WatchService, BaselineError> {
        Self::start(WatchConfig::nothing(), engine, opts, true)
    }

    fn start(
        cfg: WatchConfig,
        engine: Engine,
        opts: ServiceOptions,
        keep_alive: bool,
    ) -> Result<WatchService, BaselineError> {
        let stop = opts.stop.unwrap_or_default();
        let (publisher, feed) = feed::feed(engine.snapshot(now_ms()));
        let flag = Arc::clone(&stop);
        let mut progress = opts.progress.unwrap_or_else(|| {
            Box::new(|line: &str| tracing::info!(target: "perfpilot::baseline", "{line}"))
        });
        let source = opts.profile_source;
        let keep_serving = opts.keep_serving;
        let incidents = opts.incidents;
        let thread = std::thread::Builder::new()
            .name("perfpilot-watch".into())
            .spawn(move || {
                let source: Option<&dyn ProfileSource> = source.as_deref();
                let mut w = Watch::start(&cfg, engine, flag, source, &publisher, keep_alive)?;
                w.incident_sink = incidents;
                w.run(&mut *progress)?;
                w.finish_incidents(&mut *progress);
                if keep_serving {
                    w.serve_until_stopped(&mut *progress);
                }
                Ok(w.finish())
            })
            .map_err(|e| {
                BaselineError::invalid("watch", format!("cannot start its thread: {e}"))
            })?;
        Ok(WatchService { feed, stop, thread })
    }

    /// The engine's feed, snapshot and commands.
    pub fn feed(&self) -> FeedHandle {
        self.feed.clone()
    }

    /// Asks the loop to stop (it flushes its windows, delivers and saves
    /// first); [`join`](Self::join) waits for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the loop to end: at the end of its logs when nothing is
    /// live, else after [`stop`](Self::stop).
    pub fn join(self) -> Result<WatchStats, BaselineError> {
        self.thread
            .join()
            .map_err(|_| BaselineError::invalid("watch", "its thread panicked"))?
    }
}
