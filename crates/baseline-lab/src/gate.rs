//! The release gate: compares a baseline run with a candidate run on p50
//! and p99 latency and on error rate, and says whether the candidate
//! regressed (`perfpilot gate --baseline A --candidate B
//! [--max-regression 5%]`, exit 1 when [`GateReport::regressed`]).
//!
//! A run is a request log (JSON lines or combined format), the text output
//! of `wrk --latency` (or wrk2's), or a [`FeatureSummary`] saved from logs;
//! the kind is detected from the content.
//!
//! Latency quantiles are compared with a distribution-free test built on
//! order statistics: for each run, the ranks `nq ± z sqrt(nq(1-q))` bound
//! the q-quantile with the chosen confidence whatever the distribution
//! (the count of samples below the true quantile is binomial), which gives
//! the standard error of the log-quantile; the two runs' errors combine
//! into a confidence interval and a p-value for the ratio of quantiles.
//! Why this rather than a bootstrap: latency is skewed and multimodal, so
//! normal-theory tests do not apply; a bootstrap of a tail quantile from
//! resampled data is known to be poor (it only ever sees the sample's own
//! extreme values) and needs thousands of resamples of every request; this
//! test is deterministic, O(n log n), and works the same on a saved
//! sketch, whose buckets are ranks within the sketch's 1% accuracy (the
//! bucket width enters its variance). It treats requests as independent;
//! bursts make real intervals wider than it says.
//!
//! Error rates are compared with the pooled two-proportion z-test, which
//! needs only counts, so it is available for wrk too. wrk's latency
//! percentiles are point estimates without the samples behind them: their
//! test is reported unavailable and the verdict compares the change with
//! the threshold alone.
//!
//! A verdict is a regression when the change is worse than the threshold
//! and significant; worse than the threshold but not significant is
//! inconclusive (more data would tell), and does not fail the gate.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use perfpilot_baseline::drift::{format_ms, write_table};
use perfpilot_baseline::logs::{
    self, Event, LineStats, LogFormat, LogReader, ParseOptions, Parser,
};
use perfpilot_baseline::sketch::Sketch;
use perfpilot_baseline::BaselineError;

/// What kind of run a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// JSON-lines request log.
    JsonLog,
    /// Combined-format request log with `$request_time`.
    CombinedLog,
    /// `wrk --latency` (or wrk2) output.
    Wrk,
    /// A saved [`FeatureSummary`].
    Summary,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::JsonLog => "JSON request log",
            InputFormat::CombinedLog => "combined request log",
            InputFormat::Wrk => "wrk output",
            InputFormat::Summary => "feature summary",
        })
    }
}

/// What `perfpilot gate` asks for.
#[derive(Clone, Debug)]
pub struct GateOptions {
    pub baseline: PathBuf,
    pub candidate: PathBuf,
    /// The largest tolerated worsening, as a fraction (0.05 for 5%).
    pub max_regression: f64,
    /// `None`: detected from each file's content.
    pub format: Option<InputFormat>,
    /// A change is significant when its p-value is below this.
    pub significance: f64,
    /// How request logs are parsed (JSON field names, default service).
    pub parse: ParseOptions,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            baseline: PathBuf::new(),
            candidate: PathBuf::new(),
            max_regression: 0.05,
            format: None,
            significance: 0.05,
            parse: ParseOptions::default(),
        }
    }
}

/// Reads a threshold like `5%`, `5` (percent) or `0.05%`: the fraction.
pub fn parse_percent(s: &str) -> Result<f64, BaselineError> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
        _ => Err(BaselineError::invalid(
            "--max-regression",
            format!("expected a percentage like 5%, got {s:?}"),
        )),
    }
}

/// The saved summary format's name and version, its first field.
pub const SUMMARY_FORMAT: &str = "perfpilot-feature-summary/1";

/// What tells a summary of any version from other JSON.
const SUMMARY_MARKER: &str = "\"perfpilot-feature-summary/";

