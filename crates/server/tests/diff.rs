//! `GET /api/v1/diff` over HTTP: the diff flame graph carries each node's
//! test, made as the diff table's rows are (on sample counts, not on
//! nanoseconds).

mod common;
use common::*;

use std::time::{SystemTime, UNIX_EPOCH};

use perfpilot_query::FlatDiff;
use perfpilot_server::api::DiffResponse;

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn ingest(server: &TestServer, from: i64, until: i64, folded: &str) {
    let path =
        format!("/ingest?name=shop.cpu&format=folded&sampleRate=100&from={from}&until={until}");
    let (status, _, body) = answer(client().post(server.url(&path)).send(folded));
    assert_eq!(status, 200, "{body}");
}

/// The test of the node named `name` (which must be the only one).
fn node(flat: &FlatDiff, name: &str) -> (f64, f64, bool) {
    let mut k = 0;
    let mut found = None;
    for level in &flat.levels {
        for n in level.chunks(7) {
            if flat.names[n[6] as usize] == name {
                assert!(found.is_none(), "two nodes named {name}");
                found = Some((flat.p_values[k], flat.q_values[k], flat.significant[k]));
            }
            k += 1;
        }
    }
    assert_eq!(k, flat.p_values.len());
    found.unwrap_or_else(|| panic!("no node {name}"))
}

#[test]
fn diff_flame_graph_nodes_carry_the_rows_tests() {
    let server = TestServer::start(None);
    let now = now_s();
    // encrypt grows from 10% to 35% of 1000 samples, parse stays at 30%,
    // gc shrinks from 10% to 7%.
    ingest(
        &server,
        now - 3000,
        now - 2400,
        "main;handle;parse 300\nmain;handle;encrypt 100\nmain;handle;db 500\nmain;gc 100\n",
    );
    ingest(
        &server,
        now - 480,
        now - 120,
        "main;handle;parse 300\nmain;handle;encrypt 350\nmain;handle;db 280\nmain;gc 70\n",
    );
    let (status, _, body) = answer(
        client()
            .get(server.url("/api/v1/diff"))
            .query("query", "{service_name=\"shop\"}")
            .query("base_from", "now-1h")
            .query("base_until", "now-30m")
            .query("from", "now-15m")
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    let d: DiffResponse = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!((d.diff.base_samples, d.diff.target_samples), (1000, 1000));
    let flat = &d.flamegraph;
    for name in ["encrypt", "parse", "gc", "db"] {
        let row = d
            .diff
            .rows
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        let (p, _, _) = node(flat, name);
        // Each function is one node here, so node and row are the same
        // test; on nanoseconds the p-values would be far smaller.
        assert_eq!(p, row.p_value, "{name}");
    }
    assert!(node(flat, "encrypt").2);
    assert!(node(flat, "db").2);
    let (p, q, significant) = node(flat, "parse");
    assert!(p > 0.5 && q > 0.5 && !significant, "{p} {q}");
}
