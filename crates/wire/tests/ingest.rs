//! Decoding what SDKs send: pprof, Push (protobuf and JSON, gzipped or not),
//! legacy /ingest (folded, lines, pprof, multipart), and rejecting what
//! they must not send.

mod common;

use std::time::Instant;

use common::*;
use perfpilot_wire::{
    batch_from_legacy, batch_from_pprof, batch_from_push, LabelPair, LegacyIngestParams, Limits,
    PushRequest, RawProfileSeries, RawSample, WireError,
};
use prost::Message;

const CPU_TIME_NS: i64 = 1_699_999_990_000_000_000;
const CPU_TIME_MS: i64 = 1_699_999_990_000;

fn push_request(labels: &[(&str, &str)], profiles: Vec<Vec<u8>>) -> PushRequest {
    PushRequest {
        series: vec![RawProfileSeries {
            labels: labels.iter().map(|(k, v)| LabelPair::new(*k, *v)).collect(),
            samples: profiles
                .into_iter()
                .enumerate()
                .map(|(i, raw_profile)| RawSample {
                    raw_profile,
                    id: format!("00000000-0000-0000-0000-00000000000{i}"),
                })
                .collect(),
        }],
    }
}

fn expected_go_cpu(extra: &[(&str, &str)]) -> Readable {
    let mut out = Readable::new();
    for (id, scale) in [
        ("process_cpu:samples:count:cpu:nanoseconds", 1),
        ("process_cpu:cpu:nanoseconds:cpu:nanoseconds", 10_000_000),
    ] {
        for (pid, thread, stacks_) in [
            (
                "42",
                None,
                vec![("main.main;main.work;main.hash", 3), ("main.main", 1)],
            ),
            (
                "43",
                Some("worker"),
                vec![("main.main;main.work;main.hash", 2)],
            ),
        ] {
            let mut l: Vec<(&str, &str)> = extra.to_vec();
            l.push(("__profile_type__", id));
            l.push(("pid", pid));
            if let Some(t) = thread {
                l.push(("thread_name", t));
            }
            let s: Vec<(&str, i64)> = stacks_.iter().map(|(s, v)| (*s, v * scale)).collect();
            out.insert((labels(&l), CPU_TIME_MS), stacks(&s));
        }
    }
    out
}

