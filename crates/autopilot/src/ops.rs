//! Running an [`Operation`] for real.
//!
//! Everything that comes from an alert (its name, labels, the target) is
//! untrusted: `exec` passes it only as environment variables, never in
//! argv and never through a shell, and `webhook` substitutes it into JSON
//! string values that serde then escapes.
//!
//! `rate-limit` and `scale` run `tc` and `kubectl` as argv lists too, with
//! only the policy's validated fields as arguments:
//!
//! - `rate-limit` on an interface: `tc qdisc replace dev IF root tbf rate
//!   RATE burst BURST latency 50ms`; with `clear: true`, `tc qdisc del dev
//!   IF root` (no limit there is not an error).
//! - `rate-limit` on a cgroup: a BPF token bucket attached to the cgroup
//!   v2 directory's egress, its link pinned under [`Ops::bpf_pin_dir`] so
//!   the limit outlives the server; `clear: true` unpins it. tc cannot
//!   tell a cgroup's packets apart on a cgroup v2 host (its classifier
//!   reads cgroup v1's net_cls ids).
//! - `scale`: the Deployment's `.spec.replicas` read with `kubectl get`,
//!   then `kubectl scale --current-replicas=OLD --replicas=NEW`; the
//!   outcome's output says "from OLD to NEW".

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::policy::{
    Degrade, Exec, Operation, RateLimit, RateLimitChange, RateLimitTarget, Restart, RestartTarget,
    Scale, ScaleChange, Webhook,
};

/// What triggered an action: its values reach operations only as data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trigger {
    /// The alert's name, when an alert triggered it.
    pub alert: Option<String>,
    /// The target's name.
    pub target: String,
    pub labels: BTreeMap<String, String>,
}

/// The result of running an operation once.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    /// A process's exit code, or an HTTP status.
    pub exit_status: Option<i32>,
    /// Captured output (stdout, then stderr) or a response body, truncated.
    pub output: String,
    pub error: Option<OpError>,
    pub duration: Duration,
}

impl Outcome {
    fn succeeded(output: String, duration: Duration) -> Outcome {
        Outcome {
            ok: true,
            exit_status: None,
            output,
            error: None,
            duration,
        }
    }

    fn failed(error: OpError, duration: Duration) -> Outcome {
        Outcome {
            ok: false,
            exit_status: None,
            output: String::new(),
            error: Some(error),
            duration,
        }
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("an exec needs a program to run")]
    EmptyCommand,
    #[error("cannot start {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("{program} exited with status {status}")]
    ExitStatus { program: String, status: i32 },
    #[error("{program} was killed by signal {signal}")]
    KilledBySignal { program: String, signal: i32 },
    #[error("{program} ran longer than {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url} answered {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("unknown signal `{0}`")]
    UnknownSignal(String),
    #[error("no process named `{0}` is running")]
    NoSuchProcess(String),
    #[error("cannot signal process {pid}: {message}")]
    Signal { pid: u32, message: String },
    #[error("systemctl is not available on this host (is it running systemd?)")]
    SystemctlMissing,
    #[error("cannot run {program} ({message}): rate-limit needs tc, from the iproute2 package")]
    TcMissing { program: String, message: String },
    #[error("{program} was not permitted to change traffic control: rate-limit needs root or CAP_NET_ADMIN")]
    NetAdminRequired { program: String },
    #[error("no network interface named `{0}`")]
    NoSuchInterface(String),
    #[error("cannot rate-limit cgroup `{cgroup}`: {message}")]
    CgroupRateLimit { cgroup: String, message: String },
    #[error(
        "cannot rate-limit cgroup `{cgroup}`: this perfpilot was built without the cgroup \
         rate limiter (feature cgroup-ratelimit)"
    )]
    CgroupRateLimitNotBuilt { cgroup: String },
    #[error(
        "cannot run {program} ({message}): scale needs kubectl (Debian's kubernetes-client \
         package, or the kubectl package from Kubernetes' own repository)"
    )]
    KubectlMissing { program: String, message: String },
    #[error(
        "no Kubernetes cluster is configured: kubectl found no kubeconfig \
         (set KUBECONFIG or run inside a cluster)"
    )]
    NoCluster,
    #[error("kubectl printed `{output}` as deployment/{deployment}'s replicas, not a count")]
    ReplicaCount { deployment: String, output: String },
}

impl OpError {
    /// Whether running the same operation again cannot help: a missing
    /// program, privilege or cluster, or an impossible request.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            OpError::EmptyCommand
                | OpError::UnknownSignal(_)
                | OpError::SystemctlMissing
                | OpError::TcMissing { .. }
                | OpError::NetAdminRequired { .. }
                | OpError::NoSuchInterface(_)
                | OpError::CgroupRateLimit { .. }
                | OpError::CgroupRateLimitNotBuilt { .. }
                | OpError::KubectlMissing { .. }
                | OpError::NoCluster
        )
    }
}

