//! perfpilot's autopilot: policies that turn alerts and profile evidence
//! into actions, checked before anything runs and run under safety rules:
//!
//! - [`policy`]: AutopilotPolicy files (YAML shaped like a Kubernetes custom
//!   resource, several documents per file) into validated [`Policy`]
//!   values, with every error reported at once at its line and column:
//!   unknown fields with did-you-mean suggestions, missing fields, wrong
//!   types, bad durations, unknown operation types, exec commands given
//!   as shell strings, weights, duplicate names, condition errors at
//!   their column in the file.
//! - [`condition`]: the condition language of actions: lexer, parser,
//!   name and type checking against a [`Scope`], three-valued evaluation
//!   over an [`Env`] that records the values read, and [`ForTracker`] for
//!   `for 3m`.
//! - [`diag`]: diagnostics (`line:column: message`) and did-you-mean
//!   suggestions.
//! - `yaml` and `duration` (private): typed field reading over positioned
//!   YAML nodes, with duplicate keys found; durations.
//! - [`ops`]: the operations, one module per kind, each owning its
//!   configuration, validation, run, description and implied rollback
//!   (exec without a shell, alert labels only as environment variables;
//!   webhook with a templated JSON body; restart; degrade; rate-limit with
//!   tc's token bucket on an interface, or a BPF one on a cgroup with the
//!   `cgroup-ratelimit` feature, and `clear: true` to remove it; scale a
//!   Deployment with kubectl), each run an [`ops::Outcome`]; failures a
//!   user can act on (no tc, no CAP_NET_ADMIN, no cluster, a build without
//!   the cgroup rate limiter) have their own [`ops::OpError`].
//! - [`door`]: the one door through which every alert (the baseline
//!   engine's, Alertmanager's) reaches the autopilot, de-duplicated by
//!   Alertmanager's fingerprint.
//! - [`inbox`]: Alertmanager's webhook payloads and the current state of
//!   each alert, idempotent on fingerprint and startsAt.
//! - [`audit`]: the append-only, fsynced audit log (JSON lines) and its
//!   queries; a torn last line is cut off on reopening.
//! - [`runtime`]: the engine that evaluates the policies every second,
//!   runs what is due and judges its impact, the policy directory it
//!   watches, and the source traits (alerts, profiles, metrics, a clock)
//!   it reads the world through.
//! - [`executor`]: deciding when actions run: conditions held for their
//!   duration, dry-run or enforce, cooldowns, hourly caps, one action in
//!   flight per target, pause, manual approval, retries and the impact
//!   check with rollback.
//!
//! ```
//! use perfpilot_autopilot::{parse_policies, Env, Value};
//!
//! let report = parse_policies(
//!     "apiVersion: perfpilot.dev/v1alpha1
//! kind: AutopilotPolicy
//! metadata: {name: web}
//! spec:
//!   targetRef: {kind: SystemdUnit, name: web.service}
//!   actions:
//!     - {name: restart, condition: 'p99 > baseline.p99 * 2 for 3m', operation: {type: restart}}
//! ",
//! );
//! assert!(!report.has_errors(), "{:?}", report.diagnostics);
//! let condition = &report.policies[0].actions[0].condition;
//!
//! struct Now;
//! impl Env for Now {
//!     fn value(&self, name: &str) -> Option<Value> {
//!         match name {
//!             "p99" => Some(Value::Number(0.9)),
//!             "baseline.p99" => Some(Value::Number(0.3)),
//!             _ => None,
//!         }
//!     }
//!     fn alert_firing(&self, _: &str) -> Option<bool> { None }
//!     fn hotspot(&self, _: &str) -> Option<f64> { None }
//! }
//! let evaluation = condition.evaluate(&Now).unwrap();
//! assert!(evaluation.holds());
//! assert_eq!(evaluation.readings[0].to_string(), "p99 = 0.9");
//! // It must hold for 3 minutes before the action is due.
//! let mut tracker = condition.tracker();
//! assert!(!tracker.observe(0, evaluation.result).is_held());
//! assert!(tracker.observe(180_000, evaluation.result).is_held());
//! ```

pub mod audit;
pub mod condition;
pub mod diag;
pub mod door;
mod duration;
pub mod executor;
pub mod inbox;
pub mod ops;
pub mod policy;
pub mod runtime;
mod yaml;

pub use audit::{AuditError, AuditEvent, AuditFilter, AuditLog, AuditRecord, Damage, TornTail};
pub use condition::{
    Condition, ConditionError, Env, Evaluation, ForState, ForTracker, Reading, Scope, Type, Value,
};
pub use diag::{Diagnostic, Severity};
pub use inbox::{
    parse_webhook, parse_webhook_with, AlertStatus, Inbox, InboxAlert, PayloadError, WebhookLimits,
    WebhookPayload,
};
pub use policy::{
    load_bytes, load_file, parse_policies, Action, Approval, Better, Guard, Loaded, Operation,
    Policy, PolicyError, Report, RollbackIf, Signal, SignalSource, TargetKind, TargetRef,
};
