//! How a profile gets its profile type id
//! (`name:sample_type:sample_unit:period_type:period_unit`), following
//! Pyroscope.
//!
//! * **pprof** (Push, `/ingest?format=pprof`, multipart): one id per pprof
//!   sample type, `{__name__}:{sample type}:{sample unit}:{period type}:{period
//!   unit}`, the last four read verbatim from the pprof (empty when the pprof
//!   has no period type), as Pyroscope's `LabelsForProfile`
//!   (grafana/pyroscope `pkg/model`) builds them. `__name__` comes from the
//!   Push request's labels (the SDKs send `process_cpu`, `memory`, `wall`,
//!   `mutex`, `block`, `goroutines`...). When a request has none (legacy
//!   `/ingest`, or our own [`crate::batch_from_pprof`]) it is derived from the
//!   sample types as Pyroscope's `/ingest` adapter does
//!   (`pkg/og/convert/pprof/profile.go`, `metricName`): any sample type `wall`
//!   → `wall`; otherwise the first sample type whose name (or its
//!   `sample_type_config` display name) contains `cpu` → `process_cpu`,
//!   `alloc_`/`inuse_` or equals `space`/`objects` → `memory`, `mutex_` →
//!   `mutex`, `block_` → `block`, `goroutines` → `goroutines`; and, before
//!   `cpu` (Pyroscope has no such rule), a sample type `off_cpu` → `off_cpu`:
//!   perfpilot's off-CPU pprof is
//!   `off_cpu:off_cpu:nanoseconds:off_cpu:nanoseconds`. So a Go CPU
//!   pprof (`samples/count`, `cpu/nanoseconds`, period `cpu/nanoseconds`)
//!   gives `process_cpu:samples:count:cpu:nanoseconds` and
//!   `process_cpu:cpu:nanoseconds:cpu:nanoseconds`; a Go heap pprof (period
//!   `space/bytes`) gives `memory:alloc_objects:count:space:bytes`,
//!   `memory:alloc_space:bytes:space:bytes`, `memory:inuse_objects:count:space:bytes`,
//!   `memory:inuse_space:bytes:space:bytes`; Go mutex/block (period
//!   `contentions/count`, display names `mutex_count`/`block_count` sent in
//!   `sample_type_config`) give `mutex:contentions:count:contentions:count`,
//!   `mutex:delay:nanoseconds:contentions:count` (and `block:...`); Go
//!   goroutines give `goroutines:goroutine:count:goroutine:count`.
//! * **folded/lines/speedscope on `/ingest`**: the type comes from the last
//!   dot-separated part of the application name (`myapp.cpu`,
//!   `myapp.alloc_objects`...), per Pyroscope's `convertMetadata`
//!   (`pkg/ingester/pyroscope/ingest_adapter.go`); see [`legacy_suffix`]. CPU
//!   and wall profiles uploaded with a `sampleRate` become nanoseconds: each
//!   count is multiplied by `1e9 / sampleRate` (integer period, as Pyroscope
//!   computes it) and the type is `process_cpu:cpu:nanoseconds:cpu:nanoseconds`
//!   (`wall:wall:nanoseconds:cpu:nanoseconds`). `units` and `spyName` do not
//!   change the type, as in Pyroscope; `sampleRate=0` keeps the counts,
//!   `process_cpu:samples:count::`.

use std::collections::HashMap;

use perfpilot_model::ValueType;
use serde::Deserialize;

/// One entry of the `sample_type_config` multipart part: a JSON object
/// mapping a pprof sample type name to this (Pyroscope's
/// `tree.SampleTypeConfig`, written by pyroscope-go's `upstream.SampleType`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SampleTypeConfig {
    pub units: String,
    #[serde(rename = "display-name")]
    pub display_name: String,
    pub aggregation: String,
    /// The profile holds totals since the process started; with a
    /// `prev_profile`, the difference between the two is stored.
    pub cumulative: bool,
    pub sampled: bool,
}

pub type SampleTypeConfigs = HashMap<String, SampleTypeConfig>;

