//! perfpilot's profile store.
//!
//! [`Store`] is what the server needs from storage; [`embedded`] is the
//! default engine (a write-ahead log, an in-memory head and compressed
//! columnar blocks in a directory) and [`conformance`] is the suite every
//! engine must pass. Label selectors live in [`selector`].

pub mod conformance;
pub mod embedded;
/// The file operations durability rests on, shared with the autopilot.
pub use perfpilot_fsio as fsio;
pub mod selector;
pub mod types;

pub use selector::{MatchOp, Matcher, Selector, SelectorError};
pub use types::{
    Batch, BatchProfile, Labels, Points, ProfileType, SeriesLimit, SeriesLimits, StackTable,
    TimeRange, PROFILE_TYPE_LABEL, SERVICE_NAME_LABEL,
};

use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The request is wrong; nothing was written. (HTTP 400.)
    #[error("{0}")]
    Invalid(String),
    /// The store cannot take more now. (HTTP 503.)
    #[error("store is overloaded: {0}")]
    Overloaded(String),
    #[error("storage I/O failed while {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A query would pass one of its [`SeriesLimits`]; it stopped before
    /// allocating for it. (HTTP 400.)
    #[error("{message}")]
    OverLimit { message: String, limit: SeriesLimit },
    /// The file system the store writes to has no room left (ENOSPC or
    /// EDQUOT). Nothing was acknowledged and nothing acknowledged before
    /// is lost; writes succeed again, by themselves, once there is room.
    /// (HTTP 507.)
    #[error(
        "the disk is full: cannot write {what} in {}: {source}; nothing was stored, \
         and writes resume by themselves once space is freed there",
        path.display()
    )]
    DiskFull {
        what: String,
        /// The file (or directory) the write was for.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Storing the batch would take the number of series past the
    /// store's limit. Nothing was written. (HTTP 429: series past the
    /// retention are pruned, which makes room again.)
    #[error(
        "too many series: the store holds {stored} and this batch would add {new}, past the \
         limit of {limit} (--max-series); series whose data is past the retention are pruned, \
         which makes room"
    )]
    TooManySeries {
        limit: usize,
        stored: usize,
        new: usize,
    },
}

impl StoreError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            what: what.into(),
            source,
        }
    }

    /// An error writing `path`: [`StoreError::DiskFull`] when the disk is
    /// full, else [`StoreError::Io`] naming the file.
    pub fn write(what: impl Into<String>, path: &Path, source: std::io::Error) -> StoreError {
        if fsio::is_disk_full(&source) {
            StoreError::DiskFull {
                what: what.into(),
                path: path.to_path_buf(),
                source,
            }
        } else {
            StoreError::Io {
                what: format!("{} ({})", what.into(), path.display()),
                source,
            }
        }
    }
}

/// What happened to an ingested batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Written and durable.
    Applied,
    /// A batch with this id was applied before; nothing was done.
    Duplicate,
}

/// What the server needs from storage. Every method is safe to call from
/// many threads at once; `ingest` returns only once the batch is durable.
pub trait Store: Send + Sync {
    fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError>;

    /// Profile type ids with data in the range.
    fn profile_types(&self, range: TimeRange) -> Result<Vec<String>, StoreError>;

    /// Label names of series matching the selector with data in the range.
    fn label_names(&self, selector: &Selector, range: TimeRange)
        -> Result<Vec<String>, StoreError>;

    /// Values of label `name` among matching series.
    fn label_values(
        &self,
        name: &str,
        selector: &Selector,
        range: TimeRange,
    ) -> Result<Vec<String>, StoreError>;

    /// Label sets of matching series with data in the range.
    fn series(&self, selector: &Selector, range: TimeRange) -> Result<Vec<Labels>, StoreError>;

    /// All stacks of matching series in the range, merged.
    fn merge(&self, selector: &Selector, range: TimeRange) -> Result<StackTable, StoreError>;

    /// Sums per `step_ms` of matching series, grouped by the values of the
    /// `group_by` labels; only samples whose stack contains `function`
    /// when one is given. Fails with [`StoreError::OverLimit`], before
    /// allocating per group and step, when the answer would pass `limits`.
    fn time_series(
        &self,
        selector: &Selector,
        range: TimeRange,
        step_ms: i64,
        group_by: &[String],
        function: Option<&str>,
        limits: &SeriesLimits,
    ) -> Result<Vec<Points>, StoreError>;
}
