//! The `perfpilot` command: argument parsing and wiring only.

mod actions;
mod baseline;
mod client;
mod convert;
mod exit;
mod limits;
mod log;
mod query;
mod record;
mod serve;
mod signals;
mod summary;
mod top;
mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use perfpilot_model::Format;

const AFTER_HELP: &str = "\
Exit codes:
  0    success
  1    runtime failure
  2    bad command line
  3    not permitted: run as root, or grant CAP_BPF and CAP_PERFMON
  4    the kernel lacks something perfpilot needs (BTF, perf events, a BPF feature)
  5    a --pid does not exist
  6    an input file cannot be read or parsed
  127  the command after -- was not found

Logs (what the server, store and agent report while they run) go to
standard error: readable lines by default, JSON objects with --log-format
json. PERFPILOT_LOG (else RUST_LOG) chooses what is logged, as a filter
such as `warn` or `info,perfpilot_store=debug`; the default is info (warn
with --quiet).";

#[derive(Parser)]
#[command(
    name = "perfpilot",
    version,
    about = "Continuous profiling for Linux: complete, named CPU stacks of every process, from eBPF",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How logs are written to standard error: text lines, or JSON
    /// objects one a line (filter with PERFPILOT_LOG, e.g. warn).
    #[arg(long, global = true, value_enum, default_value_t = log::LogFormat::Text)]
    log_format: log::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Profile the host, some processes, or a command, and write the profile
    /// to a file.
    #[command(after_help = RECORD_HELP)]
    Record(RecordArgs),
    /// Show the hottest functions live, refreshed every second (q quits).
    #[command(after_help = TOP_HELP)]
    Top(TopArgs),
    /// Convert a profile between formats (pprof, folded, speedscope; SVG as
    /// output only).
    Convert(ConvertArgs),
    /// Profile this host continuously and serve the UI and API: agent and
    /// server in one process, with the embedded store.
    Up(UpArgs),
    /// Run the server: stores profiles from agents and Pyroscope SDKs,
    /// serves the web UI and answers queries (also as a Pyroscope data
    /// source for Grafana).
    Server(ServerArgs),
    /// Profile this host continuously and push to a server every interval.
    Agent(AgentArgs),
    /// Ask a server for a flame graph, top functions, a diff or a series.
    Query(QueryArgs),
    /// Learn what normal is for services (latency, errors, rates,
    /// Prometheus series) and alert when they leave it; score detectors.
    Baseline(baseline::BaselineArgs),
    /// Compare a candidate run with a baseline run (request logs, wrk
    /// output or summaries) on p50, p99 and error rate with statistical
    /// tests; exit 1 on a significant regression beyond the threshold.
    Gate(baseline::GateArgs),
    /// Check autopilot policy files (AutopilotPolicy YAML) and report every
    /// error as file:line:column; exit 6 if any file is invalid.
    Validate(validate::ValidateArgs),
    /// The autopilot's actions on a running server: list decisions with
    /// their evidence and impact, approve or reject queued ones, pause and
    /// resume.
    Actions(actions::ActionsArgs),
    /// The autopilot's policies on a running server: list them with their
    /// versions, or roll one back to an earlier version.
    Policy(actions::PolicyArgs),
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Address of the UI and API.
    #[arg(long, default_value = "127.0.0.1:4040")]
    listen: std::net::SocketAddr,
    /// Data directory (default /var/lib/perfpilot as root).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// How long profiles are kept, e.g. 7d, 30d.
    #[arg(long, default_value = "7d")]
    retention: String,
    /// How often a profile is stored.
    #[arg(long, default_value = "10s")]
    interval: String,
    /// A file holding the token every request must carry, as for `perfpilot
    /// server`; the built-in agent sends it too.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Serve without a token on an address beyond loopback even with
    /// `--autopilot enforce` (anyone reaching the port can then pause
    /// the autopilot, approve its actions and post alerts).
    #[arg(long, conflicts_with = "auth_token_file")]
    insecure_no_auth: bool,
    /// Also run the baseline engine with this watch config (TOML, as
    /// `perfpilot baseline watch`); its alerts are served at
    /// /api/v1/alerts.
    #[arg(long, value_name = "FILE")]
    baseline_config: Option<PathBuf>,
    #[command(flatten)]
    autopilot: AutopilotArgs,
    #[command(flatten)]
    labels: AgentLabelArgs,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    limits: limits::LimitArgs,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Args)]