/// How operations run; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct Ops {
    /// Bytes kept of each captured stream or response body.
    pub output_limit: usize,
    /// The first wait between webhook attempts; it doubles each time.
    pub http_backoff: Duration,
    /// The program `restart` runs for systemd units.
    pub systemctl: String,
    /// How long `systemctl restart` may take.
    pub systemctl_timeout: Duration,
    /// The argv `rate-limit` starts tc with, its own arguments appended:
    /// `["tc"]`, or a wrapper such as `["ip", "netns", "exec", "NS", "tc"]`.
    pub tc: Vec<String>,
    /// How long one tc command may take.
    pub tc_timeout: Duration,
    /// The argv `scale` starts kubectl with, its own arguments appended.
    pub kubectl: Vec<String>,
    /// How long one kubectl command may take.
    pub kubectl_timeout: Duration,
    /// Where cgroup limits are pinned, on a BPF filesystem.
    pub bpf_pin_dir: PathBuf,
}

impl Default for Ops {
    fn default() -> Self {
        Ops {
            output_limit: 4096,
            http_backoff: Duration::from_millis(500),
            systemctl: "systemctl".into(),
            systemctl_timeout: Duration::from_secs(90),
            tc: vec!["tc".into()],
            tc_timeout: Duration::from_secs(10),
            kubectl: vec!["kubectl".into()],
            kubectl_timeout: Duration::from_secs(60),
            bpf_pin_dir: PathBuf::from(DEFAULT_BPF_PIN_DIR),
        }
    }
}

/// Where cgroup limits are pinned when [`Ops::bpf_pin_dir`] is not set:
/// the rate limiter's own default, also without it, so the field means
/// the same whichever way perfpilot was built.
#[cfg(feature = "cgroup-ratelimit")]
const DEFAULT_BPF_PIN_DIR: &str = perfpilot_ratelimit::DEFAULT_PIN_DIR;
#[cfg(not(feature = "cgroup-ratelimit"))]
const DEFAULT_BPF_PIN_DIR: &str = "/sys/fs/bpf/perfpilot/ratelimit";

