//! `webhook`: an HTTP request with a JSON body templated from the trigger
//! inside its string values, retried with doubling waits.

use std::collections::BTreeMap;
use std::time::Duration;

use super::http::http_url;
use super::{Kind, Ops, Outcome, Trigger};
use crate::policy::TargetRef;
use crate::yaml::{as_str, Ctx, Fields};

/// An HTTP request with a JSON body (templated when it runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// http:// or https://.
    pub url: String,
    /// GET, POST (default), PUT, PATCH or DELETE.
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<serde_json::Value>,
    /// Per attempt (default 10s).
    pub timeout: Duration,
    /// Attempts after the first (default 3).
    pub retries: u32,
}

impl Kind for Webhook {
    const TYPE: &'static str = "webhook";
    const FIELDS: &'static [&'static str] = &[
        "type", "url", "method", "headers", "body", "timeout", "retries",
    ];
    const RETRIES_ITSELF: bool = true;

    fn parse(ctx: &mut Ctx, f: &Fields, _: Option<&TargetRef>) -> Option<Webhook> {
        let url = http_url(ctx, f);
        let method = match f.get("method") {
            Some(n) => {
                let known = ["GET", "POST", "PUT", "PATCH", "DELETE"];
                let upper = as_str(n).map(str::to_ascii_uppercase);
                match upper
                    .as_deref()
                    .and_then(|m| known.iter().find(|k| **k == m))
                {
                    Some(m) => m.to_string(),
                    None => {
                        ctx.error(
                            n,
                            format!("{}: must be one of {}", f.path("method"), known.join(", ")),
                        );
                        "POST".into()
                    }
                }
            }
            None => "POST".into(),
        };
        let headers = f.string_map(ctx, "headers");
        let body = match f.get("body") {
            Some(b) => Some(crate::yaml::to_json(ctx, b, &f.path("body"))?),
            None => None,
        };
        let timeout = super::timeout(ctx, f, Duration::from_secs(10));
        let retries = match (f.integer(ctx, "retries"), f.get("retries")) {
            (Some(n), Some(node)) => match u32::try_from(n) {
                Ok(n) if n <= 10 => n,
                _ => {
                    ctx.error(
                        node,
                        format!("{}: {n} is not between 0 and 10", f.path("retries")),
                    );
                    3
                }
            },
            _ => 3,
        };
        Some(Webhook {
            url: url?,
            method,
            headers,
            body,
            timeout,
            retries,
        })
    }

    /// The request with the body templated from the trigger, retried with
    /// doubling waits on transport errors, 429 and 5xx.
    fn run(&self, ops: &Ops, trigger: &Trigger) -> Outcome {
        let body = self.body.as_ref().map(|b| template(b, trigger));
        ops.http(
            &self.method,
            &self.url,
            &self.headers,
            body.as_ref(),
            self.timeout,
            self.retries,
        )
    }
}

/// Replaces `{{labels.NAME}}`, `{{alert}}` and `{{target}}` inside the
/// string values of a JSON body (keys and structure are left alone).
/// Unknown placeholders are left as they are; missing labels become "".
pub fn template(body: &serde_json::Value, trigger: &Trigger) -> serde_json::Value {
    use serde_json::Value;
    match body {
        Value::String(s) => Value::String(fill(s, trigger)),
        Value::Array(items) => Value::Array(items.iter().map(|v| template(v, trigger)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), template(v, trigger)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fill(s: &str, trigger: &Trigger) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        match key {
            "alert" => out.push_str(trigger.alert.as_deref().unwrap_or("")),
            "target" => out.push_str(&trigger.target),
            _ => match key.strip_prefix("labels.") {
                Some(label) => out.push_str(trigger.labels.get(label).map_or("", String::as_str)),
                None => out.push_str(&rest[start..start + 2 + end + 2]),
            },
        }
        // Substituted values are never re-scanned for placeholders.
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger() -> Trigger {
        Trigger {
            alert: Some("High\"Latency".into()),
            target: "checkout".into(),
            labels: [("instance".to_string(), "a\"}, {\"x\": 1".to_string())].into(),
        }
    }

    #[test]
    fn templates_escape_through_serde() {
        let body = serde_json::json!({"text": "{{alert}} on {{target}}: {{labels.instance}} {{labels.none}} {{other}}", "n": 3});
        let out = template(&body, &trigger());
        assert_eq!(
            out["text"],
            "High\"Latency on checkout: a\"}, {\"x\": 1  {{other}}"
        );
        assert_eq!(out["n"], 3);
        let text = serde_json::to_string(&out).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, out);
        assert_eq!(back.as_object().map(|m| m.len()), Some(2));
    }

    #[test]
    fn unterminated_placeholder_is_kept() {
        assert_eq!(fill("x {{alert", &trigger()), "x {{alert");
    }
}
