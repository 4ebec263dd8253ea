//! Request logs into [`Event`]s: JSON lines with configurable field names,
//! and the nginx/Apache combined format with `$request_time` appended.
//!
//! Parsing is per line and never fatal: a malformed line yields a
//! [`LineError`], which [`LineStats`] counts and samples. The hot fields are
//! read by hand-written scanners rather than a general JSON parser or a
//! regex: `cargo bench -p perfpilot-baseline --bench featurize` measures
//! them against serde_json and the `regex` crate on the same lines.

mod combined;
pub mod detect;
mod json;
mod reader;
mod time;

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use detect::{detect, first_lines, Detected};
pub use reader::{FollowOptions, LogReader};
pub use time::{epoch_to_ms, parse_clf_time, parse_rfc3339};

use crate::BaselineError;

/// One request.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Finite and non-negative.
    pub latency_ms: f64,
    pub status: u16,
    /// The request path without its query string, interned.
    pub endpoint: Arc<str>,
    pub service: Arc<str>,
}

impl Event {
    /// Server errors count against a service; client errors (4xx) do not.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.status >= 500
    }
}

/// Which log format a line is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// nginx/Apache combined format with `$request_time` (seconds) appended.
    Combined,
}

impl LogFormat {
    /// JSON when the first non-blank byte is `{`, else combined.
    pub fn detect(line: &[u8]) -> LogFormat {
        match line.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => LogFormat::Json,
            _ => LogFormat::Combined,
        }
    }
}

/// The unit of the JSON latency field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LatencyUnit {
    #[default]
    Milliseconds,
    Seconds,
    Microseconds,
}

impl LatencyUnit {
    fn to_ms(self) -> f64 {
        match self {
            LatencyUnit::Milliseconds => 1.0,
            LatencyUnit::Seconds => 1000.0,
            LatencyUnit::Microseconds => 0.001,
        }
    }
}

/// Field names of JSON request logs.
///
/// `ts` may be an RFC 3339 string or epoch seconds (a number or numeric
/// string; magnitudes of milliseconds, microseconds and nanoseconds since
/// the epoch are recognised too, since no log has timestamps in year 5000).
/// `service` is optional: without it, [`ParseOptions::default_service`].
#[derive(Clone, Debug, PartialEq)]
pub struct JsonFields {
    pub ts: String,
    pub latency: String,
    pub latency_unit: LatencyUnit,
    pub status: String,
    pub endpoint: String,
    pub service: String,
}

impl Default for JsonFields {
    fn default() -> Self {
        JsonFields {
            ts: "ts".into(),
            latency: "latency_ms".into(),
            latency_unit: LatencyUnit::Milliseconds,
            status: "status".into(),
            endpoint: "endpoint".into(),
            service: "service".into(),
        }
    }
}

/// How to parse a log.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// `None`: detect per line (see [`LogFormat::detect`]).
    pub format: Option<LogFormat>,
    pub fields: JsonFields,
    /// The service of combined-format lines and of JSON lines without a
    /// service field.
    pub default_service: String,
    /// Distinct endpoints kept before further ones are folded into
    /// [`OTHER_ENDPOINT`]: paths with ids in them would otherwise grow
    /// memory and windows without bound.
    pub max_endpoints: usize,
    /// Malformed lines kept as samples by [`LineStats`].
    pub max_samples: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            format: None,
            fields: JsonFields::default(),
            default_service: "default".into(),
            max_endpoints: 10_000,
            max_samples: 10,
        }
    }
}

/// Where endpoints beyond [`ParseOptions::max_endpoints`] go.
pub const OTHER_ENDPOINT: &str = "(other)";

/// The endpoint of combined-format lines whose request is not
/// `METHOD TARGET PROTOCOL` (scanners, TLS handshakes on a plain port):
/// still requests with a status and a latency.
pub const UNPARSED_ENDPOINT: &str = "-";

/// Why one line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The line is not a JSON object, or its JSON is broken.
    Json(&'static str),
    MissingField(String),
    BadField {
        field: String,
        reason: &'static str,
    },
    /// The line does not have the combined format's shape.
    Combined(&'static str),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Json(r) => write!(f, "invalid JSON: {r}"),
            LineError::MissingField(name) => write!(f, "missing field \"{name}\""),
            LineError::BadField { field, reason } => write!(f, "field \"{field}\": {reason}"),
            LineError::Combined(r) => write!(f, "not combined log format: {r}"),
        }
    }
}

impl std::error::Error for LineError {}

/// One malformed line kept as a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedLine {
    /// 1-based, within the file being read (it restarts after rotation).
    pub line_no: u64,
    pub reason: String,
    /// The line, cut to [`SAMPLE_TEXT_MAX`] bytes.
    pub text: String,
}

/// Bytes of a malformed line kept in its sample.
pub const SAMPLE_TEXT_MAX: usize = 200;

