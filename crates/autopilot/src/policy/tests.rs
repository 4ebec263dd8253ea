use std::time::Duration;

use super::*;
use crate::diag::Severity;

const CHECKOUT: &str = include_str!("../../examples/policies/checkout-latency.yaml");
const SEARCH: &str = include_str!("../../examples/policies/search-degrade.yaml");

/// `line:column: message` of every diagnostic.
fn diags(src: &str) -> Vec<String> {
    parse_policies(src)
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// One diagnostic per expected prefix, in order.
fn assert_starts(got: &[String], expect: &[&str]) {
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for (got, want) in got.iter().zip(expect) {
        assert!(
            got.starts_with(want),
            "{got}\n  does not start with\n{want}"
        );
    }
}

const HEAD: &str =
    "apiVersion: perfpilot.dev/v1alpha1\nkind: AutopilotPolicy\nmetadata: {name: p}\n";

#[test]
fn the_examples_are_valid() {
    let r = parse_policies(CHECKOUT);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(r.policies.len(), 2);
    let p = &r.policies[0];
    assert_eq!(p.name, "checkout-latency");
    assert_eq!(p.labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(
        p.target,
        TargetRef {
            kind: TargetKind::SystemdUnit,
            name: "checkout.service".into()
        }
    );
    assert_eq!(p.signals.len(), 2);
    assert_eq!(p.signal("hot").and_then(|s| s.weight), Some(0.7));
    let restart = &p.actions[0];
    assert_eq!(restart.condition.hold_for(), Some(Duration::from_secs(180)));
    assert_eq!(
        restart.operation,
        Operation::Exec(Exec {
            command: vec![
                "/usr/bin/systemctl".into(),
                "restart".into(),
                "checkout.service".into()
            ],
            env: Default::default(),
            timeout: Duration::from_secs(30),
        })
    );
    assert_eq!(restart.cooldown, Duration::from_secs(600));
    assert_eq!(restart.approval, Approval::Auto);
    let Operation::Webhook(hook) = &p.actions[1].operation else {
        panic!("{:?}", p.actions[1].operation);
    };
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.retries, 3);
    assert!(hook.body.as_ref().is_some_and(|b| b["text"].is_string()));
    assert_eq!(p.guard.signal.as_deref(), Some("p99"));
    assert!((p.guard.tolerance - 0.1).abs() < 1e-12);

    let worker = &r.policies[1];
    assert_eq!(worker.line, 50);
    assert_eq!(
        worker.actions[0].operation,
        Operation::Restart(Restart {
            what: RestartTarget::ProcessName("checkout-worker".into()),
            signal: Some("HUP".into())
        })
    );
    assert_eq!(worker.actions[0].approval, Approval::Manual);
    assert_eq!(worker.guard.rollback_if, RollbackIf::Never);

    let r = parse_policies(SEARCH);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let p = &r.policies[0];
    assert_eq!(
        p.actions[2].operation,
        Operation::Scale(Scale {
            deployment: "search".into(),
            namespace: Some("shop".into()),
            change: ScaleChange::By(2)
        })
    );
    assert!(p.actions[2].dry_run);
}

#[test]
fn defaults() {
    let src = format!(
        "{HEAD}spec:\n  targetRef: {{kind: SystemdUnit, name: web.service}}\n  actions:\n    - {{name: r, condition: p99 > 1s, operation: {{type: restart}}}}\n"
    );
    let r = parse_policies(&src);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let a = &r.policies[0].actions[0];
    assert_eq!(a.cooldown, DEFAULT_COOLDOWN);
    assert_eq!(a.max_per_hour, DEFAULT_MAX_PER_HOUR);
    assert_eq!(a.approval, Approval::Manual);
    assert!(!a.dry_run);
    assert_eq!(
        a.operation,
        Operation::Restart(Restart {
            what: RestartTarget::Unit("web.service".into()),
            signal: None
        })
    );
    assert_eq!(r.policies[0].guard, Guard::default());
}

#[test]
fn every_error_at_its_position() {
    let src = "\
apiVersion: perfpilot.dev/v1alpha1
kind: AutopilotPolicy
metadata: {name: p, lables: {}}
spec:
  targetRef: {kind: Pod, name: web}
  signals:
    - {name: hot, type: hotspot, function: f, weight: 2}
  actions:
    - name: a
      condition: 'hot > 30% and alert(\"X\").firng'
      operation: {type: exec, command: 'systemctl restart web'}
      cooldown: 5
      maxPerHour: 0
    - name: a
      condition: p99 >
      operation: {type: scale, replicas: 2, deployment: web}
      dryRun: yes
";
    assert_eq!(
        diags(src),
        vec![
            "3:21: metadata: unknown field `lables`; did you mean `labels`?",
            "5:21: spec.targetRef.kind: unknown value `Pod` (known: Service, Process, SystemdUnit, Deployment)",
            "7:55: spec.signals[0].weight: 2 is outside 0 to 1",
            "10:44: spec.actions[0].condition: `alert(\"X\")` has no field `firng`; known: firing",
            "11:40: spec.actions[0].operation.command: exec takes an argv list, never a shell string: write [\"systemctl\", \"restart\", \"web\"]",
            "12:17: spec.actions[0].cooldown: 5 needs a unit, like 5s or 5m",
            "13:19: spec.actions[0].maxPerHour: 0 would never let the action run; use at least 1 (or dryRun: true)",
            "14:13: spec.actions[1].name: action `a` is already defined at line 9",
            "15:23: spec.actions[1].condition: expected a value after `>`, found the end of the condition",
            "16:7: warning: spec.actions[1]: a scale has no rollback, so the guard cannot undo it if it makes things worse",
            "17:15: spec.actions[1].dryRun: must be true or false, found a string",
        ]
    );
    assert!(parse_policies(src).policies.is_empty());
}

#[test]
fn months_and_spaced_words_are_not_durations() {
    let src = format!(
        "{HEAD}spec:\n  targetRef: {{kind: SystemdUnit, name: web.service}}\n  actions:\n    - {{name: r, condition: p99 > 1s, operation: {{type: restart}}, cooldown: 10M}}\n    - {{name: s, condition: p99 > 1s, operation: {{type: restart}}, cooldown: 2 hours}}\n"
    );
    assert_eq!(
        diags(&src),
        vec![
            "7:76: spec.actions[0].cooldown: `10M` is not a duration (unknown unit `M`; units are lower case: `m`); write e.g. 30s, 10m, 1h30m",
            "8:76: spec.actions[1].cooldown: `2 hours` is not a duration (spaces are not allowed; write the number and unit together, like 2h or 1h30m); write e.g. 30s, 10m, 1h30m",
        ]
    );
}

#[test]
fn missing_fields_and_wrong_types() {
    let src = "apiVersion: v1\nkind: Policy\nspec:\n  targetRef: web\n  actions: {}\n";
    assert_eq!(
        diags(src),
        vec![
            "1:1: policy: missing required field `metadata`",
            "1:13: apiVersion: `v1` is not supported; use perfpilot.dev/v1alpha1",
            "2:7: kind: `Policy` is not AutopilotPolicy",
            "4:14: spec.targetRef: must be a mapping, found a string",
            "5:12: spec.actions: must be a list, found a mapping",
        ]
    );
}

#[test]
fn operations_are_checked_by_type() {
    let src = format!(
        "{HEAD}spec:
  targetRef: {{kind: Service, name: web}}
  actions:
    - {{name: a, condition: p99 > 1, operation: {{type: restrat}}}}
    - {{name: b, condition: p99 > 1, operation: {{type: webhook, url: 'ftp://x', retries: -1}}}}
    - {{name: c, condition: p99 > 1, operation: {{type: restart}}}}
    - {{name: d, condition: p99 > 1, operation: {{type: rate-limit, interface: eth0, rate: fast}}}}
    - {{name: e, condition: p99 > 1, operation: {{type: exec, command: [kill, 9], url: x}}}}
    - {{name: f, condition: p99 > 1, operation: {{type: restart, unit: a.service, signal: HUP}}}}
"
    );
    let d = diags(&src);
    let expect = [
        "7:55: spec.actions[0].operation.type: unknown operation type `restrat`; did you mean `restart`?",
        "8:69: spec.actions[1].operation.url: `ftp://x` is not an http:// or https:// URL",
        "8:89: spec.actions[1].operation.retries: -1 is not between 0 and 10",
        "9:48: spec.actions[2].operation: a Service target cannot be restarted as such",
        "10:90: spec.actions[3].operation.rate: `fast` is not a tc rate",
        "11:77: spec.actions[4].operation.command[1]: must be a string, found an integer (quote it)",
        "11:81: spec.actions[4].operation: unknown field `url`",
        "12:89: spec.actions[5].operation.signal: systemd restarts units",
    ];
    assert_starts(&d, &expect);
}

#[test]
fn signals_are_named_in_any_case_with_or_without_sig() {
    let restart = |signal: &str| {
        format!(
            "{HEAD}spec:\n  targetRef: {{kind: Process, name: web}}\n  actions:\n    - {{name: r, condition: p99 > 1, operation: {{type: restart, signal: {signal}}}}}\n"
        )
    };
    for (given, name) in [
        ("sigterm", "TERM"),
        ("SIGTERM", "TERM"),
        ("term", "TERM"),
        ("Hup", "HUP"),
        ("SIGusr1", "USR1"),
    ] {
        let r = parse_policies(&restart(given));
        assert!(r.diagnostics.is_empty(), "{given}: {:?}", r.diagnostics);
        let Operation::Restart(op) = &r.policies[0].actions[0].operation else {
            panic!("{given}: {:?}", r.policies[0].actions[0].operation);
        };
        assert_eq!(op.signal.as_deref(), Some(name), "{given}");
    }
    for bad in ["sigsigterm", "SIGWINCH", "hangup"] {
        let d = diags(&restart(bad));
        assert_eq!(d.len(), 1, "{bad}: {d:?}");
        assert!(
            d[0].contains(&format!("unknown signal `{bad}` (known: TERM, KILL, HUP, INT, QUIT, USR1, USR2, STOP, CONT)")),
            "{d:?}"
        );
    }
}

#[test]
fn duplicate_keys_are_all_reported_and_parsing_goes_on() {
    let src = format!(
        "{HEAD}spec:
  targetRef: {{kind: Service, name: web}}
  actions:
    - name: a
      condition: p99 > 1
      operation: {{type: webhook, url: 'http://x', url: 'http://y'}}
      cooldown: 1m
      cooldown: 2m
    - name: b
      condition: nope > 1
      operation: {{type: webhook, url: 'http://x'}}
"
    );
    assert_eq!(
        diags(&src),
        vec![
            "9:51: duplicate key `url` (first at line 9)",
            "11:7: duplicate key `cooldown` (first at line 10)",
            "13:18: spec.actions[1].condition: unknown signal `nope`; known: error_rate, p50, p90, p99, p999, rps",
        ]
    );
    // A duplicate key alone makes its document invalid, and only that one.
    let dup = format!(
        "{HEAD}spec:\n  targetRef: {{kind: Process, name: w}}\n  actions: [{{name: a, condition: p99 > 1, operation: {{type: restart}}}}]\n"
    );
    let other = dup.replace("name: p}", "name: q}");
    let r = parse_policies(&format!(
        "{dup}---\n{}",
        other.replace("name: w}", "name: w, name: v}")
    ));
    assert_eq!(r.errors().count(), 1);
    assert_eq!(r.errors().next().unwrap().line, 12);
    assert_eq!(r.policies.len(), 1);
    assert_eq!(r.policies[0].name, "p");
}

#[test]
fn condition_columns_map_through_quotes_and_escapes() {
    let spec = |cond: &str| {
        format!(
            "{HEAD}spec:\n  targetRef: {{kind: Service, name: web}}\n  actions:\n    - name: a\n      condition: {cond}\n      operation: {{type: webhook, url: 'http://x'}}\n"
        )
    };
    let first = |src: String| parse_policies(&src).diagnostics[0].to_string();
    // The condition value starts at column 18 of line 8.
    assert!(first(spec("p99 > nope")).starts_with("8:24: "));
    assert!(first(spec("'p99 > nope'")).starts_with("8:25: "));
    assert!(first(spec("\"alert(\\\"X\\\").firing and nope\"")).starts_with("8:43: "));
    assert!(first(spec("'alert(''X'').firing and nope'")).starts_with("8:43: "));
    // Folded over lines: the scalar's position, and the column in the condition.
    let d = first(spec(">\n        p99 > 1 and\n        nope > 1"));
    assert!(
        d.starts_with("9:9: ") && d.ends_with("(column 13 of the condition)"),
        "{d}"
    );
}

#[test]
fn warnings_do_not_invalidate() {
    let src = format!(
        "{HEAD}spec:
  targetRef: {{kind: Deployment, name: web}}
  signals:
    - {{name: a, type: prometheus, query: up, weight: 0.5}}
    - {{name: b, type: alert, alertName: B, weight: 0.2}}
  actions:
    - {{name: s, condition: 'b and a < 1', operation: {{type: scale, replicas: 3}}}}
    - {{name: x, condition: 'b', operation: {{type: exec, command: ['/bin/echo hi']}}}}
"
    );
    let r = parse_policies(&src);
    assert!(!r.has_errors());
    assert_eq!(r.policies.len(), 1);
    let w: Vec<String> = r.warnings().map(ToString::to_string).collect();
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w[0].starts_with("7:5: warning: spec.signals: weights sum to 0.70"));
    assert!(w[1].contains("a scale has no rollback"));
    assert!(w[2].contains("has spaces"));
    assert!(r
        .diagnostics
        .iter()
        .all(|d| d.severity == Severity::Warning));
}