struct ServerArgs {
    /// Address of the web UI and API (4040: Pyroscope SDKs work unchanged).
    #[arg(long, default_value = "127.0.0.1:4040")]
    listen: std::net::SocketAddr,
    /// Data directory (default /var/lib/perfpilot as root, else
    /// ~/.local/share/perfpilot).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// How long profiles are kept, e.g. 7d, 30d.
    #[arg(long, default_value = "7d")]
    retention: String,
    /// A file holding the token every ingest and query must carry
    /// (Authorization: Bearer TOKEN, or as the basic-auth password).
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Serve without a token on an address beyond loopback even with
    /// `--autopilot enforce`.
    #[arg(long, conflicts_with = "auth_token_file")]
    insecure_no_auth: bool,
    /// Also run the baseline engine with this watch config (TOML, as
    /// `perfpilot baseline watch`); its alerts are served at
    /// /api/v1/alerts.
    #[arg(long, value_name = "FILE")]
    baseline_config: Option<PathBuf>,
    #[command(flatten)]
    autopilot: AutopilotArgs,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    limits: limits::LimitArgs,
}

/// Connections and queries: limits shared by `server` and `up`
/// (docs/LIMITS.md).
#[derive(Args)]
struct NetArgs {
    /// Most connections open at once; at the cap the longest-idle one is
    /// closed for a new one (lowered to fit the open-file limit).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_connections: usize,
    /// Time a client has to send a request's header.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    header_timeout: String,
    /// Time a keep-alive connection may wait for its next request, and a
    /// response may wait for its client to read.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    idle_timeout: String,
    /// Longest pause in a request body.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    body_timeout: String,
    /// Bytes per second a request body must average after its first
    /// --body-timeout.
    #[arg(long, value_name = "BYTES", default_value_t = 16384)]
    body_min_rate: u64,
    /// A query not answered by then gets 503.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    query_timeout: String,
    /// Queries computed at once (default: the number of CPUs, at least 2);
    /// more wait within their timeout.
    #[arg(long, value_name = "N")]
    max_concurrent_queries: Option<usize>,
    /// Most groups a time series may be split into (group_by).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_query_groups: usize,
    /// Most points (groups × steps) a time series may have.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_query_points: usize,
    /// Most nodes a flame graph may be asked for (max_nodes, Grafana's
    /// maxNodes).
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    max_flame_nodes: usize,
}

/// The autopilot's flags, shared by `server` and `up`.
#[derive(Args)]
struct AutopilotArgs {
    /// Receive Alertmanager's webhooks at /api/v1/alertmanager and keep the
    /// autopilot's durable audit log (audit.jsonl, served at
    /// /api/v1/audit) in this directory.
    #[arg(long, value_name = "DIR")]
    autopilot_dir: Option<PathBuf>,
    /// Run the autopilot with the AutopilotPolicy files (*.yaml, *.yml) in
    /// this directory, reloaded when they change; invalid files are
    /// reported and skipped. The audit log goes to --autopilot-dir, by
    /// default DATA/autopilot.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// dry-run records what the autopilot would do; enforce runs it.
    // Only an explicit `enforce` needs policies: clap checks `requires_if`
    // against the command line, never against the default.
    #[arg(long, value_enum, default_value_t = AutopilotMode::DryRun,
          requires_if("enforce", "policies"))]
    autopilot: AutopilotMode,
    /// The Prometheus that policies' `prometheus` signals query, e.g.
    /// http://127.0.0.1:9090.
    #[arg(long, value_name = "URL", requires = "policies")]
    prometheus: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AutopilotMode {
    DryRun,
    Enforce,
}

