//! Ingest throughput: agent-style pprof profiles (see `common/hostgen.rs`)
//! decoded with `batch_from_pprof` and written with `Store::ingest` into an
//! `EmbeddedStore` with default options (background flushes and
//! compaction on, WAL synced on every ingest), on one thread; then the same
//! profiles posted to `/api/v1/ingest` of the HTTP server.
//!
//! A sample is one (stack, label set) pprof sample of one sample type, i.e.
//! one row the store is handed (`Batch::sample_count`). The agent's
//! profiles have two sample types (samples/count and cpu/nanoseconds), so
//! one pprof sample is two samples.
//!
//!     cargo bench -p perfpilot-server --bench ingest [-- --quick] [--direct-only]

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::catalog::Catalog;
use common::hostgen::host_profile;
use common::http::{InProcess, KeepAlive, Runtime};
use common::{now_ms, percentile, process_cpu, si, thread_cpu, verdict};
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::Store;
use perfpilot_wire::Limits;

const GOAL: f64 = 1_000_000.0;

/// An encoded profile of the pool.
struct Encoded {
    bytes: Vec<u8>,
    /// pprof samples.
    rows: usize,
}

/// `count` agent profiles of hosts with `rows` pprof samples each.
fn pool(cat: &Catalog, rows: usize, count: usize) -> Vec<Encoded> {
    let now_ns = now_ms() * 1_000_000;
    (0..count)
        .map(|i| {
            let t = now_ns - (count - i) as i64 * 10_000_000_000;
            let p = host_profile(cat, i as u64 % 16, rows, t);
            let rows = p.samples().len();
            Encoded {
                // As the agent sends it: pprof, zstd-compressed.
                bytes: zstd::bulk::compress(
                    &perfpilot_model::pprof::encode_uncompressed(&p).expect("encoding a profile"),
                    3,
                )
                .expect("compressing a profile"),
                rows,
            }
        })
        .collect()
}

#[derive(Default)]
struct Run {
    batches: u64,
    samples: u64,
    rows: u64,
    bytes: u64,
    decode: Duration,
    ingest: Duration,
    wall: Duration,
    main_cpu: Duration,
    all_cpu: Duration,
    latencies: Vec<f64>,
}

fn limits() -> Limits {
    Limits::default()
}

/// What the server does with an agent batch before storing it.
fn decode(bytes: &[u8], limits: &Limits) -> perfpilot_store::Batch {
    let raw = perfpilot_wire::decompress_zstd(bytes, limits, "the body").expect("zstd");
    perfpilot_wire::batch_from_pprof(&raw, &[], "unknown", now_ms(), limits)
        .expect("decoding a profile")
}

/// Decode + ingest on this thread for `secs` or `max_samples`.
fn direct(pool: &[Encoded], secs: f64, max_samples: u64) -> Run {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path(), Options::default()).expect("opening the store");
    let limits = limits();
    let mut r = Run::default();
    let (c0, p0, w0) = (thread_cpu(), process_cpu(), Instant::now());
    let mut i = 0usize;
    while w0.elapsed().as_secs_f64() < secs && r.samples < max_samples {
        let e = &pool[i % pool.len()];
        let a = Instant::now();
        let mut batch = decode(&e.bytes, &limits);
        batch.id = Some(format!("bench-{i}"));
        let b = Instant::now();
        store.ingest(&batch).expect("ingesting");
        let c = Instant::now();
        r.decode += b - a;
        r.ingest += c - b;
        r.batches += 1;
        r.samples += batch.sample_count() as u64;
        r.rows += e.rows as u64;
        r.bytes += e.bytes.len() as u64;
        i += 1;
    }
    r.wall = w0.elapsed();
    r.main_cpu = thread_cpu() - c0;
    r.all_cpu = process_cpu() - p0;
    drop(store);
    r
}

