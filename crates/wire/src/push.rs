//! Pyroscope's Push API: `POST /push.v1.PusherService/Push`, Connect unary
//! (see [`crate::connect`]). Messages from grafana/pyroscope
//! `api/push/v1/push.proto` and `api/types/v1/types.proto`:
//!
//! ```text
//! message PushRequest      { repeated RawProfileSeries series = 1; }
//! message RawProfileSeries { repeated types.v1.LabelPair labels = 1;
//!                            repeated RawSample samples = 2;
//!                            repeated types.v1.ProfileAnnotation annotations = 3; }
//! message RawSample        { bytes raw_profile = 1; string ID = 2; }
//! message LabelPair        { string name = 1; string value = 2; }
//! ```
//!
//! In JSON: `{"series":[{"labels":[{"name":..,"value":..}],
//! "samples":[{"rawProfile":"<base64>","ID":".."}]}]}`.
//!
//! Each `raw_profile` is a pprof, gzipped (as Go's `runtime/pprof` writes
//! it) or not; the whole body may be `Content-Encoding: gzip` too
//! (pyroscope-io 1.4 sends a gzipped protobuf body with plain pprof inside,
//! see `testdata/README.md`).
//!
//! Labels: `service_name` is required (Pyroscope rejects series without
//! it); `__name__` names the profile (`process_cpu`, `memory`, ...) and with
//! the pprof's sample and period types makes `__profile_type__` (see
//! [`crate::profile_type`]; without `__name__` the name is derived from the
//! sample types as for `/ingest`); other `__`-prefixed labels (`__delta__`,
//! `__otel__`...) are dropped except `__session_id__`; everything else,
//! dotted names such as `otel.scope.name` included, is kept. Annotations
//! and sample `ID`s are ignored (Pyroscope drops pushed annotations too).

use perfpilot_model::series::{Batch, SERVICE_NAME_LABEL};
use prost::Message;

use crate::batch::BatchBuilder;
use crate::connect::{encode_base64, parse_json_object, Codec, JsonObj};
use crate::error::WireError;
use crate::limits::{check_label_len, too_many_labels, Budget, Limits};
use crate::pprof::{add_pprof_bytes, is_stored_request_label, split_request_labels, Source};
use crate::rawpprof::Wire;

/// `push.v1.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<RawProfileSeries>,
}

/// `push.v1.RawProfileSeries` (annotations, field 3, are not kept).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawProfileSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<LabelPair>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<RawSample>,
}

/// `push.v1.RawSample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawSample {
    #[prost(bytes = "vec", tag = "1")]
    pub raw_profile: Vec<u8>,
    #[prost(string, tag = "2")]
    pub id: String,
}

