//! A scanner for one flat JSON object per line that decodes only the
//! configured fields and skips the rest without building values.
//!
//! serde_json into a `Value` allocates every key and value of the line;
//! into a derived struct it still cannot take field names at run time. The
//! featurize benchmark measures this scanner against both on the same
//! lines. It still checks the JSON's structure (strings, nesting, commas,
//! nothing after the object), so broken lines are refused, not misread.

use super::time::{epoch_to_ms, parse_rfc3339};
use super::{JsonFields, LineError, RawEvent, Text};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Ts,
    Latency,
    Status,
    Endpoint,
    Service,
    Other,
}

#[derive(Debug)]
pub(crate) struct JsonScanner {
    names: [String; 5],
    latency_scale: f64,
    /// Decoded strings that had escapes in them.
    key: String,
    endpoint: String,
    service: String,
    value: String,
}

type Res<T> = Result<T, LineError>;

const E_EOL: LineError = LineError::Json("line ends inside the object");

impl JsonScanner {
    pub(crate) fn new(f: &JsonFields) -> JsonScanner {
        JsonScanner {
            names: [
                f.ts.clone(),
                f.latency.clone(),
                f.status.clone(),
                f.endpoint.clone(),
                f.service.clone(),
            ],
            latency_scale: f.latency_unit.to_ms(),
            key: String::new(),
            endpoint: String::new(),
            service: String::new(),
            value: String::new(),
        }
    }

    pub(crate) fn scratch_endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn scratch_service(&self) -> &str {
        &self.service
    }

    #[inline]
    fn field(&self, key: &[u8]) -> Field {
        static FIELDS: [Field; 5] = [
            Field::Ts,
            Field::Latency,
            Field::Status,
            Field::Endpoint,
            Field::Service,
        ];
        // Most keys of a log line are none of ours: length and first byte
        // turn them away before any comparison of bytes. (An index loop: a
        // zip over the array made the compiler copy it through the stack
        // on every call, a store-forwarding stall that showed in profiles.)
        let first = key.first().copied();
        for (i, name) in self.names.iter().enumerate() {
            let n = name.as_bytes();
            if n.len() == key.len() && n.first().copied() == first && n == key {
                return FIELDS[i];
            }
        }
        Field::Other
    }

