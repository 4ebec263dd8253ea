//! pprof ingest, the path of perfpilot's agent and `/api/v1/pprof`:
//! `batch_from_pprof`, which reads uncompressed pprof through the fast
//! path (`add_raw_profile`). No panic, and an accepted profile is a batch
//! the store takes as it is. Then the two paths against each other: the
//! same pprof sent to `/ingest` as the body (fast path) and as the
//! multipart `profile` part (the model's decoder), when both accept it,
//! store the same samples.

use std::collections::BTreeMap;

use crate::{check_batch, refused, small_limits, NOW_MS};
use perfpilot_store::Batch;
use perfpilot_wire::{batch_from_legacy, LegacyIngestParams};

type Canonical = BTreeMap<(Vec<(String, String)>, i64), BTreeMap<Vec<String>, i64>>;

/// A batch as (labels, time) → (root-first names → summed value).
fn canonical(b: &Batch) -> Canonical {
    let mut out: Canonical = BTreeMap::new();
    for p in &b.profiles {
        let e = out.entry((p.labels.clone(), p.time_ms)).or_default();
        for &(s, v) in &p.samples {
            let names = b.stacks[s as usize]
                .iter()
                .map(|&f| b.strings[f as usize].clone())
                .collect();
            let sum = e.entry(names).or_default();
            *sum = sum.wrapping_add(v);
        }
        e.retain(|_, v| *v != 0);
    }
    out.retain(|_, e| !e.is_empty());
    out
}

const BOUNDARY: &str = "fuzzb0undary";

fn multipart(pprof: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"profile\"; \
         filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(pprof);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn run(data: &[u8]) {
    let limits = small_limits();
    let labels = [("region".to_string(), "eu".to_string())];
    match perfpilot_wire::batch_from_pprof(data, &labels, "svc", NOW_MS, &limits) {
        Ok(b) => check_batch(&b, &limits),
        Err(e) => refused("batch_from_pprof", e),
    }

    let params = LegacyIngestParams::parse_with(
        "name=svc.cpu%7Bregion%3Deu%7D&format=pprof",
        NOW_MS,
        &limits,
    )
    .expect("fixed parameters parse");
    let fast = batch_from_legacy(&params, Some("binary/octet-stream"), data, NOW_MS, &limits);
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let model = batch_from_legacy(
        &params,
        Some(&content_type),
        &multipart(data),
        NOW_MS,
        &limits,
    );
    match (&fast, &model) {
        (Ok(fast), Ok(model)) => {
            check_batch(fast, &limits);
            check_batch(model, &limits);
            assert_eq!(
                canonical(fast),
                canonical(model),
                "the fast path and the model's decoder store different samples"
            );
        }
        (Err(e), _) | (_, Err(e)) => refused("batch_from_legacy", e),
    }
}
