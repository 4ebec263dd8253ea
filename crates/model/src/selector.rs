//! Label selectors in Prometheus syntax: `{service_name="checkout",
//! pod=~"web-.*", env!="dev"}`. A selector may also be just a profile type
//! id before the braces, as Pyroscope writes them:
//! `process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="x"}`.

use regex::Regex;

use crate::series::PROFILE_TYPE_LABEL;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    NotEq,
    Regex,
    NotRegex,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// Anchored, for the regex ops.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, SelectorError> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$")).map_err(|e| SelectorError {
                    position: 0,
                    message: format!("bad regular expression for {name}: {e}"),
                })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value: value.into(),
            regex,
        })
    }

    /// Whether a label value (absent counts as "") matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::NotEq => v != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

/// A parsed selector: all matchers must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub matchers: Vec<Matcher>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector at character {position}: {message}")]
pub struct SelectorError {
    pub position: usize,
    pub message: String,
}

impl Selector {
    pub fn all() -> Selector {
        Selector::default()
    }

    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        self.matchers.iter().all(|m| {
            let v = labels
                .binary_search_by(|(k, _)| k.as_str().cmp(&m.name))
                .ok()
                .map(|i| labels[i].1.as_str());
            m.matches(v)
        })
    }

    /// The profile type the selector fixes with an equality matcher.
    pub fn profile_type(&self) -> Option<&str> {
        self.matchers
            .iter()
            .find(|m| m.name == PROFILE_TYPE_LABEL && m.op == MatchOp::Eq)
            .map(|m| m.value.as_str())
    }

    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let mut matchers = Vec::new();
        p.skip_ws();
        // An optional profile type (or metric-like name) before the braces.
        let start = p.i;
        while p.i < p.s.len() && p.s[p.i] != b'{' && !p.s[p.i].is_ascii_whitespace() {
            p.i += 1;
        }
        if p.i > start {
            let name = std::str::from_utf8(&p.s[start..p.i]).unwrap_or("");
            matchers.push(Matcher::new(PROFILE_TYPE_LABEL, MatchOp::Eq, name)?);
        }
        p.skip_ws();
        if p.i == p.s.len() {
            return Ok(Selector { matchers });
        }
        p.expect(b'{')?;
        loop {
            p.skip_ws();
            if p.peek() == Some(b'}') {
                p.i += 1;
                break;
            }
            let name = p.ident()?;
            p.skip_ws();
            let op = p.op()?;
            p.skip_ws();
            let value = p.string()?;
            matchers.push(Matcher::new(&name, op, &value).map_err(|mut e| {
                e.position = p.i;
                e
            })?);
            p.skip_ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b'}') => {
                    p.i += 1;
                    break;
                }
                _ => return Err(p.error("expected ',' or '}'")),
            }
        }
        p.skip_ws();
        if p.i != p.s.len() {
            return Err(p.error("unexpected text after '}'"));
        }
        Ok(Selector { matchers })
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> SelectorError {
        SelectorError {
            position: self.i + 1,
            message: message.into(),
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), SelectorError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", c as char)))
        }
    }
    fn ident(&mut self) -> Result<String, SelectorError> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        {
            self.i += 1;
        }
        if self.i == start || self.s[start].is_ascii_digit() {
            return Err(self.error("expected a label name"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn op(&mut self) -> Result<MatchOp, SelectorError> {
        let rest = &self.s[self.i..];
        let (op, len) = if rest.starts_with(b"=~") {
            (MatchOp::Regex, 2)
        } else if rest.starts_with(b"!~") {
            (MatchOp::NotRegex, 2)
        } else if rest.starts_with(b"!=") {
            (MatchOp::NotEq, 2)
        } else if rest.starts_with(b"=") {
            (MatchOp::Eq, 1)
        } else {
            return Err(self.error("expected one of = != =~ !~"));
        };
        self.i += len;
        Ok(op)
    }
    fn string(&mut self) -> Result<String, SelectorError> {
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'' | b'`')) => q,
            _ => return Err(self.error("expected a quoted value")),
        };
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(c) if c == quote => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') if quote != b'`' => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'n') => out.push(b'\n'),
                        Some(b't') => out.push(b'\t'),
                        Some(c) => out.push(c),
                        None => return Err(self.error("unterminated string")),
                    }
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| self.error("value is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn parses_and_matches() {
        let s = Selector::parse(
            r#"{service_name="checkout", pod=~"web-.*", env!="dev", zone!~"eu-.*"}"#,
        )
        .unwrap();
        assert_eq!(s.matchers.len(), 4);
        assert!(s.matches(&labels(&[
            ("service_name", "checkout"),
            ("pod", "web-1"),
            ("zone", "us-1")
        ])));
        assert!(!s.matches(&labels(&[("service_name", "checkout"), ("pod", "api-1")])));
        assert!(!s.matches(&labels(&[
            ("service_name", "checkout"),
            ("pod", "web-1"),
            ("env", "dev")
        ])));
        // Regexes are anchored.
        assert!(!s.matches(&labels(&[("service_name", "checkout"), ("pod", "xweb-1")])));
    }

    #[test]
    fn profile_type_prefix_and_empty() {
        let s = Selector::parse("process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name=\"a\"}")
            .unwrap();
        assert_eq!(
            s.profile_type(),
            Some("process_cpu:cpu:nanoseconds:cpu:nanoseconds")
        );
        assert!(Selector::parse("{}").unwrap().matchers.is_empty());
        assert!(Selector::parse("").unwrap().matchers.is_empty());
    }

    #[test]
    fn errors_say_where() {
        let e = Selector::parse(r#"{service_name="a" pod="b"}"#).unwrap_err();
        assert_eq!(e.position, 19);
        assert!(e.message.contains("','"));
        assert!(Selector::parse(r#"{a="b}"#)
            .unwrap_err()
            .message
            .contains("unterminated"));
        assert!(Selector::parse(r#"{a=~"("}"#)
            .unwrap_err()
            .message
            .contains("regular expression"));
        assert!(Selector::parse(r#"{a<"b"}"#).is_err());
        assert!(Selector::parse(r#"{a="b"} x"#).is_err());
    }
}
