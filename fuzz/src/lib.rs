//! perfpilot's fuzz targets, one module per parser of outside input
//! ([`targets`]), built into one libFuzzer binary (`src/main.rs`) that runs
//! the target `PERFPILOT_FUZZ_TARGET` names. What they share is here: the
//! invariants a decoded batch must hold, limits small enough for a fuzzer
//! to reach, a selector printer for the round trip, and the container the
//! store recovery target unpacks into a data directory ([`store_files`]).

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::OnceLock;

use perfpilot_store::{Batch, MatchOp, Selector};
use perfpilot_wire::Limits;

pub mod store_files;
pub mod targets;

/// A fixed "now" (2026-11-22, hours after the captured SDK requests in
/// the seeds), so a run is reproducible.
pub const NOW_MS: i64 = 1_795_400_000_000;

/// Limits smaller than the defaults, so a fuzzer reaches them with small
/// inputs, and an input that slips past one shows as an oversized batch.
/// The seeds are within them (`PERFPILOT_FUZZ_STRICT` checks that).
pub fn small_limits() -> Limits {
    Limits {
        max_decompressed_bytes: 4 << 20,
        max_decoded_bytes: 4 << 20,
        max_samples_per_request: 20_000,
        max_frames_per_stack: 256,
        max_frames_per_request: 1 << 16,
        max_function_name_len: 4096,
        max_labels_per_series: 16,
        max_label_name_len: 128,
        max_label_value_len: 512,
        ..Limits::default()
    }
}

/// Strict mode (`PERFPILOT_FUZZ_STRICT=1`, for the seeds only): an input a
/// target refuses is a failure, so seeds that stop reaching the code past
/// the checks (a format or a limit changed under them) are noticed.
pub fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("PERFPILOT_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

/// Called where a target's input was refused: nothing in a fuzzing run,
/// a failure in strict mode.
pub fn refused(what: &str, why: impl Display) {
    assert!(!strict(), "strict mode: {what} refused a seed: {why}");
}

/// What the wire crate's batch builder charges against
/// `max_decoded_bytes` beyond the bytes themselves, per stack, function
/// name, label, profile and sample (`crates/wire/src/batch.rs`). A batch
/// holds at most what was charged (profiles left empty are dropped), so
/// its figure is a lower bound of the charge.
const STACK_OVERHEAD: usize = 48;
const NAME_OVERHEAD: usize = 48;
const LABEL_OVERHEAD: usize = 48;
const PROFILE_OVERHEAD: usize = 96;
const SAMPLE_OVERHEAD: usize = 32;

/// `[a-zA-Z_][a-zA-Z0-9_.]*`, the label names the decoders accept.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Panics unless `b` is a batch the store accepts as it is (its
/// `validate`: every stack names strings of the batch, every sample a
/// stack of it, labels sorted and unique with `service_name` and
/// `__profile_type__`) and within every one of `limits`, judged at
/// [`NOW_MS`]: names, frames per stack and per request, samples, labels,
/// timestamps, decoded bytes. A decoder that returns `Ok` with less would
/// turn bad input into a 500 (or a corrupt store) instead of a 400, or let
/// a request past a limit.
pub fn check_batch(b: &Batch, limits: &Limits) {
    let mut decoded = 0usize;
    let mut names = HashSet::new();
    for (i, s) in b.strings.iter().enumerate() {
        assert!(!s.is_empty(), "function name {i} is empty");
        assert!(
            s.len() <= limits.max_function_name_len,
            "function name {i} is {} bytes, past the limit of {}",
            s.len(),
            limits.max_function_name_len
        );
        assert!(names.insert(s), "function name {s:?} twice");
        decoded += s.len() + NAME_OVERHEAD;
    }
    let mut stacks = HashSet::new();
    let mut frames = 0usize;
    for (i, st) in b.stacks.iter().enumerate() {
        assert!(
            st.iter().all(|&f| (f as usize) < b.strings.len()),
            "stack {i} refers to a missing string"
        );
        assert!(
            st.len() <= limits.max_frames_per_stack,
            "stack {i} has {} frames, past the limit of {}",
            st.len(),
            limits.max_frames_per_stack
        );
        assert!(stacks.insert(st), "stack {i} twice");
        // Every stack kept was read for a sample at least once.
        frames += st.len();
        decoded += st.len() * 4 + STACK_OVERHEAD;
    }
    assert!(
        frames <= limits.max_frames_per_request,
        "{frames} frames pass a limit of {} a request",
        limits.max_frames_per_request
    );
    assert!(
        b.sample_count() <= limits.max_samples_per_request,
        "{} samples pass a limit of {}",
        b.sample_count(),
        limits.max_samples_per_request
    );
    let mut series = HashSet::new();
    for (i, p) in b.profiles.iter().enumerate() {
        assert!(
            p.labels.windows(2).all(|w| w[0].0 < w[1].0),
            "profile {i}: labels not sorted and unique: {:?}",
            p.labels
        );
        for required in ["service_name", "__profile_type__"] {
            assert!(
                p.labels.iter().any(|(k, v)| k == required && !v.is_empty()),
                "profile {i}: no {required} in {:?}",
                p.labels
            );
        }
        assert!(
            p.labels.len() <= limits.max_labels_per_series,
            "profile {i}: {} labels pass the limit",
            p.labels.len()
        );
        for (k, v) in &p.labels {
            assert!(is_label_name(k), "profile {i}: label name {k:?}");
            assert!(k.len() <= limits.max_label_name_len, "label name too long");
            assert!(
                v.len() <= limits.max_label_value_len,
                "label value too long"
            );
            decoded += 2 * (k.len() + v.len() + LABEL_OVERHEAD);
        }
        decoded += PROFILE_OVERHEAD;
        assert!(
            p.time_ms <= NOW_MS.saturating_add(limits.max_future_ms),
            "profile {i}: time {} is past the future limit",
            p.time_ms
        );
        assert!(
            p.time_ms >= NOW_MS.saturating_sub(limits.max_age_ms),
            "profile {i}: time {} is older than the age limit",
            p.time_ms
        );
        assert!(
            series.insert((&p.labels, p.time_ms)),
            "profile {i}: labels and time of another profile"
        );
        assert!(!p.samples.is_empty(), "profile {i} has no samples");
        let mut seen = HashSet::new();
        for (j, &(s, v)) in p.samples.iter().enumerate() {
            assert!(
                (s as usize) < b.stacks.len(),
                "profile {i} sample {j}: no stack {s}"
            );
            assert!(v != 0, "profile {i} sample {j}: value 0");
            assert!(seen.insert(s), "profile {i}: stack {s} in two samples");
            decoded += SAMPLE_OVERHEAD;
        }
    }
    assert!(
        decoded <= limits.max_decoded_bytes,
        "the batch takes at least {decoded} bytes, past the limit of {}",
        limits.max_decoded_bytes
    );
}

/// A selector as text the parser reads back to the same matchers.
pub fn print_selector(s: &Selector) -> String {
    let mut out = String::from("{");
    for (i, m) in s.matchers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&m.name);
        out.push_str(match m.op {
            MatchOp::Eq => "=",
            MatchOp::NotEq => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        });
        out.push('"');
        for c in m.value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}
