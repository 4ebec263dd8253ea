//! Durations as policies and conditions write them: `500ms`, `10s`, `3m`,
//! `1h30m`, `7d`.

use std::time::Duration;

use humantime::DurationError;

/// The duration, or why it is not one (short: callers say what they read).
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| match e {
        DurationError::UnknownUnit { unit, .. } if unit.is_empty() => "the unit is missing".into(),
        DurationError::UnknownUnit { unit, .. } => format!("unknown unit `{unit}`"),
        DurationError::Empty => "it is empty".into(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("10").unwrap_err(), "the unit is missing");
        assert_eq!(parse("3x").unwrap_err(), "unknown unit `x`");
    }
}
