//! Operations: what an action does, one module per kind.
//!
//! Each kind (`exec`, `webhook`, `restart`, `degrade`, `rate-limit`,
//! `scale`) owns its configuration type, the reading and validation of
//! its fields in a policy, running it, its one-line description and the
//! operation that undoes it, behind the `Kind` trait. A new kind is a new
//! module and one line in the `operations!` list below.
//!
//! Everything that comes from an alert (its name, labels, the target) is
//! untrusted: `exec` passes it only as environment variables, never in
//! argv and never through a shell, and `webhook` substitutes it into JSON
//! string values that serde then escapes.
//!
//! `rate-limit` and `scale` run `tc` and `kubectl` as argv lists too, with
//! only the policy's validated fields as arguments:
//!
//! - `rate-limit` on an interface: `tc qdisc replace dev IF root tbf rate
//!   RATE burst BURST latency 50ms`; with `clear: true`, `tc qdisc del dev
//!   IF root` (no limit there is not an error).
//! - `rate-limit` on a cgroup: a BPF token bucket attached to the cgroup
//!   v2 directory's egress, its link pinned under [`Ops::bpf_pin_dir`] so
//!   the limit outlives the server; `clear: true` unpins it. tc cannot
//!   tell a cgroup's packets apart on a cgroup v2 host (its classifier
//!   reads cgroup v1's net_cls ids). Only with the `cgroup-ratelimit`
//!   feature; without it the operation validates but fails when run
//!   ([`OpError::CgroupRateLimitNotBuilt`]).
//! - `scale`: the Deployment's `.spec.replicas` read with `kubectl get`,
//!   then `kubectl scale --current-replicas=OLD --replicas=NEW`; the
//!   outcome's output says "from OLD to NEW".

mod command;
mod degrade;
mod exec;
mod http;
mod rate_limit;
mod restart;
mod scale;
mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::diag::did_you_mean;
use crate::policy::TargetRef;
use crate::yaml::{describe, is_mapping, lookup, Ctx, Fields, Node};

pub use degrade::Degrade;
pub use exec::{label_env_name, Exec};
pub use rate_limit::{RateLimit, RateLimitChange, RateLimitTarget};
pub use restart::{pids_named, Restart, RestartTarget};
pub use scale::{Scale, ScaleChange};
pub use webhook::{template, Webhook};

/// What triggered an action: its values reach operations only as data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trigger {
    /// The alert's name, when an alert triggered it.
    pub alert: Option<String>,
    /// The target's name.
    pub target: String,
    pub labels: BTreeMap<String, String>,
}

/// The result of running an operation once.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    /// A process's exit code, or an HTTP status.
    pub exit_status: Option<i32>,
    /// Captured output (stdout, then stderr) or a response body, truncated.
    pub output: String,
    pub error: Option<OpError>,
    pub duration: Duration,
}

impl Outcome {
    fn succeeded(output: String, duration: Duration) -> Outcome {
        Outcome {
            ok: true,
            exit_status: None,
            output,
            error: None,
            duration,
        }
    }

    fn failed(error: OpError, duration: Duration) -> Outcome {
        Outcome {
            ok: false,
            exit_status: None,
            output: String::new(),
            error: Some(error),
            duration,
        }
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("an exec needs a program to run")]
    EmptyCommand,
    #[error("cannot start {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("{program} exited with status {status}")]
    ExitStatus { program: String, status: i32 },
    #[error("{program} was killed by signal {signal}")]
    KilledBySignal { program: String, signal: i32 },
    #[error("{program} ran longer than {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url} answered {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("unknown signal `{0}`")]
    UnknownSignal(String),
    #[error("no process named `{0}` is running")]
    NoSuchProcess(String),
    #[error("cannot signal process {pid}: {message}")]
    Signal { pid: u32, message: String },
    #[error("systemctl is not available on this host (is it running systemd?)")]
    SystemctlMissing,
    #[error("cannot run {program} ({message}): rate-limit needs tc, from the iproute2 package")]
    TcMissing { program: String, message: String },
    #[error("{program} was not permitted to change traffic control: rate-limit needs root or CAP_NET_ADMIN")]
    NetAdminRequired { program: String },
    #[error("no network interface named `{0}`")]
    NoSuchInterface(String),
    #[error("cannot rate-limit cgroup `{cgroup}`: {message}")]
    CgroupRateLimit { cgroup: String, message: String },
    #[error(
        "cannot rate-limit cgroup `{cgroup}`: this perfpilot was built without the cgroup \
         rate limiter (feature cgroup-ratelimit)"
    )]
    CgroupRateLimitNotBuilt { cgroup: String },
    #[error(
        "cannot run {program} ({message}): scale needs kubectl (Debian's kubernetes-client \
         package, or the kubectl package from Kubernetes' own repository)"
    )]
    KubectlMissing { program: String, message: String },
    #[error(
        "no Kubernetes cluster is configured: kubectl found no kubeconfig \
         (set KUBECONFIG or run inside a cluster)"
    )]
    NoCluster,
    #[error("kubectl printed `{output}` as deployment/{deployment}'s replicas, not a count")]
    ReplicaCount { deployment: String, output: String },
}

