//! The embedded store's recovery: the input is a data directory (files of
//! `symbols.log`, WAL segments and blocks, see `crate::store_files`;
//! checksums optionally made right so mutations reach the record
//! decoders), opened through the public API. Recovery never panics, and a
//! store that opens answers every query, takes a write, flushes, and opens
//! again.

use crate::store_files::unpack as unpack_store;
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::{Batch, BatchProfile, Selector, SeriesLimits, Store, StoreError, TimeRange};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The store keeps the clock's time (retention, tiers), so writes and
/// queries are around the real now, not a fixed one.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn options() -> Options {
    Options {
        background: false,
        ..Options::default()
    }
}

fn query_all(store: &EmbeddedStore, what: &str) {
    let now = now_ms();
    let all = Selector::all();
    let range = TimeRange {
        start_ms: 0,
        end_ms: now + DAY_MS,
    };
    let recent = TimeRange {
        start_ms: now - DAY_MS,
        end_ms: now + DAY_MS,
    };
    let fail =
        |q: &str, e: StoreError| -> ! { panic!("{what}: the store opened but {q} failed: {e}") };
    store
        .profile_types(range)
        .unwrap_or_else(|e| fail("profile_types", e));
    store
        .label_names(&all, range)
        .unwrap_or_else(|e| fail("label_names", e));
    store
        .label_values("service_name", &all, range)
        .unwrap_or_else(|e| fail("label_values", e));
    store
        .series(&all, range)
        .unwrap_or_else(|e| fail("series", e));
    store
        .merge(&all, range)
        .unwrap_or_else(|e| fail("merge", e));
    // A query past the limits is refused with its own error, which is an
    // answer; anything else is not.
    let limits = SeriesLimits::default();
    let series = ["service_name".to_string()];
    for (q, group_by, function) in [
        ("time_series", &series[..], None),
        ("time_series by function", &[][..], Some("main")),
    ] {
        match store.time_series(&all, recent, 60_000, group_by, function, &limits) {
            Ok(_) | Err(StoreError::OverLimit { .. }) => {}
            Err(e) => fail(q, e),
        }
    }
}

fn batch() -> Batch {
    Batch {
        id: Some("fuzz-after-recovery".into()),
        strings: vec!["main".into(), "work".into()],
        stacks: vec![vec![0, 1], vec![0]],
        profiles: vec![BatchProfile {
            labels: vec![
                (
                    "__profile_type__".into(),
                    "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
                ),
                ("service_name".into(), "after".into()),
            ],
            time_ms: now_ms() - 1000,
            samples: vec![(0, 7), (1, 3)],
        }],
    }
}

pub fn run(data: &[u8]) {
    let dir = tempfile::Builder::new()
        .prefix("pp-fuzz-store")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory");
    unpack_store(data, dir.path()).expect("writing the data directory");
    let Ok(store) = EmbeddedStore::open(dir.path(), options()) else {
        return;
    };
    query_all(&store, "after recovery");
    store
        .ingest(&batch())
        .unwrap_or_else(|e| panic!("the recovered store refused a write: {e}"));
    store
        .flush()
        .unwrap_or_else(|e| panic!("the recovered store did not flush: {e}"));
    query_all(&store, "after a write and a flush");
    drop(store);
    let store = EmbeddedStore::open(dir.path(), options())
        .unwrap_or_else(|e| panic!("the store opened, flushed, and then did not open: {e}"));
    query_all(&store, "reopened");
}