/// `types.v1.LabelPair`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl LabelPair {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> LabelPair {
        LabelPair {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl PushRequest {
    /// Decodes a Push body in either codec (already decompressed).
    pub fn decode_body(codec: Codec, body: &[u8]) -> Result<PushRequest, WireError> {
        match codec {
            Codec::Proto => PushRequest::decode(body).map_err(|e| WireError::Protobuf {
                what: "the PushRequest".to_string(),
                message: e.to_string(),
            }),
            Codec::Json => push_from_json(body),
        }
    }

    /// The proto3 JSON form, as a Connect client sends it.
    pub fn to_json(&self) -> Vec<u8> {
        let series: Vec<serde_json::Value> = self
            .series
            .iter()
            .map(|s| {
                serde_json::json!({
                    "labels": s.labels.iter().map(|l| serde_json::json!({"name": l.name, "value": l.value})).collect::<Vec<_>>(),
                    "samples": s.samples.iter().map(|r| serde_json::json!({"rawProfile": encode_base64(&r.raw_profile), "ID": r.id})).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "series": series })).unwrap_or_default()
    }
}

fn push_from_json(body: &[u8]) -> Result<PushRequest, WireError> {
    let root = parse_json_object(body, "the PushRequest")?;
    let root = JsonObj::new(&root, "the PushRequest");
    let mut out = PushRequest::default();
    for (i, s) in root.objects(&["series"])?.into_iter().enumerate() {
        let s = JsonObj::new(s, format!("series {i}"));
        let mut series = RawProfileSeries::default();
        for (j, l) in s.objects(&["labels"])?.into_iter().enumerate() {
            let l = JsonObj::new(l, format!("series {i} label {j}"));
            series
                .labels
                .push(LabelPair::new(l.string(&["name"])?, l.string(&["value"])?));
        }
        for (j, r) in s.objects(&["samples"])?.into_iter().enumerate() {
            let r = JsonObj::new(r, format!("series {i} sample {j}"));
            series.samples.push(RawSample {
                raw_profile: r.bytes(&["rawProfile", "raw_profile"])?,
                id: r.string(&["ID", "iD", "id"])?,
            });
        }
        out.series.push(series);
    }
    Ok(out)
}

/// Decodes a Push request body into a batch. `content_type` picks the
/// codec, `content_encoding` says whether the body is gzipped.
pub fn batch_from_push(
    content_type: &str,
    content_encoding: Option<&str>,
    body: &[u8],
    now_ms: i64,
    limits: &Limits,
) -> Result<Batch, WireError> {
    let codec = Codec::from_content_type(content_type)?;
    let mut budget = Budget::new(limits);
    let body = budget.decode_content(content_encoding, body, "the request body")?;
    if codec == Codec::Proto {
        check_proto_labels(&body, limits)?;
    }
    let req = PushRequest::decode_body(codec, &body)?;
    let mut b = BatchBuilder::new(limits, now_ms);
    for (i, series) in req.series.iter().enumerate() {
        let what = format!("series {i}");
        check_labels(
            &what,
            series
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
            series.labels.len(),
            limits,
        )?;
        let (name, labels) = split_request_labels(
            &what,
            series
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone())),
        )?;
        if !labels.iter().any(|(k, _)| k == SERVICE_NAME_LABEL) {
            return Err(WireError::Invalid(format!(
                "{what}: label {SERVICE_NAME_LABEL} is required"
            )));
        }
        for (j, sample) in series.samples.iter().enumerate() {
            let what = format!("series {i} sample {j}");
            if sample.raw_profile.is_empty() {
                continue;
            }
            add_pprof_bytes(
                &mut budget,
                &mut b,
                &Source {
                    what: &what,
                    name: name.as_deref(),
                    labels: &labels,
                    configs: None,
                    fallback_time_ms: now_ms,
                    default_service: None,
                },
                &sample.raw_profile,
            )?;
        }
    }
    Ok(b.finish())
}

/// Counts a series' stored labels (not private, not empty) against the
/// limit and checks their lengths, before anything is sorted or merged.
fn check_labels<'a>(
    what: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    count: usize,
    limits: &Limits,
) -> Result<(), WireError> {
    let mut stored = 0usize;
    for (name, value) in labels {
        if !is_stored_request_label(name) || value.is_empty() {
            continue;
        }
        stored += 1;
        if stored > limits.max_labels_per_series {
            return Err(too_many_labels(what, count, limits));
        }
        check_label_len(what, name, value, limits)?;
    }
    Ok(())
}

/// [`check_labels`] on a protobuf PushRequest as it is on the wire, before
/// it is decoded: 100k labels are refused without building 100k strings.
/// Anything malformed is left to the decoder, which says what.
fn check_proto_labels(body: &[u8], limits: &Limits) -> Result<(), WireError> {
    let mut req = Wire::new(body);
    let mut i = 0usize;
    while !req.done() {
        let Some(key) = req.varint() else {
            return Ok(());
        };
        if key != (1 << 3 | 2) {
            if req.skip(key & 7).is_none() {
                return Ok(());
            }
            continue;
        }
        let Some(series) = req.bytes() else {
            return Ok(());
        };
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut count = 0usize;
        let mut s = Wire::new(series);
        while !s.done() {
            let Some(key) = s.varint() else { return Ok(()) };
            if key != (1 << 3 | 2) {
                if s.skip(key & 7).is_none() {
                    return Ok(());
                }
                continue;
            }
            let Some(pair) = s.bytes() else { return Ok(()) };
            count += 1;
            let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
            let mut p = Wire::new(pair);
            while !p.done() {
                let Some(key) = p.varint() else { return Ok(()) };
                match key {
                    k if k == (1 << 3 | 2) => match p.bytes() {
                        Some(b) => name = b,
                        None => return Ok(()),
                    },
                    k if k == (2 << 3 | 2) => match p.bytes() {
                        Some(b) => value = b,
                        None => return Ok(()),
                    },
                    k => {
                        if p.skip(k & 7).is_none() {
                            return Ok(());
                        }
                    }
                }
            }
            let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value))
            else {
                return Ok(());
            };
            // Only what would be stored is kept for the check, so this
            // vector stays within the limit plus one.
            if is_stored_request_label(name)
                && !value.is_empty()
                && pairs.len() <= limits.max_labels_per_series
            {
                pairs.push((name, value));
            }
        }
        check_labels(&format!("series {i}"), pairs, count, limits)?;
        i += 1;
    }
    Ok(())
}
