//! Bearer-token authentication. Pyroscope SDKs send the token either as
//! `Authorization: Bearer TOKEN` or as HTTP basic auth; both are accepted,
//! with the token as the password (or as the user, with no password).

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;

use crate::error::ApiError;
use crate::App;

/// Constant-time comparison, so the token cannot be guessed byte by byte
/// from response times.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(h) = header else {
        return false;
    };
    if let Some(t) = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
    {
        return same(t.trim().as_bytes(), token.as_bytes());
    }
    if let Some(b) = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))
    {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else {
            return false;
        };
        let text = String::from_utf8_lossy(&decoded);
        let (user, pass) = text.split_once(':').unwrap_or((&text, ""));
        return same(pass.as_bytes(), token.as_bytes())
            || (pass.is_empty() && same(user.as_bytes(), token.as_bytes()));
    }
    false
}

pub async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.config.token {
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !authorized(header, token) {
            let mut response = ApiError::unauthorized().into_response();
            // Makes a browser ask for credentials (the token as password)
            // and send them with the web UI's own requests afterwards.
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"perfpilot\""),
            );
            return response;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(authorized(
            Some(&format!("Basic {}", b64("user:s3cret"))),
            "s3cret"
        ));
        assert!(authorized(
            Some(&format!("Basic {}", b64("s3cret:"))),
            "s3cret"
        ));
        assert!(!authorized(
            Some(&format!("Basic {}", b64("s3cret:x"))),
            "s3cret"
        ));
        assert!(!authorized(Some("Basic %%%"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }
}
