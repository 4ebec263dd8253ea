//! `perfpilot server`, `perfpilot agent` and `perfpilot up`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use perfpilot_agent::daemon::ShipStatus;
use perfpilot_agent::ship::ShipperConfig;
use perfpilot_agent::{Daemon, DaemonConfig, DaemonEvent, Scope, SessionConfig};
use perfpilot_store::embedded::{EmbeddedStore, Options};

use crate::exit::{self, Failure};
use crate::{
    record, signals, summary, AgentArgs, AutopilotArgs, AutopilotMode, NetArgs, ServerArgs, UpArgs,
};

pub fn parse_duration(s: &str, what: &str) -> exit::Result<Duration> {
    let ms = perfpilot_query::parse_duration(s)
        .map_err(|e| Failure::new(exit::USAGE, anyhow::anyhow!("{what}: {e}")))?;
    if ms <= 0 {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("{what} must be positive, not {s:?}"),
        ));
    }
    Ok(Duration::from_millis(ms as u64))
}

pub fn read_token(file: Option<&Path>) -> exit::Result<Option<String>> {
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))
        .map_err(|e| Failure::new(exit::BAD_INPUT, e))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(Failure::new(
            exit::BAD_INPUT,
            anyhow::anyhow!("the token file {} is empty", path.display()),
        ));
    }
    Ok(Some(token))
}

pub fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/var/lib/perfpilot")
    } else {
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/share/perfpilot"))
            .unwrap_or_else(|| PathBuf::from("perfpilot-data"))
    }
}

fn open_store(data: &Path, retention: &str, max_series: usize) -> exit::Result<EmbeddedStore> {
    let retention = parse_duration(retention, "--retention")?;
    EmbeddedStore::open(
        data,
        Options {
            retention_ms: retention.as_millis() as i64,
            max_series,
            ..Options::default()
        },
    )
    .with_context(|| format!("cannot open the store in {}", data.display()))
    .map_err(Failure::from)
}

fn runtime() -> exit::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::from)
}

/// Resolves when Ctrl-C or SIGTERM arrives.
async fn shutdown_signal(stop: Arc<AtomicBool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
    stop.store(true, Ordering::SeqCst);
}

async fn bind(listen: SocketAddr) -> exit::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
        .map_err(Failure::from)
}

fn server_config(
    listen: SocketAddr,
    token: Option<String>,
    limits: &crate::limits::LimitArgs,
    retention: &str,
) -> exit::Result<perfpilot_server::ServerConfig> {
    let retention = parse_duration(retention, "--retention")?;
    limits.apply(
        perfpilot_server::ServerConfig {
            listen,
            token,
            ..Default::default()
        },
        retention,
    )
}

/// `base` with the connection and query limits of the flags.
fn with_net(
    base: perfpilot_server::ServerConfig,
    net: &NetArgs,
) -> exit::Result<perfpilot_server::ServerConfig> {
    let at_least_one = |n: usize, flag: &str| {
        if n == 0 {
            Err(Failure::new(
                exit::USAGE,
                anyhow::anyhow!("{flag} must be at least 1"),
            ))
        } else {
            Ok(n)
        }
    };
    let defaults = perfpilot_server::QueryLimits::default();
    let query = perfpilot_server::QueryLimits {
        series: perfpilot_store::SeriesLimits {
            max_groups: at_least_one(net.max_query_groups, "--max-query-groups")?,
            max_points: at_least_one(net.max_query_points, "--max-query-points")?,
        },
        max_flame_nodes: at_least_one(net.max_flame_nodes, "--max-flame-nodes")?,
        timeout: parse_duration(&net.query_timeout, "--query-timeout")?,
        max_concurrent: match net.max_concurrent_queries {
            Some(n) => at_least_one(n, "--max-concurrent-queries")?,
            None => defaults.max_concurrent,
        },
    };
    let conn = perfpilot_server::ConnLimits {
        max_connections: at_least_one(net.max_connections, "--max-connections")?,
        header_timeout: parse_duration(&net.header_timeout, "--header-timeout")?,
        idle_timeout: parse_duration(&net.idle_timeout, "--idle-timeout")?,
        body_timeout: parse_duration(&net.body_timeout, "--body-timeout")?,
        body_min_rate: net.body_min_rate,
    };
    Ok(perfpilot_server::ServerConfig {
        query,
        conn,
        ..base
    })
}

