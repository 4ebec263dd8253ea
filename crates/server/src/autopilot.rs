//! The autopilot's inputs and record: `POST /api/v1/alertmanager` (the
//! Alertmanager webhook receiver) and `GET /api/v1/audit`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use perfpilot_autopilot::audit::{AuditError, AuditEvent, AuditFilter, AuditLog, AuditRecord};
use perfpilot_autopilot::inbox::{self, Inbox, Update};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::{blocking, now_ms, App};

/// The alert inbox and the audit log, locked together so an alert's audit
/// record and its inbox state never disagree.
pub struct Autopilot {
    pub inbox: Inbox,
    pub audit: AuditLog,
}

/// What the server shares with the autopilot's engine.
#[derive(Clone)]
pub struct AutopilotHandle(pub Arc<Mutex<Autopilot>>);

impl std::fmt::Debug for AutopilotHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AutopilotHandle")
    }
}

impl AutopilotHandle {
    /// The file name of the audit log inside the autopilot directory.
    pub const AUDIT_FILE: &'static str = "audit.jsonl";

    /// Opens the autopilot's state in `dir` (created if missing): the
    /// audit log `dir/audit.jsonl`, with a torn last line cut off (see
    /// [`AuditLog::recovered`]). The inbox starts empty: Alertmanager
    /// re-sends firing alerts every `group_interval`.
    pub fn open(dir: &Path) -> Result<AutopilotHandle, AuditError> {
        std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let audit = AuditLog::open(dir.join(Self::AUDIT_FILE))?;
        Ok(AutopilotHandle(Arc::new(Mutex::new(Autopilot {
            inbox: Inbox::new(),
            audit,
        }))))
    }
}

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
    AuditEvent::AlertReceived {
        source: "alertmanager".into(),
        fingerprint: u.alert.fingerprint.clone(),
        alertname: u.alert.name().map(str::to_string),
        status: u.alert.status,
        change: u.change.as_str().into(),
        starts_at: inbox::format_time(u.alert.starts_at),
        ends_at: u.alert.ends_at.map(inbox::format_time),
        labels: u.alert.labels.clone(),
        annotations: u.alert.annotations.clone(),
    }
}

pub async fn alertmanager(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> ApiResult<Json<WebhookResponse>> {
    let handle = handle(&app)?;
    let payload = inbox::parse_webhook(&body)
        .map_err(|e| ApiError::bad_request(format!("not an Alertmanager webhook: {e}")))?;
    // The audit append syncs to disk: off the async threads.
    blocking(move || {
        let mut ap = handle
            .0
            .lock()
            .map_err(|_| ApiError::internal("the autopilot failed"))?;
        let updates = ap.inbox.changes(&payload);
        let events = updates.iter().map(received).collect();
        // Recorded before applied: if the write fails the post answers 500
        // and Alertmanager's retry finds the changes again.
        let records = ap.audit.append_all(events).map_err(audit_error)?;
        ap.inbox.apply(&updates);
        let count = |c| updates.iter().filter(|u| u.change == c).count();
        Ok(Json(WebhookResponse {
            alerts: payload.alerts.len(),
            new: count(inbox::Change::New),
            resolved: count(inbox::Change::Resolved),
            updated: count(inbox::Change::Updated),
            audit_seqs: records.iter().map(|r| r.seq).collect(),
        }))
    })
    .await
}

#[derive(Deserialize)]
pub struct AuditParams {
    kind: Option<String>,
    policy: Option<String>,
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
    let filter = AuditFilter {
        kind,
        policy: p.policy.filter(|s| !s.is_empty()),
        since_ms,
        limit: Some(limit),
    };
    blocking(move || {
        let ap = handle
            .0
            .lock()
            .map_err(|_| ApiError::internal("the autopilot failed"))?;
        let records = ap.audit.query(&filter).map_err(audit_error)?;
        Ok(Json(AuditResponse { records }))
    })
    .await
}
