//! The decision engine: when an action's condition has held long enough,
//! whether it may run (mode, pause, cooldown, hourly cap, one action in
//! flight per target, approval), running it with bounded retries, and the
//! impact check that rolls it back when things got worse.
//!
//! It reads nothing itself: values come through [`TargetEnvs`] and time
//! through `now_ms`, so the server decides where both come from.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::condition::{Env, ForTracker, Reading};
use crate::duration::millis;
use crate::ops::{OpError, Ops, Outcome, Trigger};
use crate::policy::{Action, Approval, Better, Operation, Policy, RollbackIf, TargetRef};

/// Whether actions run. Dry-run is the default: decisions are recorded
/// and nothing runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    DryRun,
    Enforce,
}

/// Where a decision stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Recorded only: dry-run (globally or for the action).
    DryRun,
    /// Due to run now.
    Ready,
    /// Waiting in the approval queue.
    PendingApproval,
    Approved {
        by: String,
    },
    Rejected {
        by: String,
    },
}

/// One decision to act, with the evidence behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub id: u64,
    pub at_ms: i64,
    pub policy: String,
    /// Starts at 1; bumped each time the policy is replaced by a different one.
    pub policy_version: u32,
    pub action: String,
    pub target: TargetRef,
    /// The condition's text and every value it read.
    pub condition: String,
    pub readings: Vec<Reading>,
    pub operation: Operation,
    pub rollback: Option<Operation>,
    pub mode: Mode,
    pub approval: Approval,
    pub trigger: Trigger,
    pub status: Status,
}

impl Decision {
    /// A decision for `action` of `policy` (at `version`), queued for
    /// approval in enforce mode with no readings; callers deciding now
    /// set the readings, mode and status.
    fn new(
        id: u64,
        at_ms: i64,
        policy: &Policy,
        version: u32,
        action: &Action,
        trigger: Trigger,
    ) -> Decision {
        Decision {
            id,
            at_ms,
            policy: policy.name.clone(),
            policy_version: version,
            action: action.name.clone(),
            target: policy.target.clone(),
            condition: action.condition.source().to_string(),
            readings: Vec::new(),
            operation: action.operation.clone(),
            rollback: action.rollback.clone(),
            mode: Mode::Enforce,
            approval: action.approval,
            trigger,
            status: Status::PendingApproval,
        }
    }
}

/// Values for each target's conditions, and what triggered them.
pub trait TargetEnvs {
    /// `None`: nothing is known about this target; its conditions are not
    /// evaluated.
    fn env(&self, target: &TargetRef) -> Option<&dyn Env>;
    /// The alert and labels an action on this target would be run for.
    fn trigger(&self, target: &TargetRef) -> Trigger {
        Trigger {
            alert: None,
            target: target.name.clone(),
            labels: BTreeMap::new(),
        }
    }
    /// The values for one policy's conditions: by default its target's.
    /// Policies on one target may define signals of the same name
    /// differently, so a caller with signals answers per policy.
    fn env_for(&self, policy: &Policy) -> Option<&dyn Env> {
        self.env(&policy.target)
    }
    /// The trigger of an action of `policy`: by default its target's.
    fn trigger_for(&self, policy: &Policy) -> Trigger {
        self.trigger(&policy.target)
    }
}

/// Envs by target name.
impl<E: Env> TargetEnvs for BTreeMap<String, E> {
    fn env(&self, target: &TargetRef) -> Option<&dyn Env> {
        self.get(&target.name).map(|e| e as &dyn Env)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("no pending decision {0}")]
    NoSuchDecision(u64),
    #[error("actions are paused")]
    Paused,
    #[error("target {0} already has an action in flight")]
    TargetBusy(String),
    #[error("decision {id} cannot run: it is {status:?}")]
    NotRunnable { id: u64, status: Status },
}

/// Bounded retries for a failing action. Webhooks retry inside the
/// operation (their `retries` field) and are not retried again here.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// The first wait; doubled after each failure.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// What running a decision did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub decision: u64,
    /// False for dry-run decisions.
    pub ran: bool,
    /// Every attempt, in order; the last one decides.
    pub attempts: Vec<Outcome>,
}

