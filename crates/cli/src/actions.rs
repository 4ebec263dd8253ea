//! `perfpilot actions` and `perfpilot policy`: the autopilot's approval
//! queue, pause switch, audit log and policy versions, through a running
//! server.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use perfpilot_autopilot::audit::{AuditEvent, AuditRecord};
use perfpilot_server::api::{
    ActionView, ActionsResponse, AuditResponse, PauseResponse, PoliciesResponse, PolicyView,
};
use serde_json::json;

use crate::client::{decode, Conn};
use crate::exit;

#[derive(Args)]
pub struct ActionsArgs {
    #[command(subcommand)]
    command: ActionsCommand,
}

#[derive(Subcommand)]
enum ActionsCommand {
    /// Decisions waiting for approval, then recent ones with their status
    /// and impact.
    List(ListArgs),
    /// Approve a queued decision: it runs now, on the server.
    Approve(DecideArgs),
    /// Reject a queued decision.
    Reject(DecideArgs),
    /// Stop deciding and approving actions (conditions are still
    /// followed); recorded in the audit log.
    Pause(ByArgs),
    /// Undo `pause`.
    Resume(ByArgs),
    /// The audit log, oldest first: alerts received, decisions with the
    /// values they read, approvals, what ran with its output, impact
    /// verdicts, rollbacks, policy changes and pauses.
    Audit(AuditArgs),
}

#[derive(Args)]
struct AuditArgs {
    #[command(flatten)]
    conn: Conn,
    /// Only the records of this decision (`perfpilot actions list` shows
    /// ids): the whole chain from decision to rollback.
    #[arg(long, value_name = "ID")]
    decision: Option<u64>,
    /// Only records of this kind: alert_received, decision, action_run,
    /// impact, approval, rollback, policy_change or pause.
    #[arg(long)]
    kind: Option<String>,
    /// Only records about this policy.
    #[arg(long)]
    policy: Option<String>,
    /// Only records since this time: `now-1h`, RFC 3339, or Unix seconds.
    #[arg(long)]
    since: Option<String>,
    /// At most this many, the newest (1 to 10000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print the server's JSON (newest first) instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    conn: Conn,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DecideArgs {
    #[command(flatten)]
    conn: Conn,
    /// The decision's id (`perfpilot actions list` shows them).
    id: u64,
    /// Who decides, for the audit log (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

#[derive(Args)]
struct ByArgs {
    #[command(flatten)]
    conn: Conn,
    /// Who, for the audit log (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

#[derive(Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// The loaded policies with their versions.
    List(ListArgs),
    /// Put an earlier version of a policy back in force (as a new
    /// version). It stays until the policy's file changes.
    Rollback(RollbackArgs),
}

#[derive(Args)]
struct RollbackArgs {
    #[command(flatten)]
    conn: Conn,
    /// The policy's name (metadata.name).
    name: String,
    /// The version to restore (`perfpilot policy list` shows them).
    #[arg(long, value_name = "VERSION")]
    to: u32,
    /// Who, for the audit log (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "cli".into())
}

fn print(text: &str) -> exit::Result<()> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing to standard output")?;
    Ok(())
}

/// The server's JSON answer as it came, on a line.
fn print_json(body: &[u8]) -> exit::Result<()> {
    print(&format!("{}\n", String::from_utf8_lossy(body)))
}

fn time(ms: i64) -> String {
    perfpilot_baseline::alerts::rfc3339(ms)
}

fn line(v: &ActionView) -> String {
    let mut s = format!(
        "{:>5}  {}  {}/{} v{}  {}  {}  {}",
        v.id,
        time(v.at_ms),
        v.policy,
        v.action,
        v.policy_version,
        v.target,
        v.operation,
        v.status
    );
    if let Some(by) = &v.by {
        s.push_str(&format!(" by {by}"));
    }
    if let Some(i) = &v.impact {
        s.push_str(&format!("  impact {}", i.status));
        if let (Some(b), Some(a)) = (i.before, i.after) {
            s.push_str(&format!(
                " ({} {b:.4} -> {a:.4})",
                i.signal.as_deref().unwrap_or("")
            ));
        }
        if let Some(r) = &i.rollback {
            s.push_str(&format!(", rollback {r}"));
        }
    }
    if let Some(e) = &v.error {
        s.push_str(&format!("  error: {e}"));
    }
    s.push('\n');
    s
}

