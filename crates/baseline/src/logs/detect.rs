//! The format and field names of a log, found from its first lines when a
//! config does not give them.
//!
//! JSON lines: each role takes the first of its common names that the
//! lines have (timestamp: `ts`, `timestamp`, `time`, `@timestamp`;
//! latency: `latency_ms`, `duration_ms`, `request_time`, `elapsed`,
//! `latency`, `duration`; status: `status`, `status_code`, `code`;
//! endpoint: `endpoint`, `path`, `route`, `url`, `uri`; service: `service`,
//! `app`, `service_name`). The latency unit follows the name: `_ms`
//! milliseconds, `_us` microseconds, `_s`/`_seconds` and nginx's
//! `request_time` seconds; a bare `elapsed`, `latency` or `duration` is
//! taken as seconds when the median of the values seen is below 1 and
//! some have a fraction (0.023: a request of 23 ms), else milliseconds
//! (request latencies under a millisecond are rare, under a second
//! common). The choice is said in the note,
//! so a wrong guess is seen and fixed with `fields`.
//!
//! Other lines must parse as the combined format with `$request_time`.

use std::path::Path;

use super::{combined, JsonFields, LatencyUnit, LogFormat};
use crate::BaselineError;

/// Lines looked at.
pub const SAMPLE_LINES: usize = 20;
/// Bytes of a line looked at; a longer one is cut (its fields may then be
/// missed, which the note shows).
const SAMPLE_LINE_MAX: usize = 64 * 1024;

const TS: &[&str] = &["ts", "timestamp", "time", "@timestamp"];
const LATENCY: &[&str] = &[
    "latency_ms",
    "duration_ms",
    "request_time",
    "elapsed",
    "latency",
    "duration",
    "response_time",
    "elapsed_ms",
    "latency_us",
    "duration_us",
    "latency_s",
    "duration_seconds",
];
const STATUS: &[&str] = &["status", "status_code", "code"];
const ENDPOINT: &[&str] = &["endpoint", "path", "route", "url", "uri"];
const SERVICE: &[&str] = &["service", "app", "service_name"];

/// What was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub format: LogFormat,
    /// For JSON lines.
    pub fields: Option<JsonFields>,
    /// One line for people: what was found and assumed.
    pub note: String,
}

/// The first non-blank lines of a file, at most [`SAMPLE_LINES`].
pub fn first_lines(path: &Path) -> Result<Vec<Vec<u8>>, BaselineError> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).map_err(|e| BaselineError::io(path, e))?;
    let mut r = std::io::BufReader::new(file);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..SAMPLE_LINES * 10 {
        buf.clear();
        let n = Read::by_ref(&mut r)
            .take(SAMPLE_LINE_MAX as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|e| BaselineError::io(path, e))?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') && n == SAMPLE_LINE_MAX {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = Read::by_ref(&mut r)
                    .take(SAMPLE_LINE_MAX as u64)
                    .read_until(b'\n', &mut rest)
                    .map_err(|e| BaselineError::io(path, e))?;
                if m == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        let line = buf.trim_ascii();
        if !line.is_empty() {
            out.push(line.to_vec());
            if out.len() == SAMPLE_LINES {
                break;
            }
        }
    }
    Ok(out)
}

/// The format and fields of `lines` (the first lines of `file`).
pub fn detect(file: &str, lines: &[Vec<u8>]) -> Result<Detected, BaselineError> {
    let Some(first) = lines.first() else {
        return Ok(Detected {
            format: LogFormat::Json,
            fields: None,
            note: format!("{file}: empty so far: JSON lines with the default fields assumed"),
        });
    };
    if LogFormat::detect(first) == LogFormat::Combined {
        if lines.iter().any(|l| combined::scan(l).is_ok()) {
            return Ok(Detected {
                format: LogFormat::Combined,
                fields: None,
                note: format!(
                    "{file}: combined format (nginx/Apache), latency from the $request_time appended, in seconds"
                ),
            });
        }
        let text = String::from_utf8_lossy(&first[..first.len().min(120)]).into_owned();
        return Err(BaselineError::invalid(
            file,
            format!(
                "neither JSON lines nor the combined format with $request_time appended; the first line is {text:?}"
            ),
        ));
    }
    json_fields(file, lines)
}