/// Lines parsed and refused, with the first few refused ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    pub parsed: u64,
    pub malformed: u64,
    pub samples: Vec<MalformedLine>,
    pub max_samples: usize,
}

impl LineStats {
    pub fn new(max_samples: usize) -> LineStats {
        LineStats {
            max_samples,
            ..LineStats::default()
        }
    }

    /// Counts a refused line, keeping it if fewer than `max_samples` are.
    pub fn record_malformed(&mut self, line_no: u64, line: &[u8], err: &LineError) {
        self.malformed += 1;
        if self.samples.len() < self.max_samples {
            let mut end = line.len().min(SAMPLE_TEXT_MAX);
            // Cut on a character boundary so the sample stays readable.
            while end < line.len() && end > 0 && (line[end] & 0xC0) == 0x80 {
                end -= 1;
            }
            let mut text = String::from_utf8_lossy(&line[..end]).into_owned();
            if end < line.len() {
                text.push('…');
            }
            self.samples.push(MalformedLine {
                line_no,
                reason: err.to_string(),
                text,
            });
        }
    }

    /// Adds another reader's counts (samples up to this one's limit).
    pub fn merge(&mut self, other: &LineStats) {
        self.parsed += other.parsed;
        self.malformed += other.malformed;
        let room = self.max_samples.saturating_sub(self.samples.len());
        self.samples
            .extend(other.samples.iter().take(room).cloned());
    }
}

impl fmt::Display for LineStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lines parsed, {} malformed",
            self.parsed, self.malformed
        )?;
        for s in &self.samples {
            write!(f, "\n  line {}: {}: {}", s.line_no, s.reason, s.text)?;
        }
        if self.malformed > self.samples.len() as u64 {
            write!(
                f,
                "\n  ({} more not shown)",
                self.malformed - self.samples.len() as u64
            )?;
        }
        Ok(())
    }
}

/// Shares one allocation per distinct name, so events and windows clone
/// names by reference count.
#[derive(Debug, Default)]
pub struct Interner {
    names: HashSet<Arc<str>, foldhash::fast::RandomState>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(a.clone());
        a
    }

    /// Like [`Interner::intern`], but a name not yet seen once `limit`
    /// names are held maps to `overflow`.
    fn intern_bounded(&mut self, s: &str, limit: usize, overflow: &Arc<str>) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        if self.names.len() >= limit {
            return overflow.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(a.clone());
        a
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Parses lines of either format into events, interning names.
#[derive(Debug)]
pub struct Parser {
    format: Option<LogFormat>,
    json: json::JsonScanner,
    endpoints: Interner,
    services: Interner,
    max_endpoints: usize,
    default_service: Arc<str>,
    other: Arc<str>,
    unparsed: Arc<str>,
    max_samples: usize,
}

impl Parser {
    pub fn new(opts: &ParseOptions) -> Parser {
        let mut endpoints = Interner::default();
        let other = endpoints.intern(OTHER_ENDPOINT);
        let unparsed = endpoints.intern(UNPARSED_ENDPOINT);
        let mut services = Interner::default();
        let default_service = services.intern(&opts.default_service);
        Parser {
            format: opts.format,
            json: json::JsonScanner::new(&opts.fields),
            endpoints,
            services,
            // The two reserved names above do not count against the limit.
            max_endpoints: opts.max_endpoints.saturating_add(2),
            default_service,
            other,
            unparsed,
            max_samples: opts.max_samples,
        }
    }

    /// A [`LineStats`] keeping as many samples as the options said.
    pub fn new_stats(&self) -> LineStats {
        LineStats::new(self.max_samples)
    }

    /// Parses one line (without its newline). `Ok(None)` for a blank line,
    /// which is neither an event nor malformed.
    pub fn parse(&mut self, line: &[u8]) -> Result<Option<Event>, LineError> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(None);
        }
        let format = self.format.unwrap_or_else(|| LogFormat::detect(line));
        let raw = match format {
            LogFormat::Json => self.json.scan(line)?,
            LogFormat::Combined => combined::scan(line)?,
        };
        let endpoint = match raw.endpoint {
            None => self.unparsed.clone(),
            Some(t) => {
                let e = t.as_str(line, self.json.scratch_endpoint(), "endpoint")?;
                self.endpoints
                    .intern_bounded(e, self.max_endpoints, &self.other)
            }
        };
        let service = match raw.service {
            Some(t) => {
                self.services
                    .intern(t.as_str(line, self.json.scratch_service(), "service")?)
            }
            None => self.default_service.clone(),
        };
        Ok(Some(Event {
            ts_ms: raw.ts_ms,
            latency_ms: raw.latency_ms,
            status: raw.status,
            endpoint,
            service,
        }))
    }

    /// [`Parser::parse`], counting the outcome in `stats`.
    #[inline]
    pub fn parse_counted(
        &mut self,
        line_no: u64,
        line: &[u8],
        stats: &mut LineStats,
    ) -> Option<Event> {
        match self.parse(line) {
            Ok(Some(ev)) => {
                stats.parsed += 1;
                Some(ev)
            }
            Ok(None) => None,
            Err(e) => {
                stats.record_malformed(line_no, line, &e);
                None
            }
        }
    }
}

