//! `perfpilot baseline ...` and `perfpilot gate`: the baseline engine from
//! the command line, and its watch loop started next to a server.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
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
    }
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