#[derive(Args)]
struct AgentArgs {
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The server, e.g. http://perfpilot:4040.
    #[arg(long)]
    server: String,
    /// How often a profile is pushed.
    #[arg(long, default_value = "10s")]
    interval: String,
    /// Where batches wait while the server is unreachable (default
    /// /var/lib/perfpilot/spool as root).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Most spooled data kept; the oldest batches go first.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    spool_max_mib: u64,
    /// A file holding the server's token (read again while the server
    /// refuses it, so fixing the file is enough).
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    #[command(flatten)]
    labels: AgentLabelArgs,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// How the agent labels what it ships.
#[derive(Args)]
struct AgentLabelArgs {
    /// Also label samples with their pid and tid. On a server every label
    /// set is a series: this makes one per process and thread, which
    /// short-lived processes turn into thousands (without it, processes
    /// of one program share theirs).
    #[arg(long)]
    pid_labels: bool,
}

#[derive(Args)]
struct QueryArgs {
    #[command(subcommand)]
    command: QueryCommand,
}

#[derive(Subcommand)]
enum QueryCommand {
    /// A merged flame graph (folded stacks on stdout by default).
    Flamegraph(FlamegraphArgs),
    /// Functions by self and total share.
    Top(TopArgs2),
    /// What changed between a base selection and a target selection, with
    /// a significance test per function.
    Diff(DiffArgs),
    /// Values over time, optionally grouped by labels or for one function.
    Series(SeriesArgs),
}

#[derive(Args, Clone)]
struct QueryCommon {
    #[command(flatten)]
    conn: client::Conn,
    /// A label selector, e.g. '{service_name="checkout"}', optionally after
    /// a profile type: 'process_cpu:cpu:nanoseconds:cpu:nanoseconds{...}'.
    #[arg(long, default_value = "{}")]
    query: String,
    /// Start: now-1h, an RFC 3339 time, or Unix seconds.
    #[arg(long, default_value = "now-1h")]
    from: String,
    /// End.
    #[arg(long, default_value = "now")]
    until: String,
    /// Write here instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct FlamegraphArgs {
    #[command(flatten)]
    common: QueryCommon,
    /// folded, json, svg, speedscope or pprof.
    #[arg(long, short = 'f')]
    format: Option<String>,
    /// Most nodes in a json flame graph; the rest is summed into "other".
    #[arg(long)]
    max_nodes: Option<usize>,
}

#[derive(Args)]
struct TopArgs2 {
    #[command(flatten)]
    common: QueryCommon,
    /// text (default) or json.
    #[arg(long, short = 'f')]
    format: Option<String>,
    /// Most functions listed.
    #[arg(long, default_value_t = 30)]
    limit: usize,
}

#[derive(Args)]
struct DiffArgs {
    #[command(flatten)]
    common: QueryCommon,
    /// The base selection's selector (default: --query).
    #[arg(long)]
    base_query: Option<String>,
    /// The base selection's start (default: --from).
    #[arg(long)]
    base_from: Option<String>,
    /// The base selection's end (default: --until).
    #[arg(long)]
    base_until: Option<String>,
    /// text (default) or json.
    #[arg(long, short = 'f')]
    format: Option<String>,
    /// Most functions printed in text output (json has every row).
    #[arg(long, default_value_t = 30)]
    limit: usize,
}

#[derive(Args)]
struct SeriesArgs {
    #[command(flatten)]
    common: QueryCommon,
    /// Step, e.g. 10s, 1m (default: about 300 points).
    #[arg(long)]
    step: Option<String>,
    /// Comma-separated label names to group by.
    #[arg(long)]
    group_by: Option<String>,
    /// Also the value of stacks containing this function (its share).
    #[arg(long)]
    function: Option<String>,
    /// text (default) or json.
    #[arg(long, short = 'f')]
    format: Option<String>,
}

const RECORD_HELP: &str = "\
Examples:
  perfpilot record -o host.pb.gz --duration 30          # the whole host for 30 s
  perfpilot record -o app.svg --pid 4242 --duration 10  # one process, as a flame graph
  perfpilot record -o run.folded -- ./bench --iters 5   # a command and its children

Without --pid or a command, every process on the host is sampled (idle CPUs
are left out unless --include-idle). Stacks are complete for binaries built
without frame pointers: perfpilot unwinds them in the kernel from their
.eh_frame tables. CPython 3.11 processes show their Python functions where
the interpreter ran them. Frames without a symbol show as [object file].
perfpilot does not sample itself; the summary gives its own CPU time and
memory. Press Ctrl-C to stop early; the profile is still written.";

const TOP_HELP: &str = "\
Keys: q or Esc quits, s switches sorting between self and total, p pauses.
Columns: SELF% is the share of samples where the function was running,
TOTAL% the share where it was on the stack. --batch N prints N plain-text
snapshots instead (for scripts and logs).";

#[derive(Args)]
struct SamplingArgs {
    /// Samples per second on each CPU.
    #[arg(long = "freq", short = 'F', value_name = "HZ", default_value_t = 99,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    frequency: u64,
    /// Sample only this process (repeatable).
    #[arg(long = "pid", short = 'p', value_name = "PID")]
    pids: Vec<u32>,
    /// Also count samples of idle CPUs.
    #[arg(long)]
    include_idle: bool,
    /// Leave kernel frames out of stacks.
    #[arg(long)]
    no_kernel: bool,
    /// Most unwind-table rows kept in the kernel, 12 bytes each (memory is
    /// taken only for the object files actually sampled); objects beyond
    /// it are unwound with frame pointers.
    #[arg(long, value_name = "ROWS", default_value_t = 4 << 20)]
    unwind_rows: u64,
    /// Samples taken before their process's unwind tables are loaded (a
    /// process's first instructions) have their stack copied and unwound
    /// once the tables are ready: 500 copies per process at first, then
    /// at most this many per process per second (0: unwind them with frame
    /// pointers instead).
    #[arg(long, value_name = "N", default_value_t = 50)]
    raw_stack_rate: u32,
    /// Most memory for such copies, both as they arrive and while they
    /// wait for their tables; beyond it arriving copies keep only their
    /// leaf frame, and waiting ones are unwound with the tables there are.
    #[arg(long, value_name = "MIB", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    raw_stack_memory: u32,
    /// Object files whose DWARF debug information is larger are named from
    /// their symbol table only (function names, without inlined functions
    /// or lines): reading it takes memory in proportion.
    #[arg(long, value_name = "MIB", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    max_dwarf_mib: u64,
    /// Symbol tables and DWARF kept parsed, in MiB (an object file counts
    /// twice its symbol tables, plus the DWARF read); past it the least
    /// recently used object files are parsed again when they have new
    /// addresses (one larger than this alone, after each use).
    #[arg(long, value_name = "MIB", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    symbol_cache_mib: u64,
    /// Profiles to collect, comma-separated: cpu (on-CPU samples), offcpu
    /// (time threads spend blocked, by the stack they blocked at), wall
    /// (on- plus off-CPU time, blocked or waiting for a CPU: all of each
    /// thread's time; it records every switch), alloc (allocations by
    /// stack, sampled by bytes: allocated in each interval and in use at
    /// its end; uprobes on the C library's malloc family), lock (futex
    /// waits: how often and how long threads waited, by the stack that
    /// waited). `top` shows one of cpu, offcpu, wall and lock.
    #[arg(
        long,
        value_name = "TYPES",
        value_delimiter = ',',
        default_value = "cpu"
    )]
    profiles: Vec<ProfileKind>,
    /// Off-CPU: blocks shorter than this many microseconds are not counted
    /// (their time is left out, not attributed elsewhere).
    #[arg(long, value_name = "US", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000_000))]
    offcpu_min_block_us: u64,
    /// Off-CPU: record one blocking switch in N, chosen at random; each
    /// recorded block counts N times (for hosts with very many switches).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    offcpu_sample_every: u32,
    /// Lock: futex waits shorter than this many microseconds are not
    /// counted (neither as a contention nor as delay) and cost no
    /// unwinding.
    #[arg(long, value_name = "US", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000_000))]
    lock_min_wait_us: u64,
    /// Lock: time one futex wait in N, chosen at random; each counted wait
    /// stands for N (for programs with very many waits).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    lock_sample_every: u32,
    /// Allocations: sample once per this many bytes allocated, on average
    /// (each sample stands for what it represents). Smaller: more detail
    /// for small heaps, more map work; the probes' own cost per call does
    /// not change.
    #[arg(long, value_name = "BYTES", default_value_t = 512 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=1 << 31))]
    alloc_sample_bytes: u64,
    /// Allocations: most probe hits a second (each call to a probed
    /// function traps into the kernel, a few microseconds each; an
    /// allocation hits two, a free one). Past it the probes are detached
    /// for long enough to average it: allocations then go uncounted and
    /// in-use restarts (said in the profile). 0: never detached.
    #[arg(long, value_name = "HITS", default_value_t = 0)]
    alloc_max_probe_rate: u64,
    /// Most CPU the profiler may use, in percent of one core: its own CPU
    /// time plus its BPF programs' run time (which the profiled threads
    /// pay). Over it, each profile type samples less (never below a
    /// floor: 10 Hz; 1 in 64 switches) and its values are weighted by
    /// the rate each sample was taken at; the profiles' comments say what
    /// was shed. Default for `agent` and `up`: 1 % per 16 CPUs, at least
    /// 1 %; `record` and `top` have none unless given (they run for a
    /// while, at the rate asked). `off`: no budget.
    #[arg(long, value_name = "PERCENT", value_parser = parse_max_cpu)]
    max_cpu: Option<MaxCpu>,
}

