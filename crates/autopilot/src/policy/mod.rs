//! AutopilotPolicy: the validated form of a policy file.
//!
//! ```yaml
//! apiVersion: perfpilot.dev/v1alpha1
//! kind: AutopilotPolicy
//! metadata: {name: checkout-latency}
//! spec:
//!   targetRef: {kind: Service, name: checkout}
//!   signals:
//!     - {name: hot, type: hotspot, function: encrypt_data, weight: 0.7}
//!   actions:
//!     - name: restart
//!       condition: 'alert("CheckoutHighLatency").firing and p99 > baseline.p99 * 1.3 for 3m'
//!       operation: {type: exec, command: [/usr/bin/systemctl, restart, checkout]}
//!       cooldown: 10m
//!       maxPerHour: 3
//!       approval: auto
//!   guard: {impactWindow: 5m, rollbackIf: worse, tolerance: 5%}
//! ```
//!
//! [`parse_policies`] reads every document of a file and reports every
//! error with its line and column; [`load_file`] does the same for a path.

mod parse;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::condition::{Condition, Type};
use crate::diag::Diagnostic;

pub use crate::ops::{
    Degrade, Exec, Operation, RateLimit, RateLimitChange, RateLimitTarget, Restart, RestartTarget,
    Scale, ScaleChange, Webhook,
};
pub use parse::parse_policies;

pub const API_VERSION: &str = "perfpilot.dev/v1alpha1";
pub const KIND: &str = "AutopilotPolicy";

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub target: TargetRef,
    pub signals: Vec<Signal>,
    pub actions: Vec<Action>,
    pub guard: Guard,
    /// Line of the document's first node in its file.
    pub line: usize,
}

impl Policy {
    pub fn signal(&self, name: &str) -> Option<&Signal> {
        self.signals.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub kind: TargetKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A service as the baseline engine and the profiles name it.
    Service,
    Process,
    SystemdUnit,
    /// A Kubernetes Deployment.
    Deployment,
}

impl TargetKind {
    pub const NAMES: [&'static str; 4] = ["Service", "Process", "SystemdUnit", "Deployment"];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Service => "Service",
            TargetKind::Process => "Process",
            TargetKind::SystemdUnit => "SystemdUnit",
            TargetKind::Deployment => "Deployment",
        }
    }
}

/// A named input of the policy's conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// An identifier, usable in conditions.
    pub name: String,
    pub source: SignalSource,
    /// Its part in the policy's evidence, 0 to 1.
    pub weight: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalSource {
    /// The function's share of CPU in the target's profile.
    Hotspot { function: String },
    /// A PromQL query's value.
    Prometheus { query: String },
    /// A baseline engine feature (`latency_p99_ms`, `errors`, ...).
    Baseline { feature: String },
    /// Whether the named alert fires for the target.
    Alert { alert_name: String },
}

impl SignalSource {
    pub const TYPES: [&'static str; 4] = ["hotspot", "prometheus", "baseline", "alert"];

    pub fn type_name(&self) -> &'static str {
        match self {
            SignalSource::Hotspot { .. } => "hotspot",
            SignalSource::Prometheus { .. } => "prometheus",
            SignalSource::Baseline { .. } => "baseline",
            SignalSource::Alert { .. } => "alert",
        }
    }

    /// What the signal's name evaluates to in a condition.
    pub fn value_type(&self) -> Type {
        match self {
            SignalSource::Alert { .. } => Type::Bool,
            _ => Type::Number,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub name: String,
    pub condition: Condition,
    pub operation: Operation,
    /// What undoes the operation when the guard finds it made things worse.
    pub rollback: Option<Operation>,
    /// Least time between two runs (default 10m).
    pub cooldown: Duration,
    /// Most runs in any hour (default 3).
    pub max_per_hour: u32,
    pub approval: Approval,
    /// Record what would run, run nothing.
    pub dry_run: bool,
}

pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(600);
pub const DEFAULT_MAX_PER_HOUR: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    Auto,
    /// The default: a person approves each run.
    Manual,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    /// How long after an action its impact is judged (default 5m).
    pub impact_window: Duration,
    pub rollback_if: RollbackIf,
    /// The signal or metric judged; by default the ones the condition read.
    pub signal: Option<String>,
    /// Changes within this share of the pre-action value are noise
    /// (default 5%).
    pub tolerance: f64,
    /// Which way the judged signal improves; unset, `rps` improves
    /// upward and everything else (latency, errors, CPU) downward.
    pub better: Option<Better>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            impact_window: Duration::from_secs(300),
            rollback_if: RollbackIf::Worse,
            signal: None,
            tolerance: 0.05,
            better: None,
        }
    }
}

impl Guard {
    /// Which way `signal` improves under this guard.
    pub fn better_for(&self, signal: &str) -> Better {
        self.better.unwrap_or(if signal == "rps" {
            Better::Higher
        } else {
            Better::Lower
        })
    }
}

/// The direction in which a judged signal improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackIf {
    Worse,
    Never,
}

/// What [`parse_policies`] found: the policies of the documents without
/// errors, and every diagnostic in order of position.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub policies: Vec<Policy>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {} error(s), the first: {}", path.display(), .diagnostics.iter().filter(|d| d.is_error()).count(), first_error(.diagnostics))]
    Invalid {
        path: PathBuf,
        /// Errors and warnings, in order of position.
        diagnostics: Vec<Diagnostic>,
    },
}

fn first_error(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .find(|d| d.is_error())
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// A valid file's policies, with its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub policies: Vec<Policy>,
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates a policy file: all its policies, or every error.
pub fn load_file(path: &Path) -> Result<Loaded, PolicyError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_bytes(path, &bytes)
}

/// As [`load_file`], for a file's contents already read (`path` names it
/// in errors): what is loaded is exactly what the caller holds.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded, PolicyError> {
    let source = std::str::from_utf8(bytes).map_err(|e| PolicyError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let report = parse_policies(source);
    if report.has_errors() {
        return Err(PolicyError::Invalid {
            path: path.to_path_buf(),
            diagnostics: report.diagnostics,
        });
    }
    Ok(Loaded {
        policies: report.policies,
        warnings: report.diagnostics,
    })
}

/// An RFC 1123 label, as Kubernetes names namespaces: at most 63
/// lower-case letters, digits and `-`, starting and ending with a letter
/// or digit.
pub(crate) fn dns_label(s: &str) -> bool {
    s.len() <= 63 && label_chars(s)
}

/// An RFC 1123 subdomain, as Kubernetes names Deployments (and as
/// policies are named): labels joined by single dots, at most 253 in all.
pub(crate) fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(label_chars)
}

/// A label's characters, without its length: not empty, lower-case
/// letters, digits and `-`, a letter or digit at either end. Kubernetes
/// limits the labels of a subdomain only by the subdomain's length.
fn label_chars(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || c == '-')
}

#[cfg(test)]
mod tests;
