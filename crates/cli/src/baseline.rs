//! `perfpilot baseline ...` and `perfpilot gate`: the baseline engine from
//! the command line, and its watch loop started next to a server.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand, ValueEnum};
use perfpilot_baseline::drift::{self, DriftOptions};
use perfpilot_baseline::logs::ParseOptions;
use perfpilot_baseline::watch::{self, ServiceOptions, WatchConfig, WatchService};
use perfpilot_baseline::BaselineError;
use perfpilot_baseline_lab::gate::{self, GateOptions};
use perfpilot_baseline_lab::nab::{self, NabOptions, Profile};

use crate::exit::{self, Failure};
use crate::signals;

#[derive(Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub command: BaselineCommand,
}

#[derive(Subcommand)]
pub enum BaselineCommand {
    /// Learn baselines from request logs and Prometheus as they come, and
    /// raise alerts (to Alertmanager and webhooks) when a service leaves
    /// them. Runs until interrupted, or until its logs end when none is
    /// followed.
    #[command(after_help = WATCH_HELP)]
    Watch(WatchArgs),
    /// Run finished request logs (and metric series from CSV files)
    /// through the engine with the same defaults as watch, in event time
    /// (nothing followed, no clock read), and write one JSON line per
    /// incident.
    #[command(after_help = REPLAY_HELP)]
    Replay(ReplayArgs),
    /// Run perfpilot's detector over the Numenta Anomaly Benchmark under
    /// its rules and score it with NAB's scoring (all three profiles).
    Nab(NabArgs),
    /// Compare the latency distributions of two request logs (dev,
    /// staging, prod; before and after) per endpoint: Jensen–Shannon and
    /// KL divergence, p50 and p99 of each.
    Compare(CompareArgs),
    /// Summarise a request log (counts, errors, latency sketch) into a
    /// small JSON file that `perfpilot gate` accepts in place of the log.
    Summarize(SummarizeArgs),
    /// Score alerts against labelled incidents, per detector: time to
    /// detect (MTTD) and to acknowledge (MTTA), false positives per day,
    /// missed incidents, a NAB-style score and F1. The alerts come from
    /// replaying the watch config's logs, or from a saved
    /// `GET /api/v1/alerts`.
    #[command(after_help = LABELS_HELP)]
    Score(ScoreArgs),
    /// Tune detector parameters on labelled incidents (differential
    /// evolution over replays of the watch config's logs) and save the
    /// baselines learned with the best as a new version in the config's
    /// state_dir, which a running watch picks up.
    #[command(after_help = LABELS_HELP)]
    Calibrate(CalibrateArgs),
    /// The labelled scenario suite the engine's defaults are judged on:
    /// generate it from a seed, score an engine's incidents against its
    /// labels, or run it in process.
    #[command(subcommand)]
    Scenarios(ScenariosCommand),
}

#[derive(Subcommand)]
pub enum ScenariosCommand {
    /// Write every scenario of a seed to DIR/NAME/ (requests.log JSON
    /// lines, heap.csv where the scenario has a heap series, labels.json).
    Generate(ScenariosGenerateArgs),
    /// Score DIR/NAME/incidents.jsonl (as `perfpilot baseline replay
    /// --alerts-out` writes it) against DIR/NAME/labels.json, per
    /// scenario and in total.
    Score(ScenariosScoreArgs),
    /// Generate, run the engine with its default settings in event time
    /// and score, in process, over a range of seeds.
    Run(ScenariosRunArgs),
}

#[derive(Args)]
pub struct ScenariosGenerateArgs {
    /// The suite's seed: the same seed writes the same files (1001 and up
    /// are the test seeds, 1 to 20 the tuning ones).
    #[arg(long, default_value_t = 1001)]
    pub seed: u64,
    /// Where to write it: one folder per scenario.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct ScenariosScoreArgs {
    /// Suites as `generate` wrote them, with incidents.jsonl beside each
    /// scenario's labels; several are summed per scenario.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
}

#[derive(Args)]
pub struct ScenariosRunArgs {
    /// The first seed (the test seeds are 1001 and up; 1 to 20 are the
    /// ones the defaults were tuned on).
    #[arg(long, default_value_t = 1001)]
    pub seed: u64,
    /// The last seed (default: the first).
    #[arg(long)]
    pub to: Option<u64>,
}

