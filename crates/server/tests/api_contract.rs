//! The query API's JSON pinned as golden files: every read endpoint the web
//! UI calls is asked a fixed question over fixed data, and its answer must
//! equal `tests/api-golden/<name>.json`. The UI's unit tests read the same
//! files (ui/src/contract.test.ts), so a change of shape on either side
//! fails a test. After an intended change of the API:
//! `PERFPILOT_BLESS=1 cargo test -p perfpilot-server --test api_contract`,
//! then update docs/API.md and the UI's types.

mod common;
use common::*;

use std::path::PathBuf;

use std::sync::Arc;

use perfpilot_server::ServerConfig;
use perfpilot_store::embedded::{EmbeddedStore, Options};
use serde_json::Value;

/// Two windows an hour apart, fixed so answers do not depend on the clock.
const BASE_FROM: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const TARGET_FROM: i64 = BASE_FROM + 3600;
const WINDOW: i64 = 600;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api-golden")
}

fn upload(server: &TestServer, name: &str, from: i64, folded: &str) {
    let path = format!(
        "/ingest?name={name}&format=folded&sampleRate=100&from={from}&until={}",
        from + WINDOW
    );
    let (status, _, body) = answer(client().post(server.url(&path)).send(folded));
    assert_eq!(status, 200, "uploading {name}: {body}");
}

