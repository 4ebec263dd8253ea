//! The suite in process: generate a scenario, run the engine over it in
//! event time with a given configuration (the defaults, unless tuning),
//! group its findings into incidents and score them.

use perfpilot_baseline::detectors::{FeatureKind, Finding};
use perfpilot_baseline::engine::{Engine, EngineConfig};
use perfpilot_baseline::feature::{FeatureKey, Metric};
use perfpilot_baseline::window::{Windower, WindowConfig};
use perfpilot_baseline::BaselineError;

use super::score::{score, Raised, SuiteScore};
use super::{generate, Scenario};

/// Quiet time after which a service's next finding is a new incident.
pub const QUIET_MS: i64 = 5 * 60_000;

/// An incident as grouped here: the findings of one service with less
/// than [`QUIET_MS`] between them.
#[derive(Debug, Clone)]
pub struct Grouped {
    pub service: String,
    pub raised_at_ms: i64,
    pub last_ms: i64,
    /// (feature, detector) of its findings, first seen first.
    pub evidence: Vec<(String, String)>,
}

/// Whether a finding is on the side of its feature that pages: latency
/// and errors high, request rate low; other features both ways.
pub fn pages(f: &Finding) -> bool {
    let Some(band) = f.expected else {
        return true;
    };
    let high = f.observed > band.expected;
    match FeatureKey::parse(&f.feature).metric {
        Metric::LatencyQuantile { .. } | Metric::ErrorRate => high,
        Metric::RequestRate => !high,
        _ => true,
    }
}

/// Runs the engine over a scenario and groups what it found.
pub fn run(s: &Scenario, config: &EngineConfig) -> Result<Vec<Grouped>, BaselineError> {
    let mut engine = Engine::new(config.clone());
    let mut windower = Windower::new(WindowConfig::default())?;
    let mut windows = Vec::new();
    let mut heap = s.heap.iter().peekable();
    let mut groups: Vec<Grouped> = Vec::new();
    let none = Default::default();
    let mut feed = |engine: &mut Engine, windows: &mut Vec<_>, heap: &mut std::iter::Peekable<_>| {
        for w in windows.drain(..) {
            let w: perfpilot_baseline::window::FeatureWindow = w;
            let mut found = engine.observe_window(&w);
            if w.is_aggregate() {
                while let Some(&&(t, x)) = heap.peek() {
                    if t >= w.end_ms {
                        break;
                    }
                    heap.next();
                    found.extend(engine.observe_resource(
                        &s.service,
                        "heap_bytes",
                        FeatureKind::Memory,
                        t,
                        x,
                        &none,
                    ));
                }
            }
            for f in found.iter().filter(|f| pages(f)) {
                let t = f.at_ms.max(w.start_ms);
                let service = w.service.to_string();
                match groups
                    .iter_mut()
                    .rev()
                    .find(|g| g.service == service && t - g.last_ms <= QUIET_MS)
                {
                    Some(g) => {
                        g.last_ms = g.last_ms.max(t);
                        let e = (f.feature.clone(), f.detector.clone());
                        if !g.evidence.contains(&e) {
                            g.evidence.push(e);
                        }
                    }
                    None => groups.push(Grouped {
                        service,
                        // Raised when its window closes.
                        raised_at_ms: w.end_ms,
                        last_ms: t,
                        evidence: vec![(f.feature.clone(), f.detector.clone())],
                    }),
                }
            }
        }
    };
    for e in &s.events {
        windower.push(e, &mut windows);
        feed(&mut engine, &mut windows, &mut heap);
    }
    windower.flush(&mut windows);
    feed(&mut engine, &mut windows, &mut heap);
    Ok(groups)
}

/// What one scenario raised, for reading what went wrong.
#[derive(Debug, Clone)]
pub struct Detail {
    pub scenario: String,
    pub start_ms: i64,
    pub groups: Vec<Grouped>,
    /// Per group: whether it detected no label (a false alert).
    pub false_alert: Vec<bool>,
}

/// The scored suite of one seed under `config`, with each scenario's
/// grouped incidents.
pub fn suite(seed: u64, config: &EngineConfig) -> Result<(SuiteScore, Vec<Detail>), BaselineError> {
    let mut table = SuiteScore::default();
    let mut detail = Vec::new();
    for s in generate(seed) {
        let groups = run(&s, config)?;
        let raised: Vec<Raised> = groups
            .iter()
            .map(|g| Raised {
                service: g.service.clone(),
                raised_at_ms: g.raised_at_ms,
            })
            .collect();
        let name = format!("{seed}/{}", s.name);
        table.rows.push(score(&name, &s.incidents, &raised));
        let false_alert = raised
            .iter()
            .map(|r| score("", &s.incidents, std::slice::from_ref(r)).false_alerts == 1)
            .collect();
        detail.push(Detail {
            scenario: name,
            start_ms: s.start_ms,
            groups,
            false_alert,
        });
    }
    Ok((table, detail))
}
