//! The executor's safety properties, with real processes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use perfpilot_autopilot::executor::{
    verdict, ExecError, Executor, Mode, Retry, SavedAction, SavedState, Status, TargetEnvs, Verdict,
};
use perfpilot_autopilot::ops::{OpError, Ops, Trigger};
use perfpilot_autopilot::{parse_policies, Better, Env, Policy, TargetRef, Value};

/// A fresh temporary directory, removed on drop.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

struct Metrics {
    p99: f64,
    labels: BTreeMap<String, String>,
}

impl Env for Metrics {
    fn value(&self, name: &str) -> Option<Value> {
        (name == "p99").then_some(Value::Number(self.p99))
    }
    fn alert_firing(&self, _: &str) -> Option<bool> {
        None
    }
    fn hotspot(&self, _: &str) -> Option<f64> {
        None
    }
}

impl TargetEnvs for Metrics {
    fn env(&self, _: &TargetRef) -> Option<&dyn Env> {
        Some(self)
    }
    fn trigger(&self, target: &TargetRef) -> Trigger {
        Trigger {
            alert: Some("HighLatency".into()),
            target: target.name.clone(),
            labels: self.labels.clone(),
        }
    }
}

fn slow() -> Metrics {
    Metrics {
        p99: 2.0,
        labels: BTreeMap::new(),
    }
}

fn yaml_list(argv: &[&str]) -> String {
    let quoted: Vec<String> = argv
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// One policy on `checkout` whose actions are given as YAML flow mappings.
fn policy(name: &str, actions: &[String]) -> Policy {
    let mut text = format!(
        "apiVersion: perfpilot.dev/v1alpha1\nkind: AutopilotPolicy\nmetadata: {{name: {name}}}\nspec:\n  targetRef: {{kind: Process, name: checkout}}\n  actions:\n"
    );
    for a in actions {
        text.push_str(&format!("    - {a}\n"));
    }
    let report = parse_policies(&text);
    assert!(!report.has_errors(), "{:?}\n{text}", report.diagnostics);
    report.policies.into_iter().next().unwrap()
}

fn exec_action(name: &str, argv: &[&str], extra: &str) -> String {
    format!(
        "{{name: {name}, condition: 'p99 > 1', operation: {{type: exec, command: {}}}{extra}}}",
        yaml_list(argv)
    )
}

fn fast_retry() -> Retry {
    Retry {
        attempts: 2,
        backoff: Duration::from_millis(10),
    }
}

fn touch(path: &Path) -> Vec<String> {
    vec!["touch".into(), path.display().to_string()]
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn dry_run_runs_nothing() {
    let dir = tempdir();
    let marker = dir.path().join("ran");
    let t = touch(&marker);
    let p = policy("p", &[exec_action("a", &argv(&t), ", approval: auto")]);
    let mut ex = Executor::new(vec![p]);
    assert_eq!(ex.mode(), Mode::DryRun);
    let decisions = ex.on_tick(0, &slow());
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0];
    assert_eq!(d.status, Status::DryRun);
    assert_eq!(d.condition, "p99 > 1");
    assert_eq!(d.readings[0].to_string(), "p99 = 2");
    assert_eq!(d.policy_version, 1);
    let report = ex.run(d).unwrap();
    assert!(!report.ran);
    // The action's own dryRun wins over enforce too.
    let p = policy(
        "q",
        &[exec_action(
            "a",
            &argv(&t),
            ", approval: auto, dryRun: true",
        )],
    );
    let mut ex = Executor::new(vec![p]).with_mode(Mode::Enforce);
    let d = ex.on_tick(0, &slow()).remove(0);
    assert_eq!(d.mode, Mode::DryRun);
    assert!(!ex.run(&d).unwrap().ran);
    assert!(!marker.exists());
}

#[test]
fn cooldown_and_hourly_cap_hold_under_a_storm() {
    let p = policy(
        "p",
        &[exec_action(
            "a",
            &["true"],
            ", approval: auto, cooldown: 5m, maxPerHour: 3",
        )],
    );
    let mut ex = Executor::new(vec![p]).with_mode(Mode::Enforce);
    // 1,000 duplicate triggers at the same instant: one decision.
    let mut n = 0;
    for _ in 0..1000 {
        for d in ex.on_tick(0, &slow()) {
            assert!(ex.run(&d).unwrap().ok());
            n += 1;
        }
    }
    assert_eq!(n, 1);
    // 1,000 ticks 10s apart (2.8 hours): never within 5 minutes of the
    // last, never more than 3 in any hour.
    let mut times = vec![0i64];
    for i in 1..=1000i64 {
        let now = i * 10_000;
        for d in ex.on_tick(now, &slow()) {
            assert!(ex.run(&d).unwrap().ok());
            times.push(now);
        }
    }
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= 300_000, "{times:?}");
    }
    for (i, t) in times.iter().enumerate() {
        let in_hour = times[i..].iter().filter(|u| **u - t < 3_600_000).count();
        assert!(in_hour <= 3, "{times:?}");
    }
    // The cap, not the cooldown, is what limits it: 3 per hour.
    assert_eq!(times.len(), 9, "{times:?}");
}