fn ask(server: &TestServer, path: &str, query: &[(&str, String)]) -> Value {
    let mut req = client().get(server.url(path));
    for (k, v) in query {
        req = req.query(k, v);
    }
    let (status, _, body) = answer(req.call());
    assert_eq!(status, 200, "GET {path} {query:?}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Compares `got` with the golden file `name`, or rewrites it when blessing.
/// Returns a mismatch description instead of panicking, so every endpoint is
/// checked and reported in one run.
fn check(name: &str, got: &Value) -> Option<String> {
    let path = golden_dir().join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(got).expect("JSON") + "\n";
    if std::env::var("PERFPILOT_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_dir()).expect("creating tests/api-golden");
        std::fs::write(&path, text).expect("writing a golden file");
        return None;
    }
    let want = match std::fs::read_to_string(&path) {
        Ok(w) => w,
        Err(e) => {
            return Some(format!(
                "{}: {e} (run with PERFPILOT_BLESS=1 to create it)",
                path.display()
            ))
        }
    };
    let want: Value = serde_json::from_str(&want)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    (want != *got).then(|| {
        format!(
            "{name}: the API's answer differs from {}\n--- golden:\n{}\n--- now:\n{text}",
            path.display(),
            serde_json::to_string_pretty(&want).expect("JSON")
        )
    })
}

#[test]
fn query_api_answers_match_the_golden_files_the_ui_reads() {
    // Data from a fixed day, kept whatever today's date: no retention, no
    // downsampling, no background work to race with the questions.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(
        dir.path(),
        Options {
            background: false,
            retention_ms: i64::MAX / 4,
            tiers: Options::default().tiers[..1].to_vec(),
            ..Default::default()
        },
    )
    .expect("opening the store");
    let config = ServerConfig {
        limits: perfpilot_wire::Limits {
            max_age_ms: i64::MAX / 4,
            ..Default::default()
        },
        ..Default::default()
    };
    let server = TestServer::start_with_store(config, Arc::new(store));
    upload(
        &server,
        "shop.cpu{env=prod}",
        BASE_FROM,
        "main;handle;parse 40\nmain;handle;render 30\nmain;gc 10\n",
    );
    upload(
        &server,
        "shop.cpu{env=prod}",
        TARGET_FROM,
        "main;handle;parse 40\nmain;handle;render 90\nmain;gc 10\n",
    );
    upload(
        &server,
        "cart.cpu{env=dev}",
        TARGET_FROM,
        "main;checkout 25\n",
    );

    let sel = || ("query", "{service_name=\"shop\"}".to_string());
    let from = |t: i64| t.to_string();
    let whole = [
        sel(),
        ("from", from(BASE_FROM)),
        ("until", from(TARGET_FROM + WINDOW)),
    ];
    let span = [
        ("from", from(BASE_FROM)),
        ("until", from(TARGET_FROM + WINDOW)),
    ];
    let answers = [
        (
            "profile_types",
            ask(&server, "/api/v1/profile_types", &span),
        ),
        ("labels", ask(&server, "/api/v1/labels", &span)),
        (
            "label_values",
            ask(
                &server,
                "/api/v1/label_values",
                &[
                    ("name", "service_name".to_string()),
                    span[0].clone(),
                    span[1].clone(),
                ],
            ),
        ),
        ("series", ask(&server, "/api/v1/series", &span)),
        ("flamegraph", ask(&server, "/api/v1/flamegraph", &whole)),
        ("top", ask(&server, "/api/v1/top", &whole)),
        (
            "sandwich",
            ask(
                &server,
                "/api/v1/sandwich",
                &[
                    sel(),
                    ("from", from(BASE_FROM)),
                    ("until", from(TARGET_FROM + WINDOW)),
                    ("function", "handle".to_string()),
                ],
            ),
        ),
        (
            "diff",
            ask(
                &server,
                "/api/v1/diff",
                &[
                    sel(),
                    ("from", from(TARGET_FROM)),
                    ("until", from(TARGET_FROM + WINDOW)),
                    ("base_query", "{service_name=\"shop\"}".to_string()),
                    ("base_from", from(BASE_FROM)),
                    ("base_until", from(BASE_FROM + WINDOW)),
                ],
            ),
        ),
        (
            "timeseries",
            ask(
                &server,
                "/api/v1/timeseries",
                &[
                    sel(),
                    ("from", from(BASE_FROM)),
                    ("until", from(TARGET_FROM + WINDOW)),
                    ("step", "600s".to_string()),
                ],
            ),
        ),
    ];
    let failures: Vec<String> = answers
        .iter()
        .filter_map(|(name, got)| check(name, got))
        .collect();
    assert!(
        failures.is_empty(),
        "{}\n\nAfter an intended API change: PERFPILOT_BLESS=1 cargo test -p perfpilot-server \
         --test api_contract, then update docs/API.md and ui/src/api.ts",
        failures.join("\n\n")
    );
}

#[test]
fn every_golden_file_is_asked_for() {
    // A golden file whose endpoint is no longer asked would pin nothing while
    // the UI's tests keep trusting it.
    let src = include_str!("api_contract.rs");
    for entry in std::fs::read_dir(golden_dir()).expect("tests/api-golden") {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        assert!(
            src.contains(&format!("(\"{stem}\", ask("))
                || src.contains(&format!("\"{stem}\",\n"))
                || src.contains(&format!("check(\"{stem}\"")),
            "tests/api-golden/{name} is not produced by this test any more; delete it"
        );
    }
}

#[test]
fn alerts_answer_matches_the_golden_file_the_ui_reads() {
    use perfpilot_baseline::baseline::{Band, BandState};
    use perfpilot_baseline::detectors::{Finding, Severity};
    use perfpilot_baseline::engine::{Engine, EngineConfig};
    use perfpilot_server::AlertsHandle;

    // An engine with one firing incident of a service: a latency band
    // breach of an endpoint and, a window later, an error burst, at fixed
    // times, published the way the watch service publishes it.
    let mut engine = Engine::new(EngineConfig::default());
    let at = TARGET_FROM * 1000;
    let finding = Finding {
        detector: "band".into(),
        feature: "/search latency_p99_ms".into(),
        score: 6.5,
        severity: Severity::Critical,
        observed: 840.0,
        expected: Some(Band {
            low: 80.0,
            expected: 120.0,
            high: 200.0,
            state: BandState::Ready,
        }),
        since_ms: at - 120_000,
        at_ms: at,
        message: "/search latency_p99_ms is above its expected band [80.0000, 200.0000] in 3 of the last 5 windows (now 840.0000)".into(),
    };
    let errors = Finding {
        detector: "error_burst".into(),
        feature: "errors".into(),
        score: 12.0,
        severity: Severity::Warning,
        observed: 0.04,
        expected: None,
        since_ms: at + 10_000,
        at_ms: at + 10_000,
        message: "8 errors in 200 requests (4.00%), expected about 0.2 at 0.100% (p = 1.0e-12)"
            .into(),
    };
    let none = std::collections::BTreeMap::new();
    engine.add_findings("shop", &none, &[finding], at);
    engine.add_findings("shop", &none, &[errors], at + 10_000);
    let at = at + 10_000;
    let (publisher, feed) = perfpilot_baseline::feed::feed(engine.snapshot(at));
    publisher.publish_snapshot(engine.snapshot(at));

    let server = TestServer::start_with(ServerConfig {
        alerts: Some(AlertsHandle(feed)),
        ..Default::default()
    });
    let got = ask(&server, "/api/v1/alerts", &[]);
    if let Some(failure) = check("alerts", &got) {
        panic!(
            "{failure}\n\nAfter an intended API change: PERFPILOT_BLESS=1 cargo test -p \
             perfpilot-server --test api_contract, then update docs/API.md and the UI"
        );
    }
}
