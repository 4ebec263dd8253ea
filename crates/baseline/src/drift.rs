//! Distribution drift between two latency distributions: Jensen–Shannon
//! divergence (and Kullback–Leibler with smoothing) over the log-scale
//! buckets of two sketches, per service and endpoint — two windows, or the
//! same service's logs from two environments (`perfpilot baseline compare
//! A B`).
//!
//! The sketches' own buckets (2% wide at the default accuracy) are grouped
//! into coarser bins, 10% wide by default: at the sketches' resolution two
//! samples of one distribution already differ by sampling noise in most
//! buckets, and a latency shift smaller than 10% is not what drift is for
//! (the release gate tests quantiles). Each row also carries the divergence
//! expected from sampling alone, so a small sample's JS is not mistaken for
//! drift.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::logs::{self, Event, LineStats, ParseOptions};
use crate::sketch::{Sketch, DEFAULT_RELATIVE_ACCURACY};
use crate::window::ALL_ENDPOINTS;
use crate::BaselineError;

/// How distributions are binned and grouped.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftOptions {
    /// Relative width of a drift bin (0.1: each bin spans 10%).
    pub bin_width: f64,
    /// Pseudo-count added to every bin for KL, which is infinite where the
    /// second distribution has an empty bin the first has not.
    pub kl_smoothing: f64,
    /// Group by endpoint alone, for environments whose service names
    /// differ (`api-staging` against `api`).
    pub ignore_service: bool,
    pub relative_accuracy: f64,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            bin_width: 0.1,
            kl_smoothing: 0.5,
            ignore_service: false,
            relative_accuracy: DEFAULT_RELATIVE_ACCURACY,
        }
    }
}

/// Two sketches as aligned probability vectors over drift bins (the zero
/// bucket is a bin of its own), with their totals.
fn aligned(
    a: &Sketch,
    b: &Sketch,
    bin_width: f64,
) -> Result<(Vec<f64>, Vec<f64>, u64, u64), BaselineError> {
    if a.relative_accuracy() != b.relative_accuracy() {
        return Err(BaselineError::invalid(
            "drift",
            "sketches of different accuracies have unaligned buckets",
        ));
    }
    if !(bin_width > 0.0 && bin_width.is_finite()) {
        return Err(BaselineError::invalid(
            "drift bin width",
            format!("must be positive, got {bin_width}"),
        ));
    }
    // Sketch buckets per drift bin: bin_width relative = ln(1 + w) in log
    // space, over a sketch bucket's ln(gamma).
    let (lo, hi) = a.bucket_bounds(1);
    let per_bin = ((1.0 + bin_width).ln() / (hi / lo).ln()).round().max(1.0) as i32;
    let mut bins: BTreeMap<Option<i32>, (u64, u64)> = BTreeMap::new();
    if a.zero_count() > 0 || b.zero_count() > 0 {
        bins.insert(None, (a.zero_count(), b.zero_count()));
    }
    for (k, c) in a.bins() {
        bins.entry(Some(k.div_euclid(per_bin))).or_default().0 += c;
    }
    for (k, c) in b.bins() {
        bins.entry(Some(k.div_euclid(per_bin))).or_default().1 += c;
    }
    let (na, nb) = (a.count(), b.count());
    let p = bins
        .values()
        .map(|c| c.0 as f64 / na.max(1) as f64)
        .collect();
    let q = bins
        .values()
        .map(|c| c.1 as f64 / nb.max(1) as f64)
        .collect();
    Ok((p, q, na, nb))
}

fn kl_bits(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(&pi, _)| pi > 0.0)
        .map(|(&pi, &qi)| pi * (pi / qi).log2())
        .sum()
}

/// Jensen–Shannon divergence in bits (0 = same distribution, 1 = disjoint)
/// between two latency sketches of the same accuracy, over bins
/// `bin_width` wide. `None` if either is empty.
pub fn js_divergence(a: &Sketch, b: &Sketch, bin_width: f64) -> Result<Option<f64>, BaselineError> {
    let (p, q, na, nb) = aligned(a, b, bin_width)?;
    if na == 0 || nb == 0 {
        return Ok(None);
    }
    let m: Vec<f64> = p.iter().zip(&q).map(|(x, y)| 0.5 * (x + y)).collect();
    let js = 0.5 * kl_bits(&p, &m) + 0.5 * kl_bits(&q, &m);
    Ok(Some(js.clamp(0.0, 1.0)))
}