#[test]
fn pprof_becomes_one_series_per_sample_type_and_label_set() {
    let body = encode(&go_cpu_profile(CPU_TIME_NS));
    let b = batch_from_pprof(
        &body,
        &labels(&[("host", "h1"), ("__private", "x")]),
        "checkout",
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    assert_store_contract(&b);
    assert_eq!(
        readable(&b),
        expected_go_cpu(&[("host", "h1"), ("service_name", "checkout")])
    );
    // Uncompressed pprof works too.
    let raw = gunzip(&body);
    let b2 = batch_from_pprof(&raw, &[], "checkout", NOW_MS, &Limits::default()).unwrap();
    assert_eq!(
        readable(&b2),
        expected_go_cpu(&[("service_name", "checkout")])
    );
    // A given __name__ wins over the derived one.
    let b3 = batch_from_pprof(
        &raw,
        &labels(&[("__name__", "custom")]),
        "checkout",
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    assert!(b3.profiles.iter().all(|p| p
        .labels
        .iter()
        .any(|(k, v)| k == "__profile_type__" && v.starts_with("custom:"))));
}

#[test]
fn pprof_without_time_uses_now_and_memory_types_follow_pyroscope() {
    let body = encode(&go_heap_profile(0, 5, 2));
    let b = batch_from_pprof(&body, &[], "svc", NOW_MS, &Limits::default()).unwrap();
    let mut ids: Vec<(String, i64)> = b
        .profiles
        .iter()
        .map(|p| {
            (
                p.labels
                    .iter()
                    .find(|(k, _)| k == "__profile_type__")
                    .unwrap()
                    .1
                    .clone(),
                p.time_ms,
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            ("memory:alloc_objects:count:space:bytes".to_string(), NOW_MS),
            ("memory:alloc_space:bytes:space:bytes".to_string(), NOW_MS),
            ("memory:inuse_objects:count:space:bytes".to_string(), NOW_MS),
            ("memory:inuse_space:bytes:space:bytes".to_string(), NOW_MS),
        ]
    );
}

#[test]
fn push_protobuf_gzipped_or_not_with_gzipped_profiles_or_not() {
    let profile = encode(&go_cpu_profile(CPU_TIME_NS));
    let series_labels = [
        ("__name__", "process_cpu"),
        ("service_name", "checkout"),
        ("__delta__", "false"),
        ("__session_id__", "abc"),
        ("otel.scope.name", "sdk"),
    ];
    let want = expected_go_cpu(&[
        ("service_name", "checkout"),
        ("__session_id__", "abc"),
        ("otel.scope.name", "sdk"),
    ]);
    for raw in [profile.clone(), gunzip(&profile)] {
        let body = push_request(&series_labels, vec![raw]).encode_to_vec();
        let b =
            batch_from_push("application/proto", None, &body, NOW_MS, &Limits::default()).unwrap();
        assert_store_contract(&b);
        assert_eq!(readable(&b), want);
        let b = batch_from_push(
            "application/proto",
            Some("gzip"),
            &gzip(&body),
            NOW_MS,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(readable(&b), want);
    }
}

#[test]
fn push_json_uses_camel_case_and_base64() {
    let profile = encode(&go_cpu_profile(CPU_TIME_NS));
    let req = push_request(
        &[("__name__", "process_cpu"), ("service_name", "checkout")],
        vec![profile.clone()],
    );
    let json = req.to_json();
    let text = String::from_utf8(json.clone()).unwrap();
    assert!(text.contains("\"rawProfile\":\"H4sI"), "{text}");
    let want = expected_go_cpu(&[("service_name", "checkout")]);
    let b = batch_from_push("application/json", None, &json, NOW_MS, &Limits::default()).unwrap();
    assert_eq!(readable(&b), want);
    let b = batch_from_push(
        "application/json; charset=utf-8",
        Some("gzip"),
        &gzip(&json),
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(readable(&b), want);
    // Proto field names and unpadded URL-safe base64 are accepted as well.
    let b64 = base64_url_unpadded(&profile);
    let alt = format!(
        r#"{{"series":[{{"labels":[{{"name":"__name__","value":"process_cpu"}},{{"name":"service_name","value":"checkout"}}],
            "samples":[{{"raw_profile":"{b64}","ID":null}}],"annotations":[]}}],"unknownField":1}}"#
    );
    let b = batch_from_push(
        "application/json",
        None,
        alt.as_bytes(),
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(readable(&b), want);
}

fn base64_url_unpadded(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn push_errors_say_where() {
    let limits = Limits::default();
    let profile = encode(&go_cpu_profile(CPU_TIME_NS));
    let body = push_request(&[("service_name", "x")], vec![profile.clone()]).encode_to_vec();

    // Truncated protobuf.
    let err = batch_from_push(
        "application/proto",
        None,
        &body[..body.len() / 2],
        NOW_MS,
        &limits,
    )
    .unwrap_err();
    assert!(matches!(err, WireError::Protobuf { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("malformed protobuf in the PushRequest"),
        "{err}"
    );

    // A truncated pprof inside a valid request.
    let raw = gunzip(&profile);
    let body = push_request(
        &[("service_name", "x")],
        vec![raw[..raw.len() / 2].to_vec()],
    )
    .encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert!(err.to_string().starts_with("series 0 sample 0: "), "{err}");

    // No service_name.
    let body = push_request(&[("__name__", "process_cpu")], vec![profile.clone()]).encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert_eq!(err.to_string(), "series 0: label service_name is required");

    // Duplicate label.
    let body = push_request(
        &[("service_name", "a"), ("service_name", "b")],
        vec![profile.clone()],
    )
    .encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "series 0: label \"service_name\": duplicate label name"
    );

    // Bad label name.
    let body = push_request(
        &[("service_name", "a"), ("pod-name", "b")],
        vec![profile.clone()],
    )
    .encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "series 0 sample 0: label \"pod-name\": invalid name; label names must match [a-zA-Z_][a-zA-Z0-9_.]*"
    );

    // Too long a label value and name.
    let long = "v".repeat(2049);
    let body = push_request(
        &[("service_name", "a"), ("big", &long)],
        vec![profile.clone()],
    )
    .encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("series 0: label \"big\": value \"vvvv")
            && err
                .to_string()
                .ends_with("is 2049 bytes long; the limit is 2048 (--max-label-value-len)"),
        "{err}"
    );
    let long_name = "n".repeat(1025);
    let body = push_request(
        &[("service_name", "a"), (&long_name, "v")],
        vec![profile.clone()],
    )
    .encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("name is 1025 bytes long; the limit is 1024 (--max-label-name-len)"),
        "{err}"
    );

    // Too many labels: 29 + service_name + __profile_type__ + pid = 32.
    let many: Vec<(String, String)> = (0..29)
        .map(|i| (format!("l{i}"), "v".to_string()))
        .collect();
    let mut l: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    l.push(("service_name", "a"));
    let body = push_request(&l, vec![profile.clone()]).encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "series 0 sample 0 has 32 labels; the limit is 30 (--max-labels-per-series)"
    );

    // A profile 20 minutes in the future.
    let future = encode(&go_cpu_profile((NOW_MS + 20 * 60_000) * 1_000_000));
    let body = push_request(&[("service_name", "a")], vec![future]).encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "series 0 sample 0: timestamp 1700001200000 ms is 1200000 ms in the future; at most 600000 ms is allowed (--max-future)"
    );

    // Wrong content type, unknown encoding, JSON that is not a request.
    let err = batch_from_push("application/grpc", None, b"", NOW_MS, &limits).unwrap_err();
    assert_eq!(err.http_status(), 415);
    let err = batch_from_push("application/proto", Some("br"), b"", NOW_MS, &limits).unwrap_err();
    assert_eq!(err.http_status(), 415);
    let err = batch_from_push(
        "application/json",
        None,
        br#"{"series":[{"samples":[{"rawProfile":"!!"}]}]}"#,
        NOW_MS,
        &limits,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed JSON in series 0 sample 0: field \"rawProfile\": invalid base64: Invalid symbol 33, offset 0."
    );
}