    pub(crate) fn scan(&mut self, s: &[u8]) -> Res<RawEvent> {
        let mut i = ws(s, 0);
        if s.get(i) != Some(&b'{') {
            return Err(LineError::Json("not an object"));
        }
        i = ws(s, i + 1);
        let mut ts = None;
        let mut latency = None;
        let mut status = None;
        let mut endpoint: Option<Text> = None;
        let mut service: Option<Text> = None;
        if s.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                if s.get(i) != Some(&b'"') {
                    return Err(LineError::Json("expected a quoted key"));
                }
                let (end, escaped) = string_end(s, i + 1)?;
                let field = if escaped {
                    decode(&s[i + 1..end], &mut self.key)?;
                    self.field(self.key.as_bytes())
                } else {
                    self.field(&s[i + 1..end])
                };
                i = ws(s, end + 1);
                if s.get(i) != Some(&b':') {
                    return Err(LineError::Json("expected ':' after a key"));
                }
                i = ws(s, i + 1);
                if i >= s.len() {
                    return Err(E_EOL);
                }
                i = match field {
                    Field::Ts => {
                        let (v, next) = self.timestamp(s, i)?;
                        ts = Some(v);
                        next
                    }
                    Field::Latency => {
                        let (v, next) = self.number(s, i, 1)?;
                        if v < 0.0 {
                            return Err(self.bad(1, "negative latency"));
                        }
                        latency = Some(v * self.latency_scale);
                        next
                    }
                    Field::Status => {
                        let (v, next) = self.number(s, i, 2)?;
                        if !(v.fract() == 0.0 && (100.0..=999.0).contains(&v)) {
                            return Err(self.bad(2, "not an HTTP status code (100-999)"));
                        }
                        status = Some(v as u16);
                        next
                    }
                    Field::Endpoint => {
                        let (t, next) = self.string(s, i, 3)?;
                        endpoint = Some(t);
                        next
                    }
                    Field::Service => {
                        let (t, next) = self.string(s, i, 4)?;
                        service = Some(t);
                        next
                    }
                    Field::Other => skip_value(s, i)?,
                };
                i = ws(s, i);
                match s.get(i) {
                    Some(b',') => i = ws(s, i + 1),
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    Some(_) => return Err(LineError::Json("expected ',' or '}' after a value")),
                    None => return Err(E_EOL),
                }
            }
        }
        if ws(s, i) != s.len() {
            return Err(LineError::Json("text after the object"));
        }
        let endpoint = endpoint.ok_or_else(|| self.missing(3))?;
        Ok(RawEvent {
            ts_ms: ts.ok_or_else(|| self.missing(0))?,
            latency_ms: latency.ok_or_else(|| self.missing(1))?,
            status: status.ok_or_else(|| self.missing(2))?,
            endpoint: Some(self.strip_query(s, endpoint)),
            service,
        })
    }

    fn missing(&self, idx: usize) -> LineError {
        LineError::MissingField(self.names[idx].clone())
    }

    fn bad(&self, idx: usize, reason: &'static str) -> LineError {
        LineError::BadField {
            field: self.names[idx].clone(),
            reason,
        }
    }

    /// The endpoint without a query string, like the combined format's.
    fn strip_query(&mut self, s: &[u8], t: Text) -> Text {
        match t {
            Text::Span(a, b) => {
                let (a, b) = super::path_of(&s[..b], a);
                Text::Span(a, b)
            }
            Text::Scratch => {
                let (a, b) = super::path_of(self.endpoint.as_bytes(), 0);
                if (a, b) != (0, self.endpoint.len()) {
                    // Both ends fall on ASCII bytes, so char boundaries.
                    self.endpoint = self.endpoint[a..b].to_string();
                }
                Text::Scratch
            }
        }
    }

    /// A string value of field `idx` (3 = endpoint, 4 = service).
    fn string(&mut self, s: &[u8], i: usize, idx: usize) -> Res<(Text, usize)> {
        if s.get(i) != Some(&b'"') {
            return Err(self.bad(idx, "not a string"));
        }
        let (end, escaped) = string_end(s, i + 1)?;
        if escaped {
            let buf = if idx == 3 {
                &mut self.endpoint
            } else {
                &mut self.service
            };
            decode(&s[i + 1..end], buf)?;
            Ok((Text::Scratch, end + 1))
        } else {
            Ok((Text::Span(i + 1, end), end + 1))
        }
    }

    /// A number, or a string holding one, of field `idx`.
    fn number(&mut self, s: &[u8], i: usize, idx: usize) -> Res<(f64, usize)> {
        let (text, next): (&[u8], usize) = if s.get(i) == Some(&b'"') {
            let (end, escaped) = string_end(s, i + 1)?;
            if escaped {
                return Err(self.bad(idx, "not a number"));
            }
            (&s[i + 1..end], end + 1)
        } else {
            let end = token_end(s, i);
            (&s[i..end], end)
        };
        match parse_number(text) {
            Some(v) => Ok((v, next)),
            None => Err(self.bad(idx, "not a number")),
        }
    }

    fn timestamp(&mut self, s: &[u8], i: usize) -> Res<(i64, usize)> {
        if s.get(i) == Some(&b'"') {
            let (end, escaped) = string_end(s, i + 1)?;
            let text: &[u8] = if escaped {
                decode(&s[i + 1..end], &mut self.value)?;
                self.value.as_bytes()
            } else {
                &s[i + 1..end]
            };
            let ms = parse_rfc3339(text).or_else(|| parse_number(text).and_then(epoch_to_ms));
            match ms {
                Some(ms) => Ok((ms, end + 1)),
                None => Err(self.bad(0, "not an RFC 3339 time or epoch seconds")),
            }
        } else {
            let end = token_end(s, i);
            match parse_number(&s[i..end]).and_then(epoch_to_ms) {
                Some(ms) => Ok((ms, end)),
                None => Err(self.bad(0, "not an RFC 3339 time or epoch seconds")),
            }
        }
    }
}

#[inline]
fn ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// End of a bare token (number or literal).
#[inline]
fn token_end(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && !matches!(s[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// A finite JSON number (also accepted inside a string for numeric
/// fields). Rust's float parser accepts more than JSON ("inf", "+1",
/// ".5"), so the first byte is checked.
#[inline]
pub(crate) fn parse_number(t: &[u8]) -> Option<f64> {
    match t.first() {
        Some(b'-' | b'0'..=b'9') => {}
        _ => return None,
    }
    if let Some(v) = short_decimal(t) {
        return Some(v);
    }
    let v: f64 = std::str::from_utf8(t).ok()?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// `[-]digits[.digits]` with at most 15 digits, the shape of nearly every
/// latency and status in a log: the digits as an integer are exact in a
/// double, and so is the power of ten, so one division is correctly
/// rounded, and it costs a fraction of the general float parser.
#[inline]
fn short_decimal(t: &[u8]) -> Option<f64> {
    let (neg, t) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, t),
    };
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    let mut m = 0u64;
    let mut digits = 0;
    let mut frac: Option<usize> = None;
    for (i, &b) in t.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                m = m * 10 + (b - b'0') as u64;
                digits += 1;
            }
            b'.' if frac.is_none() && i > 0 && i + 1 < t.len() => frac = Some(t.len() - i - 1),
            _ => return None,
        }
    }
    if digits > 15 {
        return None;
    }
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let v = m as f64 / POW10[frac.unwrap_or(0)];
    Some(if neg { -v } else { v })
}

