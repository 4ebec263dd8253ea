//! What one query may cost, and running queries within it: a bounded
//! number at once, each answered within a deadline, and every parameter
//! checked before the store is touched.

use std::sync::Arc;
use std::time::Duration;

use perfpilot_store::SeriesLimits;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};

/// Limits on queries (`/api/v1/*` reads, Grafana's querier and render).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Groups and groups × steps of a time series
    /// (`--max-query-groups`, `--max-query-points`).
    pub series: SeriesLimits,
    /// Most nodes a flame graph may be asked for (`--max-flame-nodes`).
    pub max_flame_nodes: usize,
    /// A query not answered by then gets 503 (`--query-timeout`).
    pub timeout: Duration,
    /// Queries computed at once; more wait for a slot within their
    /// timeout (`--max-concurrent-queries`).
    pub max_concurrent: usize,
}

/// Flame graphs' node budget when the request names none (Pyroscope's).
pub const DEFAULT_MAX_NODES: usize = 8192;

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            series: SeriesLimits::default(),
            // The web UI asks for at most 65,536 (16 a pixel); Grafana's
            // default is 16,384.
            max_flame_nodes: 65_536,
            timeout: Duration::from_secs(60),
            max_concurrent: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
        }
    }
}

/// Slots for queries computing now.
#[derive(Debug, Clone)]
pub(crate) struct QuerySlots {
    slots: Arc<Semaphore>,
    limits: QueryLimits,
}

impl QuerySlots {
    pub(crate) fn new(limits: &QueryLimits) -> QuerySlots {
        QuerySlots {
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            limits: limits.clone(),
        }
    }

    /// Runs a blocking query off the async threads once a slot is free,
    /// answering 503 when no slot frees or the work does not finish within
    /// the timeout. Work cut off by the deadline still finishes in the
    /// background (a store scan cannot be interrupted), holding its slot
    /// until then: abandoned queries never pile up beyond the slots.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        self.run_with(f).await
    }

    /// [`QuerySlots::run`] with an error type of the caller's.
    pub(crate) async fn run_with<T: Send + 'static, E: From<ApiError> + Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let deadline = Instant::now() + self.limits.timeout;
        let timeout = humantime(self.limits.timeout);
        let permit = match tokio::time::timeout_at(
            deadline,
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(ApiError::internal("the query slots are closed").into()),
            Err(_) => {
                return Err(E::from(ApiError::unavailable(format!(
                    "the server is busy: {} queries were running for all of the {timeout} \
                         a query may take (--max-concurrent-queries, --query-timeout); retry later",
                    self.limits.max_concurrent
                ))))
            }
        };
        let task = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            f()
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => Err(ApiError::internal(format!("a query failed: {e}")).into()),
            Err(_) => Err(ApiError::unavailable(format!(
                "the query took longer than {timeout} (--query-timeout): narrow the time range \
                 or the selector"
            ))
            .into()),
        }
    }
}

/// `5s`, `2m`, `1.5s`: a duration as the flags take it.
pub(crate) fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A flame graph's node budget from the native API's `max_nodes`: a whole
/// number from 1 to the limit; absent means [`DEFAULT_MAX_NODES`].
pub(crate) fn native_max_nodes(param: Option<&str>, limit: usize) -> ApiResult<usize> {
    let Some(text) = param else {
        return Ok(DEFAULT_MAX_NODES.min(limit));
    };
    let n: i64 = text
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("max_nodes {text:?} is not a whole number")))?;
    check_max_nodes("max_nodes", n, limit)
}

/// Grafana's `maxNodes` (Connect and render), as Pyroscope reads it: 0 or
/// absent is the default, a negative number (Pyroscope's "unlimited") and
/// anything over the limit are refused.
pub(crate) fn grafana_max_nodes(param: Option<i64>, limit: usize) -> ApiResult<usize> {
    match param {
        None | Some(0) => Ok(DEFAULT_MAX_NODES.min(limit)),
        Some(n) => check_max_nodes("maxNodes", n, limit),
    }
}

fn check_max_nodes(name: &str, n: i64, limit: usize) -> ApiResult<usize> {
    if n < 1 {
        return Err(ApiError::bad_request(format!(
            "{name} is {n}: it must be from 1 to {limit} (unlimited flame graphs are not \
             served; the limit is --max-flame-nodes)"
        )));
    }
    match usize::try_from(n) {
        Ok(n) if n <= limit => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "{name} is {n}, over the limit of {limit} nodes (--max-flame-nodes)"
        ))),
    }
}

/// How many steps of `step_ms` a range holds, refused past the points
/// limit before anything is read.
pub(crate) fn check_steps(range_ms: i64, step_ms: i64, limits: &SeriesLimits) -> ApiResult<()> {
    if step_ms <= 0 {
        return Err(ApiError::bad_request("step must be positive"));
    }
    let steps = (i128::from(range_ms.max(0)) + i128::from(step_ms) - 1) / i128::from(step_ms);
    if steps > limits.max_points as i128 {
        return Err(ApiError::bad_request(format!(
            "the range holds {steps} steps of {step_ms} ms, more than the {} points a time \
             series may have (--max-query-points): use a larger step or a shorter range",
            limits.max_points
        )));
    }
    Ok(())
}

/// `[a-zA-Z_][a-zA-Z0-9_.]*`, as label names are stored.
pub(crate) fn check_label_name(what: &str, name: &str) -> ApiResult<()> {
    let mut bytes = name.bytes();
    let first_ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
        return Err(ApiError::bad_request(format!(
            "{what}: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_.]*)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_nodes_native_and_grafana() {
        assert_eq!(native_max_nodes(None, 100).unwrap(), 100);
        assert_eq!(native_max_nodes(None, 65_536).unwrap(), DEFAULT_MAX_NODES);
        assert_eq!(native_max_nodes(Some("50"), 100).unwrap(), 50);
        for bad in ["0", "-1", "101", "x", "99999999999999999999"] {
            assert!(native_max_nodes(Some(bad), 100).is_err(), "{bad}");
        }
        assert_eq!(
            grafana_max_nodes(Some(0), 65_536).unwrap(),
            DEFAULT_MAX_NODES
        );
        assert_eq!(grafana_max_nodes(None, 65_536).unwrap(), DEFAULT_MAX_NODES);
        let err = grafana_max_nodes(Some(-1), 65_536).unwrap_err();
        assert!(err.message.contains("--max-flame-nodes"), "{}", err.message);
        assert!(grafana_max_nodes(Some(65_537), 65_536).is_err());
    }

    #[test]
    fn steps_past_the_points_limit() {
        let l = SeriesLimits {
            max_groups: 10,
            max_points: 100,
        };
        assert!(check_steps(100_000, 1000, &l).is_ok());
        let err = check_steps(100_001, 1000, &l).unwrap_err();
        assert!(err.message.contains("101 steps"), "{}", err.message);
        assert!(check_steps(i64::MAX, 1, &l).is_err());
        assert!(check_steps(1000, 0, &l).is_err());
    }

    #[test]
    fn durations_as_flags_take_them() {
        assert_eq!(humantime(Duration::from_secs(60)), "1m");
        assert_eq!(humantime(Duration::from_secs(30)), "30s");
        assert_eq!(humantime(Duration::from_millis(1500)), "1500ms");
    }
}
