//! Tokens into an expression tree, by recursive descent. Precedence, lowest
//! first: `or`, `and`, `not`, comparisons (which do not chain), `+ -`,
//! `* /`, unary `-`, then calls, member access and dotted names.

use std::fmt;

use super::lexer::{Tok, Token};
use super::ConditionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Number(f64),
    Bool(bool),
    Str(String),
    /// A signal, built-in metric or baseline reference: `p99`,
    /// `baseline.p99`, `hot`.
    Path(String),
    Call {
        name: String,
        args: Vec<Expr>,
    },
    /// `alert("X").firing`: a field of a call's result.
    Member {
        target: Box<Expr>,
        field: String,
        field_start: usize,
    },
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary {
        op: BinOp,
        op_start: usize,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    /// `[start, end)` in characters of the condition.
    pub start: usize,
    pub end: usize,
}

/// Fully parenthesized, to show how an expression was grouped.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Number(n) => write!(f, "{n}"),
            ExprKind::Bool(b) => write!(f, "{b}"),
            ExprKind::Str(s) => write_string(f, s),
            ExprKind::Path(p) => f.write_str(p),
            ExprKind::Call { name, args } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            ExprKind::Member { target, field, .. } => write!(f, "{target}.{field}"),
            ExprKind::Neg(e) => write!(f, "(-{e})"),
            ExprKind::Not(e) => write!(f, "(not {e})"),
            ExprKind::Binary { op, lhs, rhs, .. } => {
                write!(f, "({lhs} {} {rhs})", op.symbol())
            }
        }
    }
}

/// A string literal with only the escapes the lexer reads (`{:?}` would
/// write `\0` or `\u{1}`, which it does not), so grouped text parses back.
fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// The whole condition: an expression and its optional `for DURATION`.
pub(crate) struct Parsed {
    pub expr: Expr,
    /// Seconds, with the offset of `for`.
    pub hold_for: Option<(f64, usize)>,
}

const KEYWORDS: [&str; 6] = ["and", "or", "not", "for", "true", "false"];

pub(crate) fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// Bounds the tree's depth (parentheses, `not not ...`, long operator
/// chains), so checking and evaluating it cannot exhaust the stack.
const MAX_TOKENS: usize = 512;
const MAX_NESTING: usize = 64;

pub(crate) fn parse(src: &[char], tokens: Vec<Token>) -> Result<Parsed, ConditionError> {
    if tokens.len() > MAX_TOKENS {
        return Err(ConditionError::new(
            tokens[MAX_TOKENS].start,
            format!("the condition is too long (more than {MAX_TOKENS} tokens)"),
            Some("move parts of it into signals or separate actions".into()),
        ));
    }
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
        depth: 0,
    };
    if p.peek().tok == Tok::Eof {
        return Err(ConditionError::new(0, "the condition is empty", None));
    }
    let expr = p.or()?;
    let mut hold_for = None;
    if p.is_ident("for") {
        let for_start = p.peek().start;
        p.pos += 1;
        let t = p.next();
        match t.tok {
            Tok::Duration(secs) => hold_for = Some((secs, for_start)),
            _ => {
                return Err(ConditionError::new(
                    t.start,
                    format!("expected a duration after `for`, found {}", p.describe(&t)),
                    Some("like `for 3m`".into()),
                ))
            }
        }
    }
    let t = p.peek().clone();
    if t.tok != Tok::Eof {
        let (message, hint) = if hold_for.is_some() {
            (
                format!("unexpected {} after the `for` duration", p.describe(&t)),
                Some("`for` applies to the whole condition and comes last".into()),
            )
        } else if t.tok == Tok::RParen {
            ("unmatched `)`".to_string(), None)
        } else {
            (
                format!(
                    "unexpected {} after `{}`",
                    p.describe(&t),
                    p.text(expr.start, expr.end)
                ),
                Some("expected `and`, `or`, an operator or `for`".into()),
            )
        };
        return Err(ConditionError::new(t.start, message, hint));
    }
    Ok(Parsed { expr, hold_for })
}

