//! Operations (and rollbacks): the `type` decides which fields apply.

use std::time::Duration;

use super::*;
use crate::diag::did_you_mean;
use crate::yaml::{as_seq, as_str, describe, is_mapping, lookup, Ctx, Fields, Node};

pub(super) fn operation(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    target: Option<&TargetRef>,
) -> Option<Operation> {
    if !is_mapping(node) {
        ctx.error(
            node,
            format!("{path}: must be a mapping, found {}", describe(node)),
        );
        return None;
    }
    // The type first: it decides which fields are valid.
    let Some(t) = lookup(node, "type") else {
        ctx.error(
            node,
            format!(
                "{path}: missing required field `type` (one of {})",
                Operation::TYPES.join(", ")
            ),
        );
        return None;
    };
    let ty = crate::yaml::string(ctx, t, &format!("{path}.type"))?;
    if !Operation::TYPES.contains(&ty.as_str()) {
        ctx.error(
            t,
            format!(
                "{path}.type: unknown operation type `{ty}`{} (known: {})",
                did_you_mean(&ty, Operation::TYPES),
                Operation::TYPES.join(", ")
            ),
        );
        return None;
    }
    let f = Fields::new(ctx, node, path, fields(&ty))?;
    match ty.as_str() {
        "webhook" => webhook(ctx, &f).map(Operation::Webhook),
        "exec" => exec(ctx, &f).map(Operation::Exec),
        "restart" => restart(ctx, &f, target).map(Operation::Restart),
        "degrade" => degrade(ctx, &f).map(Operation::Degrade),
        "rate-limit" => rate_limit(ctx, &f).map(Operation::RateLimit),
        _ => scale(ctx, &f, target).map(Operation::Scale),
    }
}

fn fields(ty: &str) -> &'static [&'static str] {
    match ty {
        "webhook" => &[
            "type", "url", "method", "headers", "body", "timeout", "retries",
        ],
        "exec" => &["type", "command", "env", "timeout"],
        "restart" => &["type", "unit", "pid", "processName", "signal"],
        "degrade" => &["type", "url", "flag", "value", "timeout"],
        "rate-limit" => &["type", "interface", "cgroup", "rate", "burst", "clear"],
        _ => &["type", "deployment", "namespace", "replicas", "delta"],
    }
}

fn timeout(ctx: &mut Ctx, f: &Fields, default: Duration) -> Duration {
    let t = f.duration(ctx, "timeout").unwrap_or(default);
    if t.is_zero() {
        if let Some(n) = f.get("timeout") {
            ctx.error(n, format!("{}: must be longer than 0s", f.path("timeout")));
        }
        return default;
    }
    t
}

fn http_url(ctx: &mut Ctx, f: &Fields) -> Option<String> {
    let url = f.string(ctx, "url", true)?;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        if let Some(n) = f.get("url") {
            ctx.error(
                n,
                format!(
                    "{}: `{url}` is not an http:// or https:// URL",
                    f.path("url")
                ),
            );
        }
        return None;
    }
    Some(url)
}

fn webhook(ctx: &mut Ctx, f: &Fields) -> Option<Webhook> {
    let url = http_url(ctx, f);
    let method = match f.get("method") {
        Some(n) => {
            let known = ["GET", "POST", "PUT", "PATCH", "DELETE"];
            let upper = as_str(n).map(str::to_ascii_uppercase);
            match upper
                .as_deref()
                .and_then(|m| known.iter().find(|k| **k == m))
            {
                Some(m) => m.to_string(),
                None => {
                    ctx.error(
                        n,
                        format!("{}: must be one of {}", f.path("method"), known.join(", ")),
                    );
                    "POST".into()
                }
            }
        }
        None => "POST".into(),
    };
    let headers = f.string_map(ctx, "headers");
    let body = match f.get("body") {
        Some(b) => Some(crate::yaml::to_json(ctx, b, &f.path("body"))?),
        None => None,
    };
    let timeout = timeout(ctx, f, Duration::from_secs(10));
    let retries = match (f.integer(ctx, "retries"), f.get("retries")) {
        (Some(n), Some(node)) => match u32::try_from(n) {
            Ok(n) if n <= 10 => n,
            _ => {
                ctx.error(
                    node,
                    format!("{}: {n} is not between 0 and 10", f.path("retries")),
                );
                3
            }
        },
        _ => 3,
    };
    Some(Webhook {
        url: url?,
        method,
        headers,
        body,
        timeout,
        retries,
    })
}