/// A run's features saved as JSON: totals and the latency sketch overall
/// and per endpoint. Quantile fields are for people reading the file; the
/// gate uses the sketches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// Always [`SUMMARY_FORMAT`].
    pub format: String,
    /// Where the requests came from.
    pub source: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub latency: Sketch,
    pub endpoints: Vec<EndpointSummary>,
    pub lines_parsed: u64,
    pub lines_malformed: u64,
}

/// One service and endpoint of a [`FeatureSummary`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointSummary {
    pub service: String,
    pub endpoint: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub latency: Sketch,
}

impl FeatureSummary {
    /// The summary of a set of requests.
    pub fn from_events(source: &str, events: &[Event], lines: &LineStats) -> FeatureSummary {
        let mut latency = Sketch::new();
        let mut per: std::collections::BTreeMap<(&str, &str), (u64, Sketch)> = Default::default();
        let mut errors = 0;
        for e in events {
            let key = latency.key_of(e.latency_ms);
            latency.add_keyed(key, e.latency_ms);
            errors += e.is_error() as u64;
            let slot = per
                .entry((&e.service, &e.endpoint))
                .or_insert_with(|| (0, Sketch::new()));
            slot.0 += e.is_error() as u64;
            slot.1.add_keyed(key, e.latency_ms);
        }
        let endpoints = per
            .into_iter()
            .map(|((service, endpoint), (errors, s))| EndpointSummary {
                service: service.to_string(),
                endpoint: endpoint.to_string(),
                requests: s.count(),
                errors,
                p50_ms: s.quantile(0.5),
                p99_ms: s.quantile(0.99),
                latency: s,
            })
            .collect();
        FeatureSummary {
            format: SUMMARY_FORMAT.into(),
            source: source.into(),
            start_ms: events.iter().map(|e| e.ts_ms).min(),
            end_ms: events.iter().map(|e| e.ts_ms).max(),
            requests: latency.count(),
            errors,
            p50_ms: latency.quantile(0.5),
            p90_ms: latency.quantile(0.9),
            p99_ms: latency.quantile(0.99),
            p999_ms: latency.quantile(0.999),
            latency,
            endpoints,
            lines_parsed: lines.parsed,
            lines_malformed: lines.malformed,
        }
    }

    /// Reads a request log and summarises it.
    pub fn from_log(path: &Path, parse: &ParseOptions) -> Result<FeatureSummary, BaselineError> {
        let (events, lines) = logs::read_file(path, parse)?;
        Ok(FeatureSummary::from_events(
            &path.display().to_string(),
            &events,
            &lines,
        ))
    }

    pub fn to_json(&self) -> Result<String, BaselineError> {
        serde_json::to_string_pretty(self)
            .map_err(|e| BaselineError::invalid("feature summary", e.to_string()))
    }

    /// Parses and checks a saved summary; `location` names it in errors.
    pub fn from_json(text: &str, location: &str) -> Result<FeatureSummary, BaselineError> {
        let s: FeatureSummary = serde_json::from_str(text)
            .map_err(|e| BaselineError::invalid(location, format!("not a feature summary: {e}")))?;
        if s.format != SUMMARY_FORMAT {
            return Err(BaselineError::invalid(
                location,
                format!("summary format {:?}, expected {SUMMARY_FORMAT:?}", s.format),
            ));
        }
        if s.requests != s.latency.count() || s.errors > s.requests {
            return Err(BaselineError::invalid(
                location,
                "requests and errors disagree with the latency sketch",
            ));
        }
        Ok(s)
    }
}

/// Numbers read from `wrk --latency` output.
#[derive(Clone, Debug, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub duration_s: f64,
    pub requests_per_s: f64,
    /// `(percent, milliseconds)` of the Latency Distribution.
    pub percentiles: Vec<(f64, f64)>,
    /// "Non-2xx or 3xx responses".
    pub non_2xx_3xx: u64,
    /// Socket errors: connect, read, write, timeout.
    pub socket_errors: [u64; 4],
}

impl WrkRun {
    /// Failed requests: non-2xx/3xx responses plus timeouts. wrk cannot
    /// tell 4xx from 5xx, and its read errors are mostly servers closing
    /// idle keep-alive connections, so those are left out.
    pub fn errors(&self) -> u64 {
        self.non_2xx_3xx + self.socket_errors[3]
    }

