//! `scale` through kubectl. No Kubernetes cluster can run where these
//! tests run (no container runtime, no network), so the real kubectl is
//! used only for what needs no cluster (finding none); the commands a
//! scale runs and its arithmetic are checked against a stub kubectl that
//! records its arguments and answers like kubectl would.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use perfpilot_autopilot::ops::{OpError, Ops, Outcome, Trigger};
use perfpilot_autopilot::policy::{Scale, ScaleChange};
use perfpilot_autopilot::{parse_policies, Operation};

/// A stub kubectl in a temporary directory: it appends its arguments to
/// `argv` (one a line, `--` after each call), answers `get` with the
/// contents of `replicas`, and `scale` like kubectl, failing with
/// `scale-error`'s contents when that file exists.
struct Stub {
    dir: tempfile::TempDir,
}

const STUB: &str = r#"dir=$(dirname "$0")
printf '%s\n' "$@" -- >> "$dir/argv"
case "$1" in
  get) cat "$dir/replicas" ;;
  scale)
    if [ -f "$dir/scale-error" ]; then cat "$dir/scale-error" >&2; exit 1; fi
    echo "deployment.apps/${2#deployment/} scaled" ;;
esac
"#;

impl Stub {
    fn new(replicas: &str) -> Stub {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubectl"), STUB).unwrap();
        std::fs::write(dir.path().join("replicas"), replicas).unwrap();
        Stub { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ops(&self) -> Ops {
        Ops {
            // Run by sh rather than executed: a script just written can
            // be "busy" to exec while another test's fork holds it open.
            kubectl: vec!["sh".into(), self.path("kubectl").display().to_string()],
            ..Ops::default()
        }
    }

    /// Each call's arguments.
    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.path("argv")).unwrap_or_default();
        let mut calls = vec![Vec::new()];
        for line in text.lines() {
            match line {
                "--" => calls.push(Vec::new()),
                arg => calls.last_mut().unwrap().push(arg.to_string()),
            }
        }
        calls.pop();
        calls
    }

    fn scale(&self, deployment: &str, namespace: Option<&str>, change: ScaleChange) -> Outcome {
        let op = Operation::Scale(Scale {
            deployment: deployment.into(),
            namespace: namespace.map(String::from),
            change,
        });
        self.ops().run(&op, &Trigger::default())
    }
}

fn args(s: &str) -> Vec<String> {
    s.split(' ').map(String::from).collect()
}

#[test]
fn scale_to_a_count_reads_the_old_one_first() {
    let stub = Stub::new("2");
    let o = stub.scale("web", Some("shop"), ScaleChange::To(3));
    assert!(o.ok, "{o:?}");
    assert_eq!(
        o.output,
        "scaled deployment/web in namespace shop from 2 to 3 replicas\ndeployment.apps/web scaled\n"
    );
    assert_eq!(
        stub.calls(),
        vec![
            args("get deployment/web -o jsonpath={.spec.replicas} -n shop"),
            args("scale deployment/web --current-replicas=2 --replicas=3 -n shop"),
        ]
    );
}

#[test]
fn scale_by_a_delta_stops_at_zero() {
    let stub = Stub::new("2");
    let o = stub.scale("web", None, ScaleChange::By(-5));
    assert!(o.ok, "{o:?}");
    assert!(
        o.output
            .starts_with("scaled deployment/web from 2 to 0 replicas\n"),
        "{}",
        o.output
    );
    assert_eq!(
        stub.calls()[1],
        args("scale deployment/web --current-replicas=2 --replicas=0")
    );

    let stub = Stub::new("4\n");
    let o = stub.scale("web", None, ScaleChange::By(3));
    assert!(o.ok, "{o:?}");
    assert!(o
        .output
        .starts_with("scaled deployment/web from 4 to 7 replicas\n"));
}

#[test]
fn scale_to_the_current_count_changes_nothing() {
    let stub = Stub::new("0");
    let o = stub.scale("web", None, ScaleChange::By(-1));
    assert!(o.ok, "{o:?}");
    assert_eq!(
        o.output,
        "deployment/web has 0 replicas already; nothing to scale\n"
    );
    assert_eq!(stub.calls().len(), 1, "{:?}", stub.calls());
}