/// `--max-cpu`: a budget, or none.
#[derive(Clone, Copy, Debug, PartialEq)]
enum MaxCpu {
    Percent(f64),
    Off,
}

fn parse_max_cpu(text: &str) -> Result<MaxCpu, String> {
    let t = text.trim().trim_end_matches('%');
    if t.eq_ignore_ascii_case("off") {
        return Ok(MaxCpu::Off);
    }
    match t.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100_000.0 => Ok(MaxCpu::Percent(p)),
        _ => Err(format!(
            "expected a percentage of one core above 0 (e.g. 1 or 0.5), or off, not {text:?}"
        )),
    }
}

/// A profile type `--profiles` can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProfileKind {
    Cpu,
    Offcpu,
    Wall,
    Alloc,
    Lock,
}

impl SamplingArgs {
    fn wants(&self, kind: ProfileKind) -> bool {
        self.profiles.contains(&kind)
    }

    /// The budget in percent of one core (`None`: no budget). Always-on
    /// profiling (`continuous`) has one by default.
    fn max_cpu_percent(&self, continuous: bool) -> Option<f64> {
        match self.max_cpu {
            Some(MaxCpu::Percent(p)) => Some(p),
            Some(MaxCpu::Off) => None,
            None if !continuous => None,
            None => {
                // Every online CPU is sampled, whatever this process may
                // run on.
                let cpus = perfpilot_bpf::online_cpus().map_or(1, |c| c.len());
                Some(perfpilot_agent::budget::default_max_cpu_percent(cpus))
            }
        }
    }