#[test]
fn gzip_bomb_is_stopped_at_the_cap() {
    let bomb = gzip_bomb_1gib();
    assert!(bomb.len() < 2 << 20);
    let limits = Limits::default();

    let start = Instant::now();
    let err =
        batch_from_push("application/proto", Some("gzip"), &bomb, NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the request body decompresses to more than 64 MiB (--max-decompressed-mib)"
    );
    assert_eq!(err.http_status(), 413);

    // Inside a Push sample (the body itself is small).
    let body = push_request(&[("service_name", "a")], vec![bomb.clone()]).encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "series 0 sample 0 decompresses to more than 64 MiB (--max-decompressed-mib)"
    );

    // As a legacy pprof body, and as pprof handed to the agent path.
    let params = LegacyIngestParams::parse("name=app&format=pprof", NOW_MS).unwrap();
    let err = batch_from_legacy(&params, None, &bomb, NOW_MS, &limits).unwrap_err();
    assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
    let err = batch_from_pprof(&bomb, &[], "a", NOW_MS, &limits).unwrap_err();
    assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
    // Four times 64 MiB of inflating, in well under a minute even unoptimized.
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());

    // Gzip inside gzip cannot escape the cap either.
    let nested = gzip(&bomb);
    let err = batch_from_pprof(&nested, &[], "a", NOW_MS, &limits).unwrap_err();
    assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
}

