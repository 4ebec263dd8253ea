//! The autopilot's engine in the server: every tick it gathers the values
//! the policies read, lets the executor decide, records each decision,
//! runs what is due, and judges the impact of what ran — rolling it back
//! and raising an alert when it made the target worse. Its state (caps,
//! cooldowns, the approval queue, pins) is saved after every change.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audit::AuditEvent;
use crate::executor::{
    execute, verdict, Decision, ExecError, Executor, Mode, Retry, RunReport, SavedState, Status,
    Verdict,
};
use crate::ops::Ops;
use crate::{Approval, Policy};
use serde::{Deserialize, Serialize};

use super::policies::{Pin, Policies, PoliciesError, PolicyView};
use super::signals::{self, service_of, Snapshot, Sources};
use super::sources::RaisedAlert;
use super::{lock, mode_name, ActionView, AutopilotHandle, ImpactView};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Policies(#[from] PoliciesError),
    #[error("cannot read the autopilot's state {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error("cannot start the autopilot's thread: {0}")]
    Thread(std::io::Error),
}

/// How often conditions are evaluated.
const TICK: Duration = Duration::from_secs(1);
/// How often the policy directory is checked for changes.
const RESCAN: Duration = Duration::from_secs(2);
/// Decisions kept for `GET /api/v1/actions`.
const RECENT: usize = 200;
/// How long resolved Alertmanager alerts are remembered (for idempotence
/// against retried posts) before they are forgotten.
const FORGET_RESOLVED_MS: i64 = 3_600_000;
/// How long an alert about an action that made things worse fires.
const RAISED_FOR_MS: i64 = 3_600_000;
/// The state file in the autopilot directory.
pub const STATE_FILE: &str = "state.json";

/// What is saved in `state.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    executor: SavedState,
    #[serde(default)]
    pins: BTreeMap<String, Pin>,
}

/// An action whose impact is still to be judged.
#[derive(Debug, Clone)]
struct Watch {
    decision: Decision,
    started_ms: i64,
    ended_ms: i64,
    window_ms: i64,
    signal: Option<String>,
}

/// An alert the autopilot raised, fed to the baseline engine's alert book
/// (and so to its sinks) until `until_ms`.
struct Raised {
    alert: RaisedAlert,
    until_ms: i64,
    /// Quiet updates sent after `until_ms`; the book resolves it after
    /// its `resolve_after`.
    quiet: u32,
}

/// Samples of each number a policy reads: (policy, name) → (t, value).
type History = BTreeMap<(String, String), VecDeque<(i64, f64)>>;

pub struct Engine {
    executor: Mutex<Executor>,
    ops: Ops,
    retry: Retry,
    recent: Mutex<VecDeque<ActionView>>,
    policies: Mutex<Policies>,
    sources: Sources,
    history: Mutex<History>,
    watches: Mutex<Vec<Watch>>,
    raised: Mutex<Vec<Raised>>,
    state_path: PathBuf,
    /// Held from export to rename: saves come from the tick, action
    /// threads and the API at once, and share one temporary file.
    saving: Mutex<()>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// The number an action's impact is judged by: the guard's signal, else
/// the first number its condition reads (not a baseline), else its first
/// hotspot.
fn judged_signal(policy: &Policy, action: &str) -> Option<String> {
    if let Some(s) = &policy.guard.signal {
        return Some(s.clone());
    }
    let a = policy.actions.iter().find(|a| a.name == action)?;
    let numeric = |n: &str| {
        !n.starts_with("baseline.")
            && policy
                .signal(n)
                .is_none_or(|s| s.source.value_type() == crate::Type::Number)
    };
    a.condition
        .names()
        .iter()
        .find(|n| numeric(n))
        .cloned()
        .or_else(|| {
            a.condition
                .calls()
                .iter()
                .find(|(f, _)| f == "hotspot")
                .map(|(_, arg)| format!("hotspot({arg:?})"))
        })
}

pub fn view(d: &Decision) -> ActionView {
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
        attempts: 0,
        output: None,
        impact: None,
    }
}

fn duration_ms(report: &RunReport) -> u64 {
    report
        .attempts
        .iter()
        .map(|o| u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX))
        .sum()
}

impl Engine {
    fn now(&self) -> i64 {
        self.sources.clock.now_ms()
    }

