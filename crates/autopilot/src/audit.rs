//! The audit log: an append-only file of JSON lines, one [`AuditRecord`]
//! per line, each with a sequence number and a timestamp.
//!
//! Durability: [`AuditLog::append`] and [`AuditLog::append_all`] return
//! only after the records are written and `fdatasync`ed, so a record whose
//! append returned survives a crash or power loss. A batch is one write and
//! one sync: either all of it is complete after a crash, or its complete
//! lines are and the rest is a torn tail.
//!
//! A failed append is cut back off the file, so the log ends on a whole
//! line as before; if that fails too, nothing more is appended until it
//! succeeds (each append tries again first). So a torn line is only ever
//! the last one: a crash mid-write. [`AuditLog::open`] keeps every
//! complete record, truncates the torn tail and reports it
//! ([`AuditLog::recovered`]). A damaged line before the last one (the disk
//! changed it, or a version before this one appended after a torn write)
//! never costs the records after it: the file as it was is kept aside
//! (`audit.jsonl.<ms>.damaged`), the log rewritten with its whole records
//! (a whole record glued after a torn one included), and both reported
//! ([`AuditLog::damaged`] and a line on stderr).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use perfpilot_fsio as fsio;
use serde::{Deserialize, Serialize};

use crate::inbox::{AlertStatus, Labels};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: not an audit record ({message}); the log is damaged before its last line, so it is left as it is")]
    Corrupt {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("cannot write an audit record as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1, 2, 3, ... in the order appended; never reused.
    pub seq: u64,
    /// Unix milliseconds when appended.
    pub at_ms: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// What happened. Serialized with a `kind` field naming the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// An alert new to the inbox, or one that changed (resolved, new
    /// labels or annotations).
    AlertReceived {
        source: String,
        fingerprint: String,
        alertname: Option<String>,
        status: AlertStatus,
        /// `new`, `resolved` or `updated`.
        change: String,
        starts_at: String,
        ends_at: Option<String>,
        labels: Labels,
        annotations: Labels,
    },
    /// A policy's action condition was evaluated and something was
    /// decided (`run`, `dry_run`, `await_approval`, `cooldown`, `cap`,
    /// `paused`, ...).
    Decision {
        /// The decision's id (`GET /api/v1/actions`), linking its
        /// approval, run, impact and rollback records. Absent in records
        /// written before ids were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<u64>,
        policy: String,
        policy_version: String,
        action: String,
        condition: String,
        /// The values the condition read, as `name = value`.
        readings: Vec<String>,
        outcome: String,
        /// `dry-run` or `enforce`: the mode the action was decided in.
        /// Absent in records written before modes were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
        /// `Kind/name` of the policy's target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// An operation ran (or was only described, when `dry_run`).
    ActionRun {
        /// The decision's id (`GET /api/v1/actions`), linking its
        /// approval, run, impact and rollback records. Absent in records
        /// written before ids were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<u64>,
        policy: String,
        action: String,
        operation: String,
        dry_run: bool,
        output: String,
        /// The exit status or HTTP status; None when it did not finish.
        exit_status: Option<i32>,
        error: Option<String>,
        /// Over all attempts.
        duration_ms: u64,
        /// How many times it was tried (failures are retried with
        /// doubling waits); 0 in dry-run.
        #[serde(default)]
        attempts: u32,
    },
    /// Whether an action made its target better or worse.
    Impact {
        /// The decision's id (`GET /api/v1/actions`), linking its
        /// approval, run, impact and rollback records. Absent in records
        /// written before ids were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<u64>,
        policy: String,
        action: String,
        /// `better`, `same`, `worse` or `unknown` (no data to judge by).
        verdict: String,
        detail: String,
        /// The signal judged, and its median over the impact window
        /// before the action and after it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<f64>,
    },
    Approval {
        /// The decision's id (`GET /api/v1/actions`), linking its
        /// approval, run, impact and rollback records. Absent in records
        /// written before ids were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<u64>,
        policy: String,
        action: String,
        by: String,
        approved: bool,
        reason: Option<String>,
    },
    Rollback {
        /// The decision's id (`GET /api/v1/actions`), linking its
        /// approval, run, impact and rollback records. Absent in records
        /// written before ids were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<u64>,
        policy: String,
        action: String,
        reason: String,
        operation: String,
        output: String,
        exit_status: Option<i32>,
        error: Option<String>,
    },
    /// A policy was loaded, changed, removed or rolled back.
    PolicyChange {
        policy: String,
        /// The version now in force (the last one, when removed).
        version: u32,
        /// `loaded`, `updated`, `removed` or `rolled_back`.
        change: String,
        /// The file it came from, or who rolled it back.
        source: String,
        /// For a rollback: the version whose content was restored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restored: Option<u32>,
    },
    /// The global pause switch moved.
    Pause { paused: bool, by: String },
}

impl AuditEvent {
    pub const KINDS: [&'static str; 8] = [
        "alert_received",
        "decision",
        "action_run",
        "impact",
        "approval",
        "rollback",
        "policy_change",
        "pause",
    ];

    /// The `kind` field's value.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::AlertReceived { .. } => "alert_received",
            AuditEvent::Decision { .. } => "decision",
            AuditEvent::ActionRun { .. } => "action_run",
            AuditEvent::Impact { .. } => "impact",
            AuditEvent::Approval { .. } => "approval",
            AuditEvent::Rollback { .. } => "rollback",
            AuditEvent::PolicyChange { .. } => "policy_change",
            AuditEvent::Pause { .. } => "pause",
        }
    }

    /// The policy it concerns; alerts concern none.
    pub fn policy(&self) -> Option<&str> {
        match self {
            AuditEvent::AlertReceived { .. } | AuditEvent::Pause { .. } => None,
            AuditEvent::Decision { policy, .. }
            | AuditEvent::PolicyChange { policy, .. }
            | AuditEvent::ActionRun { policy, .. }
            | AuditEvent::Impact { policy, .. }
            | AuditEvent::Approval { policy, .. }
            | AuditEvent::Rollback { policy, .. } => Some(policy),
        }
    }

    /// The decision it belongs to: a decision's own record, its approval,
    /// run, impact and rollback.
    pub fn decision(&self) -> Option<u64> {
        match self {
            AuditEvent::Decision { decision, .. }
            | AuditEvent::ActionRun { decision, .. }
            | AuditEvent::Impact { decision, .. }
            | AuditEvent::Approval { decision, .. }
            | AuditEvent::Rollback { decision, .. } => *decision,
            AuditEvent::AlertReceived { .. }
            | AuditEvent::PolicyChange { .. }
            | AuditEvent::Pause { .. } => None,
        }
    }
}