impl OpError {
    /// Whether running the same operation again cannot help: a missing
    /// program, privilege or cluster, or an impossible request.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            OpError::EmptyCommand
                | OpError::UnknownSignal(_)
                | OpError::SystemctlMissing
                | OpError::TcMissing { .. }
                | OpError::NetAdminRequired { .. }
                | OpError::NoSuchInterface(_)
                | OpError::CgroupRateLimit { .. }
                | OpError::CgroupRateLimitNotBuilt { .. }
                | OpError::KubectlMissing { .. }
                | OpError::NoCluster
        )
    }
}

/// How operations run; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct Ops {
    /// Bytes kept of each captured stream or response body.
    pub output_limit: usize,
    /// The first wait between webhook attempts; it doubles each time.
    pub http_backoff: Duration,
    /// The program `restart` runs for systemd units.
    pub systemctl: String,
    /// How long `systemctl restart` may take.
    pub systemctl_timeout: Duration,
    /// The argv `rate-limit` starts tc with, its own arguments appended:
    /// `["tc"]`, or a wrapper such as `["ip", "netns", "exec", "NS", "tc"]`.
    pub tc: Vec<String>,
    /// How long one tc command may take.
    pub tc_timeout: Duration,
    /// The argv `scale` starts kubectl with, its own arguments appended.
    pub kubectl: Vec<String>,
    /// How long one kubectl command may take.
    pub kubectl_timeout: Duration,
    /// Where cgroup limits are pinned, on a BPF filesystem.
    pub bpf_pin_dir: PathBuf,
}

impl Default for Ops {
    fn default() -> Self {
        Ops {
            output_limit: 4096,
            http_backoff: Duration::from_millis(500),
            systemctl: "systemctl".into(),
            systemctl_timeout: Duration::from_secs(90),
            tc: vec!["tc".into()],
            tc_timeout: Duration::from_secs(10),
            kubectl: vec!["kubectl".into()],
            kubectl_timeout: Duration::from_secs(60),
            bpf_pin_dir: PathBuf::from(rate_limit::DEFAULT_BPF_PIN_DIR),
        }
    }
}

impl Ops {
    /// Runs `op` once. Never panics on what the trigger holds; failures
    /// are in the outcome.
    pub fn run(&self, op: &Operation, trigger: &Trigger) -> Outcome {
        op.run(self, trigger)
    }
}

/// One kind of operation: everything about it but the enum arm that
/// names it in [`Operation`].
pub(crate) trait Kind: Sized {
    /// The `type` a policy names it by.
    const TYPE: &'static str;
    /// The fields its mapping may hold, `type` first: anything else is
    /// an unknown field, with a did-you-mean among these.
    const FIELDS: &'static [&'static str];
    /// Whether only a rollback can undo it, so a policy whose guard may
    /// roll back is warned when it has none. An exec, webhook or restart
    /// is left alone: what would undo it is the policy's business.
    const WANTS_ROLLBACK: bool = false;
    /// Whether it retries by itself (a webhook's `retries`), so the
    /// executor runs it once.
    const RETRIES_ITSELF: bool = false;

    /// Reads and checks its fields, reporting every problem to `ctx`;
    /// `target` is the policy's, for kinds that default to it (None when
    /// the target was invalid, whose error is reported already).
    fn parse(ctx: &mut Ctx, f: &Fields, target: Option<&TargetRef>) -> Option<Self>;

    /// Runs it once.
    fn run(&self, ops: &Ops, trigger: &Trigger) -> Outcome;

    /// What it does, in a line, for the audit log and the UI.
    fn describe(&self) -> String {
        Self::TYPE.to_string()
    }

    /// The operation that undoes it when a policy names no `rollback`,
    /// if it can be known from the operation alone.
    fn implied_rollback(&self) -> Option<Operation> {
        None
    }
}