#[test]
fn legacy_folded_cpu_upload() {
    let params = LegacyIngestParams::parse(
        "name=checkout.cpu%7Benv%3Dprod%7D&from=1699999990&until=1700000000&sampleRate=100&spyName=pyspy&units=samples&aggregationType=sum",
        NOW_MS,
    )
    .unwrap();
    let body = b"main;work;hash 3\nmain 1\n\nmain;work;hash 2\r\nmain;idle 0\n";
    let b = batch_from_legacy(
        &params,
        Some("binary/octet-stream"),
        body,
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    assert_store_contract(&b);
    let mut want = Readable::new();
    want.insert(
        (
            labels(&[
                (
                    "__profile_type__",
                    "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
                ),
                ("env", "prod"),
                ("pyroscope_spy", "pyspy"),
                ("service_name", "checkout"),
            ]),
            CPU_TIME_MS,
        ),
        stacks(&[("main;work;hash", 50_000_000), ("main", 10_000_000)]),
    );
    assert_eq!(readable(&b), want);

    // Gzipped bodies are recognised by their magic bytes.
    let b2 = batch_from_legacy(&params, None, &gzip(body), NOW_MS, &Limits::default()).unwrap();
    assert_eq!(readable(&b2), want);
}

#[test]
fn legacy_lines_and_memory_suffix() {
    let params = LegacyIngestParams::parse(
        "name=svc.alloc_objects&format=lines&from=1699999990",
        NOW_MS,
    )
    .unwrap();
    let b = batch_from_legacy(&params, None, b"a;b\na;b\na\n", NOW_MS, &Limits::default()).unwrap();
    let mut want = Readable::new();
    want.insert(
        (
            labels(&[
                ("__profile_type__", "memory:alloc_objects:count::"),
                ("service_name", "svc"),
            ]),
            CPU_TIME_MS,
        ),
        stacks(&[("a;b", 2), ("a", 1)]),
    );
    assert_eq!(readable(&b), want);
}

#[test]
fn legacy_folded_errors() {
    let params = LegacyIngestParams::parse("name=app.cpu&from=1699999990", NOW_MS).unwrap();
    let limits = Limits::default();
    let err = batch_from_legacy(&params, None, b"a;b 1\na;b\n", NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "folded stacks, line 2: no sample count; expected `frame;frame;...;leaf COUNT`"
    );
    let err = batch_from_legacy(&params, None, b"a;b x12\n", NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "folded stacks, line 1: \"x12\" is not a sample count; expected a non-negative integer after the last space"
    );
    let err = batch_from_legacy(&params, None, b"a;b -1\n", NOW_MS, &limits).unwrap_err();
    assert!(err.to_string().contains("non-negative"), "{err}");
    let err = batch_from_legacy(&params, None, b"a\xff 1\n", NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "folded stacks, line 1: not valid UTF-8 (bad byte at column 2)"
    );
    // Overflow when scaling to nanoseconds.
    let err =
        batch_from_legacy(&params, None, b"a 9223372036854775807\n", NOW_MS, &limits).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
    // A future `from`.
    let p = LegacyIngestParams::parse("name=app.cpu&from=now%2B1h", NOW_MS).unwrap();
    let err = batch_from_legacy(&p, None, b"a 1\n", NOW_MS, &limits).unwrap_err();
    assert!(matches!(err, WireError::FutureTimestamp { .. }), "{err}");
    // Too many tags.
    let tags: Vec<String> = (0..30).map(|i| format!("t{i}=v")).collect();
    let p = LegacyIngestParams::parse(&format!("name=app.cpu%7B{}%7D", tags.join("%2C")), NOW_MS)
        .unwrap();
    let err = batch_from_legacy(&p, None, b"a 1\n", NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the folded profile has 32 labels; the limit is 30 (--max-labels-per-series)"
    );
    // Unsupported formats.
    let p = LegacyIngestParams::parse("name=app&format=jfr", NOW_MS).unwrap();
    let err = batch_from_legacy(&p, None, b"", NOW_MS, &limits).unwrap_err();
    assert_eq!(err.http_status(), 415);
}

#[test]
fn legacy_pprof_body() {
    let params = LegacyIngestParams::parse(
        "name=checkout%7Bregion%3Deu%7D&from=1699999990&until=1700000000&format=pprof&spyName=gospy",
        NOW_MS,
    )
    .unwrap();
    let b = batch_from_legacy(
        &params,
        Some("binary/octet-stream"),
        &encode(&go_cpu_profile(CPU_TIME_NS)),
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    assert_store_contract(&b);
    assert_eq!(
        readable(&b),
        expected_go_cpu(&[
            ("service_name", "checkout"),
            ("region", "eu"),
            ("pyroscope_spy", "gospy")
        ])
    );
}

fn multipart(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, data) in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        b.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}.pprof\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

#[test]
fn legacy_multipart_like_pyroscope_go() {
    // pyroscope-go: no format parameter, from/until in nanoseconds, the
    // session id among the tags, a sample_type_config part.
    let params = LegacyIngestParams::parse(
        "aggregationType=&from=1699999990000000000&name=checkout%7B__session_id__%3D294b9729f5a7de95%2Cnamespace%3Dprod%7D\
         &sampleRate=100&spyName=gospy&units=&until=1700000000000000000",
        NOW_MS,
    )
    .unwrap();
    assert_eq!(params.from_ms, CPU_TIME_MS);
    let config = br#"{"alloc_objects":{"units":"objects"},"alloc_space":{"units":"bytes"},
        "inuse_space":{"units":"bytes","aggregation":"average"},"inuse_objects":{"units":"objects","aggregation":"average"}}"#;
    let heap = encode(&go_heap_profile(CPU_TIME_NS, 5, 2));
    let body = multipart(
        "6b2e1f0a9c",
        &[("profile", &heap), ("sample_type_config", config)],
    );
    let b = batch_from_legacy(
        &params,
        Some("multipart/form-data; boundary=6b2e1f0a9c"),
        &body,
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    assert_store_contract(&b);
    let r = readable(&b);
    let key = (
        labels(&[
            ("__profile_type__", "memory:alloc_space:bytes:space:bytes"),
            ("__session_id__", "294b9729f5a7de95"),
            ("namespace", "prod"),
            ("pyroscope_spy", "gospy"),
            ("service_name", "checkout"),
        ]),
        CPU_TIME_MS,
    );
    assert_eq!(r.get(&key), Some(&stacks(&[("main.main;main.alloc", 320)])));
    assert_eq!(r.len(), 4);
}

#[test]
fn legacy_multipart_prev_profile_subtracts_cumulative_types() {
    let params =
        LegacyIngestParams::parse("name=app&from=1699999990&format=pprof", NOW_MS).unwrap();
    let cur = encode(&go_heap_profile(CPU_TIME_NS, 12, 4));
    let prev = encode(&go_heap_profile(CPU_TIME_NS - 10_000_000_000, 5, 3));
    // No sample_type_config: Pyroscope's defaults call alloc_* cumulative
    // and inuse_* not.
    let body = multipart("b", &[("profile", &cur), ("prev_profile", &prev)]);
    let b = batch_from_legacy(
        &params,
        Some("multipart/form-data; boundary=b"),
        &body,
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    let values: std::collections::BTreeMap<String, i64> = b
        .profiles
        .iter()
        .map(|p| {
            let id = p
                .labels
                .iter()
                .find(|(k, _)| k == "__profile_type__")
                .unwrap()
                .1
                .clone();
            (id, p.samples.iter().map(|s| s.1).sum())
        })
        .collect();
    assert_eq!(
        values,
        [
            ("memory:alloc_objects:count:space:bytes".to_string(), 7),
            ("memory:alloc_space:bytes:space:bytes".to_string(), 7 * 64),
            ("memory:inuse_objects:count:space:bytes".to_string(), 4),
            ("memory:inuse_space:bytes:space:bytes".to_string(), 4 * 64),
        ]
        .into_iter()
        .collect()
    );
    // A config that says nothing is cumulative keeps the values.
    let config = br#"{"alloc_objects":{"cumulative":false}}"#;
    let body = multipart(
        "b",
        &[
            ("profile", &cur),
            ("prev_profile", &prev),
            ("sample_type_config", config),
        ],
    );
    let b = batch_from_legacy(
        &params,
        Some("multipart/form-data; boundary=b"),
        &body,
        NOW_MS,
        &Limits::default(),
    )
    .unwrap();
    let alloc: i64 = b
        .profiles
        .iter()
        .filter(|p| {
            p.labels
                .iter()
                .any(|(_, v)| v == "memory:alloc_objects:count:space:bytes")
        })
        .flat_map(|p| p.samples.iter().map(|s| s.1))
        .sum();
    assert_eq!(alloc, 12);
}

#[test]
fn legacy_multipart_errors() {
    let params = LegacyIngestParams::parse("name=app", NOW_MS).unwrap();
    let limits = Limits::default();
    let ct = Some("multipart/form-data; boundary=b");
    let body = multipart("b", &[("other", b"x")]);
    let err = batch_from_legacy(&params, ct, &body, NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "multipart/form-data body: no \"profile\" part"
    );
    let prof = encode(&go_cpu_profile(CPU_TIME_NS));
    let body = multipart(
        "b",
        &[("profile", &prof), ("sample_type_config", b"{not json")],
    );
    let err = batch_from_legacy(&params, ct, &body, NOW_MS, &limits).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("malformed JSON in the sample_type_config part"),
        "{err}"
    );
    let body = multipart("b", &[("profile", &prof[..prof.len() / 2])]);
    let err = batch_from_legacy(&params, ct, &body, NOW_MS, &limits).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the profile part is not valid gzip"),
        "{err}"
    );
    let body = multipart("b", &[("profile", &prof)]);
    let err =
        batch_from_legacy(&params, ct, &body[..body.len() - 10], NOW_MS, &limits).unwrap_err();
    assert!(
        err.to_string().contains("not terminated by a boundary"),
        "{err}"
    );
}

