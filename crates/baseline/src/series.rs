//! `--series [SERVICE/]NAME:KIND=FILE`: a metric series from a CSV of
//! `timestamp,value` lines, judged as a feature of a service.
//!
//! The header is optional (a first line whose timestamp does not parse);
//! timestamps are RFC 3339 or Unix seconds or milliseconds (told apart by
//! magnitude); blank lines and lines starting with `#` are skipped; fields
//! may be quoted. Lines and fields are bounded, so a stray binary file
//! fails fast with its place (`file:line`) instead of growing memory.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::detectors::FeatureKind;
use crate::logs::{epoch_to_ms, parse_rfc3339};
use crate::BaselineError;

/// Bytes of a line, newline included.
pub const MAX_LINE: usize = 4096;
/// Bytes of one field.
pub const MAX_FIELD: usize = 64;
/// Points of one series.
pub const MAX_POINTS: usize = 10_000_000;

/// What a series measures, which decides the side that pages and its
/// detectors (memory also gets the leak detector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Latency,
    Rate,
    Errors,
    Memory,
    Cpu,
    Gauge,
}

impl SeriesKind {
    pub const NAMES: &'static str = "latency, rate, errors, memory, cpu, gauge";

    pub fn parse(s: &str) -> Option<SeriesKind> {
        Some(match s {
            "latency" => SeriesKind::Latency,
            "rate" => SeriesKind::Rate,
            "errors" => SeriesKind::Errors,
            "memory" => SeriesKind::Memory,
            "cpu" => SeriesKind::Cpu,
            "gauge" => SeriesKind::Gauge,
            _ => return None,
        })
    }

    /// The engine's kind for it.
    pub fn feature_kind(self) -> FeatureKind {
        match self {
            SeriesKind::Latency => FeatureKind::Latency,
            SeriesKind::Rate => FeatureKind::Rate,
            SeriesKind::Errors => FeatureKind::Errors,
            SeriesKind::Memory => FeatureKind::Memory,
            SeriesKind::Cpu => FeatureKind::Cpu,
            SeriesKind::Gauge => FeatureKind::Gauge,
        }
    }
}

/// One `--series` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    /// None: the logs' only service.
    pub service: Option<String>,
    pub name: String,
    pub kind: SeriesKind,
    pub path: PathBuf,
}

impl SeriesSpec {
    /// `[SERVICE/]NAME:KIND=FILE`, e.g. `checkout/heap:memory=heap.csv`.
    pub fn parse(arg: &str) -> Result<SeriesSpec, BaselineError> {
        let bad = |why: &str| {
            BaselineError::invalid(
                format!("--series {arg:?}"),
                format!("{why} (expected [SERVICE/]NAME:KIND=FILE, e.g. heap:memory=heap.csv)"),
            )
        };
        let (lhs, file) = arg.split_once('=').ok_or_else(|| bad("no =FILE"))?;
        let (who, kind) = lhs.rsplit_once(':').ok_or_else(|| bad("no :KIND"))?;
        let kind = SeriesKind::parse(kind).ok_or_else(|| {
            bad(&format!(
                "kind {kind:?} is not one of {}",
                SeriesKind::NAMES
            ))
        })?;
        let (service, name) = match who.split_once('/') {
            Some((s, n)) => (Some(s.to_string()), n),
            None => (None, who),
        };
        if name.is_empty() || service.as_deref() == Some("") || file.is_empty() {
            return Err(bad("empty service, name or file"));
        }
        Ok(SeriesSpec {
            service,
            name: name.to_string(),
            kind,
            path: PathBuf::from(file),
        })
    }
}

fn timestamp(field: &str) -> Option<i64> {
    if let Some(t) = parse_rfc3339(field.as_bytes()) {
        return Some(t);
    }
    let v: f64 = field.parse().ok()?;
    epoch_to_ms(v)
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(f)
        .trim()
}

