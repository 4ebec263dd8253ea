//! The autopilot in the server: `POST /api/v1/alertmanager` (the
//! Alertmanager webhook receiver), `GET /api/v1/audit`, the engine that
//! evaluates the policies every second and runs what is due, and the
//! actions API (`/api/v1/actions`: approvals and the pause switch).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path as AxumPath, Query, State};
use axum::Json;
use perfpilot_autopilot::audit::{AuditError, AuditEvent, AuditFilter, AuditLog, AuditRecord};
use perfpilot_autopilot::executor::{
    execute, Decision, ExecError, Executor, Mode, Retry, Status, TargetEnvs,
};
use perfpilot_autopilot::inbox::{self, AlertStatus, Inbox, Update};
use perfpilot_autopilot::ops::{Ops, Trigger};
use perfpilot_autopilot::{load_file, Approval, Env, Operation, PolicyError, TargetRef, Value};
use perfpilot_baseline::alerts::AlertState;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::{blocking, now_ms, AlertsHandle, App};

/// The alert inbox and the audit log, locked together so an alert's audit
/// record and its inbox state never disagree.
pub struct Autopilot {
    pub inbox: Inbox,
    pub audit: AuditLog,
    /// The decision engine, once started with `start_engine` (the
    /// `--policies` flag); the actions API answers 404 without it.
    pub engine: Option<Arc<Engine>>,
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
            engine: None,
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

// ---------------------------------------------------------------------------
// The engine: policies from a watched directory, the decision loop and the
// actions API.

/// Why the autopilot's engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read the policy directory {}: {source}", path.display())]
    PolicyDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the autopilot's thread: {0}")]
    Thread(std::io::Error),
}

/// How often conditions are evaluated.
const TICK: Duration = Duration::from_secs(1);
/// How often the policy directory is checked for changes.
const RESCAN: Duration = Duration::from_secs(2);
/// Decisions kept for `GET /api/v1/actions`.
const RECENT: usize = 200;

/// One decision as the actions API shows it, with what became of it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ActionView {
    pub id: u64,
    pub at_ms: i64,
    pub policy: String,
    pub policy_version: u32,
    pub action: String,
    /// `Kind/name`.
    pub target: String,
    pub condition: String,
    /// `name = value` for every value the condition read.
    pub readings: Vec<String>,
    /// The operation's type.
    pub operation: String,
    /// `dry-run` or `enforce`.
    pub mode: String,
    /// `auto` or `manual`.
    pub approval: String,
    /// `dry-run`, `pending-approval`, `running`, `succeeded`, `failed` or
    /// `rejected`.
    pub status: String,
    /// Who approved or rejected it.
    pub by: Option<String>,
    pub exit_status: Option<i32>,
    pub error: Option<String>,
}

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

pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::DryRun => "dry-run",
        Mode::Enforce => "enforce",
    }
}

fn view(d: &Decision) -> ActionView {
    let (status, by) = match &d.status {
        Status::DryRun => ("dry-run", None),
        Status::Ready => ("running", None),
        Status::PendingApproval => ("pending-approval", None),
        Status::Approved { by } => ("running", Some(by.clone())),
        Status::Rejected { by } => ("rejected", Some(by.clone())),
    };
    ActionView {
        id: d.id,
        at_ms: d.at_ms,
        policy: d.policy.clone(),
        policy_version: d.policy_version,
        action: d.action.clone(),
        target: format!("{}/{}", d.target.kind.as_str(), d.target.name),
        condition: d.condition.clone(),
        readings: d.readings.iter().map(ToString::to_string).collect(),
        operation: d.operation.type_name().into(),
        mode: mode_name(d.mode).into(),
        approval: match d.approval {
            Approval::Auto => "auto".into(),
            Approval::Manual => "manual".into(),
        },
        status: status.into(),
        by,
        exit_status: None,
        error: None,
    }
}

fn describe(op: &Operation) -> String {
    match op {
        Operation::Exec(e) => format!("exec {}", e.command.join(" ")),
        other => other.type_name().to_string(),
    }
}

