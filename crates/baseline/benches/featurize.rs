//! Log parsing and featurisation throughput on one core, against
//! general-purpose peers parsing the same lines in the same run:
//! serde_json (into a `Value`, and into a derived struct) for JSON lines,
//! the `regex` crate for the combined format, and chrono for timestamps.
//! Every peer builds the same events (interned names, query strings
//! stripped) so only the parsing differs. Goal: parse + featurise at
//! >= 1M lines/s.
//!
//!     cargo bench -p perfpilot-baseline --bench featurize [-- --lines 2000000 --reps 3]

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

use chrono::DateTime;
use perfpilot_baseline::logs::{
    parse_clf_time, parse_rfc3339, Event, Interner, LogFormat, ParseOptions, Parser,
};
use perfpilot_baseline::window::{WindowConfig, Windower};
use serde::Deserialize;

/// A deterministic xorshift generator, so every run parses the same lines.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    /// Log-normal latency in ms around `median` (Box-Muller).
    fn latency(&mut self, median: f64) -> f64 {
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (0.6 * z).exp()
    }
}

const SERVICES: [&str; 3] = ["checkout", "catalog", "auth"];
const ENDPOINTS: [&str; 12] = [
    "/api/v1/cart",
    "/api/v1/cart/items",
    "/api/v1/checkout",
    "/api/v1/products",
    "/api/v1/products/search",
    "/api/v1/products/recommendations",
    "/api/v1/login",
    "/api/v1/token/refresh",
    "/healthz",
    "/api/v1/orders",
    "/api/v1/orders/history",
    "/static/app.js",
];
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "okhttp/4.12.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
];
const METHODS: [&str; 3] = ["GET", "GET", "POST"];

struct Line {
    ts_ms: i64,
    service: &'static str,
    endpoint: &'static str,
    query: bool,
    method: &'static str,
    status: u16,
    latency_ms: f64,
    bytes: u64,
    agent: &'static str,
    ip: [u8; 4],
    trace: u64,
}

/// Requests at ~10k/s, with a tenth arriving up to 2 s out of order.
fn requests(n: usize) -> Vec<Line> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = 1_772_323_200_000i64; // 2026-03-01T00:00:00Z
    (0..n)
        .map(|i| {
            let jitter = if rng.next().is_multiple_of(10) {
                (rng.next() % 2000) as i64
            } else {
                0
            };
            let endpoint = rng.pick(&ENDPOINTS);
            let r = rng.next() % 1000;
            Line {
                ts_ms: start + i as i64 / 10 - jitter,
                service: rng.pick(&SERVICES),
                endpoint,
                query: rng.next().is_multiple_of(4),
                method: rng.pick(&METHODS),
                status: if r < 5 {
                    503
                } else if r < 25 {
                    404
                } else {
                    200
                },
                latency_ms: rng.latency(5.0 + (endpoint.len() % 7) as f64 * 8.0),
                bytes: rng.next() % 50_000,
                agent: rng.pick(&AGENTS),
                ip: [
                    10,
                    (rng.next() % 255) as u8,
                    (rng.next() % 255) as u8,
                    (rng.next() % 255) as u8,
                ],
                trace: rng.next(),
            }
        })
        .collect()
}

fn rfc3339(ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(ms).unwrap_or_default();
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn clf_time(ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(ms).unwrap_or_default();
    t.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

fn json_lines(reqs: &[Line]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in reqs {
        let q = if r.query { "?page=2&sort=price" } else { "" };
        out.extend_from_slice(
            format!(
                r#"{{"ts":"{}","level":"info","service":"{}","endpoint":"{}{}","method":"{}","status":{},"latency_ms":{:.3},"bytes":{},"client_ip":"{}.{}.{}.{}","trace_id":"{:016x}{:016x}","user_agent":"{}"}}"#,
                rfc3339(r.ts_ms), r.service, r.endpoint, q, r.method, r.status, r.latency_ms, r.bytes,
                r.ip[0], r.ip[1], r.ip[2], r.ip[3], r.trace, r.trace.rotate_left(17), r.agent
            )
            .as_bytes(),
        );
        out.push(b'\n');
    }
    out
}

fn combined_lines(reqs: &[Line]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in reqs {
        let q = if r.query { "?page=2&sort=price" } else { "" };
        out.extend_from_slice(
            format!(
                r#"{}.{}.{}.{} - - [{}] "{} {}{} HTTP/1.1" {} {} "https://shop.example.com/" "{}" {:.3}"#,
                r.ip[0], r.ip[1], r.ip[2], r.ip[3], clf_time(r.ts_ms), r.method, r.endpoint, q,
                r.status, r.bytes, r.agent, r.latency_ms / 1000.0
            )
            .as_bytes(),
        );
        out.push(b'\n');
    }
    out
}

/// Lines split as a buffered reader does, with memchr.
fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', buf).map(move |end| {
        let line = &buf[start..end];
        start = end + 1;
        line
    })
}