/// Environment variable names for labels: `PERFPILOT_LABEL_` and the
/// label's name in upper case with anything outside `[A-Z0-9_]` as `_`.
pub fn label_env_name(label: &str) -> String {
    let mut out = String::from("PERFPILOT_LABEL_");
    out.extend(label.chars().map(|c| {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

impl Ops {
    /// Runs `op` once. Never panics on what the trigger holds; failures
    /// are in the outcome.
    pub fn run(&self, op: &Operation, trigger: &Trigger) -> Outcome {
        match op {
            Operation::Exec(e) => self.exec(e, trigger),
            Operation::Webhook(w) => self.webhook(w, trigger),
            Operation::Restart(r) => self.restart(r),
            Operation::Degrade(d) => self.degrade(d, trigger),
            Operation::RateLimit(r) => self.rate_limit(r),
            Operation::Scale(s) => self.scale(s),
        }
    }

    /// Runs an argv with the trigger as environment variables only.
    pub fn exec(&self, e: &Exec, trigger: &Trigger) -> Outcome {
        let mut env: Vec<(String, String)> =
            e.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        // An environment variable cannot hold a NUL byte: one in a label
        // would stop the program from starting at all, so it reads as
        // U+FFFD instead.
        let value = |v: &str| v.replace('\0', "\u{FFFD}");
        for (name, v) in &trigger.labels {
            env.push((label_env_name(name), value(v)));
        }
        if let Some(alert) = &trigger.alert {
            env.push(("PERFPILOT_ALERT".into(), value(alert)));
        }
        env.push(("PERFPILOT_TARGET".into(), value(&trigger.target)));
        self.command(&e.command, &env, e.timeout)
    }

    fn command(&self, argv: &[String], env: &[(String, String)], timeout: Duration) -> Outcome {
        self.command_stdout(argv, env, timeout).0
    }

    /// Like `command`, with stdout alone as well, for output that is parsed.
    fn command_stdout(
        &self,
        argv: &[String],
        env: &[(String, String)],
        timeout: Duration,
    ) -> (Outcome, String) {
        let started = Instant::now();
        let Some((program, args)) = argv.split_first() else {
            return (
                Outcome::failed(OpError::EmptyCommand, started.elapsed()),
                String::new(),
            );
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills what it started too.
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let error = OpError::Spawn {
                    program: program.clone(),
                    message: e.to_string(),
                };
                return (Outcome::failed(error, started.elapsed()), String::new());
            }
        };
        let stdout = child.stdout.take().map(|s| drain(s, self.output_limit));
        let stderr = child.stderr.take().map(|s| drain(s, self.output_limit));
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() >= timeout => {
                    timed_out = true;
                    kill_group(child.id());
                    let _ = child.kill();
                    break child.wait();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => break Err(e),
            }
        };
        // A grandchild may hold the pipes open: do not wait for it forever.
        let collect = |rx: Option<mpsc::Receiver<String>>| {
            rx.and_then(|rx| rx.recv_timeout(Duration::from_millis(500)).ok())
                .unwrap_or_default()
        };
        let (out, err) = (collect(stdout), collect(stderr));
        let mut output = out.clone();
        if !err.is_empty() {
            if !output.is_empty() && !output.ends_with('\n') {
                output.push('\n');
            }
            output.push_str("[stderr]\n");
            output.push_str(&err);
        }
        let duration = started.elapsed();
        let program = program.clone();
        let (exit_status, error) = match status {
            Err(e) => (
                None,
                Some(OpError::Spawn {
                    program,
                    message: e.to_string(),
                }),
            ),
            Ok(_) if timed_out => (None, Some(OpError::Timeout { program, timeout })),
            Ok(s) => match (s.code(), s.signal()) {
                (Some(0), _) => (Some(0), None),
                (Some(code), _) => (
                    Some(code),
                    Some(OpError::ExitStatus {
                        program,
                        status: code,
                    }),
                ),
                (None, signal) => (
                    None,
                    Some(OpError::KilledBySignal {
                        program,
                        signal: signal.unwrap_or(0),
                    }),
                ),
            },
        };
        let outcome = Outcome {
            ok: error.is_none(),
            exit_status,
            output,
            error,
            duration,
        };
        (outcome, out)
    }

    /// An HTTP request with the body templated from the trigger, retried
    /// with doubling waits on transport errors, 429 and 5xx.
    pub fn webhook(&self, w: &Webhook, trigger: &Trigger) -> Outcome {
        let body = w.body.as_ref().map(|b| template(b, trigger));
        self.http(
            &w.method,
            &w.url,
            &w.headers,
            body.as_ref(),
            w.timeout,
            w.retries,
        )
    }

    /// Sets a feature flag: `{"flag", "value", "target", "alert"}` posted
    /// to the flag endpoint.
    pub fn degrade(&self, d: &Degrade, trigger: &Trigger) -> Outcome {
        let body = serde_json::json!({
            "flag": d.flag,
            "value": d.value,
            "target": trigger.target,
            "alert": trigger.alert,
        });
        self.http("POST", &d.url, &BTreeMap::new(), Some(&body), d.timeout, 0)
    }

    fn http(
        &self,
        method: &str,
        url: &str,
        headers: &BTreeMap<String, String>,
        body: Option<&serde_json::Value>,
        timeout: Duration,
        retries: u32,
    ) -> Outcome {
        let started = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).unwrap_or_default(),
            None => Vec::new(),
        };
        let mut wait = self.http_backoff;
        let mut attempt = 0;
        loop {
            let (retry, mut outcome) = self.http_once(&agent, method, url, headers, &bytes, body);
            if !retry || attempt >= retries {
                outcome.duration = started.elapsed();
                return outcome;
            }
            attempt += 1;
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2).min(Duration::from_secs(30));
        }
    }

    /// One attempt: whether it is worth retrying, and its outcome.
    fn http_once(
        &self,
        agent: &ureq::Agent,
        method: &str,
        url: &str,
        headers: &BTreeMap<String, String>,
        bytes: &[u8],
        body: Option<&serde_json::Value>,
    ) -> (bool, Outcome) {
        let started = Instant::now();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Content-Type", "application/json");
        let request = headers
            .iter()
            .fold(request, |r, (k, v)| r.header(k.as_str(), v.as_str()));
        let sent = if body.is_some() {
            request.body(bytes.to_vec())
        } else {
            request.body(Vec::new())
        };
        let result = match sent {
            Ok(req) => agent.run(req).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let response = match result {
            Ok(r) => r,
            Err(message) => {
                let error = OpError::Http {
                    url: url.to_string(),
                    message,
                };
                return (true, Outcome::failed(error, started.elapsed()));
            }
        };
        let status = response.status().as_u16();
        let mut text = Vec::new();
        let _ = response
            .into_body()
            .into_reader()
            .take(self.output_limit as u64)
            .read_to_end(&mut text);
        let ok = (200..300).contains(&status);
        let outcome = Outcome {
            ok,
            exit_status: Some(i32::from(status)),
            output: String::from_utf8_lossy(&text).into_owned(),
            error: (!ok).then(|| OpError::HttpStatus {
                url: url.to_string(),
                status,
            }),
            duration: started.elapsed(),
        };
        (status == 429 || status >= 500, outcome)
    }

    /// A unit through `systemctl restart`, or processes through a signal.
    pub fn restart(&self, r: &Restart) -> Outcome {
        let started = Instant::now();
        let signal = match signal(r.signal.as_deref().unwrap_or("TERM")) {
            Some((_, number)) => number,
            None => {
                let name = r.signal.clone().unwrap_or_default();
                return Outcome::failed(OpError::UnknownSignal(name), started.elapsed());
            }
        };
        let pids = match &r.what {
            RestartTarget::Unit(unit) => return self.systemctl_restart(unit),
            RestartTarget::Pid(pid) => vec![*pid],
            RestartTarget::ProcessName(name) => {
                let found = pids_named(name);
                if found.is_empty() {
                    return Outcome::failed(
                        OpError::NoSuchProcess(name.clone()),
                        started.elapsed(),
                    );
                }
                found
            }
        };
        let mut output = String::new();
        for pid in pids {
            let Ok(raw) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: kill(2) takes plain integers and touches no memory.
            let rc = unsafe { libc::kill(raw, signal) };
            if rc != 0 {
                let error = OpError::Signal {
                    pid,
                    message: std::io::Error::last_os_error().to_string(),
                };
                let mut o = Outcome::failed(error, started.elapsed());
                o.output = output;
                return o;
            }
            output.push_str(&format!("signalled {pid}\n"));
        }
        Outcome::succeeded(output, started.elapsed())
    }

    fn systemctl_restart(&self, unit: &str) -> Outcome {
        // `--` so a unit name can never be read as an option.
        let argv = [
            self.systemctl.clone(),
            "restart".into(),
            "--".into(),
            unit.to_string(),
        ];
        let mut outcome = self.command(&argv, &[], self.systemctl_timeout);
        if let Some(OpError::Spawn { .. }) = outcome.error {
            outcome.error = Some(OpError::SystemctlMissing);
        }
        outcome
    }

    /// A token-bucket limit on an interface's egress through tc, or on a
    /// cgroup's through BPF, or its removal (`clear: true`).
    pub fn rate_limit(&self, r: &RateLimit) -> Outcome {
        let started = Instant::now();
        let dev = match &r.on {
            RateLimitTarget::Interface(dev) => dev.as_str(),
            RateLimitTarget::Cgroup(cgroup) => return self.rate_limit_cgroup(cgroup, &r.change),
        };
        let (args, done): (Vec<String>, String) = match &r.change {
            RateLimitChange::Limit { rate, burst } => {
                let burst = burst.clone().unwrap_or_else(|| default_burst(rate));
                let args = [
                    "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", &burst,
                    // How long a packet may wait for tokens before it is
                    // dropped: short, so the limit sheds load instead of
                    // adding queueing delay.
                    "latency", "50ms",
                ];
                let done = format!("limited {dev} to {rate} (burst {burst})");
                (args.map(String::from).to_vec(), done)
            }
            RateLimitChange::Clear => {
                let args = ["qdisc", "del", "dev", dev, "root"];
                (
                    args.map(String::from).to_vec(),
                    format!("cleared the limit on {dev}"),
                )
            }
        };
        let argv: Vec<String> = self.tc.iter().cloned().chain(args).collect();
        let mut outcome = self.command(&argv, &[], self.tc_timeout);
        let program = self.tc.first().cloned().unwrap_or_default();
        match outcome.error.take() {
            None => prepend(&mut outcome.output, &done),
            Some(OpError::Spawn { message, .. }) => {
                outcome.error = Some(OpError::TcMissing { program, message });
            }
            Some(e @ OpError::ExitStatus { .. }) => {
                let out = &outcome.output;
                if out.contains("Operation not permitted") {
                    outcome.error = Some(OpError::NetAdminRequired { program });
                } else if out.contains("Cannot find device") {
                    outcome.error = Some(OpError::NoSuchInterface(dev.to_string()));
                } else if r.change == RateLimitChange::Clear
                    // Deleting the kernel's default root qdisc (handle 0):
                    // "Cannot delete qdisc with handle of zero" since Linux
                    // 5.x, ENOENT before. Either way no limit is there.
                    && (out.contains("handle of zero") || out.contains("No such file or directory"))
                {
                    prepend(&mut outcome.output, &format!("no limit on {dev} to clear"));
                } else {
                    outcome.error = Some(e);
                }
            }
            Some(e) => outcome.error = Some(e),
        }
        outcome.ok = outcome.error.is_none();
        outcome.duration = started.elapsed();
        outcome
    }

    /// Without the rate limiter built in, a cgroup limit fails at once,
    /// and for good: retrying cannot bring it.
    #[cfg(not(feature = "cgroup-ratelimit"))]
    fn rate_limit_cgroup(&self, cgroup: &str, _change: &RateLimitChange) -> Outcome {
        let error = OpError::CgroupRateLimitNotBuilt {
            cgroup: cgroup.to_string(),
        };
        Outcome::failed(error, Duration::ZERO)
    }

    #[cfg(feature = "cgroup-ratelimit")]
    fn rate_limit_cgroup(&self, cgroup: &str, change: &RateLimitChange) -> Outcome {
        use perfpilot_ratelimit as ratelimit;
        let started = Instant::now();
        let failed = |e: ratelimit::RateLimitError| {
            Outcome::failed(
                OpError::CgroupRateLimit {
                    cgroup: cgroup.to_string(),
                    message: e.to_string(),
                },
                started.elapsed(),
            )
        };
        let dir = match ratelimit::cgroup_dir(cgroup) {
            Ok(d) => d,
            Err(e) => return failed(e),
        };
        let output = match change {
            RateLimitChange::Limit { rate, burst } => {
                // Both were checked when the policy was parsed.
                let Some(bits) = rate_bits_per_second(rate) else {
                    return failed(ratelimit::RateLimitError::Bpf {
                        what: "reading the rate".into(),
                        message: format!("`{rate}` is not a tc rate"),
                    });
                };
                // Under a byte a second is 0, which limit_cgroup refuses
                // by name rather than this raising it to 1.
                let bytes = (bits / 8.0) as u64;
                let burst_bytes = match burst {
                    Some(b) => match size_bytes(b) {
                        Some(n) => n as u64,
                        None => {
                            return failed(ratelimit::RateLimitError::Bpf {
                                what: "reading the burst".into(),
                                message: format!("`{b}` is not a tc size"),
                            })
                        }
                    },
                    None => default_cgroup_burst(bytes),
                };
                match ratelimit::limit_cgroup(&dir, bytes, burst_bytes, &self.bpf_pin_dir) {
                    Ok(pin) => format!(
                        "limited cgroup {} to {rate} (burst {burst_bytes} bytes); the BPF program is pinned at {}\n",
                        dir.display(),
                        pin.display()
                    ),
                    Err(e) => return failed(e),
                }
            }
            RateLimitChange::Clear => match ratelimit::clear_cgroup(&dir, &self.bpf_pin_dir) {
                Ok(true) => format!("cleared the limit on cgroup {}\n", dir.display()),
                Ok(false) => format!("no limit on cgroup {} to clear\n", dir.display()),
                Err(e) => return failed(e),
            },
        };
        Outcome::succeeded(output, started.elapsed())
    }

    /// A Deployment's replicas set, or changed by a delta, through
    /// kubectl. The count before is read first, so the output can say
    /// "from OLD to NEW", and the scale is made conditional on it
    /// (`--current-replicas`): if anything changed it in between, kubectl
    /// refuses rather than the delta being applied to a stale count.
    pub fn scale(&self, s: &Scale) -> Outcome {
        let started = Instant::now();
        let name = format!("deployment/{}", s.deployment);
        let namespace: Vec<String> = match &s.namespace {
            Some(ns) => vec!["-n".into(), ns.clone()],
            None => Vec::new(),
        };
        let kubectl = |args: &[&str]| -> Vec<String> {
            let args = args.iter().map(|a| a.to_string());
            self.kubectl
                .iter()
                .cloned()
                .chain(args)
                .chain(namespace.iter().cloned())
                .collect()
        };
        let get = kubectl(&["get", &name, "-o", "jsonpath={.spec.replicas}"]);
        let (mut outcome, stdout) = self.command_stdout(&get, &[], self.kubectl_timeout);
        if let Some(e) = outcome.error.take() {
            outcome.error = Some(kubectl_error(e, &outcome.output));
            outcome.duration = started.elapsed();
            return outcome;
        }
        let Ok(before) = stdout.trim().parse::<u32>() else {
            let error = OpError::ReplicaCount {
                deployment: s.deployment.clone(),
                output: stdout.trim().chars().take(200).collect(),
            };
            let mut failed = Outcome::failed(error, started.elapsed());
            failed.output = outcome.output;
            return failed;
        };
        let after = match s.change {
            ScaleChange::To(n) => n,
            ScaleChange::By(d) if d >= 0 => before.saturating_add(d.unsigned_abs()),
            ScaleChange::By(d) => before.saturating_sub(d.unsigned_abs()),
        }
        // Kubernetes keeps replicas as an int32.
        .min(i32::MAX.unsigned_abs());
        let place = match &s.namespace {
            Some(ns) => format!("{name} in namespace {ns}"),
            None => name.clone(),
        };
        if after == before {
            return Outcome {
                ok: true,
                exit_status: Some(0),
                output: format!("{place} has {before} replicas already; nothing to scale\n"),
                error: None,
                duration: started.elapsed(),
            };
        }
        let scale = kubectl(&[
            "scale",
            &name,
            &format!("--current-replicas={before}"),
            &format!("--replicas={after}"),
        ]);
        let mut outcome = self.command(&scale, &[], self.kubectl_timeout);
        match outcome.error.take() {
            None => prepend(
                &mut outcome.output,
                &format!("scaled {place} from {before} to {after} replicas"),
            ),
            Some(e) => {
                outcome.error = Some(kubectl_error(e, &outcome.output));
                prepend(
                    &mut outcome.output,
                    &format!("{place} had {before} replicas; scaling to {after} failed"),
                );
            }
        }
        outcome.duration = started.elapsed();
        outcome
    }
}

