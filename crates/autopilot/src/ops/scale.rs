//! `scale`: a Kubernetes Deployment's replicas set, or changed by a
//! delta, through kubectl.

use std::time::Instant;

use super::command::prepend;
use super::{Kind, OpError, Ops, Outcome, Trigger};
use crate::policy::{dns_label, dns_subdomain, TargetKind, TargetRef};
use crate::yaml::{Ctx, Fields};

/// Scales a Kubernetes Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub deployment: String,
    pub namespace: Option<String>,
    pub change: ScaleChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleChange {
    /// To this many replicas.
    To(u32),
    /// By this many replicas, up or down.
    By(i32),
}

impl Kind for Scale {
    const TYPE: &'static str = "scale";
    const FIELDS: &'static [&'static str] =
        &["type", "deployment", "namespace", "replicas", "delta"];
    // The replica count before is not known, so nothing but a rollback the
    // policy gives can bring it back.
    const WANTS_ROLLBACK: bool = true;

    fn parse(ctx: &mut Ctx, f: &Fields, target: Option<&TargetRef>) -> Option<Scale> {
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

    /// A Deployment's replicas set, or changed by a delta, through
    /// kubectl. The count before is read first, so the output can say
    /// "from OLD to NEW", and the scale is made conditional on it
    /// (`--current-replicas`): if anything changed it in between, kubectl
    /// refuses rather than the delta being applied to a stale count.
    fn run(&self, ops: &Ops, _: &Trigger) -> Outcome {
        let started = Instant::now();
        let name = format!("deployment/{}", self.deployment);
        let namespace: Vec<String> = match &self.namespace {
            Some(ns) => vec!["-n".into(), ns.clone()],
            None => Vec::new(),
        };
        let kubectl = |args: &[&str]| -> Vec<String> {
            let args = args.iter().map(|a| a.to_string());
            ops.kubectl
                .iter()
                .cloned()
                .chain(args)
                .chain(namespace.iter().cloned())
                .collect()
        };
        let get = kubectl(&["get", &name, "-o", "jsonpath={.spec.replicas}"]);
        let (mut outcome, stdout) = ops.command_stdout(&get, &[], ops.kubectl_timeout);
        if let Some(e) = outcome.error.take() {
            outcome.error = Some(kubectl_error(e, &outcome.output));
            outcome.duration = started.elapsed();
            return outcome;
        }
        let Ok(before) = stdout.trim().parse::<u32>() else {
            let error = OpError::ReplicaCount {
                deployment: self.deployment.clone(),
                output: stdout.trim().chars().take(200).collect(),
            };
            let mut failed = Outcome::failed(error, started.elapsed());
            failed.output = outcome.output;
            return failed;
        };
        let after = match self.change {
            ScaleChange::To(n) => n,
            ScaleChange::By(d) if d >= 0 => before.saturating_add(d.unsigned_abs()),
            ScaleChange::By(d) => before.saturating_sub(d.unsigned_abs()),
        }
        // Kubernetes keeps replicas as an int32.
        .min(i32::MAX.unsigned_abs());
        let place = match &self.namespace {
            Some(ns) => format!("{name} in namespace {ns}"),
            None => name.clone(),
        };
        if after == before {
            return Outcome {
                ok: true,
                exit_status: Some(0),
                output: format!("{place} has {before} replicas already; nothing to scale\n"),
                error: None,
                duration: started.elapsed(),
            };
        }
        let scale = kubectl(&[
            "scale",
            &name,
            &format!("--current-replicas={before}"),
            &format!("--replicas={after}"),
        ]);
        let mut outcome = ops.command(&scale, &[], ops.kubectl_timeout);
        match outcome.error.take() {
            None => prepend(
                &mut outcome.output,
                &format!("scaled {place} from {before} to {after} replicas"),
            ),
            Some(e) => {
                outcome.error = Some(kubectl_error(e, &outcome.output));
                prepend(
                    &mut outcome.output,
                    &format!("{place} had {before} replicas; scaling to {after} failed"),
                );
            }
        }
        outcome.duration = started.elapsed();
        outcome
    }

    fn describe(&self) -> String {
        let ns = self.namespace.as_deref().unwrap_or("default");
        match self.change {
            ScaleChange::To(n) => format!("scale deployment/{} in {ns} to {n}", self.deployment),
            ScaleChange::By(d) => format!("scale deployment/{} in {ns} by {d:+}", self.deployment),
        }
    }
}

/// kubectl's failures in terms a user can act on.
fn kubectl_error(error: OpError, output: &str) -> OpError {
    match error {
        OpError::Spawn { program, message } => OpError::KubectlMissing { program, message },
        // With no kubeconfig and not in a pod, kubectl falls back to the
        // API server's old insecure port on localhost, which nothing
        // serves any more; client-go's other callers say "no
        // configuration has been provided" instead.
        OpError::ExitStatus { .. }
            if output.contains("no configuration has been provided")
                || (output.contains("localhost:8080") && output.contains("refused")) =>
        {
            OpError::NoCluster
        }
        e => e,
    }
}