#[test]
fn scale_failures_keep_the_old_count_and_kubectl_output() {
    let stub = Stub::new("2");
    std::fs::write(
        stub.path("scale-error"),
        "error: Expected replicas to be 2, was 4\n",
    )
    .unwrap();
    let o = stub.scale("web", None, ScaleChange::By(1));
    assert!(!o.ok);
    assert!(
        matches!(o.error, Some(OpError::ExitStatus { status: 1, .. })),
        "{o:?}"
    );
    assert!(
        o.output
            .starts_with("deployment/web had 2 replicas; scaling to 3 failed\n"),
        "{}",
        o.output
    );
    assert!(o.output.contains("Expected replicas to be 2, was 4"));

    let stub = Stub::new("");
    let o = stub.scale("web", None, ScaleChange::By(1));
    assert_eq!(
        o.error,
        Some(OpError::ReplicaCount {
            deployment: "web".into(),
            output: String::new()
        })
    );
    assert_eq!(stub.calls().len(), 1);
}

#[test]
fn scale_from_a_policy_file() {
    let report = parse_policies(include_str!("../examples/policies/search-degrade.yaml"));
    let action = &report.policies[0].actions[2];
    let stub = Stub::new("3");
    let o = stub.ops().run(&action.operation, &Trigger::default());
    assert!(o.ok, "{o:?}");
    assert!(
        o.output
            .starts_with("scaled deployment/search in namespace shop from 3 to 5 replicas\n"),
        "{}",
        o.output
    );
    let rollback = action.rollback.as_ref().unwrap();
    std::fs::write(stub.path("replicas"), "5").unwrap();
    let o = stub.ops().run(rollback, &Trigger::default());
    assert!(o.ok, "{o:?}");
    assert!(o
        .output
        .starts_with("scaled deployment/search in namespace shop from 5 to 3 replicas\n"));
}

/// kubectl itself, as a user without any configuration would run it.
fn unconfigured_kubectl(home: &Path) -> Vec<String> {
    let kubectl = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("kubectl"))
                .find(|p| p.is_file())
        })
        .expect("kubectl is not installed (Debian: kubernetes-client)");
    let mut argv: Vec<String> = ["env", "-u", "KUBECONFIG"].map(String::from).to_vec();
    // Nor may it believe it runs in a pod.
    for var in ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"] {
        argv.extend(["-u".into(), var.into()]);
    }
    argv.push(format!("HOME={}", home.display()));
    argv.push(kubectl.display().to_string());
    argv
}

#[test]
fn scale_without_a_cluster_says_none_is_configured() {
    // Without configuration kubectl tries localhost:8080; if anything
    // answers there, this machine cannot show kubectl finding nothing.
    if TcpStream::connect_timeout(&"127.0.0.1:8080".parse().unwrap(), Duration::from_secs(1))
        .is_ok()
    {
        eprintln!("skipped: something listens on localhost:8080");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let ops = Ops {
        kubectl: unconfigured_kubectl(home.path()),
        ..Ops::default()
    };
    let op = Operation::Scale(Scale {
        deployment: "web".into(),
        namespace: None,
        change: ScaleChange::To(2),
    });
    let o = ops.run(&op, &Trigger::default());
    assert_eq!(o.error, Some(OpError::NoCluster), "{o:?}");
    assert_eq!(
        OpError::NoCluster.to_string(),
        "no Kubernetes cluster is configured: kubectl found no kubeconfig (set KUBECONFIG or run inside a cluster)"
    );
    assert!(OpError::NoCluster.is_permanent());
    assert!(o.output.contains("localhost:8080"), "{}", o.output);
}

#[test]
fn scale_without_kubectl_says_where_to_get_it() {
    let ops = Ops {
        kubectl: vec!["/nonexistent/kubectl".into()],
        ..Ops::default()
    };
    let op = Operation::Scale(Scale {
        deployment: "web".into(),
        namespace: None,
        change: ScaleChange::By(1),
    });
    let o = ops.run(&op, &Trigger::default());
    let Some(e @ OpError::KubectlMissing { .. }) = &o.error else {
        panic!("{o:?}");
    };
    assert!(e.to_string().contains("kubernetes-client"), "{e}");
    assert!(e.is_permanent());
}