    /// Opens the engine's state in `state_dir`, loads the policies in
    /// `dir` and restores what the last run left: caps, cooldowns, the
    /// approval queue, the pause switch and rollbacks in force.
    pub fn open(
        handle: &AutopilotHandle,
        dir: &Path,
        state_dir: &Path,
        mode: Mode,
        sources: Sources,
    ) -> Result<Arc<Engine>, EngineError> {
        let state_path = state_dir.join(STATE_FILE);
        let state: State = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EngineError::State {
                path: state_path.clone(),
                message: format!(
                    "{e} (move the file away to start afresh: caps, cooldowns and queued \
                     approvals are then forgotten)"
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                return Err(EngineError::State {
                    path: state_path,
                    message: e.to_string(),
                })
            }
        };
        let ops = Ops::default();
        let retry = Retry::default();
        let mut executor = Executor::new(Vec::new())
            .with_mode(mode)
            .with_ops(ops.clone())
            .with_retry(retry.clone());
        let mut policies = Policies::new(dir, state_dir, state.pins, sources.notices.clone());
        policies.apply_pins(&mut executor);
        let changes = policies.reload(&mut executor)?;
        for note in executor.restore(state.executor) {
            tracing::warn!(%note, "a queued approval was dropped");
        }
        let engine = Arc::new(Engine {
            executor: Mutex::new(executor),
            ops,
            retry,
            recent: Mutex::new(VecDeque::new()),
            policies: Mutex::new(policies),
            sources,
            history: Mutex::new(BTreeMap::new()),
            watches: Mutex::new(Vec::new()),
            raised: Mutex::new(Vec::new()),
            state_path,
            saving: Mutex::new(()),
        });
        engine.record_changes(handle, changes);
        engine.save();
        Ok(engine)
    }

    /// Writes the state aside and renames it in. A failure is reported
    /// and the engine goes on: the caps in memory still hold.
    pub(crate) fn save(&self) {
        // The export is taken under the same lock as the write, so an
        // older state is never renamed in over a newer one.
        let _saving = lock(&self.saving);
        let state = State {
            executor: lock(&self.executor).export(),
            pins: lock(&self.policies).pins.clone(),
        };
        let result = serde_json::to_vec_pretty(&state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| super::write_atomically(&self.state_path, &bytes));
        if let Err(e) = result {
            tracing::error!(
                path = %self.state_path.display(),
                error = %e,
                "cannot save the autopilot's state"
            );
        }
    }

    /// The executor's mode, whether it is paused, and the decisions
    /// waiting for approval (oldest first).
    pub fn queue(&self) -> (Mode, bool, Vec<ActionView>) {
        let ex = lock(&self.executor);
        (ex.mode(), ex.paused(), ex.pending().map(view).collect())
    }

    /// Every recent decision, newest first.
    pub fn recent(&self) -> Vec<ActionView> {
        lock(&self.recent).iter().cloned().collect()
    }

    fn remember(&self, v: ActionView) {
        let mut recent = lock(&self.recent);
        if let Some(old) = recent.iter_mut().find(|o| o.id == v.id) {
            *old = v;
            return;
        }
        recent.push_front(v);
        recent.truncate(RECENT);
    }

    fn update_view(&self, id: u64, f: impl FnOnce(&mut ActionView)) {
        if let Some(v) = lock(&self.recent).iter_mut().find(|v| v.id == id) {
            f(v);
        }
    }

    pub(crate) fn append(&self, handle: &AutopilotHandle, event: AuditEvent) {
        self.append_all(handle, vec![event]);
    }

    fn append_all(&self, handle: &AutopilotHandle, events: Vec<AuditEvent>) {
        if events.is_empty() {
            return;
        }
        // An audit failure is reported and the engine goes on: stopping
        // would also stop every later decision from being recorded.
        if let Err(e) = lock(&handle.0).audit.append_all(events) {
            tracing::error!(error = %e, "the audit log failed");
        }
    }

    fn record_changes(&self, handle: &AutopilotHandle, changes: super::policies::Changes) {
        for (event, dropped) in changes {
            self.append(handle, event);
            for d in dropped {
                let mut v = view(&d);
                v.status = "rejected".into();
                v.by = Some("policy removed".into());
                v.error = Some("its policy was removed before it was approved".into());
                self.remember(v);
            }
        }
    }

