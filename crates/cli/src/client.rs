//! Talking to a perfpilot server's API: one agent, the token, and the
//! server's error message (its `error` field) as the failure.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::exit::{self, Failure};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The query parameters and the token's header, on a GET or a POST alike.
fn prepare<B>(
    mut req: ureq::RequestBuilder<B>,
    params: &[(&str, String)],
    auth: Option<&str>,
) -> ureq::RequestBuilder<B> {
    for (k, v) in params {
        req = req.query(*k, v);
    }
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req
}

/// A GET, or a POST of `body` as JSON when one is given; returns the
/// answer's body, or fails with the server's message (exit 2 for a 400,
/// 1 otherwise).
pub fn call(
    server: &str,
    token_file: Option<&Path>,
    path: &str,
    params: &[(&str, String)],
    body: Option<&serde_json::Value>,
) -> exit::Result<Vec<u8>> {
    let token = crate::serve::read_token(token_file)?;
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let auth = token.map(|t| format!("Bearer {t}"));
    let resp = match body {
        None => prepare(agent().get(&url), params, auth.as_deref()).call(),
        Some(b) => prepare(agent().post(&url), params, auth.as_deref())
            .header("Content-Type", "application/json")
            .send(b.to_string()),
    }
    .with_context(|| format!("cannot reach {url}"))
    .map_err(Failure::from)?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .with_context(|| format!("reading the answer of {url}"))?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let code = if status == 400 {
            exit::USAGE
        } else {
            exit::FAILURE
        };
        return Err(Failure::new(
            code,
            anyhow::anyhow!("the server answered {status}: {message}"),
        ));
    }
    Ok(body)
}

/// Decodes an answer, naming the path when it is not what was expected.
pub fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> exit::Result<T> {
    serde_json::from_slice(body)
        .with_context(|| {
            format!("the server's answer to {path} is not what this perfpilot expects")
        })
        .map_err(Failure::from)
}