/// Best lines/s over `reps` passes of `f`, which returns the events made.
fn measure(n: usize, reps: usize, mut f: impl FnMut() -> u64) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..reps {
        let t = Instant::now();
        let made = black_box(f());
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(made as usize, n, "a parser refused lines the others took");
        best = best.max(n as f64 / secs);
    }
    best
}

fn ours(buf: &[u8], format: LogFormat, featurise: bool) -> u64 {
    let mut p = Parser::new(&ParseOptions {
        format: Some(format),
        default_service: "web".into(),
        ..ParseOptions::default()
    });
    let mut stats = p.new_stats();
    let mut w = Windower::new(WindowConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut n = 0;
    for (i, line) in lines(buf).enumerate() {
        if let Some(ev) = p.parse_counted(i as u64 + 1, line, &mut stats) {
            n += 1;
            if featurise {
                w.push(&ev, &mut out);
                out.clear();
            } else {
                black_box(&ev);
            }
        }
    }
    w.flush(&mut out);
    black_box(&out);
    n
}

fn strip_query(s: &str) -> &str {
    s.split(['?', '#']).next().unwrap_or(s)
}

fn event(
    names: &mut Interner,
    ts_ms: i64,
    latency_ms: f64,
    status: u16,
    endpoint: &str,
    service: &str,
) -> Event {
    Event {
        ts_ms,
        latency_ms,
        status,
        endpoint: names.intern(strip_query(endpoint)),
        service: names.intern(service),
    }
}

fn serde_value(buf: &[u8]) -> u64 {
    let mut names = Interner::default();
    let mut n = 0;
    for line in lines(buf) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let ts = v["ts"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        let (Some(ts), Some(lat), Some(st), Some(ep)) = (
            ts,
            v["latency_ms"].as_f64(),
            v["status"].as_u64(),
            v["endpoint"].as_str(),
        ) else {
            continue;
        };
        let svc = v["service"].as_str().unwrap_or("web");
        black_box(event(
            &mut names,
            ts.timestamp_millis(),
            lat,
            st as u16,
            ep,
            svc,
        ));
        n += 1;
    }
    n
}

#[derive(Deserialize)]
struct Fixed<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    latency_ms: f64,
    status: u16,
    #[serde(borrow)]
    endpoint: Cow<'a, str>,
    #[serde(borrow)]
    service: Option<Cow<'a, str>>,
}

fn serde_struct(buf: &[u8]) -> u64 {
    let mut names = Interner::default();
    let mut n = 0;
    for line in lines(buf) {
        let Ok(v) = serde_json::from_slice::<Fixed>(line) else {
            continue;
        };
        let Ok(ts) = DateTime::parse_from_rfc3339(&v.ts) else {
            continue;
        };
        let svc = v.service.as_deref().unwrap_or("web");
        black_box(event(
            &mut names,
            ts.timestamp_millis(),
            v.latency_ms,
            v.status,
            &v.endpoint,
            svc,
        ));
        n += 1;
    }
    n
}