    fn reload(&self, handle: &AutopilotHandle) {
        {
            let mut ap = lock(&handle.0);
            let before = self.now() - FORGET_RESOLVED_MS;
            ap.inbox.forget_resolved_before_ms(before);
            ap.door.forget_resolved_before_ms(before);
        }
        // The directory is read with no lock held: the actions API must
        // not wait on file I/O every rescan.
        let scan = lock(&self.policies).scan();
        let changes = scan.and_then(|files| {
            let mut ex = lock(&self.executor);
            lock(&self.policies).apply(&files, &mut ex)
        });
        match changes {
            Ok(c) if c.is_empty() => {}
            Ok(c) => {
                self.record_changes(handle, c);
                self.save();
            }
            Err(e) => tracing::error!(error = %e, "cannot reload the policies"),
        }
    }

    /// The values every policy reads now, gathered without the executor
    /// locked; each number is also kept for impact checks.
    fn snapshot(&self, handle: &AutopilotHandle, now: i64) -> Snapshot {
        let policies: Vec<Policy> = lock(&self.executor)
            .policies()
            .map(|(p, _)| p.clone())
            .collect();
        let alerts = signals::alerts(handle, self.sources.baseline.as_deref(), now);
        let mut out = BTreeMap::new();
        let mut history = lock(&self.history);
        let keep_ms = policies
            .iter()
            .map(|p| ms(p.guard.impact_window))
            .max()
            .unwrap_or(0)
            .saturating_mul(2)
            .saturating_add(60_000);
        for p in &policies {
            let values = signals::gather(&self.sources, &alerts, p, now);
            for (name, x) in values.numbers() {
                let h = history.entry((p.name.clone(), name)).or_default();
                h.push_back((now, x));
            }
            out.insert(p.name.clone(), values);
        }
        for h in history.values_mut() {
            while h.front().is_some_and(|(t, _)| now - t > keep_ms) {
                h.pop_front();
            }
        }
        history.retain(|_, h| !h.is_empty());
        Snapshot(out)
    }

