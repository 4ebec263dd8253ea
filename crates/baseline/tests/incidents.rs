//! Incidents, not alert streams: the defects issue 12 found in the alert
//! book, each as a test on generated request logs run through the engine
//! with its default settings.
//!
//! - grouping: one problem was up to 16 alerts (4 quantiles × 2 detectors,
//!   service aggregate and its only endpoint);
//! - re-firing: the change-point detector re-fired every minute or two of
//!   one sustained shift;
//! - below band: latency returning to normal paged as "below band", and a
//!   traffic surge paged too, while a drop in requests must page.

use std::sync::Arc;

use perfpilot_baseline::engine::{Engine, EngineConfig};
use perfpilot_baseline::incidents::{Incident, Transition};
use perfpilot_baseline::logs::Event;
use perfpilot_baseline::window::{windows, WindowConfig};

const START_MS: i64 = 1_790_000_000_000;
const MIN: i64 = 60_000;

/// What the service does at a moment: requests per second, a factor on
/// its latency, the share of requests that fail.
struct Phase {
    rps: i64,
    slower: f64,
    errors: f64,
}

const NORMAL: Phase = Phase {
    rps: 20,
    slower: 1.0,
    errors: 0.0,
};

/// `minutes` of one service with one endpoint, as `phase` says minute by
/// minute: latency 20..40 ms (uniform noise), a 0.2 % background of errors.
fn log(minutes: i64, phase: impl Fn(i64) -> Phase) -> Vec<Event> {
    let (svc, ep): (Arc<str>, Arc<str>) = (Arc::from("api"), Arc::from("/x"));
    let mut n: u64 = 12345;
    let mut next = || {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (n >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::new();
    for s in 0..minutes * 60 {
        let p = phase(s / 60);
        for i in 0..p.rps {
            let u = next();
            let e = next();
            let failed = e < p.errors || e > 0.998;
            out.push(Event {
                ts_ms: START_MS + s * 1000 + i * 1000 / p.rps,
                latency_ms: (20.0 + 20.0 * u) * p.slower,
                status: if failed { 500 } else { 200 },
                endpoint: Arc::clone(&ep),
                service: Arc::clone(&svc),
            });
        }
    }
    out
}

/// The engine with its defaults over the log; every incident it opened
/// from minute 59 on (what happens in the normal hour before is the
/// scenario suite's to judge, not these tests'), as it ended.
fn run(events: &[Event]) -> (Engine, Vec<Incident>) {
    let mut engine = Engine::new(EngineConfig::default());
    let (ws, _) = windows(events, WindowConfig::default()).unwrap();
    let mut opened = Vec::new();
    for w in &ws {
        if w.start_ms == at(59) {
            // Nothing open that would take the test's findings in.
            assert!(
                engine.incidents().iter().all(|i| !i.firing()),
                "{:#?}",
                engine.incidents()
            );
        }
        engine.observe_window(w);
        for t in engine.drain_transitions() {
            if let Transition::Fired(id) = t {
                if w.start_ms >= at(59) {
                    opened.push(id);
                }
            }
        }
    }
    let incidents = opened
        .iter()
        .map(|id| engine.incident(id).expect("an opened incident").clone())
        .collect();
    (engine, incidents)
}

fn features(i: &Incident) -> Vec<&str> {
    i.findings.iter().map(|f| f.feature.as_str()).collect()
}

fn at(minute: i64) -> i64 {
    START_MS + minute * MIN
}

#[test]
fn a_latency_step_is_one_incident_with_every_quantile_and_scope_in_it() {
    let events = log(90, |m| match m {
        60..70 => Phase {
            slower: 3.0,
            ..NORMAL
        },
        _ => NORMAL,
    });
    let (_, incidents) = run(&events);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    let f = features(inc);
    // The service as a whole and its only endpoint, several quantiles.
    assert!(f.iter().any(|f| f.starts_with("latency_p")), "{f:?}");
    assert!(f.iter().any(|f| f.starts_with("/x latency_p")), "{f:?}");
    let quantiles: std::collections::BTreeSet<&str> = f
        .iter()
        .filter_map(|f| f.rsplit(' ').next())
        .filter(|m| m.starts_with("latency_p"))
        .collect();
    assert!(quantiles.len() >= 3, "{quantiles:?}");
    // Raised within two windows of the step, and begun at it.
    assert!(
        (at(60)..=at(60) + 30_000).contains(&inc.raised_at_ms),
        "raised {} s after the step",
        (inc.raised_at_ms - at(60)) / 1000
    );
    assert!(
        inc.starts_at_ms >= at(60) - 20_000 && inc.starts_at_ms <= inc.raised_at_ms,
        "starts {} s from the step: {:#?}",
        (inc.starts_at_ms - at(60)) / 1000,
        inc.findings
    );
    assert_eq!(inc.labels["alertname"], "PerfpilotIncident");
    assert_eq!(inc.labels["incident"], inc.id);
    assert!(inc.summary.contains("latency"), "{}", inc.summary);
    // Latency going back to normal raised nothing of its own.
    assert!(
        !inc.findings.iter().any(|f| f.message.contains("below")),
        "{:#?}",
        inc.findings
    );
    let record = serde_json::to_value(inc.record()).unwrap();
    for k in [
        "id",
        "service",
        "starts_at",
        "raised_at",
        "resolved_at",
        "severity",
        "summary",
        "findings",
    ] {
        assert!(record.get(k).is_some(), "{k} missing from {record}");
    }
}

#[test]
fn latency_and_an_error_burst_at_once_are_one_incident() {
    let events = log(80, |m| match m {
        60..65 => Phase {
            slower: 3.0,
            errors: 0.2,
            ..NORMAL
        },
        _ => NORMAL,
    });
    let (_, incidents) = run(&events);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    let detectors: Vec<&str> = inc.findings.iter().map(|f| f.detector.as_str()).collect();
    assert!(detectors.contains(&"error_burst"), "{detectors:?}");
    assert!(
        inc.findings
            .iter()
            .any(|f| f.feature.contains("latency") && f.detector == "band"),
        "{:#?}",
        inc.findings
    );
    // An error rate of 20 % is critical, and so is the incident.
    assert_eq!(
        inc.severity,
        perfpilot_baseline::detectors::Severity::Critical
    );
}

#[test]
fn a_sustained_step_fires_once_and_resolves_after_the_quiet_time() {
    let events = log(100, |m| match m {
        60..75 => Phase {
            slower: 1.6,
            ..NORMAL
        },
        _ => NORMAL,
    });
    let (engine, incidents) = run(&events);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    // Found all along the step, never fired again.
    let last = inc.findings.iter().map(|f| f.last_ms).max().unwrap();
    assert!(
        last >= at(72),
        "last finding {} min in",
        (last - at(60)) / MIN
    );
    let resolved = inc.resolved_at_ms.expect("resolved once the step ended");
    let quiet = EngineConfig::default().resolve_quiet.as_millis() as i64;
    assert!(
        resolved >= last + quiet && resolved <= at(75) + quiet + 2 * MIN,
        "resolved {} s after the step ended",
        (resolved - at(75)) / 1000
    );
    assert!(engine.incidents().iter().all(|i| !i.firing()));
}

#[test]
fn a_faster_service_raises_nothing() {
    let events = log(90, |m| match m {
        60..80 => Phase {
            slower: 0.3,
            ..NORMAL
        },
        _ => NORMAL,
    });
    let (_, incidents) = run(&events);
    assert!(incidents.is_empty(), "{incidents:#?}");
}

#[test]
fn a_traffic_surge_raises_nothing() {
    let events = log(90, |m| match m {
        60..75 => Phase { rps: 80, ..NORMAL },
        _ => NORMAL,
    });
    let (_, incidents) = run(&events);
    assert!(incidents.is_empty(), "{incidents:#?}");
}

#[test]
fn a_drop_in_requests_is_an_incident() {
    let events = log(90, |m| match m {
        60..75 => Phase { rps: 4, ..NORMAL },
        _ => NORMAL,
    });
    let (_, incidents) = run(&events);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let f = features(&incidents[0]);
    assert!(f.iter().any(|f| f.ends_with("requests_per_s")), "{f:?}");
    assert!(
        incidents[0]
            .findings
            .iter()
            .all(|f| !f.feature.contains("latency")),
        "{:#?}",
        incidents[0].findings
    );
}
