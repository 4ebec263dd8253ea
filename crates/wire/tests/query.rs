//! The querier side: request decoding in both codecs (field numbers checked
//! against hand-written protobuf bytes), response encoding, /render.

mod common;

use std::time::Instant;

use common::gzip;
use perfpilot_model::series::{Points, StackTable};
use perfpilot_wire::query::proto;
use perfpilot_wire::{
    encode_names, encode_profile_types, encode_render_json, encode_select_merge_stacktraces,
    encode_select_series, encode_series, flame_graph, Aggregation, Codec, LabelsRequest, Limits,
    ProfileFormat, ProfileTypesRequest, RenderParams, SelectMergeStacktracesRequest,
    SelectSeriesRequest, SeriesRequest,
};
use prost::Message;
use serde_json::{json, Value};

const PT: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// A minimal protobuf writer, independent of prost, so that the field
/// numbers in the crate are checked against the upstream .proto files.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn tag(&mut self, field: u64, wire: u64) {
        self.varint(field << 3 | wire);
    }
    fn int(mut self, field: u64, v: i64) -> Self {
        self.tag(field, 0);
        self.varint(v as u64);
        self
    }
    fn str(mut self, field: u64, s: &str) -> Self {
        self.tag(field, 2);
        self.varint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn msg(mut self, field: u64, m: Pb) -> Self {
        self.tag(field, 2);
        self.varint(m.0.len() as u64);
        self.0.extend_from_slice(&m.0);
        self
    }
    fn double(mut self, field: u64, v: f64) -> Self {
        self.tag(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn select_merge_stacktraces_request_both_codecs() {
    let pb = Pb::default()
        .str(1, PT)
        .str(2, r#"{service_name="api",env=~"prod|staging"}"#)
        .int(3, 1_700_000_000_000)
        .int(4, 1_700_003_600_000)
        .int(5, 16384)
        .int(6, 1)
        .msg(7, Pb::default().msg(1, Pb::default().str(1, "main")));
    let r = SelectMergeStacktracesRequest::decode(Codec::Proto, None, &pb.0, &limits()).unwrap();
    assert_eq!(r.profile_type_id, PT);
    assert_eq!(r.range.start_ms, 1_700_000_000_000);
    assert_eq!(r.range.end_ms, 1_700_003_600_000);
    assert_eq!(r.max_nodes, Some(16384));
    assert_eq!(r.format, ProfileFormat::FlameGraph);
    assert_eq!(r.call_site, vec!["main"]);
    let sel = r.selector().unwrap();
    assert!(sel.matches(&[
        ("__profile_type__".to_string(), PT.to_string()),
        ("env".to_string(), "prod".to_string()),
        ("service_name".to_string(), "api".to_string()),
    ]));
    assert!(!sel.matches(&[
        ("__profile_type__".to_string(), "memory:a:b:c:d".to_string()),
        ("env".to_string(), "prod".to_string()),
        ("service_name".to_string(), "api".to_string()),
    ]));

    let json = json!({
        "profileTypeID": PT,
        "labelSelector": "{service_name=\"api\"}",
        "start": "1700000000000",
        "end": 1_700_003_600_000i64,
        "maxNodes": "16384",
        "format": "PROFILE_FORMAT_TREE",
        "stackTraceSelector": {"callSite": [{"name": "main"}]}
    });
    let body = serde_json::to_vec(&json).unwrap();
    let r2 =
        SelectMergeStacktracesRequest::decode(Codec::Json, Some("gzip"), &gzip(&body), &limits())
            .unwrap();
    assert_eq!(r2.range, r.range);
    assert_eq!(r2.max_nodes, Some(16384));
    assert_eq!(r2.format, ProfileFormat::Tree);
    assert_eq!(r2.call_site, vec!["main"]);

    // Without max_nodes, it is None, not 0.
    let pb = Pb::default().str(1, PT).int(3, 1).int(4, 2);
    let r = SelectMergeStacktracesRequest::decode(Codec::Proto, None, &pb.0, &limits()).unwrap();
    assert_eq!(r.max_nodes, None);
    assert_eq!(r.format, ProfileFormat::Unspecified);
}

#[test]
fn select_series_request_both_codecs() {
    let pb = Pb::default()
        .str(1, PT)
        .str(2, "{}")
        .int(3, 1_000)
        .int(4, 61_000)
        .str(5, "pod")
        .str(5, "env")
        .double(6, 15.0)
        .int(7, 1)
        .int(9, 10);
    let r = SelectSeriesRequest::decode(Codec::Proto, None, &pb.0, &limits()).unwrap();
    assert_eq!(r.group_by, vec!["pod", "env"]);
    assert_eq!(r.step_seconds, 15.0);
    assert_eq!(r.step_ms(), 15_000);
    assert_eq!(r.aggregation, Some(Aggregation::Average));
    assert_eq!(r.limit, Some(10));

    let body =
        br#"{"profile_typeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","label_selector":"{}",
        "start":"1000","end":"61000","groupBy":["pod"],"step":0.5,
        "aggregation":"TIME_SERIES_AGGREGATION_TYPE_SUM"}"#;
    let r = SelectSeriesRequest::decode(Codec::Json, None, body, &limits()).unwrap();
    assert_eq!(r.step_ms(), 500);
    assert_eq!(r.aggregation, Some(Aggregation::Sum));
    assert_eq!(r.limit, None);

    for (body, msg) in [
        (
            r#"{"profileTypeID":"x","start":1,"end":2,"step":15}"#,
            "parameter \"profile_typeID\": \"x\" is not name:sample_type:sample_unit:period_type:period_unit",
        ),
        (
            r#"{"profileTypeID":"a:b:c:d:e","start":1,"end":2}"#,
            "parameter \"step\": 0 is not a positive number of seconds",
        ),
        (
            r#"{"profileTypeID":"a:b:c:d:e","start":5,"end":2,"step":1}"#,
            "end (2 ms) is before start (5 ms)",
        ),
        (
            r#"{"profileTypeID":"a:b:c:d:e","labelSelector":"{a=}","start":1,"end":2,"step":1}"#,
            "bad label selector \"{a=}\": bad selector at character 4: expected a quoted value",
        ),
        (
            r#"{"profileTypeID":"a:b:c:d:e","start":1,"end":2,"step":1,"aggregation":"NOPE"}"#,
            "malformed JSON in the SelectSeriesRequest: field \"aggregation\": unknown enum value \"NOPE\"",
        ),
        (r#"[1,2]"#, "malformed JSON in the SelectSeriesRequest: expected a JSON object"),
    ] {
        let err = SelectSeriesRequest::decode(Codec::Json, None, body.as_bytes(), &limits())
            .unwrap_err();
        assert_eq!(err.to_string(), msg, "{body}");
    }
    // Truncated protobuf.
    let pb = Pb::default().str(1, PT).str(2, "{}");
    let err = SelectSeriesRequest::decode(Codec::Proto, None, &pb.0[..pb.0.len() - 1], &limits())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("malformed protobuf in the SelectSeriesRequest"),
        "{err}"
    );
}

#[test]
fn label_and_series_requests() {
    let pb = Pb::default()
        .str(1, "{service_name=\"a\"}")
        .int(2, 10)
        .int(3, 20);
    let r = LabelsRequest::decode_label_names(Codec::Proto, None, &pb.0, &limits()).unwrap();
    assert_eq!(r.matchers, vec!["{service_name=\"a\"}"]);
    assert_eq!((r.range.start_ms, r.range.end_ms), (10, 20));
    assert_eq!(r.selectors().unwrap().len(), 1);

    let pb = Pb::default()
        .str(1, "pod")
        .str(2, "{}")
        .int(3, 10)
        .int(4, 20);
    let r = LabelsRequest::decode_label_values(Codec::Proto, None, &pb.0, &limits()).unwrap();
    assert_eq!(r.name, "pod");
    let r = LabelsRequest::decode_label_values(
        Codec::Json,
        None,
        br#"{"name":"pod","matchers":["{}"],"start":"10","end":"20"}"#,
        &limits(),
    )
    .unwrap();
    assert_eq!((r.name.as_str(), r.range.end_ms), ("pod", 20));
    let err = LabelsRequest::decode_label_values(Codec::Json, None, b"{}", &limits()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter \"name\": the label name is required"
    );

    let pb = Pb::default()
        .str(1, "{}")
        .str(2, "service_name")
        .int(3, 1)
        .int(4, 2);
    let r = SeriesRequest::decode(Codec::Proto, None, &pb.0, &limits()).unwrap();
    assert_eq!(r.label_names, vec!["service_name"]);
    let r = SeriesRequest::decode(
        Codec::Json,
        None,
        br#"{"matchers":["{}"],"labelNames":["service_name","__profile_type__"]}"#,
        &limits(),
    )
    .unwrap();
    assert_eq!(r.label_names.len(), 2);

    let r = ProfileTypesRequest::decode(
        Codec::Proto,
        None,
        &Pb::default().int(1, 5).int(2, 9).0,
        &limits(),
    )
    .unwrap();
    assert_eq!((r.range.start_ms, r.range.end_ms), (5, 9));
    // An empty JSON body is the empty message.
    let r = ProfileTypesRequest::decode(Codec::Json, None, b"", &limits()).unwrap();
    assert_eq!((r.range.start_ms, r.range.end_ms), (0, 0));
}

#[test]
fn profile_types_and_names_responses() {
    let ids = vec![PT.to_string(), "memory:alloc_space:bytes::".to_string()];
    let resp =
        proto::ProfileTypesResponse::decode(&encode_profile_types(Codec::Proto, &ids)[..]).unwrap();
    assert_eq!(resp.profile_types.len(), 2);
    let t = &resp.profile_types[0];
    assert_eq!(
        (
            t.id.as_str(),
            t.name.as_str(),
            t.sample_type.as_str(),
            t.sample_unit.as_str(),
            t.period_type.as_str(),
            t.period_unit.as_str()
        ),
        (
            PT,
            "process_cpu",
            "cpu",
            "nanoseconds",
            "cpu",
            "nanoseconds"
        )
    );
    // Field numbers of types.v1.ProfileType: ID=1, name=2, sample_type=4.
    let raw = encode_profile_types(Codec::Proto, &ids[..1]);
    let inner = Pb::default()
        .str(1, PT)
        .str(2, "process_cpu")
        .str(4, "cpu")
        .str(5, "nanoseconds")
        .str(6, "cpu")
        .str(7, "nanoseconds");
    assert_eq!(raw, Pb::default().msg(1, inner).0);

    let v: Value = serde_json::from_slice(&encode_profile_types(Codec::Json, &ids)).unwrap();
    assert_eq!(
        v,
        json!({"profileTypes": [
            {"ID": PT, "name": "process_cpu", "sampleType": "cpu", "sampleUnit": "nanoseconds", "periodType": "cpu", "periodUnit": "nanoseconds"},
            {"ID": "memory:alloc_space:bytes::", "name": "memory", "sampleType": "alloc_space", "sampleUnit": "bytes"}
        ]})
    );

    let names = vec!["pod".to_string(), "service_name".to_string()];
    assert_eq!(
        encode_names(Codec::Proto, &names),
        Pb::default().str(1, "pod").str(1, "service_name").0
    );
    let v: Value = serde_json::from_slice(&encode_names(Codec::Json, &names)).unwrap();
    assert_eq!(v, json!({"names": ["pod", "service_name"]}));

    let sets = vec![vec![("a".to_string(), "1".to_string())]];
    let label = Pb::default().str(1, "a").str(2, "1");
    assert_eq!(
        encode_series(Codec::Proto, &sets),
        Pb::default().msg(2, Pb::default().msg(1, label)).0
    );
    let v: Value = serde_json::from_slice(&encode_series(Codec::Json, &sets)).unwrap();
    assert_eq!(
        v,
        json!({"labelsSet": [{"labels": [{"name": "a", "value": "1"}]}]})
    );
}

#[test]
fn select_series_response() {
    let points = vec![Points {
        labels: vec![("pod".to_string(), "p1".to_string())],
        points: vec![(1_000, 5), (16_000, 7)],
    }];
    let resp =
        proto::SelectSeriesResponse::decode(&encode_select_series(Codec::Proto, &points)[..])
            .unwrap();
    assert_eq!(resp.series[0].points[1].value, 7.0);
    assert_eq!(resp.series[0].points[1].timestamp, 16_000);
    assert_eq!(resp.series[0].labels[0].name, "pod");
    // types.v1.Point: double value = 1 (wire type 1), int64 timestamp = 2.
    let point = Pb::default().double(1, 5.0).int(2, 1_000);
    let bytes = encode_select_series(Codec::Proto, &points);
    let needle = Pb::default().msg(2, point).0;
    assert!(bytes.windows(needle.len()).any(|w| w == needle.as_slice()));
    let v: Value = serde_json::from_slice(&encode_select_series(Codec::Json, &points)).unwrap();
    assert_eq!(
        v,
        json!({"series": [{"labels": [{"name": "pod", "value": "p1"}],
            "points": [{"value": 5.0, "timestamp": "1000"}, {"value": 7.0, "timestamp": "16000"}]}]})
    );
}

fn small_table() -> StackTable {
    StackTable {
        functions: vec!["main".into(), "a".into(), "b".into()],
        stacks: vec![(vec![0, 1], 3), (vec![0, 2], 1), (vec![0], 2)],
    }
}

#[test]
fn merge_stacktraces_response() {
    // total 6: main (self 2) → a 3, b 1.
    let bytes = encode_select_merge_stacktraces(Codec::Proto, &small_table(), None);
    let resp = proto::SelectMergeStacktracesResponse::decode(&bytes[..]).unwrap();
    let fg = resp.flamegraph.unwrap();
    assert_eq!(fg.names, vec!["total", "main", "a", "b"]);
    let levels: Vec<Vec<i64>> = fg.levels.iter().map(|l| l.values.clone()).collect();
    assert_eq!(
        levels,
        vec![
            vec![0, 6, 0, 0],
            vec![0, 6, 2, 1],
            // a after main's self (x=2), b right after a.
            vec![2, 3, 3, 2, 0, 1, 1, 3],
        ]
    );
    assert_eq!((fg.total, fg.max_self), (6, 3));
    // FlameGraph field numbers: names=1, levels=2 (Level.values=1, packed), total=3, max_self=4.
    let mut level0 = Pb::default();
    level0.tag(1, 2);
    level0.varint(4);
    level0.0.extend_from_slice(&[0, 6, 0, 0]);
    let expected_start = Pb::default()
        .str(1, "total")
        .str(1, "main")
        .str(1, "a")
        .str(1, "b")
        .msg(2, level0);
    let mut inner = Vec::new();
    // The response wraps the flame graph in field 1.
    assert_eq!(bytes[0], 0x0a);
    let mut i = 1;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let b = bytes[i];
        len |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    inner.extend_from_slice(&bytes[i..i + len]);
    assert!(inner.starts_with(&expected_start.0));
    assert!(inner.ends_with(&Pb::default().int(3, 6).int(4, 3).0));

    let v: Value = serde_json::from_slice(&encode_select_merge_stacktraces(
        Codec::Json,
        &small_table(),
        Some(1),
    ))
    .unwrap();
    // max_nodes 1 keeps main (total 6) only; a and b become "other".
    assert_eq!(
        v,
        json!({"flamegraph": {
            "names": ["total", "main", "other"],
            "levels": [
                {"values": ["0", "6", "0", "0"]},
                {"values": ["0", "6", "2", "1"]},
                {"values": ["2", "4", "4", "2"]}
            ],
            "total": "6",
            "maxSelf": "4"
        }})
    );
}

#[test]
fn render_json_structure() {
    let params = RenderParams::parse(
        "query=process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds%7Bservice_name%3D%22api%22%7D&from=1700000000&until=1700000060&format=json",
        1_700_000_100_000,
    )
    .unwrap();
    assert_eq!(params.step_seconds(), 15);
    let timeline = Points {
        labels: vec![],
        points: vec![(1_700_000_000_000, 4), (1_700_000_030_000, 2)],
    };
    let v: Value = serde_json::from_slice(&encode_render_json(
        &params,
        &small_table(),
        Some(&timeline),
    ))
    .unwrap();
    assert_eq!(
        v,
        json!({
            "version": 1,
            "flamebearer": {
                "names": ["total", "main", "a", "b"],
                "levels": [[0, 6, 0, 0], [0, 6, 2, 1], [2, 3, 3, 2, 0, 1, 1, 3]],
                "numTicks": 6,
                "maxSelf": 3
            },
            "metadata": {"format": "single", "spyName": "", "sampleRate": 100, "units": "samples", "name": "cpu"},
            "timeline": {"startTime": 1_700_000_000i64, "samples": [4, 0, 2, 0], "durationDelta": 15, "watermarks": null},
            "groups": null,
            "heatmap": null
        })
    );
}

#[test]
fn flame_graph_of_200k_stacks_is_fast() {
    // 200k distinct stacks, depth 8-40, over 5000 functions.
    let functions: Vec<String> = (0..5000)
        .map(|i| format!("pkg{}.func{}", i % 97, i))
        .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut stacks = Vec::with_capacity(200_000);
    for i in 0..200_000u32 {
        let depth = 8 + next(33) as usize;
        // Shared prefixes, as real profiles have.
        let mut s: Vec<u32> = (0..depth.min(5))
            .map(|d| (d as u32) * 7 + (i % 3))
            .collect();
        while s.len() < depth {
            s.push(next(5000) as u32);
        }
        stacks.push((s, 1 + next(1000) as i64));
    }
    let table = StackTable { functions, stacks };
    // Best of three: the machine may be busy with other work.
    let mut best = std::time::Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let fg = flame_graph(&table, Some(16_384));
        best = best.min(start.elapsed());
        assert_eq!(fg.total, table.total());
    }
    let start = Instant::now();
    let full = flame_graph(&table, None);
    let elapsed_full = start.elapsed();
    assert_eq!(full.total, table.total());
    eprintln!("200k stacks: {best:?} with max_nodes 16384, {elapsed_full:?} all nodes");
    let elapsed = best;
    if !cfg!(debug_assertions) {
        assert!(elapsed.as_millis() < 100, "{elapsed:?}");
    }
}
