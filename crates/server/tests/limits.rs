//! Bounded ingest: each attack of issue 10 against an in-process server,
//! checking the clear 4xx (what, where, the limit and its flag) and what
//! the server spent before answering it. Costs are measured as bytes and
//! allocations through a counting allocator, never as time, so the tests
//! hold on a loaded machine. The allocator counts the whole process: the
//! tests take turns (`serial`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{answer, client, header, Answer, TestServer};
use perfpilot_model::pprof::proto;
use perfpilot_model::{Line, Location, Profile, ValueType};
use perfpilot_server::{AutopilotHandle, ServerConfig};
use perfpilot_wire::{LabelPair, Limits, PushRequest, RawProfileSeries, RawSample};
use prost::Message;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed to the system allocator unchanged; the
// counters are only bookkeeping.
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

/// What a piece of work allocated: the peak above what was live before
/// it, and the number of allocations.
#[derive(Debug)]
struct Cost {
    peak_bytes: usize,
    allocations: usize,
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let count = COUNT.load(Ordering::SeqCst);
    let out = f();
    let cost = Cost {
        peak_bytes: PEAK.load(Ordering::SeqCst).saturating_sub(base),
        allocations: COUNT.load(Ordering::SeqCst) - count,
    };
    (out, cost)
}

const MIB: usize = 1 << 20;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as i64
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn post(s: &TestServer, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut req = client().post(&s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.send(body))
}

/// A multipart/form-data body with one `profile` part, as pyroscope-go
/// sends it.
fn multipart(profile: &[u8]) -> (String, Vec<u8>) {
    let boundary = "b0undary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"profile\"; \
             filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(profile);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn push_body(labels: Vec<LabelPair>, profile: Vec<u8>) -> Vec<u8> {
    PushRequest {
        series: vec![RawProfileSeries {
            labels,
            samples: vec![RawSample {
                raw_profile: profile,
                id: String::new(),
            }],
        }],
    }
    .encode_to_vec()
}

fn service_labels() -> Vec<LabelPair> {
    vec![
        LabelPair::new("service_name", "svc"),
        LabelPair::new("__name__", "process_cpu"),
    ]
}

/// The same gzipped pprof through every endpoint that takes one: the
/// agent's, the plain upload, Pyroscope's /ingest (raw and multipart)
/// and Push; (endpoint, answer, cost) each.
fn every_pprof_path(s: &TestServer, pprof: &[u8]) -> Vec<(&'static str, Answer, Cost)> {
    let (ct, form) = multipart(pprof);
    let push = push_body(service_labels(), pprof.to_vec());
    let mut out = Vec::new();
    let (a, c) = measure(|| post(s, "/api/v1/ingest", &[], pprof));
    out.push(("agent", a, c));
    let (a, c) = measure(|| post(s, "/api/v1/pprof?name=svc", &[], pprof));
    out.push(("pprof upload", a, c));
    let (a, c) = measure(|| post(s, "/ingest?name=svc&format=pprof", &[], pprof));
    out.push(("/ingest pprof", a, c));
    let (a, c) = measure(|| {
        post(
            s,
            "/ingest?name=svc&format=pprof",
            &[("Content-Type", ct.as_str())],
            &form,
        )
    });
    out.push(("/ingest multipart", a, c));
    let (a, c) = measure(|| {
        post(
            s,
            "/push.v1.PusherService/Push",
            &[("Content-Type", "application/proto")],
            &push,
        )
    });
    out.push(("Push", a, c));
    out
}

fn cpu_profile() -> Profile {
    let mut p = Profile::new(vec![ValueType::new("cpu", "nanoseconds")]);
    p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
    p.period = 10_000_000;
    p.time_nanos = now_ns();
    p
}