fn show(v: &ActionView) -> exit::Result<()> {
    print(&line(v))
}

pub fn run(args: ActionsArgs) -> exit::Result<()> {
    match args.command {
        ActionsCommand::List(a) => {
            let body = a.conn.get("/api/v1/actions")?;
            if a.json {
                return print_json(&body);
            }
            let r: ActionsResponse = decode("/api/v1/actions", &body)?;
            let mut out = format!(
                "mode {}{}\n",
                r.mode,
                if r.paused { ", paused" } else { "" }
            );
            out.push_str(&format!("\nwaiting for approval: {}\n", r.pending.len()));
            for v in &r.pending {
                out.push_str(&line(v));
                out.push_str(&format!("       when {}\n", v.condition));
                for reading in &v.readings {
                    out.push_str(&format!("         {reading}\n"));
                }
            }
            out.push_str(&format!("\nrecent: {}\n", r.recent.len()));
            for v in &r.recent {
                out.push_str(&line(v));
            }
            print(&out)
        }
        ActionsCommand::Approve(a) => decide(a, "approve"),
        ActionsCommand::Reject(a) => decide(a, "reject"),
        ActionsCommand::Pause(a) => pause(a, true),
        ActionsCommand::Resume(a) => pause(a, false),
        ActionsCommand::Audit(a) => audit(a),
    }
}

/// Approves or rejects (`verb`) a queued decision and shows it.
fn decide(a: DecideArgs, verb: &str) -> exit::Result<()> {
    let path = format!("/api/v1/actions/{}/{verb}", a.id);
    let body = a.conn.post(&path, json!({ "by": who(a.by) }))?;
    show(&decode(&path, &body)?)
}

fn audit(a: AuditArgs) -> exit::Result<()> {
    let path = "/api/v1/audit";
    let mut params = vec![("limit", a.limit.to_string())];
    let optional = [
        ("decision", a.decision.map(|d| d.to_string())),
        ("kind", a.kind),
        ("policy", a.policy),
        ("since", a.since),
    ];
    params.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    let body = a.conn.get_with(path, &params)?;
    if a.json {
        return print_json(&body);
    }
    let r: AuditResponse = decode(path, &body)?;
    if r.records.is_empty() {
        return print("no audit records match\n");
    }
    let mut out = String::new();
    for rec in r.records.iter().rev() {
        out.push_str(&audit_line(rec));
    }
    print(&out)
}

