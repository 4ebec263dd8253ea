//! Evaluation against an environment, recording every value read.
//!
//! Logic is three-valued: missing data is unknown, `false and unknown` is
//! false, `true or unknown` is true, and anything else with an unknown is
//! unknown. Every operand is evaluated (no short-circuit) so the audit log
//! shows all the values a decision could have depended on.

use std::fmt;

use super::parser::{BinOp, Expr, ExprKind};
use super::ConditionError;

/// A value a name can have.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Where a condition's values come from. `None` is missing data.
pub trait Env {
    /// A signal, a built-in metric or a baseline, by the name written in
    /// the condition: `hot`, `p99`, `baseline.p99`.
    fn value(&self, name: &str) -> Option<Value>;
    /// Whether the alert of this name fires for the target.
    fn alert_firing(&self, name: &str) -> Option<bool>;
    /// The function's share of CPU in the target's profile, 0 to 1.
    fn hotspot(&self, function: &str) -> Option<f64>;
}

/// One value read during an evaluation: `p99`, `alert("X").firing`,
/// `hotspot("f")`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    pub name: String,
    pub value: Option<Value>,
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {v}", self.name),
            None => write!(f, "{} = (no data)", self.name),
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `None` when missing data left it undecided.
    pub result: Option<bool>,
    /// Every value read, once each, in order of first reading.
    pub readings: Vec<Reading>,
}

impl Evaluation {
    /// Whether the condition holds; unknown does not.
    pub fn holds(&self) -> bool {
        self.result == Some(true)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum V {
    Number(f64),
    Bool(bool),
    Str(String),
    Alert(String),
}

pub(super) fn evaluate(
    source: &str,
    expr: &Expr,
    env: &dyn Env,
) -> Result<Evaluation, ConditionError> {
    let mut ev = Evaluator {
        source,
        env,
        readings: Vec::new(),
    };
    let result = match ev.eval(expr)? {
        None => None,
        Some(V::Bool(b)) => Some(b),
        Some(_) => {
            return Err(ConditionError::new(
                expr.start,
                "the condition is not a test (true or false)",
                Some("check it with `perfpilot validate`".into()),
            ))
        }
    };
    Ok(Evaluation {
        result,
        readings: ev.readings,
    })
}

pub(super) fn collect_paths(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Path(p) => {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|a| collect_paths(a, out)),
        ExprKind::Member { target, .. } => collect_paths(target, out),
        ExprKind::Neg(x) | ExprKind::Not(x) => collect_paths(x, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            collect_paths(lhs, out);
            collect_paths(rhs, out);
        }
        ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Str(_) => {}
    }
}

pub(super) fn collect_calls(e: &Expr, out: &mut Vec<(String, String)>) {
    match &e.kind {
        ExprKind::Call { name, args } => {
            if let [Expr {
                kind: ExprKind::Str(arg),
                ..
            }] = args.as_slice()
            {
                let call = (name.clone(), arg.clone());
                if !out.contains(&call) {
                    out.push(call);
                }
            }
            args.iter().for_each(|a| collect_calls(a, out));
        }
        ExprKind::Member { target, .. } => collect_calls(target, out),
        ExprKind::Neg(x) | ExprKind::Not(x) => collect_calls(x, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            collect_calls(lhs, out);
            collect_calls(rhs, out);
        }
        ExprKind::Path(_) | ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Str(_) => {}
    }
}

struct Evaluator<'a> {
    /// Read only to quote an expression in an error.
    source: &'a str,
    env: &'a dyn Env,
    readings: Vec<Reading>,
}

