//! Time arguments of queries: absolute and relative times, durations, and
//! the default step of time series. The current time is always passed in,
//! never read from the clock, so results are reproducible.

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;
use perfpilot_model::series::TimeRange;

use crate::error::QueryError;

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Unix numbers below this are seconds, from it on milliseconds. 10^11 s is
/// in the year 5138 and 10^11 ms is March 1973, so both readings cover any
/// time a profile can have; only milliseconds before March 1973 are misread.
const SECONDS_LIMIT: i64 = 100_000_000_000;
/// Unix numbers from here on (10^14 ms is the year 5138) would be micro- or
/// nanoseconds, which are refused rather than guessed.
const MILLIS_LIMIT: i64 = 100_000_000_000_000;

/// Parses a point in time into milliseconds since the Unix epoch.
///
/// Accepted forms (surrounding whitespace is ignored):
/// - `now`, `now-1h`, `now+5m`: relative to `now_ms`, with a duration as
///   [`parse_duration`] reads it (`now-1h30m` works too).
/// - RFC 3339: `2026-11-22T10:00:00Z`, `2026-11-22T12:00:00.250+02:00`;
///   sub-millisecond digits are truncated toward the past.
/// - A Unix timestamp of digits only: seconds when below 10^11, else
///   milliseconds (see the constants above); 10^14 and up is an error.
pub fn parse_time(input: &str, now_ms: i64) -> Result<i64, QueryError> {
    let err = |reason: String| QueryError::InvalidTime {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty".into()));
    }
    if let Some(rest) = s.strip_prefix("now") {
        let rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(now_ms);
        }
        let (sign, duration) = if let Some(d) = rest.strip_prefix('-') {
            (-1, d)
        } else if let Some(d) = rest.strip_prefix('+') {
            (1, d)
        } else {
            return Err(err(
                "expected `now`, `now-<duration>` or `now+<duration>`".into()
            ));
        };
        let ms = perfpilot_units::parse_duration_ms(duration.trim_start())
            .map_err(|e| err(e.to_string()))?;
        return now_ms
            .checked_add(sign * ms)
            .ok_or_else(|| err("out of range".into()));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s
            .parse()
            .map_err(|_| err("Unix timestamp out of range".into()))?;
        return if n < SECONDS_LIMIT {
            Ok(n * SECOND)
        } else if n < MILLIS_LIMIT {
            Ok(n)
        } else {
            Err(err("Unix timestamp too large for seconds or milliseconds \
                 (micro- and nanoseconds are not accepted)"
                .into()))
        };
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        err(format!(
            "not `now[-+]<duration>`, Unix seconds/milliseconds or RFC 3339 \
             (like 2026-11-22T10:00:00Z): {e}"
        ))
    })?;
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).map_err(|_| err("out of range".into()))
}

/// Parses a duration into milliseconds: one or more `<integer><unit>`
/// parts, units `ms`, `s`, `m`, `h`, `d` (24 h) and `w` (7 d), e.g. `10s`,
/// `5m`, `7d`, `1h30m`. A unit is required; `m` is minutes. The grammar is
/// [`perfpilot_units`]'; this only names the input in the error.
pub fn parse_duration(input: &str) -> Result<i64, QueryError> {
    perfpilot_units::parse_duration_ms(input).map_err(|e| QueryError::InvalidDuration {
        input: input.to_string(),
        reason: e.to_string(),
    })
}

/// Parses `start` and `end` with [`parse_time`] into a range, which must
/// not be empty.
pub fn parse_range(start: &str, end: &str, now_ms: i64) -> Result<TimeRange, QueryError> {
    let start_ms = parse_time(start, now_ms)?;
    let end_ms = parse_time(end, now_ms)?;
    if start_ms >= end_ms {
        return Err(QueryError::EmptyRange { start_ms, end_ms });
    }
    Ok(TimeRange { start_ms, end_ms })
}

/// Round steps, smallest first.
const STEPS: [i64; 12] = [
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    MINUTE,
    5 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
];