/// Kullback–Leibler divergence D(A‖B) in bits, with `smoothing` added to
/// every bin's count of both (so an empty bin of B does not make it
/// infinite). `None` if either is empty.
pub fn kl_divergence(
    a: &Sketch,
    b: &Sketch,
    bin_width: f64,
    smoothing: f64,
) -> Result<Option<f64>, BaselineError> {
    if !(smoothing > 0.0 && smoothing.is_finite()) {
        return Err(BaselineError::invalid(
            "KL smoothing",
            format!("must be positive, got {smoothing}"),
        ));
    }
    let (p, q, na, nb) = aligned(a, b, bin_width)?;
    if na == 0 || nb == 0 {
        return Ok(None);
    }
    let k = p.len() as f64;
    let smooth = |v: &[f64], n: u64| -> Vec<f64> {
        let n = n as f64;
        v.iter()
            .map(|x| (x * n + smoothing) / (n + k * smoothing))
            .collect()
    };
    Ok(Some(kl_bits(&smooth(&p, na), &smooth(&q, nb)).max(0.0)))
}

/// Roughly the JS divergence (bits) two samples of one distribution show
/// from sampling alone: the plug-in estimator's first-order bias,
/// `(K - 1) / 8 (1/n_a + 1/n_b)` nats over K occupied bins.
pub fn js_noise_floor(
    a: &Sketch,
    b: &Sketch,
    bin_width: f64,
) -> Result<Option<f64>, BaselineError> {
    let (p, q, na, nb) = aligned(a, b, bin_width)?;
    if na == 0 || nb == 0 {
        return Ok(None);
    }
    let k = p
        .iter()
        .zip(&q)
        .filter(|(x, y)| **x > 0.0 || **y > 0.0)
        .count() as f64;
    let nats = (k - 1.0).max(0.0) / 8.0 * (1.0 / na as f64 + 1.0 / nb as f64);
    Ok(Some(nats / std::f64::consts::LN_2))
}

/// One service and endpoint compared.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftRow {
    /// Empty when services were ignored.
    pub service: Arc<str>,
    pub endpoint: Arc<str>,
    pub a_count: u64,
    pub b_count: u64,
    pub a_p50: Option<f64>,
    pub a_p99: Option<f64>,
    pub b_p50: Option<f64>,
    pub b_p99: Option<f64>,
    /// `None` when one side has no requests there.
    pub js: Option<f64>,
    /// JS expected from sampling alone (see [`js_noise_floor`]).
    pub js_noise: Option<f64>,
    /// D(A‖B), smoothed.
    pub kl: Option<f64>,
}

/// Drift of every service and endpoint seen on either side.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriftReport {
    /// Each service's all-endpoints row first, then its endpoints by
    /// decreasing JS divergence.
    pub rows: Vec<DriftRow>,
    pub bin_width: f64,
    /// Parsing counts when the sides were read from logs.
    pub a_lines: Option<LineStats>,
    pub b_lines: Option<LineStats>,
}

type Groups = HashMap<(Arc<str>, Arc<str>), Sketch>;

fn group(
    events: &[Event],
    opts: &DriftOptions,
    all: &Arc<str>,
    none: &Arc<str>,
) -> Result<Groups, BaselineError> {
    let empty = Sketch::with_accuracy(opts.relative_accuracy)?;
    let mut g: Groups = HashMap::new();
    for e in events {
        let service = if opts.ignore_service {
            none
        } else {
            &e.service
        };
        let key = empty.key_of(e.latency_ms);
        for endpoint in [&e.endpoint, all] {
            g.entry((service.clone(), endpoint.clone()))
                .or_insert_with(|| empty.clone())
                .add_keyed(key, e.latency_ms);
        }
    }
    Ok(g)
}

