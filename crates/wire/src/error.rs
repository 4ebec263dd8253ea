//! Why a request could not be decoded.
//!
//! Every variant says where the problem is (the part of the request, the
//! series, the label, the line) so that a client developer can find it in
//! what they sent. [`WireError::http_status`] and [`WireError::connect_code`]
//! tell the server how to answer.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum WireError {
    /// Decompressed data would exceed `Limits::max_decompressed_bytes`.
    #[error("{what} decompresses to more than the {limit}-byte cap (max_decompressed_bytes)")]
    TooLarge { what: String, limit: usize },

    #[error("{what} is not valid gzip: {message}")]
    Gzip { what: String, message: String },

    #[error("malformed protobuf in {what}: {message}")]
    Protobuf { what: String, message: String },

    #[error("malformed JSON in {what}: {message}")]
    Json { what: String, message: String },

    /// A profile payload (pprof, speedscope) that the model could not read.
    #[error("{what}: {message}")]
    Profile { what: String, message: String },

    #[error("{what}: label {name:?}: {problem}")]
    Label {
        what: String,
        name: String,
        problem: String,
    },

    #[error("{what} has {count} labels; the limit is {limit} (max_labels_per_series)")]
    TooManyLabels {
        what: String,
        count: usize,
        limit: usize,
    },

    #[error("the request has more than {limit} samples (max_samples_per_request)")]
    TooManySamples { limit: usize },

    #[error("{what}: timestamp {time_ms} ms is {ahead_ms} ms in the future; at most {limit_ms} ms is allowed (max_future_ms)")]
    FutureTimestamp {
        what: String,
        time_ms: i64,
        ahead_ms: i64,
        limit_ms: i64,
    },

    #[error("folded stacks, line {line}: {message}")]
    Folded { line: usize, message: String },

    #[error("multipart/form-data body: {0}")]
    Multipart(String),

    /// A query-string or request-field value that is missing or malformed.
    #[error("parameter {name:?}: {message}")]
    Param { name: String, message: String },

    #[error("bad label selector {selector:?}: {message}")]
    Selector { selector: String, message: String },

    /// Something valid on the wire that perfpilot does not implement
    /// (a content type, an encoding, a legacy format).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// Any other inconsistency in the request.
    #[error("{0}")]
    Invalid(String),
}

impl WireError {
    /// The HTTP status a server should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            WireError::TooLarge { .. } | WireError::TooManySamples { .. } => 413,
            WireError::Unsupported(_) => 415,
            _ => 400,
        }
    }

    /// The Connect protocol error code (`{"code": ..., "message": ...}`).
    pub fn connect_code(&self) -> &'static str {
        match self {
            WireError::TooLarge { .. } | WireError::TooManySamples { .. } => "resource_exhausted",
            WireError::Unsupported(_) => "unimplemented",
            _ => "invalid_argument",
        }
    }

    pub(crate) fn param(name: &str, message: impl Into<String>) -> WireError {
        WireError::Param {
            name: name.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn label(what: &str, name: &str, problem: impl Into<String>) -> WireError {
        WireError::Label {
            what: what.to_string(),
            name: shorten(name),
            problem: problem.into(),
        }
    }
}

/// Long names are cut in messages: the message must stay readable even when
/// the offending input is a megabyte of junk.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
