//! YAML documents into policies, with a diagnostic for everything wrong.

use std::collections::BTreeMap;

use super::*;
use crate::condition::{self, ConditionError, Scope, BUILTIN_METRICS, FUNCTIONS};
use crate::diag::Severity;
use crate::ops::parse_operation as operation;
use crate::yaml::{as_seq, as_str, describe, is_null, pos, Ctx, Fields, Node};

/// Parses and validates every document of a policy file.
pub fn parse_policies(source: &str) -> Report {
    let mut ctx = Ctx::new(source);
    let (docs, duplicates) = match crate::yaml::load(source) {
        Ok(loaded) => loaded,
        Err(syntax) => {
            return Report {
                policies: Vec::new(),
                diagnostics: vec![syntax],
            }
        }
    };
    let mut policies: Vec<Policy> = Vec::new();
    // Name to the line that first defined it, across documents.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut documents = 0;
    for doc in docs.iter().filter(|d| !is_null(d)) {
        documents += 1;
        let errors_before = ctx.error_count();
        let policy = document(&mut ctx, doc);
        // Duplicate keys were found while loading; they belong to the
        // document whose lines hold them.
        let (first, end) = (doc.span.start.line(), doc.span.end);
        let last = if end.col() == 0 {
            end.line().saturating_sub(1)
        } else {
            end.line()
        };
        ctx.diags.extend(
            duplicates
                .iter()
                .filter(|d| (first..=last).contains(&d.line))
                .cloned(),
        );
        if let Some((p, name_node)) = &policy {
            if let Some(first) = names.get(&p.name) {
                ctx.error(
                    name_node,
                    format!(
                        "metadata.name: policy `{}` is already defined at line {first}",
                        p.name
                    ),
                );
            } else {
                names.insert(p.name.clone(), pos(name_node).0);
            }
        }
        if ctx.error_count() == errors_before {
            if let Some((p, _)) = policy {
                policies.push(p);
            }
        }
    }
    if documents == 0 {
        ctx.push((1, 1), Severity::Error, format!("no {KIND} in this file"));
    }
    let mut diagnostics = ctx.diags;
    // Stable: diagnostics at one position keep the order they were found in.
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Report {
        policies,
        diagnostics,
    }
}

/// One document; the policy even when it has errors (for the duplicate
/// name check), with its name's node.
fn document<'n>(ctx: &mut Ctx, doc: &'n Node) -> Option<(Policy, &'n Node)> {
    let top = Fields::new(
        ctx,
        doc,
        "policy",
        &["apiVersion", "kind", "metadata", "spec"],
    )?;
    if let Some(v) = top.required(ctx, "apiVersion") {
        if let Some(s) = crate::yaml::string(ctx, v, "apiVersion") {
            if s != API_VERSION {
                ctx.error(
                    v,
                    format!("apiVersion: `{s}` is not supported; use {API_VERSION}"),
                );
            }
        }
    }
    if let Some(v) = top.required(ctx, "kind") {
        if let Some(s) = crate::yaml::string(ctx, v, "kind") {
            if s != KIND {
                ctx.error(v, format!("kind: `{s}` is not {KIND}"));
            }
        }
    }
    let meta = top.required(ctx, "metadata").and_then(|m| {
        Fields::new(
            ctx,
            m,
            "metadata",
            &["name", "namespace", "labels", "annotations"],
        )
    });
    let mut name = None;
    let mut namespace = None;
    let mut labels = BTreeMap::new();
    if let Some(meta) = &meta {
        if let Some(node) = meta.required(ctx, "name") {
            if let Some(s) = crate::yaml::string(ctx, node, "metadata.name") {
                if !dns_subdomain(&s) {
                    ctx.error(
                        node,
                        format!(
                            "metadata.name: `{s}` must be lowercase letters, digits, `-` and `.`, \
                             each part between dots starting and ending with a letter or digit \
                             (at most 253)"
                        ),
                    );
                }
                name = Some((s, node));
            }
        }
        namespace = meta.string(ctx, "namespace", false);
        labels = meta.string_map(ctx, "labels");
        meta.string_map(ctx, "annotations");
    }
    let spec = top.required(ctx, "spec").and_then(|s| {
        Fields::new(
            ctx,
            s,
            "spec",
            &["targetRef", "signals", "actions", "guard"],
        )
    });
    let spec = spec?;
    let target = spec
        .required(ctx, "targetRef")
        .and_then(|t| target_ref(ctx, t));
    let (signals, broken) = spec
        .get("signals")
        .map(|s| signals(ctx, s))
        .unwrap_or_default();
    let mut scope = Scope::builtin();
    // Signals with errors of their own still resolve in conditions, so
    // their mistakes are not reported again at every use.
    for name in broken {
        scope.insert(&name, condition::Type::Number);
        scope.insert(&format!("baseline.{name}"), condition::Type::Number);
    }
    for s in &signals {
        let ty = s.source.value_type();
        scope.insert(&s.name, ty);
        if ty == condition::Type::Number {
            scope.insert(&format!("baseline.{}", s.name), ty);
        }
    }
    let guard = match spec.get("guard") {
        Some(g) => guard(ctx, g, &scope).unwrap_or_default(),
        None => Guard::default(),
    };
    let actions = match spec.required(ctx, "actions") {
        Some(a) => actions(ctx, a, &scope, target.as_ref(), &guard),
        None => Vec::new(),
    };
    let (name, name_node) = name?;
    Some((
        Policy {
            name,
            namespace,
            labels,
            target: target?,
            signals,
            actions,
            guard,
            line: pos(doc).0,
        },
        name_node,
    ))
}