/// Posts one agent batch; returns the samples the server says it stored.
fn post(client: &mut KeepAlive, id: &str, body: &[u8]) -> u64 {
    let answer = client.post(
        "/api/v1/ingest",
        &format!(
            "Content-Type: application/vnd.google.protobuf\r\nContent-Encoding: zstd\r\nX-Perfpilot-Batch-Id: {id}\r\n"
        ),
        body,
    );
    // {"samples":N,"profiles":N,"duplicate":false}
    String::from_utf8_lossy(&answer)
        .split("\"samples\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("a sample count in the response")
}

/// The same through the HTTP server (tokio current-thread runtime, store
/// calls on its blocking pool), `clients` connections each posting one
/// request at a time.
fn http(pool: &[Encoded], secs: f64, max_samples: u64, clients: usize) -> Run {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path(), Options::default()).expect("opening the store");
    let store: Arc<dyn Store> = Arc::new(store);
    let server = InProcess::start(
        perfpilot_server::ServerConfig::default(),
        Arc::clone(&store),
        Runtime::CurrentThread,
    );
    let addr = server.addr;
    let p0 = process_cpu();
    let w0 = Instant::now();
    let per_client = max_samples / clients as u64;
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            // Each client its own slice of the pool's order.
            let pool: Vec<(Vec<u8>, usize)> =
                pool.iter().map(|e| (e.bytes.clone(), e.rows)).collect();
            std::thread::spawn(move || {
                let mut client = KeepAlive::connect(addr);
                let c0 = thread_cpu();
                let mut r = Run::default();
                let mut i = c;
                while w0.elapsed().as_secs_f64() < secs && r.samples < per_client {
                    let (body, rows) = &pool[i % pool.len()];
                    let a = Instant::now();
                    let stored = post(&mut client, &format!("bench-{c}-{i}"), body);
                    r.latencies.push(a.elapsed().as_secs_f64() * 1e3);
                    r.batches += 1;
                    r.rows += *rows as u64;
                    r.samples += stored;
                    r.bytes += body.len() as u64;
                    i += clients;
                }
                r.main_cpu = thread_cpu() - c0;
                r
            })
        })
        .collect();
    let mut total = Run::default();
    for h in handles {
        let r = h.join().expect("a client thread");
        total.batches += r.batches;
        total.samples += r.samples;
        total.rows += r.rows;
        total.bytes += r.bytes;
        total.main_cpu += r.main_cpu;
        total.latencies.extend(r.latencies);
    }
    total.wall = w0.elapsed();
    total.all_cpu = process_cpu() - p0;
    drop(server);
    drop(store);
    total
}

/// Mean fdatasync latency of 4 KiB appends in a temporary directory (what
/// every `Store::ingest` pays at least once).
fn fdatasync_ms() -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut f = std::fs::File::create(dir.path().join("sync-test")).expect("a file");
    let buf = vec![7u8; 4096];
    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&buf).expect("writing");
        f.sync_data().expect("syncing");
    }
    t.elapsed().as_secs_f64() * 1e3 / n as f64
}

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&byte) = b.get(*pos) {
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

/// Visits every field of a protobuf message, calling `f(field, wire type,
/// varint value or length-delimited bytes)`.
fn walk<'a>(b: &'a [u8], mut f: impl FnMut(u64, u64, u64, &'a [u8])) {
    let mut pos = 0;
    while pos < b.len() {
        let key = varint(b, &mut pos);
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = varint(b, &mut pos);
                f(field, wire, v, &[]);
            }
            1 => pos += 8,
            2 => {
                let n = varint(b, &mut pos) as usize;
                let end = (pos + n).min(b.len());
                f(field, wire, 0, &b[pos..end]);
                pos = end;
            }
            5 => pos += 4,
            _ => return,
        }
    }
}

/// A lower bound for any pprof decoder: one pass over the protobuf that
/// reads every varint of every sample (location ids, values, label
/// indices) and skips the rest. Returns a checksum.
fn scan_samples(raw: &[u8]) -> u64 {
    let mut sum = 0u64;
    walk(raw, |field, _, _, bytes| {
        if field != 2 {
            return;
        }
        walk(bytes, |_, wire, v, inner| {
            if wire == 0 {
                sum = sum.wrapping_add(v);
            } else {
                let mut pos = 0;
                while pos < inner.len() {
                    sum = sum.wrapping_add(varint(inner, &mut pos));
                }
            }
        });
    });
    sum
}

