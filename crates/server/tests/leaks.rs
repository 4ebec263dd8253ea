//! `GET /api/v1/leaks`: stacks whose stored in-use snapshots grow
//! steadily, and not those that hold steady.

mod common;
use common::*;

use std::sync::Arc;

use perfpilot_server::api::LeaksResponse;
use perfpilot_server::ServerConfig;
use perfpilot_store::conformance::batch;
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::Store;

const INUSE: &str = "memory:inuse_space:bytes:space:bytes";

#[test]
fn a_growing_stack_is_a_leak_and_a_steady_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        dir.path(),
        Options {
            background: false,
            ..Default::default()
        },
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mib = 1 << 20;
    // Ten snapshots a minute apart, two per minute for the first five
    // (each minute's value is their mean).
    for i in 0..10i64 {
        let t = now - (10 - i) * 60_000;
        let rows = [
            ("main;cache;leak", (i + 1) * 2 * mib),
            ("main;steady", 5 * mib),
        ];
        store.ingest(&batch("svc", &[], INUSE, t, &rows)).unwrap();
        if i < 5 {
            store
                .ingest(&batch("svc", &[], INUSE, t + 1000, &rows))
                .unwrap();
        }
    }
    let server = TestServer::start_with_store(ServerConfig::default(), Arc::new(store));
    let (status, _, body) = answer(
        client()
            .get(server.url("/api/v1/leaks"))
            .query("query", "{service_name=\"svc\"}")
            .query("from", "now-11m")
            .query("step", "1m")
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    let r: LeaksResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(r.profile_type.as_deref(), Some(INUSE));
    assert_eq!(r.snapshots, 10, "{body}");
    assert_eq!(r.leaks.len(), 1, "{body}");
    let l = &r.leaks[0];
    assert_eq!(l.stack, ["main", "cache", "leak"]);
    // 2 MiB a minute.
    let per_s = 2.0 * mib as f64 / 60.0;
    assert!(
        (l.growth_bytes_per_second / per_s - 1.0).abs() < 0.05,
        "{body}"
    );
    assert_eq!(l.inuse_bytes, 20.0 * mib as f64);
    assert!(l.confidence > 0.999);

    let (status, _, body) = answer(
        client()
            .get(server.url("/api/v1/leaks"))
            .query("from", "now-11m")
            .query("step", "1s")
            .call(),
    );
    assert_eq!(status, 400, "{body}");
}