fn json_fields(file: &str, lines: &[Vec<u8>]) -> Result<Detected, BaselineError> {
    // Keys (each line's in name order), with the values seen.
    let mut keys: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    let mut objects = 0;
    for line in lines {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(line)
        else {
            continue;
        };
        objects += 1;
        for (k, v) in map {
            match keys.iter_mut().find(|(name, _)| *name == k) {
                Some((_, vs)) => vs.push(v),
                None => keys.push((k, vec![v])),
            }
        }
    }
    let pick = |names: &[&str]| -> Option<&(String, Vec<serde_json::Value>)> {
        names
            .iter()
            .find_map(|n| keys.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)))
    };
    let seen = || {
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).take(30).collect();
        if names.is_empty() {
            format!("no JSON object in its first {} lines", lines.len())
        } else {
            format!("the fields seen are {}", names.join(", "))
        }
    };
    let ts = pick(TS);
    let latency = pick(LATENCY);
    if objects == 0 || ts.is_none() || latency.is_none() {
        let missing = match (ts, latency) {
            (None, None) => "no timestamp field (ts, timestamp, time) and no latency field (latency_ms, duration_ms, request_time, elapsed)".to_string(),
            (None, _) => "no timestamp field (ts, timestamp, time)".to_string(),
            _ => "no latency field (latency_ms, duration_ms, request_time, elapsed)".to_string(),
        };
        return Err(BaselineError::invalid(
            file,
            format!(
                "cannot tell the request fields: {missing}; {}. Name them in the config: fields = {{ ts = \"...\", latency_ms = \"...\" }}",
                seen()
            ),
        ));
    }
    let (Some((ts, _)), Some((lat, values))) = (ts, latency) else {
        unreachable!("both checked above")
    };
    let unit = unit_of(lat, values);
    let mut fields = JsonFields {
        ts: ts.clone(),
        latency: lat.clone(),
        latency_unit: unit,
        ..JsonFields::default()
    };
    let mut said = vec![
        format!("timestamp {ts:?}"),
        format!(
            "latency {lat:?} in {}",
            match unit {
                LatencyUnit::Milliseconds => "milliseconds",
                LatencyUnit::Seconds => "seconds",
                LatencyUnit::Microseconds => "microseconds",
            }
        ),
    ];
    for (role, names, slot) in [
        ("status", STATUS, &mut fields.status),
        ("endpoint", ENDPOINT, &mut fields.endpoint),
        ("service", SERVICE, &mut fields.service),
    ] {
        match pick(names) {
            Some((k, _)) => {
                said.push(format!("{role} {k:?}"));
                *slot = k.clone();
            }
            None => said.push(format!("no {role}")),
        }
    }
    Ok(Detected {
        format: LogFormat::Json,
        fields: Some(fields),
        note: format!("{file}: JSON lines: {}", said.join(", ")),
    })
}

fn unit_of(name: &str, values: &[serde_json::Value]) -> LatencyUnit {
    let n = name.to_ascii_lowercase();
    if n.ends_with("_ms") {
        return LatencyUnit::Milliseconds;
    }
    if n.ends_with("_us") {
        return LatencyUnit::Microseconds;
    }
    if n.ends_with("_s") || n.ends_with("_seconds") || n == "request_time" {
        return LatencyUnit::Seconds;
    }
    let nums: Vec<f64> = values
        .iter()
        .filter_map(|v| match v {
            serde_json::Value::Number(x) => x.as_f64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .collect();
    let mut sorted = nums.clone();
    sorted.sort_by(f64::total_cmp);
    let small = sorted.get(sorted.len() / 2).is_some_and(|m| *m < 1.0);
    let fractional = nums.iter().any(|x| x.fract() != 0.0);
    if small && fractional {
        LatencyUnit::Seconds
    } else {
        LatencyUnit::Milliseconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Vec<u8>> {
        text.lines().map(|l| l.as_bytes().to_vec()).collect()
    }

    #[test]
    fn common_json_names_are_found_with_their_units() {
        let d = detect(
            "a.log",
            &lines(r#"{"time":"2026-01-01T00:00:00Z","request_time":0.012,"status_code":200,"path":"/x","app":"web"}"#),
        )
        .unwrap();
        let f = d.fields.unwrap();
        assert_eq!(f.ts, "time");
        assert_eq!(f.latency, "request_time");
        assert_eq!(f.latency_unit, LatencyUnit::Seconds);
        assert_eq!(f.status, "status_code");
        assert_eq!(f.endpoint, "path");
        assert_eq!(f.service, "app");
        assert!(d.note.contains("in seconds"), "{}", d.note);

        let d = detect(
            "b.log",
            &lines("{\"timestamp\":1,\"elapsed\":12.5,\"code\":200,\"route\":\"/r\"}\n{\"timestamp\":2,\"elapsed\":0.3,\"code\":500,\"route\":\"/r\"}\n{\"timestamp\":3,\"elapsed\":30.1,\"code\":200,\"route\":\"/r\"}"),
        )
        .unwrap();
        let f = d.fields.unwrap();
        assert_eq!(f.latency_unit, LatencyUnit::Milliseconds);
        assert!(d.note.contains("no service"), "{}", d.note);
    }

    #[test]
    fn missing_fields_are_named_with_what_was_seen() {
        let e = detect("c.log", &lines(r#"{"when":1,"took":3,"status":200}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.log"), "{e}");
        assert!(e.contains("no timestamp field"), "{e}");
        assert!(e.contains("the fields seen are status, took, when"), "{e}");
    }

    #[test]
    fn combined_is_recognised_and_garbage_is_not() {
        let d = detect(
            "access.log",
            &lines(r#"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "curl" 0.003"#),
        )
        .unwrap();
        assert_eq!(d.format, LogFormat::Combined);
        assert!(detect("x", &lines("hello world")).is_err());
    }
}