/// Serving beyond loopback without a token: a warning, and a refusal while
/// the autopilot enforces unless `--insecure-no-auth` says otherwise.
fn check_exposure(
    who: &str,
    listen: SocketAddr,
    token_file: Option<&Path>,
    autopilot: &AutopilotArgs,
    insecure: bool,
) -> exit::Result<()> {
    if token_file.is_some() || listen.ip().is_loopback() {
        return Ok(());
    }
    let enforcing = autopilot.policies.is_some() && autopilot.autopilot == AutopilotMode::Enforce;
    if enforcing && !insecure {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!(
                "refusing to serve {listen} without a token while the autopilot enforces its \
                 policies: anyone reaching the port could pause it, approve its actions, roll \
                 back policies and post alerts. Give --auth-token-file FILE, listen on \
                 127.0.0.1, or pass --insecure-no-auth to serve it open anyway"
            ),
        ));
    }
    eprintln!(
        "perfpilot {who}: warning: {listen} is reachable beyond this host and no token is \
         required: anyone reaching it can read profiles and store data{}. Give \
         --auth-token-file FILE",
        if autopilot.autopilot_dir.is_some() || autopilot.policies.is_some() {
            ", post alerts and act on the autopilot"
        } else {
            ""
        }
    );
    Ok(())
}

/// The server's alerts and autopilot, started before it serves.
struct LoopParts {
    alerts: Option<perfpilot_server::AlertsHandle>,
    alerts_only: bool,
    autopilot: Option<perfpilot_server::AutopilotHandle>,
}

impl LoopParts {
    fn start(
        who: &str,
        baseline_config: Option<&Path>,
        a: &AutopilotArgs,
        data: &Path,
        store: &EmbeddedStore,
        stop: &Arc<AtomicBool>,
    ) -> exit::Result<LoopParts> {
        let (alerts, alerts_only) = alert_book(baseline_config, a, stop, store)?;
        let autopilot = start_autopilot(who, a, data, store, alerts.clone(), stop)?;
        Ok(LoopParts {
            alerts,
            alerts_only,
            autopilot,
        })
    }

    fn config(self, base: perfpilot_server::ServerConfig) -> perfpilot_server::ServerConfig {
        perfpilot_server::ServerConfig {
            alerts: self.alerts,
            alerts_only: self.alerts_only,
            autopilot: self.autopilot,
            ..base
        }
    }
}

/// The alerts the server keeps: the baseline engine's, learning from
/// `--baseline-config`; else, when the autopilot runs, a book for its own
/// alerts only (an action that made its target worse), which learns
/// nothing. The flag says which.
fn alert_book(
    baseline_config: Option<&Path>,
    autopilot: &AutopilotArgs,
    stop: &Arc<AtomicBool>,
    store: &EmbeddedStore,
) -> exit::Result<(Option<perfpilot_server::AlertsHandle>, bool)> {
    if let Some(f) = baseline_config {
        let handle =
            crate::baseline::start_for_server(f, Arc::clone(stop), Arc::new(store.clone()))?;
        return Ok((Some(handle), false));
    }
    if autopilot.policies.is_none() {
        return Ok((None, false));
    }
    let engine = perfpilot_baseline::engine::Engine::new(Default::default());
    let service = perfpilot_baseline::watch::WatchService::alerts_only(
        engine,
        perfpilot_baseline::watch::ServiceOptions {
            stop: Some(Arc::clone(stop)),
            ..Default::default()
        },
    )
    .map_err(|e| Failure::new(exit::BAD_INPUT, anyhow::anyhow!("{e}")))?;
    Ok((
        Some(perfpilot_server::AlertsHandle(
            crate::baseline::watch_in_background(service),
        )),
        true,
    ))
}

/// Opens the autopilot's directory and, with `--policies`, starts its
/// engine; `who` names the command in messages.
fn start_autopilot(
    who: &str,
    a: &AutopilotArgs,
    data: &Path,
    store: &EmbeddedStore,
    alerts: Option<perfpilot_server::AlertsHandle>,
    stop: &Arc<AtomicBool>,
) -> exit::Result<Option<perfpilot_server::AutopilotHandle>> {
    // Policies need an audit log: without --autopilot-dir it goes next to
    // the data.
    let dir = a
        .autopilot_dir
        .clone()
        .or_else(|| a.policies.as_ref().map(|_| data.join("autopilot")));
    let handle = match &dir {
        Some(dir) => Some(perfpilot_server::AutopilotHandle::open(dir).map_err(|e| {
            Failure::new(
                exit::BAD_INPUT,
                anyhow::anyhow!("the autopilot's audit log in {}: {e}", dir.display()),
            )
        })?),
        None => None,
    };
    // Without --policies, clap has refused `--autopilot enforce` and
    // `--prometheus`: there is no engine to start.
    if let (Some(handle), Some(policies)) = (&handle, &a.policies) {
        let mode = match a.autopilot {
            AutopilotMode::DryRun => perfpilot_server::AutopilotMode::DryRun,
            AutopilotMode::Enforce => perfpilot_server::AutopilotMode::Enforce,
        };
        let prometheus = a.prometheus.as_deref().map(|url| {
            // Asked every few seconds: a retry would only hold up the
            // other policies' decisions.
            let mut p = perfpilot_baseline::prom::Prometheus::new(url);
            p.retries = 0;
            p
        });
        handle
            .start_engine(
                policies,
                mode,
                perfpilot_server::sources(alerts, Some(Arc::new(store.clone())), prometheus)
                    .with_notices(policy_notices()),
                Arc::clone(stop),
            )
            .map_err(|e| Failure::new(exit::BAD_INPUT, anyhow::anyhow!("{e}")))?;
        eprintln!(
            "perfpilot {who}: autopilot in {} mode with the policies in {}",
            perfpilot_server::mode_name(mode),
            policies.display()
        );
    }
    Ok(handle)
}

