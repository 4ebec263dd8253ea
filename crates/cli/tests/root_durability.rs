//! The durability promise (docs/DURABILITY.md) against the real server:
//! rounds of concurrent ingest into `perfpilot server` on a small tmpfs,
//! the disk filled at a random point (and in some rounds freed again while
//! the server runs), the server killed (`kill -9`) at a random point, and
//! restarted. Every batch answered 2xx must be there
//! after every restart, whole and once; the server must open and answer
//! every time, answer 507 (never 500) while the disk is full, and take
//! batches again by itself once space is freed.
//!
//! `PERFPILOT_DURABILITY_ROUNDS` (default 100) and
//! `PERFPILOT_DURABILITY_SEED` (printed at the start) replay a run;
//! `PERFPILOT_DURABILITY_KEEP=DIR` keeps the store there when a batch is
//! lost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The value one folded line `main;MARKER 1` is stored with at
/// `sampleRate=100`: one sample of 10 ms, in nanoseconds.
const BATCH_VALUE: i64 = 10_000_000;

/// xorshift64*: the rounds' random points, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            ok.success(),
            "mounting a tmpfs on {} (the test needs root)",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The server on `port`, its output appended to `log`.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(data: &Path, port: u16, log: &Path) -> Server {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the server's log");
        let child = common::perfpilot()
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("the log"))
            .stderr(out)
            .spawn()
            .expect("the server starts");
        let mut s = Server { child, port };
        s.wait_ready(log);
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self, log: &Path) {
        let agent = agent(Duration::from_secs(2));
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}); its log ends:\n{}", tail(log));
            }
            if let Ok(r) = agent.get(format!("{}/healthz", self.url())).call() {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the server did not answer in 60 s; its log ends:\n{}",
            tail(log)
        );
    }

    /// SIGKILL, or SIGTERM and a wait (SIGKILL after 30 s).
    fn stop(mut self, graceful: bool) {
        let sig = if graceful {
            libc::SIGTERM
        } else {
            libc::SIGKILL
        };
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs the batch named `marker` with `pad` labels of 240 bytes, so
/// WAL records are of many sizes (a record a full disk tears is one
/// crossing a page): (status, body), or None when the server could not be
/// reached (killed).
fn post(agent: &ureq::Agent, url: &str, marker: &str, pad: usize) -> Option<(u16, String)> {
    let body = format!("main;{marker} 1\n");
    let labels: String = (0..pad)
        .map(|k| format!(",pad{k}={}", "v".repeat(240)))
        .collect();
    let mut r = agent
        .post(format!(
            "{url}/ingest?name=dur.cpu%7Bx=y{labels}%7D&sampleRate=100"
        ))
        .send(body.as_bytes())
        .ok()?;
    let text = r.body_mut().read_to_string().unwrap_or_default();
    Some((r.status().as_u16(), text))
}

/// Every stored marker with its values.
fn stored(url: &str, log: &Path) -> BTreeMap<String, Vec<i64>> {
    let agent = agent(Duration::from_secs(60));
    let mut r = agent
        .get(format!(
            "{url}/api/v1/export?format=folded&query=%7Bservice_name%3D%22dur%22%7D&from=now-2h&until=now%2B2h"
        ))
        .call()
        .unwrap_or_else(|e| panic!("the export: {e}; the server's log ends:\n{}", tail(log)));
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(
        status,
        200,
        "the store must answer: {text}; the server's log ends:\n{}",
        tail(log)
    );
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (stack, v) = line.rsplit_once(' ').expect("a folded line");
        let marker = stack.rsplit(';').next().unwrap_or(stack).to_string();
        out.entry(marker)
            .or_default()
            .push(v.parse().expect("a value"));
    }
    out
}