#[test]
fn syntax_errors_and_empty_files() {
    assert_eq!(
        diags("a: [1,\n"),
        vec!["2:1: YAML syntax: while parsing a node, did not find expected node content"]
    );
    assert_eq!(diags(""), vec!["1:1: no AutopilotPolicy in this file"]);
    assert_eq!(
        diags("---\n---\n"),
        vec!["1:1: no AutopilotPolicy in this file"]
    );
}

#[test]
fn guard_and_signal_names() {
    let src = format!(
        "{HEAD}spec:
  targetRef: {{kind: Service, name: web}}
  signals:
    - {{name: rps, type: prometheus, query: up}}
    - {{name: up, type: alert, alertName: Up}}
    - {{name: up, type: prometheus, query: up}}
    - {{name: '2x', type: prometheus, query: up}}
    - {{name: lat, type: latency}}
  actions:
    - {{name: a, condition: up and lat > 1, operation: {{type: webhook, url: 'http://x'}}}}
  guard: {{impactWindow: 0s, rollbackIf: better, signal: up}}
"
    );
    let d = diags(&src);
    let expect = [
        "7:14: spec.signals[0].name: `rps` is a built-in metric",
        "9:14: spec.signals[2].name: `up` is defined twice",
        "10:14: spec.signals[3].name: `2x` must be letters",
        "11:25: spec.signals[4].type: unknown value `latency`",
        "14:25: spec.guard.impactWindow: must be longer than 0s",
        "14:41: spec.guard.rollbackIf: unknown value `better`",
        "14:57: spec.guard.signal: `up` is true or false",
    ];
    assert_starts(&d, &expect);
}

