//! The policy directory the server watches, and the history of every
//! policy's versions.
//!
//! Each distinct content of a policy gets the next version number, and the
//! file it came from is kept as `DIR/policies/NAME/vNNNNNN.yaml` under the
//! autopilot directory, so numbers and contents survive restarts and any
//! version can be restored. A rollback installs an earlier version's
//! content as a new version and pins it: the policy's file is not read for
//! that policy again until the file changes (an edit is a newer decision
//! than the rollback).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::sources::{Notice, Notices};
use crate::audit::AuditEvent;
use crate::executor::{Decision, Executor};
use crate::{load_bytes, parse_policies, Policy, PolicyError};
use serde::{Deserialize, Serialize};

/// Why a policy directory could not be read or a version kept.
#[derive(Debug, thiserror::Error)]
pub enum PoliciesError {
    #[error("cannot read the policy directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot keep a policy version in {}: {source}", path.display())]
    History {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no policy named {0:?} is loaded")]
    NoSuchPolicy(String),
    #[error("policy {name:?} has no version {version} (versions 1 to {latest} are kept)")]
    NoSuchVersion {
        name: String,
        version: u32,
        latest: u32,
    },
    #[error("version {version} of policy {name:?} no longer parses: {message}")]
    Unreadable {
        name: String,
        version: u32,
        message: String,
    },
}

/// A rollback in force: the policy stays at `version` while its file's
/// content hash is `file_hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    pub version: u32,
    pub restored: u32,
    pub file: Option<PathBuf>,
    pub file_hash: u64,
}

/// Policy files and their contents, by path.
pub type Scan = BTreeMap<PathBuf, Vec<u8>>;

/// A loaded policy as `GET /api/v1/policies` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    pub name: String,
    pub version: u32,
    /// Versions kept, oldest first.
    pub versions: Vec<u32>,
    pub file: Option<String>,
    /// `Kind/name`.
    pub target: String,
    pub actions: Vec<String>,
    /// When a rollback is in force: the version whose content it restored.
    pub restored_from: Option<u32>,
}

/// FNV-1a: a stable content hash (std's hasher may change between
/// releases, and these hashes are kept on disk).
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Policy names are checked by the parser (DNS labels), so they are safe
/// as directory names; anything else is refused rather than escaped.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

pub struct Policies {
    dir: PathBuf,
    history: PathBuf,
    /// Each file's content hash when last read.
    seen: BTreeMap<PathBuf, u64>,
    /// Which file each loaded policy came from.
    owner: BTreeMap<String, PathBuf>,
    pub pins: BTreeMap<String, Pin>,
    notices: Notices,
}

/// What a reload changed, for the audit log.
pub type Changes = Vec<(AuditEvent, Vec<Decision>)>;

impl Policies {
    pub fn new(
        dir: &Path,
        state_dir: &Path,
        pins: BTreeMap<String, Pin>,
        notices: Notices,
    ) -> Self {
        Policies {
            dir: dir.to_path_buf(),
            history: state_dir.join("policies"),
            seen: BTreeMap::new(),
            owner: BTreeMap::new(),
            pins,
            notices,
        }
    }

    fn say(&self, message: &str) {
        (self.notices)(Notice::Message(message));
    }