fn target_ref(ctx: &mut Ctx, node: &Node) -> Option<TargetRef> {
    let f = Fields::new(ctx, node, "spec.targetRef", &["kind", "name"])?;
    let kind = f.choice(ctx, "kind", &TargetKind::NAMES, true);
    let name = f.string(ctx, "name", true);
    if let (Some(n), Some(node)) = (&name, f.get("name")) {
        if n.trim().is_empty() {
            ctx.error(node, "spec.targetRef.name: is empty".into());
            return None;
        }
    }
    let kind = match kind? {
        "Service" => TargetKind::Service,
        "Process" => TargetKind::Process,
        "SystemdUnit" => TargetKind::SystemdUnit,
        _ => TargetKind::Deployment,
    };
    Some(TargetRef { kind, name: name? })
}

/// The valid signals, and the names of those with errors.
fn signals(ctx: &mut Ctx, node: &Node) -> (Vec<Signal>, Vec<String>) {
    let Some(items) = as_seq(node) else {
        ctx.error(
            node,
            format!("spec.signals: must be a list, found {}", describe(node)),
        );
        return Default::default();
    };
    let mut out: Vec<Signal> = Vec::new();
    let mut broken = Vec::new();
    let mut weighted = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.signals[{i}]");
        let Some(f) = Fields::new(ctx, item, &path, &SIGNAL_FIELDS) else {
            continue;
        };
        let ty = f.choice(ctx, "type", &SignalSource::TYPES, true);
        if let Some(ty) = ty {
            let own = source_field(ty);
            for field in ["function", "query", "feature", "alertName"] {
                if let (true, Some(k)) = (field != own, f.key(field)) {
                    ctx.error(
                        k,
                        format!(
                            "{path}: `{field}` does not apply to {ty} signals (they take `{own}`)"
                        ),
                    );
                }
            }
        }
        let name = signal_name(ctx, &f, &path, &out);
        let weight = f.number(ctx, "weight");
        if let (Some(w), Some(n)) = (weight, f.get("weight")) {
            if !(0.0..=1.0).contains(&w) {
                ctx.error(n, format!("{path}.weight: {w} is outside 0 to 1"));
            } else {
                weighted.push(w);
            }
        }
        let source = match ty {
            Some("hotspot") => f
                .string(ctx, "function", true)
                .filter(|s| non_empty(ctx, &f, "function", s))
                .map(|function| SignalSource::Hotspot { function }),
            Some("prometheus") => f
                .string(ctx, "query", true)
                .filter(|s| non_empty(ctx, &f, "query", s))
                .map(|query| SignalSource::Prometheus { query }),
            Some("baseline") => f
                .string(ctx, "feature", true)
                .filter(|s| non_empty(ctx, &f, "feature", s))
                .map(|feature| SignalSource::Baseline { feature }),
            Some("alert") => f
                .string(ctx, "alertName", true)
                .filter(|s| non_empty(ctx, &f, "alertName", s))
                .map(|alert_name| SignalSource::Alert { alert_name }),
            _ => None,
        };
        match (name, source) {
            (Some(name), Some(source)) => out.push(Signal {
                name,
                source,
                weight,
            }),
            (Some(name), None) => broken.push(name),
            (None, _) => {}
        }
    }
    let sum: f64 = weighted.iter().sum();
    if !weighted.is_empty() && (sum - 1.0).abs() > 0.01 {
        ctx.warn(
            node,
            format!("spec.signals: weights sum to {sum:.2}; they are shares of the evidence and should sum to 1"),
        );
    }
    (out, broken)
}