#[test]
fn guard_tolerance_and_direction() {
    let guard = |g: &str| {
        format!(
            "{HEAD}spec:\n  targetRef: {{kind: Service, name: web}}\n  actions:\n    - {{name: a, condition: rps < 10, operation: {{type: webhook, url: 'http://x'}}}}\n  guard: {g}\n"
        )
    };
    let ok = parse_policies(&guard("{tolerance: 12.5%, better: higher}"));
    assert!(!ok.has_errors(), "{:?}", ok.diagnostics);
    let g = &ok.policies[0].guard;
    assert!((g.tolerance - 0.125).abs() < 1e-12);
    assert_eq!(g.better, Some(Better::Higher));
    assert_eq!(g.better_for("p99"), Better::Higher);

    for (g, want) in [
        (
            "{tolerance: 150%}",
            "spec.guard.tolerance: must be at least 0% and below 100%, found 150%",
        ),
        (
            "{tolerance: 1.15}",
            "spec.guard.tolerance: must be at least 0% and below 100%, found 1.15",
        ),
        (
            "{tolerance: -0.1}",
            "spec.guard.tolerance: must be at least 0% and below 100%, found -0.1",
        ),
        (
            "{tolerance: lots}",
            "spec.guard.tolerance: must be a percentage like `10%` or a share like 0.1",
        ),
        (
            "{tolerance: [1]}",
            "spec.guard.tolerance: must be a number, found a list",
        ),
        ("{better: up}", "spec.guard.better: unknown value `up`"),
    ] {
        let d = diags(&guard(g));
        assert_eq!(d.len(), 1, "{g}: {d:#?}");
        assert!(
            d[0].contains(want),
            "{g}: {}\n  does not contain\n{want}",
            d[0]
        );
        assert!(d[0].starts_with("8:"), "{g}: {}", d[0]);
    }
}