#[test]
fn sample_limit_applies_across_series() {
    let limits = Limits {
        max_samples_per_request: 5,
        ..Limits::default()
    };
    let profile = encode(&go_cpu_profile(CPU_TIME_NS));
    // 2 sample types × 3 non-zero (stack, labels) samples = 6.
    let body = push_request(&[("service_name", "a")], vec![profile]).encode_to_vec();
    let err = batch_from_push("application/proto", None, &body, NOW_MS, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the request has more than 5 samples (--max-samples-per-request)"
    );
}

#[test]
fn no_prefix_or_byte_flip_makes_a_decoder_panic() {
    let limits = Limits::default();
    let raw = gunzip(&encode(&go_cpu_profile(CPU_TIME_NS)));
    let push = push_request(
        &[("service_name", "a"), ("__name__", "process_cpu")],
        vec![raw.clone()],
    )
    .encode_to_vec();
    let json = push_request(&[("service_name", "a")], vec![raw.clone()]).to_json();
    let form = multipart("xyz", &[("profile", &raw), ("sample_type_config", b"{}")]);
    let ct = Some("multipart/form-data; boundary=xyz");
    let params = LegacyIngestParams::parse("name=app", NOW_MS).unwrap();
    let folded = b"a;b;c 10\na;b 5\nx 1\n".to_vec();
    let lines = LegacyIngestParams::parse("name=app&format=lines", NOW_MS).unwrap();
    let run = |push: &[u8], json: &[u8], form: &[u8], folded: &[u8]| {
        let _ = batch_from_push("application/proto", None, push, NOW_MS, &limits);
        let _ = batch_from_push("application/json", None, json, NOW_MS, &limits);
        let _ = batch_from_legacy(&params, ct, form, NOW_MS, &limits);
        let _ = batch_from_legacy(&params, None, folded, NOW_MS, &limits);
        let _ = batch_from_legacy(&lines, None, folded, NOW_MS, &limits);
    };
    let longest = push.len().max(json.len()).max(form.len());
    for len in 0..=longest {
        let cut = |b: &[u8]| b[..len.min(b.len())].to_vec();
        run(&cut(&push), &cut(&json), &cut(&form), &cut(&folded));
    }
    for i in 0..longest {
        for flip in [0x01u8, 0x80, 0xff] {
            let mutate = |b: &[u8]| {
                let mut b = b.to_vec();
                if let Some(x) = b.get_mut(i) {
                    *x ^= flip;
                }
                b
            };
            run(
                &mutate(&push),
                &mutate(&json),
                &mutate(&form),
                &mutate(&folded),
            );
        }
    }
}

