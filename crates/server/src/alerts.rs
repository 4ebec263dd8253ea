//! The baseline engine's incidents: `GET /api/v1/alerts` (each incident
//! with its findings) and `POST /api/v1/alerts/{id}/ack` (by incident id).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use perfpilot_autopilot::inbox::AlertStatus;
use perfpilot_baseline::engine::FeatureSummary;
use perfpilot_baseline::feed::FeedHandle;
use perfpilot_baseline::incidents::Incident;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::{blocking, now_ms, App};

/// The baseline engine's feed: its watch service owns the engine; the
/// API reads its snapshot and sends acknowledgements as commands.
#[derive(Clone)]
pub struct AlertsHandle(pub FeedHandle);

impl std::fmt::Debug for AlertsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertsHandle")
    }
}

#[derive(Serialize, Deserialize)]
pub struct AlertsResponse {
    /// False when the server keeps no alerts: no baseline config and no
    /// autopilot.
    pub enabled: bool,
    /// Whether baselines are learned (`--baseline-config`). Without them,
    /// with the autopilot, `alerts` holds only the autopilot's own.
    #[serde(default = "yes")]
    pub baselines: bool,
    /// The engine's incidents, firing first, newest first: one per
    /// problem of a service, its findings inside.
    pub alerts: Vec<Incident>,
    /// Alerts received from Alertmanager (`/api/v1/alertmanager`), firing
    /// first, newest first; empty without `--autopilot-dir`/`--policies`.
    #[serde(default)]
    pub received: Vec<ReceivedAlert>,
}

/// An alert as Alertmanager last posted it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ReceivedAlert {
    pub fingerprint: String,
    pub alertname: Option<String>,
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

fn yes() -> bool {
    true
}

fn received(app: &App) -> Vec<ReceivedAlert> {
    let Some(handle) = &app.config.autopilot else {
        return Vec::new();
    };
    let ms = |nanos: i128| i64::try_from(nanos / 1_000_000).unwrap_or(0);
    let ap = crate::autopilot::lock(&handle.0);
    let mut out: Vec<ReceivedAlert> = ap
        .inbox
        .alerts()
        .into_iter()
        .map(|a| &a.alert)
        .map(|a| ReceivedAlert {
            fingerprint: a.fingerprint.clone(),
            alertname: a.name().map(str::to_string),
            status: match a.status {
                AlertStatus::Firing => "firing".into(),
                AlertStatus::Resolved => "resolved".into(),
            },
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at_ms: ms(a.starts_at.unix_timestamp_nanos()),
            ends_at_ms: a.ends_at.map(|t| ms(t.unix_timestamp_nanos())),
            generator_url: a.generator_url.clone(),
        })
        .collect();
    out.sort_by(|a, b| {
        (a.status != "firing", std::cmp::Reverse(a.starts_at_ms))
            .cmp(&(b.status != "firing", std::cmp::Reverse(b.starts_at_ms)))
    });
    out
}

fn engine(app: &App) -> ApiResult<&AlertsHandle> {
    app.config.alerts.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "alerts are off: start the server with --baseline-config FILE, or --policies DIR",
        )
    })
}

pub async fn list(State(app): State<Arc<App>>) -> ApiResult<Json<AlertsResponse>> {
    let Some(handle) = &app.config.alerts else {
        return Ok(Json(AlertsResponse {
            enabled: false,
            baselines: false,
            alerts: Vec::new(),
            received: received(&app),
        }));
    };
    let alerts = handle.0.snapshot().incidents().to_vec();
    Ok(Json(AlertsResponse {
        enabled: true,
        baselines: !app.config.alerts_only,
        alerts,
        received: received(&app),
    }))
}

#[derive(Deserialize, Default)]
struct AckBody {
    #[serde(default)]
    by: Option<String>,
}

pub async fn ack(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Incident>> {
    let handle = engine(&app)?;
    let who: AckBody = if body.is_empty() {
        AckBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be empty or JSON like {{\"by\": \"alice\"}}: {e}"
            ))
        })?
    };
    let by = who.by.unwrap_or_else(|| "api".into());
    let feed = handle.0.clone();
    // Waits for the engine's owner to apply it: off the async threads.
    blocking(move || match feed.ack(&id, &by, now_ms()) {
        Ok(Some(a)) => Ok(Json(a)),
        Ok(None) => Err(ApiError::not_found(format!("no incident {id:?}"))),
        Err(e) => Err(ApiError::internal(e.to_string())),
    })
    .await
}

/// `GET /api/v1/baselines`: what normal looks like for every feature the
/// baseline engine follows.
#[derive(Serialize, Deserialize)]
pub struct BaselinesResponse {
    /// False when the server runs without a baseline config.
    pub enabled: bool,
    /// The time the bands are for.
    pub at_ms: i64,
    /// By service, then feature.
    pub features: Vec<BaselineView>,
}

#[derive(Serialize, Deserialize)]
pub struct BaselineView {
    #[serde(flatten)]
    pub summary: FeatureSummary,
    /// Whether a firing incident has a finding about this feature.
    pub firing: bool,
}

pub async fn baselines(State(app): State<Arc<App>>) -> ApiResult<Json<BaselinesResponse>> {
    let at_ms = now_ms();
    let handle = app
        .config
        .alerts
        .as_ref()
        .filter(|_| !app.config.alerts_only);
    let Some(handle) = handle else {
        return Ok(Json(BaselinesResponse {
            enabled: false,
            at_ms,
            features: Vec::new(),
        }));
    };
    let e = handle.0.snapshot();
    let firing: Vec<(&str, &str)> = e
        .incidents()
        .iter()
        .filter(|a| a.firing())
        .flat_map(|a| {
            a.findings
                .iter()
                .map(|f| (a.service.as_str(), f.feature.as_str()))
        })
        .collect();
    let features = e
        .features(at_ms)
        .into_iter()
        .map(|summary| BaselineView {
            firing: firing
                .iter()
                .any(|(s, f)| *s == summary.service && *f == summary.feature),
            summary,
        })
        .collect();
    Ok(Json(BaselinesResponse {
        enabled: true,
        at_ms,
        features,
    }))
}
