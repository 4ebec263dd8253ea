//! `degrade`: a feature flag turned through an HTTP call.

use std::collections::BTreeMap;
use std::time::Duration;

use super::http::http_url;
use super::{Kind, Ops, Outcome, Trigger};
use crate::policy::TargetRef;
use crate::yaml::{Ctx, Fields};

/// Turns a feature flag through an HTTP call.
#[derive(Debug, Clone, PartialEq)]
pub struct Degrade {
    pub url: String,
    pub flag: String,
    /// The flag's new value (default true).
    pub value: serde_json::Value,
    pub timeout: Duration,
}

impl Kind for Degrade {
    const TYPE: &'static str = "degrade";
    const FIELDS: &'static [&'static str] = &["type", "url", "flag", "value", "timeout"];
    // The flag's old value is not known, so nothing but a rollback the
    // policy gives can turn it back.
    const WANTS_ROLLBACK: bool = true;

    fn parse(ctx: &mut Ctx, f: &Fields, _: Option<&TargetRef>) -> Option<Degrade> {
        let url = http_url(ctx, f);
        let flag = f.string(ctx, "flag", true);
        let value = match f.get("value") {
            Some(v) => crate::yaml::to_json(ctx, v, &f.path("value"))?,
            None => serde_json::Value::Bool(true),
        };
        let timeout = super::timeout(ctx, f, Duration::from_secs(10));
        Some(Degrade {
            url: url?,
            flag: flag?,
            value,
            timeout,
        })
    }

    /// Sets the flag: `{"flag", "value", "target", "alert"}` posted to the
    /// flag endpoint.
    fn run(&self, ops: &Ops, trigger: &Trigger) -> Outcome {
        let body = serde_json::json!({
            "flag": self.flag,
            "value": self.value,
            "target": trigger.target,
            "alert": trigger.alert,
        });
        ops.http(
            "POST",
            &self.url,
            &BTreeMap::new(),
            Some(&body),
            self.timeout,
            0,
        )
    }
}
