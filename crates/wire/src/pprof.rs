//! pprof profiles (google/pprof `proto/profile.proto`, gzipped or not) into
//! [`Batch`] series, the conversion every pprof-carrying endpoint shares
//! (Push's `raw_profile`, `/ingest?format=pprof`, multipart `/ingest`, and
//! [`batch_from_pprof`] for perfpilot's own agent).
//!
//! One series per (pprof sample type, pprof sample label set): the request's
//! labels, then the sample's labels (so per-process labels an agent puts on
//! samples survive as series labels; the request's win on a conflict;
//! `__`-prefixed, `span_id` and `profile_id` sample labels are left out, as
//! Pyroscope keeps span/profile ids out of series labels), plus
//! `__profile_type__` (see [`crate::profile_type`]). Stacks are the model's
//! root-first frame names with inlined functions expanded; zero values are
//! dropped. The profile's time is `time_nanos`, unless that is unset or in
//! 1970 (old py-spy/rbspy/pyroscope-rs wrote microseconds there), in which
//! case the request's time is used, as Pyroscope's `fixTime` does.

use std::collections::HashMap;

use perfpilot_model::series::{Batch, Labels, PROFILE_TYPE_LABEL, SERVICE_NAME_LABEL};
use perfpilot_model::{LabelSetId, Profile, StackId};
use prost::Message;

use crate::batch::{merge_labels, BatchBuilder};
use crate::error::WireError;
use crate::limits::{Budget, Limits};
use crate::profile_type::{config_for, metric_name_for, profile_type_id, SampleTypeConfigs};

/// The private label Pyroscope keeps on ingestion (`IsLabelAllowedForIngestion`).
pub(crate) const SESSION_ID_LABEL: &str = "__session_id__";
pub(crate) const NAME_LABEL: &str = "__name__";

const NANOS_PER_MS: i64 = 1_000_000;
/// `time_nanos` below this (one year after the epoch) is not a real time.
const MIN_TIME_NANOS: i64 = 365 * 24 * 3600 * 1_000_000_000;

/// Whether a pprof sample label becomes a series label: `__`-prefixed,
/// `span_id` and `profile_id` labels do not (Pyroscope keeps span and
/// profile ids out of series labels).
pub(crate) fn is_series_label(key: &str) -> bool {
    !key.starts_with("__") && key != "span_id" && key != "profile_id"
}

/// Decodes pprof, compressed or not, charging decompression to the
/// budget. Nested compression is unwrapped here too, so the model's own
/// (larger) cap never applies. Sample labels are counted and measured on
/// the protobuf bytes, before the model builds and sorts them.
pub(crate) fn decode_pprof(
    budget: &mut Budget,
    limits: &Limits,
    bytes: &[u8],
    what: &str,
) -> Result<Profile, WireError> {
    let raw = budget.unwrap(bytes, what)?;
    let profile_error = |message: String| WireError::Profile {
        what: what.to_string(),
        message,
    };
    crate::rawpprof::check_labels(&raw, limits, what)?;
    let msg = perfpilot_model::pprof::proto::Profile::decode(raw.as_ref())
        .map_err(|e| profile_error(format!("malformed protobuf: {e}")))?;
    perfpilot_model::pprof::decode_message(&msg).map_err(|e| profile_error(e.to_string()))
}

/// Unwraps compression (charged to the budget) and adds the pprof to the
/// batch through the fast path ([`crate::rawpprof`]).
pub(crate) fn add_pprof_bytes(
    budget: &mut Budget,
    b: &mut BatchBuilder<'_>,
    src: &Source<'_>,
    bytes: &[u8],
) -> Result<(), WireError> {
    let raw = budget.unwrap(bytes, src.what)?;
    crate::rawpprof::add_raw_profile(b, src, &raw)
}

/// Where a profile came from and what to label it with.
pub(crate) struct Source<'a> {
    /// Names the profile in messages ("series 0 sample 1").
    pub what: &'a str,
    /// `__name__`, when the request gave one.
    pub name: Option<&'a str>,
    /// The request's labels, `service_name` included.
    pub labels: &'a [(String, String)],
    pub configs: Option<&'a SampleTypeConfigs>,
    /// Used when the pprof has no usable `time_nanos`.
    pub fallback_time_ms: i64,
    /// `service_name` for samples whose own labels have none (perfpilot's
    /// agent labels each process's samples with its service).
    pub default_service: Option<&'a str>,
}

