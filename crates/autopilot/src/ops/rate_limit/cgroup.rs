//! `rate-limit` on a cgroup: perfpilot-ratelimit's BPF token bucket,
//! when perfpilot is built with the `cgroup-ratelimit` feature. Without it
//! the operation still parses and validates, and running it fails with
//! [`OpError::CgroupRateLimitNotBuilt`], for good.

#[cfg(not(feature = "cgroup-ratelimit"))]
use std::time::Duration;
#[cfg(feature = "cgroup-ratelimit")]
use std::time::Instant;

use super::RateLimitChange;
#[cfg(feature = "cgroup-ratelimit")]
use super::{rate_bits_per_second, size_bytes};
use crate::ops::{OpError, Ops, Outcome};

/// Where cgroup limits are pinned when [`Ops::bpf_pin_dir`] is not set:
/// the rate limiter's own default, also without it, so the field means
/// the same whichever way perfpilot was built.
#[cfg(feature = "cgroup-ratelimit")]
pub(crate) const DEFAULT_BPF_PIN_DIR: &str = perfpilot_ratelimit::DEFAULT_PIN_DIR;
#[cfg(not(feature = "cgroup-ratelimit"))]
pub(crate) const DEFAULT_BPF_PIN_DIR: &str = "/sys/fs/bpf/perfpilot/ratelimit";

#[cfg(not(feature = "cgroup-ratelimit"))]
pub(super) fn run(_: &Ops, cgroup: &str, _: &RateLimitChange) -> Outcome {
    let error = OpError::CgroupRateLimitNotBuilt {
        cgroup: cgroup.to_string(),
    };
    Outcome::failed(error, Duration::ZERO)
}

#[cfg(feature = "cgroup-ratelimit")]
pub(super) fn run(ops: &Ops, cgroup: &str, change: &RateLimitChange) -> Outcome {
    use perfpilot_ratelimit as ratelimit;
    let started = Instant::now();
    let failed = |e: ratelimit::RateLimitError| {
        Outcome::failed(
            OpError::CgroupRateLimit {
                cgroup: cgroup.to_string(),
                message: e.to_string(),
            },
            started.elapsed(),
        )
    };
    let dir = match ratelimit::cgroup_dir(cgroup) {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let output = match change {
        RateLimitChange::Limit { rate, burst } => {
            // Both were checked when the policy was parsed.
            let Some(bits) = rate_bits_per_second(rate) else {
                return failed(ratelimit::RateLimitError::Bpf {
                    what: "reading the rate".into(),
                    message: format!("`{rate}` is not a tc rate"),
                });
            };
            // Under a byte a second is 0, which limit_cgroup refuses
            // by name rather than this raising it to 1.
            let bytes = (bits / 8.0) as u64;
            let burst_bytes = match burst {
                Some(b) => match size_bytes(b) {
                    Some(n) => n as u64,
                    None => {
                        return failed(ratelimit::RateLimitError::Bpf {
                            what: "reading the burst".into(),
                            message: format!("`{b}` is not a tc size"),
                        })
                    }
                },
                None => default_cgroup_burst(bytes),
            };
            match ratelimit::limit_cgroup(&dir, bytes, burst_bytes, &ops.bpf_pin_dir) {
                Ok(pin) => format!(
                    "limited cgroup {} to {rate} (burst {burst_bytes} bytes); the BPF program is pinned at {}\n",
                    dir.display(),
                    pin.display()
                ),
                Err(e) => return failed(e),
            }
        }
        RateLimitChange::Clear => match ratelimit::clear_cgroup(&dir, &ops.bpf_pin_dir) {
            Ok(true) => format!("cleared the limit on cgroup {}\n", dir.display()),
            Ok(false) => format!("no limit on cgroup {} to clear\n", dir.display()),
            Err(e) => return failed(e),
        },
    };
    Outcome::succeeded(output, started.elapsed())
}

/// A cgroup limit's bucket when a policy gives none: 50 ms of traffic at
/// the rate, and at least 128 KiB. The BPF bucket sees whole GSO packets
/// (up to 64 KiB on loopback) and drops rather than queues, so it must
/// hold two of them, and enough of the rate that TCP's bursts after a
/// back-off are not cut again at once.
#[cfg(feature = "cgroup-ratelimit")]
fn default_cgroup_burst(rate_bytes_per_s: u64) -> u64 {
    (rate_bytes_per_s / 20).max(128 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{Operation, RateLimit, RateLimitTarget, Trigger};

    #[cfg(feature = "cgroup-ratelimit")]
    #[test]
    fn cgroup_default_bursts() {
        assert_eq!(default_cgroup_burst(1_000_000), 128 * 1024);
        assert_eq!(default_cgroup_burst(100_000_000), 5_000_000);
    }

    #[cfg(not(feature = "cgroup-ratelimit"))]
    #[test]
    fn a_cgroup_limit_without_the_rate_limiter_says_how_perfpilot_was_built() {
        let pins = tempfile::tempdir().unwrap();
        let ops = Ops {
            bpf_pin_dir: pins.path().to_path_buf(),
            ..Ops::default()
        };
        for change in [
            RateLimitChange::Limit {
                rate: "10mbit".into(),
                burst: None,
            },
            RateLimitChange::Clear,
        ] {
            let r = RateLimit {
                on: RateLimitTarget::Cgroup("system.slice/web.service".into()),
                change,
            };
            let o = ops.run(&Operation::RateLimit(r), &Trigger::default());
            assert!(!o.ok);
            let e = o.error.expect("an error");
            assert_eq!(
                e.to_string(),
                "cannot rate-limit cgroup `system.slice/web.service`: this perfpilot was built \
                 without the cgroup rate limiter (feature cgroup-ratelimit)"
            );
            assert!(e.is_permanent());
        }
        assert_eq!(std::fs::read_dir(pins.path()).unwrap().count(), 0);
    }

    #[cfg(feature = "cgroup-ratelimit")]
    #[test]
    fn a_missing_cgroup_is_named_before_anything_loads() {
        let r = RateLimit {
            on: RateLimitTarget::Cgroup("perfpilot-no-such-cgroup/web.service".into()),
            change: RateLimitChange::Limit {
                rate: "10mbit".into(),
                burst: None,
            },
        };
        let pins = tempfile::tempdir().unwrap();
        let ops = Ops {
            bpf_pin_dir: pins.path().to_path_buf(),
            ..Ops::default()
        };
        let o = ops.run(&Operation::RateLimit(r), &Trigger::default());
        assert!(!o.ok);
        let message = o
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            message
                .starts_with("cannot rate-limit cgroup `perfpilot-no-such-cgroup/web.service`: "),
            "{message}"
        );
        // Whichever this host lacks: a cgroup v2 hierarchy, or the cgroup.
        assert!(
            message.contains("no cgroup v2 hierarchy is mounted")
                || message.contains("perfpilot-no-such-cgroup/web.service does not exist"),
            "{message}"
        );
        assert!(o.error.as_ref().is_some_and(OpError::is_permanent));
        assert_eq!(std::fs::read_dir(pins.path()).unwrap().count(), 0);
    }
}