    fn versions(&self, name: &str) -> Vec<u32> {
        let mut out: Vec<u32> = std::fs::read_dir(self.history.join(name))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let n = e.ok()?.file_name().into_string().ok()?;
                n.strip_prefix('v')?.strip_suffix(".yaml")?.parse().ok()
            })
            .collect();
        out.sort_unstable();
        out
    }

    fn version_path(&self, name: &str, version: u32) -> PathBuf {
        self.history.join(name).join(format!("v{version:06}.yaml"))
    }

    /// The policy named `name` as version `version` held it.
    fn stored(&self, name: &str, version: u32) -> Result<Policy, PoliciesError> {
        let latest = self.versions(name).last().copied().unwrap_or(0);
        let text = std::fs::read_to_string(self.version_path(name, version)).map_err(|_| {
            PoliciesError::NoSuchVersion {
                name: name.into(),
                version,
                latest,
            }
        })?;
        let report = parse_policies(&text);
        let unreadable = |message: String| PoliciesError::Unreadable {
            name: name.into(),
            version,
            message,
        };
        if report.has_errors() {
            let first = report
                .diagnostics
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(unreadable(first));
        }
        report
            .policies
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| unreadable("the policy is not in it".into()))
    }

    /// The version `policy` gets: the latest kept one when it holds the
    /// same policy, else a new one, kept with `text`.
    fn version_for(&self, policy: &Policy, text: &str) -> Result<(u32, bool), PoliciesError> {
        let latest = self.versions(&policy.name).last().copied();
        // Where in its file a policy sits is not part of it.
        let placeless = |p: &Policy| Policy {
            line: 0,
            ..p.clone()
        };
        if let Some(v) = latest {
            if self.stored(&policy.name, v).ok().map(|p| placeless(&p)) == Some(placeless(policy)) {
                return Ok((v, false));
            }
        }
        let v = latest.unwrap_or(0) + 1;
        self.keep(&policy.name, v, text)?;
        Ok((v, true))
    }

    fn keep(&self, name: &str, version: u32, text: &str) -> Result<(), PoliciesError> {
        let path = self.version_path(name, version);
        let err = |source| PoliciesError::History {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        // A crash leaves the old set whole.
        super::write_atomically(&path, text.as_bytes()).map_err(err)
    }

    /// The directory's policy files and their contents: read with no
    /// lock held, then given to [`apply`](Self::apply).
    pub fn scan(&self) -> Result<Scan, PoliciesError> {
        let err = |source| PoliciesError::Dir {
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
            if !yaml || !path.is_file() {
                continue;
            }
            // A file removed between listing and reading is skipped.
            if let Ok(bytes) = std::fs::read(&path) {
                files.insert(path, bytes);
            }
        }
        Ok(files)
    }

    /// Loads new and changed files into the executor and removes the
    /// policies of removed files (and ones taken out of a file). Invalid
    /// files are reported on stderr and skipped, their earlier policies
    /// kept. Returns what changed, for the audit log.
    pub fn reload(&mut self, executor: &mut Executor) -> Result<Changes, PoliciesError> {
        let now = self.scan()?;
        self.apply(&now, executor)
    }

    /// [`reload`](Self::reload) from a [`scan`](Self::scan) taken earlier.
    pub fn apply(&mut self, now: &Scan, executor: &mut Executor) -> Result<Changes, PoliciesError> {
        let mut changes = Vec::new();
        for (path, bytes) in now {
            let h = hash(bytes);
            if self.seen.get(path) == Some(&h) {
                continue;
            }
            let name = path.display().to_string();
            // The bytes hashed are the bytes loaded and kept.
            let loaded = match load_bytes(path, bytes) {
                Ok(l) => l,
                Err(PolicyError::Invalid { diagnostics, .. }) => {
                    for d in &diagnostics {
                        (self.notices)(Notice::Diagnostic(&d.in_file(&name)));
                    }
                    self.say(&format!("{name} is invalid and was not loaded"));
                    continue;
                }
                Err(e @ PolicyError::Io { .. }) => {
                    self.say(&e.to_string());
                    continue;
                }
            };
            for w in &loaded.warnings {
                (self.notices)(Notice::Diagnostic(&w.in_file(&name)));
            }
            let text = String::from_utf8_lossy(bytes);
            let mut names = Vec::new();
            for p in loaded.policies {
                names.push(p.name.clone());
                if !safe_name(&p.name) {
                    self.say(&format!(
                        "{name}: policy name {:?} cannot be kept; skipped",
                        p.name
                    ));
                    continue;
                }
                if let Some(pin) = self.pins.get(&p.name) {
                    if pin.file.as_deref() == Some(path.as_path()) && pin.file_hash == h {
                        self.owner.insert(p.name.clone(), path.clone());
                        continue;
                    }
                    self.say(&format!(
                        "{name} changed: policy {} leaves its rollback to version {}",
                        p.name, pin.restored
                    ));
                    self.pins.remove(&p.name);
                }
                let policy = p.name.clone();
                let before = executor.policy_version(&policy);
                let (version, _) = self.version_for(&p, &text)?;
                executor.upsert_policy_as(p, version);
                self.owner.insert(policy.clone(), path.clone());
                if before != Some(version) {
                    self.say(&format!("policy {policy} version {version} from {name}"));
                    changes.push((
                        AuditEvent::PolicyChange {
                            policy,
                            version,
                            change: if before.is_some() {
                                "updated"
                            } else {
                                "loaded"
                            }
                            .into(),
                            source: name.clone(),
                            restored: None,
                        },
                        Vec::new(),
                    ));
                }
            }
            // Policies this file held before and holds no longer.
            let gone: Vec<String> = self
                .owner
                .iter()
                .filter(|(n, f)| *f == path && !names.contains(n))
                .map(|(n, _)| n.clone())
                .collect();
            for n in gone {
                changes.push(self.remove(executor, &n, &name));
            }
        }
        let removed: Vec<(String, PathBuf)> = self
            .owner
            .iter()
            .filter(|(_, f)| !now.contains_key(*f))
            .map(|(n, f)| (n.clone(), f.clone()))
            .collect();
        for (n, f) in removed {
            changes.push(self.remove(executor, &n, &f.display().to_string()));
        }
        self.seen = now.iter().map(|(p, b)| (p.clone(), hash(b))).collect();
        Ok(changes)
    }

    fn remove(
        &mut self,
        executor: &mut Executor,
        name: &str,
        file: &str,
    ) -> (AuditEvent, Vec<Decision>) {
        let version = executor.policy_version(name).unwrap_or(0);
        let dropped = executor.remove_policy(name).unwrap_or_default();
        self.owner.remove(name);
        self.pins.remove(name);
        self.say(&format!(
            "policy {name} was removed from {file} and is no longer in force"
        ));
        (
            AuditEvent::PolicyChange {
                policy: name.into(),
                version,
                change: "removed".into(),
                source: file.into(),
                restored: None,
            },
            dropped,
        )
    }

    /// Restores version `to` of `name` as a new version and pins it until
    /// its file changes.
    pub fn rollback(
        &mut self,
        executor: &mut Executor,
        name: &str,
        to: u32,
        by: &str,
    ) -> Result<AuditEvent, PoliciesError> {
        if executor.policy(name).is_none() {
            return Err(PoliciesError::NoSuchPolicy(name.into()));
        }
        let policy = self.stored(name, to)?;
        let text = std::fs::read_to_string(self.version_path(name, to)).map_err(|source| {
            PoliciesError::History {
                path: self.version_path(name, to),
                source,
            }
        })?;
        let current = executor.policy_version(name).unwrap_or(0);
        let latest = self.versions(name).last().copied().unwrap_or(0);
        let version = latest.max(current) + 1;
        self.keep(name, version, &text)?;
        executor.upsert_policy_as(policy, version);
        let file = self.owner.get(name).cloned();
        let file_hash = file
            .as_ref()
            .and_then(|f| self.seen.get(f))
            .copied()
            .unwrap_or(0);
        self.pins.insert(
            name.into(),
            Pin {
                version,
                restored: to,
                file,
                file_hash,
            },
        );
        self.say(&format!(
            "policy {name} rolled back to version {to}'s content as version {version} by {by}"
        ));
        Ok(AuditEvent::PolicyChange {
            policy: name.into(),
            version,
            change: "rolled_back".into(),
            source: by.into(),
            restored: Some(to),
        })
    }

    /// Installs pinned versions at startup, before the first reload.
    pub fn apply_pins(&mut self, executor: &mut Executor) {
        let pins: Vec<(String, Pin)> = self.pins.clone().into_iter().collect();
        for (name, pin) in pins {
            match self.stored(&name, pin.version) {
                Ok(p) => {
                    executor.upsert_policy_as(p, pin.version);
                    if let Some(f) = &pin.file {
                        self.owner.insert(name.clone(), f.clone());
                    }
                }
                Err(e) => {
                    self.say(&format!("the rollback of policy {name} is lost: {e}"));
                    self.pins.remove(&name);
                }
            }
        }
    }

    pub fn views(&self, executor: &Executor) -> Vec<PolicyView> {
        executor
            .policies()
            .map(|(p, version)| PolicyView {
                name: p.name.clone(),
                version,
                versions: self.versions(&p.name),
                file: self.owner.get(&p.name).map(|f| f.display().to_string()),
                target: format!("{}/{}", p.target.kind.as_str(), p.target.name),
                actions: p.actions.iter().map(|a| a.name.clone()).collect(),
                restored_from: self.pins.get(&p.name).map(|pin| pin.restored),
            })
            .collect()
    }
}
