//! Pyroscope's legacy `/ingest`: the input is the query string, a newline,
//! the Content-Type, a newline, and the body (folded, lines, pprof or
//! multipart with `prev_profile` and `sample_type_config`). No panic; the
//! parameters' tags are within the limits `parse_with` holds them to; an
//! accepted request is a valid batch.

use perfpilot_wire::{batch_from_legacy, LegacyIngestParams, Limits};

use crate::{check_batch, refused, small_limits, NOW_MS};

/// The tags as `parse_with` promises them: sorted, unique, named as
/// labels are, no empty values, within the label limits.
fn check_params(p: &LegacyIngestParams, limits: &Limits) {
    assert!(!p.app_name.is_empty(), "an empty application name");
    assert!(
        p.app_name.len() <= limits.max_label_value_len,
        "application name of {} bytes past the limit",
        p.app_name.len()
    );
    assert!(
        p.tags.len() <= limits.max_labels_per_series,
        "{} tags past the limit",
        p.tags.len()
    );
    assert!(
        p.tags.windows(2).all(|w| w[0].0 < w[1].0),
        "tags not sorted and unique: {:?}",
        p.tags
    );
    for (k, v) in &p.tags {
        assert!(!v.is_empty(), "tag {k:?} with an empty value");
        assert!(
            k.len() <= limits.max_label_name_len && v.len() <= limits.max_label_value_len,
            "tag {k:?} past the length limits"
        );
    }
}

pub fn run(data: &[u8]) {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let (Some(query), Some(content_type)) = (lines.next(), lines.next()) else {
        return refused("the input", "no query string and Content-Type lines");
    };
    let body = lines.next().unwrap_or_default();
    let (Ok(query), Ok(content_type)) = (
        std::str::from_utf8(query),
        std::str::from_utf8(content_type),
    ) else {
        return refused("the input", "not UTF-8");
    };
    let limits = small_limits();
    let params = match LegacyIngestParams::parse_with(query, NOW_MS, &limits) {
        Ok(p) => p,
        Err(e) => return refused("LegacyIngestParams::parse_with", e),
    };
    check_params(&params, &limits);
    let content_type = (!content_type.is_empty()).then_some(content_type);
    match batch_from_legacy(&params, content_type, body, NOW_MS, &limits) {
        Ok(b) => check_batch(&b, &limits),
        Err(e) => refused("batch_from_legacy", e),
    }
}
