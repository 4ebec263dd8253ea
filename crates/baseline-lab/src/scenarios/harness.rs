//! The suite in process: generate a scenario, run the engine over it in
//! event time with a given configuration (the defaults, unless tuning),
//! and score the incidents it raised.

use perfpilot_baseline::detectors::FeatureKind;
use perfpilot_baseline::engine::{Engine, EngineConfig};
use perfpilot_baseline::window::{FeatureWindow, WindowConfig, Windower};
use perfpilot_baseline::BaselineError;

use super::score::{score, Raised, SuiteScore};
use super::{generate, Scenario};

/// An incident the engine raised, as the scorer and a reader need it.
#[derive(Debug, Clone)]
pub struct Grouped {
    pub service: String,
    pub raised_at_ms: i64,
    /// (feature, detector) of its evidence.
    pub evidence: Vec<(String, String)>,
}

/// Runs the engine over a scenario in event time (windows as they close,
/// the heap series beside its service's windows) and returns the
/// incidents it raised, oldest first.
pub fn run(s: &Scenario, config: &EngineConfig) -> Result<Vec<Grouped>, BaselineError> {
    let mut engine = Engine::new(config.clone());
    let mut windower = Windower::new(WindowConfig::default())?;
    let mut windows: Vec<FeatureWindow> = Vec::new();
    let mut heap = s.heap.iter().peekable();
    let none = Default::default();
    let mut feed = |engine: &mut Engine, windows: &mut Vec<FeatureWindow>| {
        for w in windows.drain(..) {
            engine.observe_window(&w);
            if w.is_aggregate() {
                while let Some(&&(t, x)) = heap.peek() {
                    if t >= w.end_ms {
                        break;
                    }
                    heap.next();
                    engine.observe_resource(
                        &s.service,
                        "heap_bytes",
                        FeatureKind::Memory,
                        t,
                        x,
                        &none,
                    );
                }
            }
        }
    };
    for e in &s.events {
        windower.push(e, &mut windows);
        feed(&mut engine, &mut windows);
    }
    windower.flush(&mut windows);
    feed(&mut engine, &mut windows);
    let mut out: Vec<Grouped> = engine
        .incidents()
        .into_iter()
        .map(|i| Grouped {
            service: i.service.clone(),
            raised_at_ms: i.raised_at_ms,
            evidence: i
                .findings
                .iter()
                .map(|e| (e.feature.clone(), e.detector.clone()))
                .collect(),
        })
        .collect();
    out.sort_by_key(|g| g.raised_at_ms);
    Ok(out)
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
