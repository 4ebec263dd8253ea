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
        (self.status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