/// A string found by a scanner: a range of the line, or (when it had JSON
/// escapes) decoded into the scanner's scratch buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Text {
    Span(usize, usize),
    Scratch,
}

impl Text {
    fn as_str<'a>(
        &self,
        line: &'a [u8],
        scratch: &'a str,
        field: &str,
    ) -> Result<&'a str, LineError> {
        match *self {
            Text::Span(a, b) => std::str::from_utf8(&line[a..b]).map_err(|_| LineError::BadField {
                field: field.to_string(),
                reason: "not UTF-8",
            }),
            Text::Scratch => Ok(scratch),
        }
    }
}

/// The fields a scanner extracts. `endpoint` is already stripped of its
/// query string; `None` means the request could not be split.
#[derive(Debug)]
pub(crate) struct RawEvent {
    pub(crate) ts_ms: i64,
    pub(crate) latency_ms: f64,
    pub(crate) status: u16,
    pub(crate) endpoint: Option<Text>,
    pub(crate) service: Option<Text>,
}

/// The request path of a request target: no query string or fragment, and
/// no scheme and host for absolute-form targets (forward proxies).
pub(crate) fn path_of(target: &[u8], start: usize) -> (usize, usize) {
    let mut a = start;
    let t = target;
    let rest = &t[a..];
    let scheme_len = if rest.starts_with(b"http://") {
        7
    } else if rest.starts_with(b"https://") {
        8
    } else {
        0
    };
    if scheme_len > 0 {
        let host_start = a + scheme_len;
        a = match t[host_start..].iter().position(|&b| b == b'/') {
            Some(p) => host_start + p,
            None => t.len(),
        };
    }
    let end = t[a..]
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .map_or(t.len(), |p| a + p);
    (a, end)
}

/// Reads a whole log file (or stdin for `-`) into events.
pub fn read_file(
    path: &Path,
    opts: &ParseOptions,
) -> Result<(Vec<Event>, LineStats), BaselineError> {
    let mut reader = LogReader::open(path)?;
    let mut parser = Parser::new(opts);
    let mut stats = parser.new_stats();
    let mut events = Vec::new();
    read_events(&mut reader, &mut parser, &mut stats, |e| events.push(e))?;
    Ok((events, stats))
}

/// Feeds every event of `reader` to `sink` until the end of input (or,
/// following, until the stop flag is raised).
pub fn read_events(
    reader: &mut LogReader,
    parser: &mut Parser,
    stats: &mut LineStats,
    mut sink: impl FnMut(Event),
) -> Result<(), BaselineError> {
    let mut buf = Vec::with_capacity(512);
    while let Some(line_no) = reader.next_line(&mut buf)? {
        if let Some(ev) = parser.parse_counted(line_no, &buf, stats) {
            sink(ev);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_of_strips_query_and_host() {
        let t = b"/a/b?x=1#f";
        assert_eq!(path_of(t, 0), (0, 4));
        let t = b"http://example.com/a?q";
        let (a, b) = path_of(t, 0);
        assert_eq!(&t[a..b], b"/a");
        let t = b"https://example.com";
        let (a, b) = path_of(t, 0);
        assert_eq!(a, b);
    }

    #[test]
    fn stats_keep_first_samples_cut_on_char_boundaries() {
        let mut st = LineStats::new(2);
        let long = "é".repeat(150);
        for i in 1..=5 {
            st.record_malformed(i, long.as_bytes(), &LineError::Json("x"));
        }
        assert_eq!(st.malformed, 5);
        assert_eq!(st.samples.len(), 2);
        assert!(st.samples[0].text.ends_with('…'));
        assert!(!st.samples[0].text.contains('\u{FFFD}'));
        assert!(st.to_string().contains("3 more not shown"));
    }

    #[test]
    fn endpoints_beyond_the_limit_fold_into_other() {
        let mut p = Parser::new(&ParseOptions {
            max_endpoints: 2,
            ..ParseOptions::default()
        });
        let mut names = Vec::new();
        for i in 0..4 {
            let line = format!(r#"{{"ts":1,"latency_ms":1,"status":200,"endpoint":"/u/{i}"}}"#);
            names.push(p.parse(line.as_bytes()).unwrap().unwrap().endpoint);
        }
        assert_eq!(&*names[0], "/u/0");
        assert_eq!(&*names[1], "/u/1");
        assert_eq!(&*names[2], OTHER_ENDPOINT);
        assert_eq!(&*names[3], OTHER_ENDPOINT);
    }
}
