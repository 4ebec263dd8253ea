//! The baseline engine's alerts: `GET /api/v1/alerts` and
//! `POST /api/v1/alerts/{id}/ack`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use perfpilot_baseline::alerts::Alert;
use perfpilot_baseline::engine::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::{now_ms, App};

/// The engine the server shares with its watch loop.
#[derive(Clone)]
pub struct AlertsHandle(pub Arc<Mutex<Engine>>);

impl std::fmt::Debug for AlertsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertsHandle")
    }
}

#[derive(Serialize, Deserialize)]
pub struct AlertsResponse {
    /// False when the server runs without a baseline config.
    pub enabled: bool,
    /// Firing first, newest first.
    pub alerts: Vec<Alert>,
}

fn engine(app: &App) -> ApiResult<&AlertsHandle> {
    app.config.alerts.as_ref().ok_or_else(|| {
        ApiError::not_found("alerts are off: start the server with --baseline-config FILE")
    })
}

pub async fn list(State(app): State<Arc<App>>) -> ApiResult<Json<AlertsResponse>> {
    let Some(handle) = &app.config.alerts else {
        return Ok(Json(AlertsResponse {
            enabled: false,
            alerts: Vec::new(),
        }));
    };
    let e = handle
        .0
        .lock()
        .map_err(|_| ApiError::internal("the baseline engine failed"))?;
    Ok(Json(AlertsResponse {
        enabled: true,
        alerts: e.alerts().into_iter().cloned().collect(),
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
) -> ApiResult<Json<Alert>> {
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
    let mut e = handle
        .0
        .lock()
        .map_err(|_| ApiError::internal("the baseline engine failed"))?;
    e.ack(&id, &by, now_ms())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alert {id:?}")))
}
