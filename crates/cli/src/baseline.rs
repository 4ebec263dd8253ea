//! `perfpilot baseline ...` and `perfpilot gate`: the baseline engine from
//! the command line, and its watch loop started next to a server.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand, ValueEnum};
use perfpilot_baseline::drift::{self, DriftOptions};
use perfpilot_baseline::gate::{self, GateOptions};
use perfpilot_baseline::logs::ParseOptions;
use perfpilot_baseline::nab::{self, NabOptions, Profile};
use perfpilot_baseline::watch::{self, WatchConfig};
use perfpilot_baseline::BaselineError;

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
                other => return Err(Failure::new(
                    exit::USAGE,
                    anyhow!(
                        "--field {other:?}: not one of ts, latency_ms, status, endpoint, service"
                    ),
                )),
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
        BaselineCommand::Nab(a) => nab_cmd(a),
        BaselineCommand::Compare(a) => compare_cmd(a),
        BaselineCommand::Summarize(a) => summarize_cmd(a),
    }
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
    let engine = Arc::new(Mutex::new(cfg.engine().map_err(bad_input)?));
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
    let stats = watch::run(&cfg, Arc::clone(&engine), stop, &mut |line| {
        let alert = line.starts_with("firing:") || line.starts_with("resolved:");
        if alert || !quiet {
            eprintln!("perfpilot: {line}");
        }
    })
    .map_err(bad_input)?;
    eprintln!(
        "perfpilot: {} events in {} windows, {} findings; {} malformed lines, {} late events dropped",
        stats.events, stats.windows, stats.findings, stats.lines.malformed, stats.dropped_late
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
    if let Ok(e) = engine.lock() {
        if let Some(err) = &e.last_delivery_error {
            eprintln!(
                "perfpilot: {} alert deliveries failed, last: {err}",
                e.delivery_errors
            );
        }
    }
    Ok(())
}

/// Starts the watch loop of `config` in the background for a server; the
/// returned handle is the server's alerts API.
pub fn start_for_server(
    config: &Path,
    stop: Arc<AtomicBool>,
) -> exit::Result<perfpilot_server::AlertsHandle> {
    let cfg = WatchConfig::load(config).map_err(bad_input)?;
    let engine = Arc::new(Mutex::new(cfg.engine().map_err(bad_input)?));
    let shared = Arc::clone(&engine);
    std::thread::spawn(move || {
        let result = watch::run(&cfg, shared, stop, &mut |line| {
            eprintln!("perfpilot baseline: {line}")
        });
        if let Err(e) = result {
            eprintln!("perfpilot baseline: stopped: {e}");
        }
    });
    Ok(perfpilot_server::AlertsHandle(engine))
}
