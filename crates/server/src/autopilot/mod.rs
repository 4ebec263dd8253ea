//! The autopilot in the server: `POST /api/v1/alertmanager` (the
//! Alertmanager webhook receiver), `GET /api/v1/audit`, and the actions
//! and policies API (`/api/v1/actions`: approvals and the pause switch).
//! The runtime itself (the engine that evaluates the policies every
//! second and runs what is due) is `perfpilot_autopilot::runtime`; the
//! server gives it its sources (`sources.rs`).

mod sources;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as AxumPath, Query, State};
use axum::Json;
use perfpilot_autopilot::audit::{AuditError, AuditEvent, AuditFilter, AuditRecord};
use perfpilot_autopilot::executor::ExecError;
use perfpilot_autopilot::inbox::{self, Update};
pub use perfpilot_autopilot::runtime::{
    lock, mode_name, ActionView, Autopilot, AutopilotHandle, Engine, EngineError, ImpactView,
    PoliciesError, PolicyView,
};
use serde::{Deserialize, Serialize};

pub use sources::{sources, Sources};

use crate::error::{ApiError, ApiResult};
use crate::{blocking, now_ms, App};

fn handle(app: &App) -> ApiResult<AutopilotHandle> {
    app.config.autopilot.clone().ok_or_else(|| {
        ApiError::not_found(
            "the autopilot is off: start the server with --autopilot-dir DIR (where its audit \
             log is kept) to receive Alertmanager webhooks and keep an audit log",
        )
    })
}

fn audit_error(e: AuditError) -> ApiError {
    ApiError::internal(format!("the audit log failed: {e}"))
}

/// The webhook's answer.
#[derive(Serialize, Deserialize, Debug)]
pub struct WebhookResponse {
    /// Alerts in the post.
    pub alerts: usize,
    /// Of them, new to the inbox, resolved, or with changed labels or
    /// annotations; each got an audit record.
    pub new: usize,
    pub resolved: usize,
    pub updated: usize,
    /// The audit records' sequence numbers.
    pub audit_seqs: Vec<u64>,
}

fn received(u: &Update) -> AuditEvent {
    let a = &u.alert.alert;
    AuditEvent::AlertReceived {
        source: "alertmanager".into(),
        fingerprint: a.fingerprint.clone(),
        alertname: a.name().map(str::to_string),
        status: a.status,
        change: u.change.as_str().into(),
        starts_at: inbox::format_time(a.starts_at),
        ends_at: a.ends_at.map(inbox::format_time),
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
    }
}

pub async fn alertmanager(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> ApiResult<Json<WebhookResponse>> {
    let handle = handle(&app)?;
    let payload = inbox::parse_webhook_with(&body, &app.config.webhook).map_err(|e| {
        let message = format!("not an Alertmanager webhook: {e}");
        if e.too_large {
            ApiError {
                status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                message,
            }
        } else {
            ApiError::bad_request(message)
        }
    })?;
    // The audit append syncs to disk: off the async threads.
    blocking(move || {
        let mut ap = lock(&handle.0);
        let updates = ap.inbox.changes(&payload);
        let events = updates.iter().map(received).collect();
        // Recorded before applied: if the write fails the post answers 500
        // and Alertmanager's retry finds the changes again.
        let records = ap.audit.append_all(events).map_err(audit_error)?;
        let count = |c| updates.iter().filter(|u| u.change == c).count();
        let response = WebhookResponse {
            alerts: payload.alerts.len(),
            new: count(inbox::Change::New),
            resolved: count(inbox::Change::Resolved),
            updated: count(inbox::Change::Updated),
            audit_seqs: records.iter().map(|r| r.seq).collect(),
        };
        ap.inbox.set_limit(app.config.webhook.max_inbox_alerts);
        let now = now_ms();
        for a in &payload.alerts {
            ap.door.admit_webhook(a, now);
        }
        let forgotten = ap.inbox.apply(updates);
        if forgotten > 0 {
            tracing::warn!(
                forgotten,
                "the alert inbox is full: forgot its {forgotten} oldest occurrences (resolved \
                 first); --max-inbox-alerts sets how many it holds"
            );
        }
        Ok(Json(response))
    })
    .await
}

#[derive(Deserialize)]
pub struct AuditParams {
    kind: Option<String>,
    policy: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct AuditResponse {
    /// Newest first.
    pub records: Vec<AuditRecord>,
}

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub async fn audit(
    State(app): State<Arc<App>>,
    Query(p): Query<AuditParams>,
) -> ApiResult<Json<AuditResponse>> {
    let handle = handle(&app)?;
    let kind = p.kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind {
        if !AuditEvent::KINDS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "kind: unknown kind {k:?}; one of {}",
                AuditEvent::KINDS.join(", ")
            )));
        }
    }
    let since_ms = match p.since.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            perfpilot_query::parse_time(s, now_ms())
                .map_err(|e| ApiError::bad_request(format!("since: {e}")))?,
        ),
        None => None,
    };
    let limit = match p.limit.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit: expected a number from 1 to {MAX_LIMIT}, got {s:?}"
                )))
            }
        },
        None => DEFAULT_LIMIT,
    };
    let decision = match p.decision.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("decision: expected a decision id, got {s:?}"))
        })?),
        None => None,
    };
    let filter = AuditFilter {
        kind,
        policy: p.policy.filter(|s| !s.is_empty()),
        decision,
        since_ms,
        limit: Some(limit),
    };
    blocking(move || {
        let ap = lock(&handle.0);
        let records = ap.audit.query(&filter).map_err(audit_error)?;
        Ok(Json(AuditResponse { records }))
    })
    .await
}