/// Fills the file system `dir` is on, as another process would.
fn fill(path: &Path) {
    let Ok(mut f) = std::fs::File::create(path) else {
        return;
    };
    let chunk = vec![0xa5u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    let small = vec![0xa5u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

#[derive(Default)]
struct Totals {
    acked: BTreeSet<String>,
    sent: usize,
    full_answers: usize,
    unexpected: Vec<String>,
}

#[test]
fn root_acknowledged_batches_survive_disk_full_and_kill_9_in_100_rounds() {
    let rounds: u64 = std::env::var("PERFPILOT_DURABILITY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("PERFPILOT_DURABILITY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| common::alerting::now_ms() as u64 | 1);
    eprintln!("durability: {rounds} rounds, seed {seed} (PERFPILOT_DURABILITY_SEED)");
    let mut rng = Rng(seed);
    let fs = Tmpfs::mount("24m");
    let data = fs.path().join("data");
    let filler: PathBuf = fs.path().join("filler");
    let logs = tempfile::tempdir().expect("a directory for the log");
    let log = logs.path().join("server.log");
    let port = common::alerting::free_port();
    let totals = Arc::new(Mutex::new(Totals::default()));
    let (mut full_rounds, mut freed_running, mut full_restarts, mut graceful) = (0, 0, 0, 0);
    let started = Instant::now();

    let mut server = Server::start(&data, port, &log);
    for round in 0..rounds {
        let url = server.url();
        // Concurrent writers, each a few dozen batches a second.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (url, stop, totals) = (url.clone(), Arc::clone(&stop), Arc::clone(&totals));
                let mut pads = Rng(rng.next() | 1);
                std::thread::spawn(move || {
                    let agent = agent(Duration::from_secs(10));
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let marker = format!("b{round}_{w}_{i}");
                        i += 1;
                        let answer = post(&agent, &url, &marker, pads.below(13) as usize);
                        let mut t = totals.lock().expect("totals");
                        t.sent += 1;
                        match answer {
                            Some((200, _)) => {
                                t.acked.insert(marker);
                            }
                            Some((507, body)) if body.contains("disk is full") => {
                                t.full_answers += 1
                            }
                            Some((status, body)) => {
                                t.unexpected.push(format!("{marker}: {status} {body}"))
                            }
                            // Killed mid-request: neither acknowledged nor
                            // refused.
                            None => {}
                        }
                        drop(t);
                        std::thread::sleep(Duration::from_millis(15));
                    }
                })
            })
            .collect();
        // The server dies at a random point; in two rounds of three the
        // disk fills before, and in half of those it is freed again
        // before the kill, the server taking batches on.
        let kill_ms = 300 + rng.below(1200);
        let kill_at = Duration::from_millis(kill_ms);
        let fill_ms = (rng.below(3) < 2).then(|| rng.below(kill_ms));
        let free_at = fill_ms
            .filter(|_| rng.below(2) == 0)
            .map(|f| Duration::from_millis(f + rng.below(kill_ms - f)));
        let fill_at = fill_ms.map(Duration::from_millis);
        let t0 = Instant::now();
        let (mut filled, mut freed) = (false, false);
        while t0.elapsed() < kill_at {
            if !filled && fill_at.is_some_and(|f| t0.elapsed() >= f) {
                fill(&filler);
                filled = true;
                full_rounds += 1;
            }
            if filled && !freed && free_at.is_some_and(|f| t0.elapsed() >= f) {
                std::fs::remove_file(&filler).expect("space freed");
                freed = true;
                freed_running += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let graceful_stop = round % 5 == 4;
        graceful += graceful_stop as usize;
        server.stop(graceful_stop);
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join().expect("a writer");
        }
        // Restart, on a full disk in some rounds.
        let filled = filled && !freed;
        let restart_full = filled && rng.below(2) == 0;
        if filled && !restart_full {
            std::fs::remove_file(&filler).expect("space freed");
        }
        server = Server::start(&data, port, &log);
        let url = server.url();
        if restart_full {
            full_restarts += 1;
            // Opens and answers on a full disk; refuses batches with 507.
            let _ = stored(&url, &log);
            let a = agent(Duration::from_secs(10));
            let (status, body) =
                post(&a, &url, &format!("full{round}"), 0).expect("the server answers");
            assert!(
                status == 507 || status == 200,
                "round {round}: {status} {body} on a full disk"
            );
            if status == 200 {
                totals
                    .lock()
                    .expect("t")
                    .acked
                    .insert(format!("full{round}"));
            }
            std::fs::remove_file(&filler).expect("space freed");
            // Ingest resumes by itself, no restart.
            let end = Instant::now() + Duration::from_secs(30);
            loop {
                let marker = format!("resumed{round}");
                match post(&a, &url, &marker, 0) {
                    Some((200, _)) => {
                        totals.lock().expect("t").acked.insert(marker);
                        break;
                    }
                    other => assert!(
                        Instant::now() < end,
                        "round {round}: ingest did not resume once space was freed: {other:?}; \
                         the server's log ends:\n{}",
                        tail(&log)
                    ),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Every acknowledged batch is there, whole and once.
        let present = stored(&url, &log);
        let t = totals.lock().expect("totals");
        let lost: Vec<&String> = t
            .acked
            .iter()
            .filter(|m| present.get(*m) != Some(&vec![BATCH_VALUE]))
            .collect();
        if let (false, Ok(keep)) = (lost.is_empty(), std::env::var("PERFPILOT_DURABILITY_KEEP")) {
            // The store as it was, for a look at what went wrong.
            let _ = Command::new("cp").arg("-a").arg(&data).arg(&keep).status();
            let _ = std::fs::copy(&log, Path::new(&keep).join("server.log"));
        }
        assert!(
            lost.is_empty(),
            "round {round} (seed {seed}): {} acknowledged batches lost or not whole, e.g. {:?} \
             ({:?}); the server's log ends:\n{}",
            lost.len(),
            &lost[..lost.len().min(5)],
            lost.first().and_then(|m| present.get(*m)),
            tail(&log)
        );
        for (m, v) in &present {
            assert_eq!(
                v,
                &vec![BATCH_VALUE],
                "round {round}: {m} is stored as {v:?}"
            );
        }
        assert!(
            t.unexpected.is_empty(),
            "round {round}: answers other than 200 and 507: {:?}",
            &t.unexpected[..t.unexpected.len().min(5)]
        );
    }
    drop(server);
    let t = totals.lock().expect("totals");
    eprintln!(
        "durability: rounds {rounds}, sent {}, acked {}, lost 0, answered 507 {}, rounds with \
         the disk filled {full_rounds} (freed while running {freed_running}, restarted full \
         {full_restarts}), graceful stops {graceful}, {:.0} s",
        t.sent,
        t.acked.len(),
        t.full_answers,
        started.elapsed().as_secs_f64()
    );
    assert!(
        t.acked.len() as u64 > rounds * 4,
        "too few batches acknowledged"
    );
    assert!(t.full_answers > 0, "the disk was never full during ingest");
}
