use thiserror::Error;

/// Why an input or an operation of the baseline engine was refused. Messages
/// say what and where (file, line, field) so a user can fix the input.
#[derive(Debug, Error)]
pub enum BaselineError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {reason}")]
    Invalid { location: String, reason: String },
}

impl BaselineError {
    pub fn invalid(location: impl Into<String>, reason: impl Into<String>) -> Self {
        BaselineError::Invalid {
            location: location.into(),
            reason: reason.into(),
        }
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        BaselineError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