#[test]
fn manual_approval_blocks_until_approved() {
    let dir = tempdir();
    let marker = dir.path().join("ran");
    let t = touch(&marker);
    let p = policy("p", &[exec_action("a", &argv(&t), ", approval: manual")]);
    let mut ex = Executor::new(vec![p]).with_mode(Mode::Enforce);
    let d = ex.on_tick(0, &slow()).remove(0);
    assert_eq!(d.status, Status::PendingApproval);
    // Queued once, however long the condition keeps holding.
    for i in 1..1000 {
        assert!(ex.on_tick(i * 1000, &slow()).is_empty());
    }
    assert_eq!(ex.pending().count(), 1);
    assert!(matches!(ex.run(&d), Err(ExecError::NotRunnable { .. })));
    assert!(!marker.exists());
    ex.set_paused(true);
    assert_eq!(ex.approve(d.id, "ana", 1_000_000), Err(ExecError::Paused));
    ex.set_paused(false);
    let approved = ex.approve(d.id, "ana", 1_000_000).unwrap();
    assert_eq!(approved.status, Status::Approved { by: "ana".into() });
    assert!(!marker.exists());
    assert!(ex.run(&approved).unwrap().ok());
    assert!(marker.exists());
    assert_eq!(
        ex.approve(d.id, "ana", 0),
        Err(ExecError::NoSuchDecision(d.id))
    );
    // A rejection lets the action be decided again later.
    let d = ex.on_tick(3_000_000, &slow()).remove(0);
    let r = ex.reject(d.id, "bo").unwrap();
    assert_eq!(r.status, Status::Rejected { by: "bo".into() });
    assert_eq!(ex.on_tick(3_001_000, &slow()).len(), 1);
}

#[test]
fn one_action_in_flight_per_target() {
    let p = policy(
        "p",
        &[
            exec_action("a", &["true"], ", approval: auto"),
            exec_action("b", &["true"], ", approval: auto"),
        ],
    );
    let other = policy("o", &[exec_action("c", &["true"], ", approval: auto")]);
    let mut ex = Executor::new(vec![p, other]).with_mode(Mode::Enforce);
    let first = ex.on_tick(0, &slow());
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(ex.in_flight(&first[0].target));
    for i in 1..100 {
        assert!(ex.on_tick(i, &slow()).is_empty());
    }
    assert!(ex.run(&first[0]).unwrap().ok());
    let second = ex.on_tick(200, &slow());
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].action, first[0].action);
    ex.set_paused(true);
    ex.finish(&second[0]);
    assert!(ex.on_tick(300, &slow()).is_empty());
    ex.set_paused(false);
    assert_eq!(ex.on_tick(400, &slow()).len(), 1);
}

#[test]
fn a_rollback_on_a_busy_target_does_not_free_it() {
    let p = policy(
        "p",
        &[
            exec_action(
                "a",
                &["true"],
                ", approval: auto, rollback: {type: exec, command: [\"true\"]}",
            ),
            exec_action("b", &["true"], ", approval: auto"),
        ],
    );
    let mut ex = Executor::new(vec![p]).with_mode(Mode::Enforce);
    let a = ex.on_tick(0, &slow()).remove(0);
    assert_eq!(a.action, "a");
    assert!(ex.in_flight(&a.target));
    // A rollback on the same target, as the server runs one: it claims
    // the busy target (false: it was not free) and finishes.
    assert!(!ex.claim(&a));
    ex.finish(&a);
    assert!(ex.in_flight(&a.target), "the rollback freed a's claim");
    assert!(ex.on_tick(100, &slow()).is_empty());
    // The same through the executor's own impact check.
    let worse = ex.impact(&a, "p99", 2.0, 3.0);
    assert!(worse.rollback.is_some_and(|r| r.ok()));
    assert!(ex.in_flight(&a.target));
    assert!(ex.on_tick(200, &slow()).is_empty());
    // a itself finishes: the target is free and b may start.
    ex.finish(&a);
    assert!(!ex.in_flight(&a.target));
    let next = ex.on_tick(300, &slow());
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].action, "b");
}