/// The field naming what a signal of this type reads.
fn source_field(ty: &str) -> &'static str {
    match ty {
        "hotspot" => "function",
        "prometheus" => "query",
        "baseline" => "feature",
        _ => "alertName",
    }
}

const SIGNAL_FIELDS: [&str; 7] = [
    "name",
    "type",
    "weight",
    "function",
    "query",
    "feature",
    "alertName",
];

fn non_empty(ctx: &mut Ctx, f: &Fields, field: &str, value: &str) -> bool {
    if value.trim().is_empty() {
        if let Some(n) = f.get(field) {
            ctx.error(n, format!("{}: is empty", f.path(field)));
        }
        return false;
    }
    true
}

/// A signal's name: an identifier a condition can use, not taken.
fn signal_name(ctx: &mut Ctx, f: &Fields, path: &str, earlier: &[Signal]) -> Option<String> {
    let name = f.string(ctx, "name", true)?;
    let node = f.get("name")?;
    let is_ident = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let problem = if !is_ident {
        Some("must be letters, digits and `_`, not starting with a digit, to be usable in conditions".to_string())
    } else if BUILTIN_METRICS.iter().any(|(m, _)| *m == name) {
        Some("is a built-in metric".into())
    } else if FUNCTIONS.contains(&name.as_str()) || name == "baseline" {
        Some("is reserved".into())
    } else if condition::is_keyword(&name) {
        Some("is a keyword of conditions".into())
    } else if earlier.iter().any(|s| s.name == name) {
        Some("is defined twice".into())
    } else {
        None
    };
    match problem {
        Some(p) => {
            ctx.error(node, format!("{path}.name: `{name}` {p}"));
            None
        }
        None => Some(name),
    }
}

fn guard(ctx: &mut Ctx, node: &Node, scope: &Scope) -> Option<Guard> {
    let f = Fields::new(
        ctx,
        node,
        "spec.guard",
        &[
            "impactWindow",
            "rollbackIf",
            "signal",
            "tolerance",
            "better",
        ],
    )?;
    let default = Guard::default();
    let impact_window = f
        .duration(ctx, "impactWindow")
        .unwrap_or(default.impact_window);
    if impact_window.is_zero() {
        if let Some(n) = f.get("impactWindow") {
            ctx.error(n, "spec.guard.impactWindow: must be longer than 0s".into());
        }
    }
    let rollback_if = match f.choice(ctx, "rollbackIf", &["worse", "never"], false) {
        Some("never") => RollbackIf::Never,
        _ => RollbackIf::Worse,
    };
    let tolerance = tolerance(ctx, &f).unwrap_or(default.tolerance);
    let better = match f.choice(ctx, "better", &["lower", "higher"], false) {
        Some("lower") => Some(Better::Lower),
        Some("higher") => Some(Better::Higher),
        _ => None,
    };
    let signal = f.string(ctx, "signal", false);
    if let (Some(s), Some(n)) = (&signal, f.get("signal")) {
        match scope.get(s) {
            Some(condition::Type::Number) => {}
            Some(condition::Type::Bool) => ctx.error(
                n,
                format!("spec.guard.signal: `{s}` is true or false; the guard compares a number"),
            ),
            None => {
                let known: Vec<&str> = scope.names().filter(|n| !n.contains('.')).collect();
                ctx.error(
                    n,
                    format!(
                        "spec.guard.signal: unknown signal `{s}`{} (known: {})",
                        crate::diag::did_you_mean(s, known.iter().copied()),
                        known.join(", ")
                    ),
                );
            }
        }
    }
    Some(Guard {
        impact_window,
        rollback_if,
        signal,
        tolerance,
        better,
    })
}

/// `spec.guard.tolerance`: `10%` or `0.1`, at least 0 and below 100%.
fn tolerance(ctx: &mut Ctx, f: &Fields) -> Option<f64> {
    let node = f.get("tolerance")?;
    let path = f.path("tolerance");
    let share = match as_str(node) {
        Some(text) => match text.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().ok().map(|x| x / 100.0),
            None => None,
        },
        None => f.number(ctx, "tolerance"),
    };
    let Some(share) = share else {
        if as_str(node).is_some() {
            ctx.error(
                node,
                format!("{path}: must be a percentage like `10%` or a share like 0.1"),
            );
        }
        return None;
    };
    if !(0.0..1.0).contains(&share) {
        let found = match as_str(node) {
            Some(text) => text.trim().to_string(),
            None => share.to_string(),
        };
        ctx.error(
            node,
            format!("{path}: must be at least 0% and below 100%, found {found}"),
        );
        return None;
    }
    Some(share)
}