    /// The allocation profiling settings when `--profiles` has alloc.
    fn alloc(&self) -> Option<perfpilot_agent::alloc::AllocConfig> {
        self.wants(ProfileKind::Alloc)
            .then(|| perfpilot_agent::alloc::AllocConfig {
                sample_bytes: self.alloc_sample_bytes,
                max_probe_rate: self.alloc_max_probe_rate,
                ..Default::default()
            })
    }

    /// The off-CPU settings when `--profiles` has offcpu or wall.
    fn offcpu(&self) -> Option<perfpilot_agent::session::OffCpuConfig> {
        (self.wants(ProfileKind::Offcpu) || self.wants(ProfileKind::Wall)).then(|| {
            perfpilot_agent::session::OffCpuConfig {
                min_block_ns: self.offcpu_min_block_us * 1000,
                sample_every: self.offcpu_sample_every,
                wall: false,
            }
        })
    }

    /// The lock settings when `--profiles` has lock.
    fn lock(&self) -> Option<perfpilot_agent::session::LockConfig> {
        self.wants(ProfileKind::Lock)
            .then_some(perfpilot_agent::session::LockConfig {
                min_wait_ns: self.lock_min_wait_us * 1000,
                sample_every: self.lock_sample_every,
            })
    }
}

#[derive(Args)]
struct RecordArgs {
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Stop after this many seconds (default: until Ctrl-C, or until the
    /// command exits).
    #[arg(long, short = 'd', value_name = "SECS")]
    duration: Option<f64>,
    /// Output format; by default from the file extension (.pb.gz, .folded,
    /// .svg, .json).
    #[arg(long, short = 'f', value_enum)]
    format: Option<FormatArg>,
    /// Where to write the profile.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// A command to start and profile, with its children, until it exits.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Args)]
struct TopArgs {
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Seconds of samples the table covers (a sliding window).
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    window: u64,
    /// Print this many plain-text snapshots, one a second, then exit.
    #[arg(long, value_name = "N")]
    batch: Option<u32>,
    /// Rows in a --batch snapshot.
    #[arg(long, value_name = "N", default_value_t = 20)]
    rows: usize,
}

#[derive(Args)]
struct ConvertArgs {
    /// The profile to read; its format is detected from its content.
    input: PathBuf,
    /// Where to write.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Output format; by default from the output file's extension.
    #[arg(long, short = 'f', value_enum)]
    format: Option<FormatArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Pprof,
    Folded,
    Svg,
    Speedscope,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Pprof => Format::Pprof,
            FormatArg::Folded => Format::Folded,
            FormatArg::Svg => Format::Svg,
            FormatArg::Speedscope => Format::Speedscope,
        }
    }
}