/// Which records [`AuditLog::query`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub kind: Option<String>,
    pub policy: Option<String>,
    /// The records of one decision.
    pub decision: Option<u64>,
    /// Records at or after this Unix millisecond.
    pub since_ms: Option<i64>,
    /// At most this many (the newest); None for all.
    pub limit: Option<usize>,
}

impl AuditFilter {
    fn matches(&self, r: &AuditRecord) -> bool {
        self.kind.as_deref().is_none_or(|k| r.event.kind() == k)
            && self
                .policy
                .as_deref()
                .is_none_or(|p| r.event.policy() == Some(p))
            && self.decision.is_none_or(|d| r.event.decision() == Some(d))
            && self.since_ms.is_none_or(|t| r.at_ms >= t)
    }
}

/// What opening found at the end of the file after a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where the complete records end (the file's new length).
    pub offset: u64,
    /// Bytes cut off.
    pub bytes: u64,
}

/// Damaged lines with whole records after them, found when opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Their line numbers (1-based) in the file as it was.
    pub lines: Vec<u64>,
    /// Where the file as it was is kept; None when no copy could be made.
    pub kept_as: Option<PathBuf>,
}

pub struct AuditLog {
    path: PathBuf,
    file: File,
    next_seq: u64,
    len: u64,
    recovered: Option<TornTail>,
    damaged: Option<Damage>,
    /// A failed append could not be cut back off: the file may end in a
    /// torn line, so nothing is appended until it is.
    torn: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, cutting off a torn last line
    /// and setting damaged ones aside (see the module's documentation).
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog, AuditError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let existed = path.exists();
        let mut file = fsio::open_append(&path).map_err(io_err)?;
        if !existed {
            // The new file's directory entry must be durable too.
            sync_parent(&path).map_err(io_err)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        let found = scan(&bytes);
        let tail = bytes.len() - found.good;
        let mut damaged = None;
        let mut good = found.good;
        if !found.damaged_lines.is_empty() {
            let kept_as = keep_aside(&path, &bytes, &found).map_err(io_err)?;
            let mut whole = Vec::with_capacity(found.good);
            for r in &found.kept {
                whole.extend_from_slice(&bytes[r.clone()]);
            }
            fsio::write_atomically(&path, &whole).map_err(io_err)?;
            file = fsio::open_append(&path).map_err(io_err)?;
            tracing::warn!(
                path = %path.display(),
                damaged_lines = ?found.damaged_lines,
                kept_records = found.kept.len(),
                kept_as = %kept_as.display(),
                "audit log: damaged lines set aside and the whole records kept (the file as it was is at kept_as)"
            );
            damaged = Some(Damage {
                lines: found.damaged_lines.clone(),
                kept_as: Some(kept_as),
            });
            // The torn tail, if any, is left out of the rewritten file.
            good = whole.len();
        } else if tail > 0 {
            fsio::set_len(&file, &path, good as u64).map_err(io_err)?;
            fsio::sync_all(&file, &path).map_err(io_err)?;
        }
        let mut recovered = None;
        if tail > 0 {
            tracing::warn!(
                path = %path.display(),
                bytes = tail,
                "audit log: a torn last line (never acknowledged) cut off"
            );
            recovered = Some(TornTail {
                offset: good as u64,
                bytes: tail as u64,
            });
        }
        // Appends go to the end whatever the cursor; this is for clarity.
        file.seek(SeekFrom::End(0)).map_err(io_err)?;
        Ok(AuditLog {
            path,
            file,
            next_seq: found.last_seq + 1,
            len: good as u64,
            recovered,
            damaged,
            torn: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The torn tail cut off when opening, if there was one.
    pub fn recovered(&self) -> Option<&TornTail> {
        self.recovered.as_ref()
    }

    /// Damage found before the last line when opening, if any.
    pub fn damaged(&self) -> Option<&Damage> {
        self.damaged.as_ref()
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends one record; durable when this returns.
    pub fn append(&mut self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let record = AuditRecord {
            seq: self.next_seq,
            at_ms: now_ms(),
            event,
        };
        let mut buf = serde_json::to_vec(&record)?;
        buf.push(b'\n');
        self.commit(&buf, 1)?;
        Ok(record)
    }

    /// Appends records with one write and one sync; durable when this
    /// returns.
    pub fn append_all(&mut self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, AuditError> {
        let at_ms = now_ms();
        let mut buf = Vec::new();
        let mut records = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let record = AuditRecord {
                seq: self.next_seq + i as u64,
                at_ms,
                event,
            };
            serde_json::to_writer(&mut buf, &record)?;
            buf.push(b'\n');
            records.push(record);
        }
        if !records.is_empty() {
            self.commit(&buf, records.len() as u64)?;
        }
        Ok(records)
    }

    /// Writes and syncs `buf` holding `count` records. On error nothing
    /// is acknowledged, the sequence numbers are not used up, and the
    /// file ends where it did.
    fn commit(&mut self, buf: &[u8], count: u64) -> Result<(), AuditError> {
        let io_err = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        if self.torn {
            fsio::set_len(&self.file, &self.path, self.len).map_err(|e| {
                io_err(io::Error::new(
                    e.kind(),
                    format!(
                        "a failed append could not be cut back off ({e}); nothing is appended \
                         until it can be"
                    ),
                ))
            })?;
            self.torn = false;
        }
        let result = fsio::write_all(&mut self.file, &self.path, buf)
            .and_then(|()| fsio::sync_data(&self.file, &self.path));
        if let Err(source) = result {
            // Never append after a torn line: cut it off now, or before
            // the next append.
            if fsio::set_len(&self.file, &self.path, self.len).is_err() {
                self.torn = true;
            }
            return Err(io_err(source));
        }
        self.len += buf.len() as u64;
        self.next_seq += count;
        Ok(())
    }

    /// Records matching `filter`, newest first. Reads the file: the log
    /// on disk is the only copy. Only the newest `limit` matches are kept
    /// while reading.
    pub fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        let file = File::open(&self.path).map_err(|source| AuditError::Io {
            path: self.path.clone(),
            source,
        })?;
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut newest = VecDeque::new();
        let mut read = 0u64;
        for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(|source| AuditError::Io {
                path: self.path.clone(),
                source,
            })?;
            read += line.len() as u64 + 1;
            // Only what this log wrote is read (the file is ours alone).
            if read > self.len {
                break;
            }
            let record: AuditRecord =
                serde_json::from_slice(&line).map_err(|e| AuditError::Corrupt {
                    path: self.path.clone(),
                    line: i as u64 + 1,
                    message: e.to_string(),
                })?;
            if limit > 0 && filter.matches(&record) {
                if newest.len() == limit {
                    newest.pop_front();
                }
                newest.push_back(record);
            }
        }
        Ok(newest.into_iter().rev().collect())
    }
}

/// What opening finds in the file.
#[derive(Debug, Default)]
struct Scanned {
    /// Byte ranges of whole records (with their newline), in order.
    kept: Vec<std::ops::Range<usize>>,
    /// Where the last whole record ends: after it is a torn tail.
    good: usize,
    /// Lines that hold no record (or a record after a torn one), with a
    /// whole record after them.
    damaged_lines: Vec<u64>,
    last_seq: u64,
}

/// Where a line holds a whole record: all of it, or the end of it (a
/// record glued after a torn write).
fn record_in(line: &[u8]) -> Option<(usize, AuditRecord)> {
    if let Ok(r) = serde_json::from_slice::<AuditRecord>(line) {
        return Some((0, r));
    }
    // Records are written with `seq` first.
    let start = b"{\"seq\":";
    (1..line.len())
        .filter(|&i| line[i..].starts_with(start))
        .find_map(|i| Some((i, serde_json::from_slice(&line[i..]).ok()?)))
}

fn scan(bytes: &[u8]) -> Scanned {
    let mut out = Scanned::default();
    let mut pos = 0usize;
    let mut line_no = 0u64;
    let mut pending_damage = Vec::new();
    while pos < bytes.len() {
        // A line without its newline is torn, whatever it holds.
        let Some(end) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            break;
        };
        line_no += 1;
        let next = pos + end + 1;
        match record_in(&bytes[pos..pos + end]) {
            Some((at, r)) => {
                if at > 0 {
                    pending_damage.push(line_no);
                }
                out.kept.push(pos + at..next);
                out.last_seq = out.last_seq.max(r.seq);
                out.good = next;
                // Damage is only damage with a record after it; before
                // that it may be a torn tail.
                out.damaged_lines.append(&mut pending_damage);
            }
            None => pending_damage.push(line_no),
        }
        pos = next;
    }
    out
}

/// Keeps the file as it was beside it (a hard link: no room needed), or
/// failing that its damaged lines (a copy).
fn keep_aside(path: &Path, bytes: &[u8], found: &Scanned) -> io::Result<PathBuf> {
    let ms = now_ms();
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{ms}.damaged"));
    let dest = path.with_file_name(name);
    if fsio::hard_link(path, &dest).is_ok() {
        sync_parent(&dest)?;
        return Ok(dest);
    }
    let mut damaged = Vec::new();
    let mut from = 0;
    for r in &found.kept {
        damaged.extend_from_slice(&bytes[from..r.start]);
        from = r.end;
    }
    fsio::write_atomically(&dest, &damaged).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "damaged lines {:?} cannot be kept aside ({e}); the log is left as it is",
                found.damaged_lines
            ),
        )
    })?;
    Ok(dest)
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}