/// kubectl's failures in terms a user can act on.
fn kubectl_error(error: OpError, output: &str) -> OpError {
    match error {
        OpError::Spawn { program, message } => OpError::KubectlMissing { program, message },
        // With no kubeconfig and not in a pod, kubectl falls back to the
        // API server's old insecure port on localhost, which nothing
        // serves any more; client-go's other callers say "no
        // configuration has been provided" instead.
        OpError::ExitStatus { .. }
            if output.contains("no configuration has been provided")
                || (output.contains("localhost:8080") && output.contains("refused")) =>
        {
            OpError::NoCluster
        }
        e => e,
    }
}

/// Puts a summary line before a command's own output.
fn prepend(output: &mut String, line: &str) {
    *output = format!("{line}\n{output}");
}

/// `10mbit` → (10, `mbit`): the number and the unit in lower case.
fn number_and_unit(s: &str) -> Option<(f64, String)> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    Some((num.parse().ok()?, unit.to_ascii_lowercase()))
}

/// tc's rate in bits per second (tc's units: `bit`, `kbit`... are bits,
/// `bps`, `kbps`... bytes; k, m, g and t are powers of 1000). Policies
/// are checked with it, so a rate that loads is one the operation reads.
pub(crate) fn rate_bits_per_second(rate: &str) -> Option<f64> {
    let (n, unit) = number_and_unit(rate)?;
    let (prefix, per_unit) = match unit.strip_suffix("bit") {
        Some(p) => (p, 1.0),
        None => (unit.strip_suffix("bps")?, 8.0),
    };
    let scale = match prefix {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => return None,
    };
    Some(n * scale * per_unit)
}