    pub fn percentile(&self, pct: f64) -> Option<f64> {
        self.percentiles
            .iter()
            .find(|(p, _)| (p - pct).abs() < 1e-9)
            .map(|p| p.1)
    }
}

/// wrk's durations: `635.91us`, `12.92ms`, `1.20s`, `2.00m`, `1.00h`.
fn wrk_duration_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// Parses the text wrk prints with `--latency`; `location` names it in
/// errors.
pub fn parse_wrk(text: &str, location: &str) -> Result<WrkRun, BaselineError> {
    let bad = |what: String| BaselineError::invalid(location, what);
    let mut requests = None;
    let mut duration_s = 0.0;
    let mut rps = None;
    let mut percentiles = Vec::new();
    let mut non2xx = 0;
    let mut socket = [0u64; 4];
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let t = line.trim();
        let at = |what: &str| format!("line {}: {what}: {t:?}", i + 1);
        if t.starts_with("Latency Distribution") {
            // "50%  250.00us" (wrk) or "50.000%    1.23ms" (wrk2), until
            // the first line of another shape.
            while let Some((_, l)) = lines.peek() {
                let mut parts = l.split_whitespace();
                let (Some(p), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
                    break;
                };
                let (Some(pct), Some(ms)) = (
                    p.strip_suffix('%').and_then(|p| p.parse::<f64>().ok()),
                    wrk_duration_ms(v),
                ) else {
                    break;
                };
                percentiles.push((pct, ms));
                lines.next();
            }
        } else if let Some((n, rest)) = t.split_once(" requests in ") {
            let n: u64 = n.trim().parse().map_err(|_| bad(at("request count")))?;
            let d = rest.split(',').next().unwrap_or("");
            duration_s = wrk_duration_ms(d.trim()).ok_or_else(|| bad(at("duration")))? / 1000.0;
            requests = Some(n);
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = Some(
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| bad(at("Requests/sec")))?,
            );
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            non2xx = v.trim().parse().map_err(|_| bad(at("Non-2xx count")))?;
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            for (slot, part) in socket.iter_mut().zip(v.split(',')) {
                let n = part.split_whitespace().nth(1).and_then(|n| n.parse().ok());
                *slot = n.ok_or_else(|| bad(at("socket errors")))?;
            }
        }
    }
    let requests =
        requests.ok_or_else(|| bad("no \"N requests in T\" line: not wrk output".into()))?;
    if percentiles.is_empty() {
        return Err(bad("no Latency Distribution: run wrk with --latency".into()));
    }
    Ok(WrkRun {
        requests,
        duration_s,
        requests_per_s: rps.unwrap_or(if duration_s > 0.0 {
            requests as f64 / duration_s
        } else {
            0.0
        }),
        percentiles,
        non_2xx_3xx: non2xx,
        socket_errors: socket,
    })
}

/// A run's latencies: every sample (sorted), a sketch, or only percentiles.
#[derive(Clone, Debug)]
enum Latency {
    Samples(Vec<f64>),
    Sketch(Sketch),
    Points { p50: f64, p99: f64 },
}

/// One side of the gate.
#[derive(Clone, Debug)]
struct Run {
    info: RunInfo,
    errors: u64,
    latency: Latency,
    requests_per_s: Option<f64>,
}

/// What a side of the report was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub path: PathBuf,
    pub format: InputFormat,
    pub requests: u64,
    /// Parsing counts, for request logs.
    pub lines: Option<LineStats>,
}

/// Detects a file's kind from its first few kilobytes.
pub fn detect_format(path: &Path) -> Result<InputFormat, BaselineError> {
    let mut head = Vec::with_capacity(8192);
    File::open(path)
        .and_then(|f| f.take(8192).read_to_end(&mut head))
        .map_err(|e| BaselineError::io(path, e))?;
    let text = String::from_utf8_lossy(&head);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    // A summary is one pretty-printed object whose first field names the
    // format; a JSON log's first line is a whole object of its own.
    let opening = &head[..head.len().min(256)];
    if text.trim_start().starts_with('{')
        && memchr::memmem::find(opening, SUMMARY_MARKER.as_bytes()).is_some()
    {
        return Ok(InputFormat::Summary);
    }
    if first.starts_with('{') {
        return Ok(InputFormat::JsonLog);
    }
    if (first.starts_with("Running ") && first.contains(" test @ "))
        || text.contains("Latency Distribution")
    {
        return Ok(InputFormat::Wrk);
    }
    Ok(InputFormat::CombinedLog)
}

