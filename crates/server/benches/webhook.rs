//! The autopilot's Alertmanager webhook receiver, `POST /api/v1/alertmanager`,
//! through an in-process server (tokio multi-thread runtime, as `perfpilot
//! serve` runs it) with its autopilot directory under the target directory
//! (a real disk: the audit log's fdatasync is what is measured, and /tmp may
//! be a tmpfs elsewhere). Clients are threads of this process, each on one
//! keep-alive HTTP/1.1 connection posting one request at a time:
//!
//! - duplicates: the same firing alert posted over and over; the inbox is
//!   idempotent on fingerprint + startsAt, nothing changes, nothing is
//!   written or synced;
//! - new alerts: every post carries one alert with a fingerprint not seen
//!   before, so every post appends one audit record (one write + one
//!   fdatasync) before its 200;
//! - new alerts, 100 per post: Alertmanager groups alerts; a post's records
//!   share one write and one fdatasync;
//! - the floor: one `write` + `fdatasync` of a 500-byte line appended to a
//!   file in the same directory, timed the same way, so the figures compare
//!   across machines.
//!
//! The goal (the receiver "replies 2xx quickly"; Alertmanager's webhook
//! timeout is 10 s and it retries): new-alert p99 < 100 ms.
//!
//!     cargo bench -p perfpilot-server --bench webhook [-- --quick]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::http::{InProcess, KeepAlive, Runtime};
use common::{percentile, target_dir, verdict};
use perfpilot_server::api::WebhookResponse;
use perfpilot_server::{AutopilotHandle, ServerConfig};
use perfpilot_store::embedded::{EmbeddedStore, Options};

/// New-alert p99 goal, in milliseconds.
const GOAL_P99_MS: f64 = 100.0;
/// Alerts in a post of the batched run.
const BATCH: usize = 100;

/// An in-process server with the autopilot on, its state in `dir`.
fn start(dir: &Path) -> InProcess {
    let store = EmbeddedStore::open(
        &dir.join("store"),
        Options {
            background: false,
            ..Default::default()
        },
    )
    .expect("opening the store");
    let config = ServerConfig {
        autopilot: Some(
            AutopilotHandle::open(&dir.join("autopilot")).expect("opening the autopilot dir"),
        ),
        ..Default::default()
    };
    InProcess::start(config, Arc::new(store), Runtime::MultiThread)
}

/// Posts one webhook as Alertmanager does; the receiver's answer.
fn post(client: &mut KeepAlive, body: &[u8]) -> WebhookResponse {
    let answer = client.post(
        "/api/v1/alertmanager",
        "User-Agent: Alertmanager/0.27.0\r\nContent-Type: application/json\r\n",
        body,
    );
    serde_json::from_slice(&answer).expect("a webhook answer")
}

/// One alert of a webhook: `id` picks its instance and fingerprint
/// (Alertmanager's fingerprint is a hash of the labels).
fn alert(id: u64) -> String {
    format!(
        r#"{{
      "status": "firing",
      "labels": {{"alertname": "CheckoutHighLatency", "instance": "checkout-{id}:8080", "job": "checkout", "service": "checkout", "severity": "page"}},
      "annotations": {{"summary": "checkout p99 above 500ms", "description": "p99 latency of checkout-{id} is 812ms over the last 5m"}},
      "startsAt": "2026-11-22T10:15:30.123456789Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=histogram_quantile&g0.tab=1",
      "fingerprint": "{id:016x}"
    }}"#
    )
}

/// Alertmanager's v4 webhook carrying the alerts `ids`.
fn payload(ids: &[u64]) -> Vec<u8> {
    let alerts: Vec<String> = ids.iter().map(|&id| alert(id)).collect();
    format!(
        r#"{{
  "receiver": "perfpilot",
  "status": "firing",
  "alerts": [
    {}
  ],
  "groupLabels": {{"alertname": "CheckoutHighLatency"}},
  "commonLabels": {{"alertname": "CheckoutHighLatency", "job": "checkout", "service": "checkout", "severity": "page"}},
  "commonAnnotations": {{"summary": "checkout p99 above 500ms"}},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{{}}:{{alertname=\"CheckoutHighLatency\"}}",
  "truncatedAlerts": 0
}}"#,
        alerts.join(",\n    ")
    )
    .into_bytes()
}

