//! Durations as policies and conditions write them: `500ms`, `10s`, `3m`,
//! `1h30m`, `7d`, `2w`. The grammar is perfpilot's one duration grammar,
//! [`perfpilot_units`] (units ms, s, m, h, d, w; `m` is minutes; no
//! spaces, no fractions); this module only words its errors for a policy
//! and converts to and from [`Duration`].

use std::time::Duration;

use perfpilot_units::{DurationError, UNITS};

/// The duration, or why it is not one (short: callers say what they read
/// and show examples).
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    match perfpilot_units::parse_duration_ms(s) {
        // The grammar has no sign: never negative.
        Ok(ms) => Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        Err(e) => Err(why(s, e)),
    }
}

/// Why `s` was refused, in the words of a policy file where they are
/// clearer than the grammar's.
fn why(s: &str, e: DurationError) -> String {
    let s = s.trim();
    if s.is_empty() {
        return "it is empty".into();
    }
    if s.contains(char::is_whitespace) {
        return "spaces are not allowed; write the number and unit together, like 2h or 1h30m"
            .into();
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let unknown = s
            .split(|c: char| c.is_ascii_digit() || c == '.')
            .find(|u| !u.is_empty() && !UNITS.iter().any(|(name, _)| name == u));
        if let Some(unit) = unknown {
            let lower = unit.to_ascii_lowercase();
            return match UNITS.iter().find(|(name, _)| *name == lower) {
                Some((name, _)) => format!("unknown unit `{unit}`; units are lower case: `{name}`"),
                None => format!("unknown unit `{unit}`"),
            };
        }
        if s.ends_with(|c: char| c.is_ascii_digit()) {
            return "the unit is missing".into();
        }
    }
    e.to_string()
}

/// Whole milliseconds, for arithmetic with millisecond clocks; saturates
/// at `i64::MAX`.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The duration in the grammar [`parse`] reads, largest units first:
/// `3m`, `1h30m`, `500ms`, `0s`. Below a millisecond is dropped.
pub(crate) fn format(d: Duration) -> String {
    perfpilot_units::format_duration_ms(millis(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("10").unwrap_err(), "the unit is missing");
        assert_eq!(parse("1h30").unwrap_err(), "the unit is missing");
        assert_eq!(parse("3x").unwrap_err(), "unknown unit `x`");
        assert_eq!(parse("").unwrap_err(), "it is empty");
        assert!(parse("1.5h").unwrap_err().contains("fractions"));
    }

    #[test]
    fn months_years_and_words_are_not_durations() {
        // `M` is not months, nor minutes: it is refused.
        assert_eq!(
            parse("10M").unwrap_err(),
            "unknown unit `M`; units are lower case: `m`"
        );
        assert_eq!(parse("1y").unwrap_err(), "unknown unit `y`");
        assert_eq!(parse("2hours").unwrap_err(), "unknown unit `hours`");
        assert_eq!(
            parse("2 hours").unwrap_err(),
            "spaces are not allowed; write the number and unit together, like 2h or 1h30m"
        );
        assert!(parse("1h 30m").is_err());
    }

    #[test]
    fn format_reads_back() {
        for (d, s) in [
            (Duration::from_secs(180), "3m"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(61_001), "1m1s1ms"),
            (Duration::from_secs(8 * 86_400), "1w1d"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format(d), s);
            assert_eq!(parse(s), Ok(d));
        }
    }
}