/// Locks, recovering from a panic elsewhere: the engine's state stays
/// consistent between statements, and the loop must keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What conditions can read today: alerts, from Alertmanager's inbox and
/// the baseline engine. Other names have no data yet (unknown).
struct AlertEnv {
    firing: BTreeSet<String>,
    known: BTreeSet<String>,
    /// Firing alerts' names and labels, to pick each target's trigger.
    triggers: Vec<(String, BTreeMap<String, String>)>,
}

impl Env for AlertEnv {
    fn value(&self, _: &str) -> Option<Value> {
        None
    }
    fn alert_firing(&self, name: &str) -> Option<bool> {
        // An alert never seen is unknown, so `not alert(..)` does not hold
        // before any alert of that name arrived.
        self.known
            .contains(name)
            .then(|| self.firing.contains(name))
    }
    fn hotspot(&self, _: &str) -> Option<f64> {
        None
    }
}

impl TargetEnvs for AlertEnv {
    fn env(&self, _: &TargetRef) -> Option<&dyn Env> {
        Some(self)
    }
    fn trigger(&self, target: &TargetRef) -> Trigger {
        // The alert whose labels name the target, so its labels reach the
        // action (as environment variables only).
        let found = self
            .triggers
            .iter()
            .find(|(_, labels)| labels.values().any(|v| *v == target.name));
        Trigger {
            alert: found.map(|(n, _)| n.clone()),
            target: target.name.clone(),
            labels: found.map(|(_, l)| l.clone()).unwrap_or_default(),
        }
    }
}

/// The policy directory and what each file looked like when last read.
struct PolicyDir {
    dir: PathBuf,
    seen: BTreeMap<PathBuf, (Option<SystemTime>, u64)>,
}

impl PolicyDir {
    fn scan(&self) -> Result<BTreeMap<PathBuf, (Option<SystemTime>, u64)>, EngineError> {
        let err = |source| EngineError::PolicyDir {
            path: self.dir.clone(),
            source,
        };
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).map_err(err)? {
            let path = entry.map_err(err)?.path();
            let yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if !yaml {
                continue;
            }
            // A file removed between listing and reading is skipped.
            if let Ok(meta) = std::fs::metadata(&path) {
                if meta.is_file() {
                    files.insert(path, (meta.modified().ok(), meta.len()));
                }
            }
        }
        Ok(files)
    }

    /// Loads new and changed files into the executor; invalid files are
    /// reported on stderr and skipped, their earlier policies kept.
    fn reload(&mut self, executor: &Mutex<Executor>) -> Result<(), EngineError> {
        let now = self.scan()?;
        for (path, stamp) in &now {
            if self.seen.get(path) == Some(stamp) {
                continue;
            }
            let name = path.display().to_string();
            match load_file(path) {
                Ok(loaded) => {
                    for w in &loaded.warnings {
                        eprintln!("{}", w.in_file(&name));
                    }
                    for p in loaded.policies {
                        let policy = p.name.clone();
                        let version = lock(executor).upsert_policy(p);
                        eprintln!(
                            "perfpilot server: policy {policy} version {version} from {name}"
                        );
                    }
                }
                Err(PolicyError::Invalid { diagnostics, .. }) => {
                    for d in &diagnostics {
                        eprintln!("{}", d.in_file(&name));
                    }
                    eprintln!("perfpilot server: {name} is invalid and was not loaded");
                }
                Err(e @ PolicyError::Io { .. }) => eprintln!("perfpilot server: {e}"),
            }
        }
        for gone in self.seen.keys().filter(|p| !now.contains_key(*p)) {
            eprintln!(
                "perfpilot server: {} was removed; its policies stay loaded until restart",
                gone.display()
            );
        }
        self.seen = now;
        Ok(())
    }
}

/// The decision engine the server drives: the executor, the policies'
/// directory, and the recent decisions for the actions API.
pub struct Engine {
    executor: Mutex<Executor>,
    ops: Ops,
    retry: Retry,
    recent: Mutex<VecDeque<ActionView>>,
    policies: Mutex<PolicyDir>,
}