fn exec(ctx: &mut Ctx, f: &Fields) -> Option<Exec> {
    let path = f.path("command");
    let node = f.required(ctx, "command");
    let command = node.and_then(|node| {
        if let Some(s) = as_str(node) {
            let hint = s.split_whitespace().collect::<Vec<_>>();
            ctx.error(
                node,
                format!(
                    "{path}: exec takes an argv list, never a shell string: write {:?}",
                    hint
                ),
            );
            return None;
        }
        let Some(items) = as_seq(node) else {
            ctx.error(node, format!("{path}: must be a list of strings, found {}", describe(node)));
            return None;
        };
        if items.is_empty() {
            ctx.error(node, format!("{path}: is empty; give the program and its arguments"));
            return None;
        }
        let mut argv = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match as_str(item) {
                Some(s) => argv.push(s.to_string()),
                None => ctx.error(
                    item,
                    format!("{path}[{i}]: must be a string, found {} (quote it)", describe(item)),
                ),
            }
        }
        if argv.len() != items.len() {
            return None;
        }
        if argv[0].is_empty() {
            ctx.error(&items[0], format!("{path}[0]: the program is empty"));
            return None;
        }
        if argv[0].contains(char::is_whitespace) {
            ctx.warn(
                &items[0],
                format!(
                    "{path}[0]: `{}` has spaces, but no shell splits it: the program is looked up by that whole name",
                    argv[0]
                ),
            );
        }
        Some(argv)
    });
    let env = f.string_map(ctx, "env");
    let timeout = timeout(ctx, f, Duration::from_secs(60));
    Some(Exec {
        command: command?,
        env,
        timeout,
    })
}