/// Adds every sample of `p` to the batch. With `prev`, sample types
/// configured as cumulative store `p - prev` per (stack, labels), and
/// non-positive differences are dropped.
pub(crate) fn add_profile(
    b: &mut BatchBuilder<'_>,
    src: &Source<'_>,
    p: &Profile,
    prev: Option<&Profile>,
) -> Result<(), WireError> {
    let name = match src.name {
        Some(n) => n.to_string(),
        None => metric_name_for(&p.sample_types, src.configs),
    };
    let time_ms = if p.time_nanos >= MIN_TIME_NANOS {
        p.time_nanos / NANOS_PER_MS
    } else {
        src.fallback_time_ms
    };
    let mut type_ids = Vec::with_capacity(p.sample_types.len());
    for (i, t) in p.sample_types.iter().enumerate() {
        let id = profile_type_id(&name, t, p.period_type.as_ref()).ok_or_else(|| {
            WireError::Invalid(format!(
                "{}: profile name {name:?} with sample type {i} ({}/{}) does not make a \
                 profile type id (no part may be empty-named or contain ':')",
                src.what, t.kind, t.unit
            ))
        })?;
        type_ids.push(id);
    }

    // Every stack's frames are counted (cheaply, per location) before any
    // is expanded, here and for the previous profile.
    check_frames(b, src.what, p)?;
    if let Some(prev) = prev {
        check_frames(b, &format!("{} prev_profile", src.what), prev)?;
    }
    let previous = prev.map(|prev| previous_values(p, prev, src.configs));

    let mut stacks: Vec<Option<u32>> = vec![None; p.stacks().len()];
    let mut series: HashMap<LabelSetId, Vec<usize>> = HashMap::new();
    for (n, sample) in p.samples().iter().enumerate() {
        if sample.values.iter().all(|&v| v == 0) {
            continue;
        }
        let stack = match stacks.get(sample.stack as usize).copied().flatten() {
            Some(s) => s,
            None => {
                let sample_what = || format!("{} sample {n}", src.what);
                let s = b.stack_uncharged(p.root_first_names(sample.stack), &sample_what)?;
                if let Some(slot) = stacks.get_mut(sample.stack as usize) {
                    *slot = Some(s);
                }
                s
            }
        };
        let profiles = match series.get(&sample.labels) {
            Some(v) => v.clone(),
            None => {
                let v = series_for(b, src, p, sample.labels, &type_ids, time_ms)?;
                series.insert(sample.labels, v.clone());
                v
            }
        };
        for (i, (&profile, &value)) in profiles.iter().zip(&sample.values).enumerate() {
            let mut value = value;
            if let Some(prev) = &previous {
                if let Some(cumulative) = prev.per_type.get(i).and_then(|m| m.as_ref()) {
                    let key = (sample.stack, sample.labels);
                    let before = cumulative.get(&key).copied().unwrap_or(0);
                    value = value.saturating_sub(before);
                    if value <= 0 {
                        continue;
                    }
                }
            }
            b.add(profile, stack, value).map_err(|e| match e {
                WireError::Invalid(m) => {
                    WireError::Invalid(format!("{} sample {n}: {m}", src.what))
                }
                other => other,
            })?;
        }
    }
    Ok(())
}

/// Counts the frames of every sample's stack in `p` after inline
/// expansion, without expanding any: against the per-stack limit, and
/// towards the request's total. The frames a location expands to are
/// counted once per location.
fn check_frames(b: &mut BatchBuilder<'_>, what: &str, p: &Profile) -> Result<(), WireError> {
    let per_location: Vec<usize> = p
        .locations()
        .iter()
        .map(|l| {
            if l.lines.is_empty() {
                1
            } else {
                l.lines
                    .iter()
                    .filter(|line| {
                        p.functions()
                            .get(line.function as usize)
                            .is_some_and(|f| !f.name.is_empty())
                    })
                    .count()
            }
        })
        .collect();
    let limit = b.limits().max_frames_per_stack;
    for (n, sample) in p.samples().iter().enumerate() {
        let mut frames = 0usize;
        for &loc in p.stacks().get(sample.stack as usize).map_or(&[][..], |s| s) {
            frames += per_location.get(loc as usize).copied().unwrap_or(0);
            if frames > limit {
                b.check_stack_len(frames, || format!("{what} sample {n}"))?;
            }
        }
        b.charge_frames(frames)?;
    }
    Ok(())
}

/// The batch profiles (one per sample type) for one pprof label set.
fn series_for(
    b: &mut BatchBuilder<'_>,
    src: &Source<'_>,
    p: &Profile,
    label_set: LabelSetId,
    type_ids: &[String],
    time_ms: i64,
) -> Result<Vec<usize>, WireError> {
    let sample_labels: Labels = p
        .label_sets()
        .get(label_set as usize)
        .map(|set| set.to_vec())
        .unwrap_or_default();
    series_for_labels(b, src, sample_labels, type_ids, time_ms)
}

