//! The nginx/Apache combined log format with `$request_time` appended:
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time
//! ```
//!
//! Read by position and delimiter rather than with a regex: the
//! featurize benchmark compares the two on the same lines. Fields after
//! `$request_time` (e.g. `$upstream_response_time`) are ignored.

use super::json::parse_number;
use super::time::parse_clf_time;
use super::{path_of, LineError, RawEvent, Text};

type Res<T> = Result<T, LineError>;

/// Index of the quote closing a quoted field whose content starts at `i`
/// (Apache escapes quotes inside with a backslash; nginx uses `\x22`).
#[inline]
fn quoted_end(s: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let p = memchr::memchr2(b'"', b'\\', s.get(i..)?)?;
        if s[i + p] == b'"' {
            return Some(i + p);
        }
        i += p + 2;
    }
}

#[inline]
fn expect(s: &[u8], i: usize, lit: &[u8], what: &'static str) -> Res<usize> {
    if s.get(i..i + lit.len()) == Some(lit) {
        Ok(i + lit.len())
    } else {
        Err(LineError::Combined(what))
    }
}

pub(crate) fn scan(s: &[u8]) -> Res<RawEvent> {
    let lb = memchr::memchr(b'[', s).ok_or(LineError::Combined("no [time]"))?;
    let rb = memchr::memchr(b']', &s[lb..])
        .ok_or(LineError::Combined("no closing ] after the time"))?
        + lb;
    let ts_ms = parse_clf_time(&s[lb + 1..rb]).ok_or(LineError::Combined(
        "time is not like 10/Oct/2000:13:55:36 -0700",
    ))?;

    let req_start = expect(s, rb + 1, b" \"", "no quoted request after the time")?;
    let req_end = quoted_end(s, req_start).ok_or(LineError::Combined("unterminated request"))?;
    let endpoint = request_path(s, req_start, req_end);

    let i = expect(s, req_end + 1, b" ", "no status after the request")?;
    let st = s
        .get(i..i + 3)
        .ok_or(LineError::Combined("no status after the request"))?;
    if !st.iter().all(u8::is_ascii_digit) || st[0] == b'0' {
        return Err(LineError::Combined("status is not a 3-digit code"));
    }
    let status = st.iter().fold(0u16, |v, &b| v * 10 + (b - b'0') as u16);

    let i = expect(s, i + 3, b" ", "status is not a 3-digit code")?;
    let bytes_end = memchr::memchr(b' ', &s[i..]).ok_or(LineError::Combined("no referer"))? + i;
    let bytes = &s[i..bytes_end];
    if bytes != b"-" && (bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit)) {
        return Err(LineError::Combined("body bytes is not a number"));
    }
    let i = expect(s, bytes_end, b" \"", "no quoted referer")?;
    let i = quoted_end(s, i).ok_or(LineError::Combined("unterminated referer"))?;
    let i = expect(s, i + 1, b" \"", "no quoted user agent")?;
    let i = quoted_end(s, i).ok_or(LineError::Combined("unterminated user agent"))?;

    let i = expect(s, i + 1, b" ", "no $request_time after the user agent")?;
    let end = memchr::memchr(b' ', &s[i..]).map_or(s.len(), |p| i + p);
    let secs = parse_number(&s[i..end])
        .filter(|v| *v >= 0.0)
        .ok_or(LineError::Combined(
            "$request_time is not a number of seconds",
        ))?;
    Ok(RawEvent {
        ts_ms,
        latency_ms: secs * 1000.0,
        status,
        endpoint,
        service: None,
    })
}

/// The path of `METHOD TARGET[ PROTOCOL]`, or `None` when the request has
/// no such shape.
fn request_path(s: &[u8], a: usize, b: usize) -> Option<Text> {
    let req = &s[a..b];
    let sp = memchr::memchr(b' ', req)?;
    let method = &req[..sp];
    if method.is_empty() || !method.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let t0 = a + sp + 1;
    let t1 = memchr::memchr(b' ', &s[t0..b]).map_or(b, |p| t0 + p);
    if t1 == t0 {
        return None;
    }
    let (p0, p1) = path_of(&s[..t1], t0);
    Some(Text::Span(p0, p1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"203.0.113.7 - frank [10/Oct/2000:13:55:36 -0700] "GET /api/items?page=2 HTTP/1.1" 200 2326 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)" 0.042"#;

    #[test]
    fn reads_a_combined_line() {
        let e = scan(LINE.as_bytes()).unwrap();
        assert_eq!(e.ts_ms, 971_211_336_000);
        assert_eq!(e.status, 200);
        assert!((e.latency_ms - 42.0).abs() < 1e-9);
        match e.endpoint {
            Some(Text::Span(a, b)) => assert_eq!(&LINE[a..b], "/api/items"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsplittable_requests_have_no_endpoint() {
        let l = r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "\x16\x03\x01" 400 150 "-" "-" 0.001"#;
        let e = scan(l.as_bytes()).unwrap();
        assert!(e.endpoint.is_none());
        assert_eq!(e.status, 400);
    }

    #[test]
    fn escaped_quotes_and_trailing_fields() {
        let l = r#"1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 502 - "-" "agent \"x\" y" 1.5 0.9"#;
        let e = scan(l.as_bytes()).unwrap();
        assert_eq!(e.status, 502);
        assert_eq!(e.latency_ms, 1500.0);
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let no_rt = LINE.rsplit_once(' ').unwrap().0;
        assert_eq!(
            scan(no_rt.as_bytes()).unwrap_err(),
            LineError::Combined("no $request_time after the user agent")
        );
        let bad_status = LINE.replace(" 200 ", " 2x0 ");
        assert!(scan(bad_status.as_bytes()).is_err());
        assert!(scan(b"hello world").is_err());
    }
}