/// The start of an answer, for messages (some answers list thousands of
/// ids).
fn short(s: &str) -> &str {
    match s.char_indices().nth(400) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn assert_refused(what: &str, a: &Answer, status: u16, flag: &str) {
    assert_eq!(a.0, status, "{what}: {}", short(&a.2));
    assert!(
        a.2.contains(flag),
        "{what}: the answer names {flag}: {}",
        short(&a.2)
    );
}

#[test]
fn frame_amplification_is_refused_before_the_stack_is_expanded() {
    let _g = serial();
    let s = TestServer::start(None);
    // One location of 2,000 inlined lines, referenced 5,000 times by one
    // sample: 3 KB of gzipped pprof that expands to 10M frames.
    let mut p = cpu_profile();
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
    let pprof = perfpilot_model::pprof::encode(&p).expect("encoding");
    assert!(pprof.len() < 64 << 10, "{} bytes", pprof.len());
    for (path, a, cost) in every_pprof_path(&s, &pprof) {
        assert_refused(path, &a, 400, "--max-frames-per-stack");
        assert!(
            a.2.contains("sample 0"),
            "{path}: the answer says where: {}",
            short(&a.2)
        );
        // 10M frames are 40 MB as ids alone.
        assert!(
            cost.peak_bytes < 8 * MIB,
            "{path}: {} bytes allocated at the peak",
            cost.peak_bytes
        );
    }
}

#[test]
fn frames_are_counted_over_the_whole_request() {
    let _g = serial();
    let s = TestServer::start_with(ServerConfig {
        limits: Limits {
            max_frames_per_request: 1 << 20,
            ..Limits::default()
        },
        ..ServerConfig::default()
    });
    // 300 distinct stacks of 4,033 frames each (a leaf, then 63 references
    // to a location of 64 inlined lines): each within the per-stack limit,
    // 1.2M frames together, over a limit of 1M.
    let mut p = cpu_profile();
    let f = p.add_function_named("deep");
    let lines = (0..64)
        .map(|i| Line {
            function: f,
            line: i,
        })
        .collect();
    let deep = p.add_location(Location {
        mapping: None,
        address: 0x1000,
        lines,
    });
    let labels = p.add_label_set([("service_name", "svc")]);
    for i in 0..300 {
        let g = p.add_function_named(&format!("leaf_{i}"));
        let leaf = p.add_function_location(g);
        let mut stack = vec![leaf];
        stack.extend(std::iter::repeat_n(deep, 63));
        let stack = p.add_stack(&stack);
        p.add_sample(stack, labels, &[1]);
    }
    let pprof = perfpilot_model::pprof::encode(&p).expect("encoding");
    for (path, a, _) in every_pprof_path(&s, &pprof) {
        assert_refused(path, &a, 413, "--max-frames-per-request");
    }
}

/// A pprof whose one sample carries `n` labels `k0=v` ... built as
/// protobuf directly (the model would merge them).
fn pprof_with_sample_labels(n: usize) -> Vec<u8> {
    let mut strings: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"cpu".to_vec(),
        b"nanoseconds".to_vec(),
        b"main".to_vec(),
        b"v".to_vec(),
        b"service_name".to_vec(),
        b"svc".to_vec(),
    ];
    let first_key = strings.len() as i64;
    strings.extend((0..n).map(|i| format!("k{i}").into_bytes()));
    let mut label = vec![proto::Label {
        key: 5,
        str: 6,
        num: 0,
        num_unit: 0,
    }];
    label.extend((0..n as i64).map(|i| proto::Label {
        key: first_key + i,
        str: 4,
        num: 0,
        num_unit: 0,
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
        period_type: Some(proto::ValueType { r#type: 1, unit: 2 }),
        period: 10_000_000,
        ..Default::default()
    };
    gzip(&msg.encode_to_vec())
}

#[test]
fn labels_are_counted_before_they_are_merged() {
    let _g = serial();
    let s = TestServer::start(None);
    // 100k labels on one pprof sample, through every pprof endpoint.
    let pprof = pprof_with_sample_labels(100_000);
    for (path, a, cost) in every_pprof_path(&s, &pprof) {
        assert_refused(path, &a, 400, "--max-labels-per-series");
        assert!(
            a.2.contains("sample 0"),
            "{path}: says where: {}",
            short(&a.2)
        );
        // Building 100k label strings alone is 200k allocations; the
        // decoded protobuf itself a handful.
        assert!(
            cost.allocations < 20_000,
            "{path}: {} allocations before the answer",
            cost.allocations
        );
    }

    // 100k labels on a Push series.
    let mut labels = service_labels();
    labels.extend((0..100_000).map(|i| LabelPair::new(format!("l{i}"), "v")));
    let body = push_body(labels, pprof_with_sample_labels(0));
    let (a, cost) = measure(|| {
        post(
            &s,
            "/push.v1.PusherService/Push",
            &[("Content-Type", "application/proto")],
            &body,
        )
    });
    assert_refused("Push labels", &a, 400, "--max-labels-per-series");
    assert!(a.2.contains("series 0"), "says where: {}", short(&a.2));
    assert!(
        cost.allocations < 20_000,
        "Push labels: {} allocations before the answer",
        cost.allocations
    );

    // 4,000 tags in /ingest's name (a 50 KB query string; URIs stop at
    // 64 KiB).
    let tags: Vec<String> = (0..4_000).map(|i| format!("t{i}%3Dv")).collect();
    let path = format!("/ingest?name=app%7B{}%7D", tags.join("%2C"));
    let (a, cost) = measure(|| post(&s, &path, &[], b"a;b 1\n"));
    assert_refused("/ingest tags", &a, 400, "--max-labels-per-series");
    // Building the tags alone would be 8,000 allocations.
    assert!(
        cost.allocations < 2_000,
        "/ingest tags: {} allocations before the answer",
        cost.allocations
    );
}

#[test]
fn timestamps_outside_the_retention_are_refused() {
    let _g = serial();
    let s = TestServer::start(None);
    // 1970, and a time that saturates to i64::MIN.
    for from in ["0", "1", "now-1000000000y"] {
        let a = post(
            &s,
            &format!("/ingest?name=app&from={from}"),
            &[],
            b"a;b 1\n",
        );
        assert_refused(&format!("from={from}"), &a, 400, "--retention");
    }
    // A pprof from 2001 through every pprof endpoint.
    let mut p = cpu_profile();
    p.time_nanos = 1_000_000_000_000_000_000;
    let f = p.add_function_named("main");
    let loc = p.add_function_location(f);
    let stack = p.add_stack(&[loc]);
    let labels = p.add_label_set([("service_name", "svc")]);
    p.add_sample(stack, labels, &[1]);
    let pprof = perfpilot_model::pprof::encode(&p).expect("encoding");
    for (path, a, _) in every_pprof_path(&s, &pprof) {
        assert_refused(path, &a, 400, "--retention");
    }
    // Too far ahead names its flag too.
    p.time_nanos = now_ns() + 3_600 * 1_000_000_000;
    let pprof = perfpilot_model::pprof::encode(&p).expect("encoding");
    for (path, a, _) in every_pprof_path(&s, &pprof) {
        assert_refused(path, &a, 400, "--max-future");
    }
}

#[test]
fn huge_function_names_and_label_values_are_refused_everywhere() {
    let _g = serial();
    let s = TestServer::start(None);
    let huge = "x".repeat(MIB);
    // A 1 MiB function name.
    let mut p = cpu_profile();
    let f = p.add_function_named(&huge);
    let loc = p.add_function_location(f);
    let stack = p.add_stack(&[loc]);
    let labels = p.add_label_set([("service_name", "svc")]);
    p.add_sample(stack, labels, &[1]);
    let pprof = perfpilot_model::pprof::encode(&p).expect("encoding");
    for (path, a, _) in every_pprof_path(&s, &pprof) {
        assert_refused(path, &a, 400, "--max-function-name-len");
    }
    let a = post(
        &s,
        "/ingest?name=app",
        &[],
        format!("main;{huge} 1\n").as_bytes(),
    );
    assert_refused("folded", &a, 400, "--max-function-name-len");

    // A 1 MiB label value on a sample, on a Push series and in /ingest's
    // tags.
    let mut p = cpu_profile();
    let f = p.add_function_named("main");
    let loc = p.add_function_location(f);
    let stack = p.add_stack(&[loc]);
    let labels = p.add_label_set([("service_name", "svc"), ("big", huge.as_str())]);
    p.add_sample(stack, labels, &[1]);
    let pprof = perfpilot_model::pprof::encode(&p).expect("encoding");
    for (path, a, _) in every_pprof_path(&s, &pprof) {
        assert_refused(path, &a, 400, "--max-label-value-len");
    }
    let mut labels = service_labels();
    labels.push(LabelPair::new("big", huge.as_str()));
    let mut p = cpu_profile();
    let f = p.add_function_named("main");
    let loc = p.add_function_location(f);
    let stack = p.add_stack(&[loc]);
    let set = p.add_label_set([("a", "b")]);
    p.add_sample(stack, set, &[1]);
    let body = push_body(
        labels,
        perfpilot_model::pprof::encode(&p).expect("encoding"),
    );
    let a = post(
        &s,
        "/push.v1.PusherService/Push",
        &[("Content-Type", "application/proto")],
        &body,
    );
    assert_refused("Push label", &a, 400, "--max-label-value-len");
    let a = post(
        &s,
        &format!("/ingest?name=app%7Bbig%3D{}%7D", "y".repeat(4 << 10)),
        &[],
        b"a;b 1\n",
    );
    assert_refused("/ingest tag", &a, 400, "--max-label-value-len");
}

/// 16 gzip bombs at once: each is cut off at the per-request cap, and
/// together they never hold more than the server-wide budget.
#[test]
fn concurrent_decompression_is_bounded_server_wide() {
    let _g = serial();
    let s = TestServer::start_with(ServerConfig {
        limits: Limits {
            max_decompressed_bytes: 32 * MIB,
            ..Limits::default()
        },
        max_ingest_memory_bytes: 48 * MIB,
        ..ServerConfig::default()
    });
    let bomb = gzip(&vec![0u8; 40 * MIB]);
    let barrier = std::sync::Barrier::new(16);
    let (answers, cost) = measure(|| {
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
                .map(|h| h.join().expect("a client thread"))
                .collect::<Vec<_>>()
        })
    });
    // Alone, each would hold 32 MiB: 512 MiB for all 16.
    assert!(
        cost.peak_bytes < 112 * MIB,
        "{} MiB allocated at the peak",
        cost.peak_bytes / MIB
    );
    for a in &answers {
        match a.0 {
            413 => assert!(a.2.contains("--max-decompressed-mib"), "{}", short(&a.2)),
            503 => {
                assert!(a.2.contains("--max-ingest-memory-mib"), "{}", short(&a.2));
                assert!(!header(&a.1, "retry-after").is_empty(), "{a:?}");
            }
            other => panic!("a bomb answered {other}: {}", short(&a.2)),
        }
    }
}

/// An upload that declares `declared` bytes and sends `sent` of them,
/// then waits: what it sent is in the server's hands.
fn partial_upload(s: &TestServer, path: &str, declared: usize, sent: usize) -> std::net::TcpStream {
    let mut c = std::net::TcpStream::connect(s.addr).expect("connecting");
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n"
    )
    .expect("writing the head");
    let chunk = vec![b'x'; 64 << 10];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        c.write_all(&chunk[..n]).expect("writing a part");
        left -= n;
    }
    c.flush().expect("flushing");
    c
}

