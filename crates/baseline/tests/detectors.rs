//! Detectors on generated series with known incidents: each must be found,
//! soon after it starts, and nothing may be found where there is none.

use perfpilot_baseline::baseline::{BandState, Baseline, BaselineConfig};
use perfpilot_baseline::detectors::{
    ErrorBurst, FeatureKind, FeatureMonitor, Finding, MonitorConfig,
};

const STEP: i64 = 10_000;

/// Deterministic standard normal noise (Box–Muller on an LCG).
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn poisson(&mut self, lambda: f64) -> u64 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
}

fn run(kind: FeatureKind, series: impl Iterator<Item = (i64, f64)>) -> Vec<Finding> {
    let mut m = FeatureMonitor::new("feature", kind, MonitorConfig::default());
    series.flat_map(|(t, x)| m.update(t, x)).collect()
}

/// The first finding, as a window index, and checks none came before
/// `start`.
fn first_after(findings: &[Finding], start: i64, step: i64) -> i64 {
    let early: Vec<_> = findings.iter().filter(|f| f.at_ms < start * step).collect();
    assert!(
        early.is_empty(),
        "false alarms before the incident: {early:#?}"
    );
    let f = findings
        .first()
        .unwrap_or_else(|| panic!("the incident at window {start} was not found"));
    f.at_ms / step
}

#[test]
fn step_in_latency_is_found_within_three_windows() {
    let mut n = Noise(1);
    let series = (0..900).map(|i| {
        let level = if i < 600 { 200.0 } else { 260.0 };
        (i * STEP, level + 10.0 * n.normal())
    });
    let findings = run(FeatureKind::Level, series);
    let at = first_after(&findings, 600, STEP);
    assert!(at <= 603, "found at window {at}");
    let f = &findings[0];
    // On a gauge the surprise detector sees a step this far beyond every
    // earlier value in its first window; the band after three.
    assert!(["band", "surprise"].contains(&f.detector.as_str()), "{f:?}");
    assert!(f.since_ms >= 600 * STEP, "{f:?}");
    let band = f.expected.expect("a band");
    assert!(band.low > 160.0 && band.high < 245.0, "{band:?}");
}

#[test]
fn slow_ramp_is_found() {
    let mut n = Noise(2);
    let series = (0..1200).map(|i| {
        let level = 200.0 + if i < 600 { 0.0 } else { (i - 600) as f64 * 0.4 };
        (i * STEP, level + 10.0 * n.normal())
    });
    let findings = run(FeatureKind::Level, series);
    let at = first_after(&findings, 600, STEP);
    // 0.4 per window against noise of 10: a shift of one σ after 25
    // windows, which CUSUM accumulates.
    assert!(at <= 700, "found at window {at}");
}

#[test]
fn variance_change_is_found() {
    let mut n = Noise(3);
    let series = (0..900).map(|i| {
        let sigma = if i < 600 { 5.0 } else { 30.0 };
        (i * STEP, 100.0 + sigma * n.normal())
    });
    let findings = run(FeatureKind::Level, series);
    let at = first_after(&findings, 600, STEP);
    assert!(at <= 630, "found at window {at}");
}

