//! What each ingest attack of issue 10 costs the server with its limit and
//! with the limit raised out of the way, through an in-process server
//! (tokio multi-thread runtime, as `perfpilot server` runs it):
//!
//! - frame amplification: one pprof location of 2,000 inlined lines,
//!   referenced 5,000 times by one sample (10M frames from 3 KB);
//! - 100k labels on one pprof sample (the agent's endpoint), and on one
//!   Push series;
//! - 16 gzip bombs posted at once, each decompressing past the 64 MiB
//!   per-request cap.
//!
//! For each: the answer, the time to it, and what the process allocated
//! meanwhile (peak bytes above the start, and the number of allocations),
//! measured by a counting allocator around the request. The goal: every
//! attack is refused with a 4xx (or 503) after allocating no more than a
//! few MiB per request, and the bombs together stay within
//! `--max-ingest-memory-mib`.
//!
//!     cargo bench -p perfpilot-server --bench limits

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::http::{InProcess, Runtime};
use perfpilot_model::pprof::proto;
use perfpilot_model::{Line, Location, Profile, ValueType};
use perfpilot_server::{Limits, ServerConfig};
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_wire::{LabelPair, PushRequest, RawProfileSeries, RawSample};
use prost::Message;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call goes to the system allocator unchanged; the counters
// are bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            COUNT.fetch_add(1, Ordering::Relaxed);
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            COUNT.fetch_add(1, Ordering::Relaxed);
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;

struct Cost {
    wall: Duration,
    peak: usize,
    allocations: usize,
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let count = COUNT.load(Ordering::SeqCst);
    let start = Instant::now();
    let out = f();
    let cost = Cost {
        wall: start.elapsed(),
        peak: PEAK.load(Ordering::SeqCst).saturating_sub(base),
        allocations: COUNT.load(Ordering::SeqCst) - count,
    };
    (out, cost)
}

fn server(dir: &std::path::Path, config: ServerConfig) -> InProcess {
    let store = EmbeddedStore::open(
        dir,
        Options {
            background: false,
            ..Default::default()
        },
    )
    .expect("opening the store");
    InProcess::start(config, Arc::new(store), Runtime::MultiThread)
}

/// Every limit out of the way: what the attacks cost without them.
fn unlimited() -> ServerConfig {
    ServerConfig {
        limits: Limits {
            max_decoded_bytes: usize::MAX / 4,
            max_labels_per_series: usize::MAX,
            max_frames_per_stack: usize::MAX,
            max_frames_per_request: usize::MAX,
            ..Limits::default()
        },
        max_ingest_memory_bytes: usize::MAX / 2,
        ..ServerConfig::default()
    }
}

fn post(s: &InProcess, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut req = agent.post(&format!("http://{}{path}", s.addr));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    match req.send(body) {
        Ok(mut r) => {
            let _ = r.body_mut().read_to_vec();
            r.status().as_u16()
        }
        Err(_) => 0,
    }
}

fn now_ns() -> i64 {
    common::now_ms() * 1_000_000
}

fn amplified() -> Vec<u8> {
    let mut p = Profile::new(vec![ValueType::new("cpu", "nanoseconds")]);
    p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
    p.time_nanos = now_ns();
    let f = p.add_function_named("inlined_everywhere");
    let lines = (0..2_000)
        .map(|i| Line {
            function: f,
            line: i,
        })
        .collect();
    let loc = p.add_location(Location {
        mapping: None,
        address: 0x1000,
        lines,
    });
    let stack = p.add_stack(&vec![loc; 5_000]);
    let labels = p.add_label_set([("service_name", "svc")]);
    p.add_sample(stack, labels, &[10_000_000]);
    perfpilot_model::pprof::encode(&p).expect("encoding")
}