#[test]
fn the_memory_pool_is_charged_while_a_request_holds_its_ticket() {
    // 6 MiB of output grows its buffer to 8 MiB: room for one at a time.
    let pool = perfpilot_wire::MemoryPool::new(12 << 20);
    let six = zstd::encode_all(&vec![0u8; 6 << 20][..], 1).unwrap();
    let with = |t: &perfpilot_wire::MemoryTicket| Limits {
        memory: Some(t.clone()),
        ..Limits::default()
    };
    let first = pool.ticket();
    let out = perfpilot_wire::decompress_zstd(&six, &with(&first), "first").unwrap();
    assert_eq!(out.len(), 6 << 20);
    assert!(pool.held() >= 6 << 20, "{}", pool.held());
    // Another request finds no room: 503, naming the flag.
    let second = pool.ticket();
    let err = perfpilot_wire::decompress_zstd(&six, &with(&second), "second").unwrap_err();
    assert_eq!(err.http_status(), 503);
    assert_eq!(err.connect_code(), "unavailable");
    assert!(err.to_string().contains("--max-ingest-memory-mib"), "{err}");
    // Once the first request is done, its charges are given back.
    drop(out);
    drop(first);
    assert_eq!(pool.held(), second.held());
    perfpilot_wire::decompress_zstd(&six, &with(&second), "second").unwrap();
    drop(second);
    assert_eq!(pool.held(), 0);
    assert!(pool.peak() <= 12 << 20, "{}", pool.peak());
}

