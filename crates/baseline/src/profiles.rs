//! perfpilot's own profile store as a source: a service's CPU (cores used)
//! and the share of that CPU spent in chosen functions, per window.
//!
//! The store lives in the server; it is reached through [`ProfileSource`]
//! so this crate does not depend on it.

use serde::Deserialize;

use crate::detectors::FeatureKind;
use crate::error::BaselineError;

/// `[[profiles]]` in the watch config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFeatures {
    /// The `service_name` label of the profiles.
    pub service: String,
    /// Functions whose share of the service's CPU is a feature each.
    #[serde(default)]
    pub functions: Vec<String>,
    /// The profile type read (CPU time by default).
    #[serde(default = "cpu_type")]
    pub profile_type: String,
}

fn cpu_type() -> String {
    "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into()
}

/// Sums of sample values per step, as the store answers them.
pub trait ProfileSource: Send {
    /// `(step start ms, summed value)` for `service`'s profiles of
    /// `profile_type` in `[from_ms, until_ms)`, only stacks containing
    /// `function` when one is given. Steps without samples are left out.
    fn sums(
        &self,
        service: &str,
        profile_type: &str,
        function: Option<&str>,
        from_ms: i64,
        until_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<(i64, f64)>, BaselineError>;
}

/// One feature value of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSample {
    pub service: String,
    pub feature: String,
    pub kind: FeatureKind,
    pub t_ms: i64,
    pub value: f64,
}

/// The features of `[from_ms, until_ms)` in `step_ms` windows: `cpu_cores`
/// (CPU nanoseconds per window over the window's length) and
/// `cpu_share:FUNCTION` (its stacks' share of the service's CPU). Windows
/// without any sample give nothing: no data is not zero CPU.
pub fn sample(
    source: &dyn ProfileSource,
    features: &ProfileFeatures,
    from_ms: i64,
    until_ms: i64,
    step_ms: i64,
) -> Result<Vec<ProfileSample>, BaselineError> {
    let total = source.sums(
        &features.service,
        &features.profile_type,
        None,
        from_ms,
        until_ms,
        step_ms,
    )?;
    let nanos = features.profile_type.split(':').nth(2) == Some("nanoseconds");
    let mut out = Vec::new();
    for &(t, v) in &total {
        let value = if nanos { v / (step_ms as f64 * 1e6) } else { v };
        out.push(ProfileSample {
            service: features.service.clone(),
            feature: if nanos {
                "cpu_cores".into()
            } else {
                "profile_total".into()
            },
            kind: if nanos {
                FeatureKind::Cpu
            } else {
                FeatureKind::Gauge
            },
            t_ms: t,
            value,
        });
    }
    for f in &features.functions {
        let part = source.sums(
            &features.service,
            &features.profile_type,
            Some(f),
            from_ms,
            until_ms,
            step_ms,
        )?;
        let mut j = 0;
        for &(t, v) in &total {
            while j < part.len() && part[j].0 < t {
                j += 1;
            }
            let p = part
                .get(j)
                .filter(|(pt, _)| *pt == t)
                .map_or(0.0, |(_, x)| *x);
            if v > 0.0 {
                out.push(ProfileSample {
                    service: features.service.clone(),
                    feature: format!("cpu_share:{f}"),
                    kind: FeatureKind::Cpu,
                    t_ms: t,
                    value: p / v,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl ProfileSource for Fake {
        fn sums(
            &self,
            _service: &str,
            _profile_type: &str,
            function: Option<&str>,
            _from_ms: i64,
            _until_ms: i64,
            _step_ms: i64,
        ) -> Result<Vec<(i64, f64)>, BaselineError> {
            Ok(match function {
                None => vec![(0, 20e9), (10_000, 10e9), (30_000, 5e9)],
                Some("hot") => vec![(0, 5e9), (30_000, 5e9)],
                Some(_) => vec![],
            })
        }
    }

    #[test]
    fn cores_and_shares_per_window() {
        let f = ProfileFeatures {
            service: "checkout".into(),
            functions: vec!["hot".into()],
            profile_type: cpu_type(),
        };
        let s = sample(&Fake, &f, 0, 40_000, 10_000).unwrap();
        let get = |feature: &str| -> Vec<(i64, f64)> {
            s.iter()
                .filter(|x| x.feature == feature)
                .map(|x| (x.t_ms, x.value))
                .collect()
        };
        // 20 s of CPU in 10 s is two cores; the gap at 20 s gives nothing.
        assert_eq!(
            get("cpu_cores"),
            vec![(0, 2.0), (10_000, 1.0), (30_000, 0.5)]
        );
        assert_eq!(
            get("cpu_share:hot"),
            vec![(0, 0.25), (10_000, 0.0), (30_000, 1.0)]
        );
    }
}
