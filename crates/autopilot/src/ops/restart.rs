//! `restart`: a systemd unit through `systemctl restart`, or processes
//! (by pid or by name) through a signal.

use std::time::Instant;

use super::{Kind, OpError, Ops, Outcome, Trigger};
use crate::policy::{TargetKind, TargetRef};
use crate::yaml::{Ctx, Fields};

#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    pub what: RestartTarget,
    /// For processes: the signal sent (TERM, HUP, ...; default TERM).
    pub signal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartTarget {
    Unit(String),
    Pid(u32),
    ProcessName(String),
}

impl Kind for Restart {
    const TYPE: &'static str = "restart";
    const FIELDS: &'static [&'static str] = &["type", "unit", "pid", "processName", "signal"];

    fn parse(ctx: &mut Ctx, f: &Fields, target: Option<&TargetRef>) -> Option<Restart> {
        let unit = f.string(ctx, "unit", false);
        let pid = match (f.integer(ctx, "pid"), f.get("pid")) {
            (Some(p), Some(node)) => match u32::try_from(p) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    ctx.error(node, format!("{}: {p} is not a process id", f.path("pid")));
                    return None;
                }
            },
            _ => None,
        };
        let process = f.string(ctx, "processName", false);
        let given = [unit.is_some(), pid.is_some(), process.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given > 1 {
            ctx.error(
                f.node(),
                format!("{}: give one of `unit`, `pid` and `processName`", f.here()),
            );
            return None;
        }
        let what = match (unit, pid, process) {
            (Some(u), _, _) => RestartTarget::Unit(u),
            (_, Some(p), _) => RestartTarget::Pid(p),
            (_, _, Some(n)) => RestartTarget::ProcessName(n),
            // Nothing named: the policy's target, when it is restartable.
            _ => match target {
                Some(TargetRef {
                    kind: TargetKind::SystemdUnit,
                    name,
                }) => RestartTarget::Unit(name.clone()),
                Some(TargetRef {
                    kind: TargetKind::Process,
                    name,
                }) => RestartTarget::ProcessName(name.clone()),
                Some(t) => {
                    ctx.error(
                        f.node(),
                        format!(
                            "{}: a {} target cannot be restarted as such: give `unit`, `pid` or `processName`",
                            f.here(),
                            t.kind.as_str()
                        ),
                    );
                    return None;
                }
                // The target's own error is reported already.
                None => return None,
            },
        };
        let signal = match f.get("signal") {
            Some(node) => {
                let raw = crate::yaml::string(ctx, node, &f.path("signal"))?;
                if matches!(what, RestartTarget::Unit(_)) {
                    ctx.error(
                        node,
                        format!(
                            "{}: systemd restarts units; a signal applies to pid or processName",
                            f.path("signal")
                        ),
                    );
                    return None;
                }
                let Some((name, _)) = signal(&raw) else {
                    let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
                    ctx.error(
                        node,
                        format!(
                            "{}: unknown signal `{raw}` (known: {})",
                            f.path("signal"),
                            known.join(", ")
                        ),
                    );
                    return None;
                };
                Some(name.to_string())
            }
            None => None,
        };
        Some(Restart { what, signal })
    }

    /// A unit through `systemctl restart`, or processes through a signal.
    fn run(&self, ops: &Ops, _: &Trigger) -> Outcome {
        let started = Instant::now();
        let signal = match signal(self.signal.as_deref().unwrap_or("TERM")) {
            Some((_, number)) => number,
            None => {
                let name = self.signal.clone().unwrap_or_default();
                return Outcome::failed(OpError::UnknownSignal(name), started.elapsed());
            }
        };
        let pids = match &self.what {
            RestartTarget::Unit(unit) => return systemctl_restart(ops, unit),
            RestartTarget::Pid(pid) => vec![*pid],
            RestartTarget::ProcessName(name) => {
                let found = pids_named(name);
                if found.is_empty() {
                    return Outcome::failed(
                        OpError::NoSuchProcess(name.clone()),
                        started.elapsed(),
                    );
                }
                found
            }
        };
        let mut output = String::new();
        for pid in pids {
            let Ok(raw) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: kill(2) takes plain integers and touches no memory.
            let rc = unsafe { libc::kill(raw, signal) };
            if rc != 0 {
                let error = OpError::Signal {
                    pid,
                    message: std::io::Error::last_os_error().to_string(),
                };
                let mut o = Outcome::failed(error, started.elapsed());
                o.output = output;
                return o;
            }
            output.push_str(&format!("signalled {pid}\n"));
        }
        Outcome::succeeded(output, started.elapsed())
    }
}

fn systemctl_restart(ops: &Ops, unit: &str) -> Outcome {
    // `--` so a unit name can never be read as an option.
    let argv = [
        ops.systemctl.clone(),
        "restart".into(),
        "--".into(),
        unit.to_string(),
    ];
    let mut outcome = ops.command(&argv, &[], ops.systemctl_timeout);
    if let Some(OpError::Spawn { .. }) = outcome.error {
        outcome.error = Some(OpError::SystemctlMissing);
    }
    outcome
}

/// The signals `restart` may send, by name without `SIG`. Policies are
/// checked against this table and `restart` sends from it.
pub(crate) const SIGNALS: [(&str, libc::c_int); 9] = [
    ("TERM", libc::SIGTERM),
    ("KILL", libc::SIGKILL),
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("STOP", libc::SIGSTOP),
    ("CONT", libc::SIGCONT),
];

/// A signal by name in any case, with or without `SIG` (`term`,
/// `SIGTERM`, `sigterm`): its name as [`SIGNALS`] has it, and its number.
pub(crate) fn signal(name: &str) -> Option<(&'static str, libc::c_int)> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == bare).copied()
}

/// Processes whose `/proc/PID/comm` is `name` (the kernel keeps 15 bytes
/// of it), this process excluded.
pub fn pids_named(name: &str) -> Vec<u32> {
    let wanted: Vec<u8> = name.bytes().take(15).collect();
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/comm"))
                .map(|c| c.strip_suffix(b"\n").unwrap_or(&c) == wanted.as_slice())
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    use super::*;

    #[test]
    fn signals_by_name() {
        assert_eq!(signal("sigterm"), Some(("TERM", libc::SIGTERM)));
        assert_eq!(signal("SIGHUP"), Some(("HUP", libc::SIGHUP)));
        assert_eq!(signal("usr2"), Some(("USR2", libc::SIGUSR2)));
        assert_eq!(signal("SIGSIGTERM"), None);
        assert_eq!(signal(""), None);
    }

    #[test]
    fn missing_systemctl_is_reported() {
        let ops = Ops {
            systemctl: "/nonexistent/systemctl".into(),
            ..Ops::default()
        };
        let r = Restart {
            what: RestartTarget::Unit("web.service".into()),
            signal: None,
        };
        let o = r.run(&ops, &Trigger::default());
        assert_eq!(o.error, Some(OpError::SystemctlMissing));
    }

    #[test]
    fn restart_signals_a_pid_and_reports_a_missing_name() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let r = Restart {
            what: RestartTarget::Pid(child.id()),
            signal: Some("KILL".into()),
        };
        let o = r.run(&Ops::default(), &Trigger::default());
        assert!(o.ok, "{o:?}");
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let missing = Restart {
            what: RestartTarget::ProcessName("no-such-proc-xyz".into()),
            signal: None,
        };
        assert_eq!(
            missing.run(&Ops::default(), &Trigger::default()).error,
            Some(OpError::NoSuchProcess("no-such-proc-xyz".into()))
        );
    }
}