#[test]
fn the_decoded_batch_is_capped() {
    let limits = Limits {
        max_decoded_bytes: 1 << 20,
        ..Limits::default()
    };
    // 10k distinct 200-byte names: 2 MB of names.
    let body: String = (0..10_000)
        .map(|i| format!("main;{}{i} 1\n", "f".repeat(200)))
        .collect();
    let params = LegacyIngestParams::parse("name=app.cpu&from=1699999990", NOW_MS).unwrap();
    let err = batch_from_legacy(&params, None, body.as_bytes(), NOW_MS, &limits).unwrap_err();
    assert_eq!(err.http_status(), 413);
    assert_eq!(
        err.to_string(),
        "the request decodes to more than 1 MiB of stacks, names and series labels \
         (--max-decoded-mib)"
    );
}

#[test]
fn zstd_pprof_is_recognised_by_its_magic_number() {
    let raw = gunzip(&encode(&go_cpu_profile(CPU_TIME_NS)));
    let zst = zstd::encode_all(&raw[..], 3).unwrap();
    let a = batch_from_pprof(&zst, &[], "checkout", NOW_MS, &Limits::default()).unwrap();
    let b = batch_from_pprof(&raw, &[], "checkout", NOW_MS, &Limits::default()).unwrap();
    assert_eq!(readable(&a), readable(&b));
}

#[test]
fn times_older_than_the_retention_are_refused() {
    let limits = Limits {
        max_age_ms: 3_600_000,
        ..Limits::default()
    };
    for (from, time) in [("0", "0"), ("now-2h", "1699992800000")] {
        let p = LegacyIngestParams::parse(&format!("name=app.cpu&from={from}"), NOW_MS).unwrap();
        let err = batch_from_legacy(&p, None, b"a 1\n", NOW_MS, &limits).unwrap_err();
        assert_eq!(err.http_status(), 400);
        assert!(
            err.to_string()
                .starts_with(&format!("the folded profile: timestamp {time} ms is"))
                && err
                    .to_string()
                    .ends_with("old; the store keeps 3600000 ms (--retention)"),
            "{err}"
        );
    }
    let p = LegacyIngestParams::parse("name=app.cpu&from=now-30m", NOW_MS).unwrap();
    batch_from_legacy(&p, None, b"a 1\n", NOW_MS, &limits).unwrap();
}

#[test]
fn frames_are_counted_the_same_on_the_fast_and_the_model_path() {
    // A stack of exactly the limit passes both paths; one more frame fails
    // both, naming the sample.
    for (depth, ok) in [(8, true), (9, false)] {
        let limits = Limits {
            max_frames_per_stack: 8,
            ..Limits::default()
        };
        let mut p = go_cpu_profile(CPU_TIME_NS);
        let f = p.add_function_named("deep");
        let loc = p.add_function_location(f);
        let stack = p.add_stack(&vec![loc; depth]);
        let labels = p.add_label_set([("pid", "1")]);
        p.add_sample(stack, labels, &[1, 1]);
        let n = p.samples().len() - 1;
        let pprof = encode(&p);
        let fast = batch_from_pprof(&pprof, &[], "svc", NOW_MS, &limits);
        let params = LegacyIngestParams::parse("name=svc&format=pprof", NOW_MS).unwrap();
        let (ct, form) = (
            "multipart/form-data; boundary=XX",
            multipart("XX", &[("profile", &pprof)]),
        );
        let model = batch_from_legacy(&params, Some(ct), &form, NOW_MS, &limits);
        for (path, r) in [("fast", fast.map(|_| ())), ("model", model.map(|_| ()))] {
            match r {
                Ok(()) => assert!(ok, "{path}: {depth} frames passed"),
                Err(e) => {
                    assert!(!ok, "{path}: {e}");
                    assert!(
                        e.to_string()
                            .contains(&format!("sample {n}: its stack has more than 8 frames")),
                        "{path}: {e}"
                    );
                }
            }
        }
    }
}
