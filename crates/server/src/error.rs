//! API errors: a status and a message naming the problem.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use perfpilot_store::{SeriesLimit, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong token: send it as 'Authorization: Bearer TOKEN' (or as the \
                      basic-auth password)"
                .into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// 503: the server cannot answer now (busy, or a query ran out of time).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = match &e {
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Nothing was stored; the sender keeps the batch and retries
            // once space is freed (ingest resumes by itself).
            StoreError::DiskFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
            // Clears as series expire; a 400 would have senders drop
            // data that is accepted later.
            StoreError::TooManySeries { .. } => StatusCode::TOO_MANY_REQUESTS,
            StoreError::Io { .. } | StoreError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
            StoreError::OverLimit { message, limit } => {
                let flag = match limit {
                    SeriesLimit::Groups => "--max-query-groups",
                    SeriesLimit::Points => "--max-query-points",
                };
                return ApiError::bad_request(format!("{message} (the limit is {flag})"));
            }
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<perfpilot_query::QueryError> for ApiError {
    fn from(e: perfpilot_query::QueryError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl From<perfpilot_store::SelectorError> for ApiError {
    fn from(e: perfpilot_store::SelectorError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after_seconds(self.status) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(secs),
            );
        }
        response
    }
}

/// When a sender should try again for the answers that say "later, the
/// same request": busy (503) soon; a full disk (507) once someone had a
/// chance to free space; the series cap (429) as series expire.
fn retry_after_seconds(status: StatusCode) -> Option<&'static str> {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => Some("1"),
        StatusCode::INSUFFICIENT_STORAGE => Some("10"),
        StatusCode::TOO_MANY_REQUESTS => Some("60"),
        _ => None,
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_that_mean_later_say_when_to_retry() {
        let retry = |e: ApiError| {
            e.into_response()
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap_or_default().to_string())
        };
        let overloaded = ApiError::from(StoreError::Overloaded("the WAL queue is full".into()));
        assert_eq!(retry(overloaded), Some("1".to_string()));
        let full = ApiError::from(StoreError::write(
            "a WAL record",
            std::path::Path::new("/data/wal/000000000001.wal"),
            std::io::Error::from_raw_os_error(28),
        ));
        assert_eq!(retry(full), Some("10".to_string()));
        assert_eq!(retry(ApiError::bad_request("no")), None);
        assert_eq!(retry(ApiError::internal("broken")), None);
    }

    #[test]
    fn a_full_disk_is_507_and_too_many_series_429_each_saying_why() {
        let full = StoreError::write(
            "a WAL record",
            std::path::Path::new("/var/lib/perfpilot/wal/000000000003.wal"),
            std::io::Error::from_raw_os_error(28),
        );
        let e = ApiError::from(full);
        assert_eq!(e.status, StatusCode::INSUFFICIENT_STORAGE);
        assert!(
            e.message.contains("disk is full") && e.message.contains("/var/lib/perfpilot/wal"),
            "{}",
            e.message
        );
        let e = ApiError::from(StoreError::TooManySeries {
            limit: 10,
            stored: 10,
            new: 2,
        });
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.message.contains("limit of 10"), "{}", e.message);
    }
}