#[derive(Args)]
pub struct LogArgs {
    /// The service of combined-format lines and of JSON lines without one.
    #[arg(long, default_value = "default")]
    pub service: String,
    /// JSON field names, as NAME=FIELD (ts, latency_ms, status, endpoint,
    /// service), e.g. --field latency_ms=duration.
    #[arg(long = "field", value_name = "NAME=FIELD")]
    pub fields: Vec<String>,
}

impl LogArgs {
    fn options(&self) -> exit::Result<ParseOptions> {
        let mut opts = ParseOptions {
            default_service: self.service.clone(),
            ..ParseOptions::default()
        };
        for f in &self.fields {
            let Some((name, field)) = f.split_once('=') else {
                return Err(Failure::new(
                    exit::USAGE,
                    anyhow!("--field {f:?}: expected NAME=FIELD, e.g. latency_ms=duration"),
                ));
            };
            let slot = match name {
                "ts" => &mut opts.fields.ts,
                "latency_ms" => &mut opts.fields.latency,
                "status" => &mut opts.fields.status,
                "endpoint" => &mut opts.fields.endpoint,
                "service" => &mut opts.fields.service,
                other => {
                    return Err(Failure::new(
                        exit::USAGE,
                        anyhow!(
                        "--field {other:?}: not one of ts, latency_ms, status, endpoint, service"
                    ),
                    ))
                }
            };
            *slot = field.to_string();
        }
        Ok(opts)
    }
}

#[derive(Args)]
pub struct CompareArgs {
    /// The first request log (JSON lines or combined format).
    pub a: PathBuf,
    /// The second request log.
    pub b: PathBuf,
    /// Match endpoints across services (environments whose service names
    /// differ).
    #[arg(long)]
    pub ignore_service: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Args)]
pub struct SummarizeArgs {
    /// The request log.
    pub log: PathBuf,
    /// Where to write the summary (JSON).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub logs: LogArgs,
}

#[derive(Args)]
pub struct GateArgs {
    /// The baseline run: a request log, `wrk --latency` output, or a
    /// summary from `perfpilot baseline summarize`.
    #[arg(long, value_name = "FILE")]
    pub baseline: PathBuf,
    /// The candidate run, in any of the same forms.
    #[arg(long, value_name = "FILE")]
    pub candidate: PathBuf,
    /// The largest tolerated worsening of p50, p99 or error rate, e.g. 5%.
    #[arg(long, default_value = "5%")]
    pub max_regression: String,
    /// A change counts when its p-value is below this.
    #[arg(long, default_value_t = 0.05)]
    pub significance: f64,
    #[command(flatten)]
    pub log: LogArgs,
}