fn read_text(path: &Path) -> Result<String, BaselineError> {
    std::fs::read_to_string(path).map_err(|e| BaselineError::io(path, e))
}

fn load(
    path: &Path,
    format: Option<InputFormat>,
    parse: &ParseOptions,
) -> Result<Run, BaselineError> {
    let format = match format {
        Some(f) => f,
        None => detect_format(path)?,
    };
    let location = path.display().to_string();
    let info = |requests, lines| RunInfo {
        path: path.to_path_buf(),
        format,
        requests,
        lines,
    };
    match format {
        InputFormat::JsonLog | InputFormat::CombinedLog => {
            let mut opts = parse.clone();
            opts.format = Some(if format == InputFormat::JsonLog {
                LogFormat::Json
            } else {
                LogFormat::Combined
            });
            let mut reader = LogReader::open(path)?;
            let mut parser = Parser::new(&opts);
            let mut lines = parser.new_stats();
            let mut samples = Vec::new();
            let mut errors = 0;
            logs::read_events(&mut reader, &mut parser, &mut lines, |e| {
                errors += e.is_error() as u64;
                samples.push(e.latency_ms);
            })?;
            if samples.is_empty() {
                return Err(BaselineError::invalid(
                    location,
                    format!("no requests in this {format} ({lines})"),
                ));
            }
            samples.sort_unstable_by(f64::total_cmp);
            Ok(Run {
                info: info(samples.len() as u64, Some(lines)),
                errors,
                latency: Latency::Samples(samples),
                requests_per_s: None,
            })
        }
        InputFormat::Wrk => {
            let w = parse_wrk(&read_text(path)?, &location)?;
            let pct = |p: f64| {
                w.percentile(p).ok_or_else(|| {
                    BaselineError::invalid(
                        &location,
                        format!("wrk's Latency Distribution has no {p}% line"),
                    )
                })
            };
            if w.requests == 0 {
                return Err(BaselineError::invalid(&location, "wrk made no requests"));
            }
            Ok(Run {
                info: info(w.requests, None),
                errors: w.errors().min(w.requests),
                latency: Latency::Points {
                    p50: pct(50.0)?,
                    p99: pct(99.0)?,
                },
                requests_per_s: Some(w.requests_per_s),
            })
        }
        InputFormat::Summary => {
            let s = FeatureSummary::from_json(&read_text(path)?, &location)?;
            if s.requests == 0 {
                return Err(BaselineError::invalid(
                    &location,
                    "the summary holds no requests",
                ));
            }
            Ok(Run {
                info: info(s.requests, None),
                errors: s.errors,
                latency: Latency::Sketch(s.latency),
                requests_per_s: None,
            })
        }
    }
}

/// The latency or error metric a row is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    P50,
    P99,
    ErrorRate,
    /// Requests per second, between two wrk runs only (a load generator's
    /// throughput; a log's request rate is the traffic's, not the
    /// service's).
    Throughput,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::P50 => "p50 latency",
            Metric::P99 => "p99 latency",
            Metric::ErrorRate => "error rate",
            Metric::Throughput => "requests/s",
        })
    }
}

