//! Pyroscope's legacy ingestion endpoint, `POST /ingest` (handler:
//! `pkg/ingester/pyroscope/ingest_handler.go` in grafana/pyroscope).
//!
//! Query parameters: `name=APP{key=value,...}` (application name and tags;
//! the name may hold `[a-zA-Z0-9_.\-/]`, tag names `[a-zA-Z_][a-zA-Z0-9_.]*`,
//! keys and values are trimmed, `api/model/labelset`), `from`/`until` (Unix
//! time in seconds, or milliseconds/microseconds/nanoseconds told apart by
//! their 13/16/19 digits, or `now`, `now-1h`; pyroscope-go sends nanoseconds,
//! other SDKs seconds; default now), `format` (default folded), `sampleRate`
//! (default 100), `spyName`, `units`, `aggregationType`.
//!
//! Bodies, chosen as Pyroscope does:
//! * `multipart/form-data` (pyroscope-go): a `profile` part (pprof, usually
//!   gzipped), optionally `prev_profile` (the previous snapshot of a
//!   cumulative profile) and `sample_type_config` (JSON, see
//!   [`crate::SampleTypeConfig`]); see [`crate::multipart`].
//! * `format=pprof` (pyroscope-io Python SDK 0.8, captured in `testdata/`):
//!   the body is a pprof, sent with `Content-Encoding: gzip`.
//! * `format=folded` (or none, "groups" in Pyroscope; older pyroscope-rs
//!   based SDKs): `a;b;c 12` lines; `format=lines`: one stack per line,
//!   each counting 1.
//! * `trie`, `tree`, `jfr`, `speedscope`: not supported.
//!
//! A body starting with the gzip magic bytes is decompressed whatever the
//! format, so callers need not pass `Content-Encoding` along.
//!
//! Labels: `service_name` is the application name (for folded uploads,
//! without its profile-type suffix); a `service_name` tag wins and the
//! application name is kept as `app_name`, as Pyroscope does; tags starting
//! with `__` are dropped except `__session_id__` (pyroscope-go sends it);
//! `spyName` becomes `pyroscope_spy`. For the profile types see
//! [`crate::profile_type`].
//!
//! Differences from Pyroscope: a folded upload whose application name ends
//! in an unknown suffix (`my.app`) is stored as a CPU profile of `my.app`
//! where Pyroscope rejects it; `prev_profile` is honoured (cumulative sample
//! types store the difference) where current Pyroscope rejects it and asks
//! for a newer pyroscope-go; Python/Ruby function names are not rewritten to
//! `file:line - name`; unparseable `from`/`until`/`sampleRate` values are
//! errors where Pyroscope silently uses defaults.

use perfpilot_model::series::{Batch, Labels, PROFILE_TYPE_LABEL, SERVICE_NAME_LABEL};

use crate::batch::BatchBuilder;
use crate::error::{shorten, WireError};
use crate::limits::{check_label_len, is_valid_label_name, too_many_labels, Budget, Limits};
use crate::multipart;
use crate::pprof::{
    add_pprof_bytes, add_profile, decode_pprof, Source, NAME_LABEL, SESSION_ID_LABEL,
};
use crate::profile_type::{legacy_suffix, SampleTypeConfigs};

/// How the body of a legacy upload is encoded (`format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyFormat {
    /// `a;b;c 12` lines (Pyroscope's "groups", the default).
    Folded,
    /// One stack per line, each counting 1.
    Lines,
    /// A pprof body, or a multipart form with pprof parts.
    Pprof,
    Trie,
    Tree,
    Jfr,
    Speedscope,
}

/// The query parameters of `POST /ingest`.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyIngestParams {
    /// The application name, the part of `name` before `{`.
    pub app_name: String,
    /// The tags between `{}`, sorted, empty values dropped.
    pub tags: Labels,
    pub from_ms: i64,
    pub until_ms: i64,
    pub format: LegacyFormat,
    pub sample_rate: u32,
    /// Empty when not given.
    pub spy_name: String,
    pub units: String,
    pub aggregation_type: String,
}