#[test]
fn shell_metacharacters_in_labels_run_nothing() {
    let dir = tempdir();
    let m = |n: &str| dir.path().join(n).display().to_string();
    let labels: BTreeMap<String, String> = [
        ("cmd".to_string(), format!("$(touch {})", m("a"))),
        (
            "semi-colon".to_string(),
            format!("x; touch {}; rm -rf /", m("b")),
        ),
        ("back.tick".to_string(), format!("`touch {}`", m("c"))),
        ("$(touch x)".to_string(), "name too".to_string()),
    ]
    .into();
    let env = Metrics { p99: 2.0, labels };
    let p = policy("p", &[exec_action("a", &["env"], ", approval: auto")]);
    let mut ex = Executor::new(vec![p]).with_mode(Mode::Enforce);
    let d = ex.on_tick(0, &env).remove(0);
    let report = ex.run(&d).unwrap();
    let out = &report.outcome().unwrap().output;
    assert!(report.ok(), "{out}");
    assert!(
        out.contains(&format!("PERFPILOT_LABEL_CMD=$(touch {})", m("a"))),
        "{out}"
    );
    assert!(out.contains("PERFPILOT_LABEL_SEMI_COLON=x; touch"), "{out}");
    assert!(out.contains(&format!("PERFPILOT_LABEL_BACK_TICK=`touch {}`", m("c"))));
    assert!(out.contains("PERFPILOT_LABEL___TOUCH_X_=name too"), "{out}");
    assert!(out.contains("PERFPILOT_ALERT=HighLatency"));
    for n in ["a", "b", "c"] {
        assert!(!dir.path().join(n).exists(), "{n} was created");
    }
    assert!(!Path::new("x").exists());
}

#[test]
fn exec_timeout_kills_the_child() {
    let dir = tempdir();
    let marker = dir.path().join("late");
    // The grandchild is in the same process group and dies too.
    let script = format!("sleep 1 && touch {} & sleep 30", marker.display());
    let p = policy(
        "p",
        &[format!(
            "{{name: a, condition: 'p99 > 1', approval: auto, operation: {{type: exec, command: {}, timeout: 300ms}}}}",
            yaml_list(&["sh", "-c", &script])
        )],
    );
    let mut ex = Executor::new(vec![p])
        .with_mode(Mode::Enforce)
        .with_retry(Retry {
            attempts: 1,
            backoff: Duration::ZERO,
        });
    let d = ex.on_tick(0, &slow()).remove(0);
    let report = ex.run(&d).unwrap();
    let o = report.outcome().unwrap();
    assert!(!o.ok);
    assert!(matches!(o.error, Some(OpError::Timeout { .. })), "{o:?}");
    assert!(o.duration < Duration::from_secs(5), "{o:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!marker.exists());
}

#[test]
fn a_failing_action_is_reported_and_the_executor_goes_on() {
    let p = policy(
        "p",
        &[exec_action(
            "a",
            &["sh", "-c", "echo broken >&2; exit 3"],
            ", approval: auto",
        )],
    );
    let q = policy("q", &[exec_action("b", &["true"], ", approval: auto")]);
    let mut ex = Executor::new(vec![p, q])
        .with_mode(Mode::Enforce)
        .with_retry(fast_retry());
    let d = ex.on_tick(0, &slow()).remove(0);
    let report = ex.run(&d).unwrap();
    assert!(!report.ok());
    assert_eq!(report.attempts.len(), 2);
    let o = report.outcome().unwrap();
    assert_eq!(o.exit_status, Some(3));
    assert!(o.output.contains("broken"), "{o:?}");
    assert!(matches!(
        o.error,
        Some(OpError::ExitStatus { status: 3, .. })
    ));
    // The target is free again and the other policy's action runs.
    let next = ex.on_tick(1000, &slow());
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].policy, "q");
    assert!(ex.run(&next[0]).unwrap().ok());
}

