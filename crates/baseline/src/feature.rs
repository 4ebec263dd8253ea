//! Feature names, typed. The engine names a feature with a string
//! (`latency_p99_ms`, `/search errors`, `cpu_share:encrypt`): the key of
//! its saved baselines and the `feature` label of its alerts, which stay
//! as they are. [`FeatureKey`] is what such a name means (its scope and
//! its metric), built by the engine and sent beside the string in the
//! API, so no reader has to split the string again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A feature: the service as a whole or one of its endpoints, and what is
/// measured.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FeatureKey {
    /// None: the service as a whole.
    pub endpoint: Option<String>,
    pub metric: Metric,
}

/// What a feature measures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Metric {
    /// A latency quantile in milliseconds (`latency_p99_ms`): `quantile`
    /// holds the digits after the `p` (`50`, `99`, `999` for 99.9).
    LatencyQuantile { quantile: String },
    /// Requests per second (`requests_per_s`).
    RequestRate,
    /// The share of requests that failed (`errors`).
    ErrorRate,
    /// CPU cores used, from perfpilot's profiles (`cpu_cores`).
    CpuCores,
    /// A function's share of the service's CPU (`cpu_share:NAME`).
    CpuShare { function: String },
    /// Another metric per 1,000 requests (`NAME_per_1k_requests`).
    PerThousandRequests { of: Box<Metric> },
    /// A series named in the config (Prometheus), as named.
    Named { name: String },
}

const PER_1K: &str = "_per_1k_requests";

impl Metric {
    /// The metric a feature name (without its endpoint) names.
    pub fn parse(name: &str) -> Metric {
        if let Some(q) = name
            .strip_prefix("latency_p")
            .and_then(|r| r.strip_suffix("_ms"))
            .filter(|q| !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()))
        {
            return Metric::LatencyQuantile {
                quantile: q.to_string(),
            };
        }
        if let Some(f) = name.strip_prefix("cpu_share:") {
            return Metric::CpuShare {
                function: f.to_string(),
            };
        }
        match name {
            "requests_per_s" => return Metric::RequestRate,
            "errors" => return Metric::ErrorRate,
            "cpu_cores" => return Metric::CpuCores,
            _ => {}
        }
        match name.strip_suffix(PER_1K).filter(|b| !b.is_empty()) {
            Some(base) => Metric::PerThousandRequests {
                of: Box::new(Metric::parse(base)),
            },
            None => Metric::Named {
                name: name.to_string(),
            },
        }
    }

    /// What the engine keeps per endpoint as well as per service.
    fn per_endpoint(&self) -> bool {
        matches!(
            self,
            Metric::LatencyQuantile { .. } | Metric::RequestRate | Metric::ErrorRate
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::LatencyQuantile { quantile } => write!(f, "latency_p{quantile}_ms"),
            Metric::RequestRate => f.write_str("requests_per_s"),
            Metric::ErrorRate => f.write_str("errors"),
            Metric::CpuCores => f.write_str("cpu_cores"),
            Metric::CpuShare { function } => write!(f, "cpu_share:{function}"),
            Metric::PerThousandRequests { of } => write!(f, "{of}{PER_1K}"),
            Metric::Named { name } => f.write_str(name),
        }
    }
}

impl FeatureKey {
    pub fn service(metric: Metric) -> FeatureKey {
        FeatureKey {
            endpoint: None,
            metric,
        }
    }

    pub fn endpoint(endpoint: impl Into<String>, metric: Metric) -> FeatureKey {
        FeatureKey {
            endpoint: Some(endpoint.into()),
            metric,
        }
    }

    /// What a feature name means: `ENDPOINT METRIC` for the metrics kept
    /// per endpoint, else a service-wide metric.
    pub fn parse(feature: &str) -> FeatureKey {
        if !feature.starts_with("cpu_share:") {
            if let Some((endpoint, name)) = feature.rsplit_once(' ') {
                let metric = Metric::parse(name);
                if !endpoint.is_empty() && metric.per_endpoint() {
                    return FeatureKey::endpoint(endpoint, metric);
                }
            }
        }
        FeatureKey::service(Metric::parse(feature))
    }
}

/// The feature's name, as the engine keys it and labels its alerts.
impl fmt::Display for FeatureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Some(e) => write!(f, "{e} {}", self.metric),
            None => write!(f, "{}", self.metric),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_keys_and_back() {
        let q = |d: &str| Metric::LatencyQuantile { quantile: d.into() };
        for (name, key) in [
            ("latency_p99_ms", FeatureKey::service(q("99"))),
            (
                "/search latency_p999_ms",
                FeatureKey::endpoint("/search", q("999")),
            ),
            (
                "/a b errors",
                FeatureKey::endpoint("/a b", Metric::ErrorRate),
            ),
            (
                "/x requests_per_s",
                FeatureKey::endpoint("/x", Metric::RequestRate),
            ),
            ("cpu_cores", FeatureKey::service(Metric::CpuCores)),
            (
                "cpu_share:encrypt data",
                FeatureKey::service(Metric::CpuShare {
                    function: "encrypt data".into(),
                }),
            ),
            (
                "cpu_cores_per_1k_requests",
                FeatureKey::service(Metric::PerThousandRequests {
                    of: Box::new(Metric::CpuCores),
                }),
            ),
            (
                "gc{instance=a b}",
                FeatureKey::service(Metric::Named {
                    name: "gc{instance=a b}".into(),
                }),
            ),
            (
                "latency_p_ms",
                FeatureKey::service(Metric::Named {
                    name: "latency_p_ms".into(),
                }),
            ),
        ] {
            assert_eq!(FeatureKey::parse(name), key, "{name}");
            assert_eq!(key.to_string(), name);
        }
    }

    #[test]
    fn keys_are_objects_in_json() {
        let k = FeatureKey::endpoint(
            "/search",
            Metric::LatencyQuantile {
                quantile: "99".into(),
            },
        );
        assert_eq!(
            serde_json::to_value(&k).unwrap(),
            serde_json::json!({
                "endpoint": "/search",
                "metric": {"kind": "latency_quantile", "quantile": "99"}
            })
        );
    }
}
