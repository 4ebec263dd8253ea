//! `GET /api/v1/sandwich` over HTTP: callers and callees of a function in
//! folded stacks uploaded through `/ingest`.

mod common;
use common::*;

use std::collections::BTreeMap;

use perfpilot_query::FlatFlame;
use perfpilot_server::api::SandwichResponse;

/// Every node of a flamebearer graph by its path from the root ("total"
/// excluded), names joined by ';', as (total, self).
fn nodes(flame: &FlatFlame) -> BTreeMap<String, (i64, i64)> {
    let mut out = BTreeMap::new();
    // Per level: (x, total, path) of its nodes, to find each node's parent
    // as the node above whose span holds its x.
    let mut above: Vec<(i64, i64, String)> = Vec::new();
    for (depth, level) in flame.levels.iter().enumerate() {
        let mut here = Vec::new();
        let mut x = 0;
        for node in level.chunks(4) {
            let [gap, total, self_value, name] = [node[0], node[1], node[2], node[3]];
            x += gap;
            let name = flame.names.get(name as usize).cloned().unwrap_or_default();
            let path = if depth == 0 {
                String::new()
            } else {
                let parent = above
                    .iter()
                    .find(|(px, pt, _)| x >= *px && x < px + pt.max(&1))
                    .map(|(_, _, p)| p.clone())
                    .unwrap_or_default();
                let path = if parent.is_empty() {
                    name
                } else {
                    format!("{parent};{name}")
                };
                out.insert(path.clone(), (total, self_value));
                path
            };
            here.push((x, total, path));
            x += total;
        }
        above = here;
    }
    out
}

/// Nanoseconds per sample at the upload's 100 Hz.
const NS: i64 = 10_000_000;

/// Expected nodes, values in samples.
fn expect(rows: &[(&str, i64, i64)]) -> BTreeMap<String, (i64, i64)> {
    rows.iter()
        .map(|(p, t, s)| (p.to_string(), (t * NS, s * NS)))
        .collect()
}

fn sandwich(server: &TestServer, function: &str) -> SandwichResponse {
    let (status, _, body) = answer(
        client()
            .get(server.url("/api/v1/sandwich"))
            .query("query", "{service_name=\"shop\"}")
            .query("from", "now-1h")
            .query("function", function)
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn callers_and_callees_of_an_uploaded_function() {
    let server = TestServer::start(None);
    let folded = "main;a;work;leaf 5\n\
                  main;b;work 3\n\
                  main;work;work;leaf 2\n\
                  main;idle 7\n";
    let (status, _, body) = answer(
        client()
            .post(server.url("/ingest?name=shop.cpu&format=folded&sampleRate=100"))
            .send(folded),
    );
    assert_eq!(status, 200, "{body}");

    let s = sandwich(&server, "work");
    assert_eq!(s.function, "work");
    assert_eq!(
        s.profile_type.as_deref(),
        Some("process_cpu:cpu:nanoseconds:cpu:nanoseconds")
    );
    assert_eq!(s.unit.as_deref(), Some("nanoseconds"));
    assert_eq!(
        (s.self_value, s.total_value, s.total),
        (3 * NS, 10 * NS, 17 * NS)
    );
    assert!(s.from < s.until);

    // Callers from the innermost "work": the recursive call is one caller.
    assert_eq!(s.callers.total, 10 * NS);
    assert_eq!(s.callers.names.first().map(String::as_str), Some("total"));
    assert_eq!(
        nodes(&s.callers),
        expect(&[
            ("work", 10, 0),
            ("work;a", 5, 0),
            ("work;a;main", 5, 5),
            ("work;b", 3, 0),
            ("work;b;main", 3, 3),
            ("work;work", 2, 0),
            ("work;work;main", 2, 2),
        ])
    );
    // Callees from the outermost "work": the recursion is below it.
    assert_eq!(s.callees.total, 10 * NS);
    assert_eq!(
        nodes(&s.callees),
        expect(&[
            ("work", 10, 3),
            ("work;leaf", 5, 5),
            ("work;work", 2, 0),
            ("work;work;leaf", 2, 2),
        ])
    );

    // max_nodes truncates each side like a flame graph.
    let (status, _, body) = get(&server
        .url("/api/v1/sandwich?function=work&max_nodes=3&query=%7Bservice_name%3D%22shop%22%7D"));
    assert_eq!(status, 200, "{body}");
    let small: SandwichResponse = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(small.callers.total, 10 * NS);
    assert_eq!(
        small
            .callers
            .levels
            .iter()
            .map(|l| l.len() / 4)
            .sum::<usize>(),
        3
    );

    // A function in no stack: empty sides, zero values, the total still.
    let none = sandwich(&server, "nowhere");
    assert_eq!(
        (none.self_value, none.total_value, none.total),
        (0, 0, 17 * NS)
    );
    assert_eq!((none.callers.total, none.callees.total), (0, 0));
    assert!(nodes(&none.callers).is_empty());
}

#[test]
fn the_function_parameter_is_required() {
    let server = TestServer::start(None);
    let (status, headers, body) = get(&server.url("/api/v1/sandwich?from=now-1h"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(header(&headers, "content-type"), "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(
        json["error"],
        "the 'function' parameter (a function name) is required"
    );
}