/// What the server tells its operator about the policy files, on stderr
/// where its other messages go.
fn policy_notices() -> perfpilot_autopilot::runtime::sources::Notices {
    use perfpilot_autopilot::runtime::sources::Notice;
    Arc::new(|n: Notice<'_>| match n {
        Notice::Diagnostic(d) => eprintln!("{d}"),
        Notice::Message(m) => eprintln!("perfpilot server: {m}"),
    })
}

pub fn server(args: ServerArgs) -> exit::Result<()> {
    check_exposure(
        "server",
        args.listen,
        args.auth_token_file.as_deref(),
        &args.autopilot,
        args.insecure_no_auth,
    )?;
    let token = read_token(args.auth_token_file.as_deref())?;
    let base = with_net(
        server_config(args.listen, token.clone(), &args.limits, &args.retention)?,
        &args.net,
    )?;
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    let store = open_store(&data, &args.retention, args.limits.max_series())?;
    let rt = runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    // Listening first: with the port taken, no engine starts (and an
    // enforcing one never acts).
    let listener = rt.block_on(bind(args.listen))?;
    let loop_parts = LoopParts::start(
        "server",
        args.baseline_config.as_deref(),
        &args.autopilot,
        &data,
        &store,
        &stop,
    )?;
    rt.block_on(async {
        warn_without_ui();
        eprintln!(
            "perfpilot server: web UI and API on http://{} (data in {}, retention {}{})",
            args.listen,
            data.display(),
            args.retention,
            if token.is_some() {
                ", token required"
            } else {
                ""
            }
        );
        perfpilot_server::serve_on(
            listener,
            loop_parts.config(base),
            Arc::new(store.clone()),
            shutdown_signal(Arc::clone(&stop)),
        )
        .await
        .context("the server failed")
        .map_err(Failure::from)
    })?;
    store.flush().context("flushing the store at shutdown")?;
    Ok(())
}

pub struct AgentLoop {
    pub server: String,
    pub token: Option<String>,
    /// Read again while the server refuses the token.
    pub token_file: Option<PathBuf>,
    pub interval: Duration,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub sampling: crate::SamplingArgs,
    /// pid and tid as labels (series) on the server.
    pub pid_labels: bool,
    pub quiet: bool,
}