const WATCH_HELP: &str = "The config is TOML, for example:

  window = \"10s\"
  state_dir = \"/var/lib/perfpilot/baselines\"

  [[logs]]
  path = \"/var/log/nginx/access.log\"   # \"-\" for stdin
  format = \"combined\"                  # or \"json\"
  service = \"web\"

  [[prometheus]]
  url = \"http://127.0.0.1:9090\"
  features = [{ service = \"checkout\", name = \"heap\", query = \"go_memstats_heap_inuse_bytes\", kind = \"memory\" }]

  [alerts]
  alertmanager = \"http://127.0.0.1:9093\"

See crates/baseline/src/watch.rs for every setting.";

#[derive(Args)]
pub struct WatchArgs {
    /// The watch config (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Print nothing but alerts and errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Also write one JSON line per incident here ("-" for stdout) when
    /// it resolves, and for those still firing when the watch ends.
    #[arg(long, value_name = "FILE")]
    pub alerts_out: Option<PathBuf>,
}

const REPLAY_HELP: &str = "Without --config, each log's format and JSON field names are detected
from its first lines (and printed): ts/timestamp/time;
latency_ms/duration_ms/request_time/elapsed; status/status_code/code;
endpoint/path/route/url; service/app/service_name.

--series [SERVICE/]NAME:KIND=FILE reads a CSV of timestamp,value lines
(header optional; RFC 3339 or Unix seconds/milliseconds) as a feature of
KIND: latency, rate, errors, memory (adds the leak detector), cpu or
gauge. SERVICE defaults to the logs' only service.

Each --alerts-out line: {\"id\", \"service\", \"starts_at\", \"raised_at\",
\"resolved_at\", \"severity\", \"summary\", \"findings\": [...]}.

Example:
  perfpilot baseline replay access.log --series heap:memory=heap.csv --alerts-out incidents.jsonl";

#[derive(Args)]
pub struct ReplayArgs {
    /// Request logs (JSON lines or combined format), read to their end and
    /// merged by event time. Without any, the config's [[logs]].
    pub logs: Vec<PathBuf>,
    /// A watch config: its [detectors], window and lateness, its logs
    /// when none are given, and the newest baseline version in its
    /// state_dir (loaded, checked against the input, never written).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A metric series: [SERVICE/]NAME:KIND=FILE (see below).
    #[arg(long = "series", value_name = "[SERVICE/]NAME:KIND=FILE")]
    pub series: Vec<String>,
    /// Where the incidents go, one JSON line each ("-" for stdout).
    #[arg(long, value_name = "FILE")]
    pub alerts_out: Option<PathBuf>,
    /// The service of combined-format lines and of JSON lines without one.
    #[arg(long)]
    pub service: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    Standard,
    #[value(name = "reward_low_FP_rate")]
    RewardLowFpRate,
    #[value(name = "reward_low_FN_rate")]
    RewardLowFnRate,
}

#[derive(Args)]
pub struct NabArgs {
    /// The NAB corpus: a directory with data/, labels/ and config/.
    #[arg(long, value_name = "DIR", default_value = "../shared/nab")]
    pub data: PathBuf,
    /// The profile broken down by category (all three are scored).
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// Also write the per-row scores in NAB's results layout here.
    #[arg(long, value_name = "DIR")]
    pub write_results: Option<PathBuf>,
    /// Score another detector's per-row results (NAB's layout) instead
    /// of running perfpilot's.
    #[arg(long, value_name = "DIR")]
    pub score_results: Option<PathBuf>,
}

fn bad_input(e: BaselineError) -> Failure {
    Failure::new(exit::BAD_INPUT, e)
}

pub fn run(args: BaselineArgs) -> exit::Result<()> {
    match args.command {
        BaselineCommand::Watch(a) => watch_cmd(a),
        BaselineCommand::Replay(a) => replay_cmd(a),
        BaselineCommand::Nab(a) => nab_cmd(a),
        BaselineCommand::Compare(a) => compare_cmd(a),
        BaselineCommand::Summarize(a) => summarize_cmd(a),
        BaselineCommand::Score(a) => score_cmd(a),
        BaselineCommand::Calibrate(a) => calibrate_cmd(a),
        BaselineCommand::Scenarios(c) => scenarios_cmd(c),
    }
}

fn scenarios_cmd(c: ScenariosCommand) -> exit::Result<()> {
    use perfpilot_baseline_lab::scenarios::{self, harness, score};
    match c {
        ScenariosCommand::Generate(a) => {
            let suite = scenarios::generate(a.seed);
            scenarios::write_suite(&suite, &a.out).map_err(bad_input)?;
            eprintln!(
                "perfpilot: wrote {} scenarios of seed {} to {}",
                suite.len(),
                a.seed,
                a.out.display()
            );
        }
        ScenariosCommand::Score(a) => {
            let mut table = score::SuiteScore::default();
            for dir in &a.dirs {
                table.extend(score::score_dir(dir).map_err(bad_input)?);
            }
            if a.dirs.len() > 1 {
                table = table.by_scenario();
            }
            print!("{table}");
        }
        ScenariosCommand::Run(a) => {
            let config = perfpilot_baseline::engine::EngineConfig::default();
            let mut table = score::SuiteScore::default();
            for seed in a.seed..=a.to.unwrap_or(a.seed).max(a.seed) {
                table.extend(harness::suite(seed, &config).map_err(bad_input)?.0);
            }
            print!("{}", table.by_scenario());
        }
    }
    Ok(())
}

fn compare_cmd(a: CompareArgs) -> exit::Result<()> {
    let parse = a.log.options()?;
    let opts = DriftOptions {
        ignore_service: a.ignore_service,
        ..DriftOptions::default()
    };
    let report = drift::compare_files(&a.a, &a.b, &parse, &opts).map_err(bad_input)?;
    print!("{report}");
    Ok(())
}

fn summarize_cmd(a: SummarizeArgs) -> exit::Result<()> {
    let parse = a.logs.options()?;
    let summary = gate::summarize(&a.log, &parse).map_err(bad_input)?;
    let json = summary.to_json().map_err(bad_input)?;
    std::fs::write(&a.output, json).with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!("perfpilot: wrote {}", a.output.display());
    Ok(())
}

/// Exit 0 when no regression, 1 when one (the CI step fails).
pub fn gate_cmd(a: GateArgs) -> exit::Result<()> {
    let max_regression =
        gate::parse_percent(&a.max_regression).map_err(|e| Failure::new(exit::USAGE, e))?;
    let report = gate::run(&GateOptions {
        baseline: a.baseline.clone(),
        candidate: a.candidate.clone(),
        max_regression,
        significance: a.significance,
        parse: a.log.options()?,
        ..GateOptions::default()
    })
    .map_err(bad_input)?;
    print!("{report}");
    if report.regressed() {
        return Err(Failure::new(
            exit::FAILURE,
            anyhow!("the candidate regressed beyond {}", a.max_regression),
        ));
    }
    Ok(())
}

fn nab_cmd(a: NabArgs) -> exit::Result<()> {
    let profile = a.profile.map(|p| match p {
        ProfileArg::Standard => Profile::Standard,
        ProfileArg::RewardLowFpRate => Profile::RewardLowFpRate,
        ProfileArg::RewardLowFnRate => Profile::RewardLowFnRate,
    });
    if !a.data.join("data").is_dir() {
        return Err(Failure::new(
            exit::BAD_INPUT,
            anyhow!(
                "{} is not a NAB corpus (no data/ directory in it): pass --data DIR",
                a.data.display()
            ),
        ));
    }
    eprintln!("perfpilot: scoring over {} ...", a.data.display());
    let report = match &a.score_results {
        Some(dir) => nab::score_results(&a.data, dir, None, profile),
        None => nab::run(&NabOptions {
            data: a.data.clone(),
            profile,
            write_results: a.write_results.clone(),
        }),
    }
    .map_err(bad_input)?;
    print!("{report}");
    Ok(())
}

fn watch_cmd(a: WatchArgs) -> exit::Result<()> {
    let cfg = WatchConfig::load(&a.config).map_err(bad_input)?;
    let engine = cfg.engine().map_err(bad_input)?;
    signals::install();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || loop {
        if signals::stop_requested() {
            flag.store(true, Ordering::SeqCst);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    });
    let quiet = a.quiet;
    let incidents = match &a.alerts_out {
        Some(p) => Some(incident_sink(p)?),
        None => None,
    };
    let service = WatchService::spawn(
        cfg,
        engine,
        ServiceOptions {
            stop: Some(stop),
            progress: Some(Box::new(move |line: &str| {
                let alert = line.starts_with("firing:") || line.starts_with("resolved:");
                if alert || !quiet {
                    eprintln!("perfpilot: {line}");
                }
            })),
            incidents,
            ..ServiceOptions::default()
        },
    )
    .map_err(bad_input)?;
    let stats = service.join().map_err(bad_input)?;
    eprintln!(
        "perfpilot: {} events in {} windows, {} findings in {} incidents ({} still firing); {} malformed lines, {} late events dropped",
        stats.events,
        stats.windows,
        stats.findings,
        stats.incidents,
        stats.firing,
        stats.lines.malformed,
        stats.dropped_late
    );
    for s in &stats.lines.samples {
        eprintln!("  line {}: {}: {}", s.line_no, s.reason, s.text);
    }
    if let Some(e) = &stats.last_prometheus_error {
        eprintln!(
            "perfpilot: Prometheus failed {} times, last: {e}",
            stats.prometheus_errors
        );
    }
    if let Some(err) = &stats.last_delivery_error {
        eprintln!(
            "perfpilot: {} alert deliveries failed, last: {err}",
            stats.delivery_errors
        );
    }
    Ok(())
}

/// A sink writing incidents as JSON lines to `path` ("-": stdout).
fn incident_sink(path: &Path) -> exit::Result<perfpilot_baseline::replay::IncidentSink> {
    use std::io::Write;
    let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        let f = std::fs::File::create(path)
            .with_context(|| format!("creating {}", path.display()))
            .map_err(|e| Failure::new(exit::BAD_INPUT, e))?;
        Box::new(std::io::BufWriter::new(f))
    };
    let mut out = out;
    let name = path.display().to_string();
    Ok(Box::new(move |line| {
        serde_json::to_writer(&mut out, line)
            .map_err(|e| BaselineError::invalid(&name, e.to_string()))?;
        out.write_all(b"\n")
            .and_then(|()| out.flush())
            .map_err(|e| BaselineError::invalid(&name, e.to_string()))
    }))
}

fn replay_cmd(a: ReplayArgs) -> exit::Result<()> {
    use perfpilot_baseline::replay::{self, Series};
    use perfpilot_baseline::series::SeriesSpec;
    use perfpilot_baseline::watch::{parse_duration, LogSource};
    use perfpilot_baseline::window::WindowConfig;

    let mut cfg = match &a.config {
        Some(p) => WatchConfig::load(p).map_err(bad_input)?,
        None => WatchConfig::nothing(),
    };
    if !a.logs.is_empty() || a.config.is_none() {
        cfg.logs = a
            .logs
            .iter()
            .map(|p| LogSource {
                path: p.clone(),
                format: None,
                service: a.service.clone(),
                follow: false,
                fields: Default::default(),
            })
            .collect();
    }
    for l in &mut cfg.logs {
        l.follow = false;
        if a.service.is_some() && l.service.is_none() {
            l.service = a.service.clone();
        }
    }
    let series = a
        .series
        .iter()
        .map(|s| SeriesSpec::parse(s).and_then(Series::load))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_input)?;
    if cfg.logs.is_empty() && series.is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            anyhow!("nothing to replay: give request logs, --series, or a --config with [[logs]]"),
        ));
    }
    // Nothing is sent anywhere: the incidents go to --alerts-out.
    cfg.alerts.alertmanager = None;
    cfg.alerts.webhooks.clear();
    let mut engine = cfg.engine().map_err(bad_input)?;
    if let Some(dir) = &cfg.state_dir {
        if let Some(v) = engine.reload(dir).map_err(bad_input)? {
            eprintln!(
                "perfpilot: baselines: loaded version {v} from {}",
                dir.display()
            );
        }
    }
    let window = WindowConfig {
        width_ms: parse_duration(&cfg.window, "window").map_err(bad_input)?,
        lateness_ms: parse_duration(&cfg.lateness, "lateness").map_err(bad_input)?,
        ..WindowConfig::default()
    };
    let mut sink: perfpilot_baseline::replay::IncidentSink = match &a.alerts_out {
        Some(p) => incident_sink(p)?,
        None => Box::new(|_| Ok(())),
    };
    let started = std::time::Instant::now();
    let s = replay::run(&cfg.logs, window, &series, &mut engine, &mut *sink).map_err(bad_input)?;
    let took = started.elapsed().as_secs_f64();
    for d in &s.detected {
        eprintln!("perfpilot: detected {d}");
    }
    for r in &s.relearned {
        eprintln!("perfpilot: {r}");
    }
    eprintln!(
        "perfpilot: {} events in {} windows, {} series points, {} findings, {} incidents; {} malformed lines, {} late events dropped ({took:.2} s)",
        s.events, s.windows, s.series_points, s.findings, s.incidents, s.lines.malformed, s.dropped_late
    );
    for m in &s.lines.samples {
        eprintln!("  line {}: {}: {}", m.line_no, m.reason, m.text);
    }
    if let Some((from, to)) = s.span {
        eprintln!(
            "perfpilot: event time {} to {}",
            perfpilot_baseline::alerts::rfc3339(from),
            perfpilot_baseline::alerts::rfc3339(to)
        );
    }
    Ok(())
}

