//! `rate-limit`: a token bucket on an interface's egress through tc, or
//! on a cgroup's through BPF (`cgroup`), or its removal (`clear: true`),
//! which is also what undoes a limit when a policy names no rollback.

use std::time::Instant;

use super::command::prepend;
use super::{Kind, OpError, Operation, Ops, Outcome, Trigger};
use crate::policy::TargetRef;
use crate::yaml::{Ctx, Fields};

mod cgroup;

pub(super) use cgroup::DEFAULT_BPF_PIN_DIR;

/// Traffic shaping with tc: a limit installed, or removed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub on: RateLimitTarget,
    pub change: RateLimitChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitChange {
    /// A token-bucket limit (`rate`, optional `burst`).
    Limit {
        /// In tc's syntax: `10mbit`, `500kbit`, `1gbit`, `100kbps` (bytes).
        rate: String,
        /// In tc's syntax: `32kb`; by default derived from the rate.
        burst: Option<String>,
    },
    /// `clear: true`: the root qdisc removed, so the kernel's default
    /// comes back.
    Clear,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitTarget {
    Interface(String),
    /// A cgroup path, as under /sys/fs/cgroup.
    Cgroup(String),
}

impl Kind for RateLimit {
    const TYPE: &'static str = "rate-limit";
    const FIELDS: &'static [&'static str] =
        &["type", "interface", "cgroup", "rate", "burst", "clear"];
    const WANTS_ROLLBACK: bool = true;

    fn parse(ctx: &mut Ctx, f: &Fields, _: Option<&TargetRef>) -> Option<RateLimit> {
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
            if !rate_bits_per_second(r).is_some_and(|bits| bits > 0.0) {
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
            if !size_bytes(b).is_some_and(|bytes| bytes > 0.0) {
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

    /// A token-bucket limit on an interface's egress through tc, or on a
    /// cgroup's through BPF, or its removal (`clear: true`).
    fn run(&self, ops: &Ops, _: &Trigger) -> Outcome {
        let started = Instant::now();
        let dev = match &self.on {
            RateLimitTarget::Interface(dev) => dev.as_str(),
            RateLimitTarget::Cgroup(cgroup) => return cgroup::run(ops, cgroup, &self.change),
        };
        let (args, done): (Vec<String>, String) = match &self.change {
            RateLimitChange::Limit { rate, burst } => {
                let burst = burst.clone().unwrap_or_else(|| default_burst(rate));
                let args = [
                    "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", &burst,
                    // How long a packet may wait for tokens before it is
                    // dropped: short, so the limit sheds load instead of
                    // adding queueing delay.
                    "latency", "50ms",
                ];
                let done = format!("limited {dev} to {rate} (burst {burst})");
                (args.map(String::from).to_vec(), done)
            }
            RateLimitChange::Clear => {
                let args = ["qdisc", "del", "dev", dev, "root"];
                (
                    args.map(String::from).to_vec(),
                    format!("cleared the limit on {dev}"),
                )
            }
        };
        let argv: Vec<String> = ops.tc.iter().cloned().chain(args).collect();
        let mut outcome = ops.command(&argv, &[], ops.tc_timeout);
        let program = ops.tc.first().cloned().unwrap_or_default();
        match outcome.error.take() {
            None => prepend(&mut outcome.output, &done),
            Some(OpError::Spawn { message, .. }) => {
                outcome.error = Some(OpError::TcMissing { program, message });
            }
            Some(e @ OpError::ExitStatus { .. }) => {
                let out = &outcome.output;
                if out.contains("Operation not permitted") {
                    outcome.error = Some(OpError::NetAdminRequired { program });
                } else if out.contains("Cannot find device") {
                    outcome.error = Some(OpError::NoSuchInterface(dev.to_string()));
                } else if self.change == RateLimitChange::Clear
                    // Deleting the kernel's default root qdisc (handle 0):
                    // "Cannot delete qdisc with handle of zero" since Linux
                    // 5.x, ENOENT before. Either way no limit is there.
                    && (out.contains("handle of zero") || out.contains("No such file or directory"))
                {
                    prepend(&mut outcome.output, &format!("no limit on {dev} to clear"));
                } else {
                    outcome.error = Some(e);
                }
            }
            Some(e) => outcome.error = Some(e),
        }
        outcome.ok = outcome.error.is_none();
        outcome.duration = started.elapsed();
        outcome
    }

    fn describe(&self) -> String {
        let on = match &self.on {
            RateLimitTarget::Interface(i) => format!("interface {i}"),
            RateLimitTarget::Cgroup(c) => format!("cgroup {c}"),
        };
        match &self.change {
            RateLimitChange::Limit { rate, .. } => format!("rate-limit {on} to {rate}"),
            RateLimitChange::Clear => format!("rate-limit {on}: clear"),
        }
    }

    /// The same rate-limit with `clear: true`.
    fn implied_rollback(&self) -> Option<Operation> {
        match self.change {
            RateLimitChange::Limit { .. } => Some(Operation::RateLimit(RateLimit {
                on: self.on.clone(),
                change: RateLimitChange::Clear,
            })),
            RateLimitChange::Clear => None,
        }
    }
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

/// `10mbit` → (10, `mbit`): the number and the unit in lower case.
fn number_and_unit(s: &str) -> Option<(f64, String)> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    Some((num.parse().ok()?, unit.to_ascii_lowercase()))
}

/// tc's rate in bits per second (tc's units: `bit`, `kbit`... are bits,
/// `bps`, `kbps`... bytes; k, m, g and t are powers of 1000). Policies
/// are checked with it, so a rate that loads is one the operation reads.
pub(crate) fn rate_bits_per_second(rate: &str) -> Option<f64> {
    let (n, unit) = number_and_unit(rate)?;
    let (prefix, per_unit) = match unit.strip_suffix("bit") {
        Some(p) => (p, 1.0),
        None => (unit.strip_suffix("bps")?, 8.0),
    };
    let scale = match prefix {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => return None,
    };
    Some(n * scale * per_unit)
}

/// The bucket's size when a policy gives none: 10 ms of traffic at the
/// rate, and at least 32kb. tbf can send no more than a bucketful at once,
/// so the bucket must hold what the rate allows between two timer ticks
/// (10 ms at HZ=100, the coarsest kernel timer) or the rate is never
/// reached; and it must hold a whole packet (with room for jumbo frames),
/// or packets larger than it can never be sent. An unreadable rate gets
/// the minimum, and tc reports the rate itself.
fn default_burst(rate: &str) -> String {
    let bytes_in_10ms = rate_bits_per_second(rate).map_or(0.0, |bits| bits / 8.0 / 100.0);
    let kb = (bytes_in_10ms / 1024.0).ceil().max(32.0);
    format!("{kb}kb")
}

/// A tc size in bytes: a bare number, `b`, `k`/`kb`, `m`/`mb`, `g`/`gb`
/// are bytes in powers of 1024; `kbit`, `mbit`, `gbit` are bits. Policies
/// are checked with it, like rates.
pub(crate) fn size_bytes(size: &str) -> Option<f64> {
    let (n, unit) = number_and_unit(size)?;
    let per = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "kbit" => 1024.0 / 8.0,
        "mbit" => 1024.0 * 1024.0 / 8.0,
        "gbit" => 1024.0 * 1024.0 * 1024.0 / 8.0,
        _ => return None,
    };
    Some(n * per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc_rates_and_default_bursts() {
        assert_eq!(rate_bits_per_second("10mbit"), Some(10e6));
        assert_eq!(rate_bits_per_second("500Kbit"), Some(500e3));
        assert_eq!(rate_bits_per_second("100kbps"), Some(800e3));
        assert_eq!(rate_bits_per_second("1.5gbit"), Some(1.5e9));
        assert_eq!(rate_bits_per_second("fast"), None);
        assert_eq!(rate_bits_per_second("10xbit"), None);
        // Slow rates get the minimum; fast ones 10 ms of traffic.
        assert_eq!(default_burst("10mbit"), "32kb");
        assert_eq!(default_burst("100mbit"), "123kb");
        assert_eq!(default_burst("1gbit"), "1221kb");
        assert_eq!(default_burst("nonsense"), "32kb");
    }

    #[test]
    fn tc_sizes_in_bytes() {
        assert_eq!(size_bytes("64kb"), Some(65536.0));
        assert_eq!(size_bytes("64k"), Some(65536.0));
        assert_eq!(size_bytes("2mb"), Some(2097152.0));
        assert_eq!(size_bytes("1500"), Some(1500.0));
        assert_eq!(size_bytes("1500b"), Some(1500.0));
        assert_eq!(size_bytes("8kbit"), Some(1024.0));
        assert_eq!(size_bytes("lots"), None);
        assert_eq!(size_bytes("3furlongs"), None);
    }

    #[test]
    fn missing_tc_is_reported() {
        let ops = Ops {
            tc: vec!["/nonexistent/tc".into()],
            ..Ops::default()
        };
        let r = RateLimit {
            on: RateLimitTarget::Interface("eth0".into()),
            change: RateLimitChange::Clear,
        };
        let o = r.run(&ops, &Trigger::default());
        assert!(!o.ok);
        let Some(e @ OpError::TcMissing { program, .. }) = &o.error else {
            panic!("{o:?}");
        };
        assert_eq!(program, "/nonexistent/tc");
        assert!(e.to_string().contains("iproute2"), "{e}");
    }
}
