//! The autopilot's runtime: the engine that evaluates the policies every
//! second and runs what is due ([`engine`]), what its conditions read
//! ([`signals`]), and the policy directory it watches with every
//! policy's versions ([`policies`]).
//!
//! It reads the world through [`sources`]: the baseline engine's alerts
//! and values, profiles for hotspots, metric queries and a clock, each a
//! trait the server implements (and tests fake). Alerts from
//! Alertmanager reach it through the [`AlertDoor`] of its [`Autopilot`].

pub mod engine;
pub mod policies;
pub mod signals;
pub mod sources;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditError, AuditLog};
use crate::door::AlertDoor;
use crate::executor::Mode;
use crate::inbox::Inbox;

pub use engine::{Engine, EngineError};
pub use policies::{PoliciesError, PolicyView};
pub use signals::Sources;

/// The alert inbox, the door and the audit log, locked together so an
/// alert's audit record and its inbox state never disagree.
pub struct Autopilot {
    /// Alertmanager's alerts as its webhook last posted them (for the
    /// audit log and the alerts API).
    pub inbox: Inbox,
    /// Every alert the engine reads, from Alertmanager and from the
    /// baseline engine, each once by fingerprint.
    pub door: AlertDoor,
    pub audit: AuditLog,
    /// The autopilot directory: the audit log, the engine's state and
    /// the policies' versions.
    pub dir: PathBuf,
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
            door: AlertDoor::new(),
            audit,
            dir: dir.to_path_buf(),
            engine: None,
        }))))
    }

    /// Loads the policies in `dir` (invalid files are reported and
    /// skipped), restores the engine's state from the autopilot
    /// directory, and starts the engine's thread: every second it
    /// evaluates the policies, records each decision, runs what is due
    /// and judges the impact of what ran; every two seconds it reloads
    /// changed policy files. It stops when `stop` is set.
    pub fn start_engine(
        &self,
        dir: &Path,
        mode: Mode,
        sources: Sources,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Engine>, EngineError> {
        let state_dir = lock(&self.0).dir.clone();
        let engine = Engine::open(self, dir, &state_dir, mode, sources)?;
        lock(&self.0).engine = Some(Arc::clone(&engine));
        engine.spawn(self.clone(), stop)?;
        Ok(engine)
    }
}

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
    /// `dry-run`, `pending-approval`, `running`, `succeeded`, `failed`,
    /// `rejected` or `rolled-back`.
    pub status: String,
    /// Who approved or rejected it.
    pub by: Option<String>,
    pub exit_status: Option<i32>,
    pub error: Option<String>,
    /// How many times it was tried (0 when it did not run).
    #[serde(default)]
    pub attempts: u32,
    /// What it printed or answered (the last attempt's, truncated).
    #[serde(default)]
    pub output: Option<String>,
    /// The impact check of an action that ran.
    #[serde(default)]
    pub impact: Option<ImpactView>,
}

/// How an action's impact was judged.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ImpactView {
    /// `pending`, `better`, `same`, `worse` or `unknown`.
    pub status: String,
    /// The signal judged (`p99`, `hotspot("f")`, a signal's name).
    pub signal: Option<String>,
    /// Its median over the impact window before and after the action.
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// When the verdict is due (Unix ms).
    pub due_ms: i64,
    /// `succeeded` or `failed` when a rollback ran.
    pub rollback: Option<String>,
}

pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::DryRun => "dry-run",
        Mode::Enforce => "enforce",
    }
}

/// Writes `bytes` beside `path`, syncs them, renames them in and syncs
/// the directory: a crash leaves the old file or the new one, never part
/// of either, and a failure leaves no temporary file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    perfpilot_fsio::write_atomically(path, bytes)
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop the autopilot: its state is still
    // consistent (every update is a single assignment or push).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