/// Starts the watch loop of `config` in the background for a server
/// (with its store as the source of `[[profiles]]`); the returned handle is
/// the server's alerts API.
pub fn start_for_server(
    config: &Path,
    stop: Arc<AtomicBool>,
    store: Arc<dyn perfpilot_store::Store>,
) -> exit::Result<perfpilot_server::AlertsHandle> {
    let cfg = WatchConfig::load(config).map_err(bad_input)?;
    let engine = cfg.engine().map_err(bad_input)?;
    let service = WatchService::spawn(
        cfg,
        engine,
        ServiceOptions {
            profile_source: Some(Box::new(perfpilot_server::StoreProfiles(store))),
            stop: Some(stop),
            progress: Some(Box::new(|line: &str| {
                eprintln!("perfpilot baseline: {line}")
            })),
            keep_serving: true,
            incidents: None,
        },
    )
    .map_err(bad_input)?;
    Ok(perfpilot_server::AlertsHandle(watch_in_background(service)))
}

/// The service's feed; a thread waits for the service to end (with the
/// server's stop flag) and reports why it stopped early.
pub fn watch_in_background(service: WatchService) -> perfpilot_baseline::feed::FeedHandle {
    let feed = service.feed();
    std::thread::spawn(move || {
        if let Err(e) = service.join() {
            eprintln!("perfpilot baseline: stopped: {e}");
        }
    });
    feed
}