#[test]
fn a_worse_impact_runs_the_rollback() {
    let dir = tempdir();
    let marker = dir.path().join("rolled-back");
    let t = touch(&marker);
    let p = policy(
        "p",
        &[format!(
            "{{name: a, condition: 'p99 > 1', approval: auto, operation: {{type: exec, command: [\"true\"]}}, rollback: {{type: exec, command: {}}}}}",
            yaml_list(&argv(&t))
        )],
    );
    let mut ex = Executor::new(vec![p])
        .with_mode(Mode::Enforce)
        .with_ops(Ops::default());
    let d = ex.on_tick(0, &slow()).remove(0);
    assert!(ex.run(&d).unwrap().ok());
    let same = ex.impact(&d, "p99", 2.0, 2.02);
    assert_eq!(same.verdict, Verdict::Same);
    assert!(same.rollback.is_none());
    assert!(!marker.exists());
    let better = ex.impact(&d, "p99", 2.0, 0.5);
    assert_eq!(better.verdict, Verdict::Better);
    assert!(better.rollback.is_none());
    let worse = ex.impact(&d, "p99", 2.0, 3.0);
    assert_eq!(worse.verdict, Verdict::Worse);
    assert!(worse.rollback.is_some_and(|r| r.ok()));
    assert!(marker.exists());
    assert!(!ex.in_flight(&d.target));
}

#[test]
fn throughput_that_falls_is_worse_and_the_guard_sets_the_tolerance() {
    let dir = tempdir();
    let marker = dir.path().join("rolled-back");
    let t = touch(&marker);
    let with_guard = |guard: &str| {
        let text = format!(
            "apiVersion: perfpilot.dev/v1alpha1\nkind: AutopilotPolicy\nmetadata: {{name: p}}\nspec:\n  targetRef: {{kind: Process, name: checkout}}\n  actions:\n    - {{name: a, condition: 'p99 > 1', approval: auto, operation: {{type: exec, command: [\"true\"]}}, rollback: {{type: exec, command: {}}}}}\n  guard: {guard}\n",
            yaml_list(&argv(&t))
        );
        let r = parse_policies(&text);
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        r.policies.into_iter().next().unwrap()
    };
    let mut ex = Executor::new(vec![with_guard("{rollbackIf: worse}")])
        .with_mode(Mode::Enforce)
        .with_ops(Ops::default());
    let d = ex.on_tick(0, &slow()).remove(0);
    assert!(ex.run(&d).unwrap().ok());
    // rps improves upward: 5 → 20 is better, 20 → 5 worse and undone.
    assert_eq!(ex.impact(&d, "rps", 5.0, 20.0).verdict, Verdict::Better);
    assert!(!marker.exists());
    let worse = ex.impact(&d, "rps", 20.0, 5.0);
    assert_eq!(worse.verdict, Verdict::Worse);
    assert!(worse.rollback.is_some_and(|r| r.ok()));
    assert!(marker.exists());

    // `better: higher` and a 20% tolerance, for a signal of the SRE's own.
    let g = with_guard("{better: higher, tolerance: 20%}").guard;
    assert_eq!(g.better_for("hits"), Better::Higher);
    assert!((g.tolerance - 0.2).abs() < 1e-12);
    assert_eq!(
        verdict(10.0, 8.5, g.tolerance, g.better_for("hits")),
        Verdict::Same
    );
    assert_eq!(
        verdict(10.0, 7.5, g.tolerance, g.better_for("hits")),
        Verdict::Worse
    );
    // Unset, only `rps` improves upward.
    let g = with_guard("{tolerance: 0.1}").guard;
    assert_eq!(g.better_for("p99"), Better::Lower);
    assert_eq!(g.better_for("rps"), Better::Higher);
    assert!((g.tolerance - 0.1).abs() < 1e-12);
}

