//! Prometheus as a source: `query` and `query_range` over its HTTP API,
//! retried with backoff when it is unreachable or overloaded, with errors
//! that name the server and the expression.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::BaselineError;

/// Labels of a series.
pub type Labels = BTreeMap<String, String>;

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSeries {
    pub labels: BTreeMap<String, String>,
    /// (Unix ms, value); NaN and ±Inf samples are left out.
    pub points: Vec<(i64, f64)>,
}

pub struct Prometheus {
    base: String,
    agent: ureq::Agent,
    /// Attempts after the first when the server cannot be reached or
    /// answers 5xx/429.
    pub retries: u32,
    pub backoff: Duration,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

fn sample(ts: f64, v: &str) -> Option<(i64, f64)> {
    let x: f64 = v.parse().ok()?;
    x.is_finite().then_some(((ts * 1000.0).round() as i64, x))
}

impl Prometheus {
    pub fn new(url: &str) -> Self {
        Prometheus {
            base: url.trim_end_matches('/').to_string(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .into(),
            retries: 3,
            backoff: Duration::from_millis(500),
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
        expr: &str,
    ) -> Result<Data, BaselineError> {
        let url = format!("{}{}", self.base, path);
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(wait);
                wait *= 2;
            }
            let mut req = self.agent.get(&url);
            for (k, v) in params {
                req = req.query(*k, v);
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(e) => {
                    last = format!("cannot reach it: {e}");
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let body = resp.into_body().read_to_string().unwrap_or_default();
            if status >= 500 || status == 429 {
                last = format!(
                    "answered {status}: {}",
                    body.chars().take(200).collect::<String>()
                );
                continue;
            }
            let env: Envelope = serde_json::from_str(&body).map_err(|e| {
                BaselineError::invalid(
                    &url,
                    format!("answered {status} with something that is not the Prometheus API: {e}"),
                )
            })?;
            if env.status != "success" {
                return Err(BaselineError::invalid(
                    format!("Prometheus at {}, query {expr:?}", self.base),
                    format!(
                        "{}: {}",
                        env.error_type.unwrap_or_else(|| "error".into()),
                        env.error.unwrap_or_default()
                    ),
                ));
            }
            return env
                .data
                .ok_or_else(|| BaselineError::invalid(&url, "a success without data"));
        }
        Err(BaselineError::invalid(
            format!("Prometheus at {}", self.base),
            format!("{last} (after {} attempts)", self.retries + 1),
        ))
    }

    /// `expr` over `[start_ms, end_ms]` every `step`.
    pub fn query_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step: Duration,
    ) -> Result<Vec<PromSeries>, BaselineError> {
        let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
        let data = self.get(
            "/api/v1/query_range",
            &[
                ("query", expr.to_string()),
                ("start", secs(start_ms)),
                ("end", secs(end_ms)),
                ("step", format!("{:.3}", step.as_secs_f64())),
            ],
            expr,
        )?;
        if data.result_type != "matrix" {
            return Err(BaselineError::invalid(
                format!("query {expr:?}"),
                format!("expected a range vector (matrix), got {}", data.result_type),
            ));
        }
        let items: Vec<MatrixItem> = serde_json::from_value(data.result).map_err(|e| {
            BaselineError::invalid(format!("query {expr:?}"), format!("unexpected result: {e}"))
        })?;
        Ok(items
            .into_iter()
            .map(|m| PromSeries {
                labels: m.metric,
                points: m.values.iter().filter_map(|(t, v)| sample(*t, v)).collect(),
            })
            .collect())
    }

    /// `expr` at `t_ms`: one value per series.
    pub fn query(&self, expr: &str, t_ms: i64) -> Result<Vec<(Labels, f64)>, BaselineError> {
        let data = self.get(
            "/api/v1/query",
            &[
                ("query", expr.to_string()),
                ("time", format!("{:.3}", t_ms as f64 / 1000.0)),
            ],
            expr,
        )?;
        match data.result_type.as_str() {
            "vector" => {
                let items: Vec<VectorItem> = serde_json::from_value(data.result).map_err(|e| {
                    BaselineError::invalid(
                        format!("query {expr:?}"),
                        format!("unexpected result: {e}"),
                    )
                })?;
                Ok(items
                    .into_iter()
                    .filter_map(|i| sample(i.value.0, &i.value.1).map(|(_, x)| (i.metric, x)))
                    .collect())
            }
            "scalar" => {
                let (t, v): (f64, String) = serde_json::from_value(data.result).map_err(|e| {
                    BaselineError::invalid(
                        format!("query {expr:?}"),
                        format!("unexpected result: {e}"),
                    )
                })?;
                Ok(sample(t, &v)
                    .map(|(_, x)| (BTreeMap::new(), x))
                    .into_iter()
                    .collect())
            }
            other => Err(BaselineError::invalid(
                format!("query {expr:?}"),
                format!("expected an instant vector or scalar, got {other}"),
            )),
        }
    }
}