/// The bucket's size when a policy gives none: 10 ms of traffic at the
/// rate, and at least 32kb. tbf can send no more than a bucketful at once,
/// so the bucket must hold what the rate allows between two timer ticks
/// (10 ms at HZ=100, the coarsest kernel timer) or the rate is never
/// reached; and it must hold a whole packet (with room for jumbo frames),
/// or packets larger than it can never be sent. An unreadable rate gets
/// the minimum, and tc reports the rate itself.
fn default_burst(rate: &str) -> String {
    let bytes_in_10ms = rate_bits_per_second(rate).map_or(0.0, |bits| bits / 8.0 / 100.0);
    let kb = (bytes_in_10ms / 1024.0).ceil().max(32.0);
    format!("{kb}kb")
}

/// A cgroup limit's bucket when a policy gives none: 50 ms of traffic at
/// the rate, and at least 128 KiB. The BPF bucket sees whole GSO packets
/// (up to 64 KiB on loopback) and drops rather than queues, so it must
/// hold two of them, and enough of the rate that TCP's bursts after a
/// back-off are not cut again at once.
#[cfg(feature = "cgroup-ratelimit")]
fn default_cgroup_burst(rate_bytes_per_s: u64) -> u64 {
    (rate_bytes_per_s / 20).max(128 * 1024)
}