/// The points of a CSV, sorted by time (a file's own order kept among
/// equal times). `file` names it in errors.
pub fn parse_csv(input: impl BufRead, file: &str) -> Result<Vec<(i64, f64)>, BaselineError> {
    let mut points = Vec::new();
    let mut line = Vec::with_capacity(128);
    let mut input = input.take(u64::MAX);
    let mut no = 0u64;
    // Only the first line that is not blank or a comment may be a header.
    let mut header_allowed = true;
    loop {
        line.clear();
        input.set_limit(MAX_LINE as u64 + 1);
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| BaselineError::invalid(file, e.to_string()))?;
        if n == 0 {
            break;
        }
        no += 1;
        let at = || format!("{file}:{no}");
        if line.len() > MAX_LINE {
            return Err(BaselineError::invalid(
                at(),
                format!("line longer than {MAX_LINE} bytes: not a timestamp,value CSV"),
            ));
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| BaselineError::invalid(at(), "not UTF-8"))?
            .trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let may_be_header = std::mem::take(&mut header_allowed);
        let mut fields = text.split(',');
        let (Some(t), Some(v)) = (fields.next(), fields.next()) else {
            return Err(BaselineError::invalid(
                at(),
                format!("{:?} is not timestamp,value", cut(text)),
            ));
        };
        let (t, v) = (unquote(t), unquote(v));
        for f in [t, v] {
            if f.len() > MAX_FIELD {
                return Err(BaselineError::invalid(
                    at(),
                    format!("field longer than {MAX_FIELD} bytes: {:?}", cut(f)),
                ));
            }
        }
        let Some(ts) = timestamp(t) else {
            if may_be_header {
                continue;
            }
            return Err(BaselineError::invalid(
                at(),
                format!("{t:?} is not a timestamp (RFC 3339, or Unix seconds or milliseconds)"),
            ));
        };
        let x: f64 = match v.parse() {
            Ok(x) if f64::is_finite(x) => x,
            _ => {
                return Err(BaselineError::invalid(
                    at(),
                    format!("value {:?} is not a finite number", cut(v)),
                ))
            }
        };
        if points.len() == MAX_POINTS {
            return Err(BaselineError::invalid(
                at(),
                format!("more than {MAX_POINTS} points"),
            ));
        }
        points.push((ts, x));
    }
    points.sort_by_key(|p| p.0);
    Ok(points)
}

fn cut(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads a series file.
pub fn load(path: &Path) -> Result<Vec<(i64, f64)>, BaselineError> {
    let f = std::fs::File::open(path).map_err(|e| BaselineError::io(path, e))?;
    parse_csv(std::io::BufReader::new(f), &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_a_service() {
        let s = SeriesSpec::parse("heap:memory=heap.csv").unwrap();
        assert_eq!(s.service, None);
        assert_eq!(s.kind, SeriesKind::Memory);
        let s = SeriesSpec::parse("checkout/cpu:cpu=/tmp/c.csv").unwrap();
        assert_eq!(s.service.as_deref(), Some("checkout"));
        assert_eq!(s.name, "cpu");
        assert!(SeriesSpec::parse("heap=heap.csv").is_err());
        assert!(SeriesSpec::parse("heap:bytes=heap.csv").is_err());
    }

    #[test]
    fn csv_with_header_and_mixed_timestamps() {
        let text = "timestamp,value\n1700000000,1.5\n\n# note\n\"2023-11-14T22:13:21Z\",2\n1700000002000,3\n";
        let p = parse_csv(text.as_bytes(), "m.csv").unwrap();
        assert_eq!(
            p,
            vec![
                (1_700_000_000_000, 1.5),
                (1_700_000_001_000, 2.0),
                (1_700_000_002_000, 3.0)
            ]
        );
    }

    #[test]
    fn bad_lines_say_where() {
        let e = parse_csv("t,v\n1700000000,x\n".as_bytes(), "m.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.csv:2"), "{e}");
        let e = parse_csv("1700000000,1\nnope,2\n".as_bytes(), "m.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.csv:2") && e.contains("not a timestamp"),
            "{e}"
        );
        let long = format!("1700000000,{}\n", "1".repeat(5000));
        let e = parse_csv(long.as_bytes(), "m.csv").unwrap_err().to_string();
        assert!(e.contains("m.csv:1") && e.contains("4096"), "{e}");
        let e = parse_csv("1700000000,1e999\n".as_bytes(), "m.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("finite"), "{e}");
    }
}
