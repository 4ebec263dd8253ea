//! Queries past their limits (issue 10, findings 3 and 9): refused with a
//! 400 naming the limit and its flag, and bad parameters refused before
//! the store is asked for anything.

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use perfpilot_server::ServerConfig;
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::{
    Batch, BatchProfile, IngestOutcome, Labels, Points, Selector, SeriesLimits, StackTable, Store,
    StoreError, TimeRange,
};

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The embedded store, counting the calls that read samples.
struct Counting {
    inner: EmbeddedStore,
    reads: AtomicUsize,
    _dir: tempfile::TempDir,
}

impl Counting {
    fn new() -> Arc<Counting> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let inner = EmbeddedStore::open(
            dir.path(),
            Options {
                background: false,
                ..Default::default()
            },
        )
        .expect("opening the store");
        Arc::new(Counting {
            inner,
            reads: AtomicUsize::new(0),
            _dir: dir,
        })
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }
}

impl Store for Counting {
    fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError> {
        self.inner.ingest(batch)
    }
    fn profile_types(&self, range: TimeRange) -> Result<Vec<String>, StoreError> {
        self.inner.profile_types(range)
    }
    fn label_names(&self, s: &Selector, r: TimeRange) -> Result<Vec<String>, StoreError> {
        self.inner.label_names(s, r)
    }
    fn label_values(
        &self,
        name: &str,
        s: &Selector,
        r: TimeRange,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.label_values(name, s, r)
    }
    fn series(&self, s: &Selector, r: TimeRange) -> Result<Vec<Labels>, StoreError> {
        self.read();
        self.inner.series(s, r)
    }
    fn merge(&self, s: &Selector, r: TimeRange) -> Result<StackTable, StoreError> {
        self.read();
        self.inner.merge(s, r)
    }
    fn time_series(
        &self,
        s: &Selector,
        r: TimeRange,
        step_ms: i64,
        group_by: &[String],
        function: Option<&str>,
        limits: &SeriesLimits,
    ) -> Result<Vec<Points>, StoreError> {
        self.read();
        self.inner
            .time_series(s, r, step_ms, group_by, function, limits)
    }
}

/// One batch: `pods` series of service `shop`, ten minutes ago.
fn pods(pods: usize) -> Batch {
    let t = now_ms() - 600_000;
    Batch {
        id: None,
        strings: vec!["main".into(), "work".into()],
        stacks: vec![vec![0, 1]],
        profiles: (0..pods)
            .map(|i| BatchProfile {
                labels: vec![
                    ("__profile_type__".into(), CPU.into()),
                    ("pod".into(), format!("p{i}")),
                    ("service_name".into(), "shop".into()),
                ],
                time_ms: t,
                samples: vec![(0, 10_000_000)],
            })
            .collect(),
    }
}

fn server_with(pod_count: usize) -> (TestServer, Arc<Counting>) {
    let store = Counting::new();
    store.ingest(&pods(pod_count)).expect("ingesting the pods");
    let server = TestServer::start_with_store(ServerConfig::default(), store.clone());
    (server, store)
}

/// GET with query parameters.
fn get_with(server: &TestServer, path: &str, params: &[(&str, &str)]) -> (u16, String) {
    let mut req = client().get(server.url(path));
    for (k, v) in params {
        req = req.query(*k, *v);
    }
    let (status, _, body) = answer(req.call());
    (status, body)
}

/// The `error` of a JSON error answer.
fn error_of(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"))
        .to_string()
}

fn connect(server: &TestServer, method: &str, body: serde_json::Value) -> (u16, String) {
    let (status, _, text) = answer(
        client()
            .post(server.url(&format!("/querier.v1.QuerierService/{method}")))
            .header("Content-Type", "application/json")
            .send(body.to_string()),
    );
    (status, text)
}

const SHOP: &str = "{service_name=\"shop\"}";