/// A tc size in bytes: a bare number, `b`, `k`/`kb`, `m`/`mb`, `g`/`gb`
/// are bytes in powers of 1024; `kbit`, `mbit`, `gbit` are bits. Policies
/// are checked with it, like rates.
pub(crate) fn size_bytes(size: &str) -> Option<f64> {
    let (n, unit) = number_and_unit(size)?;
    let per = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "kbit" => 1024.0 / 8.0,
        "mbit" => 1024.0 * 1024.0 / 8.0,
        "gbit" => 1024.0 * 1024.0 * 1024.0 / 8.0,
        _ => return None,
    };
    Some(n * per)
}

/// Reads a pipe to its end in a thread, keeping the first `limit` bytes
/// but draining the rest so the child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static, limit: usize) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut dropped = 0usize;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len()).min(n);
                    kept.extend_from_slice(&buf[..room]);
                    dropped += n - room;
                }
            }
        }
        let mut text = String::from_utf8_lossy(&kept).into_owned();
        if dropped > 0 {
            text.push_str(&format!("\n... ({dropped} bytes more)"));
        }
        let _ = tx.send(text);
    });
    rx
}

fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) takes plain integers and touches no memory.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The signals `restart` may send, by name without `SIG`. Policies are
/// checked against this table and [`Ops::restart`] sends from it.
pub(crate) const SIGNALS: [(&str, libc::c_int); 9] = [
    ("TERM", libc::SIGTERM),
    ("KILL", libc::SIGKILL),
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("STOP", libc::SIGSTOP),
    ("CONT", libc::SIGCONT),
];

/// A signal by name in any case, with or without `SIG` (`term`,
/// `SIGTERM`, `sigterm`): its name as [`SIGNALS`] has it, and its number.
pub(crate) fn signal(name: &str) -> Option<(&'static str, libc::c_int)> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == bare).copied()
}

