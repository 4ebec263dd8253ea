//! What goes into a profile store and what comes out: labelled series,
//! profile types, ingest batches, merged stack tables and time series
//! points. Shared by the store, the query computations and the wire
//! formats, none of which needs the others for them.

use serde::{Deserialize, Serialize};

/// A label set, sorted by name, names unique. Every series has
/// `service_name` and `__profile_type__`.
pub type Labels = Vec<(String, String)>;

/// The label that holds the profile type id.
pub const PROFILE_TYPE_LABEL: &str = "__profile_type__";
pub const SERVICE_NAME_LABEL: &str = "service_name";

/// A profile type in Pyroscope's id form:
/// `name:sample_type:sample_unit:period_type:period_unit`, e.g.
/// `process_cpu:cpu:nanoseconds:cpu:nanoseconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProfileType {
    pub name: String,
    pub sample_type: String,
    pub sample_unit: String,
    pub period_type: String,
    pub period_unit: String,
}

impl ProfileType {
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.name, self.sample_type, self.sample_unit, self.period_type, self.period_unit
        )
    }

    /// Parses `name:sample_type:sample_unit:period_type:period_unit`.
    pub fn parse(id: &str) -> Option<ProfileType> {
        let parts: Vec<&str> = id.split(':').collect();
        if parts.len() != 5 || parts[0].is_empty() {
            return None;
        }
        Some(ProfileType {
            name: parts[0].into(),
            sample_type: parts[1].into(),
            sample_unit: parts[2].into(),
            period_type: parts[3].into(),
            period_unit: parts[4].into(),
        })
    }
}

/// One ingest request, applied whole or not at all. Strings and stacks
/// are deduplicated within the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Set by senders that retry (the agent): a batch id seen before is
    /// acknowledged without being applied again.
    pub id: Option<String>,
    /// Function names.
    pub strings: Vec<String>,
    /// Stacks as indices into `strings`, root first.
    pub stacks: Vec<Vec<u32>>,
    pub profiles: Vec<BatchProfile>,
}

/// Samples of one series at one time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchProfile {
    /// Labels, including `service_name` and `__profile_type__`.
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// (index into `Batch::stacks`, value).
    pub samples: Vec<(u32, i64)>,
}

impl Batch {
    /// Number of (stack, value) samples in the batch.
    pub fn sample_count(&self) -> usize {
        self.profiles.iter().map(|p| p.samples.len()).sum()
    }
}

/// A half-open time range in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl TimeRange {
    pub fn contains(&self, t: i64) -> bool {
        t >= self.start_ms && t < self.end_ms
    }
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        start < self.end_ms && end > self.start_ms
    }
}

/// Stacks merged over a selection: every distinct stack once, with its
/// summed value. What flame graphs, top tables and diffs are built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackTable {
    pub functions: Vec<String>,
    /// (function indices root first, value); values are non-zero.
    pub stacks: Vec<(Vec<u32>, i64)>,
}

impl StackTable {
    pub fn total(&self) -> i64 {
        self.stacks.iter().map(|(_, v)| v).sum()
    }
}

/// Values of a series (or of a group of series) over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Points {
    /// The labels the series were grouped by (empty: all together).
    pub labels: Labels,
    /// (step start ms, value), steps without data omitted.
    pub points: Vec<(i64, i64)>,
}

/// Bounds on what one time-series query may allocate: the points of its
/// answer are computed densely, groups × steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Distinct groups (value combinations of the `group_by` labels).
    pub max_groups: usize,
    /// Groups × steps.
    pub max_points: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            max_groups: 1000,
            max_points: 1_000_000,
        }
    }
}

/// Which of the [`SeriesLimits`] a query passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesLimit {
    Groups,
    Points,
}