/// Index of the closing quote of a string whose content starts at `i`,
/// and whether it has escapes. Raw control characters, which strict JSON
/// refuses, are let through: looking for them would be a second pass over
/// every string for no gain in what is read. Non-ASCII bytes must be UTF-8
/// (checked by the caller for the spans it uses).
#[inline]
fn string_end(s: &[u8], mut i: usize) -> Res<(usize, bool)> {
    let mut escaped = false;
    loop {
        match memchr::memchr2(b'"', b'\\', &s[i.min(s.len())..]) {
            None => return Err(LineError::Json("unterminated string")),
            Some(p) => {
                let at = i + p;
                if s[at] == b'"' {
                    return Ok((at, escaped));
                }
                escaped = true;
                i = at + 2;
            }
        }
    }
}

/// Decodes a string's content (between quotes) with its escapes into `out`.
fn decode(raw: &[u8], out: &mut String) -> Res<()> {
    out.clear();
    let text = std::str::from_utf8(raw).map_err(|_| LineError::Json("string is not UTF-8"))?;
    let mut chars = text.char_indices();
    let bad = LineError::Json("bad escape in a string");
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let (_, e) = chars.next().ok_or(bad.clone())?;
        out.push(match e {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = hex4(&mut chars).ok_or(bad.clone())?;
                if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by \u and a low one.
                    let (_, a) = chars.next().ok_or(bad.clone())?;
                    let (_, b) = chars.next().ok_or(bad.clone())?;
                    let lo = hex4(&mut chars).ok_or(bad.clone())?;
                    if a != '\\' || b != 'u' || !(0xDC00..0xE000).contains(&lo) {
                        return Err(bad);
                    }
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        .ok_or(bad.clone())?
                } else {
                    char::from_u32(hi).ok_or(bad.clone())?
                }
            }
            _ => return Err(bad),
        });
    }
    Ok(())
}

fn hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.1.to_digit(16)?;
    }
    Some(v)
}

/// Skips any JSON value starting at `i`, returning the index after it.
fn skip_value(s: &[u8], i: usize) -> Res<usize> {
    match s.get(i) {
        None => Err(E_EOL),
        Some(b'"') => Ok(string_end(s, i + 1)?.0 + 1),
        Some(b'{' | b'[') => {
            // Nested values are only skipped: track depth and strings.
            let mut stack: Vec<u8> = Vec::new();
            let mut j = i;
            while j < s.len() {
                match s[j] {
                    b'"' => j = string_end(s, j + 1)?.0,
                    b'{' => stack.push(b'}'),
                    b'[' => stack.push(b']'),
                    c @ (b'}' | b']') => {
                        if stack.pop() != Some(c) {
                            return Err(LineError::Json("mismatched brackets"));
                        }
                        if stack.is_empty() {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(E_EOL)
        }
        Some(_) => {
            let end = token_end(s, i);
            let t = &s[i..end];
            let ok = matches!(t, b"true" | b"false" | b"null") || parse_number(t).is_some();
            if ok {
                Ok(end)
            } else {
                Err(LineError::Json("invalid value"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(line: &str) -> Res<RawEvent> {
        JsonScanner::new(&JsonFields::default()).scan(line.as_bytes())
    }

    #[test]
    fn reads_fields_and_skips_others() {
        let l = r#"{"a":[1,{"b":"}"}],"ts":"1970-01-01T00:00:01Z","latency_ms":12.5,"x":null,"status":503,"endpoint":"/p?q=1","service":"s"}"#;
        let e = scan(l).unwrap();
        assert_eq!(e.ts_ms, 1000);
        assert_eq!(e.latency_ms, 12.5);
        assert_eq!(e.status, 503);
        match e.endpoint {
            Some(Text::Span(a, b)) => assert_eq!(&l[a..b], "/p"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_broken_json() {
        for l in [
            r#"{"ts":1,"latency_ms":1,"status":200,"endpoint":"/"#,
            r#"{"ts":1,"latency_ms":1,"status":200,"endpoint":"/"} x"#,
            r#"{"ts":1 "latency_ms":1}"#,
            r#"{"ts":1,"latency_ms":1,"status":200,"endpoint":"/","o":{]}"#,
            r#"{"ts":1,"latency_ms":1,"status":200,"endpoint":"/","o":nope}"#,
            r#"["ts"]"#,
        ] {
            assert!(matches!(scan(l), Err(LineError::Json(_))), "{l}");
        }
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = scan(r#"{"ts":1,"latency_ms":"fast","status":200,"endpoint":"/"}"#).unwrap_err();
        assert_eq!(e.to_string(), "field \"latency_ms\": not a number");
        let e = scan(r#"{"ts":1,"latency_ms":1,"endpoint":"/"}"#).unwrap_err();
        assert_eq!(e.to_string(), "missing field \"status\"");
        let e = scan(r#"{"ts":1,"latency_ms":1,"status":42,"endpoint":"/"}"#).unwrap_err();
        assert!(e.to_string().contains("HTTP status"));
    }

    #[test]
    fn decodes_escapes() {
        let mut out = String::new();
        decode(br#"a\"b\\c\u00e9\ud83d\ude00\/"#, &mut out).unwrap();
        assert_eq!(out, "a\"b\\c\u{e9}\u{1F600}/");
        assert!(decode(br#"\ud83d"#, &mut out).is_err());
        assert!(decode(br#"\x"#, &mut out).is_err());
    }
}