impl Evaluator<'_> {
    fn read(&mut self, name: String, value: Option<Value>) {
        if !self.readings.iter().any(|r| r.name == name) {
            self.readings.push(Reading { name, value });
        }
    }

    fn type_error(&self, e: &Expr, expected: &str) -> ConditionError {
        // Offsets are in characters.
        let text: String = self
            .source
            .chars()
            .skip(e.start)
            .take(e.end.saturating_sub(e.start))
            .collect();
        ConditionError::new(e.start, format!("`{text}` is not {expected}"), None)
    }

    fn number(&mut self, e: &Expr) -> Result<Option<f64>, ConditionError> {
        match self.eval(e)? {
            None => Ok(None),
            Some(V::Number(n)) => Ok(Some(n)),
            Some(_) => Err(self.type_error(e, "a number")),
        }
    }

    fn boolean(&mut self, e: &Expr) -> Result<Option<bool>, ConditionError> {
        match self.eval(e)? {
            None => Ok(None),
            Some(V::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(self.type_error(e, "true or false")),
        }
    }

    fn eval(&mut self, e: &Expr) -> Result<Option<V>, ConditionError> {
        Ok(match &e.kind {
            ExprKind::Number(n) => Some(V::Number(*n)),
            ExprKind::Bool(b) => Some(V::Bool(*b)),
            ExprKind::Str(s) => Some(V::Str(s.clone())),
            ExprKind::Path(p) => {
                let v = self.env.value(p);
                self.read(p.clone(), v);
                match v {
                    // NaN or infinity from a source is no usable data.
                    Some(Value::Number(n)) if n.is_finite() => Some(V::Number(n)),
                    Some(Value::Number(_)) | None => None,
                    Some(Value::Bool(b)) => Some(V::Bool(b)),
                }
            }
            ExprKind::Call { name, args } => {
                let arg = match args.as_slice() {
                    [a] => match self.eval(a)? {
                        Some(V::Str(s)) => s,
                        _ => return Err(self.type_error(a, "a string")),
                    },
                    _ => {
                        return Err(ConditionError::new(
                            e.start,
                            format!("{name} takes one argument"),
                            None,
                        ))
                    }
                };
                match name.as_str() {
                    "alert" => Some(V::Alert(arg)),
                    "hotspot" => {
                        let v = self.env.hotspot(&arg).filter(|x| x.is_finite());
                        self.read(format!("hotspot({arg:?})"), v.map(Value::Number));
                        v.map(V::Number)
                    }
                    _ => {
                        return Err(ConditionError::new(
                            e.start,
                            format!("unknown function {name}"),
                            None,
                        ))
                    }
                }
            }
            ExprKind::Member { target, field, .. } => match (self.eval(target)?, field.as_str()) {
                (Some(V::Alert(name)), "firing") => {
                    let v = self.env.alert_firing(&name);
                    self.read(format!("alert({name:?}).firing"), v.map(Value::Bool));
                    v.map(V::Bool)
                }
                _ => return Err(self.type_error(e, "a known field")),
            },
            ExprKind::Neg(x) => self.number(x)?.map(|n| V::Number(-n)),
            ExprKind::Not(x) => self.boolean(x)?.map(|b| V::Bool(!b)),
            ExprKind::Binary { op, lhs, rhs, .. } => self.binary(*op, lhs, rhs)?,
        })
    }

    fn binary(&mut self, op: BinOp, lhs: &Expr, rhs: &Expr) -> Result<Option<V>, ConditionError> {
        Ok(match op {
            BinOp::And => {
                let (l, r) = (self.boolean(lhs)?, self.boolean(rhs)?);
                match (l, r) {
                    (Some(false), _) | (_, Some(false)) => Some(V::Bool(false)),
                    (Some(true), Some(true)) => Some(V::Bool(true)),
                    _ => None,
                }
            }
            BinOp::Or => {
                let (l, r) = (self.boolean(lhs)?, self.boolean(rhs)?);
                match (l, r) {
                    (Some(true), _) | (_, Some(true)) => Some(V::Bool(true)),
                    (Some(false), Some(false)) => Some(V::Bool(false)),
                    _ => None,
                }
            }
            BinOp::Eq | BinOp::Ne => {
                let (l, r) = (self.eval(lhs)?, self.eval(rhs)?);
                let equal = match (&l, &r) {
                    (None, _) | (_, None) => return Ok(None),
                    (Some(V::Number(a)), Some(V::Number(b))) => a == b,
                    (Some(V::Bool(a)), Some(V::Bool(b))) => a == b,
                    _ => return Err(self.type_error(rhs, "of the same type as the left side")),
                };
                Some(V::Bool(equal == (op == BinOp::Eq)))
            }
            _ => {
                let (l, r) = (self.number(lhs)?, self.number(rhs)?);
                let (Some(a), Some(b)) = (l, r) else {
                    return Ok(None);
                };
                match op {
                    BinOp::Lt => Some(V::Bool(a < b)),
                    BinOp::Le => Some(V::Bool(a <= b)),
                    BinOp::Gt => Some(V::Bool(a > b)),
                    BinOp::Ge => Some(V::Bool(a >= b)),
                    BinOp::Add => Some(V::Number(a + b)),
                    BinOp::Sub => Some(V::Number(a - b)),
                    BinOp::Mul => Some(V::Number(a * b)),
                    // Dividing by a zero baseline says nothing: unknown.
                    BinOp::Div if b == 0.0 => None,
                    BinOp::Div => Some(V::Number(a / b)),
                    BinOp::And | BinOp::Or | BinOp::Eq | BinOp::Ne => None,
                }
            }
        })
    }
}