#[test]
fn load_file_reports_io_and_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "kind: AutopilotPolicy\n").unwrap();
    match load_file(&bad) {
        Err(PolicyError::Invalid { diagnostics, .. }) => assert!(!diagnostics.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        load_file(&dir.join("missing.yaml")),
        Err(PolicyError::Io { .. })
    ));
    let good = dir.join("good.yaml");
    std::fs::write(&good, CHECKOUT).unwrap();
    assert_eq!(load_file(&good).unwrap().policies.len(), 2);
}

#[test]
fn rate_limits_clear_and_imply_their_rollback() {
    let src = format!(
        "{HEAD}spec:
  targetRef: {{kind: Service, name: web}}
  actions:
    - {{name: a, condition: p99 > 1, operation: {{type: rate-limit, interface: eth0, rate: 10mbit}}, rollback: {{type: rate-limit, interface: eth0, clear: true}}}}
    - {{name: b, condition: p99 > 1, operation: {{type: rate-limit, cgroup: /sys/fs/cgroup/web, rate: 1mbit, burst: 64kb}}}}
"
    );
    let r = parse_policies(&src);
    // Both undo themselves by clearing: nothing to warn about.
    let w: Vec<String> = r.diagnostics.iter().map(ToString::to_string).collect();
    assert!(w.is_empty(), "{w:#?}");
    let a = &r.policies[0].actions[0];
    let clear = Operation::RateLimit(RateLimit {
        on: RateLimitTarget::Interface("eth0".into()),
        change: RateLimitChange::Clear,
    });
    assert_eq!(
        a.operation,
        Operation::RateLimit(RateLimit {
            on: RateLimitTarget::Interface("eth0".into()),
            change: RateLimitChange::Limit {
                rate: "10mbit".into(),
                burst: None
            },
        })
    );
    assert_eq!(a.rollback.as_ref(), Some(&clear));
    assert_eq!(a.operation.implied_rollback(), Some(clear.clone()));
    // Nothing undoes a clear.
    assert_eq!(clear.implied_rollback(), None);
    let b = &r.policies[0].actions[1];
    let on = RateLimitTarget::Cgroup("/sys/fs/cgroup/web".into());
    assert_eq!(
        b.operation,
        Operation::RateLimit(RateLimit {
            on: on.clone(),
            change: RateLimitChange::Limit {
                rate: "1mbit".into(),
                burst: Some("64kb".into())
            },
        })
    );
    assert_eq!(
        b.rollback,
        Some(Operation::RateLimit(RateLimit {
            on,
            change: RateLimitChange::Clear
        }))
    );
    assert_eq!(
        Operation::Scale(Scale {
            deployment: "web".into(),
            namespace: None,
            change: ScaleChange::By(1)
        })
        .implied_rollback(),
        None
    );
}