fn sample_with_labels(n: usize) -> Vec<u8> {
    let mut strings: Vec<Vec<u8>> = ["", "cpu", "nanoseconds", "main", "v", "service_name", "svc"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let first = strings.len() as i64;
    strings.extend((0..n).map(|i| format!("k{i}").into_bytes()));
    let mut label = vec![proto::Label {
        key: 5,
        str: 6,
        ..Default::default()
    }];
    label.extend((0..n as i64).map(|i| proto::Label {
        key: first + i,
        str: 4,
        ..Default::default()
    }));
    let msg = proto::Profile {
        sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
        sample: vec![proto::Sample {
            location_id: vec![1],
            value: vec![1],
            label,
        }],
        location: vec![proto::Location {
            id: 1,
            line: vec![proto::Line {
                function_id: 1,
                line: 1,
                ..Default::default()
            }],
            ..Default::default()
        }],
        function: vec![proto::Function {
            id: 1,
            name: 3,
            ..Default::default()
        }],
        string_table: strings,
        time_nanos: now_ns(),
        ..Default::default()
    };
    msg.encode_to_vec()
}

fn push_with_labels(n: usize) -> Vec<u8> {
    let mut labels = vec![
        LabelPair::new("service_name", "svc"),
        LabelPair::new("__name__", "process_cpu"),
    ];
    labels.extend((0..n).map(|i| LabelPair::new(format!("l{i}"), "v")));
    PushRequest {
        series: vec![RawProfileSeries {
            labels,
            samples: vec![RawSample {
                raw_profile: sample_with_labels(0),
                id: String::new(),
            }],
        }],
    }
    .encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn row(what: &str, answer: &str, c: &Cost) {
    println!(
        "  {what:<44} {answer:>14} {:>10.1} {:>10.1} {:>12}",
        c.wall.as_secs_f64() * 1e3,
        c.peak as f64 / MIB as f64,
        c.allocations
    );
}

fn main() {
    let target = common::target_dir();
    std::fs::create_dir_all(&target).expect("the target directory");
    let tmp = tempfile::Builder::new()
        .prefix("limits-bench-")
        .tempdir_in(&target)
        .expect("a temporary directory under target/");
    println!(
        "limits: each attack against an in-process server, with the default limits and with \
         the limit raised; allocations counted around each request"
    );
    println!(
        "  {:<44} {:>14} {:>10} {:>10} {:>12}",
        "attack", "answer", "ms", "peak MiB", "allocations"
    );
    let mut ok = true;
    let mut check = |good: bool| ok &= good;

    let configs = [
        ("", ServerConfig::default()),
        (", limits raised", unlimited()),
    ];
    for (i, (suffix, config)) in configs.into_iter().enumerate() {
        let s = server(&tmp.path().join(format!("s{i}")), config);
        let body = amplified();
        let (status, c) = measure(|| post(&s, "/api/v1/ingest", &[], &body));
        row(
            &format!("10M frames from {} KB{suffix}", body.len() >> 10),
            &status.to_string(),
            &c,
        );
        if i == 0 {
            check(status == 400 && c.peak < 8 * MIB);
        }
        let body = gzip(&sample_with_labels(100_000));
        let (status, c) = measure(|| post(&s, "/api/v1/ingest", &[], &body));
        row(
            &format!("100k labels on a pprof sample{suffix}"),
            &status.to_string(),
            &c,
        );
        if i == 0 {
            check(status == 400 && c.allocations < 20_000);
        }
        let body = push_with_labels(100_000);
        let (status, c) = measure(|| {
            post(
                &s,
                "/push.v1.PusherService/Push",
                &[("Content-Type", "application/proto")],
                &body,
            )
        });
        row(
            &format!("100k labels on a Push series{suffix}"),
            &status.to_string(),
            &c,
        );
        if i == 0 {
            check(status == 400 && c.allocations < 20_000);
        }
        drop(s);
    }

    let bomb = gzip(&vec![0u8; 65 * MIB]);
    let default_pool = ServerConfig::default().max_ingest_memory_bytes;
    for (suffix, pool) in [("", default_pool), (", pool raised to 2 GiB", 2048 * MIB)] {
        let s = server(
            &tmp.path().join(format!("bombs{pool}")),
            ServerConfig {
                max_ingest_memory_bytes: pool,
                ..ServerConfig::default()
            },
        );
        let barrier = Barrier::new(16);
        let (statuses, c) = measure(|| {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..16)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            post(
                                &s,
                                "/push.v1.PusherService/Push",
                                &[
                                    ("Content-Type", "application/proto"),
                                    ("Content-Encoding", "gzip"),
                                ],
                                &bomb,
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(0))
                    .collect::<Vec<u16>>()
            })
        });
        let n = |code| statuses.iter().filter(|&&s| s == code).count();
        row(
            &format!("16 gzip bombs at once{suffix}"),
            &format!("413×{} 503×{}", n(413), n(503)),
            &c,
        );
        if pool == default_pool {
            check(n(413) + n(503) == 16 && c.peak < pool + 32 * MIB);
        }
    }
    println!(
        "  goal: every attack refused, a few MiB per request, the bombs within \
         --max-ingest-memory-mib ({} MiB) together: {}",
        default_pool >> 20,
        common::verdict(ok)
    );
}