struct Parser<'a> {
    src: &'a [char],
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The lexer always ends the list with Eof, and nothing moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == word)
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.src[start..end.min(self.src.len())].iter().collect()
    }

    fn describe(&self, t: &Token) -> String {
        if t.tok == Tok::Eof {
            "the end of the condition".into()
        } else {
            format!("`{}`", self.text(t.start, t.end))
        }
    }

    fn binary(op: BinOp, op_start: usize, lhs: Expr, rhs: Expr) -> Expr {
        Expr {
            start: lhs.start,
            end: rhs.end,
            kind: ExprKind::Binary {
                op,
                op_start,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
        }
    }

    fn nested(
        &mut self,
        rule: fn(&mut Self) -> Result<Expr, ConditionError>,
    ) -> Result<Expr, ConditionError> {
        if self.depth >= MAX_NESTING {
            return Err(ConditionError::new(
                self.peek().start,
                format!("the condition nests more than {MAX_NESTING} levels deep"),
                None,
            ));
        }
        self.depth += 1;
        let e = rule(self);
        self.depth -= 1;
        e
    }

    fn or(&mut self) -> Result<Expr, ConditionError> {
        let mut lhs = self.and()?;
        while self.is_ident("or") {
            let at = self.next().start;
            let rhs = self.operand_after("or", Self::and)?;
            lhs = Self::binary(BinOp::Or, at, lhs, rhs);
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut lhs = self.not()?;
        while self.is_ident("and") {
            let at = self.next().start;
            let rhs = self.operand_after("and", Self::not)?;
            lhs = Self::binary(BinOp::And, at, lhs, rhs);
        }
        Ok(lhs)
    }

    fn not(&mut self) -> Result<Expr, ConditionError> {
        if self.is_ident("not") {
            let start = self.next().start;
            let e = self.operand_after("not", Self::not)?;
            return Ok(Expr {
                start,
                end: e.end,
                kind: ExprKind::Not(Box::new(e)),
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ConditionError> {
        let lhs = self.additive()?;
        let Some(op) = comparison_op(&self.peek().tok) else {
            return Ok(lhs);
        };
        let op_tok = self.next();
        let rhs = self.operand_after(op.symbol(), Self::additive)?;
        if let Some(op2) = comparison_op(&self.peek().tok) {
            let t = self.peek().clone();
            let b = self.text(rhs.start, rhs.end);
            return Err(ConditionError::new(
                t.start,
                format!(
                    "comparisons do not chain (`{}` after a comparison)",
                    op2.symbol()
                ),
                Some(format!(
                    "write `{} {} {b} and {b} {} ...`",
                    self.text(lhs.start, lhs.end),
                    op.symbol(),
                    op2.symbol()
                )),
            ));
        }
        Ok(Self::binary(op, op_tok.start, lhs, rhs))
    }

    fn additive(&mut self) -> Result<Expr, ConditionError> {
        let mut lhs = self.multiplicative()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            let at = self.next().start;
            let rhs = self.operand_after(op.symbol(), Self::multiplicative)?;
            lhs = Self::binary(op, at, lhs, rhs);
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ConditionError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Ok(lhs),
            };
            let at = self.next().start;
            let rhs = self.operand_after(op.symbol(), Self::unary)?;
            lhs = Self::binary(op, at, lhs, rhs);
        }
    }

    fn unary(&mut self) -> Result<Expr, ConditionError> {
        if self.peek().tok == Tok::Minus {
            let start = self.next().start;
            let e = self.operand_after("-", Self::unary)?;
            return Ok(Expr {
                start,
                end: e.end,
                kind: ExprKind::Neg(Box::new(e)),
            });
        }
        self.postfix()
    }

    /// The operand of an operator, with an error naming the operator when
    /// there is none.
    fn operand_after(
        &mut self,
        op: &str,
        rule: fn(&mut Self) -> Result<Expr, ConditionError>,
    ) -> Result<Expr, ConditionError> {
        let t = self.peek().clone();
        if starts_operand(&t.tok) {
            return self.nested(rule);
        }
        Err(ConditionError::new(
            t.start,
            format!("expected a value after `{op}`, found {}", self.describe(&t)),
            None,
        ))
    }

    fn postfix(&mut self) -> Result<Expr, ConditionError> {
        let mut e = self.primary()?;
        while self.peek().tok == Tok::Dot {
            self.next();
            let t = self.next();
            let Tok::Ident(field) = t.tok else {
                return Err(ConditionError::new(
                    t.start,
                    format!(
                        "expected a field name after `.`, found {}",
                        self.describe(&t)
                    ),
                    None,
                ));
            };
            e = match e.kind {
                // Dotted names stay one path: `baseline.p99`.
                ExprKind::Path(p) => Expr {
                    start: e.start,
                    end: t.end,
                    kind: ExprKind::Path(format!("{p}.{field}")),
                },
                kind => Expr {
                    start: e.start,
                    end: t.end,
                    kind: ExprKind::Member {
                        target: Box::new(Expr {
                            kind,
                            start: e.start,
                            end: e.end,
                        }),
                        field,
                        field_start: t.start,
                    },
                },
            };
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, ConditionError> {
        let t = self.next();
        let leaf = |kind| {
            Ok(Expr {
                kind,
                start: t.start,
                end: t.end,
            })
        };
        match &t.tok {
            Tok::Number(n) | Tok::Percent(n) | Tok::Duration(n) => leaf(ExprKind::Number(*n)),
            Tok::Str(s) => leaf(ExprKind::Str(s.clone())),
            Tok::Ident(w) if w == "true" => leaf(ExprKind::Bool(true)),
            Tok::Ident(w) if w == "false" => leaf(ExprKind::Bool(false)),
            Tok::Ident(w) if is_keyword(w) => Err(ConditionError::new(
                t.start,
                format!("expected a value, found the keyword `{w}`"),
                None,
            )),
            Tok::Ident(name) => {
                if self.peek().tok == Tok::LParen {
                    self.call(name.clone(), t.start)
                } else {
                    leaf(ExprKind::Path(name.clone()))
                }
            }
            Tok::LParen => {
                let inner = self.nested(Self::or)?;
                let close = self.next();
                if close.tok != Tok::RParen {
                    let hint = if matches!(&close.tok, Tok::Ident(w) if w == "for") {
                        Some("`for` applies to the whole condition and comes last".into())
                    } else {
                        None
                    };
                    return Err(ConditionError::new(
                        close.start,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            t.start + 1,
                            self.describe(&close)
                        ),
                        hint,
                    ));
                }
                Ok(Expr {
                    kind: inner.kind,
                    start: t.start,
                    end: close.end,
                })
            }
            _ => Err(ConditionError::new(
                t.start,
                format!(
                    "expected a value (a number, a name, a call or `(`), found {}",
                    self.describe(&t)
                ),
                None,
            )),
        }
    }

    fn call(&mut self, name: String, start: usize) -> Result<Expr, ConditionError> {
        self.next(); // (
        let mut args = Vec::new();
        if self.peek().tok != Tok::RParen {
            loop {
                args.push(self.nested(Self::or)?);
                if self.peek().tok == Tok::Comma {
                    self.next();
                    continue;
                }
                break;
            }
        }
        let close = self.next();
        if close.tok != Tok::RParen {
            return Err(ConditionError::new(
                close.start,
                format!(
                    "expected `)` to close the call of {name}, found {}",
                    self.describe(&close)
                ),
                None,
            ));
        }
        Ok(Expr {
            kind: ExprKind::Call { name, args },
            start,
            end: close.end,
        })
    }
}

fn comparison_op(t: &Tok) -> Option<BinOp> {
    Some(match t {
        Tok::Lt => BinOp::Lt,
        Tok::Le => BinOp::Le,
        Tok::Gt => BinOp::Gt,
        Tok::Ge => BinOp::Ge,
        Tok::Eq => BinOp::Eq,
        Tok::Ne => BinOp::Ne,
        _ => return None,
    })
}

fn starts_operand(t: &Tok) -> bool {
    match t {
        Tok::Number(_)
        | Tok::Percent(_)
        | Tok::Duration(_)
        | Tok::Str(_)
        | Tok::LParen
        | Tok::Minus => true,
        Tok::Ident(w) => !is_keyword(w) || w == "not" || w == "true" || w == "false",
        _ => false,
    }
}