/// How a row was tested.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    /// The order-statistic test of a quantile ratio.
    OrderStatistics,
    /// The pooled two-proportion z-test.
    TwoProportion,
    /// No test could be made, for the reason given; the verdict compares
    /// the point estimates with the threshold.
    Unavailable(String),
    /// Too few samples for the test; the verdict is inconclusive.
    TooFewSamples,
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Test::OrderStatistics => f.write_str("order statistics"),
            Test::TwoProportion => f.write_str("two-proportion z"),
            Test::Unavailable(why) => write!(f, "unavailable ({why})"),
            Test::TooFewSamples => f.write_str("too few samples"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Regression,
    Improvement,
    Inconclusive,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Regression => "REGRESSION",
            Verdict::Improvement => "improvement",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// One metric compared.
#[derive(Clone, Debug, PartialEq)]
pub struct GateRow {
    pub metric: Metric,
    /// Milliseconds, a fraction for the error rate, or requests/s.
    pub baseline: f64,
    pub candidate: f64,
    /// Relative change, candidate over baseline minus one (+inf when the
    /// baseline is zero and the candidate is not).
    pub change: f64,
    /// Confidence interval of `change`, when the test gives one.
    pub ci: Option<(f64, f64)>,
    pub p_value: Option<f64>,
    pub test: Test,
    pub verdict: Verdict,
}

/// The gate's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct GateReport {
    pub baseline: RunInfo,
    pub candidate: RunInfo,
    pub max_regression: f64,
    pub significance: f64,
    pub rows: Vec<GateRow>,
}

impl GateReport {
    /// Whether the gate fails: some metric is worse than the threshold,
    /// significantly so (or, untestable, by its point estimate).
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regression)
    }
}

/// Compares the two runs of `opts`.
pub fn run(opts: &GateOptions) -> Result<GateReport, BaselineError> {
    if !(opts.max_regression.is_finite() && opts.max_regression >= 0.0) {
        return Err(BaselineError::invalid(
            "--max-regression",
            format!(
                "must be a non-negative fraction, got {}",
                opts.max_regression
            ),
        ));
    }
    if !(opts.significance > 0.0 && opts.significance < 1.0) {
        return Err(BaselineError::invalid(
            "significance",
            format!("must be in (0, 1), got {}", opts.significance),
        ));
    }
    let a = load(&opts.baseline, opts.format, &opts.parse)?;
    let b = load(&opts.candidate, opts.format, &opts.parse)?;
    Ok(compare_runs(a, b, opts.max_regression, opts.significance))
}