#[test]
fn time_series_past_the_group_limit_is_refused() {
    // 1,001 groups, one past the default limit.
    let (server, _) = server_with(1001);
    let (status, body) = get_with(
        &server,
        "/api/v1/timeseries",
        &[("query", SHOP), ("group_by", "pod")],
    );
    assert_eq!(status, 400, "{body}");
    let error = error_of(&body);
    assert!(
        error.contains("more than 1000 groups") && error.contains("--max-query-groups"),
        "{error}"
    );
    // Grafana's SelectSeries, the same.
    let now = now_ms();
    let (status, body) = connect(
        &server,
        "SelectSeries",
        serde_json::json!({
            "profileTypeID": CPU, "labelSelector": SHOP,
            "start": now - 3_600_000, "end": now, "groupBy": ["pod"], "step": 15,
        }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("--max-query-groups"), "{body}");
}

#[test]
fn time_series_within_the_group_limit_answers() {
    let (server, _) = server_with(1000);
    let (status, body) = get_with(
        &server,
        "/api/v1/timeseries",
        &[("query", SHOP), ("group_by", "pod")],
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["series"].as_array().map(Vec::len), Some(1000));
}

#[test]
fn time_series_past_the_point_limit_is_refused_before_reading() {
    // 200 groups × 8,640 ten-second steps of a day: 1.7M points.
    let (server, store) = server_with(200);
    let (status, body) = get_with(
        &server,
        "/api/v1/timeseries",
        &[
            ("query", SHOP),
            ("group_by", "pod"),
            ("from", "now-1d"),
            ("step", "10s"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    let error = error_of(&body);
    assert!(error.contains("--max-query-points"), "{error}");
    // 31 days of one-second steps: refused from the parameters alone.
    let before = store.reads();
    let (status, body) = get_with(
        &server,
        "/api/v1/timeseries",
        &[("query", SHOP), ("from", "now-31d"), ("step", "1s")],
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("--max-query-points"), "{body}");
    assert_eq!(store.reads(), before, "the store was read");
}

#[test]
fn max_nodes_must_be_from_one_to_the_limit() {
    let (server, store) = server_with(3);
    for path in ["/api/v1/flamegraph", "/api/v1/diff"] {
        for bad in ["-1", "0", "65537", "10000000", "lots"] {
            let (status, body) = get_with(&server, path, &[("query", SHOP), ("max_nodes", bad)]);
            assert_eq!(status, 400, "{path} max_nodes={bad}: {body}");
            let error = error_of(&body);
            assert!(error.contains("max_nodes"), "{path} {bad}: {error}");
        }
        assert_eq!(store.reads(), 0, "{path} read the store before its 400");
    }
    let (status, body) = get_with(
        &server,
        "/api/v1/sandwich",
        &[("query", SHOP), ("function", "work"), ("max_nodes", "-1")],
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("--max-flame-nodes"), "{body}");
    for path in ["/api/v1/flamegraph", "/api/v1/diff"] {
        let (status, body) = get_with(&server, path, &[("query", SHOP), ("max_nodes", "65536")]);
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[test]
fn grafana_unlimited_max_nodes_is_refused() {
    let (server, store) = server_with(3);
    let now = now_ms();
    let request = |max_nodes: i64| {
        serde_json::json!({
            "profileTypeID": CPU, "labelSelector": SHOP,
            "start": now - 3_600_000, "end": now, "maxNodes": max_nodes,
        })
    };
    // Pyroscope's "unlimited" and anything over the limit.
    for bad in [-1, 65_537] {
        let (status, body) = connect(&server, "SelectMergeStacktraces", request(bad));
        assert_eq!(status, 400, "maxNodes={bad}: {body}");
        assert!(
            body.contains("invalid_argument") && body.contains("--max-flame-nodes"),
            "{body}"
        );
    }
    assert_eq!(store.reads(), 0, "refused before merging");
    // 0 is Pyroscope's default.
    let (status, body) = connect(&server, "SelectMergeStacktraces", request(0));
    assert_eq!(status, 200, "{body}");
    // The render endpoint, the same.
    let query = format!("{CPU}{SHOP}");
    let (status, body) = get_with(
        &server,
        "/pyroscope/render",
        &[("query", &query), ("from", "now-1h"), ("maxNodes", "-1")],
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("--max-flame-nodes"), "{body}");
    let (status, body) = get_with(
        &server,
        "/pyroscope/render",
        &[("query", &query), ("from", "now-1h"), ("maxNodes", "16384")],
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn bad_parameters_are_refused_before_any_merge() {
    let (server, store) = server_with(3);
    let bad: &[(&str, &[(&str, &str)])] = &[
        ("/api/v1/export", &[("query", SHOP), ("format", "exe")]),
        ("/api/v1/flamegraph", &[("query", SHOP), ("format", "exe")]),
        ("/api/v1/top", &[("query", "{service_name=}")]),
        (
            "/api/v1/diff",
            &[("query", SHOP), ("base_query", "{service_name=\"shop\"")],
        ),
        (
            "/api/v1/timeseries",
            &[("query", SHOP), ("group_by", "pod,not a label")],
        ),
        ("/api/v1/timeseries", &[("query", SHOP), ("step", "-5s")]),
        ("/api/v1/flamegraph", &[("query", SHOP), ("from", "later")]),
    ];
    for (path, params) in bad {
        let (status, body) = get_with(&server, path, params);
        assert_eq!(status, 400, "{path} {params:?}: {body}");
        error_of(&body);
        assert_eq!(
            store.reads(),
            0,
            "{path} {params:?} read the store before its 400"
        );
    }
    let (status, body) = get_with(&server, "/api/v1/export", &[("format", "exe")]);
    assert!(error_of(&body).contains("\"exe\""), "{status} {body}");
}
