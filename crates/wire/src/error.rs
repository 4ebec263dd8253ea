//! Why a request could not be decoded.
//!
//! Every variant says where the problem is (the part of the request, the
//! series, the label, the line) so that a client developer can find it in
//! what they sent. [`WireError::http_status`] and [`WireError::connect_code`]
//! tell the server how to answer.

use thiserror::Error;

use crate::limits::size;

#[derive(Debug, Error)]
pub enum WireError {
    /// Decompressed data would exceed `Limits::max_decompressed_bytes`.
    #[error("{what} decompresses to more than {} (--max-decompressed-mib)", size(*limit))]
    TooLarge { what: String, limit: usize },

    /// The decoded batch would exceed `Limits::max_decoded_bytes`.
    #[error(
        "the request decodes to more than {} of stacks, names and series labels (--max-decoded-mib)",
        size(*limit)
    )]
    TooMuchDecoded { limit: usize },

    /// The server-wide [`crate::MemoryPool`] is full: others' requests,
    /// not this one, are the reason; retry later.
    #[error(
        "the server is decoding other requests that hold its {} for ingest (--max-ingest-memory-mib); retry later",
        size(*limit)
    )]
    Busy { limit: usize },

    #[error("{what} is not valid gzip: {message}")]
    Gzip { what: String, message: String },

    #[error("{what} is not valid zstd: {message}")]
    Zstd { what: String, message: String },

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

    #[error("{what} has {count} labels; the limit is {limit} (--max-labels-per-series)")]
    TooManyLabels {
        what: String,
        count: usize,
        limit: usize,
    },

    #[error("the request has more than {limit} samples (--max-samples-per-request)")]
    TooManySamples { limit: usize },

    /// One stack, after inlined functions are expanded.
    #[error(
        "{what}: its stack has more than {limit} frames after inlined functions are expanded (--max-frames-per-stack)"
    )]
    TooManyFrames { what: String, limit: usize },

    /// Every sample's stack together, after inlined functions are expanded.
    #[error(
        "the request's stacks have more than {limit} frames together after inlined functions are expanded (--max-frames-per-request)"
    )]
    TooManyFramesInRequest { limit: usize },

    #[error("{what}: function name {name:?} is {len} bytes long; the limit is {limit} (--max-function-name-len)")]
    NameTooLong {
        what: String,
        name: String,
        len: usize,
        limit: usize,
    },

    #[error("{what}: timestamp {time_ms} ms is {ahead_ms} ms in the future; at most {limit_ms} ms is allowed (--max-future)")]
    FutureTimestamp {
        what: String,
        time_ms: i64,
        ahead_ms: i64,
        limit_ms: i64,
    },

    #[error("{what}: timestamp {time_ms} ms is {age_ms} ms old; the store keeps {limit_ms} ms (--retention)")]
    OldTimestamp {
        what: String,
        time_ms: i64,
        age_ms: i64,
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
    /// Whether the request as a whole is too big (413), as opposed to
    /// a part of it being wrong (400).
    fn too_big(&self) -> bool {
        matches!(
            self,
            WireError::TooLarge { .. }
                | WireError::TooMuchDecoded { .. }
                | WireError::TooManySamples { .. }
                | WireError::TooManyFramesInRequest { .. }
        )
    }

    /// The HTTP status a server should answer with: 413 for a request
    /// too big as a whole, 503 (with `Retry-After`) when the server is
    /// busy with others, 415 for what perfpilot does not implement, 400
    /// for the rest.
    pub fn http_status(&self) -> u16 {
        match self {
            e if e.too_big() => 413,
            WireError::Busy { .. } => 503,
            WireError::Unsupported(_) => 415,
            _ => 400,
        }
    }

    /// The Connect protocol error code (`{"code": ..., "message": ...}`).
    pub fn connect_code(&self) -> &'static str {
        match self {
            e if e.too_big() => "resource_exhausted",
            WireError::Busy { .. } => "unavailable",
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
