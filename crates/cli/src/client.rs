//! Talking to a perfpilot server's API: one agent, the token, and the
//! server's error message (its `error` field) as the failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::exit::{self, Failure};

/// Which server to talk to and its token: the flags every command that
/// asks a server shares.
#[derive(Args, Clone)]
pub struct Conn {
    /// The server.
    #[arg(long, default_value = "http://127.0.0.1:4040")]
    pub server: String,
    /// A file holding the server's token.
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
}

impl Conn {
    /// GETs `path`; its body, or the server's error as the failure.
    pub fn get(&self, path: &str) -> exit::Result<Vec<u8>> {
        self.get_with(path, &[])
    }

    /// GETs `path` with query parameters.
    pub fn get_with(&self, path: &str, params: &[(&str, String)]) -> exit::Result<Vec<u8>> {
        call(
            &self.server,
            self.auth_token_file.as_deref(),
            path,
            params,
            None,
        )
    }

    /// POSTs `body` as JSON to `path`.
    pub fn post(&self, path: &str, body: serde_json::Value) -> exit::Result<Vec<u8>> {
        call(
            &self.server,
            self.auth_token_file.as_deref(),
            path,
            &[],
            Some(&body),
        )
    }
}

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
fn call(
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