impl RunReport {
    pub fn ok(&self) -> bool {
        self.attempts.last().is_some_and(|o| o.ok)
    }
    pub fn outcome(&self) -> Option<&Outcome> {
        self.attempts.last()
    }
}

/// How the judged signal moved after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Same,
    Worse,
}

/// Compares a signal before and after an action: a move of more than
/// `tolerance` (a share of the pre-action value) the wrong way for
/// `better` is worse. Missing or non-finite values give `Same`: no
/// evidence is no reason to roll back.
pub fn verdict(before: f64, after: f64, tolerance: f64, better: Better) -> Verdict {
    if !before.is_finite() || !after.is_finite() {
        return Verdict::Same;
    }
    let margin = before.abs() * tolerance;
    let (up, down) = match better {
        Better::Lower => (Verdict::Worse, Verdict::Better),
        Better::Higher => (Verdict::Better, Verdict::Worse),
    };
    if after > before + margin {
        up
    } else if after < before - margin {
        down
    } else {
        Verdict::Same
    }
}

/// The impact check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Impact {
    pub verdict: Verdict,
    /// The rollback's run, when one ran.
    pub rollback: Option<RunReport>,
}

#[derive(Debug, Clone)]
struct ActionState {
    tracker: ForTracker,
    last_ms: Option<i64>,
    /// Times of decisions in the last hour, oldest first.
    recent: VecDeque<i64>,
    pending: Option<u64>,
}

struct PolicyState {
    policy: Policy,
    version: u32,
    actions: Vec<ActionState>,
}

const HOUR_MS: i64 = 3_600_000;

/// Holds the policies and all the state the safety rules need.
pub struct Executor {
    mode: Mode,
    paused: bool,
    policies: Vec<PolicyState>,
    pending: BTreeMap<u64, Decision>,
    /// Claims on each target: one per action or rollback running on it. A
    /// rollback may claim a target that is already busy, so this is a
    /// count and each [`Self::finish`] releases one claim.
    in_flight: BTreeMap<String, u32>,
    next_id: u64,
    ops: Ops,
    retry: Retry,
    /// Cooldown and hourly history of the actions of removed policies,
    /// by (policy, action), restored if the policy comes back.
    removed: BTreeMap<(String, String), (Option<i64>, VecDeque<i64>)>,
}

fn target_key(t: &TargetRef) -> String {
    format!("{}/{}", t.kind.as_str(), t.name)
}

/// Adds a claim on the target; true when it was free.
fn claim(in_flight: &mut BTreeMap<String, u32>, key: String) -> bool {
    let claims = in_flight.entry(key).or_insert(0);
    *claims += 1;
    *claims == 1
}