/// Two-sided critical value of the standard normal for `significance`.
fn z_critical(significance: f64) -> f64 {
    // Bisection on the tail: erfc is all libm offers, and 60 halvings of
    // [0, 40] are exact to double precision.
    let (mut lo, mut hi) = (0.0f64, 40.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if two_sided_p(mid) > significance {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn two_sided_p(z: f64) -> f64 {
    perfpilot_stats::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Sorted values by rank: raw samples exactly, or a sketch's buckets.
#[derive(Clone, Copy)]
enum Ranked<'a> {
    Sorted(&'a [f64]),
    Sketch(&'a Sketch),
}

impl Ranked<'_> {
    fn n(&self) -> u64 {
        match self {
            Ranked::Sorted(v) => v.len() as u64,
            Ranked::Sketch(s) => s.count(),
        }
    }

    fn at(&self, rank: u64) -> f64 {
        match self {
            Ranked::Sorted(v) => v.get(rank as usize).copied().unwrap_or(f64::NAN),
            Ranked::Sketch(s) => s.value_at_rank(rank).unwrap_or(f64::NAN),
        }
    }

    /// Variance added to a log-quantile by bucketing: a value anywhere in
    /// a bucket of log-width ln(gamma), uniformly.
    fn binning_variance(&self) -> f64 {
        match self {
            Ranked::Sorted(_) => 0.0,
            Ranked::Sketch(s) => {
                let a = s.relative_accuracy();
                let w = ((1.0 + a) / (1.0 - a)).ln();
                w * w / 12.0
            }
        }
    }
}

/// Latencies below a microsecond are a microsecond, so zero latencies
/// (nginx's `$request_time` has millisecond resolution) have a logarithm.
const LN_FLOOR_MS: f64 = 1e-3;

fn ln_ms(v: f64) -> f64 {
    v.max(LN_FLOOR_MS).ln()
}

/// The q-quantile and the variance of its logarithm from the
/// order-statistic confidence bounds, or `None` with fewer than five
/// samples on the short side of the quantile.
fn quantile_estimate(r: Ranked<'_>, q: f64, z: f64) -> Option<(f64, f64)> {
    let n = r.n();
    let nf = n as f64;
    if !(0.0..=1.0).contains(&q) || nf * q.min(1.0 - q) < 5.0 {
        return None;
    }
    let value = r.at((q * (nf - 1.0)).floor() as u64);
    let half = z * (nf * q * (1.0 - q)).sqrt();
    let lo = (nf * q - half).floor().max(0.0) as u64;
    let hi = ((nf * q + half).ceil() as u64).min(n - 1);
    let se = (ln_ms(r.at(hi)) - ln_ms(r.at(lo))) / (2.0 * z);
    Some((value, se * se + r.binning_variance()))
}

/// One quantile of two runs compared.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileTest {
    pub baseline: f64,
    pub candidate: f64,
    /// candidate / baseline - 1.
    pub change: f64,
    /// Confidence interval of `change`.
    pub ci: (f64, f64),
    /// Two-sided, for "the quantile did not change".
    pub p_value: f64,
}

fn test_ranked(a: Ranked<'_>, b: Ranked<'_>, q: f64, z: f64) -> Option<QuantileTest> {
    let (va, var_a) = quantile_estimate(a, q, z)?;
    let (vb, var_b) = quantile_estimate(b, q, z)?;
    let d = ln_ms(vb) - ln_ms(va);
    let se = (var_a + var_b).sqrt();
    let p_value = if se > 0.0 {
        two_sided_p(d / se)
    } else if d == 0.0 {
        1.0
    } else {
        // Each run's values are all equal near the quantile, and differ.
        0.0
    };
    Some(QuantileTest {
        baseline: va,
        candidate: vb,
        change: relative_change(va, vb),
        ci: ((d - z * se).exp() - 1.0, (d + z * se).exp() - 1.0),
        p_value,
    })
}

/// The order-statistic test of the `q`-quantile of two sorted samples
/// (see the module's documentation), or `None` with fewer than five
/// samples beyond the quantile on either side (p99 needs 500).
pub fn quantile_test(
    baseline_sorted: &[f64],
    candidate_sorted: &[f64],
    q: f64,
    significance: f64,
) -> Option<QuantileTest> {
    test_ranked(
        Ranked::Sorted(baseline_sorted),
        Ranked::Sorted(candidate_sorted),
        q,
        z_critical(significance),
    )
}

/// [`quantile_test`] on two sketches' ranks, with the bucket width in the
/// variance.
pub fn quantile_test_sketches(
    baseline: &Sketch,
    candidate: &Sketch,
    q: f64,
    significance: f64,
) -> Option<QuantileTest> {
    test_ranked(
        Ranked::Sketch(baseline),
        Ranked::Sketch(candidate),
        q,
        z_critical(significance),
    )
}

/// Two-sided p-value of the pooled two-proportion z-test for "the error
/// rates are equal" (1 when neither or both runs are all errors).
pub fn two_proportion_test(errors_a: u64, n_a: u64, errors_b: u64, n_b: u64) -> f64 {
    // A run without requests counts as one, as the gate always has.
    perfpilot_stats::z_test(errors_a, n_a.max(1), errors_b, n_b.max(1))
}

fn verdict(change: f64, p: Option<f64>, max: f64, sig: f64) -> Verdict {
    let beyond = change > max || change < -max;
    match p {
        None if change > max => Verdict::Regression,
        None if change < -max => Verdict::Improvement,
        None => Verdict::Ok,
        Some(p) if beyond && p >= sig => Verdict::Inconclusive,
        Some(_) if change > max => Verdict::Regression,
        Some(_) if change < -max => Verdict::Improvement,
        Some(_) => Verdict::Ok,
    }
}

fn relative_change(a: f64, b: f64) -> f64 {
    if a == 0.0 {
        if b == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        b / a - 1.0
    }
}

fn ranked(l: &Latency) -> Option<Ranked<'_>> {
    match l {
        Latency::Samples(v) => Some(Ranked::Sorted(v)),
        Latency::Sketch(s) => Some(Ranked::Sketch(s)),
        Latency::Points { .. } => None,
    }
}

fn point(l: &Latency, q: f64) -> f64 {
    match l {
        Latency::Samples(v) => Ranked::Sorted(v).at((q * (v.len() as f64 - 1.0)).floor() as u64),
        Latency::Sketch(s) => s.quantile(q).unwrap_or(f64::NAN),
        Latency::Points { p50, p99 } => {
            if q < 0.75 {
                *p50
            } else {
                *p99
            }
        }
    }
}

fn latency_row(metric: Metric, q: f64, a: &Run, b: &Run, max: f64, sig: f64, z: f64) -> GateRow {
    let (va, vb) = (point(&a.latency, q), point(&b.latency, q));
    let change = relative_change(va, vb);
    let untested = |test: Test, verdict: Verdict| GateRow {
        metric,
        baseline: va,
        candidate: vb,
        change,
        ci: None,
        p_value: None,
        test,
        verdict,
    };
    let (Some(ra), Some(rb)) = (ranked(&a.latency), ranked(&b.latency)) else {
        return untested(
            Test::Unavailable("wrk gives percentiles, not samples".into()),
            verdict(change, None, max, sig),
        );
    };
    match test_ranked(ra, rb, q, z) {
        None => untested(
            Test::TooFewSamples,
            if change.abs() > max {
                Verdict::Inconclusive
            } else {
                Verdict::Ok
            },
        ),
        Some(t) => GateRow {
            metric,
            baseline: t.baseline,
            candidate: t.candidate,
            change: t.change,
            ci: Some(t.ci),
            p_value: Some(t.p_value),
            test: Test::OrderStatistics,
            verdict: verdict(t.change, Some(t.p_value), max, sig),
        },
    }
}

fn error_row(a: &Run, b: &Run, max: f64, sig: f64, z: f64) -> GateRow {
    let (na, nb) = (a.info.requests as f64, b.info.requests as f64);
    let (xa, xb) = (a.errors as f64, b.errors as f64);
    let (ra, rb) = (xa / na, xb / nb);
    let p = two_proportion_test(a.errors, a.info.requests, b.errors, b.info.requests);
    // The interval of the rate ratio (log scale), defined when both runs
    // have errors.
    let ci = (xa > 0.0 && xb > 0.0).then(|| {
        let l = (rb / ra).ln();
        let s = (1.0 / xa - 1.0 / na + 1.0 / xb - 1.0 / nb).max(0.0).sqrt();
        ((l - z * s).exp() - 1.0, (l + z * s).exp() - 1.0)
    });
    let change = relative_change(ra, rb);
    GateRow {
        metric: Metric::ErrorRate,
        baseline: ra,
        candidate: rb,
        change,
        ci,
        p_value: Some(p),
        test: Test::TwoProportion,
        verdict: verdict(change, Some(p), max, sig),
    }
}

fn compare_runs(a: Run, b: Run, max: f64, sig: f64) -> GateReport {
    let z = z_critical(sig);
    let mut rows = vec![
        latency_row(Metric::P50, 0.5, &a, &b, max, sig, z),
        latency_row(Metric::P99, 0.99, &a, &b, max, sig, z),
        error_row(&a, &b, max, sig, z),
    ];
    if let (Some(ta), Some(tb)) = (a.requests_per_s, b.requests_per_s) {
        // Lower throughput is the regression: flip the sign for the verdict.
        let change = relative_change(ta, tb);
        let v = match verdict(-change, None, max, sig) {
            Verdict::Regression => Verdict::Regression,
            Verdict::Improvement => Verdict::Improvement,
            _ => Verdict::Ok,
        };
        rows.push(GateRow {
            metric: Metric::Throughput,
            baseline: ta,
            candidate: tb,
            change,
            ci: None,
            p_value: None,
            test: Test::Unavailable("one number per run".into()),
            verdict: v,
        });
    }
    GateReport {
        baseline: a.info,
        candidate: b.info,
        max_regression: max,
        significance: sig,
        rows,
    }
}

fn pct(v: f64) -> String {
    if v.is_infinite() {
        "new".into()
    } else {
        format!("{:+.1}%", v * 100.0)
    }
}

fn value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::P50 | Metric::P99 => format_ms(v),
        Metric::ErrorRate => format!("{:.2}%", v * 100.0),
        Metric::Throughput => format!("{v:.0}"),
    }
}