/// One record as a line (and, for what ran, its output indented below).
fn audit_line(r: &AuditRecord) -> String {
    let id = |d: &Option<u64>| d.map(|d| format!("#{d} ")).unwrap_or_default();
    let exit = |status: &Option<i32>, error: &Option<String>| match (status, error) {
        (_, Some(e)) => format!(" -> failed: {e}"),
        (Some(s), None) => format!(" -> exit {s}"),
        (None, None) => String::new(),
    };
    let mut output = "";
    let what = match &r.event {
        AuditEvent::AlertReceived {
            fingerprint,
            alertname,
            status,
            change,
            ..
        } => format!(
            "{} {} ({change})",
            alertname.as_deref().unwrap_or(fingerprint),
            match status {
                perfpilot_autopilot::AlertStatus::Firing => "firing",
                perfpilot_autopilot::AlertStatus::Resolved => "resolved",
            }
        ),
        AuditEvent::Decision {
            decision,
            policy_version,
            action,
            condition,
            readings,
            outcome,
            mode,
            ..
        } => format!(
            "{}{action} (v{policy_version}): {}{} when {condition} [{}]",
            id(decision),
            outcome.replace('_', " "),
            mode.as_deref()
                .map(|m| format!(" in {m}"))
                .unwrap_or_default(),
            readings.join(", ")
        ),
        AuditEvent::ActionRun {
            decision,
            action,
            operation,
            dry_run,
            output: o,
            exit_status,
            error,
            duration_ms,
            attempts,
            ..
        } => {
            output = o;
            format!(
                "{}{action}: {}{operation}{} ({attempts} attempt{}, {duration_ms} ms)",
                id(decision),
                if *dry_run { "dry run of " } else { "" },
                exit(exit_status, error),
                if *attempts == 1 { "" } else { "s" }
            )
        }
        AuditEvent::Impact {
            decision,
            action,
            verdict,
            detail,
            ..
        } => format!("{}{action}: {verdict} ({detail})", id(decision)),
        AuditEvent::Approval {
            decision,
            action,
            by,
            approved,
            reason,
            ..
        } => format!(
            "{}{action} {} by {by}{}",
            id(decision),
            if *approved { "approved" } else { "rejected" },
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        AuditEvent::Rollback {
            decision,
            action,
            reason,
            operation,
            output: o,
            exit_status,
            error,
            ..
        } => {
            output = o;
            format!(
                "{}{action} rolled back ({reason}): {operation}{}",
                id(decision),
                exit(exit_status, error)
            )
        }
        AuditEvent::PolicyChange {
            version,
            change,
            source,
            restored,
            ..
        } => match restored {
            Some(v) => format!("rolled back to v{v}'s content as v{version} by {source}"),
            None => format!("{} v{version} from {source}", change.replace('_', " ")),
        },
        AuditEvent::Pause { paused, by } => {
            format!("{} by {by}", if *paused { "paused" } else { "resumed" })
        }
    };
    let mut line = format!(
        "{:>6}  {}  {:<14}  {:<20}  {what}\n",
        r.seq,
        time(r.at_ms),
        r.event.kind(),
        r.event.policy().unwrap_or("-")
    );
    for l in output.lines() {
        line.push_str(&format!("{:>8}| {l}\n", ""));
    }
    line
}

fn pause(a: ByArgs, paused: bool) -> exit::Result<()> {
    let path = if paused {
        "/api/v1/actions/pause"
    } else {
        "/api/v1/actions/resume"
    };
    let body = a.conn.post(path, json!({ "by": who(a.by) }))?;
    let r: PauseResponse = decode(path, &body)?;
    print(if r.paused {
        "paused: no action is decided or approved until `perfpilot actions resume`\n"
    } else {
        "resumed\n"
    })
}

fn policy_line(p: &PolicyView) -> String {
    let versions: Vec<String> = p.versions.iter().map(|v| format!("v{v}")).collect();
    format!(
        "{}  v{}{}  {}  actions: {}  versions: {}  file: {}\n",
        p.name,
        p.version,
        p.restored_from
            .map(|r| format!(" (rolled back to v{r}'s content)"))
            .unwrap_or_default(),
        p.target,
        p.actions.join(", "),
        versions.join(" "),
        p.file.as_deref().unwrap_or("-")
    )
}

pub fn policy(args: PolicyArgs) -> exit::Result<()> {
    match args.command {
        PolicyCommand::List(a) => {
            let body = a.conn.get("/api/v1/policies")?;
            if a.json {
                return print_json(&body);
            }
            let r: PoliciesResponse = decode("/api/v1/policies", &body)?;
            if r.policies.is_empty() {
                return print("no policies are loaded\n");
            }
            print(&r.policies.iter().map(policy_line).collect::<String>())
        }
        PolicyCommand::Rollback(a) => {
            let path = format!("/api/v1/policies/{}/rollback", a.name);
            let body = a.conn.post(&path, json!({ "to": a.to, "by": who(a.by) }))?;
            let p: PolicyView = decode(&path, &body)?;
            print(&policy_line(&p))
        }
    }
}