const LABELS_HELP: &str = "Labels are JSON:

  {\"incidents\": [
    {\"service\": \"shop\", \"name\": \"slow search\", \"feature\": \"latency\",
     \"start\": \"2026-11-22T10:08:00Z\", \"end\": \"2026-11-22T10:15:00Z\"}
  ]}

start and end: RFC 3339 or Unix milliseconds. feature (optional): a substring
the alert's feature label must contain (\"latency\", \"errors\", \"/search\").
An alert counts for an incident when raised from --slack before its start to
--grace after its end. See crates/baseline-lab/src/quality.rs.";

#[derive(Args)]
pub struct MatchArgs {
    /// The labelled incidents (JSON).
    #[arg(long, value_name = "FILE")]
    pub labels: PathBuf,
    /// How long before an incident's labelled start an alert still counts
    /// for it.
    #[arg(long, default_value = "1m")]
    pub slack: String,
    /// How long after its labelled end.
    #[arg(long, default_value = "1m")]
    pub grace: String,
}

impl MatchArgs {
    fn options(&self) -> exit::Result<perfpilot_baseline_lab::quality::ScoreOptions> {
        let ms = |s: &str, what: &str| {
            // parse_duration refuses zero, which is a fine slack.
            if s.trim()
                .trim_end_matches(char::is_alphabetic)
                .parse::<f64>()
                == Ok(0.0)
            {
                return Ok(0);
            }
            watch::parse_duration(s, what).map_err(|e| Failure::new(exit::USAGE, e))
        };
        Ok(perfpilot_baseline_lab::quality::ScoreOptions {
            slack_ms: ms(&self.slack, "--slack")?,
            grace_ms: ms(&self.grace, "--grace")?,
            ..Default::default()
        })
    }
}