const DEFAULT_SAMPLE_RATE: u32 = 100;

impl LegacyIngestParams {
    /// Parses a raw (percent-encoded) query string, without the leading `?`.
    /// `now_ms` stands for "now" in times. The tags are held to
    /// [`Limits::default`]; see [`Self::parse_with`].
    pub fn parse(query: &str, now_ms: i64) -> Result<LegacyIngestParams, WireError> {
        LegacyIngestParams::parse_with(query, now_ms, &Limits::default())
    }

    /// [`Self::parse`] with the tags' count and lengths held to `limits`
    /// as they are read.
    pub fn parse_with(
        query: &str,
        now_ms: i64,
        limits: &Limits,
    ) -> Result<LegacyIngestParams, WireError> {
        let params = parse_query(query)?;
        let get = |k: &str| {
            params
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        let name = get("name").unwrap_or("");
        let (app_name, tags) = parse_app_name(name, limits)?;
        let from_ms = match get("from") {
            Some(v) if !v.is_empty() => {
                parse_time(v, now_ms).map_err(|m| WireError::param("from", m))?
            }
            _ => now_ms,
        };
        let until_ms = match get("until") {
            Some(v) if !v.is_empty() => {
                parse_time(v, now_ms).map_err(|m| WireError::param("until", m))?
            }
            _ => now_ms,
        };
        let format = match get("format").unwrap_or("") {
            "" | "folded" | "groups" | "collapsed" => LegacyFormat::Folded,
            "lines" => LegacyFormat::Lines,
            "pprof" => LegacyFormat::Pprof,
            "trie" => LegacyFormat::Trie,
            "tree" => LegacyFormat::Tree,
            "jfr" => LegacyFormat::Jfr,
            "speedscope" => LegacyFormat::Speedscope,
            other => {
                return Err(WireError::param(
                    "format",
                    format!(
                        "unknown format {:?}; expected folded, lines or pprof",
                        shorten(other)
                    ),
                ))
            }
        };
        let sample_rate = match get("sampleRate") {
            Some(v) if !v.is_empty() => v.trim().parse::<u32>().map_err(|_| {
                WireError::param(
                    "sampleRate",
                    format!(
                        "{:?} is not a whole number of samples per second",
                        shorten(v)
                    ),
                )
            })?,
            _ => DEFAULT_SAMPLE_RATE,
        };
        Ok(LegacyIngestParams {
            app_name,
            tags,
            from_ms,
            until_ms,
            format,
            sample_rate,
            spy_name: get("spyName").unwrap_or("").to_string(),
            units: get("units").unwrap_or("").to_string(),
            aggregation_type: get("aggregationType").unwrap_or("").to_string(),
        })
    }

    /// The request labels for a profile of this application: tags,
    /// `service_name` (the tag, or `service`), `app_name` when a
    /// `service_name` tag overrode it, `pyroscope_spy`.
    fn labels(&self, service: &str) -> Labels {
        let mut labels = self.tags.clone();
        if labels.iter().any(|(k, _)| k == SERVICE_NAME_LABEL) {
            if !labels.iter().any(|(k, _)| k == "app_name") {
                labels.push(("app_name".to_string(), service.to_string()));
            }
        } else {
            labels.push((SERVICE_NAME_LABEL.to_string(), service.to_string()));
        }
        if !self.spy_name.is_empty() && !labels.iter().any(|(k, _)| k == "pyroscope_spy") {
            labels.push(("pyroscope_spy".to_string(), self.spy_name.clone()));
        }
        labels.sort();
        labels
    }
}

/// Decodes a `POST /ingest` body.
pub fn batch_from_legacy(
    params: &LegacyIngestParams,
    content_type: Option<&str>,
    body: &[u8],
    now_ms: i64,
    limits: &Limits,
) -> Result<Batch, WireError> {
    let mut budget = Budget::new(limits);
    let body = budget.unwrap(body, "the request body")?;
    let body: &[u8] = &body;
    let multipart = content_type.is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    });
    let mut b = BatchBuilder::new(limits, now_ms);
    match params.format {
        LegacyFormat::Folded | LegacyFormat::Lines if multipart => add_multipart(
            &mut b,
            &mut budget,
            params,
            content_type.unwrap_or(""),
            body,
        )?,
        LegacyFormat::Folded => add_folded(&mut b, params, body, false)?,
        LegacyFormat::Lines => add_folded(&mut b, params, body, true)?,
        LegacyFormat::Pprof if multipart => add_multipart(
            &mut b,
            &mut budget,
            params,
            content_type.unwrap_or(""),
            body,
        )?,
        LegacyFormat::Pprof => {
            let labels = params.labels(&params.app_name);
            add_pprof_bytes(
                &mut budget,
                &mut b,
                &Source {
                    what: "the pprof body",
                    name: None,
                    labels: &labels,
                    configs: None,
                    fallback_time_ms: params.from_ms,
                    default_service: None,
                },
                body,
            )?;
        }
        LegacyFormat::Trie | LegacyFormat::Tree | LegacyFormat::Jfr | LegacyFormat::Speedscope => {
            return Err(WireError::Unsupported(format!(
                "/ingest format {:?}; send pprof, folded or lines",
                params.format
            )))
        }
    }
    Ok(b.finish())
}

