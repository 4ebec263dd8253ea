//! Names and types: every error at once, each at the column of the part
//! that is wrong.

use super::parser::{BinOp, Expr, ExprKind};
use super::{ConditionError, Scope, Type, FUNCTIONS};
use crate::diag::suggest;

/// A type during checking: what names have, plus what only appears inside
/// expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Number,
    Bool,
    Str,
    /// `alert("X")` before its `.firing`.
    Alert,
}

pub(super) fn check(source: &str, expr: &Expr, scope: &Scope) -> Vec<ConditionError> {
    let mut c = Checker {
        chars: source.chars().collect(),
        scope,
        errors: Vec::new(),
    };
    if let Some(t) = c.ty(expr) {
        c.expect_bool(expr, t);
    }
    c.errors
}

struct Checker<'a> {
    chars: Vec<char>,
    scope: &'a Scope,
    errors: Vec<ConditionError>,
}

impl Checker<'_> {
    fn text(&self, e: &Expr) -> String {
        self.chars[e.start..e.end.min(self.chars.len())]
            .iter()
            .collect()
    }

    fn err(&mut self, at: usize, message: String, hint: Option<String>) {
        self.errors.push(ConditionError::new(at, message, hint));
    }

    /// The type of `e`, or `None` once an error inside it is reported (so
    /// one mistake is not reported again by every operator above it).
    fn ty(&mut self, e: &Expr) -> Option<T> {
        match &e.kind {
            ExprKind::Number(_) => Some(T::Number),
            ExprKind::Bool(_) => Some(T::Bool),
            ExprKind::Str(_) => Some(T::Str),
            ExprKind::Path(p) => self.path(e, p),
            ExprKind::Call { name, args } => self.call(e, name, args),
            ExprKind::Member {
                target,
                field,
                field_start,
            } => {
                let t = self.ty(target)?;
                if t == T::Alert && field == "firing" {
                    return Some(T::Bool);
                }
                let what = self.text(target);
                let hint = if t == T::Alert {
                    Some("known: firing".into())
                } else {
                    Some("only alert(...) has fields: alert(\"Name\").firing".into())
                };
                self.err(
                    *field_start,
                    format!("`{what}` has no field `{field}`"),
                    hint,
                );
                None
            }
            ExprKind::Neg(inner) => {
                let t = self.ty(inner)?;
                self.expect_number(inner, t, "-").then_some(T::Number)
            }
            ExprKind::Not(inner) => {
                let t = self.ty(inner)?;
                self.expect_bool(inner, t).then_some(T::Bool)
            }
            ExprKind::Binary {
                op,
                op_start,
                lhs,
                rhs,
            } => {
                let (l, r) = (self.ty(lhs), self.ty(rhs));
                self.binary(*op, *op_start, lhs, l, rhs, r)
            }
        }
    }

    /// Each side is checked even when the other already failed, so every
    /// mistake is reported once.
    fn binary(
        &mut self,
        op: BinOp,
        op_start: usize,
        lhs: &Expr,
        l: Option<T>,
        rhs: &Expr,
        r: Option<T>,
    ) -> Option<T> {
        let side = |c: &mut Self, e: &Expr, t: Option<T>| -> bool {
            let Some(t) = t else { return false };
            match op {
                BinOp::And | BinOp::Or => c.expect_bool(e, t),
                BinOp::Eq | BinOp::Ne => c.expect_value(e, t),
                _ => c.expect_number(e, t, op.symbol()),
            }
        };
        let ok = side(self, lhs, l) & side(self, rhs, r);
        let (l, r) = (l?, r?);
        if !ok {
            return None;
        }
        match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => Some(T::Number),
            BinOp::Eq | BinOp::Ne if l != r => {
                self.err(
                    op_start,
                    format!(
                        "`{}` compares {} with {}",
                        op.symbol(),
                        describe(l),
                        describe(r)
                    ),
                    Some("both sides must be numbers, or both true/false".into()),
                );
                None
            }
            _ => Some(T::Bool),
        }
    }

    /// Strings and bare `alert(...)` are not values of their own.
    fn expect_value(&mut self, e: &Expr, t: T) -> bool {
        match t {
            T::Number | T::Bool => true,
            T::Str => {
                self.err(
                    e.start,
                    "a string can only be a function argument".into(),
                    Some("like alert(\"CheckoutHighLatency\")".into()),
                );
                false
            }
            T::Alert => {
                let what = self.text(e);
                self.err(
                    e.end,
                    format!("`{what}` needs a field"),
                    Some(format!("write `{what}.firing`")),
                );
                false
            }
        }
    }

    fn expect_bool(&mut self, e: &Expr, t: T) -> bool {
        if !self.expect_value(e, t) {
            return false;
        }
        if t == T::Number {
            let what = self.text(e);
            self.err(
                e.end,
                format!("expected a comparison after `{what}`"),
                Some(format!(
                    "`{what}` is a number, and a condition is true or false: e.g. `{what} > 0.5`"
                )),
            );
            return false;
        }
        true
    }

    fn expect_number(&mut self, e: &Expr, t: T, op: &str) -> bool {
        if !self.expect_value(e, t) {
            return false;
        }
        if t == T::Bool {
            let what = self.text(e);
            self.err(
                e.start,
                format!("`{op}` needs numbers, and `{what}` is true or false"),
                None,
            );
            return false;
        }
        true
    }

    fn path(&mut self, e: &Expr, p: &str) -> Option<T> {
        if let Some(t) = self.scope.get(p) {
            return Some(match t {
                Type::Number => T::Number,
                Type::Bool => T::Bool,
            });
        }
        let (message, hint) = if FUNCTIONS.contains(&p) {
            (
                format!("`{p}` is a function"),
                Some(format!("call it: {p}(\"...\")")),
            )
        } else if let Some(rest) = p.strip_prefix("baseline.") {
            let known: Vec<&str> = self
                .scope
                .names()
                .filter(|n| n.starts_with("baseline."))
                .collect();
            let hint = match suggest(p, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known: {}", known.join(", ")),
            };
            (format!("no baseline for `{rest}`"), Some(hint))
        } else if let Some((head, _)) = p.split_once('.') {
            if self.scope.get(head).is_some() {
                (
                    format!("`{head}` has no fields"),
                    Some(format!("use `{head}` alone")),
                )
            } else {
                self.unknown(head)
            }
        } else {
            self.unknown(p)
        };
        self.err(e.start, message, hint);
        None
    }

    fn unknown(&self, name: &str) -> (String, Option<String>) {
        let known: Vec<&str> = self
            .scope
            .names()
            .filter(|n| !n.starts_with("baseline."))
            .collect();
        let hint = match suggest(name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if known.is_empty() => "no signals are defined".to_string(),
            None => format!("known: {}", known.join(", ")),
        };
        (format!("unknown signal `{name}`"), Some(hint))
    }

    fn call(&mut self, e: &Expr, name: &str, args: &[Expr]) -> Option<T> {
        if !FUNCTIONS.contains(&name) {
            let hint = match suggest(name, FUNCTIONS) {
                Some(s) => format!("did you mean `{s}`? known: {}", FUNCTIONS.join(", ")),
                None => format!("known: {}", FUNCTIONS.join(", ")),
            };
            self.err(e.start, format!("unknown function {name}"), Some(hint));
            return None;
        }
        let what = if name == "alert" {
            "the alert's name: alert(\"CheckoutHighLatency\")"
        } else {
            "the function's name: hotspot(\"encrypt_data\")"
        };
        match args {
            [Expr {
                kind: ExprKind::Str(s),
                ..
            }] if !s.is_empty() => {}
            [arg] => {
                self.err(
                    arg.start,
                    format!("{name} takes a non-empty quoted string"),
                    Some(format!("{name}'s argument is {what}")),
                );
                return None;
            }
            _ => {
                self.err(
                    e.start,
                    format!("{name} takes one argument, found {}", args.len()),
                    Some(format!("{name}'s argument is {what}")),
                );
                return None;
            }
        }
        Some(if name == "alert" { T::Alert } else { T::Number })
    }
}

fn describe(t: T) -> &'static str {
    match t {
        T::Number => "a number",
        T::Bool => "true/false",
        T::Str => "a string",
        T::Alert => "an alert",
    }
}