#[test]
fn a_changed_policy_gets_a_new_version_and_keeps_its_caps() {
    let a = policy(
        "p",
        &[exec_action(
            "a",
            &["true"],
            ", approval: auto, maxPerHour: 1",
        )],
    );
    let mut ex = Executor::new(vec![a.clone()]);
    assert_eq!(ex.on_tick(0, &slow()).len(), 1);
    assert_eq!(ex.upsert_policy(a), 1);
    let b = policy(
        "p",
        &[exec_action(
            "a",
            &["/bin/true"],
            ", approval: auto, maxPerHour: 1",
        )],
    );
    assert_eq!(ex.upsert_policy(b), 2);
    assert!(ex.on_tick(1000, &slow()).is_empty());
    let d = ex.on_tick(3_600_000, &slow()).remove(0);
    assert_eq!(d.policy_version, 2);
}

#[test]
fn state_survives_a_restart_through_export_and_restore() {
    let capped = exec_action("a", &["true"], ", approval: auto, maxPerHour: 1");
    let manual = exec_action("m", &["true"], ", approval: manual");
    let p = policy("p", &[capped.clone(), manual.clone()]);
    let mut ex = Executor::new(vec![p.clone()]).with_mode(Mode::Enforce);
    // One action in flight per target: the run first, then the queue.
    let ran = ex.on_tick(0, &slow()).remove(0);
    assert_eq!(ran.status, Status::Ready);
    ex.finish(&ran);
    let queued = ex.on_tick(1000, &slow()).remove(0);
    assert_eq!(queued.status, Status::PendingApproval);
    ex.set_paused(true);
    // Through JSON, as the server keeps it on disk.
    let saved = serde_json::to_string(&ex.export()).unwrap();

    let mut again = Executor::new(vec![p]).with_mode(Mode::Enforce);
    let dropped = again.restore(serde_json::from_str(&saved).unwrap());
    assert!(dropped.is_empty(), "{dropped:?}");
    assert!(again.paused());
    again.set_paused(false);
    // The hourly cap still holds, and the queued decision is still queued.
    assert!(again.on_tick(60_000, &slow()).is_empty());
    let pending: Vec<_> = again.pending().cloned().collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, queued.id);
    assert_eq!(pending[0].readings, queued.readings);
    assert_eq!(pending[0], queued, "restored as it was decided");
    // New decisions never reuse an id.
    let next = again.on_tick(3_600_000, &slow());
    assert_eq!(next.len(), 1);
    assert!(next[0].id > queued.id);

    // A queued decision of a changed policy is dropped, saying why.
    let changed = policy(
        "p",
        &[
            capped,
            exec_action("m", &["/bin/true"], ", approval: manual"),
        ],
    );
    let mut third = Executor::new(Vec::new()).with_mode(Mode::Enforce);
    third.upsert_policy_as(changed, 2);
    let dropped = third.restore(serde_json::from_str(&saved).unwrap());
    assert_eq!(dropped.len(), 1);
    assert!(
        dropped[0].contains("changed from version 1 to 2"),
        "{dropped:?}"
    );
    assert_eq!(third.pending().count(), 0);
}

#[test]
fn restored_times_from_any_clock_do_not_overflow() {
    let p = policy("p", &[exec_action("a", &["true"], ", approval: auto")]);
    let saved = SavedState {
        next_id: 5,
        paused: false,
        actions: vec![SavedAction {
            policy: "p".into(),
            action: "a".into(),
            last_ms: Some(i64::MIN),
            recent: vec![i64::MIN, i64::MIN + 1],
        }],
        pending: Vec::new(),
    };
    let mut ex = Executor::new(vec![p]).with_mode(Mode::Enforce);
    assert!(ex.restore(saved).is_empty());
    let d = ex.on_tick(i64::MAX, &slow());
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].id, 5);
}

#[test]
fn a_removed_policy_drops_its_queue_and_keeps_its_caps_if_it_returns() {
    let p = policy(
        "p",
        &[
            exec_action("a", &["true"], ", approval: auto, maxPerHour: 1"),
            exec_action("m", &["true"], ", approval: manual"),
        ],
    );
    let mut ex = Executor::new(vec![p.clone()]).with_mode(Mode::Enforce);
    for t in [0, 1000] {
        for d in ex.on_tick(t, &slow()) {
            ex.finish(&d);
        }
    }
    let dropped = ex.remove_policy("p").unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].action, "m");
    assert_eq!(ex.pending().count(), 0);
    assert!(ex.on_tick(1500, &slow()).is_empty());
    assert!(ex.remove_policy("p").is_none());
    ex.upsert_policy(p);
    // Only the manual action is decided again: the other is still capped.
    let again = ex.on_tick(2000, &slow());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].action, "m");
}