#[test]
fn rate_limit_and_scale_fields_are_checked() {
    let src = format!(
        "{HEAD}spec:
  targetRef: {{kind: Deployment, name: Web_1}}
  actions:
    - {{name: a, condition: p99 > 1, operation: {{type: rate-limit, interface: eth0, clear: true, rate: 1mbit}}}}
    - {{name: b, condition: p99 > 1, operation: {{type: rate-limit, interface: eth0}}}}
    - {{name: c, condition: p99 > 1, operation: {{type: rate-limit, interface: eth0, clear: yes}}}}
    - {{name: d, condition: p99 > 1, operation: {{type: rate-limit, interface: 'eth0:1', rate: 1mbit}}}}
    - {{name: e, condition: p99 > 1, operation: {{type: scale, replicas: 2}}}}
    - {{name: f, condition: p99 > 1, operation: {{type: scale, deployment: web, namespace: -n, delta: 1}}}}
    - {{name: g, condition: p99 > 1, operation: {{type: scale, deployment: '--kubeconfig=x', replicas: 1}}}}
"
    );
    let d = diags(&src);
    let expect = [
        "7:97: spec.actions[0].operation.rate: `clear: true` removes the limit, so `rate` does not apply",
        "8:48: spec.actions[1].operation: missing required field `rate` (or `clear: true` to remove a limit)",
        "9:91: spec.actions[2].operation.clear: must be true or false, found a string",
        "10:78: spec.actions[3].operation.interface: `eth0:1` is not a network interface name",
        "11:48: spec.actions[4].operation: the target's name: `Web_1` is not a Kubernetes name",
        "12:90: spec.actions[5].operation.namespace: `-n` is not a Kubernetes namespace",
        "13:74: spec.actions[6].operation.deployment: `--kubeconfig=x` is not a Kubernetes name",
    ];
    assert_starts(&d, &expect);
}

