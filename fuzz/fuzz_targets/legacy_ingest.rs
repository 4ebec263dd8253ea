//! Pyroscope's legacy `/ingest`: the input is the query string, a newline,
//! the Content-Type, a newline, and the body (folded, lines, pprof or
//! multipart with `prev_profile` and `sample_type_config`). No panic; an
//! accepted request is a valid batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perfpilot_fuzz::{check_batch, small_limits, NOW_MS};
use perfpilot_wire::{batch_from_legacy, LegacyIngestParams};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let (Some(query), Some(content_type)) = (lines.next(), lines.next()) else {
        return;
    };
    let body = lines.next().unwrap_or_default();
    let (Ok(query), Ok(content_type)) = (
        std::str::from_utf8(query),
        std::str::from_utf8(content_type),
    ) else {
        return;
    };
    let Ok(params) = LegacyIngestParams::parse(query, NOW_MS) else {
        return;
    };
    let content_type = (!content_type.is_empty()).then_some(content_type);
    let limits = small_limits();
    if let Ok(b) = batch_from_legacy(&params, content_type, body, NOW_MS, &limits) {
        check_batch(&b, &limits);
    }
});