#[derive(Args)]
pub struct ScoreArgs {
    /// The watch config (TOML) whose logs are replayed for alerts, and
    /// whose span (with --alerts) false positives per day are counted over.
    #[arg(long, value_name = "FILE", required_unless_present = "alerts")]
    pub config: Option<PathBuf>,
    /// Score these alerts (saved from GET /api/v1/alerts) instead of a
    /// replay's.
    #[arg(long, value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    #[command(flatten)]
    pub matching: MatchArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ObjectiveArg {
    Nab,
    F1,
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// The watch config (TOML): its logs are replayed, its [detectors]
    /// are the starting point, its state_dir receives the result.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub matching: MatchArgs,
    /// What to maximise: the NAB-style score (standard profile) or F1.
    #[arg(long, value_enum, default_value = "nab")]
    pub objective: ObjectiveArg,
    /// Generations of the differential-evolution search after the first
    /// population.
    #[arg(long, default_value_t = 20)]
    pub generations: u32,
    /// Parameter sets per generation (at least 4).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(4..))]
    pub population: u32,
    /// Seed of the search: the same seed, config and labels give the same
    /// result.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replays at once (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Save into this directory instead of the config's state_dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Tune and report, but save nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Hold back the last part of the logs by time (e.g. 30%): tune on
    /// the rest, and report the score on it next to the training score.
    #[arg(long, value_name = "PERCENT", conflicts_with = "test_config")]
    pub holdout: Option<String>,
    /// A second watch config whose logs are scored (not tuned on) with
    /// --test-labels: the score on data the search never saw.
    #[arg(long, value_name = "FILE", requires = "test_labels")]
    pub test_config: Option<PathBuf>,
    /// The labelled incidents of --test-config's logs.
    #[arg(long, value_name = "FILE", requires = "test_config")]
    pub test_labels: Option<PathBuf>,
}

/// `30%`, `30` or `0.3` as a fraction strictly between 0 and 1.
fn holdout_fraction(s: &str) -> exit::Result<f64> {
    let t = s.trim();
    let v: Option<f64> = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok().map(|p| p / 100.0),
        None => t
            .parse::<f64>()
            .ok()
            .map(|v| if v >= 1.0 { v / 100.0 } else { v }),
    };
    match v {
        Some(f) if f > 0.0 && f < 1.0 => Ok(f),
        _ => Err(Failure::new(
            exit::USAGE,
            anyhow!("--holdout {s:?}: expected a share of the logs like 30%"),
        )),
    }
}

