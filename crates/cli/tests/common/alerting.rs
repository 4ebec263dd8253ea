//! The real alerting tools around a perfpilot server: Debian's Prometheus
//! and Alertmanager on free ports in a temporary directory, a supervisor
//! that restarts a test service when it exits (as systemd's
//! `Restart=always` does), and polling with deadlines.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `/usr/bin/NAME`; fails the test when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh, which installs Debian's prometheus and \
         prometheus-alertmanager (apt-get install prometheus prometheus-alertmanager)",
        path.display()
    );
    path
}

/// Polls `f` every 100 ms until it gives a value; past `timeout` the test
/// fails with `what` and whatever `context` says then.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    context: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if started.elapsed() > timeout {
            panic!(
                "timed out after {:?} waiting for {what}\n{}",
                timeout,
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `url`: the body of a 2xx answer, None otherwise.
pub fn get_text(url: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .ok()?
        .into_body()
        .read_to_string()
        .ok()
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `program` with its output in `log`.
    pub fn spawn(program: &Path, args: &[OsString], log: PathBuf) -> Proc {
        let out = File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Proc { child, log }
    }

    /// Fails the test, with the log's end, when the process has exited.
    pub fn assert_running(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{what} exited ({status}); its log ends:\n{}",
                tail(&self.log, 30)
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until GET `url` answers 2xx, failing the test (with the log's
/// end) when the process exits or `timeout` passes.
pub fn wait_ready(p: &mut Proc, url: &str, what: &str, timeout: Duration) {
    let started = Instant::now();
    while get_text(url).is_none() {
        p.assert_running(what);
        assert!(
            started.elapsed() < timeout,
            "{what} did not answer {url} within {timeout:?}; its log ends:\n{}",
            tail(&p.log, 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prometheus on a free port, its configuration, rules, TSDB and log
/// in `dir`.
pub struct Prometheus {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Prometheus {
    /// `scrape` is the scrape target (`host:port`), scraped every second
    /// as job `test_service`; `rules` a rule file's contents (evaluated
    /// every second); alerts go to the Alertmanager at `alertmanager`
    /// (`host:port`).
    pub fn start(dir: &Path, scrape: &str, rules: &str, alertmanager: &str) -> Prometheus {
        let binary = tool("prometheus");
        let rules_file = dir.join("rules.yml");
        std::fs::write(&rules_file, rules).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
                 rule_files: [{rules}]\n\
                 alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{alertmanager}']}}]\n\
                 scrape_configs:\n  - job_name: test_service\n    static_configs: [{{targets: ['{scrape}']}}]\n",
                rules = serde_json::to_string(&rules_file.to_string_lossy()).unwrap(),
            ),
        )
        .unwrap();
        let port = free_port();
        let mut proc = Proc::spawn(
            &binary,
            &[
                format!("--config.file={}", config.display()).into(),
                format!("--storage.tsdb.path={}", dir.join("tsdb").display()).into(),
                format!("--web.listen-address=127.0.0.1:{port}").into(),
            ],
            dir.join("prometheus.log"),
        );
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(
            &mut proc,
            &format!("{url}/-/ready"),
            "Prometheus",
            Duration::from_secs(60),
        );
        Prometheus { proc, url }
    }

    /// The instant query's first sample value, when it has one.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let mut url = format!("{}/api/v1/query?query=", self.url);
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' {
                url.push(b as char);
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
        let v: serde_json::Value = serde_json::from_str(&get_text(&url)?).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

/// Alertmanager on a free port (clustering off), with one route to a
/// webhook receiver: group_wait and group_interval 1s, repeat_interval
/// 1m, resolved alerts sent too.
pub struct Alertmanager {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`, for Prometheus' configuration.
    pub address: String,
}

impl Alertmanager {
    pub fn start(dir: &Path, webhook: &str) -> Alertmanager {
        let binary = tool("prometheus-alertmanager");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: perfpilot\n  group_by: [alertname]\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1m\n\
                 receivers:\n  - name: perfpilot\n    webhook_configs:\n      - url: {}\n        \
                 send_resolved: true\n",
                serde_json::to_string(webhook).unwrap()
            ),
        )
        .unwrap();
        let port = free_port();
        let mut proc = Proc::spawn(
            &binary,
            &[
                format!("--config.file={}", config.display()).into(),
                format!("--storage.path={}", dir.join("alertmanager").display()).into(),
                format!("--web.listen-address=127.0.0.1:{port}").into(),
                // Empty: no gossip with other Alertmanagers.
                "--cluster.listen-address=".into(),
            ],
            dir.join("alertmanager.log"),
        );
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(
            &mut proc,
            &format!("{url}/-/ready"),
            "Alertmanager",
            Duration::from_secs(60),
        );
        Alertmanager {
            proc,
            url,
            address: format!("127.0.0.1:{port}"),
        }
    }
}

/// A webhook post as Alertmanager 0.25 sends it, for one alert.
pub fn webhook(
    labels: &BTreeMap<&str, &str>,
    status: &str,
    starts_at: &str,
    fingerprint: &str,
) -> String {
    let ends_at = if status == "firing" {
        "0001-01-01T00:00:00Z".to_string()
    } else {
        // Resolved half a second after it started (startsAt given in
        // whole seconds here).
        starts_at.replacen("Z", ".5Z", 1)
    };
    serde_json::json!({
        "receiver": "perfpilot",
        "status": status,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": {"summary": "test"},
            "startsAt": starts_at,
            "endsAt": ends_at,
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": fingerprint,
        }],
        "groupLabels": {"alertname": labels.get("alertname")},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{alertname=\"test\"}",
        "truncatedAlerts": 0,
    })
    .to_string()
}

/// Alert labels from pairs.
pub fn labels<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
    pairs.iter().copied().collect()
}

/// One run of a supervised process.
#[derive(Debug, Clone)]
pub struct Life {
    pub pid: u32,
    /// How it ended; None while it runs.
    pub exit: Option<ExitStatus>,
}

#[derive(Default)]
struct Supervised {
    stop: bool,
    child: Option<Child>,
    lives: Vec<Life>,
    error: Option<String>,
}

/// Keeps a program running: when it exits, for whatever reason, a fresh
/// one is started 100 ms later, as systemd does for `Restart=always`.
/// Dropping it stops supervising and kills the current process.
pub struct Supervisor {
    state: Arc<Mutex<Supervised>>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn start(argv: Vec<OsString>, log: PathBuf) -> Supervisor {
        let state = Arc::new(Mutex::new(Supervised::default()));
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || loop {
            {
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                if s.stop {
                    return;
                }
                let out = File::options().create(true).append(true).open(&log);
                let spawned = out.and_then(|out| {
                    Command::new(&argv[0])
                        .args(&argv[1..])
                        .stdin(Stdio::null())
                        .stdout(out.try_clone()?)
                        .stderr(out)
                        .spawn()
                });
                match spawned {
                    Ok(child) => {
                        s.lives.push(Life {
                            pid: child.id(),
                            exit: None,
                        });
                        s.child = Some(child);
                    }
                    Err(e) => {
                        s.error = Some(format!("cannot start {:?}: {e}", argv[0]));
                        return;
                    }
                }
            }
            // Polled with the lock taken only briefly, so dropping the
            // supervisor can kill the child and no pid is ever signalled
            // after it was reaped.
            loop {
                std::thread::sleep(Duration::from_millis(20));
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(child) = s.child.as_mut() else {
                    return;
                };
                if let Ok(Some(status)) = child.try_wait() {
                    s.child = None;
                    if let Some(life) = s.lives.last_mut() {
                        life.exit = Some(status);
                    }
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        });
        Supervisor {
            state,
            thread: Some(thread),
        }
    }

    /// Every run so far, oldest first; fails the test if a start failed.
    pub fn lives(&self) -> Vec<Life> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = &s.error {
            panic!("the supervisor failed: {e}");
        }
        s.lives.clone()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.stop = true;
            if let Some(mut child) = s.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
