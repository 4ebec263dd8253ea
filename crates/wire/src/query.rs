//! The query side Grafana's Pyroscope data source speaks:
//! `querier.v1.QuerierService` over Connect (see [`crate::connect`]),
//! messages from grafana/pyroscope `api/querier/v1/querier.proto` and
//! `api/types/v1/types.proto`:
//!
//! | method | request | response |
//! |---|---|---|
//! | `ProfileTypes` | `ProfileTypesRequest {int64 start=1; int64 end=2}` | `ProfileTypesResponse {repeated types.v1.ProfileType profile_types=1}` |
//! | `LabelNames` | `types.v1.LabelNamesRequest {repeated string matchers=1; int64 start=2; int64 end=3}` | `types.v1.LabelNamesResponse {repeated string names=1}` |
//! | `LabelValues` | `types.v1.LabelValuesRequest {string name=1; repeated string matchers=2; int64 start=3; int64 end=4}` | `types.v1.LabelValuesResponse {repeated string names=1}` |
//! | `Series` | `SeriesRequest {repeated string matchers=1; repeated string label_names=2; int64 start=3; int64 end=4}` | `SeriesResponse {repeated types.v1.Labels labels_set=2}` |
//! | `SelectSeries` | `SelectSeriesRequest {string profile_typeID=1; string label_selector=2; int64 start=3; int64 end=4; repeated string group_by=5; double step=6; optional TimeSeriesAggregationType aggregation=7; optional StackTraceSelector stack_trace_selector=8; optional int64 limit=9}` | `SelectSeriesResponse {repeated types.v1.Series series=1}` |
//! | `SelectMergeStacktraces` | `SelectMergeStacktracesRequest {string profile_typeID=1; string label_selector=2; int64 start=3; int64 end=4; optional int64 max_nodes=5; ProfileFormat format=6; optional StackTraceSelector stack_trace_selector=7}` | `SelectMergeStacktracesResponse {FlameGraph flamegraph=1; bytes tree=2}` |
//!
//! with `types.v1.ProfileType {string ID=1; name=2; sample_type=4;
//! sample_unit=5; period_type=6; period_unit=7}`, `types.v1.Series
//! {repeated LabelPair labels=1; repeated Point points=2}`, `types.v1.Point
//! {double value=1; int64 timestamp=2}` (ms), `FlameGraph {repeated string
//! names=1; repeated Level levels=2; int64 total=3; int64 max_self=4}`,
//! `Level {repeated int64 values=1}` (layout: [`crate::flamegraph`]).
//! Times are milliseconds since the epoch, `step` is seconds.
//!
//! Not supported: the `tree` format of `SelectMergeStacktraces` (its
//! request is decoded, and [`ProfileFormat::Tree`] tells the server to
//! refuse it), Go PGO stack-trace selectors (decoded and ignored).

use perfpilot_model::selector::{MatchOp, Matcher, Selector};
use perfpilot_model::series::{Labels, Points, StackTable, TimeRange, PROFILE_TYPE_LABEL};
use prost::Message;
use serde_json::{json, Map, Value};

use crate::connect::{i64_json, parse_json_object, Codec, JsonObj};
use crate::error::{shorten, WireError};
use crate::flamegraph::{flame_graph, FlameGraph, DEFAULT_MAX_NODES};
use crate::limits::{Budget, Limits};
use crate::push::LabelPair;

