//! HTTP for `webhook` and `degrade`: the request with its retries, and
//! the `url` field both read.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use super::{OpError, Ops, Outcome};
use crate::yaml::{Ctx, Fields};

impl Ops {
    pub(super) fn http(
        &self,
        method: &str,
        url: &str,
        headers: &BTreeMap<String, String>,
        body: Option<&serde_json::Value>,
        timeout: Duration,
        retries: u32,
    ) -> Outcome {
        let started = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).unwrap_or_default(),
            None => Vec::new(),
        };
        let mut wait = self.http_backoff;
        let mut attempt = 0;
        loop {
            let (retry, mut outcome) = self.http_once(&agent, method, url, headers, &bytes, body);
            if !retry || attempt >= retries {
                outcome.duration = started.elapsed();
                return outcome;
            }
            attempt += 1;
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2).min(Duration::from_secs(30));
        }
    }

    /// One attempt: whether it is worth retrying, and its outcome.
    fn http_once(
        &self,
        agent: &ureq::Agent,
        method: &str,
        url: &str,
        headers: &BTreeMap<String, String>,
        bytes: &[u8],
        body: Option<&serde_json::Value>,
    ) -> (bool, Outcome) {
        let started = Instant::now();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Content-Type", "application/json");
        let request = headers
            .iter()
            .fold(request, |r, (k, v)| r.header(k.as_str(), v.as_str()));
        let sent = if body.is_some() {
            request.body(bytes.to_vec())
        } else {
            request.body(Vec::new())
        };
        let result = match sent {
            Ok(req) => agent.run(req).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let response = match result {
            Ok(r) => r,
            Err(message) => {
                let error = OpError::Http {
                    url: url.to_string(),
                    message,
                };
                return (true, Outcome::failed(error, started.elapsed()));
            }
        };
        let status = response.status().as_u16();
        let mut text = Vec::new();
        let _ = response
            .into_body()
            .into_reader()
            .take(self.output_limit as u64)
            .read_to_end(&mut text);
        let ok = (200..300).contains(&status);
        let outcome = Outcome {
            ok,
            exit_status: Some(i32::from(status)),
            output: String::from_utf8_lossy(&text).into_owned(),
            error: (!ok).then(|| OpError::HttpStatus {
                url: url.to_string(),
                status,
            }),
            duration: started.elapsed(),
        };
        (status == 429 || status >= 500, outcome)
    }
}

/// The `url` field: an http:// or https:// URL with a host.
pub(super) fn http_url(ctx: &mut Ctx, f: &Fields) -> Option<String> {
    let url = f.string(ctx, "url", true)?;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        if let Some(n) = f.get("url") {
            ctx.error(
                n,
                format!(
                    "{}: `{url}` is not an http:// or https:// URL",
                    f.path("url")
                ),
            );
        }
        return None;
    }
    Some(url)
}
