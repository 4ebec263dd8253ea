//! What the autopilot's conditions read, gathered once per tick before the
//! executor is locked (the sources can be slow: a Prometheus query, a
//! store scan), so the actions API never waits on them.
//!
//! - Built-in metrics (`p50` ... `p999` in seconds, `rps`, `error_rate`)
//!   and their baselines come from the baseline engine's last window of
//!   the target's service (`--baseline-config`).
//! - `hotspot("f")` and `hotspot` signals: the function's share of the
//!   service's CPU samples in the store over the last minute.
//! - `prometheus` signals: an instant query (`--prometheus URL`).
//! - `baseline` signals: a baseline engine feature by name.
//! - `alert("X").firing` and `alert` signals: the Alertmanager inbox and
//!   the baseline engine's alerts, for this target.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sources::{
    log_notices, BaselineSource, Clock, MetricSource, Notices, ProfileSource, SystemClock,
};
use super::{lock, AutopilotHandle};
use crate::door::Via;
use crate::executor::TargetEnvs;
use crate::ops::Trigger;
use crate::{Env, Policy, SignalSource, TargetKind, TargetRef, Value};

/// A window older than this is no longer the service's current state.
const STALE_MS: i64 = 120_000;
/// The span `hotspot` shares are computed over.
const HOTSPOT_SPAN_MS: i64 = 60_000;
/// How long a hotspot share or a Prometheus answer is reused.
const HOTSPOT_TTL: Duration = Duration::from_secs(10);
const PROMETHEUS_TTL: Duration = Duration::from_secs(5);
const CPU_TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// Label names that say which service an alert is about. An alert
/// concerns a target when any of its label values is the target's name;
/// otherwise, one with any of these labels is about something else, and
/// one with none of them concerns every target. Prometheus's `job` and
/// `instance` are not among them: every scraped series has them, named
/// after scrape configs rather than services.
const TARGET_LABELS: [&str; 5] = ["service", "service_name", "app", "deployment", "unit"];

/// The baseline engine's feature behind each built-in metric, and the
/// factor that turns it into the condition language's unit.
const BUILTIN_FEATURES: [(&str, &str, f64); 6] = [
    ("p50", "latency_p50_ms", 1e-3),
    ("p90", "latency_p90_ms", 1e-3),
    ("p99", "latency_p99_ms", 1e-3),
    ("p999", "latency_p999_ms", 1e-3),
    ("rps", "requests_per_s", 1.0),
    ("error_rate", "errors", 1.0),
];

/// The service name a target's metrics and profiles are filed under: a
/// systemd unit's name without `.service`, otherwise the name itself.
pub fn service_of(target: &TargetRef) -> &str {
    match target.kind {
        TargetKind::SystemdUnit => target.name.strip_suffix(".service").unwrap_or(&target.name),
        _ => &target.name,
    }
}

/// Where values come from; each is optional. The clock is the system's
/// unless one is given; notices are logged unless told where to go.
pub struct Sources {
    pub baseline: Option<Arc<dyn BaselineSource>>,
    pub profiles: Option<Arc<dyn ProfileSource>>,
    pub metrics: Option<Arc<dyn MetricSource>>,
    pub clock: Arc<dyn Clock>,
    pub notices: Notices,
    cache: Mutex<BTreeMap<String, (Instant, Option<f64>)>>,
}

