//! The store as the baseline engine's profile source.

use std::sync::Arc;

use perfpilot_baseline::profiles::ProfileSource;
use perfpilot_baseline::BaselineError;
use perfpilot_store::{MatchOp, Matcher, Selector, Store, TimeRange, PROFILE_TYPE_LABEL};

/// Answers [`ProfileSource`] from a store.
pub struct StoreProfiles(pub Arc<dyn Store>);

impl ProfileSource for StoreProfiles {
    fn sums(
        &self,
        service: &str,
        profile_type: &str,
        function: Option<&str>,
        from_ms: i64,
        until_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<(i64, f64)>, BaselineError> {
        let bad = |e: String| BaselineError::invalid(format!("profiles of {service}"), e);
        let sel = Selector {
            matchers: vec![
                Matcher::new("service_name", MatchOp::Eq, service)
                    .map_err(|e| bad(e.to_string()))?,
                Matcher::new(PROFILE_TYPE_LABEL, MatchOp::Eq, profile_type)
                    .map_err(|e| bad(e.to_string()))?,
            ],
        };
        let range = TimeRange {
            start_ms: from_ms,
            end_ms: until_ms,
        };
        let groups = self
            .0
            .time_series(&sel, range, step_ms, &[], function, &Default::default())
            .map_err(|e| bad(e.to_string()))?;
        let mut sums: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
        for g in groups {
            for (t, v) in g.points {
                *sums.entry(t).or_default() += v as f64;
            }
        }
        Ok(sums.into_iter().collect())
    }
}