/// Pyroscope's defaults when a request has no `sample_type_config`
/// (`DefaultSampleTypeMapping` in `pkg/og/storage/tree`).
pub(crate) fn default_config(sample_type: &str) -> Option<SampleTypeConfig> {
    let (display, cumulative) = match sample_type {
        "samples" => ("cpu", false),
        "inuse_objects" | "inuse_space" => ("", false),
        "alloc_objects" | "alloc_space" => ("", true),
        "goroutine" => ("goroutines", false),
        "contentions" => ("mutex_count", true),
        "delay" => ("mutex_duration", true),
        _ => return None,
    };
    Some(SampleTypeConfig {
        display_name: display.to_string(),
        cumulative,
        ..Default::default()
    })
}

/// The config in force for one sample type: the request's, or the default.
pub(crate) fn config_for(
    configs: Option<&SampleTypeConfigs>,
    sample_type: &str,
) -> Option<SampleTypeConfig> {
    match configs {
        Some(c) => c.get(sample_type).cloned(),
        None => default_config(sample_type),
    }
}

/// The profile name (`__name__`) Pyroscope's `/ingest` derives from the
/// sample types of a pprof without one.
pub fn metric_name_for(sample_types: &[ValueType], configs: Option<&SampleTypeConfigs>) -> String {
    if sample_types.iter().any(|t| t.kind == "wall") {
        return "wall".to_string();
    }
    // perfpilot's off-CPU profile: its own type, not `process_cpu` (which
    // the `cpu` in its name would otherwise make it).
    if sample_types.iter().any(|t| t.kind == "off_cpu") {
        return "off_cpu".to_string();
    }
    let mut last = String::new();
    for t in sample_types {
        let mut st = t.kind.clone();
        if let Some(c) = config_for(configs, &t.kind) {
            if !c.display_name.is_empty() {
                st = c.display_name;
            }
        }
        if st.contains("cpu") {
            return "process_cpu".to_string();
        }
        if st.contains("alloc_") || st.contains("inuse_") || st == "space" || st == "objects" {
            return "memory".to_string();
        }
        if st.contains("mutex_") {
            return "mutex".to_string();
        }
        if st.contains("block_") {
            return "block".to_string();
        }
        if st.contains("goroutines") {
            return "goroutines".to_string();
        }
        last = st;
    }
    // Pyroscope falls back to the last sample type's name; an empty profile
    // has none, and `unknown` keeps the id parseable.
    if last.is_empty() {
        "unknown".to_string()
    } else {
        last
    }
}

/// What a legacy application-name suffix (`myapp.cpu`) stands for:
/// (profile name, sample type, sample unit). `cpu`/`wall` are then turned
/// into nanoseconds when the upload has a sample rate.
pub fn legacy_suffix(suffix: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match suffix {
        "cpu" | "itimer" => ("process_cpu", "samples", "count"),
        "wall" | "seconds" | "nanoseconds" | "microseconds" | "milliseconds" => {
            ("wall", "samples", "count")
        }
        "inuse_objects" => ("memory", "inuse_objects", "count"),
        "inuse_space" => ("memory", "inuse_space", "bytes"),
        "alloc_objects" => ("memory", "alloc_objects", "count"),
        "alloc_space" => ("memory", "alloc_space", "bytes"),
        "goroutines" => ("goroutine", "goroutines", "count"),
        "mutex_count" => ("mutex", "contentions", "count"),
        "mutex_duration" => ("mutex", "delay", "nanoseconds"),
        "block_count" | "lock_count" => ("block", "contentions", "count"),
        "block_duration" | "lock_duration" => ("block", "delay", "nanoseconds"),
        "alloc_in_new_tlab_objects" => ("memory", "alloc_in_new_tlab_objects", "count"),
        "alloc_in_new_tlab_bytes" => ("memory", "alloc_in_new_tlab_bytes", "bytes"),
        "alloc_outside_tlab_objects" => ("memory", "alloc_outside_tlab_objects", "count"),
        "alloc_outside_tlab_bytes" => ("memory", "alloc_outside_tlab_bytes", "bytes"),
        "live" => ("memory", "live", "count"),
        "exceptions" => ("exceptions", "samples", "count"),
        "bytes" => ("memory", "samples", "bytes"),
        _ => return None,
    })
}