fn add_multipart(
    b: &mut BatchBuilder<'_>,
    budget: &mut Budget,
    params: &LegacyIngestParams,
    content_type: &str,
    body: &[u8],
) -> Result<(), WireError> {
    let parts = multipart::parse(content_type, body)?;
    let part = |name: &str| parts.iter().find(|p| p.name == name);
    let profile =
        part("profile").ok_or_else(|| WireError::Multipart("no \"profile\" part".to_string()))?;
    let configs: Option<SampleTypeConfigs> = match part("sample_type_config") {
        Some(p) => Some(serde_json::from_slice(p.body).map_err(|e| WireError::Json {
            what: "the sample_type_config part".to_string(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let limits = b.limits();
    let current = decode_pprof(budget, limits, profile.body, "the profile part")?;
    let prev = match part("prev_profile") {
        Some(p) if !p.body.is_empty() => Some(decode_pprof(
            budget,
            limits,
            p.body,
            "the prev_profile part",
        )?),
        _ => None,
    };
    let labels = params.labels(&params.app_name);
    add_profile(
        b,
        &Source {
            what: "the profile part",
            name: None,
            labels: &labels,
            configs: configs.as_ref(),
            fallback_time_ms: params.from_ms,
            default_service: None,
        },
        &current,
        prev.as_ref(),
    )
}

/// The profile type and value scale of a folded upload, from the
/// application name's suffix and the sample rate.
fn folded_type(params: &LegacyIngestParams) -> (String, String, i64) {
    let (app, suffix) = match params.app_name.rsplit_once('.') {
        Some((app, suffix)) if legacy_suffix(suffix).is_some() && !app.is_empty() => (app, suffix),
        _ => (params.app_name.as_str(), "cpu"),
    };
    let (metric, mut sample_type, mut unit) =
        legacy_suffix(suffix).unwrap_or(("process_cpu", "samples", "count"));
    let mut period = ("", "");
    let mut scale = 1i64;
    if params.sample_rate != 0 && (metric == "process_cpu" || metric == "wall") {
        scale = 1_000_000_000 / i64::from(params.sample_rate);
        sample_type = if metric == "wall" { "wall" } else { "cpu" };
        unit = "nanoseconds";
        period = ("cpu", "nanoseconds");
    }
    let id = format!("{metric}:{sample_type}:{unit}:{}:{}", period.0, period.1);
    (app.to_string(), id, scale)
}

fn add_folded(
    b: &mut BatchBuilder<'_>,
    params: &LegacyIngestParams,
    body: &[u8],
    lines: bool,
) -> Result<(), WireError> {
    let (app, type_id, scale) = folded_type(params);
    let mut labels = params.labels(&app);
    labels.push((PROFILE_TYPE_LABEL.to_string(), type_id));
    labels.sort();
    let profile = b.profile("the folded profile", labels, params.from_ms)?;
    for (n, raw) in body.split(|&c| c == b'\n').enumerate() {
        let line_no = n + 1;
        let line = std::str::from_utf8(raw).map_err(|e| WireError::Folded {
            line: line_no,
            message: format!(
                "not valid UTF-8 (bad byte at column {})",
                e.valid_up_to() + 1
            ),
        })?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (stack, count) = if lines {
            (line, 1i64)
        } else {
            let Some((stack, count)) = line.rsplit_once(' ') else {
                return Err(WireError::Folded {
                    line: line_no,
                    message: "no sample count; expected `frame;frame;...;leaf COUNT`".to_string(),
                });
            };
            let count = count.trim().parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
                WireError::Folded {
                    line: line_no,
                    message: format!(
                        "{:?} is not a sample count; expected a non-negative integer after the last space",
                        shorten(count)
                    ),
                }
            })?;
            (stack, count)
        };
        let value = count.checked_mul(scale).ok_or_else(|| WireError::Folded {
            line: line_no,
            message: format!("count {count} times the sample period {scale} overflows"),
        })?;
        let stack_id = b.stack(stack.split(';'), &|| {
            format!("folded stacks, line {line_no}")
        })?;
        b.add(profile, stack_id, value).map_err(|e| match e {
            WireError::Invalid(m) => WireError::Folded {
                line: line_no,
                message: m,
            },
            other => other,
        })?;
    }
    Ok(())
}

/// `app.name{key=value,key2=value2}` → (`app.name`, sorted tags). The
/// tags are counted and measured as they are read, before anything is
/// sorted.
fn parse_app_name(name: &str, limits: &Limits) -> Result<(String, Labels), WireError> {
    let bad = |m: String| WireError::param("name", m);
    let (app, tags) = match name.split_once('{') {
        Some((app, rest)) => (app, Some(rest)),
        None => (name, None),
    };
    let app = app.trim();
    if app.is_empty() {
        return Err(bad(
            "the application name is required (name=APP or name=APP{key=value})".into(),
        ));
    }
    if let Some(c) = app
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(bad(format!(
            "application name {:?} contains {c:?}; allowed are letters, digits, '_', '.', '-' and '/'",
            shorten(app)
        )));
    }
    // The application name becomes the service_name label's value.
    check_label_len("parameter \"name\"", SERVICE_NAME_LABEL, app, limits)?;
    let mut labels: Labels = Vec::new();
    let mut seen = std::collections::HashSet::new();
    if let Some(rest) = tags {
        let Some(inner) = rest.trim_end().strip_suffix('}') else {
            return Err(bad(format!(
                "{:?}: missing '}}' after the tags",
                shorten(name)
            )));
        };
        if inner.contains('{') || inner.contains('}') {
            return Err(bad(format!("{:?}: unbalanced braces", shorten(name))));
        }
        for pair in inner.split(',') {
            if pair.trim().is_empty() {
                continue;
            }
            let Some((k, v)) = pair.split_once('=') else {
                return Err(bad(format!(
                    "tag {:?} is not key=value",
                    shorten(pair.trim())
                )));
            };
            let (k, v) = (k.trim(), v.trim());
            if k == NAME_LABEL {
                return Err(bad("tag __name__ is reserved".into()));
            }
            if k.starts_with("__") && k != SESSION_ID_LABEL {
                continue;
            }
            if !is_valid_label_name(k) {
                return Err(bad(format!(
                    "tag name {:?} is invalid; tag names must match [a-zA-Z_][a-zA-Z0-9_.]*",
                    shorten(k)
                )));
            }
            if !seen.insert(k) {
                return Err(bad(format!("tag {k:?} appears more than once")));
            }
            if v.is_empty() {
                continue;
            }
            if labels.len() == limits.max_labels_per_series {
                let count = inner.split(',').filter(|p| !p.trim().is_empty()).count();
                return Err(too_many_labels("parameter \"name\"", count, limits));
            }
            check_label_len("parameter \"name\"", k, v, limits)?;
            labels.push((k.to_string(), v.to_string()));
        }
    }
    labels.sort();
    Ok((app.to_string(), labels))
}

/// Pyroscope's time parameter syntax (`pkg/og/util/attime`): digits are
/// Unix time whose unit follows from the digit count (13 ms, 16 µs, 19 ns,
/// 8 YYYYMMDD, otherwise seconds); `now`, `now-1h`, `now+30s` are relative
/// to `now_ms`.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = s
            .parse()
            .map_err(|_| format!("{:?} is too large for a time", shorten(&s)))?;
        if s.len() == 8 {
            if let Some(ms) = yyyymmdd_ms(v) {
                return Ok(ms);
            }
        }
        return Ok(match s.len() {
            13 => v,
            16 => v / 1_000,
            19 => v / 1_000_000,
            _ => v.saturating_mul(1_000),
        });
    }
    let Some(rest) = s.strip_prefix("now") else {
        return Err(format!(
            "{:?} is not a time; expected Unix seconds/ms/µs/ns digits or now[-+]N(s|m|h|d|w|M|y)",
            shorten(&s)
        ));
    };
    if rest.is_empty() {
        return Ok(now_ms);
    }
    let (sign, offset) = if let Some(r) = rest.strip_prefix('-') {
        (-1i64, r)
    } else if let Some(r) = rest.strip_prefix('+') {
        (1i64, r)
    } else {
        return Err(format!("{s:?}: expected '-' or '+' after now"));
    };
    let mut total_s: i64 = 0;
    let mut chars = offset.chars().peekable();
    while chars.peek().is_some() {
        let mut num: i64 = 0;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            num = num.saturating_mul(10).saturating_add(i64::from(d));
            chars.next();
        }
        let mut unit = String::new();
        while let Some(&c) = chars.peek().filter(|c| !c.is_ascii_digit()) {
            unit.push(c);
            chars.next();
        }
        let mult = if unit.starts_with('s') {
            1
        } else if unit.starts_with("mon") || unit.starts_with('M') {
            30 * 86_400
        } else if unit.starts_with('m') {
            60
        } else if unit.starts_with('h') {
            3_600
        } else if unit.starts_with('d') {
            86_400
        } else if unit.starts_with('w') {
            7 * 86_400
        } else if unit.starts_with('y') {
            365 * 86_400
        } else {
            return Err(format!("{s:?}: unknown time unit {unit:?}"));
        };
        total_s = total_s.saturating_add(num.saturating_mul(mult));
    }
    Ok(now_ms.saturating_add(sign * total_s.saturating_mul(1_000)))
}