#[test]
fn kubernetes_names_have_one_rule() {
    let named = |name: &str, deployment: &str| {
        format!(
            "apiVersion: perfpilot.dev/v1alpha1\nkind: AutopilotPolicy\nmetadata: {{name: '{name}'}}\nspec:\n  targetRef: {{kind: Service, name: web}}\n  actions:\n    - {{name: a, condition: p99 > 1, operation: {{type: scale, deployment: '{deployment}', replicas: 2}}}}\n"
        )
    };
    let long_label = "a".repeat(64);
    for good in ["web", "web-1.prod", "a.b.c", "0", long_label.as_str()] {
        let d = diags(&named(good, good));
        // Only scale's warning that it has no rollback.
        assert!(d.iter().all(|d| d.contains("warning")), "{good}: {d:?}");
    }
    for bad in ["a..b", "a.-b", "a-.b", ".a", "a.", "-a", "Web", "a_b", ""] {
        let d = diags(&named(bad, "web"));
        assert!(
            d.iter()
                .any(|d| d.starts_with(&format!("3:18: metadata.name: `{bad}` must be lowercase"))),
            "{bad}: {d:?}"
        );
        let d = diags(&named("p", bad));
        assert!(
            d.iter()
                .any(|d| d.contains(&format!("deployment: `{bad}` is not a Kubernetes name"))),
            "{bad}: {d:?}"
        );
    }
    assert!(!dns_label(&long_label));
    assert!(dns_label("kube-system"));
    assert!(!dns_subdomain(&["a"; 128].join(".")));
    assert!(dns_subdomain(&["a"; 127].join(".")), "253 characters");
}

#[test]
fn rates_and_sizes_are_read_as_the_operation_reads_them() {
    let limit = |rate: &str, burst: &str| {
        format!(
            "{HEAD}spec:\n  targetRef: {{kind: Service, name: web}}\n  actions:\n    - {{name: a, condition: p99 > 1, operation: {{type: rate-limit, interface: eth0, rate: '{rate}', burst: '{burst}'}}}}\n"
        )
    };
    for (rate, burst) in [
        ("10mbit", "32kb"),
        ("500Kbit", "64K"),
        ("100kbps", "1500"),
        ("1.5gbit", "1500b"),
        ("8bps", "8kbit"),
    ] {
        let d = diags(&limit(rate, burst));
        assert!(d.is_empty(), "{rate} {burst}: {d:?}");
    }
    for rate in ["fast", "10xbit", "0mbit", "mbit", "10"] {
        let d = diags(&limit(rate, "32kb"));
        assert_eq!(d.len(), 1, "{rate}: {d:?}");
        assert!(
            d[0].contains(&format!("`{rate}` is not a tc rate")),
            "{d:?}"
        );
    }
    for burst in ["lots", "3furlongs", "0kb", "32tb"] {
        let d = diags(&limit("10mbit", burst));
        assert_eq!(d.len(), 1, "{burst}: {d:?}");
        assert!(
            d[0].contains(&format!("`{burst}` is not a tc size")),
            "{d:?}"
        );
    }
}

#[test]
fn an_interface_rate_limit_without_rollback_gets_its_clearing_as_rollback() {
    let src = format!(
        "{HEAD}spec:
  targetRef: {{kind: Service, name: web}}
  actions:
    - {{name: a, condition: p99 > 1, operation: {{type: rate-limit, interface: eth0, rate: 10mbit}}}}
"
    );
    let r = parse_policies(&src);
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
    let a = &r.policies[0].actions[0];
    assert_eq!(
        a.rollback,
        Some(Operation::RateLimit(RateLimit {
            on: RateLimitTarget::Interface("eth0".into()),
            change: RateLimitChange::Clear,
        }))
    );
}