/// The profile type id a legacy query name suffix (`myapp.cpu` in
/// `/render?query=myapp.cpu{...}`) most likely means: the id the same data
/// gets when a Pyroscope SDK sends it as pprof (for `cpu`, also what folded
/// uploads with a sample rate get).
pub fn legacy_query_profile_type(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "cpu" | "itimer" => "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        "wall" => "wall:wall:nanoseconds:cpu:nanoseconds",
        "alloc_objects" => "memory:alloc_objects:count:space:bytes",
        "alloc_space" => "memory:alloc_space:bytes:space:bytes",
        "inuse_objects" => "memory:inuse_objects:count:space:bytes",
        "inuse_space" => "memory:inuse_space:bytes:space:bytes",
        "goroutines" => "goroutines:goroutine:count:goroutine:count",
        "mutex_count" => "mutex:contentions:count:contentions:count",
        "mutex_duration" => "mutex:delay:nanoseconds:contentions:count",
        "block_count" => "block:contentions:count:contentions:count",
        "block_duration" => "block:delay:nanoseconds:contentions:count",
        _ => return None,
    })
}

/// Builds an id; `None` when a component contains `:` and the id could not
/// be split back.
pub(crate) fn profile_type_id(
    name: &str,
    sample: &ValueType,
    period: Option<&ValueType>,
) -> Option<String> {
    let (pt, pu) = period.map_or(("", ""), |p| (p.kind.as_str(), p.unit.as_str()));
    let parts = [name, &sample.kind, &sample.unit, pt, pu];
    if parts.iter().any(|p| p.contains(':')) || name.is_empty() {
        return None;
    }
    Some(parts.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vt(pairs: &[(&str, &str)]) -> Vec<ValueType> {
        pairs.iter().map(|(k, u)| ValueType::new(*k, *u)).collect()
    }

    #[test]
    fn metric_names_follow_pyroscope() {
        let go_cpu = vt(&[("samples", "count"), ("cpu", "nanoseconds")]);
        assert_eq!(metric_name_for(&go_cpu, None), "process_cpu");
        let heap = vt(&[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ]);
        assert_eq!(metric_name_for(&heap, None), "memory");
        let mutex = vt(&[("contentions", "count"), ("delay", "nanoseconds")]);
        // Without a config the defaults call contentions a mutex profile.
        assert_eq!(metric_name_for(&mutex, None), "mutex");
        let block_cfg: SampleTypeConfigs = serde_json::from_str(
            r#"{"contentions":{"display-name":"block_count","units":"lock_samples"},
                "delay":{"display-name":"block_duration","units":"lock_nanoseconds"}}"#,
        )
        .unwrap();
        assert_eq!(metric_name_for(&mutex, Some(&block_cfg)), "block");
        assert_eq!(
            metric_name_for(&vt(&[("goroutine", "count")]), None),
            "goroutines"
        );
        assert_eq!(
            metric_name_for(
                &vt(&[("cpu", "nanoseconds"), ("wall", "nanoseconds")]),
                None
            ),
            "wall"
        );
        assert_eq!(metric_name_for(&vt(&[("events", "count")]), None), "events");
        let off_cpu = vt(&[("off_cpu", "nanoseconds")]);
        assert_eq!(metric_name_for(&off_cpu, None), "off_cpu");
        assert_eq!(
            profile_type_id("off_cpu", &off_cpu[0], Some(&off_cpu[0])).as_deref(),
            Some("off_cpu:off_cpu:nanoseconds:off_cpu:nanoseconds")
        );
        assert_eq!(metric_name_for(&[], None), "unknown");
    }

    #[test]
    fn ids_are_built_from_the_pprof_types() {
        let period = ValueType::new("cpu", "nanoseconds");
        assert_eq!(
            profile_type_id(
                "process_cpu",
                &ValueType::new("samples", "count"),
                Some(&period)
            )
            .unwrap(),
            "process_cpu:samples:count:cpu:nanoseconds"
        );
        assert_eq!(
            profile_type_id("memory", &ValueType::new("alloc_space", "bytes"), None).unwrap(),
            "memory:alloc_space:bytes::"
        );
        assert!(profile_type_id("x", &ValueType::new("a:b", "count"), None).is_none());
    }
}