fn regex_combined(buf: &[u8]) -> u64 {
    let re = regex::bytes::Regex::new(
        r#"^(\S+) \S+ (\S+) \[([^\]]+)\] "(?:[A-Z]+ (\S+)(?: [^"]*)?|[^"]*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)" ([0-9.]+)"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut names = Interner::default();
    let mut n = 0;
    for line in lines(buf) {
        let Some(c) = re.captures(line) else { continue };
        let text = |i: usize| {
            c.get(i)
                .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
        };
        let ts = text(3).and_then(|t| DateTime::parse_from_str(t, "%d/%b/%Y:%H:%M:%S %z").ok());
        let (Some(ts), Some(st), Some(rt)) = (
            ts,
            text(5).and_then(|s| s.parse::<u16>().ok()),
            text(9).and_then(|s| s.parse::<f64>().ok()),
        ) else {
            continue;
        };
        black_box(event(
            &mut names,
            ts.timestamp_millis(),
            rt * 1000.0,
            st,
            text(4).unwrap_or("-"),
            "web",
        ));
        n += 1;
    }
    n
}

/// Timestamps parsed per second, ours against chrono, on `stamps`.
fn time_rates(
    stamps: &[String],
    reps: usize,
    ours: fn(&[u8]) -> Option<i64>,
    chrono: &dyn Fn(&str) -> Option<i64>,
) -> (f64, f64) {
    let n = stamps.len();
    let a = measure(n, reps, || {
        stamps
            .iter()
            .filter_map(|s| ours(s.as_bytes()))
            .map(black_box)
            .count() as u64
    });
    let b = measure(n, reps, || {
        stamps
            .iter()
            .filter_map(|s| chrono(s))
            .map(black_box)
            .count() as u64
    });
    (a, b)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = arg("--lines", 2_000_000);
    let reps = arg("--reps", 3);
    let reqs = requests(n);
    let json = json_lines(&reqs);
    let clf = combined_lines(&reqs);
    println!(
        "{n} lines each: JSON {:.0} B/line, combined {:.0} B/line; best of {reps} passes, one thread\n",
        json.len() as f64 / n as f64,
        clf.len() as f64 / n as f64
    );

    let mut rows: Vec<(String, f64, Option<f64>)> = Vec::new();
    let j_parse = measure(n, reps, || ours(&json, LogFormat::Json, false));
    let j_feat = measure(n, reps, || ours(&json, LogFormat::Json, true));
    let j_value = measure(n, reps, || serde_value(&json));
    let j_struct = measure(n, reps, || serde_struct(&json));
    rows.push(("JSON: perfpilot scanner, parse".into(), j_parse, None));
    rows.push((
        "JSON: serde_json Value + chrono, parse".into(),
        j_value,
        Some(j_parse / j_value),
    ));
    rows.push((
        "JSON: serde_json derived struct + chrono, parse".into(),
        j_struct,
        Some(j_parse / j_struct),
    ));
    rows.push(("JSON: perfpilot parse + featurise".into(), j_feat, None));

    let c_parse = measure(n, reps, || ours(&clf, LogFormat::Combined, false));
    let c_feat = measure(n, reps, || ours(&clf, LogFormat::Combined, true));
    let c_regex = measure(n, reps, || regex_combined(&clf));
    rows.push(("combined: perfpilot scanner, parse".into(), c_parse, None));
    rows.push((
        "combined: regex + chrono, parse".into(),
        c_regex,
        Some(c_parse / c_regex),
    ));
    rows.push(("combined: perfpilot parse + featurise".into(), c_feat, None));

    let k = n.min(500_000);
    let rfc: Vec<String> = reqs[..k].iter().map(|r| rfc3339(r.ts_ms)).collect();
    let (ours_rfc, chrono_rfc) = time_rates(&rfc, reps, parse_rfc3339, &|s| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    });
    let clfs: Vec<String> = reqs[..k].iter().map(|r| clf_time(r.ts_ms)).collect();
    let (ours_clf, chrono_clf) = time_rates(&clfs, reps, parse_clf_time, &|s| {
        DateTime::parse_from_str(s, "%d/%b/%Y:%H:%M:%S %z")
            .ok()
            .map(|t| t.timestamp_millis())
    });
    rows.push(("RFC 3339 time: perfpilot".into(), ours_rfc, None));
    rows.push((
        "RFC 3339 time: chrono".into(),
        chrono_rfc,
        Some(ours_rfc / chrono_rfc),
    ));
    rows.push(("CLF time: perfpilot".into(), ours_clf, None));
    rows.push((
        "CLF time: chrono parse_from_str".into(),
        chrono_clf,
        Some(ours_clf / chrono_clf),
    ));

    println!("{:<50} {:>14} {:>16}", "", "per second", "perfpilot is ×");
    for (name, rate, ratio) in &rows {
        let ratio = ratio.map_or(String::new(), |r| format!("{r:.1}"));
        println!(
            "{name:<50} {:>14} {ratio:>16}",
            format!("{:.2}M", rate / 1e6)
        );
    }
    let goal = 1e6;
    println!();
    for (name, rate) in [("JSON", j_feat), ("combined", c_feat)] {
        println!(
            "goal: {name} parse + featurise >= 1.00M lines/s: {:.2}M — {}",
            rate / 1e6,
            if rate >= goal { "met" } else { "NOT MET" }
        );
    }
}