/// Compares two sets of requests per service and endpoint.
pub fn compare(
    a: &[Event],
    b: &[Event],
    opts: &DriftOptions,
) -> Result<DriftReport, BaselineError> {
    let all: Arc<str> = Arc::from(ALL_ENDPOINTS);
    let none: Arc<str> = Arc::from("");
    let ga = group(a, opts, &all, &none)?;
    let gb = group(b, opts, &all, &none)?;
    let empty = Sketch::with_accuracy(opts.relative_accuracy)?;
    let mut keys: Vec<&(Arc<str>, Arc<str>)> = ga
        .keys()
        .chain(gb.keys().filter(|k| !ga.contains_key(*k)))
        .collect();
    keys.sort();
    let mut rows = Vec::with_capacity(keys.len());
    for k in keys {
        let sa = ga.get(k).unwrap_or(&empty);
        let sb = gb.get(k).unwrap_or(&empty);
        rows.push(DriftRow {
            service: k.0.clone(),
            endpoint: k.1.clone(),
            a_count: sa.count(),
            b_count: sb.count(),
            a_p50: sa.quantile(0.5),
            a_p99: sa.quantile(0.99),
            b_p50: sb.quantile(0.5),
            b_p99: sb.quantile(0.99),
            js: js_divergence(sa, sb, opts.bin_width)?,
            js_noise: js_noise_floor(sa, sb, opts.bin_width)?,
            kl: kl_divergence(sa, sb, opts.bin_width, opts.kl_smoothing)?,
        });
    }
    rows.sort_by(|x, y| {
        let agg = |r: &DriftRow| &*r.endpoint != ALL_ENDPOINTS;
        x.service
            .cmp(&y.service)
            .then(agg(x).cmp(&agg(y)))
            .then(y.js.unwrap_or(-1.0).total_cmp(&x.js.unwrap_or(-1.0)))
            .then(x.endpoint.cmp(&y.endpoint))
    });
    Ok(DriftReport {
        rows,
        bin_width: opts.bin_width,
        a_lines: None,
        b_lines: None,
    })
}

/// Reads two request logs and compares them (`perfpilot baseline compare
/// A B`). Malformed lines are counted in the report, never fatal.
pub fn compare_files(
    a: &Path,
    b: &Path,
    parse: &ParseOptions,
    opts: &DriftOptions,
) -> Result<DriftReport, BaselineError> {
    let (ea, la) = logs::read_file(a, parse)?;
    let (eb, lb) = logs::read_file(b, parse)?;
    let mut r = compare(&ea, &eb, opts)?;
    r.a_lines = Some(la);
    r.b_lines = Some(lb);
    Ok(r)
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) => format_ms(v),
        None => "-".into(),
    }
}

/// Milliseconds with three significant digits.
pub fn format_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = vec![[
            "service", "endpoint", "n(A)", "n(B)", "p50 A", "p50 B", "p99 A", "p99 B", "JS",
            "noise", "KL(A||B)",
        ]
        .map(String::from)];
        for r in &self.rows {
            let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
            table.push([
                r.service.to_string(),
                r.endpoint.to_string(),
                r.a_count.to_string(),
                r.b_count.to_string(),
                ms(r.a_p50),
                ms(r.b_p50),
                ms(r.a_p99),
                ms(r.b_p99),
                opt(r.js),
                opt(r.js_noise),
                opt(r.kl),
            ]);
        }
        write_table(f, &table)?;
        writeln!(
            f,
            "JS: Jensen-Shannon divergence in bits over {:.0}%-wide latency bins (0 same, 1 disjoint); noise: what sampling alone gives",
            self.bin_width * 100.0
        )?;
        for (side, lines) in [("A", &self.a_lines), ("B", &self.b_lines)] {
            if let Some(l) = lines {
                writeln!(f, "{side}: {l}")?;
            }
        }
        Ok(())
    }
}

/// Writes rows as left-aligned columns (the first row is the header).
pub fn write_table<const N: usize>(
    f: &mut fmt::Formatter<'_>,
    rows: &[[String; N]],
) -> fmt::Result {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            line.push_str(c);
            if i + 1 < N {
                line.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
            }
        }
        writeln!(f, "{}", line.trim_end())?;
    }
    Ok(())
}
