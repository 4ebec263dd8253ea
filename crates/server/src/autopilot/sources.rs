//! The autopilot runtime's sources, as the server has them: the baseline
//! engine's feed, the profile store and Prometheus.

use std::sync::Arc;

use perfpilot_autopilot::runtime::sources::{
    BaselineAlert, BaselineSource, MetricSource, ProfileSource, RaisedAlert, SourceError,
};
pub use perfpilot_autopilot::runtime::Sources;
use perfpilot_baseline::detectors::{Finding, Severity};
use perfpilot_baseline::feed::Command;
use perfpilot_baseline::prom::Prometheus;
use perfpilot_store::Store;

use crate::{AlertsHandle, StoreProfiles};

/// The runtime's sources: the baseline engine (its snapshot, and commands
/// for the autopilot's own alerts), the store's profiles for hotspots and
/// Prometheus for `prometheus` signals; each optional.
pub fn sources(
    baseline: Option<AlertsHandle>,
    store: Option<Arc<dyn Store>>,
    prometheus: Option<Prometheus>,
) -> Sources {
    Sources::new(
        baseline.map(|b| Arc::new(b) as Arc<dyn BaselineSource>),
        store.map(|s| Arc::new(StoreProfiles(s)) as Arc<dyn ProfileSource>),
        prometheus.map(|p| Arc::new(PrometheusMetrics(p)) as Arc<dyn MetricSource>),
    )
}

impl BaselineSource for AlertsHandle {
    fn alerts(&self) -> Vec<BaselineAlert> {
        self.0
            .snapshot()
            .incidents()
            .iter()
            .map(|a| BaselineAlert {
                labels: a.labels.clone(),
                firing: a.firing(),
                starts_at_ms: a.starts_at_ms,
            })
            .collect()
    }

    fn latest(&self, service: &str, feature: &str) -> Option<(i64, f64)> {
        self.0.snapshot().latest(service, feature)
    }

    fn expected(&self, service: &str, feature: &str, t_ms: i64) -> Option<f64> {
        self.0.snapshot().expected(service, feature, t_ms)
    }

    fn resolve_after(&self) -> u32 {
        self.0.snapshot().resolve_after
    }

    fn raise(&self, a: RaisedAlert) -> Result<(), SourceError> {
        let findings: Vec<Finding> = a
            .at_ms
            .map(|at_ms| Finding {
                detector: a.detector.clone(),
                feature: a.feature.clone(),
                score: 1.0,
                severity: if a.critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                observed: 0.0,
                expected: None,
                since_ms: a.since_ms,
                at_ms,
                message: a.message.clone(),
            })
            .into_iter()
            .collect();
        let now_ms = a.at_ms.unwrap_or_else(crate::now_ms);
        self.0
            .send(Command::Raise {
                service: a.service,
                feature: a.feature,
                labels: a.labels,
                findings,
                now_ms,
            })
            .map_err(|e| SourceError(e.to_string()))
    }
}

impl ProfileSource for StoreProfiles {
    fn sums(
        &self,
        service: &str,
        profile_type: &str,
        function: Option<&str>,
        from_ms: i64,
        until_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<(i64, f64)>, SourceError> {
        perfpilot_baseline::profiles::ProfileSource::sums(
            self,
            service,
            profile_type,
            function,
            from_ms,
            until_ms,
            step_ms,
        )
        .map_err(|e| SourceError(e.to_string()))
    }
}

/// Prometheus's instant queries.
struct PrometheusMetrics(Prometheus);

impl MetricSource for PrometheusMetrics {
    fn query(&self, query: &str, at_ms: i64) -> Result<Vec<f64>, SourceError> {
        self.0
            .query(query, at_ms)
            .map(|series| series.into_iter().map(|(_, v)| v).collect())
            .map_err(|e| SourceError(e.to_string()))
    }
}