#[test]
fn leak_is_found_though_the_band_adapts() {
    let mut n = Noise(4);
    // 400 MB with a garbage-collection sawtooth, then growing 0.05% a
    // window: slow enough for the adaptive band to follow.
    let mb = |i: i64, n: &mut Noise| 400.0 + 20.0 * ((i % 30) as f64 / 30.0) + 2.0 * n.normal();
    let series: Vec<(i64, f64)> = (0..1500)
        .map(|i| {
            let growth = if i < 700 {
                1.0
            } else {
                1.0005f64.powi((i - 700) as i32)
            };
            (i * STEP, mb(i, &mut n) * growth)
        })
        .collect();
    let findings = run(FeatureKind::Memory, series.iter().copied());
    let leaks: Vec<_> = findings.iter().filter(|f| f.detector == "leak").collect();
    let first = leaks.first().expect("the leak was not found");
    assert!(
        first.at_ms >= 700 * STEP,
        "leak found before it began: {first:?}"
    );
    assert!(first.at_ms <= 1000 * STEP, "leak found late: {first:?}");
    assert!(
        findings.iter().all(|f| f.at_ms >= 700 * STEP),
        "false alarms: {findings:#?}"
    );

    // The same sawtooth without growth: nothing, for hours.
    let mut n = Noise(5);
    let flat = (0..1500).map(|i| (i * STEP, mb(i, &mut n)));
    let findings = run(FeatureKind::Memory, flat);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn error_burst_is_found_and_quiet_traffic_is_not() {
    let mut n = Noise(6);
    let burst = ErrorBurst::default();
    let mut rate = Baseline::new(BaselineConfig::default());
    let mut found = Vec::new();
    for i in 0..800 {
        let requests = 1000;
        let errors = if (500..503).contains(&i) {
            40
        } else {
            n.poisson(2.0)
        };
        let band = rate.band(i * STEP);
        let expected = band.ready().then_some(band.expected);
        let f = burst.update("errors", i * STEP, errors, requests, expected);
        rate.observe(i * STEP, errors as f64 / requests as f64, f.is_some());
        found.extend(f);
    }
    let at: Vec<i64> = found.iter().map(|f| f.at_ms / STEP).collect();
    assert_eq!(at, vec![500, 501, 502], "{found:#?}");
}

#[test]
fn daily_pattern_without_incident_raises_nothing() {
    let mut n = Noise(7);
    let step = 60_000;
    let day = 86_400_000.0;
    let value = |t: i64, n: &mut Noise| {
        100.0 + 50.0 * (2.0 * std::f64::consts::PI * t as f64 / day).sin() + 3.0 * n.normal()
    };
    // A request rate: a gauge's band breaches page only with the surprise
    // detector's corroboration, which knows no seasons.
    let mut m = FeatureMonitor::new("rps", FeatureKind::Rate, MonitorConfig::default());
    let mut findings = Vec::new();
    for i in 0..4 * 1440 {
        let t = i * step;
        let f = m.update(t, value(t, &mut n));
        // Until the daily profile is trusted (two days of history), a
        // daily swing is change like any other and the band says it has
        // no season yet; from then on the swing is normal. (Judged by the
        // band each finding was held against: the window that completes
        // two days was still judged without the profile.)
        findings.extend(
            f.into_iter()
                .filter(|f| f.expected.is_some_and(|b| b.state == BandState::Daily)),
        );
    }
    let end = 4 * 1440 * step;
    assert_eq!(m.baseline.band(end).state, BandState::Daily);
    assert!(
        findings.is_empty(),
        "{} findings, first: {:#?}",
        findings.len(),
        findings.first()
    );
    // A real incident on the fifth day (a drop in requests) is still
    // found.
    let mut late = Vec::new();
    for i in 0..30 {
        let t = end + i * step;
        late.extend(m.update(t, value(t, &mut n) - 40.0));
    }
    assert!(late.iter().any(|f| f.detector == "band"), "{late:#?}");
}

#[test]
fn gaps_and_clock_jumps_raise_nothing() {
    let mut n = Noise(8);
    let mut m = FeatureMonitor::new("p99", FeatureKind::Level, MonitorConfig::default());
    let mut findings = Vec::new();
    for i in 0..400 {
        findings.extend(m.update(i * STEP, 100.0 + 5.0 * n.normal()));
    }
    // An hour without data, then the same series; then a clock jump back.
    for i in 760..1000 {
        findings.extend(m.update(i * STEP, 100.0 + 5.0 * n.normal()));
    }
    for i in 900..950 {
        findings.extend(m.update(i * STEP, 100.0 + 5.0 * n.normal()));
    }
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(m.gaps, 1);
    assert_eq!(m.clock_jumps, 50);
}

#[test]
fn only_the_side_that_pages_is_found() {
    assert!(FeatureKind::Latency.pages_high() && !FeatureKind::Latency.pages_low());
    assert!(!FeatureKind::Rate.pages_high() && FeatureKind::Rate.pages_low());
    assert!(FeatureKind::Gauge.pages_high() && FeatureKind::Gauge.pages_low());
    assert_eq!("level".parse::<FeatureKind>(), Ok(FeatureKind::Gauge));
    // A saved baseline's `level` still loads, as the gauge it was.
    let kind: FeatureKind = serde_json::from_str("\"level\"").unwrap();
    assert!(kind.pages_high() && kind.pages_low());
    let step = |to: f64, seed: u64| {
        let mut n = Noise(seed);
        (0..900).map(move |i| {
            let level = if i < 600 { 200.0 } else { to };
            (i * STEP, level + 10.0 * n.normal())
        })
    };
    // Latency falling by half, a request rate doubling: nothing.
    assert!(run(FeatureKind::Latency, step(100.0, 11)).is_empty());
    assert!(run(FeatureKind::Rate, step(400.0, 12)).is_empty());
    // The same falls in a request rate, and rises of a gauge: found.
    assert!(!run(FeatureKind::Rate, step(100.0, 11)).is_empty());
    assert!(!run(FeatureKind::Gauge, step(400.0, 12)).is_empty());
    assert!(!run(FeatureKind::Gauge, step(100.0, 11)).is_empty());
}

#[test]
fn a_gauge_pages_on_surprise_not_on_every_band_breach() {
    // Heavy-tailed: small noise with a burst to the same height every 50
    // windows for 3 windows, which a band of recent quantiles (it holds
    // few bursts) calls a breach each time.
    let mut n = Noise(9);
    let mut m = FeatureMonitor::new("queue_depth", FeatureKind::Gauge, MonitorConfig::default());
    let mut findings = Vec::new();
    for i in 0..1500 {
        let burst = if (25..28).contains(&(i % 50)) {
            40.0
        } else {
            0.0
        };
        findings.extend(m.update(i * STEP, 10.0 + n.normal() + burst));
    }
    assert!(findings.is_empty(), "{findings:#?}");
    // A height never seen before pages in its first window.
    let f = m.update(1500 * STEP, 200.0);
    assert!(f.iter().any(|f| f.detector == "surprise"), "{f:#?}");
}
