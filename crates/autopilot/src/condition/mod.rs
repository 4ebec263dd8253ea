//! The condition language of actions.
//!
//! ```text
//! alert("CheckoutHighLatency").firing and p99 > baseline.p99 * 1.3 for 3m
//! ```
//!
//! - Values: numbers (`1.3`), percentages (`30%` is 0.3), durations (`3m`,
//!   `500ms`, `1h30m`, as seconds), `true`, `false`; strings only as
//!   function arguments.
//! - Names: signals of the policy, the built-in metrics of the target
//!   ([`BUILTIN_METRICS`]; latencies in seconds, so `p99 > 300ms` reads as
//!   it should) and their baselines (`baseline.p99`, `baseline.<signal>`).
//! - Functions: `alert("Name").firing` (whether that alert fires for the
//!   target) and `hotspot("function")` (the function's share of CPU in the
//!   target's profile, 0 to 1).
//! - Operators, loosest first: `or`, `and`, `not`, comparisons
//!   (`< <= > >= == !=`, not chained), `+ -`, `* /`, unary `-`.
//! - A trailing `for DURATION` makes the whole condition hold only once it
//!   has held continuously that long ([`ForTracker`]).
//!
//! Parsing ([`Condition::parse`]) checks syntax; [`Condition::check`]
//! resolves names and types against a [`Scope`]; [`Condition::evaluate`]
//! reads values from an [`Env`] and returns the result with every value it
//! read, for the audit log. Missing data makes a comparison unknown, and an
//! unknown condition does not hold.

mod check;
mod eval;
mod hold;
mod lexer;
mod parser;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use eval::{Env, Evaluation, Reading, Value};
pub use hold::{ForState, ForTracker};
pub(crate) use parser::is_keyword;

/// Functions a condition can call.
pub const FUNCTIONS: [&str; 2] = ["alert", "hotspot"];

/// Metrics every target has (from the baseline engine), with their units.
pub const BUILTIN_METRICS: [(&str, &str); 6] = [
    ("p50", "median latency, seconds"),
    ("p90", "90th percentile latency, seconds"),
    ("p99", "99th percentile latency, seconds"),
    ("p999", "99.9th percentile latency, seconds"),
    ("rps", "requests per second"),
    ("error_rate", "share of requests that failed, 0 to 1"),
];

/// A syntax, name or type error in a condition, at a character offset of
/// the condition's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {}{}", .offset + 1, hint_suffix(.hint))]
pub struct ConditionError {
    /// 0-based, in characters.
    pub offset: usize,
    pub message: String,
    /// What to do about it, or what was expected.
    pub hint: Option<String>,
}

impl ConditionError {
    pub(crate) fn new(offset: usize, message: impl Into<String>, hint: Option<String>) -> Self {
        ConditionError {
            offset,
            message: message.into(),
            hint,
        }
    }

    /// The message and hint without the column, for callers that place
    /// the error themselves.
    pub fn describe(&self) -> String {
        match &self.hint {
            Some(h) => format!("{}; {h}", self.message),
            None => self.message.clone(),
        }
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
}

/// What a name evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Number,
    Bool,
}

/// The names a condition may use, with their types.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    names: BTreeMap<String, Type>,
}

impl Scope {
    /// No names at all.
    pub fn empty() -> Self {
        Scope::default()
    }

    /// The built-in metrics and their baselines.
    pub fn builtin() -> Self {
        let mut s = Scope::default();
        for (name, _) in BUILTIN_METRICS {
            s.insert(name, Type::Number);
            s.insert(&format!("baseline.{name}"), Type::Number);
        }
        s
    }

    pub fn insert(&mut self, name: &str, ty: Type) {
        self.names.insert(name.to_string(), ty);
    }

    pub fn get(&self, name: &str) -> Option<Type> {
        self.names.get(name).copied()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    source: String,
    expr: parser::Expr,
    hold_for: Option<Duration>,
    hold_offset: usize,
    /// [`Self::names`] and [`Self::calls`], found once at parse time.
    names: Vec<String>,
    calls: Vec<(String, String)>,
}

impl Condition {
    /// Parses the syntax; names and types are checked by [`Self::check`].
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        let chars: Vec<char> = source.chars().collect();
        let tokens = lexer::lex(&chars)?;
        let parsed = parser::parse(&chars, tokens)?;
        let (hold_for, hold_offset) = match parsed.hold_for {
            Some((secs, at)) => {
                let d = Duration::try_from_secs_f64(secs).map_err(|_| {
                    ConditionError::new(at, "the `for` duration is out of range", None)
                })?;
                (Some(d), at)
            }
            None => (None, 0),
        };
        let mut names = Vec::new();
        eval::collect_paths(&parsed.expr, &mut names);
        let mut calls = Vec::new();
        eval::collect_calls(&parsed.expr, &mut calls);
        Ok(Condition {
            source: source.to_string(),
            expr: parsed.expr,
            hold_for,
            hold_offset,
            names,
            calls,
        })
    }

    /// Parses and checks: every name known, every operator given the
    /// right types, and the whole a test (true or false).
    pub fn parse_checked(source: &str, scope: &Scope) -> Result<Condition, Vec<ConditionError>> {
        let c = Condition::parse(source).map_err(|e| vec![e])?;
        let errors = c.check(scope);
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }

    /// Every name, function and type error, in order of position.
    pub fn check(&self, scope: &Scope) -> Vec<ConditionError> {
        let mut errors = check::check(&self.source, &self.expr, scope);
        if self.hold_for == Some(Duration::ZERO) {
            errors.push(ConditionError::new(
                self.hold_offset,
                "`for 0s` waits for nothing",
                Some("remove the `for` clause or give a positive duration".into()),
            ));
        }
        errors.sort_by_key(|e| e.offset);
        errors
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// How long the condition must hold continuously (`for 3m`).
    pub fn hold_for(&self) -> Option<Duration> {
        self.hold_for
    }

    /// The names the condition reads (signals, metrics, baselines), each
    /// once, in order of appearance.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The function calls with their string argument, each once, in
    /// order of appearance: `("hotspot", "encrypt_data")`,
    /// `("alert", "CheckoutHighLatency")`. Lets a caller fetch only the
    /// values a condition will read.
    pub fn calls(&self) -> &[(String, String)] {
        &self.calls
    }

    /// Evaluates once. `Err` only for type errors that [`Self::check`]
    /// would have reported, or an [`Env`] returning the wrong type.
    pub fn evaluate(&self, env: &dyn Env) -> Result<Evaluation, ConditionError> {
        eval::evaluate(&self.source, &self.expr, env)
    }

    /// A tracker for this condition's `for` duration (zero without one).
    pub fn tracker(&self) -> ForTracker {
        ForTracker::new(self.hold_for.unwrap_or(Duration::ZERO))
    }

    /// The expression fully parenthesized, showing how it was grouped.
    pub fn grouped(&self) -> String {
        match self.hold_for {
            Some(d) => format!("{} for {}", self.expr, crate::duration::format(d)),
            None => self.expr.to_string(),
        }
    }
}

impl FromStr for Condition {
    type Err = ConditionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::parse(s)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