/// The batch profiles (one per sample type) for a sample's labels.
pub(crate) fn series_for_labels(
    b: &mut BatchBuilder<'_>,
    src: &Source<'_>,
    mut sample_labels: Labels,
    type_ids: &[String],
    time_ms: i64,
) -> Result<Vec<usize>, WireError> {
    sample_labels.retain(|(k, _)| is_series_label(k));
    let mut base = merge_labels([src.labels, sample_labels.as_slice()]);
    if let Some(default) = src.default_service {
        if !base.iter().any(|(k, _)| k == SERVICE_NAME_LABEL) {
            base.push((SERVICE_NAME_LABEL.to_string(), default.to_string()));
            base.sort();
        }
    }
    let mut out = Vec::with_capacity(type_ids.len());
    for id in type_ids {
        let mut labels = base.clone();
        labels.retain(|(k, _)| k != PROFILE_TYPE_LABEL);
        labels.push((PROFILE_TYPE_LABEL.to_string(), id.clone()));
        labels.sort();
        out.push(b.profile(src.what, labels, time_ms)?);
    }
    Ok(out)
}

/// The previous profile's values of each cumulative sample type, keyed by
/// the current profile's (stack, label set) ids.
struct Previous {
    per_type: Vec<Option<HashMap<(StackId, LabelSetId), i64>>>,
}

fn previous_values(p: &Profile, prev: &Profile, configs: Option<&SampleTypeConfigs>) -> Previous {
    // Stacks and label sets are matched by content: the two profiles were
    // encoded separately and their ids mean nothing to each other.
    let mut stack_key: HashMap<Vec<&str>, StackId> = HashMap::new();
    for (i, _) in p.stacks().iter().enumerate() {
        let id = i as StackId;
        stack_key.entry(p.root_first_names(id)).or_insert(id);
    }
    let mut label_key: HashMap<&[(String, String)], LabelSetId> = HashMap::new();
    for (i, set) in p.label_sets().iter().enumerate() {
        label_key.entry(set.as_slice()).or_insert(i as LabelSetId);
    }
    let per_type = p
        .sample_types
        .iter()
        .map(|t| {
            let cumulative = config_for(configs, &t.kind).is_some_and(|c| c.cumulative);
            let j = prev.sample_types.iter().position(|pt| pt == t)?;
            if !cumulative {
                return None;
            }
            let mut values = HashMap::new();
            for s in prev.samples() {
                let Some(&stack) = stack_key.get(&prev.root_first_names(s.stack)) else {
                    continue;
                };
                let Some(&labels) = label_key.get(prev.label_set(s.labels)) else {
                    continue;
                };
                let v = s.values.get(j).copied().unwrap_or(0);
                let slot = values.entry((stack, labels)).or_insert(0i64);
                *slot = slot.saturating_add(v);
            }
            Some(values)
        })
        .collect();
    Previous { per_type }
}

/// Splits request labels into `__name__` and the labels to store: other
/// `__`-prefixed labels are private to the sender and dropped, except
/// `__session_id__`, which Pyroscope keeps. Duplicate names are an error,
/// as in Pyroscope's validation.
pub(crate) fn split_request_labels(
    what: &str,
    labels: impl IntoIterator<Item = (String, String)>,
) -> Result<(Option<String>, Labels), WireError> {
    let mut name = None;
    let mut out: Labels = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (k, v) in labels {
        if !seen.insert(k.clone()) {
            return Err(WireError::label(what, &k, "duplicate label name"));
        }
        if k == NAME_LABEL {
            if !v.is_empty() {
                name = Some(v);
            }
            continue;
        }
        if k.starts_with("__") && k != SESSION_ID_LABEL {
            continue;
        }
        if !v.is_empty() {
            out.push((k, v));
        }
    }
    out.sort();
    Ok((name, out))
}

/// Whether a request label is stored: `__name__` names the profile, and
/// other `__`-prefixed labels but `__session_id__` are private.
pub(crate) fn is_stored_request_label(key: &str) -> bool {
    !key.starts_with("__") || key == SESSION_ID_LABEL
}

/// Converts one pprof profile (gzipped or not) into a batch. `labels` are
/// the series labels for every sample; a `__name__` among them sets the
/// profile name (otherwise it is derived from the sample types, see
/// [`crate::profile_type`]), other `__`-prefixed labels except
/// `__session_id__` are dropped. `service_name` is the service of samples
/// that do not name their own with a `service_name` sample label (a
/// `service_name` in `labels` is replaced by it). A pprof without a usable
/// `time_nanos` is stored at `now_ms`.
pub fn batch_from_pprof(
    bytes: &[u8],
    labels: &[(String, String)],
    service_name: &str,
    now_ms: i64,
    limits: &Limits,
) -> Result<Batch, WireError> {
    let mut budget = Budget::new(limits);
    let (name, mut request_labels) = split_request_labels("the request", labels.iter().cloned())?;
    request_labels.retain(|(k, _)| k != SERVICE_NAME_LABEL);
    let mut b = BatchBuilder::new(limits, now_ms);
    add_pprof_bytes(
        &mut budget,
        &mut b,
        &Source {
            what: "the pprof profile",
            name: name.as_deref(),
            labels: &request_labels,
            configs: None,
            fallback_time_ms: now_ms,
            default_service: Some(service_name),
        },
        bytes,
    )?;
    Ok(b.finish())
}