/// Processes whose `/proc/PID/comm` is `name` (the kernel keeps 15 bytes
/// of it), this process excluded.
pub fn pids_named(name: &str) -> Vec<u32> {
    let wanted: Vec<u8> = name.bytes().take(15).collect();
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/comm"))
                .map(|c| c.strip_suffix(b"\n").unwrap_or(&c) == wanted.as_slice())
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Replaces `{{labels.NAME}}`, `{{alert}}` and `{{target}}` inside the
/// string values of a JSON body (keys and structure are left alone).
/// Unknown placeholders are left as they are; missing labels become "".
pub fn template(body: &serde_json::Value, trigger: &Trigger) -> serde_json::Value {
    use serde_json::Value;
    match body {
        Value::String(s) => Value::String(fill(s, trigger)),
        Value::Array(items) => Value::Array(items.iter().map(|v| template(v, trigger)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), template(v, trigger)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fill(s: &str, trigger: &Trigger) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        match key {
            "alert" => out.push_str(trigger.alert.as_deref().unwrap_or("")),
            "target" => out.push_str(&trigger.target),
            _ => match key.strip_prefix("labels.") {
                Some(label) => out.push_str(trigger.labels.get(label).map_or("", String::as_str)),
                None => out.push_str(&rest[start..start + 2 + end + 2]),
            },
        }
        // Substituted values are never re-scanned for placeholders.
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger() -> Trigger {
        Trigger {
            alert: Some("High\"Latency".into()),
            target: "checkout".into(),
            labels: [("instance".to_string(), "a\"}, {\"x\": 1".to_string())].into(),
        }
    }

    #[test]
    fn signals_by_name() {
        assert_eq!(signal("sigterm"), Some(("TERM", libc::SIGTERM)));
        assert_eq!(signal("SIGHUP"), Some(("HUP", libc::SIGHUP)));
        assert_eq!(signal("usr2"), Some(("USR2", libc::SIGUSR2)));
        assert_eq!(signal("SIGSIGTERM"), None);
        assert_eq!(signal(""), None);
    }

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_env_name("instance"), "PERFPILOT_LABEL_INSTANCE");
        assert_eq!(label_env_name("a-b.c$(x)"), "PERFPILOT_LABEL_A_B_C__X_");
    }

    #[test]
    fn templates_escape_through_serde() {
        let body = serde_json::json!({"text": "{{alert}} on {{target}}: {{labels.instance}} {{labels.none}} {{other}}", "n": 3});
        let out = template(&body, &trigger());
        assert_eq!(
            out["text"],
            "High\"Latency on checkout: a\"}, {\"x\": 1  {{other}}"
        );
        assert_eq!(out["n"], 3);
        let text = serde_json::to_string(&out).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, out);
        assert_eq!(back.as_object().map(|m| m.len()), Some(2));
    }

    #[test]
    fn unterminated_placeholder_is_kept() {
        assert_eq!(fill("x {{alert", &trigger()), "x {{alert");
    }

    #[test]
    fn tc_rates_and_default_bursts() {
        assert_eq!(rate_bits_per_second("10mbit"), Some(10e6));
        assert_eq!(rate_bits_per_second("500Kbit"), Some(500e3));
        assert_eq!(rate_bits_per_second("100kbps"), Some(800e3));
        assert_eq!(rate_bits_per_second("1.5gbit"), Some(1.5e9));
        assert_eq!(rate_bits_per_second("fast"), None);
        assert_eq!(rate_bits_per_second("10xbit"), None);
        // Slow rates get the minimum; fast ones 10 ms of traffic.
        assert_eq!(default_burst("10mbit"), "32kb");
        assert_eq!(default_burst("100mbit"), "123kb");
        assert_eq!(default_burst("1gbit"), "1221kb");
        assert_eq!(default_burst("nonsense"), "32kb");
    }

    #[test]
    fn tc_sizes_in_bytes() {
        assert_eq!(size_bytes("64kb"), Some(65536.0));
        assert_eq!(size_bytes("64k"), Some(65536.0));
        assert_eq!(size_bytes("2mb"), Some(2097152.0));
        assert_eq!(size_bytes("1500"), Some(1500.0));
        assert_eq!(size_bytes("1500b"), Some(1500.0));
        assert_eq!(size_bytes("8kbit"), Some(1024.0));
        assert_eq!(size_bytes("lots"), None);
        assert_eq!(size_bytes("3furlongs"), None);
    }

    #[cfg(feature = "cgroup-ratelimit")]
    #[test]
    fn cgroup_default_bursts() {
        assert_eq!(default_cgroup_burst(1_000_000), 128 * 1024);
        assert_eq!(default_cgroup_burst(100_000_000), 5_000_000);
    }

    #[cfg(not(feature = "cgroup-ratelimit"))]
    #[test]
    fn a_cgroup_limit_without_the_rate_limiter_says_how_perfpilot_was_built() {
        let pins = tempfile::tempdir().unwrap();
        let ops = Ops {
            bpf_pin_dir: pins.path().to_path_buf(),
            ..Ops::default()
        };
        for change in [
            RateLimitChange::Limit {
                rate: "10mbit".into(),
                burst: None,
            },
            RateLimitChange::Clear,
        ] {
            let r = RateLimit {
                on: RateLimitTarget::Cgroup("system.slice/web.service".into()),
                change,
            };
            let o = ops.run(&Operation::RateLimit(r), &Trigger::default());
            assert!(!o.ok);
            let e = o.error.expect("an error");
            assert_eq!(
                e.to_string(),
                "cannot rate-limit cgroup `system.slice/web.service`: this perfpilot was built \
                 without the cgroup rate limiter (feature cgroup-ratelimit)"
            );
            assert!(e.is_permanent());
        }
        assert_eq!(std::fs::read_dir(pins.path()).unwrap().count(), 0);
    }

    #[cfg(feature = "cgroup-ratelimit")]
    #[test]
    fn a_missing_cgroup_is_named_before_anything_loads() {
        let r = RateLimit {
            on: RateLimitTarget::Cgroup("perfpilot-no-such-cgroup/web.service".into()),
            change: RateLimitChange::Limit {
                rate: "10mbit".into(),
                burst: None,
            },
        };
        let pins = tempfile::tempdir().unwrap();
        let ops = Ops {
            bpf_pin_dir: pins.path().to_path_buf(),
            ..Ops::default()
        };
        let o = ops.run(&Operation::RateLimit(r), &Trigger::default());
        assert!(!o.ok);
        let message = o
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            message
                .starts_with("cannot rate-limit cgroup `perfpilot-no-such-cgroup/web.service`: "),
            "{message}"
        );
        // Whichever this host lacks: a cgroup v2 hierarchy, or the cgroup.
        assert!(
            message.contains("no cgroup v2 hierarchy is mounted")
                || message.contains("perfpilot-no-such-cgroup/web.service does not exist"),
            "{message}"
        );
        assert!(o.error.as_ref().is_some_and(OpError::is_permanent));
        assert_eq!(std::fs::read_dir(pins.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_tc_is_reported() {
        let ops = Ops {
            tc: vec!["/nonexistent/tc".into()],
            ..Ops::default()
        };
        let r = RateLimit {
            on: RateLimitTarget::Interface("eth0".into()),
            change: RateLimitChange::Clear,
        };
        let o = ops.rate_limit(&r);
        assert!(!o.ok);
        let Some(e @ OpError::TcMissing { program, .. }) = &o.error else {
            panic!("{o:?}");
        };
        assert_eq!(program, "/nonexistent/tc");
        assert!(e.to_string().contains("iproute2"), "{e}");
    }

    #[test]
    fn missing_systemctl_is_reported() {
        let ops = Ops {
            systemctl: "/nonexistent/systemctl".into(),
            ..Ops::default()
        };
        let r = Restart {
            what: RestartTarget::Unit("web.service".into()),
            signal: None,
        };
        let o = ops.restart(&r);
        assert_eq!(o.error, Some(OpError::SystemctlMissing));
    }

    #[test]
    fn restart_signals_a_pid_and_reports_a_missing_name() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let r = Restart {
            what: RestartTarget::Pid(child.id()),
            signal: Some("KILL".into()),
        };
        let o = Ops::default().restart(&r);
        assert!(o.ok, "{o:?}");
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let missing = Restart {
            what: RestartTarget::ProcessName("no-such-proc-xyz".into()),
            signal: None,
        };
        assert_eq!(
            Ops::default().restart(&missing).error,
            Some(OpError::NoSuchProcess("no-such-proc-xyz".into()))
        );
    }

    #[test]
    fn a_nul_in_a_label_does_not_stop_the_program() {
        let e = Exec {
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "printf %s \"$PERFPILOT_LABEL_X\"".into(),
            ],
            env: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        };
        let trigger = Trigger {
            alert: Some("A\0lert".into()),
            target: "t".into(),
            labels: [("x".to_string(), "a\0b".to_string())].into(),
        };
        let o = Ops::default().exec(&e, &trigger);
        assert!(o.ok, "{o:?}");
        assert_eq!(o.output, "a\u{FFFD}b");
    }

    #[test]
    fn output_is_truncated() {
        let ops = Ops {
            output_limit: 100,
            ..Ops::default()
        };
        let e = Exec {
            command: vec![
                "head".into(),
                "-c".into(),
                "100000".into(),
                "/dev/zero".into(),
            ],
            env: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        };
        let o = ops.exec(&e, &Trigger::default());
        assert!(o.ok, "{o:?}");
        assert!(o.output.contains("(99900 bytes more)"), "{}", o.output);
    }
}