impl Sources {
    pub fn new(
        baseline: Option<Arc<dyn BaselineSource>>,
        profiles: Option<Arc<dyn ProfileSource>>,
        metrics: Option<Arc<dyn MetricSource>>,
    ) -> Self {
        Sources {
            baseline,
            profiles,
            metrics,
            clock: Arc::new(SystemClock),
            notices: log_notices(),
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_notices(mut self, notices: Notices) -> Self {
        self.notices = notices;
        self
    }

    fn cached(&self, key: String, ttl: Duration, f: impl FnOnce() -> Option<f64>) -> Option<f64> {
        if let Some((at, v)) = lock(&self.cache).get(&key) {
            if at.elapsed() < ttl {
                return *v;
            }
        }
        let v = f();
        let mut cache = lock(&self.cache);
        cache.retain(|_, (at, _)| at.elapsed() < ttl.max(HOTSPOT_TTL));
        cache.insert(key, (Instant::now(), v));
        v
    }

    fn hotspot(&self, service: &str, function: &str, now_ms: i64) -> Option<f64> {
        let source = self.profiles.as_ref()?;
        self.cached(
            format!("h\u{1f}{service}\u{1f}{function}"),
            HOTSPOT_TTL,
            || {
                let from = now_ms - HOTSPOT_SPAN_MS;
                let sum = |f: Option<&str>| -> Option<f64> {
                    let sums = source
                        .sums(service, CPU_TYPE, f, from, now_ms, HOTSPOT_SPAN_MS)
                        .ok()?;
                    Some(sums.iter().map(|(_, v)| v).sum())
                };
                let total = sum(None).filter(|t| *t > 0.0)?;
                // A failed read is unknown, not a share of 0: it must not
                // make an impact check read "better".
                Some(sum(Some(function))? / total)
            },
        )
    }

    fn prometheus(&self, query: &str, now_ms: i64) -> Option<f64> {
        let metrics = self.metrics.as_ref()?;
        self.cached(format!("p\u{1f}{query}"), PROMETHEUS_TTL, || {
            match metrics.query(query, now_ms) {
                // Several series: the largest, the one a condition about
                // "too high" cares for.
                Ok(series) => series.into_iter().reduce(f64::max),
                Err(e) => {
                    tracing::warn!(query, error = %e, "autopilot signal query failed");
                    None
                }
            }
        })
    }
}

/// One alert as the conditions see it.
pub struct SeenAlert {
    name: String,
    firing: bool,
    labels: BTreeMap<String, String>,
}

/// Every alert known now, each once: the baseline engine's (from its
/// snapshot) and Alertmanager's (admitted by the webhook) meet at the
/// door, where the same alert by both ways is one.
pub fn alerts(
    handle: &AutopilotHandle,
    baseline: Option<&dyn BaselineSource>,
    now_ms: i64,
) -> Vec<SeenAlert> {
    let current = baseline.map(|b| b.alerts());
    let mut ap = lock(&handle.0);
    if let Some(current) = &current {
        let current = current
            .iter()
            .map(|a| (&a.labels, a.firing, a.starts_at_ms));
        ap.door.sync(Via::Baseline, current, now_ms);
    }
    ap.door
        .alerts()
        .filter_map(|a| {
            Some(SeenAlert {
                name: a.name()?.to_string(),
                firing: a.firing,
                labels: a.labels.clone(),
            })
        })
        .collect()
}

fn concerns(labels: &BTreeMap<String, String>, target: &TargetRef) -> bool {
    let service = service_of(target);
    labels
        .iter()
        .any(|(k, v)| k != "alertname" && (*v == target.name || v == service))
        || !TARGET_LABELS.iter().any(|l| labels.contains_key(*l))
}

/// The values of one policy's conditions at one tick.
#[derive(Debug, Clone, Default)]
pub struct PolicyValues {
    pub values: BTreeMap<String, Value>,
    pub hotspots: BTreeMap<String, f64>,
    /// Alert names seen for this target, and the firing ones.
    pub known: BTreeSet<String>,
    pub firing: BTreeSet<String>,
    pub trigger: Trigger,
}

impl Env for PolicyValues {
    fn value(&self, name: &str) -> Option<Value> {
        self.values.get(name).copied()
    }
    fn alert_firing(&self, name: &str) -> Option<bool> {
        // An alert never seen is unknown, so `not alert(..)` does not hold
        // before any alert of that name arrived.
        self.known
            .contains(name)
            .then(|| self.firing.contains(name))
    }
    fn hotspot(&self, function: &str) -> Option<f64> {
        self.hotspots.get(function).copied()
    }
}

impl PolicyValues {
    /// Every number read, by the name a condition reads it under
    /// (`p99`, `hot`, `hotspot("f")`): what the impact check follows.
    pub fn numbers(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        let values = self.values.iter().filter_map(|(k, v)| match v {
            Value::Number(x) if !k.starts_with("baseline.") => Some((k.clone(), *x)),
            _ => None,
        });
        let hot = self
            .hotspots
            .iter()
            .map(|(f, x)| (format!("hotspot({f:?})"), *x));
        values.chain(hot)
    }
}

/// Gathers what `policy`'s conditions and signals read.
pub fn gather(
    sources: &Sources,
    alerts: &[SeenAlert],
    policy: &Policy,
    now_ms: i64,
) -> PolicyValues {
    let target = &policy.target;
    let service = service_of(target);
    let mut out = PolicyValues::default();
    let mut alert_names: Vec<String> = Vec::new();
    let mut hot: Vec<String> = Vec::new();
    for a in &policy.actions {
        for (f, arg) in a.condition.calls() {
            match f.as_str() {
                "hotspot" => hot.push(arg.clone()),
                _ => alert_names.push(arg.clone()),
            }
        }
    }
    for s in &policy.signals {
        match &s.source {
            SignalSource::Hotspot { function } => {
                if let Some(x) = sources.hotspot(service, function, now_ms) {
                    out.values.insert(s.name.clone(), Value::Number(x));
                }
            }
            SignalSource::Prometheus { query } => {
                if let Some(x) = sources.prometheus(query, now_ms) {
                    out.values.insert(s.name.clone(), Value::Number(x));
                }
            }
            SignalSource::Baseline { feature } => {
                if let Some(e) = &sources.baseline {
                    if let Some((t, x)) = e.latest(service, feature) {
                        if now_ms - t <= STALE_MS {
                            out.values.insert(s.name.clone(), Value::Number(x));
                        }
                    }
                    if let Some(x) = e.expected(service, feature, now_ms) {
                        out.values
                            .insert(format!("baseline.{}", s.name), Value::Number(x));
                    }
                }
            }
            SignalSource::Alert { alert_name } => alert_names.push(alert_name.clone()),
        }
    }
    for f in hot {
        if let Some(x) = sources.hotspot(service, &f, now_ms) {
            out.hotspots.insert(f, x);
        }
    }
    if let Some(e) = &sources.baseline {
        for (name, feature, scale) in BUILTIN_FEATURES {
            if let Some((t, x)) = e.latest(service, feature) {
                if now_ms - t <= STALE_MS {
                    out.values.insert(name.into(), Value::Number(x * scale));
                }
            }
            if let Some(x) = e.expected(service, feature, now_ms) {
                out.values
                    .insert(format!("baseline.{name}"), Value::Number(x * scale));
            }
        }
    }
    let mut trigger = None;
    for a in alerts {
        if !concerns(&a.labels, target) {
            continue;
        }
        out.known.insert(a.name.clone());
        if a.firing {
            out.firing.insert(a.name.clone());
            // The trigger: an alert the conditions name, else any firing
            // alert about the target.
            let named = alert_names.contains(&a.name);
            match &trigger {
                Some((true, _)) => {}
                Some((false, _)) if !named => {}
                _ => trigger = Some((named, a)),
            }
        }
    }
    for s in &policy.signals {
        if let SignalSource::Alert { alert_name } = &s.source {
            if out.known.contains(alert_name) {
                out.values
                    .insert(s.name.clone(), Value::Bool(out.firing.contains(alert_name)));
            }
        }
    }
    out.trigger = Trigger {
        alert: trigger.map(|(_, a)| a.name.clone()),
        target: target.name.clone(),
        labels: trigger.map(|(_, a)| a.labels.clone()).unwrap_or_default(),
    };
    out
}

/// The values of every policy at one tick, by policy name.
pub struct Snapshot(pub BTreeMap<String, PolicyValues>);

impl TargetEnvs for Snapshot {
    fn env(&self, _: &TargetRef) -> Option<&dyn Env> {
        None
    }
    fn env_for(&self, policy: &Policy) -> Option<&dyn Env> {
        self.0.get(&policy.name).map(|v| v as &dyn Env)
    }
    fn trigger_for(&self, policy: &Policy) -> Trigger {
        self.0
            .get(&policy.name)
            .map(|v| v.trigger.clone())
            .unwrap_or_else(|| Trigger {
                alert: None,
                target: policy.target.name.clone(),
                labels: BTreeMap::new(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: TargetKind, name: &str) -> TargetRef {
        TargetRef {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn alerts_concern_the_target_they_name_or_all_when_they_name_none() {
        let t = target(TargetKind::SystemdUnit, "checkout.service");
        let l = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(concerns(&l("service", "checkout"), &t));
        assert!(concerns(&l("unit", "checkout.service"), &t));
        assert!(!concerns(&l("service", "search"), &t));
        assert!(concerns(&l("severity", "critical"), &t));
        // Prometheus's job names a scrape config, not a service.
        assert!(concerns(&l("job", "node"), &t));
        assert!(concerns(&l("process", "checkout"), &t));
        assert_eq!(service_of(&t), "checkout");
    }
}
