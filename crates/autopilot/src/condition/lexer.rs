//! Characters into tokens. Positions are character offsets, so errors
//! point at the right column whatever the encoding.

use super::ConditionError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(f64),
    /// `30%`, already divided by 100.
    Percent(f64),
    /// `3m`, `1h30m`, `500ms`, in seconds.
    Duration(f64),
    Str(String),
    Ident(String),
    Dot,
    Comma,
    LParen,
    RParen,
    Plus,
    Minus,
    Star,
    Slash,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// `[start, end)` in characters.
    pub start: usize,
    pub end: usize,
}

pub(crate) fn lex(src: &[char]) -> Result<Vec<Token>, ConditionError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = |second: char| src.get(i + 1) == Some(&second);
        let (tok, len) = match c {
            '.' if src.get(i + 1).is_some_and(char::is_ascii_digit) => {
                return Err(ConditionError::new(
                    start,
                    "a number must start with a digit",
                    Some("write 0.5, not .5".into()),
                ))
            }
            '.' => (Tok::Dot, 1),
            ',' => (Tok::Comma, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '*' => (Tok::Star, 1),
            '/' => (Tok::Slash, 1),
            '<' if two('=') => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if two('=') => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '=' if two('=') => (Tok::Eq, 2),
            '!' if two('=') => (Tok::Ne, 2),
            '=' => return Err(hint(start, "`=` alone", "compare with `==`")),
            '!' => return Err(hint(start, "`!`", "negate with `not`")),
            '&' => return Err(hint(start, "`&`", "combine with `and`")),
            '|' => return Err(hint(start, "`|`", "combine with `or`")),
            '"' | '\'' => {
                let (s, end) = string(src, i)?;
                out.push(Token {
                    tok: Tok::Str(s),
                    start,
                    end,
                });
                i = end;
                continue;
            }
            c if c.is_ascii_digit() => {
                let (tok, end) = number(src, i)?;
                out.push(Token { tok, start, end });
                i = end;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let end = scan(src, i, |c| c.is_ascii_alphanumeric() || c == '_');
                out.push(Token {
                    tok: Tok::Ident(src[i..end].iter().collect()),
                    start,
                    end,
                });
                i = end;
                continue;
            }
            other => {
                return Err(ConditionError::new(
                    start,
                    format!("unexpected character `{other}`"),
                    None,
                ))
            }
        };
        out.push(Token {
            tok,
            start,
            end: start + len,
        });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

fn hint(at: usize, what: &str, fix: &str) -> ConditionError {
    ConditionError::new(at, format!("{what} is not an operator"), Some(fix.into()))
}

fn scan(src: &[char], from: usize, pred: impl Fn(char) -> bool) -> usize {
    from + src[from..].iter().take_while(|c| pred(**c)).count()
}

/// A number, a percentage or a duration: digits with an optional
/// fraction, then `%`, or unit letters (repeated, as in `1h30m`).
fn number(src: &[char], from: usize) -> Result<(Tok, usize), ConditionError> {
    let mut end = scan(src, from, |c| c.is_ascii_digit());
    if src.get(end) == Some(&'.') && src.get(end + 1).is_some_and(char::is_ascii_digit) {
        end = scan(src, end + 1, |c| c.is_ascii_digit());
    }
    let digits: String = src[from..end].iter().collect();
    let value: f64 = digits
        .parse()
        .map_err(|_| ConditionError::new(from, format!("`{digits}` is not a number"), None))?;
    if src.get(end) == Some(&'%') {
        return Ok((Tok::Percent(value / 100.0), end + 1));
    }
    if !src.get(end).is_some_and(|c| c.is_ascii_alphabetic()) {
        return Ok((Tok::Number(value), end));
    }
    // A duration: alternating unit letters and numbers, `1h30m`.
    while src
        .get(end)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
    {
        end += 1;
    }
    let text: String = src[from..end].iter().collect();
    match crate::duration::parse(&text) {
        Ok(d) => Ok((Tok::Duration(d.as_secs_f64()), end)),
        Err(why) => Err(ConditionError::new(
            from,
            format!("`{text}` is not a duration ({why})"),
            Some("durations look like 500ms, 10s, 3m, 1h30m".into()),
        )),
    }
}

/// A quoted string; `\` escapes the quote, itself, `n` and `t`.
fn string(src: &[char], from: usize) -> Result<(String, usize), ConditionError> {
    let quote = src[from];
    let mut out = String::new();
    let mut i = from + 1;
    while let Some(&c) = src.get(i) {
        match c {
            '\\' => {
                let escaped = match src.get(i + 1) {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some(&c @ ('\\' | '"' | '\'')) => c,
                    Some(&other) => {
                        return Err(ConditionError::new(
                            i,
                            format!("unknown escape `\\{other}` in a string"),
                            None,
                        ))
                    }
                    None => break,
                };
                out.push(escaped);
                i += 2;
            }
            c if c == quote => return Ok((out, i + 1)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(ConditionError::new(
        from,
        "unterminated string",
        Some(format!("close it with {quote}")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let chars: Vec<char> = s.chars().collect();
        lex(&chars).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn literals() {
        assert_eq!(
            toks("1.3 30% 3m 1h30m 500ms \"a\\\"b\" 'c'"),
            vec![
                Tok::Number(1.3),
                Tok::Percent(0.3),
                Tok::Duration(180.0),
                Tok::Duration(5400.0),
                Tok::Duration(0.5),
                Tok::Str("a\"b".into()),
                Tok::Str("c".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn operators_and_names() {
        assert_eq!(
            toks("baseline.p99<=x!=y"),
            vec![
                Tok::Ident("baseline".into()),
                Tok::Dot,
                Tok::Ident("p99".into()),
                Tok::Le,
                Tok::Ident("x".into()),
                Tok::Ne,
                Tok::Ident("y".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors_have_offsets() {
        let err = |s: &str| lex(&s.chars().collect::<Vec<_>>()).unwrap_err();
        assert_eq!(err("a = 1").offset, 2);
        assert!(err("a && b").hint.unwrap().contains("and"));
        assert_eq!(err("x > 3q").offset, 4);
        assert_eq!(err("alert(\"X").offset, 6);
        // Offsets count characters, not bytes.
        assert_eq!(err("\"é\" = 1").offset, 4);
    }
}
