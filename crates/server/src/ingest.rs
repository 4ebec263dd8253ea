//! Ingest endpoints. Each decodes the whole request first (rejecting it
//! with 4xx and the reason if anything is wrong), then hands one batch to
//! the store, which applies it whole and durably before the 2xx.
//!
//! Decoding is held to the server's `Limits` and charged to its memory
//! pool through a ticket the handler keeps until the batch is stored, so
//! the pool covers the batch until it is gone. A full pool is a 503 with
//! `Retry-After`: the request was fine, the server was busy.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use perfpilot_store::{Batch, IngestOutcome};
use perfpilot_wire::{Limits, MemoryTicket, WireError};
use serde::Serialize;

use crate::error::ApiError;
use crate::{blocking, now_ms, App};

/// What an ingest answers.
#[derive(Serialize)]
pub struct IngestResponse {
    pub samples: usize,
    pub profiles: usize,
    /// True when the batch id was seen before and nothing was applied.
    pub duplicate: bool,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Why an ingest failed: the API's errors, or a decoder's, whose status
/// is 400, 413, 415 or (the server busy) 503 with `Retry-After`.
pub enum IngestError {
    Api(ApiError),
    Wire(WireError),
}

impl From<ApiError> for IngestError {
    fn from(e: ApiError) -> Self {
        IngestError::Api(e)
    }
}

impl From<WireError> for IngestError {
    fn from(e: WireError) -> Self {
        IngestError::Wire(e)
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        match self {
            IngestError::Api(e) => e.into_response(),
            IngestError::Wire(e) => {
                let status =
                    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    return crate::bodies::busy(false, e.to_string());
                }
                ApiError {
                    status,
                    message: e.to_string(),
                }
                .into_response()
            }
        }
    }
}

type IngestResult<T> = Result<T, IngestError>;

/// The server's limits for one request, with a ticket on its memory pool;
/// the caller keeps the ticket until the batch is stored.
fn request_limits(app: &App) -> (Limits, MemoryTicket) {
    let ticket = app.memory.ticket();
    let limits = Limits {
        memory: Some(ticket.clone()),
        ..app.config.limits.clone()
    };
    (limits, ticket)
}

/// Runs a decoder off the async threads.
async fn decode<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WireError> + Send + 'static,
) -> IngestResult<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??)
}

async fn store_batch(app: Arc<App>, batch: Batch) -> Result<Json<IngestResponse>, ApiError> {
    let samples = batch.sample_count();
    let profiles = batch.profiles.len();
    let store = Arc::clone(&app.store);
    let outcome = blocking(move || Ok(store.ingest(&batch)?)).await?;
    Ok(Json(IngestResponse {
        samples,
        profiles,
        duplicate: outcome == IngestOutcome::Duplicate,
    }))
}

/// perfpilot's agent: a pprof (zstd-compressed with `Content-Encoding:
/// zstd`, or gzipped) whose sample labels carry the process labels
/// (service_name among them), with a batch id for retries.
pub async fn agent(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> IngestResult<Json<IngestResponse>> {
    let id = header_str(&headers, "x-perfpilot-batch-id").map(str::to_string);
    if id.as_ref().is_some_and(|i| i.len() > 256) {
        return Err(ApiError::bad_request("X-Perfpilot-Batch-Id is longer than 256 bytes").into());
    }
    // zstd (`Content-Encoding: zstd`) and gzip are recognised by their
    // magic numbers, nested too, all within one decompression allowance.
    let (limits, ticket) = request_limits(&app);
    let mut batch =
        decode(move || perfpilot_wire::batch_from_pprof(&body, &[], "unknown", now_ms(), &limits))
            .await?;
    batch.id = id;
    let stored = store_batch(app, batch).await?;
    drop(ticket);
    Ok(stored)
}

/// A plain pprof upload: `POST /api/v1/pprof?name=SERVICE{k=v,...}`.
pub async fn pprof_upload(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> IngestResult<Json<IngestResponse>> {
    let now = now_ms();
    let (limits, ticket) = request_limits(&app);
    let params =
        perfpilot_wire::LegacyIngestParams::parse_with(q.as_deref().unwrap_or(""), now, &limits)?;
    let batch = decode(move || {
        perfpilot_wire::batch_from_pprof(&body, &params.tags, &params.app_name, now, &limits)
    })
    .await?;
    let stored = store_batch(app, batch).await?;
    drop(ticket);
    Ok(stored)
}

/// Pyroscope's `POST /ingest?name=app{k=v}&from=&until=&format=...`.
pub async fn legacy(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> IngestResult<Response> {
    let now = now_ms();
    let (limits, ticket) = request_limits(&app);
    let params =
        perfpilot_wire::LegacyIngestParams::parse_with(q.as_deref().unwrap_or(""), now, &limits)?;
    let content_type = header_str(&headers, header::CONTENT_TYPE.as_str()).map(str::to_string);
    let batch = decode(move || {
        perfpilot_wire::batch_from_legacy(&params, content_type.as_deref(), &body, now, &limits)
    })
    .await?;
    let _applied = store_batch(app, batch).await?;
    drop(ticket);
    // Pyroscope answers an empty 200.
    Ok(StatusCode::OK.into_response())
}

/// Pyroscope's Connect `POST /push.v1.PusherService/Push`.
pub async fn push(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = header_str(&headers, header::CONTENT_TYPE.as_str())
        .unwrap_or("application/proto")
        .to_string();
    let encoding = header_str(&headers, header::CONTENT_ENCODING.as_str()).map(str::to_string);
    let json = content_type.contains("json");
    let (limits, ticket) = request_limits(&app);
    let decoded = tokio::task::spawn_blocking(move || {
        perfpilot_wire::batch_from_push(
            &content_type,
            encoding.as_deref(),
            &body,
            now_ms(),
            &limits,
        )
    })
    .await;
    let batch = match decoded {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                return crate::bodies::busy(true, e.to_string());
            }
            return connect_error(status, e.connect_code(), &e.to_string());
        }
        Err(e) => {
            return connect_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &e.to_string(),
            )
        }
    };
    let stored = store_batch(app, batch).await;
    drop(ticket);
    match stored {
        // An empty PushResponse.
        Ok(_) if json => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
        Ok(_) => (
            [(header::CONTENT_TYPE, "application/proto")],
            Vec::<u8>::new(),
        )
            .into_response(),
        Err(e) => {
            let code = if e.status.is_client_error() {
                "invalid_argument"
            } else {
                "internal"
            };
            connect_error(e.status, code, &e.message)
        }
    }
}

/// A Connect protocol error body.
pub fn connect_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        perfpilot_wire::connect_error_json(code, message),
    )
        .into_response()
}