/// What a run measured.
struct Run {
    /// Per post, milliseconds, sorted.
    latencies: Vec<f64>,
    wall: Duration,
    posts: usize,
    alerts: usize,
}

impl Run {
    fn p(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
    }

    fn posts_per_s(&self) -> f64 {
        self.posts as f64 / self.wall.as_secs_f64()
    }

    fn alerts_per_s(&self) -> f64 {
        self.alerts as f64 / self.wall.as_secs_f64()
    }
}

/// Posts `bodies[c]` from client thread `c`, all threads on their own
/// connection, one request at a time, started together; `new` is how many
/// audit records each post must have made. `warmup` posts per client go
/// first, untimed.
fn run(addr: SocketAddr, bodies: Vec<Vec<Vec<u8>>>, warmup: usize, new: usize) -> Run {
    let clients = bodies.len();
    let start = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = bodies
        .into_iter()
        .map(|bodies| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let mut client = KeepAlive::connect(addr);
                let (warm, timed) = bodies.split_at(warmup);
                for b in warm {
                    post(&mut client, b);
                }
                start.wait();
                let mut lat = Vec::with_capacity(timed.len());
                let mut alerts = 0;
                for b in timed {
                    let t = Instant::now();
                    let r = post(&mut client, b);
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    assert_eq!(r.new, new, "records made by a post");
                    assert_eq!(r.audit_seqs.len(), new, "audit records of a post");
                    alerts += r.alerts;
                }
                (lat, alerts)
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let mut latencies = Vec::new();
    let mut alerts = 0;
    for h in handles {
        let (lat, a) = h.join().expect("a client thread");
        latencies.extend(lat);
        alerts += a;
    }
    let wall = t0.elapsed();
    latencies.sort_by(f64::total_cmp);
    Run {
        posts: latencies.len(),
        latencies,
        wall,
        alerts,
    }
}

/// The same firing alert, `n` posts split over `clients` (the alert is
/// posted once before, so it is in the inbox).
fn duplicates(dir: &Path, clients: usize, n: usize) -> Run {
    let server = start(dir);
    let body = payload(&[1]);
    post(&mut KeepAlive::connect(server.addr), &body);
    let per = n / clients;
    let bodies = (0..clients).map(|_| vec![body.clone(); 20 + per]).collect();
    run(server.addr, bodies, 20, 0)
}

/// `n` posts of `per_post` alerts each, every alert new, split over
/// `clients`.
fn new_alerts(dir: &Path, clients: usize, n: usize, per_post: usize) -> (Run, u64) {
    let server = start(dir);
    let per = n / clients;
    let warmup = 10;
    let bodies = (0..clients)
        .map(|c| {
            (0..warmup + per)
                .map(|i| {
                    let first = ((c as u64) << 40) + (i * per_post) as u64 + 1;
                    let ids: Vec<u64> = (first..first + per_post as u64).collect();
                    payload(&ids)
                })
                .collect()
        })
        .collect();
    let r = run(server.addr, bodies, warmup, per_post);
    drop(server);
    let audit = std::fs::metadata(dir.join("autopilot").join(AutopilotHandle::AUDIT_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let records = (clients * (warmup + per) * per_post) as u64;
    (r, audit / records.max(1))
}

/// `n` appends of a 500-byte line (newline included) to a file in `dir`,
/// each followed by fdatasync, as the audit log commits: milliseconds per
/// append, sorted.
fn floor(dir: &Path, n: usize) -> Vec<f64> {
    let path = dir.join("floor.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("a file");
    let mut line = vec![b'x'; 499];
    line.push(b'\n');
    for _ in 0..10 {
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .expect("syncing");
    }
    let mut lat: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&line).expect("writing");
            f.sync_data().expect("syncing");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    drop(f);
    let _ = std::fs::remove_file(&path);
    lat.sort_by(f64::total_cmp);
    lat
}

/// 4712.3 → "4,712".
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn line(name: &str, r: &Run) -> String {
    format!(
        "{name:<34} p50 {:>9}  p99 {:>9}  {:>6} posts/s",
        ms(r.p(50.0)),
        ms(r.p(99.0)),
        thousands(r.posts_per_s())
    )
}

/// A fresh directory under `parent`.
fn subdir(parent: &Path, name: &str) -> std::path::PathBuf {
    let d = parent.join(name);
    std::fs::create_dir_all(&d).expect("a directory");
    d
}

fn main() {
    let quick = common::quick();
    let scale = if quick { 10 } else { 1 };
    let n_dup = 5_000 / scale;
    let n_new = 2_000 / scale;
    let n_batch = 200 / scale;

    // Not /tmp: it is a tmpfs on some machines, where fdatasync is free.
    let target = target_dir();
    std::fs::create_dir_all(&target).expect("the target directory");
    let target = std::fs::canonicalize(&target).unwrap_or(target);
    let tmp = tempfile::Builder::new()
        .prefix("webhook-bench-")
        .tempdir_in(&target)
        .expect("a temporary directory under target/");
    let dir = tmp.path();

    println!(
        "webhook: POST /api/v1/alertmanager, in-process server (tokio multi-thread runtime), \
         autopilot dir {}{}",
        dir.display(),
        if quick { " (--quick)" } else { "" }
    );
    println!(
        "  clients: threads of this process, one keep-alive connection each, one post at a time; \
         all on the same {} CPUs",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  duplicates: {n_dup} posts of one firing alert already in the inbox; new alerts: \
         {n_new} posts of one new alert; batched: {n_batch} posts of {BATCH} new alerts; \
         each after a few untimed posts"
    );
    println!();

    let floor_before = floor(dir, n_new);
    println!(
        "{:<34} p50 {:>9}  p99 {:>9}  {:>6} syncs/s",
        "floor: write + fdatasync, 500 B",
        ms(percentile(&floor_before, 50.0)),
        ms(percentile(&floor_before, 99.0)),
        thousands(1e3 / (floor_before.iter().sum::<f64>() / floor_before.len() as f64)),
    );

    let mut news = Vec::new();
    let mut record_bytes = 0;
    for clients in [1, 4] {
        let who = if clients == 1 {
            "1 client".to_string()
        } else {
            format!("{clients} clients")
        };
        let d = duplicates(&subdir(dir, &format!("dup-{clients}")), clients, n_dup);
        println!("{}", line(&format!("duplicates, {who}:"), &d));
        let (r, bytes) = new_alerts(&subdir(dir, &format!("new-{clients}")), clients, n_new, 1);
        record_bytes = bytes;
        let f50 = percentile(&floor_before, 50.0);
        let f99 = percentile(&floor_before, 99.0);
        println!(
            "{}  (p50 = {:.1} × the floor's, p99 = {:.1} × the floor's)",
            line(&format!("new alerts, {who}:"), &r),
            r.p(50.0) / f50,
            r.p(99.0) / f99,
        );
        news.push((who, r));
    }
    let (b, _) = new_alerts(&subdir(dir, "batch-1"), 1, n_batch, BATCH);
    println!(
        "{}  {} alerts/s",
        line(&format!("{BATCH} new alerts a post, 1 client:"), &b),
        thousands(b.alerts_per_s())
    );

    let floor_after = floor(dir, n_new);
    println!(
        "{:<34} p50 {:>9}  p99 {:>9}",
        "floor again, after the runs:",
        ms(percentile(&floor_after, 50.0)),
        ms(percentile(&floor_after, 99.0)),
    );
    println!("  an audit record of one alert: {record_bytes} bytes");
    println!();

    let met = news.iter().all(|(_, r)| r.p(99.0) < GOAL_P99_MS);
    let parts: Vec<String> = news
        .iter()
        .map(|(who, r)| format!("{} with {who}", ms(r.p(99.0))))
        .collect();
    let best = news
        .iter()
        .map(|(_, r)| r.posts_per_s())
        .fold(0.0, f64::max);
    println!(
        "goal: new-alert p99 < {GOAL_P99_MS:.0} ms (Alertmanager's webhook timeout is 10 s): {} \
         ({}); sustains {} posts/s of one new alert, {} alerts/s at {BATCH} a post",
        verdict(met),
        parts.join(", "),
        thousands(best),
        thousands(b.alerts_per_s()),
    );
}
