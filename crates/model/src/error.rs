use thiserror::Error;

/// Why bytes could not be decoded into a profile, or a profile encoded.
///
/// Every variant says where the problem is (line, field or byte offset) so a
/// user can find it in the input.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("not gzip-compressed pprof data: {0}")]
    Gzip(String),
    #[error("malformed pprof protobuf: {0}")]
    Protobuf(String),
    #[error("inconsistent pprof profile: {0}")]
    Pprof(String),
    #[error("folded stacks, line {line}: {message}")]
    Folded { line: usize, message: String },
    #[error("speedscope JSON: {0}")]
    Speedscope(String),
    #[error("SVG rendering failed: {0}")]
    Svg(String),
    #[error("{format} cannot be read, only written")]
    WriteOnly { format: &'static str },
    #[error("the profile has no sample type {index} (it has {count})")]
    NoSuchValue { index: usize, count: usize },
    /// A sum of sample values does not fit in an `i64`; `context` says which.
    #[error("sample values overflow a 64-bit integer: {context}")]
    Overflow { context: String },
}