/// Declares [`Operation`] with one arm per kind, and the dispatch from an
/// operation (or a policy's `type`) to its kind.
macro_rules! operations {
    ($($(#[$meta:meta])* $arm:ident($kind:ty),)+) => {
        /// What an action does: one arm per kind of operation.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Operation {
            $($(#[$meta])* $arm($kind),)+
        }

        impl Operation {
            /// Every `type` a policy may give, in the order of the arms.
            pub const TYPES: [&'static str; [$(<$kind as Kind>::TYPE,)+].len()] =
                [$(<$kind as Kind>::TYPE,)+];

            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Operation::$arm(_) => <$kind as Kind>::TYPE,)+
                }
            }

            /// The operation that undoes this one when a policy names no
            /// `rollback`: for a rate-limit, the same rate-limit with
            /// `clear: true`. On an interface it removes the root qdisc,
            /// which brings back the kernel's default rather than whatever
            /// qdisc was there before; on a cgroup it lifts perfpilot's own
            /// limit and nothing else. `None` for everything else: their
            /// previous state is not known from the operation alone (a
            /// flag's old value, a replica count). The executor runs only a
            /// policy's own `rollback`; using this one in its place is the
            /// caller's choice.
            pub fn implied_rollback(&self) -> Option<Operation> {
                match self {
                    $(Operation::$arm(k) => k.implied_rollback(),)+
                }
            }

            /// What the operation does, in a line (`exec /usr/bin/x`,
            /// `rate-limit interface eth0 to 10mbit`, `scale
            /// deployment/web in default by +2`); the kind's name where
            /// there is nothing short to add.
            pub fn describe(&self) -> String {
                match self {
                    $(Operation::$arm(k) => k.describe(),)+
                }
            }

            /// Whether only a rollback can undo it (`Kind::WANTS_ROLLBACK`).
            pub(crate) fn wants_rollback(&self) -> bool {
                match self {
                    $(Operation::$arm(_) => <$kind as Kind>::WANTS_ROLLBACK,)+
                }
            }

            /// Whether it retries by itself, so the executor runs it once.
            pub(crate) fn retries_itself(&self) -> bool {
                match self {
                    $(Operation::$arm(_) => <$kind as Kind>::RETRIES_ITSELF,)+
                }
            }

            fn run(&self, ops: &Ops, trigger: &Trigger) -> Outcome {
                match self {
                    $(Operation::$arm(k) => k.run(ops, trigger),)+
                }
            }

            /// The fields of the kind named `ty`.
            fn fields(ty: &str) -> Option<&'static [&'static str]> {
                $(if ty == <$kind as Kind>::TYPE {
                    return Some(<$kind as Kind>::FIELDS);
                })+
                None
            }

            /// The kind named `ty`, read from `f`.
            fn parse_kind(
                ty: &str,
                ctx: &mut Ctx,
                f: &Fields,
                target: Option<&TargetRef>,
            ) -> Option<Operation> {
                $(if ty == <$kind as Kind>::TYPE {
                    return <$kind as Kind>::parse(ctx, f, target).map(Operation::$arm);
                })+
                None
            }
        }
    };
}

operations! {
    Webhook(Webhook),
    Exec(Exec),
    Restart(Restart),
    Degrade(Degrade),
    RateLimit(RateLimit),
    Scale(Scale),
}