    /// One round: decides, runs what is due, judges impacts, keeps the
    /// raised alerts going.
    pub fn tick(self: &Arc<Self>, handle: &AutopilotHandle) {
        let now = self.now();
        let snapshot = self.snapshot(handle, now);
        let decisions = lock(&self.executor).on_tick(now, &snapshot);
        // One append, so one sync, for the whole tick's decisions.
        let events = decisions
            .iter()
            .map(|d| AuditEvent::Decision {
                decision: Some(d.id),
                policy: d.policy.clone(),
                policy_version: d.policy_version.to_string(),
                action: d.action.clone(),
                condition: d.condition.clone(),
                readings: d.readings.iter().map(ToString::to_string).collect(),
                outcome: match d.status {
                    Status::DryRun => "dry_run",
                    Status::PendingApproval => "await_approval",
                    _ => "run",
                }
                .into(),
                mode: Some(mode_name(d.mode).into()),
                target: Some(format!("{}/{}", d.target.kind.as_str(), d.target.name)),
            })
            .collect();
        self.append_all(handle, events);
        for d in &decisions {
            self.remember(view(d));
        }
        if !decisions.is_empty() {
            self.save();
        }
        for d in decisions {
            if d.status == Status::Ready {
                // Each on its own thread: a slow or retried action must
                // not hold up the other policies' decisions (the executor
                // keeps one action per target in flight).
                let engine = Arc::clone(self);
                let h = handle.clone();
                let d2 = d.clone();
                let spawned = std::thread::Builder::new()
                    .name("perfpilot-action".into())
                    .spawn(move || {
                        engine.run(&h, &d2);
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start a thread for an action; running it in the engine's");
                    self.run(handle, &d);
                }
            }
        }
        self.judge(handle, self.now());
        self.keep_raised(self.now());
    }

    /// Runs a ready or approved decision without holding the executor,
    /// so the API and the loop are not blocked while it runs.
    pub(crate) fn run(&self, handle: &AutopilotHandle, d: &Decision) -> ActionView {
        let started = self.now();
        let report = execute(&self.ops, &self.retry, d, &d.operation);
        lock(&self.executor).finish(d);
        let ended = self.now();
        let outcome = report.outcome();
        let mut v = view(d);
        v.status = if report.ok() { "succeeded" } else { "failed" }.into();
        v.exit_status = outcome.and_then(|o| o.exit_status);
        v.error = match outcome {
            Some(o) => o.error.as_ref().map(ToString::to_string),
            None => Some("nothing ran".into()),
        };
        v.attempts = u32::try_from(report.attempts.len()).unwrap_or(u32::MAX);
        v.output = outcome.map(|o| o.output.clone()).filter(|o| !o.is_empty());
        self.append(
            handle,
            AuditEvent::ActionRun {
                decision: Some(d.id),
                policy: d.policy.clone(),
                action: d.action.clone(),
                operation: d.operation.describe(),
                dry_run: false,
                output: outcome.map(|o| o.output.clone()).unwrap_or_default(),
                exit_status: v.exit_status,
                error: v.error.clone(),
                duration_ms: duration_ms(&report),
                attempts: v.attempts,
            },
        );
        if report.ok() {
            let policy = lock(&self.executor).policy(&d.policy).cloned();
            if let Some(p) = policy {
                let window_ms = ms(p.guard.impact_window);
                let signal = judged_signal(&p, &d.action);
                v.impact = Some(ImpactView {
                    status: "pending".into(),
                    signal: signal.clone(),
                    before: None,
                    after: None,
                    due_ms: ended.saturating_add(window_ms),
                    rollback: None,
                });
                lock(&self.watches).push(Watch {
                    decision: d.clone(),
                    started_ms: started,
                    ended_ms: ended,
                    window_ms,
                    signal,
                });
            }
        } else {
            tracing::warn!(
                policy = %d.policy,
                action = %d.action,
                attempts = v.attempts,
                error = v.error.as_deref().unwrap_or("exit status not zero"),
                "an action failed"
            );
        }
        self.remember(v.clone());
        self.save();
        v
    }

    /// Judges the actions whose impact window has passed: the judged
    /// signal's median over the window after the action against its
    /// median over the same span before it.
    fn judge(self: &Arc<Self>, handle: &AutopilotHandle, now: i64) {
        let due: Vec<Watch> = {
            let mut watches = lock(&self.watches);
            let (due, wait): (Vec<Watch>, Vec<Watch>) = watches
                .drain(..)
                .partition(|w| now >= w.ended_ms.saturating_add(w.window_ms));
            *watches = wait;
            due
        };
        for w in due {
            let d = &w.decision;
            let (before, after) = match &w.signal {
                Some(s) => {
                    let history = lock(&self.history);
                    let samples = history.get(&(d.policy.clone(), s.clone()));
                    let span = |from: i64, to: i64| {
                        median(
                            samples
                                .into_iter()
                                .flatten()
                                .filter(|(t, _)| *t >= from && *t < to)
                                .map(|(_, x)| *x)
                                .collect(),
                        )
                    };
                    (
                        span(w.started_ms - w.window_ms, w.started_ms),
                        span(w.ended_ms, w.ended_ms + w.window_ms + 1),
                    )
                }
                None => (None, None),
            };
            let guard = lock(&self.executor)
                .policy(&d.policy)
                .map(|p| p.guard.clone())
                .unwrap_or_default();
            let judged = match (before, after, &w.signal) {
                (Some(b), Some(a), Some(s)) => {
                    Some(verdict(b, a, guard.tolerance, guard.better_for(s)))
                }
                _ => None,
            };
            let name = match judged {
                Some(Verdict::Better) => "better",
                Some(Verdict::Same) => "same",
                Some(Verdict::Worse) => "worse",
                None => "unknown",
            };
            let signal = w.signal.clone().unwrap_or_else(|| "(none)".into());
            let detail = match (before, after) {
                (Some(b), Some(a)) => format!(
                    "{signal}: median {} in the {}s before, {} in the {}s after",
                    short(b),
                    w.window_ms / 1000,
                    short(a),
                    w.window_ms / 1000
                ),
                _ => {
                    format!("{signal}: not enough samples before and after the action to judge it")
                }
            };
            self.append(
                handle,
                AuditEvent::Impact {
                    decision: Some(d.id),
                    policy: d.policy.clone(),
                    action: d.action.clone(),
                    verdict: name.into(),
                    detail: detail.clone(),
                    signal: w.signal.clone(),
                    before,
                    after,
                },
            );
            self.update_view(d.id, |v| {
                if let Some(i) = v.impact.as_mut() {
                    i.status = name.into();
                    i.before = before;
                    i.after = after;
                }
            });
            if judged == Some(Verdict::Worse) {
                // Like actions, a rollback runs on its own thread: the
                // next ticks must not wait for it.
                let engine = Arc::clone(self);
                let h = handle.clone();
                let (w2, detail2) = (w.clone(), detail.clone());
                let spawned = std::thread::Builder::new()
                    .name("perfpilot-rollback".into())
                    .spawn(move || engine.worse(&h, &w2, &detail2));
                if let Err(e) = spawned {
                    tracing::warn!(
                        error = %e,
                        "cannot start a thread for a rollback; running it in the engine's"
                    );
                    self.worse(handle, &w, &detail);
                }
            }
        }
    }

    /// The action made things worse: roll it back (when the policy says
    /// so and there is a way) and raise an alert either way.
    fn worse(&self, handle: &AutopilotHandle, w: &Watch, detail: &str) {
        let d = &w.decision;
        let rollback = {
            let mut ex = lock(&self.executor);
            let op = ex.rollback_for(d, Verdict::Worse);
            // The target is claimed even when busy: the rollback must not
            // wait behind another action on a target already made worse.
            if op.is_some() {
                ex.claim(d);
            }
            op
        };
        let mut rolled = None;
        if let Some(op) = rollback {
            let report = execute(&self.ops, &self.retry, d, &op);
            lock(&self.executor).finish(d);
            let outcome = report.outcome();
            let ok = report.ok();
            self.append(
                handle,
                AuditEvent::Rollback {
                    decision: Some(d.id),
                    policy: d.policy.clone(),
                    action: d.action.clone(),
                    reason: format!("impact worse: {detail}"),
                    operation: op.describe(),
                    output: outcome.map(|o| o.output.clone()).unwrap_or_default(),
                    exit_status: outcome.and_then(|o| o.exit_status),
                    error: outcome.and_then(|o| o.error.as_ref().map(ToString::to_string)),
                },
            );
            self.update_view(d.id, |v| {
                if ok {
                    v.status = "rolled-back".into();
                }
                if let Some(i) = v.impact.as_mut() {
                    i.rollback = Some(if ok { "succeeded" } else { "failed" }.into());
                }
            });
            rolled = Some(ok);
        }
        let what = match rolled {
            Some(true) => "it was rolled back",
            Some(false) => "its rollback failed",
            None => "it has no rollback",
        };
        let message = format!(
            "autopilot action {}/{} (decision {}) made {} worse; {what}. {detail}",
            d.policy, d.action, d.id, d.target.name
        );
        tracing::warn!(decision = d.id, "{message}");
        let now = self.now();
        let mut labels = BTreeMap::new();
        labels.insert("policy".to_string(), d.policy.clone());
        labels.insert("action".to_string(), d.action.clone());
        labels.insert("decision".to_string(), d.id.to_string());
        lock(&self.raised).push(Raised {
            alert: RaisedAlert {
                service: service_of(&d.target).to_string(),
                feature: format!("autopilot {}/{}", d.policy, d.action),
                labels,
                detector: "autopilot_made_worse".into(),
                critical: rolled != Some(true),
                message,
                since_ms: now,
                at_ms: Some(now),
            },
            until_ms: now + RAISED_FOR_MS,
            quiet: 0,
        });
        self.save();
    }

    /// Sends the raised alerts to the baseline engine while they last,
    /// then lets them resolve.
    fn keep_raised(&self, now: i64) {
        let Some(baseline) = &self.sources.baseline else {
            // No alert book was given (the binary always gives one): the
            // audit log, stderr and the actions API carry it.
            lock(&self.raised).clear();
            return;
        };
        let mut raised = lock(&self.raised);
        if raised.is_empty() {
            return;
        }
        let resolve_after = baseline.resolve_after();
        for r in raised.iter_mut() {
            let at_ms = if now < r.until_ms {
                Some(now)
            } else {
                r.quiet += 1;
                None
            };
            // The baseline engine's owner applies it and delivers it to
            // its sinks.
            if let Err(e) = baseline.raise(RaisedAlert {
                at_ms,
                ..r.alert.clone()
            }) {
                tracing::warn!(error = %e, "cannot raise the autopilot's alert");
            }
        }
        raised.retain(|r| r.quiet < resolve_after);
    }

    pub fn decide(
        &self,
        handle: &AutopilotHandle,
        id: u64,
        by: &str,
        approve: bool,
    ) -> Result<ActionView, ExecError> {
        let decided = {
            let mut ex = lock(&self.executor);
            if approve {
                ex.approve(id, by, self.now())
            } else {
                ex.reject(id, by)
            }
        }?;
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
        self.save();
        if approve {
            Ok(self.run(handle, &decided))
        } else {
            let v = view(&decided);
            self.remember(v.clone());
            Ok(v)
        }
    }

    pub fn set_paused(&self, handle: &AutopilotHandle, paused: bool, by: &str) {
        let changed = {
            let mut ex = lock(&self.executor);
            let changed = ex.paused() != paused;
            ex.set_paused(paused);
            changed
        };
        if changed {
            self.append(
                handle,
                AuditEvent::Pause {
                    paused,
                    by: by.into(),
                },
            );
            self.save();
        }
    }

    pub fn policies(&self) -> Vec<PolicyView> {
        let ex = lock(&self.executor);
        lock(&self.policies).views(&ex)
    }

    pub fn rollback_policy(
        &self,
        handle: &AutopilotHandle,
        name: &str,
        to: u32,
        by: &str,
    ) -> Result<PolicyView, PoliciesError> {
        let event = {
            let mut ex = lock(&self.executor);
            lock(&self.policies).rollback(&mut ex, name, to, by)?
        };
        self.append(handle, event);
        self.save();
        self.policies()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| PoliciesError::NoSuchPolicy(name.into()))
    }

