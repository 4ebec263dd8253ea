use thiserror::Error;

/// Why a query argument was refused. Messages quote the bad input so a user
/// can find it in their request.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QueryError {
    #[error("invalid time {input:?}: {reason}")]
    InvalidTime { input: String, reason: String },
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration { input: String, reason: String },
    #[error("invalid time range: start ({start_ms} ms) is not before end ({end_ms} ms)")]
    EmptyRange { start_ms: i64, end_ms: i64 },
    #[error("invalid option {name}: {reason}")]
    InvalidOption { name: &'static str, reason: String },
}