impl Engine {
    fn remember(&self, v: ActionView) {
        let mut recent = lock(&self.recent);
        if let Some(old) = recent.iter_mut().find(|o| o.id == v.id) {
            *old = v;
            return;
        }
        recent.push_front(v);
        recent.truncate(RECENT);
    }

    fn append(&self, handle: &AutopilotHandle, event: AuditEvent) {
        // An audit failure is reported and the engine goes on: stopping
        // would also stop every later decision from being recorded.
        if let Err(e) = lock(&handle.0).audit.append(event) {
            eprintln!("perfpilot server: the audit log failed: {e}");
        }
    }

    fn env(handle: &AutopilotHandle, alerts: Option<&AlertsHandle>) -> AlertEnv {
        let mut env = AlertEnv {
            firing: BTreeSet::new(),
            known: BTreeSet::new(),
            triggers: Vec::new(),
        };
        {
            let ap = lock(&handle.0);
            for a in ap.inbox.alerts() {
                let Some(name) = a.name() else { continue };
                env.known.insert(name.to_string());
                if a.status == AlertStatus::Firing {
                    env.firing.insert(name.to_string());
                    env.triggers.push((name.to_string(), a.labels.clone()));
                }
            }
        }
        if let Some(alerts) = alerts {
            let engine = lock(&alerts.0);
            for a in engine.alerts() {
                let Some(name) = a.labels.get("alertname") else {
                    continue;
                };
                env.known.insert(name.clone());
                if a.state == AlertState::Firing {
                    env.firing.insert(name.clone());
                    env.triggers.push((name.clone(), a.labels.clone()));
                }
            }
        }
        env
    }

    /// One round: evaluates every policy, records the decisions, and runs
    /// the ready ones.
    fn tick(&self, handle: &AutopilotHandle, alerts: Option<&AlertsHandle>) {
        let env = Self::env(handle, alerts);
        let decisions = lock(&self.executor).on_tick(now_ms(), &env);
        for d in &decisions {
            let outcome = match d.status {
                Status::DryRun => "dry_run",
                Status::PendingApproval => "await_approval",
                _ => "run",
            };
            self.append(
                handle,
                AuditEvent::Decision {
                    decision: Some(d.id),
                    policy: d.policy.clone(),
                    policy_version: d.policy_version.to_string(),
                    action: d.action.clone(),
                    condition: d.condition.clone(),
                    readings: d.readings.iter().map(ToString::to_string).collect(),
                    outcome: outcome.into(),
                    mode: Some(mode_name(d.mode).into()),
                    target: Some(format!("{}/{}", d.target.kind.as_str(), d.target.name)),
                },
            );
            self.remember(view(d));
        }
        for d in decisions {
            if d.status == Status::Ready {
                self.run(handle, &d);
            }
        }
    }