/// Midnight UTC of a YYYYMMDD date, in ms.
fn yyyymmdd_ms(v: i64) -> Option<i64> {
    let (y, m, d) = (v / 10_000, (v / 100) % 100, v % 100);
    if y <= 1900 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000)
}

/// Splits a query string into decoded (name, value) pairs, in order.
pub(crate) fn parse_query(query: &str) -> Result<Vec<(String, String)>, WireError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut out = Vec::new();
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).map_err(|m| WireError::Invalid(format!("query string: {m}")))?;
        let v = percent_decode(v).map_err(|m| WireError::param(&k, m))?;
        out.push((k, v));
    }
    Ok(out)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape at byte {i} of {:?}", shorten(s)))?;
                out.push(hex);
                i += 2;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{:?} does not decode to UTF-8", shorten(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn times_follow_attime() {
        assert_eq!(parse_time("1577836800", NOW).unwrap(), 1_577_836_800_000);
        assert_eq!(parse_time("1577836800001", NOW).unwrap(), 1_577_836_800_001);
        assert_eq!(
            parse_time("1577836800000001", NOW).unwrap(),
            1_577_836_800_000
        );
        assert_eq!(
            parse_time("1577836800000000001", NOW).unwrap(),
            1_577_836_800_000
        );
        assert_eq!(parse_time("20200101", NOW).unwrap(), 1_577_836_800_000);
        assert_eq!(parse_time("now", NOW).unwrap(), NOW);
        assert_eq!(parse_time("now-1h", NOW).unwrap(), NOW - 3_600_000);
        assert_eq!(parse_time("now+30s", NOW).unwrap(), NOW + 30_000);
        assert_eq!(parse_time("now-1M", NOW).unwrap(), NOW - 30 * 86_400_000);
        assert_eq!(parse_time("now-1min", NOW).unwrap(), NOW - 60_000);
        assert!(parse_time("yesterday", NOW)
            .unwrap_err()
            .contains("is not a time"));
        assert!(parse_time("now-3q", NOW).is_err());
    }

    #[test]
    fn app_names_and_tags() {
        let (app, tags) = parse_app_name(
            " my-app.cpu { env = prod , __session_id__=ab, __x=y, empty=} ",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(app, "my-app.cpu");
        assert_eq!(
            tags,
            vec![
                ("__session_id__".to_string(), "ab".to_string()),
                ("env".to_string(), "prod".to_string())
            ]
        );
        assert!(parse_app_name("", &Limits::default()).is_err());
        assert!(parse_app_name("app{a=b", &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("missing '}'"));
        assert!(parse_app_name("app{a-b=c}", &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("is invalid"));
        assert!(parse_app_name("app{a}", &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("not key=value"));
        assert!(parse_app_name("my app", &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("' '"));
    }

    #[test]
    fn query_strings_are_decoded() {
        let p = LegacyIngestParams::parse(
            "name=checkout%7Benv%3Dprod%2Cregion%3Deu%7D&from=1700000000&until=1700000010\
             &sampleRate=100&spyName=gospy&units=samples&aggregationType=sum&format=pprof",
            NOW,
        )
        .unwrap();
        assert_eq!(p.app_name, "checkout");
        assert_eq!(p.tags.len(), 2);
        assert_eq!(p.from_ms, 1_700_000_000_000);
        assert_eq!(p.until_ms, 1_700_000_010_000);
        assert_eq!(p.format, LegacyFormat::Pprof);
        assert_eq!(p.spy_name, "gospy");
        let d = LegacyIngestParams::parse("name=a+b.c", NOW).unwrap_err();
        assert!(d.to_string().contains("' '"), "{d}");
        let p = LegacyIngestParams::parse("name=app", NOW).unwrap();
        assert_eq!(
            (p.from_ms, p.sample_rate, p.format),
            (NOW, 100, LegacyFormat::Folded)
        );
        assert!(LegacyIngestParams::parse("name=app&sampleRate=fast", NOW)
            .unwrap_err()
            .to_string()
            .starts_with("parameter \"sampleRate\""));
        assert!(LegacyIngestParams::parse("name=app&format=xml", NOW).is_err());
        assert!(LegacyIngestParams::parse("name=%zz", NOW).is_err());
    }

    #[test]
    fn folded_types() {
        let mut p = LegacyIngestParams::parse("name=app.cpu", NOW).unwrap();
        assert_eq!(
            folded_type(&p),
            (
                "app".into(),
                "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
                10_000_000
            )
        );
        p.sample_rate = 0;
        assert_eq!(
            folded_type(&p),
            ("app".into(), "process_cpu:samples:count::".into(), 1)
        );
        p.app_name = "app.alloc_space".into();
        assert_eq!(
            folded_type(&p),
            ("app".into(), "memory:alloc_space:bytes::".into(), 1)
        );
        p.app_name = "my.app".into();
        p.sample_rate = 97;
        assert_eq!(
            folded_type(&p),
            (
                "my.app".into(),
                "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
                10_309_278
            )
        );
        p.app_name = "svc.wall".into();
        assert_eq!(folded_type(&p).1, "wall:wall:nanoseconds:cpu:nanoseconds");
    }
}