/// `line:column: message` of every diagnostic, found on a thread with the
/// stack the server's autopilot thread has (Rust's default, 2 MiB), which
/// deep nesting used to overflow, aborting the process.
fn diags_on_a_2mib_stack(src: String) -> Vec<String> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || diags(&src))
        .unwrap()
        .join()
        .unwrap()
}

/// A webhook action whose body is `body`, on line 12 at column 15, inside
/// five collections (the document, spec, actions, the action, the
/// operation).
fn with_body(body: &str) -> String {
    format!(
        "{HEAD}spec:
  targetRef: {{kind: Service, name: web}}
  actions:
    - name: a
      condition: p99 > 1
      operation:
        type: webhook
        url: 'http://x'
        body: {body}
"
    )
}

fn nested(levels: usize, leaf: &str) -> String {
    format!("{}{leaf}{}", "[".repeat(levels), "]".repeat(levels))
}

#[test]
fn nesting_deeper_than_the_limit_is_one_error_where_it_goes_too_deep() {
    let limit = crate::yaml::MAX_DEPTH;
    let message = format!("YAML nests more than {limit} levels deep (the limit for a policy file)");
    // Just within the limit: a valid policy.
    let r = parse_policies(&with_body(&nested(limit - 5, "1")));
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
    let mut body = serde_json::json!(1);
    for _ in 0..limit - 5 {
        body = serde_json::json!([body]);
    }
    let Operation::Webhook(w) = &r.policies[0].actions[0].operation else {
        panic!("{:?}", r.policies[0].actions[0].operation)
    };
    assert_eq!(w.body, Some(body));
    // One more, and the bracket that opens it is the error, before
    // anything deeper is read.
    assert_eq!(
        diags_on_a_2mib_stack(with_body(&nested(limit - 4, "1"))),
        [format!("12:{}: {message}", 15 + limit - 5)]
    );
    // Thousands: the scanner, which reads ahead, stops at its own limit
    // of 255 brackets first.
    for levels in [2_000, 10_000] {
        assert_eq!(
            diags_on_a_2mib_stack(with_body(&nested(levels, "1"))),
            [format!("12:{}: {message}", 15 + 255)],
            "{levels} levels"
        );
    }
    // Block style, one level per `- `, and a bare document.
    let dashes = format!("{}x\n", "- ".repeat(2_000));
    assert_eq!(
        diags_on_a_2mib_stack(dashes),
        [format!("1:{}: {message}", 2 * limit + 1)]
    );
    let mappings: String = (0..2_000)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    assert_eq!(
        diags_on_a_2mib_stack(mappings),
        [format!("{}:{}: {message}", limit + 1, 2 * limit + 1)]
    );
}

#[test]
fn an_alias_counts_as_deep_as_its_anchor() {
    let limit = crate::yaml::MAX_DEPTH;
    // An anchor 60 levels high, in the document's mapping: 61 deep.
    let anchor = format!("a: &a {}\n", nested(60, "1"));
    let d = diags(&format!("{anchor}b: *a\n"));
    assert!(
        d.iter().all(|d| !d.contains("levels deep")),
        "an alias as deep as its anchor: {d:?}"
    );
    // Repeated four levels further in: 65 deep, an error at the alias.
    let src = format!("{anchor}b: [[[[*a]]]]\n");
    assert_eq!(
        diags_on_a_2mib_stack(src),
        [format!(
            "2:8: YAML nests more than {limit} levels deep (the limit for a policy file)"
        )]
    );
    // Anchors made of aliases of anchors add up.
    let mut chain = String::from("x0: &x0 [[[[[[[[[[1]]]]]]]]]]\n");
    for i in 1..10 {
        chain.push_str(&format!("x{i}: &x{i} [[[[[[[[*x{}]]]]]]]]\n", i - 1));
    }
    let d = diags_on_a_2mib_stack(chain);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("8:17: YAML nests more than"), "{d:?}");
}

#[test]
fn an_alias_cannot_reach_into_another_document() {
    let d = diags(&format!("{}---\nb: *a\n", "a: &a [1]\n"));
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("3:4: YAML syntax: "), "{d:?}");
    assert!(d[0].contains("unknown anchor"), "{d:?}");
}
