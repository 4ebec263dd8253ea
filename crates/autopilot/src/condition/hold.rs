//! `for DURATION`: a condition counts only once it has held continuously
//! that long.

use std::time::Duration;

use crate::duration::millis;

/// Where a condition stands after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForState {
    /// It does not hold (or its data is missing).
    NotHolding,
    /// It holds since `since_ms`, not yet long enough.
    Pending { since_ms: i64, remaining: Duration },
    /// It has held continuously since `since_ms` for at least the duration.
    Held { since_ms: i64 },
}

impl ForState {
    pub fn is_held(self) -> bool {
        matches!(self, ForState::Held { .. })
    }
}

/// Follows one condition's evaluations over time (milliseconds on any
/// monotonic clock). Holding restarts from zero whenever an evaluation
/// does not hold, is unknown (missing data), comes after a gap longer than
/// the maximum gap (the condition was not watched in between), or comes
/// from a clock that went backwards.
#[derive(Debug, Clone)]
pub struct ForTracker {
    hold_for: Duration,
    max_gap: Option<Duration>,
    since_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl ForTracker {
    pub fn new(hold_for: Duration) -> Self {
        ForTracker {
            hold_for,
            max_gap: None,
            since_ms: None,
            last_ms: None,
        }
    }

    /// Evaluations further apart than `gap` do not make a continuous run.
    pub fn with_max_gap(mut self, gap: Duration) -> Self {
        self.max_gap = Some(gap);
        self
    }

    pub fn hold_for(&self) -> Duration {
        self.hold_for
    }

    /// Records the evaluation at `now_ms` (`None`: unknown) and says where
    /// the condition stands.
    pub fn observe(&mut self, now_ms: i64, holds: Option<bool>) -> ForState {
        let continuous = match self.last_ms {
            None => true,
            Some(last) if now_ms < last => false,
            Some(last) => self
                .max_gap
                .is_none_or(|gap| millis(gap) >= now_ms.saturating_sub(last)),
        };
        self.last_ms = Some(now_ms);
        if holds != Some(true) {
            self.since_ms = None;
            return ForState::NotHolding;
        }
        let since = match self.since_ms {
            Some(s) if continuous => s,
            _ => now_ms,
        };
        self.since_ms = Some(since);
        let held = now_ms.saturating_sub(since);
        let need = millis(self.hold_for);
        if held >= need {
            ForState::Held { since_ms: since }
        } else {
            ForState::Pending {
                since_ms: since,
                remaining: Duration::from_millis(u64::try_from(need - held).unwrap_or(0)),
            }
        }
    }

    /// Forgets the current run (after the action ran, say).
    pub fn reset(&mut self) {
        self.since_ms = None;
        self.last_ms = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn holds_after_the_duration_and_resets_when_it_stops() {
        let mut t = ForTracker::new(Duration::from_secs(180));
        assert_eq!(t.observe(0, Some(false)), ForState::NotHolding);
        assert_eq!(
            t.observe(MIN, Some(true)),
            ForState::Pending {
                since_ms: MIN,
                remaining: Duration::from_secs(180)
            }
        );
        assert!(!t.observe(3 * MIN, Some(true)).is_held());
        assert_eq!(
            t.observe(4 * MIN, Some(true)),
            ForState::Held { since_ms: MIN }
        );
        assert!(t.observe(5 * MIN, Some(true)).is_held());
        // One evaluation that does not hold starts it over.
        assert_eq!(t.observe(6 * MIN, Some(false)), ForState::NotHolding);
        assert!(!t.observe(7 * MIN, Some(true)).is_held());
        assert!(!t.observe(9 * MIN, Some(true)).is_held());
        assert!(t.observe(10 * MIN, Some(true)).is_held());
    }

    #[test]
    fn missing_data_is_not_holding() {
        let mut t = ForTracker::new(Duration::from_secs(60));
        t.observe(0, Some(true));
        assert_eq!(t.observe(30_000, None), ForState::NotHolding);
        assert!(!t.observe(60_000, Some(true)).is_held());
        assert!(t.observe(120_000, Some(true)).is_held());
    }

    #[test]
    fn zero_duration_holds_at_once() {
        let mut t = ForTracker::new(Duration::ZERO);
        assert_eq!(t.observe(5, Some(true)), ForState::Held { since_ms: 5 });
    }

    #[test]
    fn gaps_and_clock_jumps_break_the_run() {
        let mut t = ForTracker::new(Duration::from_secs(60)).with_max_gap(Duration::from_secs(20));
        t.observe(0, Some(true));
        t.observe(15_000, Some(true));
        // 45 s without an evaluation: the run starts again.
        assert!(!t.observe(60_000, Some(true)).is_held());
        for ms in (70_000..120_000).step_by(10_000) {
            assert!(!t.observe(ms, Some(true)).is_held());
        }
        assert_eq!(
            t.observe(120_000, Some(true)),
            ForState::Held { since_ms: 60_000 }
        );
        let mut t = ForTracker::new(Duration::from_secs(60));
        t.observe(100_000, Some(true));
        assert_eq!(
            t.observe(50_000, Some(true)),
            ForState::Pending {
                since_ms: 50_000,
                remaining: Duration::from_secs(60)
            }
        );
        t.reset();
        assert!(!t.observe(200_000, Some(true)).is_held());
    }
}