impl fmt::Display for GateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (side, r) in [("baseline", &self.baseline), ("candidate", &self.candidate)] {
            write!(
                f,
                "{side:<10} {} ({}, {} requests",
                r.path.display(),
                r.format,
                r.requests
            )?;
            if let Some(l) = &r.lines {
                if l.malformed > 0 {
                    write!(f, ", {} malformed lines skipped", l.malformed)?;
                }
            }
            writeln!(f, ")")?;
        }
        writeln!(
            f,
            "max regression {}, significance {}\n",
            pct(self.max_regression).trim_start_matches('+'),
            self.significance
        )?;
        let conf = format!("{:.0}% CI of change", (1.0 - self.significance) * 100.0);
        let mut table = vec![[
            "metric".to_string(),
            "baseline".into(),
            "candidate".into(),
            "change".into(),
            conf,
            "p-value".into(),
            "test".into(),
            "verdict".into(),
        ]];
        for r in &self.rows {
            table.push([
                r.metric.to_string(),
                value(r.metric, r.baseline),
                value(r.metric, r.candidate),
                pct(r.change),
                r.ci.map_or("-".into(), |(lo, hi)| format!("{} .. {}", pct(lo), pct(hi))),
                r.p_value.map_or("-".into(), |p| {
                    if p < 0.001 {
                        "<0.001".into()
                    } else {
                        format!("{p:.3}")
                    }
                }),
                r.test.to_string(),
                r.verdict.to_string(),
            ]);
        }
        write_table(f, &table)?;
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .map(|r| r.metric.to_string())
            .collect();
        if failed.is_empty() {
            writeln!(f, "\nverdict: pass")?;
        } else {
            writeln!(f, "\nverdict: REGRESSION ({})", failed.join(", "))?;
        }
        for (side, r) in [("baseline", &self.baseline), ("candidate", &self.candidate)] {
            if let Some(l) = r.lines.as_ref().filter(|l| l.malformed > 0) {
                writeln!(f, "{side}: {l}")?;
            }
        }
        Ok(())
    }
}