fn restart(ctx: &mut Ctx, f: &Fields, target: Option<&TargetRef>) -> Option<Restart> {
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
            let Some((name, _)) = crate::ops::signal(&raw) else {
                let known: Vec<&str> = crate::ops::SIGNALS.iter().map(|(n, _)| *n).collect();
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

fn degrade(ctx: &mut Ctx, f: &Fields) -> Option<Degrade> {
    let url = http_url(ctx, f);
    let flag = f.string(ctx, "flag", true);
    let value = match f.get("value") {
        Some(v) => crate::yaml::to_json(ctx, v, &f.path("value"))?,
        None => serde_json::Value::Bool(true),
    };
    let timeout = timeout(ctx, f, Duration::from_secs(10));
    Some(Degrade {
        url: url?,
        flag: flag?,
        value,
        timeout,
    })
}

/// What Linux accepts as an interface name (`dev_valid_name`): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:` or whitespace.
fn interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
}

fn rate_limit(ctx: &mut Ctx, f: &Fields) -> Option<RateLimit> {
    let interface = f.string(ctx, "interface", false);
    if let (Some(i), Some(n)) = (&interface, f.get("interface")) {
        if !interface_name(i) {
            ctx.error(
                n,
                format!(
                    "{}: `{i}` is not a network interface name (1 to 15 characters, no `/`, `:` or spaces)",
                    f.path("interface")
                ),
            );
            return None;
        }
    }
    let cgroup = f.string(ctx, "cgroup", false);
    let here = f.here().to_string();
    let on = match (interface, cgroup) {
        (Some(i), None) => Some(RateLimitTarget::Interface(i)),
        (None, Some(c)) => Some(RateLimitTarget::Cgroup(c)),
        (Some(_), Some(_)) => {
            ctx.error(
                f.node(),
                format!("{here}: give `interface` or `cgroup`, not both"),
            );
            None
        }
        (None, None) => {
            ctx.error(f.node(), format!("{here}: missing `interface` or `cgroup`"));
            None
        }
    };
    let clear = f.boolean(ctx, "clear");
    if clear.is_none() && f.get("clear").is_some() {
        // Reported; whether `rate` is required is not known.
        return None;
    }
    if clear == Some(true) {
        // Clearing removes the whole limit: a rate or burst would be ignored.
        for field in ["rate", "burst"] {
            if let Some(n) = f.key(field) {
                ctx.error(
                    n,
                    format!(
                        "{}: `clear: true` removes the limit, so `{field}` does not apply",
                        f.path(field)
                    ),
                );
                return None;
            }
        }
        return Some(RateLimit {
            on: on?,
            change: RateLimitChange::Clear,
        });
    }
    let rate = match f.get("rate") {
        Some(_) => f.string(ctx, "rate", false),
        None => {
            ctx.error(
                f.key("rate").unwrap_or(f.node()),
                format!(
                    "{here}: missing required field `rate` (or `clear: true` to remove a limit)"
                ),
            );
            None
        }
    };
    if let (Some(r), Some(n)) = (&rate, f.get("rate")) {
        // The grammar the operation reads it with, and not nothing.
        if !crate::ops::rate_bits_per_second(r).is_some_and(|bits| bits > 0.0) {
            ctx.error(
                n,
                format!(
                    "{}: `{r}` is not a tc rate like 10mbit, 500kbit or 100kbps",
                    f.path("rate")
                ),
            );
            return None;
        }
    }
    let burst = f.string(ctx, "burst", false);
    if let (Some(b), Some(n)) = (&burst, f.get("burst")) {
        if !crate::ops::size_bytes(b).is_some_and(|bytes| bytes > 0.0) {
            ctx.error(
                n,
                format!("{}: `{b}` is not a tc size like 32kb", f.path("burst")),
            );
            return None;
        }
    }
    Some(RateLimit {
        on: on?,
        change: RateLimitChange::Limit { rate: rate?, burst },
    })
}

fn scale(ctx: &mut Ctx, f: &Fields, target: Option<&TargetRef>) -> Option<Scale> {
    let here = f.here().to_string();
    let deployment = match f.string(ctx, "deployment", false) {
        Some(d) => Some(d),
        None => match target {
            Some(TargetRef {
                kind: TargetKind::Deployment,
                name,
            }) => Some(name.clone()),
            Some(_) => {
                ctx.error(
                    f.node(),
                    format!("{here}: missing `deployment` (the target is not a Deployment)"),
                );
                None
            }
            None => None,
        },
    };
    if let Some(d) = &deployment {
        if !dns_subdomain(d) {
            let (at, what) = match f.get("deployment") {
                Some(n) => (n, f.path("deployment")),
                None => (f.node(), format!("{here}: the target's name")),
            };
            ctx.error(
                at,
                format!("{what}: `{d}` is not a Kubernetes name (lower-case letters, digits, `-` and `.`, at most 253)"),
            );
            return None;
        }
    }
    let namespace = f.string(ctx, "namespace", false);
    if let (Some(ns), Some(n)) = (&namespace, f.get("namespace")) {
        if !dns_label(ns) {
            ctx.error(
                n,
                format!(
                    "{}: `{ns}` is not a Kubernetes namespace (lower-case letters, digits and `-`, at most 63)",
                    f.path("namespace")
                ),
            );
            return None;
        }
    }
    let replicas = f.integer(ctx, "replicas");
    let delta = f.integer(ctx, "delta");
    let change = match (replicas, delta) {
        (Some(r), None) => match u32::try_from(r) {
            Ok(r) => Some(ScaleChange::To(r)),
            Err(_) => {
                if let Some(n) = f.get("replicas") {
                    ctx.error(
                        n,
                        format!("{}: {r} is not a replica count", f.path("replicas")),
                    );
                }
                None
            }
        },
        (None, Some(d)) => match i32::try_from(d) {
            Ok(d) if d != 0 => Some(ScaleChange::By(d)),
            _ => {
                if let Some(n) = f.get("delta") {
                    ctx.error(
                        n,
                        format!("{}: {d} does not change anything sensible", f.path("delta")),
                    );
                }
                None
            }
        },
        (Some(_), Some(_)) => {
            ctx.error(
                f.node(),
                format!("{here}: give `replicas` or `delta`, not both"),
            );
            None
        }
        (None, None) => {
            if f.get("replicas").is_none() && f.get("delta").is_none() {
                ctx.error(
                    f.node(),
                    format!("{here}: missing `replicas` (a count) or `delta` (a change)"),
                );
            }
            None
        }
    };
    Some(Scale {
        deployment: deployment?,
        namespace,
        change: change?,
    })
}
