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
//! ]
//!
//! [alerts]
//! alertmanager = "http://127.0.0.1:9093"
//! webhooks = ["http://127.0.0.1:8080/hook"]
//! resend = "1m"
//! resolve_after = 3
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::detectors::{FeatureKind, MonitorConfig};
use crate::engine::{Engine, EngineConfig};
use crate::error::BaselineError;
use crate::logs::{Event, FollowOptions, LineStats, LogFormat, LogReader, ParseOptions, Parser};
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
    #[serde(default)]
    pub logs: Vec<LogSource>,
    #[serde(default)]
    pub prometheus: Vec<PromSource>,
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

/// `10s`, `5m`, `1h`, `1d`, `500ms` in milliseconds.
pub fn parse_duration(s: &str, what: &str) -> Result<i64, BaselineError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        BaselineError::invalid(what, format!("{s:?} is not a duration like 10s, 5m, 1h"))
    })?;
    let ms = match unit {
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        "d" => 86_400e3,
        _ => {
            return Err(BaselineError::invalid(
                what,
                format!("{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"),
            ))
        }
    };
    let v = (n * ms).round() as i64;
    if v <= 0 {
        return Err(BaselineError::invalid(
            what,
            format!("{s:?} must be positive"),
        ));
    }
    Ok(v)
}

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
            BaselineError::invalid(place, e.message().to_string())
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
        if cfg.logs.is_empty() && cfg.prometheus.is_empty() {
            problems.push("nothing to watch: add [[logs]] or [[prometheus]]".into());
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

enum Msg {
    Events(Vec<Event>),
    Stats(LineStats),
    Error(String),
    Done,
}

fn parse_options(src: &LogSource) -> ParseOptions {
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

fn spawn_reader(src: LogSource, stop: Arc<AtomicBool>, tx: mpsc::Sender<Msg>) {
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
            reader = reader.follow(FollowOptions::new(Arc::clone(&stop)));
        }
        let mut parser = Parser::new(&opts);
        let mut stats = parser.new_stats();
        let mut buf = Vec::new();
        let mut batch = Vec::with_capacity(1024);
        let mut last_send = Instant::now();
        loop {
            match reader.next_line(&mut buf) {
                Ok(Some(no)) => {
                    if let Some(ev) = parser.parse_counted(no, &buf, &mut stats) {
                        batch.push(ev);
                    }
                    if batch.len() >= 1024 || last_send.elapsed() > Duration::from_millis(200) {
                        let _ = tx.send(Msg::Events(std::mem::take(&mut batch)));
                        let _ = tx.send(Msg::Stats(std::mem::replace(
                            &mut stats,
                            parser.new_stats(),
                        )));
                        last_send = Instant::now();
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
    let width = parse_duration(&cfg.window, "window")?;
    let lateness = parse_duration(&cfg.lateness, "lateness")?;
    let save_every = Duration::from_millis(parse_duration(&cfg.save_every, "save_every")? as u64);
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
    let live = cfg.logs.iter().any(|l| l.follow) || !cfg.prometheus.is_empty();
    for src in &cfg.logs {
        spawn_reader(src.clone(), Arc::clone(&stop), tx.clone());
        readers += 1;
    }
    drop(tx);
    let proms: Vec<(Prometheus, &PromFeature)> = cfg
        .prometheus
        .iter()
        .flat_map(|p| p.features.iter().map(move |f| (Prometheus::new(&p.url), f)))
        .collect();
    let mut prom_last: Vec<i64> = vec![now_ms() - width; proms.len()];
    let mut next_poll = Instant::now();
    let mut last_save = Instant::now();
    let mut last_progress = Instant::now();
    let mut windows = Vec::new();
    let none = BTreeMap::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Msg::Events(evs)) => {
                stats.events += evs.len() as u64;
                for ev in &evs {
                    windower.push(ev, &mut windows);
                }
            }
            Ok(Msg::Stats(s)) => stats.lines.merge(&s),
            Ok(Msg::Error(e)) => progress(&format!("log: {e}")),
            Ok(Msg::Done) => readers -= 1,
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
        let finished = readers == 0 && !live;
        let stopping = stop.load(Ordering::Relaxed);
        if finished || stopping {
            windower.flush(&mut windows);
        } else if live {
            windower.advance(now_ms(), &mut windows);
        }
        let transitions = {
            let mut e = engine
                .lock()
                .map_err(|_| BaselineError::invalid("engine", "poisoned"))?;
            let mut out = Vec::new();
            for w in windows.drain(..) {
                stats.windows += 1;
                stats.findings += e.observe_window(&w).len() as u64;
            }
            if !proms.is_empty() && Instant::now() >= next_poll {
                next_poll = Instant::now() + Duration::from_millis(width as u64);
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
                                    stats.findings +=
                                        e.observe(&f.service, &name, kind, t, x, &none).len()
                                            as u64;
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
            e.deliver(now_ms());
            if let Some(dir) = &cfg.state_dir {
                if let Some(v) = e.reload(dir)? {
                    out.push(format!(
                        "baselines: loaded version {v} from {}",
                        dir.display()
                    ));
                    stats.reloaded_version = Some(v);
                }
                if last_save.elapsed() >= save_every || finished || stopping {
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
            stats.dropped_late = windower.dropped_late();
            out
        };
        for line in &transitions {
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