impl Executor {
    /// In dry-run mode, with default operations and retries.
    pub fn new(policies: Vec<Policy>) -> Self {
        let mut e = Executor {
            mode: Mode::DryRun,
            paused: false,
            policies: Vec::new(),
            pending: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_id: 1,
            ops: Ops::default(),
            retry: Retry::default(),
            removed: BTreeMap::new(),
        };
        for p in policies {
            e.upsert_policy(p);
        }
        e
    }

    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    pub fn with_ops(mut self, ops: Ops) -> Self {
        self.ops = ops;
        self
    }
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }
    pub fn paused(&self) -> bool {
        self.paused
    }
    /// Paused, nothing is decided or approved; conditions are still
    /// followed so their `for` durations stay right.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Adds a policy, or replaces the one of the same name; returns its
    /// version (1 for a new policy, one more for a changed one).
    /// Cooldowns and hourly counts of actions that keep their name carry
    /// over, so reloading a policy cannot reset its caps.
    pub fn upsert_policy(&mut self, policy: Policy) -> u32 {
        self.install(policy, None)
    }

    /// Like [`Self::upsert_policy`], with the version chosen by the
    /// caller (one that keeps a history of versions across restarts).
    pub fn upsert_policy_as(&mut self, policy: Policy, version: u32) -> u32 {
        self.install(policy, Some(version))
    }

    fn install(&mut self, policy: Policy, version: Option<u32>) -> u32 {
        let fresh = |p: &Policy| -> Vec<ActionState> {
            p.actions
                .iter()
                .map(|a| ActionState {
                    tracker: a.condition.tracker(),
                    last_ms: None,
                    recent: VecDeque::new(),
                    pending: None,
                })
                .collect()
        };
        if let Some(state) = self
            .policies
            .iter_mut()
            .find(|s| s.policy.name == policy.name)
        {
            if state.policy == policy {
                if let Some(v) = version {
                    state.version = v;
                }
                return state.version;
            }
            let mut actions = fresh(&policy);
            for (a, st) in policy.actions.iter().zip(actions.iter_mut()) {
                if let Some(i) = state.policy.actions.iter().position(|o| o.name == a.name) {
                    if let Some(old) = state.actions.get(i) {
                        st.last_ms = old.last_ms;
                        st.recent = old.recent.clone();
                        st.pending = old.pending;
                    }
                }
            }
            state.policy = policy;
            state.version = version.unwrap_or(state.version + 1);
            state.actions = actions;
            return state.version;
        }
        let mut actions = fresh(&policy);
        for (a, st) in policy.actions.iter().zip(actions.iter_mut()) {
            if let Some((last, recent)) =
                self.removed.remove(&(policy.name.clone(), a.name.clone()))
            {
                st.last_ms = last;
                st.recent = recent;
            }
        }
        let v = version.unwrap_or(1);
        self.policies.push(PolicyState {
            policy,
            version: v,
            actions,
        });
        v
    }

    /// Removes a policy; its decisions waiting for approval are dropped
    /// and returned. Its cooldowns and hourly counts are kept, so a
    /// policy removed and added back within the hour keeps its caps.
    pub fn remove_policy(&mut self, name: &str) -> Option<Vec<Decision>> {
        let i = self.policies.iter().position(|s| s.policy.name == name)?;
        let state = self.policies.remove(i);
        for (a, st) in state.policy.actions.iter().zip(&state.actions) {
            self.removed.insert(
                (name.to_string(), a.name.clone()),
                (st.last_ms, st.recent.clone()),
            );
        }
        let dropped: Vec<u64> = self
            .pending
            .values()
            .filter(|d| d.policy == name)
            .map(|d| d.id)
            .collect();
        Some(
            dropped
                .into_iter()
                .filter_map(|id| self.pending.remove(&id))
                .collect(),
        )
    }

    /// The loaded policies with their versions.
    pub fn policies(&self) -> impl Iterator<Item = (&Policy, u32)> {
        self.policies.iter().map(|s| (&s.policy, s.version))
    }

    /// A loaded policy.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|s| s.policy.name == name)
            .map(|s| &s.policy)
    }

    /// The version of a policy, when it is loaded.
    pub fn policy_version(&self, name: &str) -> Option<u32> {
        self.policies
            .iter()
            .find(|s| s.policy.name == name)
            .map(|s| s.version)
    }

    /// Decisions waiting for approval, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Decision> {
        self.pending.values()
    }

    /// Whether an action on this target is running.
    pub fn in_flight(&self, target: &TargetRef) -> bool {
        self.in_flight.contains_key(&target_key(target))
    }

    /// Evaluates every action's condition at `now_ms` and returns what is
    /// due: dry-run records, decisions ready to [`Self::run`], and ones
    /// queued for approval.
    pub fn on_tick(&mut self, now_ms: i64, envs: &dyn TargetEnvs) -> Vec<Decision> {
        let mut out = Vec::new();
        let global = self.mode;
        let paused = self.paused;
        for ps in &mut self.policies {
            let Some(env) = envs.env_for(&ps.policy) else {
                continue;
            };
            let key = target_key(&ps.policy.target);
            for (action, st) in ps.policy.actions.iter().zip(ps.actions.iter_mut()) {
                // A type error here is one the checker reports at load:
                // treated as unknown, which never holds.
                let evaluation = action.condition.evaluate(env).ok();
                let result = evaluation.as_ref().and_then(|e| e.result);
                if !st.tracker.observe(now_ms, result).is_held() {
                    continue;
                }
                // Saturating: these times may come from disk.
                while st
                    .recent
                    .front()
                    .is_some_and(|t| now_ms.saturating_sub(*t) >= HOUR_MS)
                {
                    st.recent.pop_front();
                }
                let mode = if action.dry_run { Mode::DryRun } else { global };
                let cooling = st
                    .last_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) < millis(action.cooldown));
                let capped = st.recent.len() >= action.max_per_hour as usize;
                let busy = mode == Mode::Enforce && self.in_flight.contains_key(&key);
                if paused || st.pending.is_some() || cooling || capped || busy {
                    continue;
                }
                let status = match (mode, action.approval) {
                    (Mode::DryRun, _) => Status::DryRun,
                    (Mode::Enforce, Approval::Manual) => Status::PendingApproval,
                    (Mode::Enforce, Approval::Auto) => Status::Ready,
                };
                let id = self.next_id;
                self.next_id += 1;
                let trigger = envs.trigger_for(&ps.policy);
                let decision = Decision {
                    readings: evaluation.map(|e| e.readings).unwrap_or_default(),
                    mode,
                    status,
                    ..Decision::new(id, now_ms, &ps.policy, ps.version, action, trigger)
                };
                // The condition must hold for its full duration again
                // before the next decision.
                st.tracker.reset();
                match decision.status {
                    Status::PendingApproval => {
                        st.pending = Some(id);
                        self.pending.insert(id, decision.clone());
                    }
                    _ => {
                        st.last_ms = Some(now_ms);
                        st.recent.push_back(now_ms);
                        if decision.status == Status::Ready {
                            claim(&mut self.in_flight, key.clone());
                        }
                    }
                }
                out.push(decision);
            }
        }
        out
    }

    fn action_state(&mut self, d: &Decision) -> Option<&mut ActionState> {
        let ps = self
            .policies
            .iter_mut()
            .find(|s| s.policy.name == d.policy)?;
        let i = ps.policy.actions.iter().position(|a| a.name == d.action)?;
        ps.actions.get_mut(i)
    }

    /// Approves a queued decision; it is then ready to [`Self::run`]. Its
    /// cooldown and hourly count start now.
    pub fn approve(&mut self, id: u64, by: &str, now_ms: i64) -> Result<Decision, ExecError> {
        let d = self.pending.get(&id).ok_or(ExecError::NoSuchDecision(id))?;
        if self.paused {
            return Err(ExecError::Paused);
        }
        let key = target_key(&d.target);
        if self.in_flight.contains_key(&key) {
            return Err(ExecError::TargetBusy(key));
        }
        let mut d = self
            .pending
            .remove(&id)
            .ok_or(ExecError::NoSuchDecision(id))?;
        d.status = Status::Approved { by: by.to_string() };
        claim(&mut self.in_flight, key);
        if let Some(st) = self.action_state(&d) {
            st.pending = None;
            st.last_ms = Some(now_ms);
            st.recent.push_back(now_ms);
        }
        Ok(d)
    }

    /// Rejects a queued decision; the action may be decided again once
    /// its condition holds again.
    pub fn reject(&mut self, id: u64, by: &str) -> Result<Decision, ExecError> {
        let mut d = self
            .pending
            .remove(&id)
            .ok_or(ExecError::NoSuchDecision(id))?;
        d.status = Status::Rejected { by: by.to_string() };
        if let Some(st) = self.action_state(&d) {
            st.pending = None;
        }
        Ok(d)
    }

    /// Runs a ready or approved decision with retries and frees its
    /// target. Dry-run decisions run nothing.
    pub fn run(&mut self, decision: &Decision) -> Result<RunReport, ExecError> {
        if decision.mode == Mode::DryRun || decision.status == Status::DryRun {
            return Ok(RunReport {
                decision: decision.id,
                ran: false,
                attempts: Vec::new(),
            });
        }
        if !matches!(decision.status, Status::Ready | Status::Approved { .. }) {
            return Err(ExecError::NotRunnable {
                id: decision.id,
                status: decision.status.clone(),
            });
        }
        let report = execute(&self.ops, &self.retry, decision, &decision.operation);
        self.finish(decision);
        Ok(report)
    }

    /// Releases one claim on the decision's target, for callers that ran
    /// it with [`execute`] outside the executor (to not hold a lock
    /// meanwhile). The target is free once every claim is released.
    pub fn finish(&mut self, decision: &Decision) {
        let key = target_key(&decision.target);
        if let Some(claims) = self.in_flight.get_mut(&key) {
            *claims -= 1;
            if *claims == 0 {
                self.in_flight.remove(&key);
            }
        }
    }

    /// Claims the decision's target for a rollback; false when another
    /// action on it was in flight (the claim is taken either way, and
    /// [`Self::finish`] releases it without freeing the other's).
    pub fn claim(&mut self, decision: &Decision) -> bool {
        claim(&mut self.in_flight, target_key(&decision.target))
    }

    /// The operation that undoes the decision when its impact is
    /// `verdict`: its action's `rollback` when the policy's guard says
    /// `rollbackIf: worse`, the verdict is worse and the decision ran for
    /// real; otherwise none.
    pub fn rollback_for(&self, decision: &Decision, verdict: Verdict) -> Option<Operation> {
        let rollback_if = self
            .policies
            .iter()
            .find(|s| s.policy.name == decision.policy)
            .map_or(RollbackIf::Worse, |s| s.policy.guard.rollback_if);
        let ran = decision.mode == Mode::Enforce
            && matches!(decision.status, Status::Ready | Status::Approved { .. });
        if verdict != Verdict::Worse || rollback_if != RollbackIf::Worse || !ran {
            return None;
        }
        decision.rollback.clone()
    }

    /// What must survive a restart: decision ids, the pause switch,
    /// cooldowns and hourly counts, and the approval queue.
    pub fn export(&self) -> SavedState {
        let mut actions = Vec::new();
        for ps in &self.policies {
            for (a, st) in ps.policy.actions.iter().zip(&ps.actions) {
                if st.last_ms.is_some() || !st.recent.is_empty() {
                    actions.push(SavedAction {
                        policy: ps.policy.name.clone(),
                        action: a.name.clone(),
                        last_ms: st.last_ms,
                        recent: st.recent.iter().copied().collect(),
                    });
                }
            }
        }
        for ((policy, action), (last_ms, recent)) in &self.removed {
            actions.push(SavedAction {
                policy: policy.clone(),
                action: action.clone(),
                last_ms: *last_ms,
                recent: recent.iter().copied().collect(),
            });
        }
        SavedState {
            next_id: self.next_id,
            paused: self.paused,
            actions,
            pending: self
                .pending
                .values()
                .map(|d| SavedDecision {
                    id: d.id,
                    at_ms: d.at_ms,
                    policy: d.policy.clone(),
                    policy_version: d.policy_version,
                    action: d.action.clone(),
                    readings: d.readings.clone(),
                    alert: d.trigger.alert.clone(),
                    labels: d.trigger.labels.clone(),
                })
                .collect(),
        }
    }

    /// Restores what [`Self::export`] saved, once the policies are
    /// loaded. A queued decision whose policy is gone or has changed
    /// version since is dropped: approving it would run something other
    /// than what was shown. Returns why each one was dropped.
    pub fn restore(&mut self, saved: SavedState) -> Vec<String> {
        self.next_id = self.next_id.max(saved.next_id);
        self.paused = saved.paused;
        for a in saved.actions {
            let recent: VecDeque<i64> = a.recent.into_iter().collect();
            let found = self.policies.iter_mut().find(|s| s.policy.name == a.policy);
            let slot = found.and_then(|ps| {
                let i = ps.policy.actions.iter().position(|x| x.name == a.action)?;
                ps.actions.get_mut(i)
            });
            match slot {
                Some(st) => {
                    st.last_ms = a.last_ms;
                    st.recent = recent;
                }
                None => {
                    self.removed
                        .insert((a.policy, a.action), (a.last_ms, recent));
                }
            }
        }
        let mut dropped = Vec::new();
        for p in saved.pending {
            let Some(ps) = self.policies.iter_mut().find(|s| s.policy.name == p.policy) else {
                dropped.push(format!(
                    "decision {} ({}/{}): the policy is no longer loaded",
                    p.id, p.policy, p.action
                ));
                continue;
            };
            if ps.version != p.policy_version {
                dropped.push(format!(
                    "decision {} ({}/{}): the policy changed from version {} to {}",
                    p.id, p.policy, p.action, p.policy_version, ps.version
                ));
                continue;
            }
            let Some(i) = ps.policy.actions.iter().position(|a| a.name == p.action) else {
                continue;
            };
            let trigger = Trigger {
                alert: p.alert,
                target: ps.policy.target.name.clone(),
                labels: p.labels,
            };
            let decision = Decision {
                readings: p.readings,
                ..Decision::new(
                    p.id,
                    p.at_ms,
                    &ps.policy,
                    p.policy_version,
                    &ps.policy.actions[i],
                    trigger,
                )
            };
            if let Some(st) = ps.actions.get_mut(i) {
                st.pending = Some(p.id);
            }
            self.pending.insert(p.id, decision);
        }
        dropped
    }

    /// Judges the decision's impact from `signal` before and after, under
    /// its policy's guard, and, when worse and the policy says
    /// `rollbackIf: worse`, runs the rollback (unless in dry-run).
    pub fn impact(&mut self, decision: &Decision, signal: &str, before: f64, after: f64) -> Impact {
        let guard = self
            .policy(&decision.policy)
            .map(|p| p.guard.clone())
            .unwrap_or_default();
        let verdict = verdict(before, after, guard.tolerance, guard.better_for(signal));
        let rollback = self.rollback_for(decision, verdict).map(|op| {
            self.claim(decision);
            let report = execute(&self.ops, &self.retry, decision, &op);
            self.finish(decision);
            report
        });
        Impact { verdict, rollback }
    }
}