/// The output format: the flag, else the file's extension.
fn output_format(flag: Option<FormatArg>, path: &std::path::Path) -> exit::Result<Format> {
    if let Some(f) = flag {
        return Ok(f.into());
    }
    let name = path.to_string_lossy();
    Format::from_file_name(&name).ok_or_else(|| {
        exit::Failure::new(
            exit::USAGE,
            anyhow::anyhow!(
                "cannot tell the format from the name {name:?}: use --format \
                 pprof|folded|svg|speedscope, or a .pb.gz, .folded, .svg or .json file name"
            ),
        )
    })
}

fn run(cli: Cli) -> exit::Result<()> {
    match cli.command {
        Command::Record(args) => record::run(args),
        Command::Top(args) => top::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Up(args) => serve::up(args),
        Command::Server(args) => serve::server(args),
        Command::Agent(args) => serve::agent(args),
        Command::Query(args) => query::run(args),
        Command::Baseline(args) => baseline::run(args),
        Command::Gate(args) => baseline::gate_cmd(args),
        Command::Validate(args) => validate::run(args),
        Command::Actions(args) => actions::run(args),
        Command::Policy(args) => actions::policy(args),
    }
}

fn main() {
    let cli = Cli::parse();
    let quiet = match &cli.command {
        Command::Record(a) => a.quiet,
        Command::Up(a) => a.quiet,
        Command::Agent(a) => a.quiet,
        _ => false,
    };
    log::install(cli.log_format, quiet);
    if let Err(f) = run(cli) {
        eprintln!("perfpilot: {:#}", f.error);
        std::process::exit(f.code);
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn max_cpu_is_a_percentage_or_off() {
        use super::{parse_max_cpu, MaxCpu};
        assert_eq!(parse_max_cpu("1"), Ok(MaxCpu::Percent(1.0)));
        assert_eq!(parse_max_cpu("0.25%"), Ok(MaxCpu::Percent(0.25)));
        assert_eq!(parse_max_cpu("OFF"), Ok(MaxCpu::Off));
        for bad in ["0", "-1", "x", "", "nan"] {
            assert!(parse_max_cpu(bad).is_err(), "{bad}");
        }
    }

    /// Every command, option and argument of every subcommand says what it
    /// is for in `--help`.
    #[test]
    fn help_describes_every_command_and_argument() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let here = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "perfpilot", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
