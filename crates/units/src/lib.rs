//! perfpilot's one grammar for durations, shared by query arguments, the
//! watch config, the server's flags and autopilot policies.
//!
//! A duration is one or more `<number><unit>` parts with nothing between
//! them: `500ms`, `10s`, `5m`, `1h30m`, `7d`, `2w`. Units are `ms`, `s`,
//! `m` (minutes), `h`, `d` (24 h) and `w` (7 d), lower case only. There is
//! no sign. Surrounding whitespace is ignored. Whole numbers only, unless
//! the caller asks for [`Fractions::Allowed`] (the watch config has always
//! taken `1.5h`); each part is then rounded to the millisecond.
//!
//! Errors say what is wrong, not which input was wrong: callers quote the
//! input in their own words and error types.

use thiserror::Error;

/// The units, largest first, with their length in milliseconds.
pub const UNITS: [(&str, i64); 6] = [
    ("w", 7 * DAY_MS),
    ("d", DAY_MS),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

const DAY_MS: i64 = 86_400_000;

/// Fraction digits read beyond this many are ignored: a week is below
/// 10^9 ms, so they cannot change the millisecond a part rounds to except
/// to break an exact tie.
const MAX_FRACTION_DIGITS: usize = 18;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("empty")]
    Empty,
    /// A part does not start with a digit (`rest` is the text from there).
    #[error("expected a number at {rest:?}")]
    ExpectedNumber { rest: String },
    /// A number is followed by no unit.
    #[error("missing unit after {number:?} (ms, s, m, h, d, w)")]
    MissingUnit { number: String },
    #[error("unknown unit {unit:?} (ms, s, m, h, d, w)")]
    UnknownUnit { unit: String },
    /// A decimal point where the caller takes whole numbers only.
    #[error("fractions are not supported; use a smaller unit")]
    Fraction,
    /// More milliseconds than an `i64` holds.
    #[error("too large")]
    TooLarge,
}

/// Whether parts may have a decimal fraction (`1.5h`, `.5s`, `2.s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fractions {
    #[default]
    Refused,
    Allowed,
}

/// Parses a duration of whole-number parts into milliseconds (never
/// negative; zero is a duration).
pub fn parse_duration_ms(input: &str) -> Result<i64, DurationError> {
    parse_duration_ms_with(input, Fractions::Refused)
}

/// [`parse_duration_ms`], with decimal fractions when `fractions` allows.
pub fn parse_duration_ms_with(input: &str, fractions: Fractions) -> Result<i64, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, tail) = rest.split_at(whole_len);
        let (fraction, tail) = match tail.strip_prefix('.') {
            Some(after) if fractions == Fractions::Allowed => {
                let len = after.bytes().take_while(u8::is_ascii_digit).count();
                let (fraction, tail) = after.split_at(len);
                (Some(fraction), tail)
            }
            _ => (None, tail),
        };
        if whole.is_empty() && fraction.is_none_or(str::is_empty) {
            return Err(DurationError::ExpectedNumber {
                rest: rest.to_string(),
            });
        }
        let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(letters);
        let scale = match UNITS.iter().find(|(name, _)| *name == unit) {
            Some(&(_, ms)) => ms,
            None if unit.is_empty() && tail.starts_with('.') && fractions == Fractions::Refused => {
                return Err(DurationError::Fraction)
            }
            None if unit.is_empty() => {
                let number = &rest[..rest.len() - tail.len()];
                return Err(DurationError::MissingUnit {
                    number: number.to_string(),
                });
            }
            None => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_string(),
                })
            }
        };
        let part = part_ms(whole, fraction.unwrap_or(""), scale).ok_or(DurationError::TooLarge)?;
        total = total.checked_add(part).ok_or(DurationError::TooLarge)?;
        rest = tail;
    }
    Ok(total)
}

/// `whole.fraction` units of `scale` ms, rounded half up to the
/// millisecond, in exact integer arithmetic.
fn part_ms(whole: &str, fraction: &str, scale: i64) -> Option<i64> {
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let scale = i128::from(scale);
    let mut ms = whole.checked_mul(scale)?;
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    if !fraction.is_empty() {
        let digits: i128 = fraction.parse().ok()?;
        let denominator = 10i128.pow(fraction.len() as u32);
        let scaled = digits * scale;
        ms = ms.checked_add((2 * scaled + denominator) / (2 * denominator))?;
    }
    i64::try_from(ms).ok()
}

/// Milliseconds in the grammar [`parse_duration_ms`] reads, largest units
/// first: `3m`, `1h30m`, `500ms`, `0s`. Negative values print as `0s`.
pub fn format_duration_ms(ms: i64) -> String {
    let mut rest = ms.max(0);
    if rest == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (name, unit) in UNITS {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_parts() {
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        assert_eq!(parse_duration_ms("1w"), Ok(604_800_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms(" 1h30m "), Ok(5_400_000));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
    }

    #[test]
    fn refusals_say_why() {
        use DurationError::*;
        let cases = [
            ("", Empty),
            ("  ", Empty),
            ("s", ExpectedNumber { rest: "s".into() }),
            ("5m-", ExpectedNumber { rest: "-".into() }),
            (
                "1h 30m",
                ExpectedNumber {
                    rest: " 30m".into(),
                },
            ),
            (
                "10",
                MissingUnit {
                    number: "10".into(),
                },
            ),
            ("10x", UnknownUnit { unit: "x".into() }),
            ("10M", UnknownUnit { unit: "M".into() }),
            ("1.5h", Fraction),
            ("99999999999999999w", TooLarge),
            ("9223372036854775807ms1ms", TooLarge),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration_ms(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn fractions_when_allowed() {
        let parse = |s| parse_duration_ms_with(s, Fractions::Allowed);
        assert_eq!(parse("1.5h"), Ok(5_400_000));
        assert_eq!(parse(".5s"), Ok(500));
        assert_eq!(parse("2.s"), Ok(2000));
        assert_eq!(parse("0.25m"), Ok(15_000));
        // Rounded half up to the millisecond, per part.
        assert_eq!(parse("0.5ms"), Ok(1));
        assert_eq!(parse("0.4ms"), Ok(0));
        assert_eq!(parse("1.0005s"), Ok(1001));
        assert_eq!(parse("1h0.5m"), Ok(3_630_000));
        assert_eq!(parse("10s"), Ok(10_000));
        assert_eq!(
            parse("."),
            Err(DurationError::ExpectedNumber { rest: ".".into() })
        );
        assert_eq!(
            parse("1.5"),
            Err(DurationError::MissingUnit {
                number: "1.5".into()
            })
        );
        assert_eq!(
            parse("1.2.3s"),
            Err(DurationError::MissingUnit {
                number: "1.2".into()
            })
        );
        // Digits past what can matter are ignored, not an overflow.
        assert_eq!(parse("1.0000000000000000000000000001s"), Ok(1000));
    }

    #[test]
    fn format_reads_back() {
        for (ms, s) in [
            (180_000, "3m"),
            (5_400_000, "1h30m"),
            (500, "500ms"),
            (61_001, "1m1s1ms"),
            (8 * DAY_MS, "1w1d"),
            (0, "0s"),
        ] {
            assert_eq!(format_duration_ms(ms), s);
            assert_eq!(parse_duration_ms(s), Ok(ms));
        }
        assert_eq!(format_duration_ms(-5), "0s");
    }
}