/// The answer on a connection: its status and its text (head and short
/// JSON body).
fn answer_on(c: &mut std::net::TcpStream) -> (u16, String) {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = std::io::Read::read(c, &mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
        let t = String::from_utf8_lossy(&text);
        if t.contains("\r\n\r\n") && t.trim_end().ends_with('}') {
            break;
        }
    }
    let t = String::from_utf8_lossy(&text).into_owned();
    let status = t
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, t)
}

/// Request bodies are reserved as they arrive: when other uploads hold
/// the server-wide allowance, a new upload waits briefly, then gets 503
/// with Retry-After, having cost the server only what it sent; once the
/// other upload ends it goes through.
#[test]
fn request_bodies_in_flight_are_bounded_server_wide() {
    let _g = serial();
    let s = TestServer::start_with(ServerConfig {
        max_body_bytes: 8 * MIB,
        max_inflight_body_bytes: 8 * MIB,
        ..ServerConfig::default()
    });
    let path = "/api/v1/pprof?name=svc";
    // A stalled upload that sent all but 64 KiB of 8 MiB holds the whole
    // allowance once the server has read it; then a 6 MiB upload that
    // sent its first 16 KiB finds no room. Until the server has read the
    // first, the second may take room the first then waits for (each
    // gives up after a second): both are dropped and tried again, with
    // more time between them.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pause = Duration::from_millis(50);
    let (stalled, answer, cost) = loop {
        let stalled = partial_upload(&s, path, 8 * MIB, 8 * MIB - (64 << 10));
        std::thread::sleep(pause);
        let ((conn, a), cost) = measure(|| {
            let mut c = partial_upload(&s, path, 6 * MIB, 16 << 10);
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("a read timeout");
            let a = answer_on(&mut c);
            (c, a)
        });
        drop(conn);
        if a.0 == 503 {
            break (stalled, a, cost);
        }
        assert!(
            Instant::now() < deadline,
            "the stalled upload never holds the allowance: {}",
            short(&a.1)
        );
        pause = (pause * 2).min(Duration::from_secs(2));
    };
    assert!(
        answer.1.contains("--max-inflight-body-mib"),
        "{}",
        short(&answer.1)
    );
    assert!(
        answer.1.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        short(&answer.1)
    );
    // It cost what it sent, not the 6 MiB it declared.
    assert!(
        cost.peak_bytes < 2 * MIB,
        "{} bytes at the peak",
        cost.peak_bytes
    );
    drop(stalled);
    // With the stalled upload gone, the same upload is read and judged
    // (not a pprof: 400).
    let body = vec![b'y'; 6 * MIB];
    loop {
        let a = post(&s, path, &[], &body);
        if a.0 != 503 {
            assert_eq!(a.0, 400, "{}", short(&a.2));
            break;
        }
        assert!(Instant::now() < deadline, "still 503: {}", short(&a.2));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client that declares a large body and stalls holds only what it
/// sent: other uploads still fit in the allowance.
#[test]
fn a_stalled_upload_holds_only_what_it_sent() {
    let _g = serial();
    let s = TestServer::start_with(ServerConfig {
        max_body_bytes: 8 * MIB,
        max_inflight_body_bytes: 8 * MIB,
        ..ServerConfig::default()
    });
    let path = "/api/v1/pprof?name=svc";
    let stalled: Vec<_> = (0..4)
        .map(|_| partial_upload(&s, path, 6 * MIB, 64 << 10))
        .collect();
    // 4 × 6 MiB declared is three times the allowance; what they sent
    // (with what is reserved ahead of it, at most 256 KiB each) leaves
    // room, so this 6 MiB upload is read and judged (not a pprof: 400).
    let a = post(&s, path, &[], &vec![b'y'; 6 * MIB]);
    assert_eq!(a.0, 400, "{}", short(&a.2));
    drop(stalled);
}

fn alert(i: usize, value: &str) -> String {
    format!(
        r#"{{"status":"firing","labels":{{"alertname":"A{i}","big":"{value}"}},"annotations":{{}},
           "startsAt":"2026-11-22T10:15:30Z","endsAt":"0001-01-01T00:00:00Z",
           "generatorURL":"","fingerprint":"f{i}"}}"#
    )
}