fn score_cmd(a: ScoreArgs) -> exit::Result<()> {
    use perfpilot_baseline_lab::quality::{self, RaisedAlert, Replay};

    let opts = a.matching.options()?;
    let incidents = quality::load_labels(&a.matching.labels).map_err(bad_input)?;
    let replay = match &a.config {
        Some(path) => {
            let cfg = WatchConfig::load(path).map_err(bad_input)?;
            eprintln!("perfpilot: replaying the logs of {} ...", path.display());
            Some((Replay::load(&cfg).map_err(bad_input)?, cfg))
        }
        None => None,
    };
    let (alerts, span) = match (&a.alerts, &replay) {
        (Some(path), _) => {
            let alerts: Vec<RaisedAlert> = quality::load_alerts(path)
                .map_err(bad_input)?
                .into_iter()
                .map(RaisedAlert::saved)
                .collect();
            let span = match &replay {
                Some((r, _)) => r.span,
                // Without logs, what the alerts and labels cover.
                None => {
                    let times = alerts
                        .iter()
                        .map(|r| r.at_ms())
                        .chain(incidents.iter().flat_map(|i| [i.start_ms, i.end_ms]));
                    let (lo, hi) =
                        times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
                    if lo > hi {
                        (0, 0)
                    } else {
                        (lo, hi)
                    }
                }
            };
            (alerts, span)
        }
        (None, Some((r, cfg))) => {
            let run = r.run(&cfg.detectors).map_err(bad_input)?;
            (run.alerts, r.span)
        }
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                anyhow!("give --config (to replay its logs) or --alerts"),
            ))
        }
    };
    let report = quality::score(&alerts, &incidents, span, &opts);
    if a.json {
        let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
        println!("{json}");
    } else {
        print!("{report}");
    }
    Ok(())
}

