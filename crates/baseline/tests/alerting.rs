//! Against a real Prometheus (Debian's `prometheus`) scraping a small test
//! service, and a real Alertmanager (`prometheus-alertmanager`): a latency
//! incident in the service becomes an alert in Alertmanager, and the alert
//! resolves there when the incident ends.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perfpilot_baseline::baseline::BaselineConfig;
use perfpilot_baseline::detectors::{FeatureKind, MonitorConfig};
use perfpilot_baseline::engine::{Engine, EngineConfig};
use perfpilot_baseline::prom::Prometheus;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn binary(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's prometheus and prometheus-alertmanager (scripts/test.sh does)"
    );
    path
}

/// A service whose `/metrics` shows `test_latency_ms`: the base value set
/// by the test plus a little deterministic jitter per scrape.
fn serve_metrics(base: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut n: u64 = 0;
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            // Request line and headers; the body is empty.
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            n += 1;
            let jitter = ((n * 7919) % 11) as f64 - 5.0;
            let value = base.load(Ordering::Relaxed) as f64 + jitter;
            let body = format!("# TYPE test_latency_ms gauge\ntest_latency_ms {value}\n");
            let mut s = &stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn wait_http(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ureq::get(url).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} did not answer {url} within 30 s");
}

fn active_alerts(am: &str) -> Vec<serde_json::Value> {
    let body = ureq::get(format!("{am}/api/v2/alerts"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    serde_json::from_str::<Vec<serde_json::Value>>(&body)
        .unwrap()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "PerfpilotIncident")
        .collect()
}

#[test]
fn latency_incident_reaches_alertmanager_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let base = Arc::new(AtomicU64::new(100));
    let svc = serve_metrics(Arc::clone(&base));

    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: checkout\n    static_configs: [{{targets: ['127.0.0.1:{svc}']}}]\n"
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let am_port = free_port();
    let am_cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        "route: {receiver: blackhole, group_wait: 1s}\nreceivers: [{name: blackhole}]\n",
    )
    .unwrap();
    let _am = Proc(
        Command::new(binary("prometheus-alertmanager"))
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    let am_url = format!("http://127.0.0.1:{am_port}");
    wait_http(&format!("{prom_url}/-/ready"), "Prometheus");
    wait_http(&format!("{am_url}/-/ready"), "Alertmanager");

    // One-second windows and a short warm-up keep the test under a minute.
    let config = EngineConfig {
        monitor: MonitorConfig {
            baseline: BaselineConfig {
                history: 60,
                warmup: 15,
                min_width: 5.0,
                ..BaselineConfig::default()
            },
            ..MonitorConfig::default()
        },
        resend: Duration::from_secs(5),
        resolve_quiet: Duration::from_secs(3),
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config).with_alertmanager(&am_url);
    let prom = Prometheus::new(&prom_url);
    let step = Duration::from_secs(1);
    let none = BTreeMap::new();
    let mut last = now_ms() - 1000;
    let started = Instant::now();
    let mut fired_at = None;
    let mut resolved = false;
    while started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(step);
        let elapsed = started.elapsed().as_secs();
        // 25 s of normal, then an incident until the alert is seen.
        if elapsed >= 25 && fired_at.is_none() {
            base.store(400, Ordering::Relaxed);
        }
        let end = now_ms() - 1000;
        let series = prom
            .query_range("test_latency_ms", last + 1000, end, step)
            .expect("query_range");
        for s in &series {
            for &(t, x) in &s.points {
                engine.observe("checkout", "latency_ms", FeatureKind::Latency, t, x, &none);
            }
        }
        last = end.max(last);
        engine.deliver(now_ms());
        let active = active_alerts(&am_url);
        match fired_at {
            None if !active.is_empty() => {
                let a = &active[0];
                assert_eq!(a["labels"]["service"], "checkout");
                assert_eq!(a["labels"]["alertname"], "PerfpilotIncident");
                assert!(a["annotations"]["description"]
                    .as_str()
                    .is_some_and(|s| s.contains("latency_ms band")));
                assert!(a["annotations"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("above its expected band")));
                fired_at = Some(elapsed);
                base.store(100, Ordering::Relaxed);
            }
            Some(_) if active.is_empty() => {
                resolved = true;
                break;
            }
            _ => {}
        }
    }
    let fired = fired_at.unwrap_or_else(|| {
        panic!(
            "no alert reached Alertmanager; delivery errors: {} ({:?}); alerts: {:#?}",
            engine.delivery_errors(),
            engine.last_delivery_error(),
            engine.incidents()
        )
    });
    assert!(fired >= 25, "alert before the incident, at {fired} s");
    assert!(
        resolved,
        "the alert did not resolve in Alertmanager: {:#?}",
        engine.incidents()
    );
    assert_eq!(
        engine.delivery_errors(),
        0,
        "{:?}",
        engine.last_delivery_error()
    );
}

#[test]
fn unreachable_prometheus_is_retried_and_reported() {
    let port = free_port();
    let mut prom = Prometheus::new(&format!("http://127.0.0.1:{port}"));
    prom.backoff = Duration::from_millis(10);
    prom.retries = 2;
    let err = prom.query("up", now_ms()).unwrap_err().to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
}