    /// Runs a ready or approved decision without holding the executor,
    /// so the API and the loop are not blocked while it runs.
    fn run(&self, handle: &AutopilotHandle, d: &Decision) -> ActionView {
        let report = execute(&self.ops, &self.retry, d, &d.operation);
        lock(&self.executor).finish(d);
        let outcome = report.outcome();
        let mut v = view(d);
        v.status = if report.ok() { "succeeded" } else { "failed" }.into();
        v.exit_status = outcome.and_then(|o| o.exit_status);
        v.error = match outcome {
            Some(o) => o.error.as_ref().map(ToString::to_string),
            None => Some("nothing ran".into()),
        };
        self.append(
            handle,
            AuditEvent::ActionRun {
                decision: Some(d.id),
                policy: d.policy.clone(),
                action: d.action.clone(),
                operation: describe(&d.operation),
                dry_run: false,
                output: outcome.map(|o| o.output.clone()).unwrap_or_default(),
                exit_status: v.exit_status,
                error: v.error.clone(),
                duration_ms: report
                    .attempts
                    .iter()
                    .map(|o| u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX))
                    .sum(),
                attempts: u32::try_from(report.attempts.len()).unwrap_or(u32::MAX),
            },
        );
        if !report.ok() {
            eprintln!(
                "perfpilot server: action {}/{} failed: {}",
                d.policy,
                d.action,
                v.error.as_deref().unwrap_or("exit status not zero")
            );
        }
        self.remember(v.clone());
        v
    }

    fn decide(
        &self,
        handle: &AutopilotHandle,
        id: u64,
        by: &str,
        approve: bool,
    ) -> ApiResult<ActionView> {
        let decided = {
            let mut ex = lock(&self.executor);
            if approve {
                ex.approve(id, by, now_ms())
            } else {
                ex.reject(id, by)
            }
        }
        .map_err(|e| match e {
            ExecError::NoSuchDecision(_) => {
                ApiError::not_found(format!("{e} (GET /api/v1/actions lists them)"))
            }
            _ => ApiError::conflict(e.to_string()),
        })?;
        self.append(
            handle,
            AuditEvent::Approval {
                decision: Some(decided.id),
                policy: decided.policy.clone(),
                action: decided.action.clone(),
                by: by.to_string(),
                approved: approve,
                reason: None,
            },
        );
        if approve {
            Ok(self.run(handle, &decided))
        } else {
            let v = view(&decided);
            self.remember(v.clone());
            Ok(v)
        }
    }
}

impl AutopilotHandle {
    /// Loads the policies in `dir` (invalid files are reported on stderr
    /// and skipped) and starts the engine's thread: every second it
    /// evaluates the policies against the inbox's alerts (and the
    /// baseline engine's, when given), records each decision and runs
    /// what is due; every two seconds it reloads changed policy files.
    /// It stops when `stop` is set.
    pub fn start_engine(
        &self,
        dir: &Path,
        mode: Mode,
        alerts: Option<AlertsHandle>,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Engine>, EngineError> {
        let ops = Ops::default();
        let retry = Retry::default();
        let engine = Arc::new(Engine {
            executor: Mutex::new(
                Executor::new(Vec::new())
                    .with_mode(mode)
                    .with_ops(ops.clone())
                    .with_retry(retry.clone()),
            ),
            ops,
            retry,
            recent: Mutex::new(VecDeque::new()),
            policies: Mutex::new(PolicyDir {
                dir: dir.to_path_buf(),
                seen: BTreeMap::new(),
            }),
        });
        lock(&engine.policies).reload(&engine.executor)?;
        lock(&self.0).engine = Some(Arc::clone(&engine));
        let handle = self.clone();
        let looped = Arc::clone(&engine);
        std::thread::Builder::new()
            .name("perfpilot-autopilot".into())
            .spawn(move || {
                let mut scanned = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(TICK);
                    if scanned.elapsed() >= RESCAN {
                        scanned = Instant::now();
                        if let Err(e) = lock(&looped.policies).reload(&looped.executor) {
                            eprintln!("perfpilot server: {e}");
                        }
                    }
                    looped.tick(&handle, alerts.as_ref());
                }
            })
            .map_err(EngineError::Thread)?;
        Ok(engine)
    }
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

pub async fn actions(State(app): State<Arc<App>>) -> ApiResult<Json<ActionsResponse>> {
    let (_, engine) = engine(&app)?;
    let (mode, paused, pending) = {
        let ex = lock(&engine.executor);
        (ex.mode(), ex.paused(), ex.pending().map(view).collect())
    };
    let recent = lock(&engine.recent).iter().cloned().collect();
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
    blocking(move || engine.decide(&handle, id, &by, approve).map(Json)).await
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

async fn set_paused(app: Arc<App>, paused: bool) -> ApiResult<Json<PauseResponse>> {
    let (_, engine) = engine(&app)?;
    lock(&engine.executor).set_paused(paused);
    Ok(Json(PauseResponse { paused }))
}

pub async fn pause(State(app): State<Arc<App>>) -> ApiResult<Json<PauseResponse>> {
    set_paused(app, true).await
}

pub async fn resume(State(app): State<Arc<App>>) -> ApiResult<Json<PauseResponse>> {
    set_paused(app, false).await
}