fn calibrate_cmd(a: CalibrateArgs) -> exit::Result<()> {
    use perfpilot_baseline_lab::calibrate::{self, CalibrateOptions, Objective};
    use perfpilot_baseline_lab::quality::{self, Replay};

    let score = a.matching.options()?;
    let cfg = WatchConfig::load(&a.config).map_err(bad_input)?;
    // Before the search, not after it.
    let dir = match (&a.state_dir, &cfg.state_dir, a.dry_run) {
        (Some(d), _, _) | (None, Some(d), _) => Some(d.clone()),
        (None, None, true) => None,
        (None, None, false) => {
            return Err(bad_input(BaselineError::invalid(
                a.config.display().to_string(),
                "no state_dir to save the calibrated baselines in: add state_dir = \"DIR\", or pass --state-dir DIR or --dry-run",
            )))
        }
    };
    let incidents = quality::load_labels(&a.matching.labels).map_err(bad_input)?;
    let started = std::time::Instant::now();
    eprintln!("perfpilot: reading the logs of {} ...", a.config.display());
    let full = Replay::load(&cfg).map_err(bad_input)?;
    for d in &full.detected {
        eprintln!("perfpilot: detected {d}");
    }
    let holdout = a.holdout.as_deref().map(holdout_fraction).transpose()?;
    // Tuned on the head; the tail is held back.
    let split = holdout.map(|h| full.split_at(1.0 - h));
    let head;
    let replay: &Replay = match split {
        Some(t) => {
            head = full.head(t);
            &head
        }
        None => &full,
    };
    let train: Vec<_> = match split {
        Some(t) => incidents
            .iter()
            .filter(|i| i.start_ms < t)
            .cloned()
            .collect(),
        None => incidents.clone(),
    };
    let opts = CalibrateOptions {
        objective: match a.objective {
            ObjectiveArg::Nab => Objective::Nab,
            ObjectiveArg::F1 => Objective::F1,
        },
        population: a.population as usize,
        generations: a.generations as usize,
        seed: a.seed,
        threads: a.threads,
        score,
        error_burst: cfg.error_burst.clone(),
        ..CalibrateOptions::default()
    };
    eprintln!(
        "perfpilot: {} requests, {} incidents; a first population of {} and {} generations",
        replay.events,
        train.len(),
        opts.population,
        opts.generations
    );
    let mut cal = calibrate::calibrate(replay, &train, &cfg.detectors, &opts, &mut |g| {
        let p = g.best_params;
        let step = if g.index == 0 {
            "first population".to_string()
        } else {
            format!("generation {}/{}", g.index, g.of)
        };
        eprintln!(
            "perfpilot: {step}: best {} {} (breach {} of {}, cusum k {} h {}, margin {}, quantile {}, alpha {}); {} replays in {:.1} s",
            opts.objective.name(),
            opts.objective.format(g.best),
            p.breach_n,
            p.breach_n + 2,
            p.cusum_k,
            p.cusum_h,
            p.margin,
            p.upper_quantile,
            p.alpha,
            g.replays,
            started.elapsed().as_secs_f64()
        );
    })
    .map_err(bad_input)?;
    if let (Some(t), Some(h)) = (split, holdout) {
        let what = format!(
            "the last {:.0}% of the logs, from {}",
            h * 100.0,
            perfpilot_baseline::alerts::rfc3339(t)
        );
        cal.held_out = Some(
            calibrate::held_out(
                &full,
                &incidents,
                Some(t),
                &cfg.detectors,
                &cal,
                &opts,
                what,
            )
            .map_err(bad_input)?,
        );
    }
    if let (Some(tc), Some(tl)) = (&a.test_config, &a.test_labels) {
        let test_cfg = WatchConfig::load(tc).map_err(bad_input)?;
        let test_incidents = quality::load_labels(tl).map_err(bad_input)?;
        eprintln!("perfpilot: scoring the logs of {} ...", tc.display());
        let test = Replay::load(&test_cfg).map_err(bad_input)?;
        let what = format!("{} with {}", tc.display(), tl.display());
        cal.held_out = Some(
            calibrate::held_out(
                &test,
                &test_incidents,
                None,
                &cfg.detectors,
                &cal,
                &opts,
                what,
            )
            .map_err(bad_input)?,
        );
    }
    print!("{cal}");
    println!();
    print!("{}", cal.after_report);
    println!();
    match dir {
        Some(dir) if !a.dry_run => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let saved = calibrate::save(&full, &cal.tuned, &dir, now).map_err(bad_input)?;
            println!(
                "saved version {}: {} (a watch on {} loads it while running)",
                saved.version,
                saved.path.display(),
                dir.display()
            );
            if saved.carried > 0 {
                println!(
                    "kept {} monitors of version {} that the logs have no data for (Prometheus series, say) as they were",
                    saved.carried,
                    saved.version - 1
                );
            }
        }
        _ => println!("not saved (--dry-run)"),
    }
    println!();
    println!("Features the saved version has not seen get the watch config's [detectors]; to tune them too:");
    println!();
    print!("{}", cal.toml());
    Ok(())
}