/// Summarises a request log for saving (`FeatureSummary::from_log`), kept
/// here too so the CLI finds the gate's inputs in one module.
pub fn summarize(path: &Path, parse: &ParseOptions) -> Result<FeatureSummary, BaselineError> {
    FeatureSummary::from_log(path, parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_critical_matches_tables() {
        assert!((z_critical(0.05) - 1.959964).abs() < 1e-5);
        assert!((z_critical(0.01) - 2.575829).abs() < 1e-5);
    }

    #[test]
    fn percent_parsing() {
        assert_eq!(parse_percent("5%").unwrap(), 0.05);
        assert_eq!(parse_percent(" 12.5 ").unwrap(), 0.125);
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("five").is_err());
    }

    #[test]
    fn wrk_durations() {
        assert_eq!(wrk_duration_ms("635.91us"), Some(0.63591));
        assert_eq!(wrk_duration_ms("1.50s"), Some(1500.0));
        assert_eq!(wrk_duration_ms("2.00m"), Some(120_000.0));
        assert_eq!(wrk_duration_ms("3.00x"), None);
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(0.10, Some(0.01), 0.05, 0.05), Verdict::Regression);
        assert_eq!(verdict(0.10, Some(0.20), 0.05, 0.05), Verdict::Inconclusive);
        assert_eq!(verdict(0.02, Some(0.001), 0.05, 0.05), Verdict::Ok);
        assert_eq!(verdict(-0.10, Some(0.01), 0.05, 0.05), Verdict::Improvement);
        assert_eq!(verdict(0.10, None, 0.05, 0.05), Verdict::Regression);
        assert_eq!(
            verdict(f64::INFINITY, Some(0.3), 0.05, 0.05),
            Verdict::Inconclusive
        );
    }
}