/// Reads an operation (or a rollback) at `path`: its `type` decides which
/// fields are valid, and its kind reads them.
pub(crate) fn parse_operation(
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
    let Some(fields) = Operation::fields(&ty) else {
        ctx.error(
            t,
            format!(
                "{path}.type: unknown operation type `{ty}`{} (known: {})",
                did_you_mean(&ty, Operation::TYPES),
                Operation::TYPES.join(", ")
            ),
        );
        return None;
    };
    let f = Fields::new(ctx, node, path, fields)?;
    Operation::parse_kind(&ty, ctx, &f, target)
}

/// A `timeout` field: `default` when absent, and never zero.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_the_arms_in_order() {
        assert_eq!(
            Operation::TYPES,
            [
                "webhook",
                "exec",
                "restart",
                "degrade",
                "rate-limit",
                "scale"
            ]
        );
        for ty in Operation::TYPES {
            let fields = Operation::fields(ty).unwrap();
            assert_eq!(fields[0], "type", "{ty}");
        }
        assert_eq!(Operation::fields("reboot"), None);
    }

    #[test]
    fn kinds_describe_themselves() {
        let exec = Operation::Exec(Exec {
            command: vec!["/usr/bin/systemctl".into(), "restart".into(), "web".into()],
            env: BTreeMap::new(),
            timeout: Duration::from_secs(60),
        });
        assert_eq!(exec.describe(), "exec /usr/bin/systemctl restart web");
        let limit = Operation::RateLimit(RateLimit {
            on: RateLimitTarget::Interface("eth0".into()),
            change: RateLimitChange::Limit {
                rate: "10mbit".into(),
                burst: None,
            },
        });
        assert_eq!(limit.describe(), "rate-limit interface eth0 to 10mbit");
        let clear = limit.implied_rollback().unwrap();
        assert_eq!(clear.describe(), "rate-limit interface eth0: clear");
        let cgroup = Operation::RateLimit(RateLimit {
            on: RateLimitTarget::Cgroup("web.slice".into()),
            change: RateLimitChange::Clear,
        });
        assert_eq!(cgroup.describe(), "rate-limit cgroup web.slice: clear");
        assert_eq!(cgroup.implied_rollback(), None);
        let scale = |namespace: Option<&str>, change| {
            Operation::Scale(Scale {
                deployment: "web".into(),
                namespace: namespace.map(String::from),
                change,
            })
            .describe()
        };
        assert_eq!(
            scale(None, ScaleChange::To(3)),
            "scale deployment/web in default to 3"
        );
        assert_eq!(
            scale(Some("shop"), ScaleChange::By(-2)),
            "scale deployment/web in shop by -2"
        );
        assert_eq!(
            scale(None, ScaleChange::By(2)),
            "scale deployment/web in default by +2"
        );
        let restart = Operation::Restart(Restart {
            what: RestartTarget::Unit("web.service".into()),
            signal: None,
        });
        assert_eq!(restart.describe(), "restart");
        assert_eq!(restart.implied_rollback(), None);
    }

    #[test]
    fn what_wants_a_rollback_and_what_retries_itself() {
        let wants: Vec<&str> = [
            Operation::Webhook(Webhook {
                url: "http://x".into(),
                method: "POST".into(),
                headers: BTreeMap::new(),
                body: None,
                timeout: Duration::from_secs(1),
                retries: 0,
            }),
            Operation::Degrade(Degrade {
                url: "http://x".into(),
                flag: "f".into(),
                value: serde_json::Value::Bool(true),
                timeout: Duration::from_secs(1),
            }),
            Operation::Scale(Scale {
                deployment: "web".into(),
                namespace: None,
                change: ScaleChange::To(1),
            }),
        ]
        .iter()
        .filter(|op| op.wants_rollback())
        .map(Operation::type_name)
        .collect();
        assert_eq!(wants, ["degrade", "scale"]);
        let hook = Operation::Webhook(Webhook {
            url: "http://x".into(),
            method: "POST".into(),
            headers: BTreeMap::new(),
            body: None,
            timeout: Duration::from_secs(1),
            retries: 0,
        });
        assert!(hook.retries_itself());
        assert!(!Operation::Scale(Scale {
            deployment: "web".into(),
            namespace: None,
            change: ScaleChange::To(1),
        })
        .retries_itself());
    }
}