/// Where decoding time goes: zstd alone, the model's pprof decoder on the
/// decompressed bytes (not on the ingest path; for comparison), the whole
/// decode, and a bare pass over
/// the samples' bytes, each over the pool for about `secs`.
fn stages(pool: &[Encoded], secs: f64) -> [(f64, u64); 4] {
    let raw: Vec<Vec<u8>> = pool
        .iter()
        .map(|e| {
            perfpilot_wire::decompress_zstd(&e.bytes, &Limits::default(), "the body").expect("zstd")
        })
        .collect();
    let limits = limits();
    let mut out = [(0.0, 0u64); 4];
    for (stage, slot) in out.iter_mut().enumerate() {
        let t = Instant::now();
        let mut samples = 0u64;
        let mut i = 0;
        while t.elapsed().as_secs_f64() < secs {
            let e = &pool[i % pool.len()];
            match stage {
                0 => {
                    let buf = perfpilot_wire::decompress_zstd(&e.bytes, &limits, "the body")
                        .expect("zstd");
                    std::hint::black_box(&buf);
                }
                3 => {
                    std::hint::black_box(scan_samples(&raw[i % pool.len()]));
                }
                1 => {
                    let p = perfpilot_model::pprof::decode(&raw[i % pool.len()]).expect("decoding");
                    std::hint::black_box(&p);
                }
                2 => {
                    std::hint::black_box(decode(&e.bytes, &limits));
                }
                _ => unreachable!(),
            }
            samples += 2 * e.rows as u64;
            i += 1;
        }
        *slot = (t.elapsed().as_secs_f64(), samples);
    }
    out
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Prints a table row: cells right-aligned to `widths`, `|` before the
/// cells whose index is in `bars`.
fn cells(widths: &[usize], bars: &[usize], cells: &[String]) {
    let mut line = String::from(" ");
    for (i, (w, c)) in widths.iter().zip(cells).enumerate() {
        if bars.contains(&i) {
            line.push_str(" |");
        }
        line.push_str(&format!(" {c:>w$}"));
    }
    println!("{line}");
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn main() {
    let quick = common::quick();
    let secs = if quick { 3.0 } else { 10.0 };
    let max_samples: u64 = if quick { 2_000_000 } else { 10_000_000 };
    let sizes: [usize; 3] = [1_000, 10_000, 100_000];

    println!(
        "ingest: agent pprof -> batch_from_pprof -> Store::ingest (EmbeddedStore, default options: \
         background flush/compaction on, WAL fdatasync per ingest){}",
        if quick { " (--quick)" } else { "" }
    );
    println!(
        "  a sample = one pprof sample (stack, label set) of one sample type; agent profiles have \
         2 sample types, so 1 pprof sample = 2 samples"
    );
    println!(
        "  each run: until {secs:.0} s or {} samples; profiles cycle through a pool of distinct \
         host profiles; 2 vCPUs",
        si(max_samples as f64)
    );
    let sync_before = fdatasync_ms();

    let t0 = Instant::now();
    let cat = Catalog::new(50, 42);
    let pools: Vec<Vec<Encoded>> = sizes
        .iter()
        .map(|&s| {
            let pool_samples = if quick { 200_000 } else { 800_000 };
            pool(&cat, s / 2, (pool_samples / s).clamp(4, 100))
        })
        .collect();
    println!(
        "  generated the pools in {:.1} s; stacks: {}",
        t0.elapsed().as_secs_f64(),
        cat.summary()
    );
    println!();

    println!("one thread, decode + ingest (other threads: the store's background maintenance):");
    let widths = [9, 8, 9, 7, 8, 10, 7, 10, 7, 10, 7, 7, 7, 12];
    let bars = [5, 7, 9, 11, 13];
    cells(
        &widths,
        &bars,
        &strs(&[
            "samples/",
            "pprof",
            "pprof KiB",
            "batches",
            "samples",
            "decode",
            "decode",
            "ingest",
            "ingest",
            "overall",
            "overall",
            "main",
            "other",
            "goal",
        ]),
    );
    cells(
        &widths,
        &bars,
        &strs(&[
            "batch",
            "samples",
            "/batch",
            "",
            "",
            "samples/s",
            "MB/s",
            "samples/s",
            "MB/s",
            "samples/s",
            "MB/s",
            "CPU s",
            "CPU s",
            ">= 1M/s",
        ]),
    );
    for (size, pool) in sizes.iter().zip(&pools) {
        let r = direct(pool, secs, max_samples);
        let overall = r.decode + r.ingest;
        let rate = r.samples as f64 / overall.as_secs_f64();
        cells(
            &widths,
            &bars,
            &[
                si(*size as f64),
                (r.rows / r.batches).to_string(),
                format!("{:.0}", r.bytes as f64 / r.batches as f64 / 1024.0),
                r.batches.to_string(),
                si(r.samples as f64),
                si(r.samples as f64 / r.decode.as_secs_f64()),
                format!("{:.1}", mbps(r.bytes, r.decode)),
                si(r.samples as f64 / r.ingest.as_secs_f64()),
                format!("{:.1}", mbps(r.bytes, r.ingest)),
                si(rate),
                format!("{:.1}", mbps(r.bytes, overall)),
                format!("{:.2}", r.main_cpu.as_secs_f64()),
                format!("{:.2}", r.all_cpu.saturating_sub(r.main_cpu).as_secs_f64()),
                verdict(rate >= GOAL).to_string(),
            ],
        );
    }
    println!(
        "  fdatasync of a 4 KiB append on this disk: {sync_before:.2} ms before these runs, \
         {:.2} ms after (mean of 50)",
        fdatasync_ms()
    );
    println!();

    let st = stages(&pools[1], if quick { 1.0 } else { 3.0 });
    let per = |(secs, n): (f64, u64)| secs / n as f64;
    let (gz, model, all, scan) = (per(st[0]), per(st[1]), per(st[2]), per(st[3]));
    println!("decode stages (10k-sample batches, each stage timed alone):");
    println!("  {:<58} {:>12} {:>10}", "stage", "samples/s", "share");
    for (name, t) in [
        ("zstd decompression", gz),
        ("pprof -> Batch (batch_from_pprof's fast path)", all - gz),
        ("decode, total", all),
        (
            "for comparison: perfpilot_model::pprof::decode alone",
            model,
        ),
        ("for scale: one varint pass over every sample field", scan),
    ] {
        println!(
            "  {:<58} {:>12} {:>9.0}%",
            name,
            si(1.0 / t),
            100.0 * t / all
        );
    }
    println!();

    if common::flag("--direct-only") {
        return;
    }
    println!(
        "HTTP: POST /api/v1/ingest (server: tokio current-thread runtime + blocking pool; \
         clients: threads of this process; all on the same 2 vCPUs):"
    );
    let widths = [9, 7, 8, 8, 10, 7, 8, 8, 9, 9, 12];
    let bars = [4, 6, 8, 10];
    cells(
        &widths,
        &bars,
        &strs(&[
            "samples/",
            "clients",
            "requests",
            "samples",
            "samples/s",
            "MB/s",
            "p50 ms",
            "p99 ms",
            "server",
            "client",
            "samples per",
        ]),
    );
    cells(
        &widths,
        &bars,
        &strs(&[
            "batch",
            "",
            "",
            "",
            "(wall)",
            "",
            "",
            "",
            "CPU s",
            "CPU s",
            "server CPU s",
        ]),
    );
    let runs: &[(usize, usize)] = &[(0, 1), (1, 1), (2, 1), (1, 2), (2, 2)];
    for &(size, clients) in runs {
        let r = http(&pools[size], secs, max_samples, clients);
        let mut lat = r.latencies.clone();
        lat.sort_by(f64::total_cmp);
        let server_cpu = r.all_cpu.saturating_sub(r.main_cpu);
        cells(
            &widths,
            &bars,
            &[
                si(sizes[size] as f64),
                clients.to_string(),
                r.batches.to_string(),
                si(r.samples as f64),
                si(r.samples as f64 / r.wall.as_secs_f64()),
                format!("{:.1}", mbps(r.bytes, r.wall)),
                format!("{:.2}", percentile(&lat, 50.0)),
                format!("{:.2}", percentile(&lat, 99.0)),
                format!("{:.2}", server_cpu.as_secs_f64()),
                format!("{:.2}", r.main_cpu.as_secs_f64()),
                si(r.samples as f64 / server_cpu.as_secs_f64()),
            ],
        );
    }
}
