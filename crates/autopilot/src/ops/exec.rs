//! `exec`: a program run directly, never through a shell; the trigger
//! reaches it only as environment variables.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Kind, Ops, Outcome, Trigger};
use crate::policy::TargetRef;
use crate::yaml::{as_seq, as_str, describe, Ctx, Fields};

/// A program run directly, never through a shell: alert labels reach it
/// only as environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Exec {
    /// argv: the program, then its arguments.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Default 60s.
    pub timeout: Duration,
}

impl Kind for Exec {
    const TYPE: &'static str = "exec";
    const FIELDS: &'static [&'static str] = &["type", "command", "env", "timeout"];

    fn parse(ctx: &mut Ctx, f: &Fields, _: Option<&TargetRef>) -> Option<Exec> {
        let path = f.path("command");
        let node = f.required(ctx, "command");
        let command = node.and_then(|node| {
            if let Some(s) = as_str(node) {
                let hint = s.split_whitespace().collect::<Vec<_>>();
                ctx.error(
                    node,
                    format!(
                        "{path}: exec takes an argv list, never a shell string: write {:?}",
                        hint
                    ),
                );
                return None;
            }
            let Some(items) = as_seq(node) else {
                ctx.error(node, format!("{path}: must be a list of strings, found {}", describe(node)));
                return None;
            };
            if items.is_empty() {
                ctx.error(node, format!("{path}: is empty; give the program and its arguments"));
                return None;
            }
            let mut argv = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match as_str(item) {
                    Some(s) => argv.push(s.to_string()),
                    None => ctx.error(
                        item,
                        format!("{path}[{i}]: must be a string, found {} (quote it)", describe(item)),
                    ),
                }
            }
            if argv.len() != items.len() {
                return None;
            }
            if argv[0].is_empty() {
                ctx.error(&items[0], format!("{path}[0]: the program is empty"));
                return None;
            }
            if argv[0].contains(char::is_whitespace) {
                ctx.warn(
                    &items[0],
                    format!(
                        "{path}[0]: `{}` has spaces, but no shell splits it: the program is looked up by that whole name",
                        argv[0]
                    ),
                );
            }
            Some(argv)
        });
        let env = f.string_map(ctx, "env");
        let timeout = super::timeout(ctx, f, Duration::from_secs(60));
        Some(Exec {
            command: command?,
            env,
            timeout,
        })
    }

    /// Runs the argv with the trigger as environment variables only.
    fn run(&self, ops: &Ops, trigger: &Trigger) -> Outcome {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // An environment variable cannot hold a NUL byte: one in a label
        // would stop the program from starting at all, so it reads as
        // U+FFFD instead.
        let value = |v: &str| v.replace('\0', "\u{FFFD}");
        for (name, v) in &trigger.labels {
            env.push((label_env_name(name), value(v)));
        }
        if let Some(alert) = &trigger.alert {
            env.push(("PERFPILOT_ALERT".into(), value(alert)));
        }
        env.push(("PERFPILOT_TARGET".into(), value(&trigger.target)));
        ops.command(&self.command, &env, self.timeout)
    }

    fn describe(&self) -> String {
        format!("exec {}", self.command.join(" "))
    }
}

/// Environment variable names for labels: `PERFPILOT_LABEL_` and the
/// label's name in upper case with anything outside `[A-Z0-9_]` as `_`.
pub fn label_env_name(label: &str) -> String {
    let mut out = String::from("PERFPILOT_LABEL_");
    out.extend(label.chars().map(|c| {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_env_name("instance"), "PERFPILOT_LABEL_INSTANCE");
        assert_eq!(label_env_name("a-b.c$(x)"), "PERFPILOT_LABEL_A_B_C__X_");
    }

    #[test]
    fn a_nul_in_a_label_does_not_stop_the_program() {
        let e = Exec {
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "printf %s \"$PERFPILOT_LABEL_X\"".into(),
            ],
            env: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        };
        let trigger = Trigger {
            alert: Some("A\0lert".into()),
            target: "t".into(),
            labels: [("x".to_string(), "a\0b".to_string())].into(),
        };
        let o = e.run(&Ops::default(), &trigger);
        assert!(o.ok, "{o:?}");
        assert_eq!(o.output, "a\u{FFFD}b");
    }

    #[test]
    fn output_is_truncated() {
        let ops = Ops {
            output_limit: 100,
            ..Ops::default()
        };
        let e = Exec {
            command: vec![
                "head".into(),
                "-c".into(),
                "100000".into(),
                "/dev/zero".into(),
            ],
            env: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        };
        let o = e.run(&ops, &Trigger::default());
        assert!(o.ok, "{o:?}");
        assert!(o.output.contains("(99900 bytes more)"), "{}", o.output);
    }
}