// ---------------------------------------------------------------------------
// The engine (`engine.rs`) and the actions and policies API.

#[derive(Serialize, Deserialize, Debug)]
pub struct ActionsResponse {
    pub mode: String,
    pub paused: bool,
    /// Waiting for approval, oldest first.
    pub pending: Vec<ActionView>,
    /// Every recent decision, newest first.
    pub recent: Vec<ActionView>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct PauseResponse {
    pub paused: bool,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct PoliciesResponse {
    pub policies: Vec<PolicyView>,
}

fn engine(app: &App) -> ApiResult<(AutopilotHandle, Arc<Engine>)> {
    let off = || {
        ApiError::not_found(
            "the autopilot is off: start the server with --policies DIR (AutopilotPolicy files; \
             add --autopilot enforce to run actions for real) to decide and approve actions",
        )
    };
    let handle = app.config.autopilot.clone().ok_or_else(off)?;
    let engine = lock(&handle.0).engine.clone().ok_or_else(off)?;
    Ok((handle, engine))
}

fn exec_error(e: ExecError) -> ApiError {
    match e {
        ExecError::NoSuchDecision(_) => {
            ApiError::not_found(format!("{e} (GET /api/v1/actions lists them)"))
        }
        _ => ApiError::conflict(e.to_string()),
    }
}

pub async fn actions(State(app): State<Arc<App>>) -> ApiResult<Json<ActionsResponse>> {
    let (_, engine) = engine(&app)?;
    let (mode, paused, pending) = engine.queue();
    let recent = engine.recent();
    Ok(Json(ActionsResponse {
        mode: mode_name(mode).into(),
        paused,
        pending,
        recent,
    }))
}

#[derive(Deserialize, Default)]
struct ByBody {
    #[serde(default)]
    by: Option<String>,
}

fn decision_id(raw: &str) -> ApiResult<u64> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("not a decision id: {raw:?}")))
}

fn approver(body: &[u8]) -> ApiResult<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok("anonymous".into());
    }
    let b: ByBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"by\": \"NAME\"}}: {e}")))?;
    Ok(b.by
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "anonymous".into()))
}

async fn decide(
    app: Arc<App>,
    id: String,
    body: Bytes,
    approve: bool,
) -> ApiResult<Json<ActionView>> {
    let (handle, engine) = engine(&app)?;
    let id = decision_id(&id)?;
    let by = approver(&body)?;
    // Approving runs the action (and the audit append syncs): off the
    // async threads.
    blocking(move || {
        engine
            .decide(&handle, id, &by, approve)
            .map(Json)
            .map_err(exec_error)
    })
    .await
}

pub async fn approve(
    State(app): State<Arc<App>>,
    AxumPath(id): AxumPath<String>,
    body: Bytes,
) -> ApiResult<Json<ActionView>> {
    decide(app, id, body, true).await
}

pub async fn reject(
    State(app): State<Arc<App>>,
    AxumPath(id): AxumPath<String>,
    body: Bytes,
) -> ApiResult<Json<ActionView>> {
    decide(app, id, body, false).await
}

async fn set_paused(app: Arc<App>, body: Bytes, paused: bool) -> ApiResult<Json<PauseResponse>> {
    let (handle, engine) = engine(&app)?;
    let by = approver(&body)?;
    // The audit append and the state file sync: off the async threads.
    blocking(move || {
        engine.set_paused(&handle, paused, &by);
        Ok(Json(PauseResponse { paused }))
    })
    .await
}

pub async fn pause(State(app): State<Arc<App>>, body: Bytes) -> ApiResult<Json<PauseResponse>> {
    set_paused(app, body, true).await
}

pub async fn resume(State(app): State<Arc<App>>, body: Bytes) -> ApiResult<Json<PauseResponse>> {
    set_paused(app, body, false).await
}

pub async fn policies(State(app): State<Arc<App>>) -> ApiResult<Json<PoliciesResponse>> {
    let (_, engine) = engine(&app)?;
    Ok(Json(PoliciesResponse {
        policies: engine.policies(),
    }))
}

#[derive(Deserialize)]
struct RollbackBody {
    to: Option<u32>,
    #[serde(default)]
    by: Option<String>,
}

pub async fn rollback_policy(
    State(app): State<Arc<App>>,
    AxumPath(name): AxumPath<String>,
    body: Bytes,
) -> ApiResult<Json<PolicyView>> {
    let (handle, engine) = engine(&app)?;
    let b: RollbackBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"to\": VERSION, \"by\": \"NAME\"}}: {e}"
        ))
    })?;
    let to =
        b.to.filter(|v| *v > 0)
            .ok_or_else(|| ApiError::bad_request("to: the version to restore, a number from 1"))?;
    let by =
        b.by.filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "anonymous".into());
    blocking(move || {
        engine
            .rollback_policy(&handle, &name, to, &by)
            .map(Json)
            .map_err(|e| match e {
                PoliciesError::NoSuchPolicy(_) | PoliciesError::NoSuchVersion { .. } => {
                    ApiError::not_found(e.to_string())
                }
                _ => ApiError::internal(e.to_string()),
            })
    })
    .await
}
