//! Whether saved baselines fit the input they are used on.
//!
//! A monitor takes windows in time order and ignores one that is not after
//! the last it took (a clock that stepped back). Loaded from a saved
//! version (a `state_dir`, a calibration) and fed a log of an earlier
//! period, or the same log again, it would ignore every window and find
//! nothing, silently. So the first window each loaded baseline gets is
//! checked against its history: before it, or far after it (the service
//! has surely changed since), and the feature is relearned from scratch and
//! the reason reported. During a run, time that stays behind a feature's
//! history for [`BEHIND_LIMIT`] windows in a row, by more than
//! [`STEP_BACK_MS`] or by more than a quarter of the history, is a new
//! period, not a glitch, and relearned the same way. A smaller step back (a
//! repeated timestamp, a resynchronised clock, a DST change in local-time
//! logs) only has its windows skipped: weeks of history are not thrown
//! away for an hour of doubt.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::alerts::rfc3339;

/// How long after its history a saved baseline is still trusted.
pub const STALE_AFTER_MS: i64 = 7 * 86_400_000;
/// Windows in a row behind a feature's history before it is relearned.
pub const BEHIND_LIMIT: u32 = 6;
/// A step back in event time up to this long, within a long history, is a
/// glitch: its windows are skipped, the history kept. NAB's machine
/// temperature series steps back 55 minutes after five weeks, and four of
/// its files repeat a timestamp up to 11 times; relearning each from
/// scratch cost 40 false alarms there.
pub const STEP_BACK_MS: i64 = 3_600_000;

/// Why a baseline was relearned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FitReason {
    /// A saved baseline met input from before its history.
    NotAfter { first_ms: i64, last_ms: i64 },
    /// A saved baseline met input long after its history.
    Stale { last_ms: i64 },
    /// Event time stayed behind the history for [`BEHIND_LIMIT`] windows.
    WentBack { last_ms: i64 },
}

impl FitReason {
    fn kind(&self) -> u8 {
        match self {
            FitReason::NotAfter { .. } => 0,
            FitReason::Stale { .. } => 1,
            FitReason::WentBack { .. } => 2,
        }
    }
}

/// One baseline relearned, or one service the saved version lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct FitNote {
    pub service: String,
    /// Empty for a service the saved version has no baseline for.
    pub feature: String,
    /// The window that showed the misfit.
    pub at_ms: i64,
    /// None: a new service.
    pub reason: Option<FitReason>,
}

/// The engine's record of what was loaded and what the input showed.
#[derive(Debug, Default)]
pub struct FitCheck {
    version: u64,
    /// Baselines loaded that no window has reached yet.
    unchecked: HashSet<String>,
    loaded_services: BTreeSet<String>,
    seen_services: HashSet<String>,
    /// Windows in a row behind the history, per baseline.
    behind: HashMap<String, u32>,
    notes: Vec<FitNote>,
    /// Every note so far, for a run's summary.
    pub relearned: u64,
}

impl FitCheck {
    /// A saved version was loaded with these baselines
    /// (`service\u{1f}feature`).
    pub fn loaded<'a>(&mut self, version: u64, keys: impl Iterator<Item = &'a String>) {
        self.version = version;
        self.unchecked.clear();
        self.loaded_services.clear();
        self.seen_services.clear();
        self.behind.clear();
        for k in keys {
            if let Some((service, _)) = k.split_once('\u{1f}') {
                self.loaded_services.insert(service.to_string());
            }
            self.unchecked.insert(k.clone());
        }
    }

    /// Before a baseline (`key`, with the span of its history) takes the
    /// window at `t_ms`: true when it must be relearned first.
    /// `ignores_past`: it drops windows before its history (monitors do,
    /// error-rate baselines do not).
    pub fn check(
        &mut self,
        key: &str,
        service: &str,
        feature: &str,
        t_ms: i64,
        span: Option<(i64, i64)>,
        ignores_past: bool,
    ) -> bool {
        if self.version > 0 && !self.seen_services.contains(service) {
            self.seen_services.insert(service.to_string());
            if !self.loaded_services.is_empty() && !self.loaded_services.contains(service) {
                self.note(service, "", t_ms, None);
            }
        }
        let Some((first_ms, last_ms)) = span else {
            return false;
        };
        if self.unchecked.remove(key) {
            // Input inside the history (a restart re-reading the last
            // windows of its log) is not judged at once: the monitor skips
            // what it has seen, and only time staying behind for
            // BEHIND_LIMIT windows relearns it (below).
            let reason = if t_ms < first_ms {
                Some(FitReason::NotAfter { first_ms, last_ms })
            } else if t_ms - last_ms > STALE_AFTER_MS {
                Some(FitReason::Stale { last_ms })
            } else {
                None
            };
            if let Some(r) = reason {
                self.note(service, feature, t_ms, Some(r));
                return true;
            }
        }
        let back = last_ms - t_ms;
        let new_period = back > STEP_BACK_MS || back > (last_ms - first_ms) / 4;
        if ignores_past && t_ms <= last_ms && new_period {
            let n = self.behind.entry(key.to_string()).or_insert(0);
            *n += 1;
            if *n >= BEHIND_LIMIT {
                self.behind.remove(key);
                self.note(
                    service,
                    feature,
                    t_ms,
                    Some(FitReason::WentBack { last_ms }),
                );
                return true;
            }
        } else if !self.behind.is_empty() {
            self.behind.remove(key);
        }
        false
    }

    fn note(&mut self, service: &str, feature: &str, at_ms: i64, reason: Option<FitReason>) {
        self.relearned += reason.is_some() as u64;
        self.notes.push(FitNote {
            service: service.to_string(),
            feature: feature.to_string(),
            at_ms,
            reason,
        });
    }

    /// The notes since the last call.
    pub fn drain(&mut self) -> Vec<FitNote> {
        std::mem::take(&mut self.notes)
    }

    /// The notes since the last call in words, one line per service and
    /// reason.
    pub fn drain_lines(&mut self) -> Vec<String> {
        describe(&self.drain(), self.version, &self.loaded_services)
    }
}