/// The smallest round step (10s, 15s, 30s, 1m, 5m, 15m, 30m, 1h, 3h, 6h,
/// 12h, 1d) that splits `range_ms` into at most `max_points` steps,
/// counting steps from the range start (`ceil(range / step)`). Beyond a
/// day, a whole number of days. `max_points` below 1 counts as 1; an empty
/// or negative range gets the smallest step.
pub fn default_step(range_ms: i64, max_points: usize) -> i64 {
    let range = range_ms.max(0);
    let max_points = i64::try_from(max_points).unwrap_or(i64::MAX).max(1);
    let points = |step: i64| range.div_euclid(step) + i64::from(range % step != 0);
    STEPS
        .iter()
        .copied()
        .find(|&step| points(step) <= max_points)
        .unwrap_or_else(|| {
            let min_step = range / max_points + i64::from(range % max_points != 0);
            (min_step / DAY + i64::from(min_step % DAY != 0)) * DAY
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000_000;

    fn invalid(input: &str) -> String {
        match parse_time(input, NOW) {
            Err(e @ QueryError::InvalidTime { .. }) => e.to_string(),
            other => panic!("{input:?} gave {other:?}"),
        }
    }

    #[test]
    fn relative_times() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time(" now ", NOW), Ok(NOW));
        assert_eq!(parse_time("now-1h", NOW), Ok(NOW - 3_600_000));
        assert_eq!(parse_time("now-30m", NOW), Ok(NOW - 1_800_000));
        assert_eq!(parse_time("now-7d", NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse_time("now-90s", NOW), Ok(NOW - 90_000));
        assert_eq!(parse_time("now-2w", NOW), Ok(NOW - 14 * 86_400_000));
        assert_eq!(parse_time("now+5m", NOW), Ok(NOW + 300_000));
        assert_eq!(parse_time("now - 1h30m", NOW), Ok(NOW - 5_400_000));
    }

    #[test]
    fn rfc3339_times() {
        // 2026-01-01T00:00:00Z: 56 years after 1970 with 14 leap days
        // (1972..=2024) is 56·365 + 14 = 20454 days = 1767225600 s.
        let jan1 = 20_454 * 86_400_000i64;
        // Jan..Oct of a non-leap year: 31+28+31+30+31+30+31+31+30+31 = 304
        // days, plus 21 to reach the 22nd.
        let nov22 = jan1 + (304 + 21) * 86_400_000;
        assert_eq!(
            parse_time("2026-11-22T10:00:00Z", NOW),
            Ok(nov22 + 36_000_000)
        );
        assert_eq!(
            parse_time("2026-11-22T12:00:00+02:00", NOW),
            Ok(nov22 + 36_000_000)
        );
        assert_eq!(
            parse_time("2026-11-22T04:30:00.250-05:30", NOW),
            Ok(nov22 + 36_000_250)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z", NOW), Ok(0));
        // Before the epoch, sub-millisecond parts round toward the past.
        assert_eq!(parse_time("1969-12-31T23:59:59.9995Z", NOW), Ok(-1));
    }

    #[test]
    fn unix_numbers_by_magnitude() {
        assert_eq!(parse_time("1700000000", NOW), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000000", NOW), Ok(1_700_000_000_000));
        assert_eq!(parse_time("99999999999", NOW), Ok(99_999_999_999_000));
        assert_eq!(parse_time("100000000000", NOW), Ok(100_000_000_000));
        assert!(invalid("1700000000000000").contains("too large"));
        assert!(invalid("99999999999999999999999").contains("out of range"));
    }

    #[test]
    fn errors_name_the_input() {
        for bad in [
            "",
            "yesterday",
            "now-",
            "now-1",
            "now*2h",
            "now€",
            "now-1y",
            "2026-13-01T00:00:00Z",
        ] {
            let msg = invalid(bad);
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        }
        assert!(invalid("now-1.5h").contains("fractions"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(10_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert_eq!(parse_duration("1w"), Ok(604_800_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        for bad in ["", "10", "s", "10x", "1.5h", "99999999999999999w", "5m-"] {
            match parse_duration(bad) {
                Err(e @ QueryError::InvalidDuration { .. }) => {
                    assert!(e.to_string().contains(&format!("{bad:?}")), "{e}")
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("now-1h", "now", NOW),
            Ok(TimeRange {
                start_ms: NOW - 3_600_000,
                end_ms: NOW
            })
        );
        assert_eq!(
            parse_range("now", "now-1h", NOW),
            Err(QueryError::EmptyRange {
                start_ms: NOW,
                end_ms: NOW - 3_600_000
            })
        );
    }

    #[test]
    fn default_steps() {
        // 1 h in 10 s steps is exactly 360 points.
        assert_eq!(default_step(3_600_000, 360), 10_000);
        // 359 points do not fit 10 s; 15 s gives 240.
        assert_eq!(default_step(3_600_000, 359), 15_000);
        // 24 h with 100 points: 15 m gives 96, 5 m would give 288.
        assert_eq!(default_step(86_400_000, 100), 900_000);
        // 7 d with 60 points: 3 h gives 56, 1 h would give 168.
        assert_eq!(default_step(7 * 86_400_000, 60), 3 * 3_600_000);
        // 365 d with 100 points: 1 d gives 365 > 100, so 4 d (92 points).
        assert_eq!(default_step(365 * 86_400_000, 100), 4 * 86_400_000);
        // A partial step counts: 1 h + 1 ms needs 361 steps of 10 s.
        assert_eq!(default_step(3_600_001, 360), 15_000);
        assert_eq!(default_step(0, 10), 10_000);
        assert_eq!(default_step(-5, 0), 10_000);
        assert_eq!(default_step(86_400_000, 0), 86_400_000);
        for range in [1, 59_999, 3_600_000, 86_400_000 * 30 + 7] {
            for max in [1usize, 7, 100, 1000] {
                let step = default_step(range, max);
                let points = (range + step - 1) / step;
                assert!(points <= max as i64, "range {range} max {max} step {step}");
            }
        }
    }
}