/// The executor's durable state ([`Executor::export`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedState {
    pub next_id: u64,
    pub paused: bool,
    pub actions: Vec<SavedAction>,
    pub pending: Vec<SavedDecision>,
}

/// When an action last ran, and its runs in the last hour.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedAction {
    pub policy: String,
    pub action: String,
    pub last_ms: Option<i64>,
    pub recent: Vec<i64>,
}

/// A decision waiting for approval.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedDecision {
    pub id: u64,
    pub at_ms: i64,
    pub policy: String,
    pub policy_version: u32,
    pub action: String,
    pub readings: Vec<Reading>,
    pub alert: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Runs `op` for the decision with bounded retries and doubling waits.
/// Needs no executor, so a server can run it without holding one locked.
pub fn execute(ops: &Ops, retry: &Retry, decision: &Decision, op: &Operation) -> RunReport {
    // A webhook retries by itself.
    let attempts_allowed = if op.retries_itself() {
        1
    } else {
        retry.attempts.max(1)
    };
    let mut attempts = Vec::new();
    let mut wait = retry.backoff;
    for n in 0..attempts_allowed {
        if n > 0 {
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2);
        }
        let outcome = ops.run(op, &decision.trigger);
        let ok = outcome.ok;
        // A missing program, privilege or cluster will not appear on retry.
        let hopeless = outcome.error.as_ref().is_some_and(OpError::is_permanent);
        attempts.push(outcome);
        if ok || hopeless {
            break;
        }
    }
    RunReport {
        decision: decision.id,
        ran: true,
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let lower = |b, a| verdict(b, a, 0.05, Better::Lower);
        assert_eq!(lower(1.0, 1.5), Verdict::Worse);
        assert_eq!(lower(1.0, 0.5), Verdict::Better);
        assert_eq!(lower(1.0, 1.01), Verdict::Same);
        assert_eq!(lower(f64::NAN, 3.0), Verdict::Same);
        assert_eq!(lower(0.0, 0.1), Verdict::Worse);
        // Throughput: falling is worse.
        assert_eq!(verdict(100.0, 40.0, 0.05, Better::Higher), Verdict::Worse);
        assert_eq!(verdict(40.0, 100.0, 0.05, Better::Higher), Verdict::Better);
        // A wider tolerance calls a 15% rise noise.
        assert_eq!(verdict(1.0, 1.15, 0.2, Better::Lower), Verdict::Same);
        assert_eq!(verdict(1.0, 1.25, 0.2, Better::Lower), Verdict::Worse);
    }
}
