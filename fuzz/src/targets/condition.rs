//! The condition language of policies (`alert("X").firing and p99 >
//! baseline.p99 * 1.3 for 3m`): no panic or stack overflow; the grouped
//! form parses back to itself (within the nesting and token limits); and
//! a condition that checks evaluates without error (`evaluate` errs only
//! where `check` would have).

use perfpilot_autopilot::{Condition, Env, Scope, Type, Value};

/// Values by the scope's types; some names without data.
struct Fixed(Scope);

impl Env for Fixed {
    fn value(&self, name: &str) -> Option<Value> {
        match self.0.get(name)? {
            _ if name.len().is_multiple_of(5) => None,
            Type::Number => Some(Value::Number(name.len() as f64 / 7.0)),
            Type::Bool => Some(Value::Bool(name.len().is_multiple_of(2))),
        }
    }
    fn alert_firing(&self, name: &str) -> Option<bool> {
        (!name.len().is_multiple_of(3)).then_some(name.len().is_multiple_of(2))
    }
    fn hotspot(&self, function: &str) -> Option<f64> {
        (!function.len().is_multiple_of(3)).then_some(0.25)
    }
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Condition::parse(text) else {
        return;
    };
    let grouped = c.grouped();
    match Condition::parse(&grouped) {
        Ok(again) => assert_eq!(again.grouped(), grouped, "grouping {text:?} is not stable"),
        // The grouped form adds a pair of parentheses per operator, so a
        // condition near the nesting or the token limit groups past it
        // (a chain of unary minuses doubles its tokens and more).
        Err(e) if e.message.contains("nests more than") => {}
        Err(e) if e.message.contains("is too long (more than") => {}
        Err(e) => panic!("{grouped:?}, grouped from {text:?}, does not parse: {e}"),
    }
    let mut scope = Scope::builtin();
    scope.insert("hot", Type::Number);
    scope.insert("ready", Type::Bool);
    if c.check(&scope).is_empty() {
        let env = Fixed(scope);
        if let Err(e) = c.evaluate(&env) {
            panic!("{text:?} checks but does not evaluate: {e}");
        }
    }
}