fn webhook(alerts: &[String]) -> String {
    format!(
        r#"{{"version":"4","groupKey":"g","status":"firing","receiver":"perfpilot",
           "groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"",
           "truncatedAlerts":0,"alerts":[{}]}}"#,
        alerts.join(",")
    )
}

#[test]
fn webhook_posts_are_bounded() {
    let _g = serial();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let s = TestServer::start_with(ServerConfig {
        autopilot: Some(AutopilotHandle::open(dir.path()).expect("the autopilot dir")),
        ..ServerConfig::default()
    });
    let json = [("Content-Type", "application/json")];
    let many: Vec<String> = (0..5_000).map(|i| alert(i, "v")).collect();
    let a = post(&s, "/api/v1/alertmanager", &json, webhook(&many).as_bytes());
    assert_refused("5,000 alerts", &a, 413, "--max-webhook-alerts");
    let big = alert(0, &"v".repeat(64 << 10));
    let a = post(
        &s,
        "/api/v1/alertmanager",
        &json,
        webhook(&[big]).as_bytes(),
    );
    assert_refused("a 64 KiB label", &a, 400, "--max-alert-label-len");
    assert!(
        a.2.contains("alerts[0].labels.big"),
        "says where: {}",
        short(&a.2)
    );
    let a = post(
        &s,
        "/api/v1/alertmanager",
        &json,
        webhook(&[alert(0, &"v".repeat(10 * MIB))]).as_bytes(),
    );
    assert_refused("a 10 MiB post", &a, 413, "--max-webhook-body-mib");
    // Nothing was recorded.
    let (status, _, body) = answer(
        client()
            .get(&s.url("/api/v1/audit?kind=alert_received"))
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""records":[]"#), "{body}");
    // A normal post still goes through.
    let a = post(
        &s,
        "/api/v1/alertmanager",
        &json,
        webhook(&[alert(1, "v")]).as_bytes(),
    );
    assert_eq!(a.0, 200, "{}", short(&a.2));
}