/// Protobuf messages, field numbers from the upstream protos.
pub mod proto {
    use super::LabelPair;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProfileTypesRequest {
        #[prost(int64, tag = "1")]
        pub start: i64,
        #[prost(int64, tag = "2")]
        pub end: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProfileType {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub sample_type: String,
        #[prost(string, tag = "5")]
        pub sample_unit: String,
        #[prost(string, tag = "6")]
        pub period_type: String,
        #[prost(string, tag = "7")]
        pub period_unit: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProfileTypesResponse {
        #[prost(message, repeated, tag = "1")]
        pub profile_types: Vec<ProfileType>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelNamesRequest {
        #[prost(string, repeated, tag = "1")]
        pub matchers: Vec<String>,
        #[prost(int64, tag = "2")]
        pub start: i64,
        #[prost(int64, tag = "3")]
        pub end: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelValuesRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, repeated, tag = "2")]
        pub matchers: Vec<String>,
        #[prost(int64, tag = "3")]
        pub start: i64,
        #[prost(int64, tag = "4")]
        pub end: i64,
    }

    /// `types.v1.LabelNamesResponse` and `LabelValuesResponse` share this
    /// shape.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamesResponse {
        #[prost(string, repeated, tag = "1")]
        pub names: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SeriesRequest {
        #[prost(string, repeated, tag = "1")]
        pub matchers: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub label_names: Vec<String>,
        #[prost(int64, tag = "3")]
        pub start: i64,
        #[prost(int64, tag = "4")]
        pub end: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Labels {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<LabelPair>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SeriesResponse {
        #[prost(message, repeated, tag = "2")]
        pub labels_set: Vec<Labels>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StackTraceSelector {
        #[prost(message, repeated, tag = "1")]
        pub call_site: Vec<Location>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SelectSeriesRequest {
        #[prost(string, tag = "1")]
        pub profile_type_id: String,
        #[prost(string, tag = "2")]
        pub label_selector: String,
        #[prost(int64, tag = "3")]
        pub start: i64,
        #[prost(int64, tag = "4")]
        pub end: i64,
        #[prost(string, repeated, tag = "5")]
        pub group_by: Vec<String>,
        #[prost(double, tag = "6")]
        pub step: f64,
        #[prost(int32, optional, tag = "7")]
        pub aggregation: Option<i32>,
        #[prost(message, optional, tag = "8")]
        pub stack_trace_selector: Option<StackTraceSelector>,
        #[prost(int64, optional, tag = "9")]
        pub limit: Option<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Point {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Series {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<LabelPair>,
        #[prost(message, repeated, tag = "2")]
        pub points: Vec<Point>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SelectSeriesResponse {
        #[prost(message, repeated, tag = "1")]
        pub series: Vec<Series>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SelectMergeStacktracesRequest {
        #[prost(string, tag = "1")]
        pub profile_type_id: String,
        #[prost(string, tag = "2")]
        pub label_selector: String,
        #[prost(int64, tag = "3")]
        pub start: i64,
        #[prost(int64, tag = "4")]
        pub end: i64,
        #[prost(int64, optional, tag = "5")]
        pub max_nodes: Option<i64>,
        #[prost(int32, tag = "6")]
        pub format: i32,
        #[prost(message, optional, tag = "7")]
        pub stack_trace_selector: Option<StackTraceSelector>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Level {
        #[prost(int64, repeated, tag = "1")]
        pub values: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FlameGraph {
        #[prost(string, repeated, tag = "1")]
        pub names: Vec<String>,
        #[prost(message, repeated, tag = "2")]
        pub levels: Vec<Level>,
        #[prost(int64, tag = "3")]
        pub total: i64,
        #[prost(int64, tag = "4")]
        pub max_self: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SelectMergeStacktracesResponse {
        #[prost(message, optional, tag = "1")]
        pub flamegraph: Option<FlameGraph>,
        #[prost(bytes = "vec", tag = "2")]
        pub tree: Vec<u8>,
    }
}

fn decode_proto<M: Message + Default>(body: &[u8], what: &str) -> Result<M, WireError> {
    M::decode(body).map_err(|e| WireError::Protobuf {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// Decompresses (if needed) and hands the body to the codec-specific
/// decoder.
fn with_body<T>(
    codec: Codec,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &Limits,
    what: &str,
    proto: impl FnOnce(&[u8]) -> Result<T, WireError>,
    json: impl FnOnce(&JsonObj<'_>) -> Result<T, WireError>,
) -> Result<T, WireError> {
    let mut budget = Budget::new(limits);
    let body = budget.decode_content(content_encoding, body, "the request body")?;
    match codec {
        Codec::Proto => proto(&body),
        Codec::Json => {
            // An empty body is the empty message.
            let map = if body.iter().all(u8::is_ascii_whitespace) {
                Map::new()
            } else {
                parse_json_object(&body, what)?
            };
            json(&JsonObj::new(&map, what))
        }
    }
}

fn range(start: i64, end: i64) -> Result<TimeRange, WireError> {
    if end < start {
        return Err(WireError::Invalid(format!(
            "end ({end} ms) is before start ({start} ms)"
        )));
    }
    Ok(TimeRange {
        start_ms: start,
        end_ms: end,
    })
}

fn parse_selector(text: &str) -> Result<Selector, WireError> {
    Selector::parse(text).map_err(|e| WireError::Selector {
        selector: shorten(text),
        message: e.to_string(),
    })
}

/// A profile type id plus a label selector, as one [`Selector`].
pub fn type_selector(profile_type_id: &str, label_selector: &str) -> Result<Selector, WireError> {
    if profile_type_id.split(':').count() != 5 {
        return Err(WireError::param(
            "profile_typeID",
            format!(
                "{:?} is not name:sample_type:sample_unit:period_type:period_unit",
                shorten(profile_type_id)
            ),
        ));
    }
    let mut sel = if label_selector.trim().is_empty() {
        Selector::all()
    } else {
        parse_selector(label_selector)?
    };
    sel.matchers.retain(|m| m.name != PROFILE_TYPE_LABEL);
    let m = Matcher::new(PROFILE_TYPE_LABEL, MatchOp::Eq, profile_type_id).map_err(|e| {
        WireError::Selector {
            selector: profile_type_id.to_string(),
            message: e.to_string(),
        }
    })?;
    sel.matchers.push(m);
    Ok(sel)
}

/// `ProfileTypes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileTypesRequest {
    pub range: TimeRange,
}

impl ProfileTypesRequest {
    pub fn decode(
        codec: Codec,
        content_encoding: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Self, WireError> {
        let (start, end) = with_body(
            codec,
            content_encoding,
            body,
            limits,
            "the ProfileTypesRequest",
            |b| {
                let m: proto::ProfileTypesRequest = decode_proto(b, "the ProfileTypesRequest")?;
                Ok((m.start, m.end))
            },
            |o| {
                Ok((
                    o.i64(&["start"])?.unwrap_or(0),
                    o.i64(&["end"])?.unwrap_or(0),
                ))
            },
        )?;
        Ok(ProfileTypesRequest {
            range: range(start, end)?,
        })
    }
}

/// `LabelNames` (`names` empty) and `LabelValues` (`name` set).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelsRequest {
    /// The label whose values are asked for; empty for `LabelNames`.
    pub name: String,
    /// Selectors in Prometheus syntax; a series matching any of them counts
    /// (none: all series).
    pub matchers: Vec<String>,
    pub range: TimeRange,
}

impl LabelsRequest {
    pub fn decode_label_names(
        codec: Codec,
        content_encoding: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Self, WireError> {
        let (matchers, start, end) = with_body(
            codec,
            content_encoding,
            body,
            limits,
            "the LabelNamesRequest",
            |b| {
                let m: proto::LabelNamesRequest = decode_proto(b, "the LabelNamesRequest")?;
                Ok((m.matchers, m.start, m.end))
            },
            |o| {
                Ok((
                    o.strings(&["matchers"])?,
                    o.i64(&["start"])?.unwrap_or(0),
                    o.i64(&["end"])?.unwrap_or(0),
                ))
            },
        )?;
        Ok(LabelsRequest {
            name: String::new(),
            matchers,
            range: range(start, end)?,
        })
    }

    pub fn decode_label_values(
        codec: Codec,
        content_encoding: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Self, WireError> {
        let (name, matchers, start, end) = with_body(
            codec,
            content_encoding,
            body,
            limits,
            "the LabelValuesRequest",
            |b| {
                let m: proto::LabelValuesRequest = decode_proto(b, "the LabelValuesRequest")?;
                Ok((m.name, m.matchers, m.start, m.end))
            },
            |o| {
                Ok((
                    o.string(&["name"])?,
                    o.strings(&["matchers"])?,
                    o.i64(&["start"])?.unwrap_or(0),
                    o.i64(&["end"])?.unwrap_or(0),
                ))
            },
        )?;
        if name.is_empty() {
            return Err(WireError::param("name", "the label name is required"));
        }
        Ok(LabelsRequest {
            name,
            matchers,
            range: range(start, end)?,
        })
    }

    /// The parsed matchers (each one a selector).
    pub fn selectors(&self) -> Result<Vec<Selector>, WireError> {
        self.matchers.iter().map(|m| parse_selector(m)).collect()
    }
}

/// `Series`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRequest {
    pub matchers: Vec<String>,
    /// Labels to return; empty: all.
    pub label_names: Vec<String>,
    pub range: TimeRange,
}

impl SeriesRequest {
    pub fn decode(
        codec: Codec,
        content_encoding: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Self, WireError> {
        let m = with_body(
            codec,
            content_encoding,
            body,
            limits,
            "the SeriesRequest",
            |b| decode_proto::<proto::SeriesRequest>(b, "the SeriesRequest"),
            |o| {
                Ok(proto::SeriesRequest {
                    matchers: o.strings(&["matchers"])?,
                    label_names: o.strings(&["labelNames", "label_names"])?,
                    start: o.i64(&["start"])?.unwrap_or(0),
                    end: o.i64(&["end"])?.unwrap_or(0),
                })
            },
        )?;
        Ok(SeriesRequest {
            matchers: m.matchers,
            label_names: m.label_names,
            range: range(m.start, m.end)?,
        })
    }

    pub fn selectors(&self) -> Result<Vec<Selector>, WireError> {
        self.matchers.iter().map(|m| parse_selector(m)).collect()
    }
}

/// `types.v1.TimeSeriesAggregationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Sum,
    Average,
    /// Newer Pyroscope versions: a per-second rate.
    Rate,
}

const AGGREGATIONS: &[(&str, i32)] = &[
    ("TIME_SERIES_AGGREGATION_TYPE_SUM", 0),
    ("TIME_SERIES_AGGREGATION_TYPE_AVERAGE", 1),
    ("TIME_SERIES_AGGREGATION_TYPE_RATE", 2),
];

fn aggregation(v: Option<i32>) -> Result<Option<Aggregation>, WireError> {
    Ok(match v {
        None => None,
        Some(0) => Some(Aggregation::Sum),
        Some(1) => Some(Aggregation::Average),
        Some(2) => Some(Aggregation::Rate),
        Some(other) => {
            return Err(WireError::param(
                "aggregation",
                format!("unknown aggregation type {other}"),
            ))
        }
    })
}

fn call_site_json(o: &JsonObj<'_>) -> Result<Vec<String>, WireError> {
    let Some(sel) = o.object(&["stackTraceSelector", "stack_trace_selector"])? else {
        return Ok(Vec::new());
    };
    let sel = JsonObj::new(sel, format!("{} stackTraceSelector", o.what));
    sel.objects(&["callSite", "call_site"])?
        .into_iter()
        .map(|l| JsonObj::new(l, "a callSite location").string(&["name"]))
        .collect()
}

/// `SelectSeries`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectSeriesRequest {
    pub profile_type_id: String,
    pub label_selector: String,
    pub range: TimeRange,
    pub group_by: Vec<String>,
    /// Seconds, > 0.
    pub step_seconds: f64,
    pub aggregation: Option<Aggregation>,
    /// Root-first function names the selected stacks must start with
    /// (`stack_trace_selector.call_site`); empty: no filter.
    pub call_site: Vec<String>,
    /// Only the top N series by total.
    pub limit: Option<i64>,
}

impl SelectSeriesRequest {
    pub fn decode(
        codec: Codec,
        content_encoding: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Self, WireError> {
        let (m, call_site) = with_body(
            codec,
            content_encoding,
            body,
            limits,
            "the SelectSeriesRequest",
            |b| {
                let m: proto::SelectSeriesRequest = decode_proto(b, "the SelectSeriesRequest")?;
                let sites = m
                    .stack_trace_selector
                    .as_ref()
                    .map(|s| s.call_site.iter().map(|l| l.name.clone()).collect())
                    .unwrap_or_default();
                Ok((m, sites))
            },
            |o| {
                let m = proto::SelectSeriesRequest {
                    profile_type_id: o.string(&["profileTypeID", "profile_typeID"])?,
                    label_selector: o.string(&["labelSelector", "label_selector"])?,
                    start: o.i64(&["start"])?.unwrap_or(0),
                    end: o.i64(&["end"])?.unwrap_or(0),
                    group_by: o.strings(&["groupBy", "group_by"])?,
                    step: o.f64(&["step"])?.unwrap_or(0.0),
                    aggregation: o.enum_value(&["aggregation"], AGGREGATIONS)?,
                    stack_trace_selector: None,
                    limit: o.i64(&["limit"])?,
                };
                Ok((m, call_site_json(o)?))
            },
        )?;
        if !(m.step.is_finite() && m.step > 0.0) {
            return Err(WireError::param(
                "step",
                format!("{} is not a positive number of seconds", m.step),
            ));
        }
        let req = SelectSeriesRequest {
            range: range(m.start, m.end)?,
            aggregation: aggregation(m.aggregation)?,
            profile_type_id: m.profile_type_id,
            label_selector: m.label_selector,
            group_by: m.group_by,
            step_seconds: m.step,
            call_site,
            limit: m.limit,
        };
        req.selector()?;
        Ok(req)
    }

    /// The step in whole milliseconds (at least 1).
    pub fn step_ms(&self) -> i64 {
        ((self.step_seconds * 1000.0).round() as i64).max(1)
    }

    pub fn selector(&self) -> Result<Selector, WireError> {
        type_selector(&self.profile_type_id, &self.label_selector)
    }
}

/// `querier.v1.ProfileFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFormat {
    Unspecified,
    FlameGraph,
    /// Pyroscope's serialized tree; not produced by perfpilot.
    Tree,
    Other(i32),
}

const FORMATS: &[(&str, i32)] = &[
    ("PROFILE_FORMAT_UNSPECIFIED", 0),
    ("PROFILE_FORMAT_FLAMEGRAPH", 1),
    ("PROFILE_FORMAT_TREE", 2),
];

/// `SelectMergeStacktraces`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectMergeStacktracesRequest {
    pub profile_type_id: String,
    pub label_selector: String,
    pub range: TimeRange,
    pub max_nodes: Option<i64>,
    pub format: ProfileFormat,
    pub call_site: Vec<String>,
}

impl SelectMergeStacktracesRequest {
    pub fn decode(
        codec: Codec,
        content_encoding: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Self, WireError> {
        let (m, call_site) = with_body(
            codec,
            content_encoding,
            body,
            limits,
            "the SelectMergeStacktracesRequest",
            |b| {
                let m: proto::SelectMergeStacktracesRequest =
                    decode_proto(b, "the SelectMergeStacktracesRequest")?;
                let sites = m
                    .stack_trace_selector
                    .as_ref()
                    .map(|s| s.call_site.iter().map(|l| l.name.clone()).collect())
                    .unwrap_or_default();
                Ok((m, sites))
            },
            |o| {
                let m = proto::SelectMergeStacktracesRequest {
                    profile_type_id: o.string(&["profileTypeID", "profile_typeID"])?,
                    label_selector: o.string(&["labelSelector", "label_selector"])?,
                    start: o.i64(&["start"])?.unwrap_or(0),
                    end: o.i64(&["end"])?.unwrap_or(0),
                    max_nodes: o.i64(&["maxNodes", "max_nodes"])?,
                    format: o.enum_value(&["format"], FORMATS)?.unwrap_or(0),
                    stack_trace_selector: None,
                };
                Ok((m, call_site_json(o)?))
            },
        )?;
        let req = SelectMergeStacktracesRequest {
            range: range(m.start, m.end)?,
            format: match m.format {
                0 => ProfileFormat::Unspecified,
                1 => ProfileFormat::FlameGraph,
                2 => ProfileFormat::Tree,
                other => ProfileFormat::Other(other),
            },
            profile_type_id: m.profile_type_id,
            label_selector: m.label_selector,
            max_nodes: m.max_nodes,
            call_site,
        };
        req.selector()?;
        Ok(req)
    }

    pub fn selector(&self) -> Result<Selector, WireError> {
        type_selector(&self.profile_type_id, &self.label_selector)
    }

    /// `max_nodes`, or Pyroscope's default when unset or 0.
    pub fn max_nodes_or_default(&self) -> i64 {
        match self.max_nodes {
            Some(n) if n != 0 => n,
            _ => DEFAULT_MAX_NODES,
        }
    }
}

fn encode_json(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn label_pairs(labels: &[(String, String)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| LabelPair::new(k.clone(), v.clone()))
        .collect()
}

fn label_pairs_json(labels: &[(String, String)]) -> Value {
    Value::Array(
        labels
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect(),
    )
}

/// The `types.v1.ProfileType` of an id; an id that does not split into five
/// parts is returned with only `ID` and `name` set.
pub fn profile_type_message(id: &str) -> proto::ProfileType {
    let parts: Vec<&str> = id.split(':').collect();
    match parts.as_slice() {
        [name, st, su, pt, pu] => proto::ProfileType {
            id: id.to_string(),
            name: name.to_string(),
            sample_type: st.to_string(),
            sample_unit: su.to_string(),
            period_type: pt.to_string(),
            period_unit: pu.to_string(),
        },
        _ => proto::ProfileType {
            id: id.to_string(),
            name: id.to_string(),
            ..Default::default()
        },
    }
}

/// `ProfileTypesResponse` from profile type ids.
pub fn encode_profile_types(codec: Codec, ids: &[String]) -> Vec<u8> {
    let types: Vec<proto::ProfileType> = ids.iter().map(|id| profile_type_message(id)).collect();
    match codec {
        Codec::Proto => proto::ProfileTypesResponse {
            profile_types: types,
        }
        .encode_to_vec(),
        Codec::Json => {
            let list: Vec<Value> = types
                .iter()
                .map(|t| {
                    let mut o = Map::new();
                    for (k, v) in [
                        ("ID", &t.id),
                        ("name", &t.name),
                        ("sampleType", &t.sample_type),
                        ("sampleUnit", &t.sample_unit),
                        ("periodType", &t.period_type),
                        ("periodUnit", &t.period_unit),
                    ] {
                        if !v.is_empty() {
                            o.insert(k.to_string(), Value::String(v.clone()));
                        }
                    }
                    Value::Object(o)
                })
                .collect();
            encode_json(&json!({ "profileTypes": list }))
        }
    }
}

/// `LabelNamesResponse` / `LabelValuesResponse`.
pub fn encode_names(codec: Codec, names: &[String]) -> Vec<u8> {
    match codec {
        Codec::Proto => proto::NamesResponse {
            names: names.to_vec(),
        }
        .encode_to_vec(),
        Codec::Json => encode_json(&json!({ "names": names })),
    }
}

/// `SeriesResponse` from label sets.
pub fn encode_series(codec: Codec, label_sets: &[Labels]) -> Vec<u8> {
    match codec {
        Codec::Proto => proto::SeriesResponse {
            labels_set: label_sets
                .iter()
                .map(|l| proto::Labels {
                    labels: label_pairs(l),
                })
                .collect(),
        }
        .encode_to_vec(),
        Codec::Json => {
            let sets: Vec<Value> = label_sets
                .iter()
                .map(|l| json!({ "labels": label_pairs_json(l) }))
                .collect();
            encode_json(&json!({ "labelsSet": sets }))
        }
    }
}

/// `SelectSeriesResponse` from grouped points.
pub fn encode_select_series(codec: Codec, series: &[Points]) -> Vec<u8> {
    match codec {
        Codec::Proto => proto::SelectSeriesResponse {
            series: series
                .iter()
                .map(|s| proto::Series {
                    labels: label_pairs(&s.labels),
                    points: s
                        .points
                        .iter()
                        .map(|&(t, v)| proto::Point {
                            value: v as f64,
                            timestamp: t,
                        })
                        .collect(),
                })
                .collect(),
        }
        .encode_to_vec(),
        Codec::Json => {
            let list: Vec<Value> = series
                .iter()
                .map(|s| {
                    let points: Vec<Value> = s
                        .points
                        .iter()
                        .map(|&(t, v)| json!({"value": v as f64, "timestamp": i64_json(t)}))
                        .collect();
                    json!({ "labels": label_pairs_json(&s.labels), "points": points })
                })
                .collect();
            encode_json(&json!({ "series": list }))
        }
    }
}

/// The protobuf form of a flame graph.
pub fn flame_graph_message(fg: &FlameGraph) -> proto::FlameGraph {
    proto::FlameGraph {
        names: fg.names.clone(),
        levels: fg
            .levels
            .iter()
            .map(|l| proto::Level { values: l.clone() })
            .collect(),
        total: fg.total,
        max_self: fg.max_self,
    }
}

/// `SelectMergeStacktracesResponse` with the flame graph of `table`
/// (`max_nodes`: see [`SelectMergeStacktracesRequest::max_nodes_or_default`];
/// `None` shows every node).
pub fn encode_select_merge_stacktraces(
    codec: Codec,
    table: &StackTable,
    max_nodes: Option<i64>,
) -> Vec<u8> {
    let fg = flame_graph(table, max_nodes);
    match codec {
        Codec::Proto => proto::SelectMergeStacktracesResponse {
            flamegraph: Some(flame_graph_message(&fg)),
            tree: Vec::new(),
        }
        .encode_to_vec(),
        Codec::Json => {
            let levels: Vec<Value> = fg
                .levels
                .iter()
                .map(|l| json!({ "values": l.iter().map(|&v| i64_json(v)).collect::<Vec<_>>() }))
                .collect();
            encode_json(&json!({
                "flamegraph": {
                    "names": fg.names,
                    "levels": levels,
                    "total": i64_json(fg.total),
                    "maxSelf": i64_json(fg.max_self),
                }
            }))
        }
    }
}
