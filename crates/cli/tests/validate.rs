//! `perfpilot validate`: autopilot policy files checked through the binary.

mod common;

use std::path::PathBuf;

use common::perfpilot;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../autopilot/examples/policies")
}

/// A policy with one mistake of each kind, each on its own line.
const BAD: &str = r#"apiVersion: perfpilot.dev/v1alpha1
kind: AutopilotPolicy
metadata:
  name: checkout-latency
spec:
  targetRef: {kind: Servce, name: checkout}
  signals:
    - {name: hot, type: hotspot, function: encrypt_data, weight: 1.5}
  actions:
    - name: restart
      condition: 'alert("CheckoutHighLatency").firing and p99 > baseline.p99 * 1.3 for 3m'
      operation: {type: exec, command: "systemctl restart checkout"}
      cooldown: 10x
      maxPerHour: 0
    - name: restart
      condition: 'htt > 0.5 and foo("x") for 2m'
      operation: {type: restrat}
      aproval: auto
  guard: {impactWindow: 5m, rollbackIf: worse}
"#;

#[test]
fn the_example_policies_are_valid() {
    let dir = examples();
    let out = perfpilot()
        .arg("validate")
        .arg(dir.join("checkout-latency.yaml"))
        .arg(dir.join("search-degrade.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].ends_with("checkout-latency.yaml: ok (2 policies)"),
        "{stdout}"
    );
    assert!(
        lines[1].ends_with("search-degrade.yaml: ok (1 policy)"),
        "{stdout}"
    );
}

#[test]
fn every_error_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, BAD).unwrap();
    let out = perfpilot().arg("validate").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(out.stdout.is_empty());
    let file = bad.display().to_string();
    let expected = [
        "6:21: spec.targetRef.kind: unknown value `Servce`; did you mean `Service`? (known: Service, Process, SystemdUnit, Deployment)",
        "8:66: spec.signals[0].weight: 1.5 is outside 0 to 1",
        "12:40: spec.actions[0].operation.command: exec takes an argv list, never a shell string: write [\"systemctl\", \"restart\", \"checkout\"]",
        "13:17: spec.actions[0].cooldown: `10x` is not a duration (unknown unit `x`); write e.g. 30s, 10m, 1h30m",
        "14:19: spec.actions[0].maxPerHour: 0 would never let the action run; use at least 1 (or dryRun: true)",
        "15:13: spec.actions[1].name: action `restart` is already defined at line 10",
        "16:19: spec.actions[1].condition: unknown signal `htt`; did you mean `hot`?",
        "16:33: spec.actions[1].condition: unknown function foo; known: alert, hotspot",
        "17:25: spec.actions[1].operation.type: unknown operation type `restrat`; did you mean `restart`? (known: webhook, exec, restart, degrade, rate-limit, scale)",
        "18:7: spec.actions[1]: unknown field `aproval`; did you mean `approval`?",
    ];
    let want: Vec<String> = expected.iter().map(|e| format!("{file}:{e}")).collect();
    let got: Vec<&str> = stderr.lines().collect();
    assert_eq!(got[..got.len() - 1], want, "{stderr}");
    assert_eq!(got[got.len() - 1], "perfpilot: 1 of 1 file(s) invalid");
    // Each position points at the offending text.
    let lines: Vec<&str> = BAD.lines().collect();
    for (e, text) in expected.iter().zip([
        "Servce",
        "1.5",
        "\"systemctl",
        "10x",
        "0",
        "restart",
        "htt",
        "foo(",
        "restrat",
        "aproval",
    ]) {
        let mut parts = e.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().unwrap();
        let col: usize = parts.next().unwrap().parse().unwrap();
        let at: String = lines[line - 1].chars().skip(col - 1).collect();
        assert!(at.starts_with(text), "{e}: points at {at:?}");
    }
}

#[test]
fn valid_and_invalid_files_together() {
    let dir = tempfile::tempdir().unwrap();
    let syntax = dir.path().join("syntax.yaml");
    std::fs::write(&syntax, "apiVersion: [1,\n").unwrap();
    let out = perfpilot()
        .arg("validate")
        .arg(examples().join("search-degrade.yaml"))
        .arg(&syntax)
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stdout.contains("search-degrade.yaml: ok (1 policy)"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{}:2:1: YAML syntax:", syntax.display())),
        "{stderr}"
    );
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert!(stderr.contains("2 of 3 file(s) invalid"), "{stderr}");
}

#[test]
fn no_file_is_a_usage_error() {
    let out = perfpilot().arg("validate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn nesting_past_the_limit_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.yaml");
    // Block style, one level per `- `: flow style (`[[[`) stops at the
    // scanner's own limit of 255 levels.
    std::fs::write(&deep, format!("spec:\n  {}x\n", "- ".repeat(10_000))).unwrap();
    let out = perfpilot().arg("validate").arg(&deep).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{:?}: {stderr}", out.status);
    // The 64th dash, the 65th level with the document's mapping.
    assert_eq!(
        stderr,
        format!(
            "{}:2:129: YAML nests more than 64 levels deep (the limit for a policy file)\n\
             perfpilot: 1 of 1 file(s) invalid\n",
            deep.display()
        )
    );
}
