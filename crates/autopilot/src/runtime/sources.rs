//! What the runtime reads from outside, as traits: the server implements
//! them over the baseline engine, its store and Prometheus; tests fake
//! them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source that could not answer; the value read is then unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The time, in Unix milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// One alert of the baseline engine, as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineAlert {
    pub labels: BTreeMap<String, String>,
    pub firing: bool,
    pub starts_at_ms: i64,
}

/// An alert the autopilot raises about its own action (one that made
/// its target worse), to go out with the baseline engine's alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedAlert {
    pub service: String,
    /// What it is about (`autopilot POLICY/ACTION`): one alert per
    /// service and feature.
    pub feature: String,
    pub labels: BTreeMap<String, String>,
    /// The detector's name (`autopilot_made_worse`), which names the
    /// alert.
    pub detector: String,
    pub critical: bool,
    pub message: String,
    pub since_ms: i64,
    /// None: a quiet update (it no longer fires; it resolves after
    /// [`BaselineSource::resolve_after`] of them).
    pub at_ms: Option<i64>,
}

/// perfpilot's baseline engine: its alerts, the last value and the
/// expected value of each feature, and where the autopilot's own alerts
/// go.
pub trait BaselineSource: Send + Sync {
    /// Every alert it holds now.
    fn alerts(&self) -> Vec<BaselineAlert>;
    /// The feature's last value: (its window's start, the value).
    fn latest(&self, service: &str, feature: &str) -> Option<(i64, f64)>;
    /// What the feature's baseline expects at `t_ms`, once it knows.
    fn expected(&self, service: &str, feature: &str, t_ms: i64) -> Option<f64>;
    /// Quiet updates before a raised alert resolves.
    fn resolve_after(&self) -> u32;
    /// Raises (or keeps, or lets go quiet) one of the autopilot's alerts.
    fn raise(&self, alert: RaisedAlert) -> Result<(), SourceError>;
}

/// Profiles, for `hotspot` signals.
pub trait ProfileSource: Send + Sync {
    /// `(step start ms, summed value)` for `service`'s profiles of
    /// `profile_type` in `[from_ms, until_ms)`, only stacks containing
    /// `function` when one is given.
    fn sums(
        &self,
        service: &str,
        profile_type: &str,
        function: Option<&str>,
        from_ms: i64,
        until_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<(i64, f64)>, SourceError>;
}

/// Metric queries, for `prometheus` signals.
pub trait MetricSource: Send + Sync {
    /// The value of each series an instant query returns at `at_ms`.
    fn query(&self, query: &str, at_ms: i64) -> Result<Vec<f64>, SourceError>;
}

/// Operator-facing notices about the policy files (what was loaded, what
/// is invalid and why): the server prints them where its operator looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// A diagnostic line of a policy file (`FILE:LINE:COL: ...`).
    Diagnostic(&'a str),
    /// A sentence about the policies.
    Message(&'a str),
}

/// Where notices go.
pub type Notices = Arc<dyn Fn(Notice<'_>) + Send + Sync>;

/// Notices as log events.
pub fn log_notices() -> Notices {
    Arc::new(|n| match n {
        Notice::Diagnostic(d) => tracing::warn!(target: "perfpilot::autopilot", "{d}"),
        Notice::Message(m) => tracing::info!(target: "perfpilot::autopilot", "{m}"),
    })
}