/// Lines for people: one per service and reason, naming a few features.
pub fn describe(notes: &[FitNote], version: u64, loaded: &BTreeSet<String>) -> Vec<String> {
    let mut groups: BTreeMap<(&str, Option<u8>), Vec<&FitNote>> = BTreeMap::new();
    for n in notes {
        groups
            .entry((&n.service, n.reason.map(|r| r.kind())))
            .or_default()
            .push(n);
    }
    let mut out = Vec::new();
    for ((service, _), group) in groups {
        let first = group[0];
        let Some(reason) = first.reason else {
            let have: Vec<&str> = loaded.iter().map(String::as_str).take(5).collect();
            out.push(format!(
                "baselines: service {service} is not in saved version {version} (which has {}): learned from scratch",
                have.join(", ")
            ));
            continue;
        };
        let mut names: Vec<&str> = group.iter().map(|n| n.feature.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let shown = names.len().min(4);
        let mut list = names[..shown].join(", ");
        if names.len() > shown {
            list.push_str(&format!(" and {} more", names.len() - shown));
        }
        let at = rfc3339(first.at_ms);
        let why = match reason {
            FitReason::NotAfter { first_ms, last_ms } => format!(
                "saved version {version} learned from {} to {}, and the input at {at} is before all of it \
                 (its monitors would ignore every window)",
                rfc3339(first_ms),
                rfc3339(last_ms)
            ),
            FitReason::Stale { last_ms } => format!(
                "saved version {version} last learned at {}, more than {} days before the input at {at}",
                rfc3339(last_ms),
                STALE_AFTER_MS / 86_400_000
            ),
            FitReason::WentBack { last_ms } => format!(
                "event time went back to {at}, well before the history ending {}, for {BEHIND_LIMIT} windows in a row",
                rfc3339(last_ms)
            ),
        };
        out.push(format!(
            "baselines: {service}: {why}: {} feature(s) relearned from scratch ({list})",
            names.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_at_the_last_learned_window_keeps_the_baseline() {
        let key = "shop\u{1f}latency_p50_ms".to_string();
        let span = Some((0, 360_000));
        let mut fit = FitCheck::default();
        fit.loaded(1, [&key].into_iter());
        // The live log begins in the window learned last: skipped once,
        // then after the history.
        assert!(!fit.check(&key, "shop", "latency_p50_ms", 360_000, span, true));
        assert!(!fit.check(&key, "shop", "latency_p50_ms", 370_000, span, true));
        assert_eq!(fit.relearned, 0);
        // A log from before the whole history is relearned at once.
        let mut fit = FitCheck::default();
        fit.loaded(1, [&key].into_iter());
        assert!(fit.check(&key, "shop", "latency_p50_ms", -10_000, span, true));
        // One that re-reads the history relearns once time stays behind.
        let mut fit = FitCheck::default();
        fit.loaded(1, [&key].into_iter());
        let relearned: Vec<bool> = (0..BEHIND_LIMIT as i64)
            .map(|i| fit.check(&key, "shop", "latency_p50_ms", i * 10_000, span, true))
            .collect();
        assert_eq!(relearned.iter().filter(|r| **r).count(), 1, "{relearned:?}");
        assert!(relearned[BEHIND_LIMIT as usize - 1]);
    }

    #[test]
    fn a_small_step_back_in_a_long_history_is_skipped_not_relearned() {
        let key = "nab\u{1f}value".to_string();
        let day = 86_400_000;
        let span = Some((0, 30 * day));
        let mut fit = FitCheck::default();
        // A repeated timestamp, then 55 minutes back: a glitch.
        for _ in 0..2 * BEHIND_LIMIT {
            assert!(!fit.check(&key, "nab", "value", 30 * day, span, true));
        }
        for i in 0..2 * i64::from(BEHIND_LIMIT) {
            let t = 30 * day - 3_300_000 + i * 300_000;
            assert!(!fit.check(&key, "nab", "value", t, span, true));
        }
        // Two hours back is a new period.
        let relearned = (0..i64::from(BEHIND_LIMIT))
            .filter(|i| fit.check(&key, "nab", "value", 30 * day - 7_200_000 + i, span, true))
            .count();
        assert_eq!(relearned, 1);
        assert_eq!(fit.relearned, 1);
    }
}