    /// The engine's loop, until `stop` is set.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        handle: AutopilotHandle,
        stop: Arc<AtomicBool>,
    ) -> Result<(), EngineError> {
        let engine = Arc::clone(self);
        std::thread::Builder::new()
            .name("perfpilot-autopilot".into())
            .spawn(move || {
                let mut scanned = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(TICK);
                    if scanned.elapsed() >= RESCAN {
                        scanned = Instant::now();
                        engine.reload(&handle);
                    }
                    engine.tick(&handle);
                }
            })
            .map(|_| ())
            .map_err(EngineError::Thread)
    }
}

/// Six significant digits, without trailing zeros: `0.8`, not `0.800000`,
/// and a small share keeps its digits.
fn short(v: f64) -> String {
    let s = format!("{v:.5e}");
    s.parse::<f64>().map_or(s, |x| x.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impact_figures_are_short_but_keep_their_digits() {
        assert_eq!(short(0.8), "0.8");
        assert_eq!(short(0.800_000_01), "0.8");
        assert_eq!(short(2.0), "2");
        assert_eq!(short(0.012_345_678), "0.0123457");
        assert_eq!(short(1234.5), "1234.5");
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn the_judged_signal_is_the_guards_or_the_first_number_read() {
        let text = |guard: &str| {
            format!(
                "apiVersion: perfpilot.dev/v1alpha1\nkind: AutopilotPolicy\nmetadata: {{name: p}}\nspec:\n  targetRef: {{kind: SystemdUnit, name: s.service}}\n  actions:\n    - {{name: a, condition: 'alert(\"X\").firing and p99 > baseline.p99 * 2', operation: {{type: restart}}}}\n    - {{name: h, condition: 'hotspot(\"f\") > 30%', operation: {{type: restart}}}}\n{guard}"
            )
        };
        let parse = |t: String| {
            let r = crate::parse_policies(&t);
            assert!(!r.has_errors(), "{:?}", r.diagnostics);
            r.policies.into_iter().next().unwrap()
        };
        let p = parse(text(""));
        assert_eq!(judged_signal(&p, "a").as_deref(), Some("p99"));
        assert_eq!(judged_signal(&p, "h").as_deref(), Some("hotspot(\"f\")"));
        let p = parse(text("  guard: {signal: error_rate}\n"));
        assert_eq!(judged_signal(&p, "a").as_deref(), Some("error_rate"));
    }
}