/// The continuous profiler: samples the host and ships a profile every
/// interval until `stop` is set (or a signal arrives). The loop itself is
/// the agent crate's [`Daemon`]; this prints its status line.
pub fn run_agent(a: AgentLoop, stop: &AtomicBool) -> exit::Result<()> {
    let scope = if a.sampling.pids.is_empty() {
        Scope::Host
    } else {
        Scope::Pids(a.sampling.pids.clone())
    };
    let session = SessionConfig {
        pid_labels: a.pid_labels,
        max_cpu_percent: a.sampling.max_cpu_percent(true),
        ..record::session_config(&a.sampling, scope)
    };
    let shipper = ShipperConfig {
        server: a.server.clone(),
        token: a.token.clone(),
        token_file: a.token_file.clone(),
        spool_dir: a.spool_dir.clone(),
        spool_max_bytes: a.spool_max_bytes,
        timeout: Duration::from_secs(10),
    };
    let progress = !a.quiet && std::io::stderr().is_terminal();
    let daemon = Daemon::spawn(
        DaemonConfig::new(session, shipper, a.interval),
        move |event| {
            // Notices are logged by the daemon (after this, so the status
            // line ends first); the status line with the counts is for a
            // terminal.
            if progress {
                match event {
                    DaemonEvent::Notice(_) => eprintln!(),
                    DaemonEvent::Shipped(s) => eprint!("\r{}   ", status_line(&s)),
                }
            }
        },
    )?;
    while !daemon.is_finished() {
        if stop.load(Ordering::SeqCst) || signals::stop_requested() {
            daemon.stop();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = daemon.join();
    if progress {
        eprintln!();
    }
    let stats = stats?;
    tracing::debug!(
        profiles = stats.profiles,
        deferred = stats.deferred,
        iterations = stats.iterations,
        longest_iteration_ms = stats.longest_iteration.as_secs_f64() * 1e3,
        busy_ms = stats.busy.as_secs_f64() * 1e3,
        "the agent stopped"
    );
    Ok(())
}

fn status_line(s: &ShipStatus) -> String {
    format!(
        "perfpilot agent: {} batches sent, {} spooled now, {} dropped, {} rejected{}",
        summary::count(s.stats.sent),
        s.spooled,
        summary::count(s.stats.dropped),
        summary::count(s.stats.rejected),
        s.last_error
            .as_deref()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default()
    )
}

pub fn agent(args: AgentArgs) -> exit::Result<()> {
    perfpilot_bpf::check_environment()?;
    let token = read_token(args.auth_token_file.as_deref())?;
    let interval = parse_duration(&args.interval, "--interval")?;
    signals::install();
    let stop = AtomicBool::new(false);
    run_agent(
        AgentLoop {
            server: args.server,
            token,
            token_file: args.auth_token_file,
            interval,
            spool_dir: args
                .spool_dir
                .unwrap_or_else(|| default_data_dir().join("spool")),
            spool_max_bytes: args.spool_max_mib * (1 << 20),
            sampling: args.sampling,
            pid_labels: args.labels.pid_labels,
            quiet: args.quiet,
        },
        &stop,
    )
}

pub fn up(args: UpArgs) -> exit::Result<()> {
    check_exposure(
        "up",
        args.listen,
        args.auth_token_file.as_deref(),
        &args.autopilot,
        args.insecure_no_auth,
    )?;
    let token = read_token(args.auth_token_file.as_deref())?;
    let base = with_net(
        server_config(args.listen, token.clone(), &args.limits, &args.retention)?,
        &args.net,
    )?;
    perfpilot_bpf::check_environment()?;
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    let store = open_store(&data, &args.retention, args.limits.max_series())?;
    let interval = parse_duration(&args.interval, "--interval")?;
    let rt = runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    let listener = rt.block_on(bind(args.listen))?;
    // Ctrl-C stops the agent first, so its last profile reaches a server
    // that is still up; the server stops once the agent has finished.
    rt.spawn(shutdown_signal(Arc::clone(&stop)));
    let (agent_done, server_stop) = tokio::sync::oneshot::channel::<()>();
    let loop_parts = LoopParts::start(
        "up",
        args.baseline_config.as_deref(),
        &args.autopilot,
        &data,
        &store,
        &stop,
    )?;
    let server = {
        let store: Arc<dyn perfpilot_store::Store> = Arc::new(store.clone());
        let config = loop_parts.config(base);
        rt.spawn(async move {
            perfpilot_server::serve_on(listener, config, store, async {
                let _ = server_stop.await;
            })
            .await
        })
    };
    warn_without_ui();
    eprintln!(
        "perfpilot up: profiling this host, UI and API on http://{} (data in {}{})",
        args.listen,
        data.display(),
        if token.is_some() {
            ", token required"
        } else {
            ""
        }
    );
    let agent = run_agent(
        AgentLoop {
            server: format!("http://{}", agent_address(args.listen)),
            // The in-process server read the token once: the same one.
            token,
            token_file: None,
            interval,
            spool_dir: data.join("spool"),
            spool_max_bytes: 256 << 20,
            sampling: args.sampling,
            pid_labels: args.labels.pid_labels,
            quiet: args.quiet,
        },
        &stop,
    );
    stop.store(true, Ordering::SeqCst);
    let _ = agent_done.send(());
    let served = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await });
    store.flush().context("flushing the store at shutdown")?;
    agent?;
    match served {
        Ok(Ok(Ok(()))) | Err(_) => Ok(()),
        Ok(Ok(Err(e))) => Err(Failure::from(anyhow::anyhow!("the server failed: {e}"))),
        Ok(Err(e)) => Err(Failure::from(anyhow::anyhow!(
            "the server task failed: {e}"
        ))),
    }
}

/// Where the built-in agent reaches its own server: an unspecified listen
/// address (0.0.0.0, ::) is not one to connect to.
fn agent_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, listen.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, listen.port()))
        }
        _ => listen,
    }
}

fn warn_without_ui() {
    if !perfpilot_server::ui_embedded() {
        eprintln!(
            "perfpilot: warning: this binary was built without the web UI (the API works); \
             run scripts/build-ui.sh, then cargo build"
        );
    }
}
