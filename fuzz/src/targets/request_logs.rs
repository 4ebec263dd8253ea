//! The request-log scanners of the baseline engine (JSON lines, combined
//! format with `$request_time`) and their timestamp parsers. The first
//! byte picks the format (detected per line, JSON or combined) and the
//! JSON latency unit; the rest is the log. No panic; events have a finite,
//! non-negative latency.

use perfpilot_baseline::logs::{
    parse_clf_time, parse_rfc3339, LatencyUnit, LogFormat, ParseOptions, Parser,
};

pub fn run(data: &[u8]) {
    let Some((&mode, log)) = data.split_first() else {
        return;
    };
    let mut opts = ParseOptions {
        format: match mode % 3 {
            0 => None,
            1 => Some(LogFormat::Json),
            _ => Some(LogFormat::Combined),
        },
        max_endpoints: 4,
        ..ParseOptions::default()
    };
    opts.fields.latency_unit = match (mode / 3) % 3 {
        0 => LatencyUnit::Milliseconds,
        1 => LatencyUnit::Seconds,
        _ => LatencyUnit::Microseconds,
    };
    let mut parser = Parser::new(&opts);
    let mut stats = parser.new_stats();
    for (n, line) in log.split(|&b| b == b'\n').enumerate() {
        if let Some(ev) = parser.parse_counted(n as u64 + 1, line, &mut stats) {
            assert!(
                ev.latency_ms.is_finite() && ev.latency_ms >= 0.0,
                "line {}: latency {} from {:?}",
                n + 1,
                ev.latency_ms,
                String::from_utf8_lossy(line)
            );
        }
    }
    let _ = parse_rfc3339(log);
    let _ = parse_clf_time(log);
}
