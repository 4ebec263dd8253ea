//! Request bodies, read within a server-wide allowance
//! (`--max-inflight-body-mib`) and a per-request cap (`--max-body-mib`).
//!
//! Each request reserves its body's bytes as they arrive, never what its
//! `Content-Length` merely declares: a client that declares 64 MiB and
//! stalls holds only what it sent (until `--body-timeout` drops it), so
//! stalled uploads cannot lock everyone else out. A declared length over
//! the cap is refused before anything is read. The reservation is held
//! until the answer is ready, so it covers the body while it is decoded
//! and stored too. A chunk that finds no room waits for it briefly
//! ([`WAIT`]: an upload finishing frees it quickly), then the request gets
//! 503 with `Retry-After`. Waiting here holds nothing but the connection
//! and what was read; waiting inside a decoder would hold memory that
//! another waiter might be waiting for.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::App;

/// How long a request waits for room before its 503.
pub(crate) const WAIT: Duration = Duration::from_secs(1);

/// What a client is told to wait before retrying a 503, in seconds.
pub(crate) const RETRY_AFTER_SECONDS: &str = "1";

/// The allowance, in KiB permits (a permit count is a `u32` per acquire).
#[derive(Debug)]
pub(crate) struct BodyBudget {
    permits: Arc<Semaphore>,
    limit: usize,
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl BodyBudget {
    pub(crate) fn new(limit: usize) -> BodyBudget {
        BodyBudget {
            permits: Arc::new(Semaphore::new(kib(limit) as usize)),
            limit,
        }
    }

    /// Reserves `bytes` more, waiting until `deadline` at most.
    async fn reserve(&self, bytes: usize, deadline: Instant) -> Option<OwnedSemaphorePermit> {
        let n = kib(bytes);
        tokio::time::timeout_at(deadline, Arc::clone(&self.permits).acquire_many_owned(n))
            .await
            .ok()?
            .ok()
    }
}

/// Connect endpoints answer Connect errors.
fn is_connect(path: &str) -> bool {
    path.starts_with("/push.v1.") || path.starts_with("/querier.v1.")
}

fn error(connect: bool, status: StatusCode, code: &str, message: String) -> Response {
    if connect {
        crate::ingest::connect_error(status, code, &message)
    } else {
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// 503 with `Retry-After`: the server is busy with other requests.
pub(crate) fn busy(connect: bool, message: String) -> Response {
    let mut r = error(
        connect,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        message,
    );
    r.headers_mut().insert(
        RETRY_AFTER,
        axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    r
}

fn mib(bytes: usize) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads the whole body within the limits, then hands the request on
/// with the body in memory.
pub(crate) async fn read_within_budget(
    State(app): State<Arc<App>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, mut body) = req.into_parts();
    let connect = is_connect(parts.uri.path());
    let max = app.config.max_body_bytes;
    let too_large = |what: String| {
        error(
            connect,
            StatusCode::PAYLOAD_TOO_LARGE,
            "resource_exhausted",
            format!("{what}; the limit is {} (--max-body-mib)", mib(max)),
        )
    };
    let no_room = || {
        busy(
            connect,
            format!(
                "the server is receiving {} of request bodies already, its limit for all \
                 requests together (--max-inflight-body-mib); retry later",
                mib(app.bodies.limit)
            ),
        )
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > max as u64) {
        return too_large(format!("the request body is {n} bytes long"));
    }
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut reserved = 0usize;
    // Grown as data comes, not to what a client declared: a stalled
    // upload holds what it sent.
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return error(
                    connect,
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    format!("the request body could not be read: {e}"),
                )
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = buf.len() + data.len();
        if len > max {
            return too_large("the request body is longer".to_string());
        }
        if len > reserved {
            // At least 64 KiB at a time, and up to 256 KiB of what is
            // declared, so a large upload takes few permits.
            let ahead = declared
                .map(|n| (n as usize).saturating_sub(reserved).min(256 << 10))
                .unwrap_or(0);
            let more = (len - reserved)
                .max(64 << 10)
                .max(ahead)
                .min(max - reserved);
            match app.bodies.reserve(more, Instant::now() + WAIT).await {
                Some(p) => match held.as_mut() {
                    Some(h) => h.merge(p),
                    None => held = Some(p),
                },
                None => return no_room(),
            }
            reserved += more;
        }
        if buf.capacity() < len {
            // Doubling, but never past what is reserved.
            let want = (buf.capacity() * 2).max(len).min(reserved.max(len));
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    let req = Request::from_parts(parts, Body::from(Bytes::from(buf)));
    let response = next.run(req).await;
    drop(held);
    response
}