const ACTION_FIELDS: [&str; 8] = [
    "name",
    "condition",
    "operation",
    "rollback",
    "cooldown",
    "maxPerHour",
    "approval",
    "dryRun",
];

fn actions(
    ctx: &mut Ctx,
    node: &Node,
    scope: &Scope,
    target: Option<&TargetRef>,
    guard: &Guard,
) -> Vec<Action> {
    let Some(items) = as_seq(node) else {
        ctx.error(
            node,
            format!("spec.actions: must be a list, found {}", describe(node)),
        );
        return Vec::new();
    };
    if items.is_empty() {
        ctx.error(
            node,
            "spec.actions: a policy needs at least one action".into(),
        );
    }
    let mut out = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.actions[{i}]");
        let Some(f) = Fields::new(ctx, item, &path, &ACTION_FIELDS) else {
            continue;
        };
        let name = f.string(ctx, "name", true);
        if let (Some(n), Some(node)) = (&name, f.get("name")) {
            let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                ctx.error(
                    node,
                    format!("{path}.name: `{n}` must be letters, digits, `-`, `_` and `.`, starting with a letter or digit"),
                );
            } else if let Some(first) = names.get(n) {
                ctx.error(
                    node,
                    format!("{path}.name: action `{n}` is already defined at line {first}"),
                );
            } else {
                names.insert(n.clone(), pos(node).0);
            }
        }
        let condition = f
            .required(ctx, "condition")
            .and_then(|c| condition(ctx, c, &f.path("condition"), scope));
        let op = f
            .required(ctx, "operation")
            .and_then(|o| operation(ctx, o, &f.path("operation"), target));
        let rollback = f
            .get("rollback")
            .and_then(|o| operation(ctx, o, &f.path("rollback"), target));
        let cooldown = f.duration(ctx, "cooldown").unwrap_or(DEFAULT_COOLDOWN);
        let max_per_hour = match (f.integer(ctx, "maxPerHour"), f.get("maxPerHour")) {
            (Some(n), Some(node)) => match u32::try_from(n) {
                Ok(n) if (1..=3600).contains(&n) => Some(n),
                _ if n <= 0 => {
                    ctx.error(
                        node,
                        format!("{path}.maxPerHour: {n} would never let the action run; use at least 1 (or dryRun: true)"),
                    );
                    None
                }
                _ => {
                    ctx.error(node, format!("{path}.maxPerHour: {n} is more than 3600"));
                    None
                }
            },
            _ => None,
        };
        let approval = match f.choice(ctx, "approval", &["auto", "manual"], false) {
            Some("auto") => Approval::Auto,
            _ => Approval::Manual,
        };
        let dry_run = f.boolean(ctx, "dryRun").unwrap_or(false);
        // A rate limit undoes itself by clearing: the guard can
        // roll it back without the policy spelling that out.
        let rollback = rollback.or_else(|| op.as_ref().and_then(Operation::implied_rollback));
        if let (Some(op), None, RollbackIf::Worse) = (&op, &rollback, guard.rollback_if) {
            if op.wants_rollback() {
                ctx.warn(
                    f.key("operation").unwrap_or(item),
                    format!(
                        "{path}: a {} has no rollback, so the guard cannot undo it if it makes things worse",
                        op.type_name()
                    ),
                );
            }
        }
        if let (Some(name), Some(condition), Some(operation)) = (name, condition, op) {
            out.push(Action {
                name,
                condition,
                operation,
                rollback,
                cooldown,
                max_per_hour: max_per_hour.unwrap_or(DEFAULT_MAX_PER_HOUR),
                approval,
                dry_run,
            });
        }
    }
    out
}

/// Parses and checks a condition, placing each error at its column in the
/// file when the condition is written on one line as is.
fn condition(ctx: &mut Ctx, node: &Node, path: &str, scope: &Scope) -> Option<Condition> {
    let Some(text) = as_str(node) else {
        ctx.error(
            node,
            format!(
                "{path}: must be a string, found {} (quote it)",
                describe(node)
            ),
        );
        return None;
    };
    let place =
        |ctx: &mut Ctx, e: &ConditionError| match ctx.position_in_scalar(node, text, e.offset) {
            Some(at) => ctx.push(at, Severity::Error, format!("{path}: {}", e.describe())),
            None => ctx.error(
                node,
                format!(
                    "{path}: {} (column {} of the condition)",
                    e.describe(),
                    e.offset + 1
                ),
            ),
        };
    match Condition::parse_checked(text, scope) {
        Ok(c) => Some(c),
        Err(errors) => {
            for e in &errors {
                place(ctx, e);
            }
            None
        }
    }
}
