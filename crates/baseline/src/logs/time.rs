//! Timestamps of request logs: RFC 3339 and the combined format's
//! `10/Oct/2000:13:55:36 -0700`.
//!
//! Both layouts are fixed-width, so reading them by position is a few
//! nanoseconds where chrono's general parser costs several times that per
//! line (the featurize benchmark prints both); the tests check these
//! against chrono on random instants.

/// Days from 1970-01-01 to the given proleptic Gregorian date (the
/// era-based civil-day count: years regrouped to start in March so the
/// leap day is the last day of a year).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[inline]
fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for &b in s.get(at..at + n)? {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u32;
    }
    Some(v)
}

/// A calendar date and time of day as written in a log.
struct Civil {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    sec: u32,
}

impl Civil {
    /// Milliseconds since the epoch, for a time `offset_min` east of UTC.
    fn to_ms(&self, ms: i64, offset_min: i64) -> Option<i64> {
        let Civil {
            y,
            mo,
            d,
            h,
            mi,
            sec,
        } = *self;
        // 60 is a leap second: kept, landing on the next second's start.
        if !(1..=12).contains(&mo)
            || d == 0
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || sec > 60
        {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + (h * 3600 + mi * 60 + sec) as i64 - offset_min * 60;
        Some(secs * 1000 + ms)
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp
/// (`2026-03-01T12:00:00.123Z`, `...+02:00`; `t`/`z`/space accepted as RFC
/// 3339 allows). Fractions beyond milliseconds are truncated.
pub fn parse_rfc3339(s: &[u8]) -> Option<i64> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let civil = Civil {
        y: digits(s, 0, 4)? as i64,
        mo: digits(s, 5, 2)?,
        d: digits(s, 8, 2)?,
        h: digits(s, 11, 2)?,
        mi: digits(s, 14, 2)?,
        sec: digits(s, 17, 2)?,
    };
    let mut i = 19;
    let mut ms = 0i64;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        let mut scale = 100;
        while i < s.len() && s[i].is_ascii_digit() {
            ms += (s[i] - b'0') as i64 * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset_min = match s.get(i)? {
        b'Z' | b'z' if i + 1 == s.len() => 0,
        &sign @ (b'+' | b'-') if i + 6 == s.len() && s[i + 3] == b':' => {
            let oh = digits(s, i + 1, 2)? as i64;
            let om = digits(s, i + 4, 2)? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    civil.to_ms(ms, offset_min)
}

fn month(s: &[u8]) -> Option<u32> {
    Some(match s {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// Milliseconds since the epoch of a combined-format `$time_local`
/// (`10/Oct/2000:13:55:36 -0700`, without the brackets).
pub fn parse_clf_time(s: &[u8]) -> Option<i64> {
    if s.len() != 26
        || s[2] != b'/'
        || s[6] != b'/'
        || s[11] != b':'
        || s[14] != b':'
        || s[17] != b':'
        || s[20] != b' '
    {
        return None;
    }
    let civil = Civil {
        d: digits(s, 0, 2)?,
        mo: month(&s[3..6])?,
        y: digits(s, 7, 4)? as i64,
        h: digits(s, 12, 2)?,
        mi: digits(s, 15, 2)?,
        sec: digits(s, 18, 2)?,
    };
    let oh = digits(s, 22, 2)? as i64;
    let om = digits(s, 24, 2)? as i64;
    if om > 59 {
        return None;
    }
    let off = oh * 60 + om;
    let off = match s[21] {
        b'+' => off,
        b'-' => -off,
        _ => return None,
    };
    civil.to_ms(0, off)
}

/// Milliseconds since the epoch of a numeric timestamp: seconds, or
/// milliseconds/microseconds/nanoseconds recognised by magnitude (1e11
/// seconds is past the year 5000).
pub fn epoch_to_ms(v: f64) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let a = v.abs();
    let ms = if a < 1e11 {
        v * 1e3
    } else if a < 1e14 {
        v
    } else if a < 1e17 {
        v / 1e3
    } else if a < 1e20 {
        v / 1e6
    } else {
        return None;
    };
    Some(ms.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_examples() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339(b"1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339(b"1969-12-31T23:00:00-01:00"), Some(0));
        assert_eq!(
            parse_rfc3339(b"2024-02-29 12:00:00.123456z"),
            Some(1_709_208_000_123)
        );
        assert_eq!(parse_rfc3339(b"2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339(b"2023-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339(b"2023-01-01T00:00:00.Z"), None);
        assert_eq!(parse_rfc3339(b"2023-01-01T24:00:00Z"), None);
        assert_eq!(parse_rfc3339(b"2023-01-01T00:00:00+0100"), None);
    }

    #[test]
    fn clf_examples() {
        assert_eq!(parse_clf_time(b"01/Jan/1970:00:00:00 +0000"), Some(0));
        assert_eq!(
            parse_clf_time(b"10/Oct/2000:13:55:36 -0700"),
            Some(971_211_336_000)
        );
        assert_eq!(parse_clf_time(b"10/Foo/2000:13:55:36 -0700"), None);
        assert_eq!(parse_clf_time(b"10/Oct/2000:13:55:36 -07"), None);
    }

    #[test]
    fn epoch_magnitudes() {
        assert_eq!(epoch_to_ms(1_700_000_000.25), Some(1_700_000_000_250));
        assert_eq!(epoch_to_ms(1_700_000_000_250.0), Some(1_700_000_000_250));
        assert_eq!(
            epoch_to_ms(1_700_000_000_250_000.0),
            Some(1_700_000_000_250)
        );
        assert_eq!(epoch_to_ms(f64::NAN), None);
    }
}
