//! Alert quality: labels and their errors, exact scores of saved alerts
//! with acknowledgements, and replays of a log with known incidents and
//! noise (`testdata/quality/shop_log.rs`).

#[path = "../testdata/quality/shop_log.rs"]
mod shop_log;

use std::path::{Path, PathBuf};

use perfpilot_baseline::watch::WatchConfig;
use perfpilot_baseline_lab::quality::{self, RaisedAlert, Replay, ScoreOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/quality")
        .join(name)
}

const MIN: i64 = 60_000;

#[test]
fn labels_take_rfc3339_and_unix_milliseconds() {
    let inc = quality::load_labels(&fixture("incidents.json")).unwrap();
    assert_eq!(inc.len(), 3);
    assert_eq!(inc[0].name, "slow search");
    assert_eq!(inc[0].feature.as_deref(), Some("latency"));
    assert_eq!(inc[0].start_ms, shop_log::START_MS + 12 * MIN);
    assert_eq!(inc[0].end_ms, shop_log::START_MS + 15 * MIN);
    assert_eq!(inc[2].start_ms, shop_log::START_MS + 36 * MIN);
    for (i, (a, b)) in shop_log::INCIDENTS.iter().enumerate() {
        assert_eq!(inc[i].start_ms, shop_log::START_MS + a * MIN);
        assert_eq!(inc[i].end_ms, shop_log::START_MS + b * MIN);
    }
    // No name: the service and start stand in.
    let inc = quality::parse_labels(
        r#"{"incidents": [{"service": "a", "start": 1795341600000, "end": 1795341660000}]}"#,
        "x.json",
    )
    .unwrap();
    assert_eq!(inc[0].name, "a at 2026-11-22T10:00:00.000Z");
    assert!(quality::parse_labels(r#"{"incidents": []}"#, "x.json")
        .unwrap()
        .is_empty());
}

#[test]
fn bad_labels_say_file_line_and_column() {
    let path = fixture("bad_time.json");
    let err = quality::load_labels(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:6:32: ", path.display())),
        "{err}"
    );
    assert!(
        err.contains("\"2026-11-22 10:24\" is not an RFC 3339 time"),
        "{err}"
    );

    let cases = [
        // A typo in a field name.
        (
            "{\"incidents\": [\n  {\"service\": \"a\", \"strat\": 1795341600000, \"end\": 1795341660000}\n]}",
            "x.json:2:26: unknown field `strat`",
        ),
        // A missing comma.
        (
            "{\"incidents\": [\n  {\"service\": \"a\"\n   \"start\": 1}\n]}",
            "x.json:3:4: expected `,` or `}`",
        ),
        // Reversed times, reported just past the incident, by name.
        (
            "{\"incidents\": [\n  {\"service\": \"a\", \"name\": \"n\",\n   \"start\": \"2026-11-22T10:15:00Z\", \"end\": \"2026-11-22T10:12:00Z\"}\n]}",
            "x.json:4:1: incident \"n\" ends (2026-11-22T10:12:00.000Z) before it starts",
        ),
        // Seconds where milliseconds belong.
        (
            "{\"incidents\": [\n  {\"service\": \"a\", \"start\": 1795341600, \"end\": 1795341660000}]}",
            "x.json:2:38: 1795341600 looks like Unix seconds",
        ),
        ("{\"incidents\": [", "x.json:1:15: EOF while parsing a list"),
    ];
    for (text, want) in cases {
        let err = quality::parse_labels(text, "x.json")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(want), "{err}\nwanted {want}");
    }
}

#[test]
fn saved_alerts_score_exactly_with_their_acknowledgements() {
    let incidents = quality::load_labels(&fixture("incidents.json")).unwrap();
    let alerts: Vec<RaisedAlert> = quality::load_alerts(&fixture("alerts_acked.json"))
        .unwrap()
        .into_iter()
        .map(RaisedAlert::saved)
        .collect();
    assert_eq!(alerts.len(), 4);
    let span = (shop_log::START_MS, shop_log::START_MS + 45 * MIN);
    let r = quality::score(&alerts, &incidents, span, &ScoreOptions::default());
    assert!(!r.raised_times);

    let all = &r.overall;
    assert_eq!(
        (all.alerts, all.true_positives, all.false_positives),
        (4, 3, 1)
    );
    assert_eq!((all.detected, all.missed), (2, 1));
    // One false positive in 45 minutes.
    assert!((all.false_positives_per_day - 32.0).abs() < 1e-9);
    // Detected 20 s (slow search, by the band) and 5 s (errors) in.
    assert_eq!(all.mttd_median_ms, Some(12_500));
    assert_eq!(all.mttd_max_ms, Some(20_000));
    // Acknowledged after 2 min, 30 s and 4 min.
    assert_eq!(all.acked, 3);
    assert_eq!(all.mtta_median_ms, Some(120_000));
    assert_eq!(all.mtta_max_ms, Some(240_000));
    // NAB: sigmoid credit for each detection by its place in a window of
    // 1 min slack + incident + 1 min grace, -1 for the miss, -0.11 for a
    // false positive before any window of its own; normalised over 3.
    let sigma = |x: f64| 2.0 / (1.0 + (5.0 * x).exp()) - 1.0;
    let raw =
        sigma(-220.0 / 300.0) / sigma(-1.0) - 1.0 + sigma(-115.0 / 180.0) / sigma(-1.0) - 0.11;
    assert!(
        (all.nab - 100.0 * (raw + 3.0) / 6.0).abs() < 1e-9,
        "{}",
        all.nab
    );
    assert!((all.nab - 63.113).abs() < 1e-3);
    assert!((all.precision - 0.75).abs() < 1e-12);
    assert!((all.recall - 2.0 / 3.0).abs() < 1e-12);
    assert!((all.f1 - 12.0 / 17.0).abs() < 1e-12);

    let band = r.detector("band").unwrap();
    assert_eq!((band.true_positives, band.false_positives), (1, 1));
    assert_eq!((band.detected, band.missed), (1, 2));
    assert_eq!(band.mtta_median_ms, Some(120_000));
    let cp = r.detector("change_point").unwrap();
    assert_eq!(cp.mttd_median_ms, Some(50_000));
    assert_eq!(cp.mtta_max_ms, Some(30_000));
    let eb = r.detector("error_burst").unwrap();
    assert_eq!((eb.detected, eb.mttd_max_ms), (1, Some(5_000)));

    assert_eq!(r.incidents[0].first_detector.as_deref(), Some("band"));
    assert_eq!(r.incidents[0].detectors, ["band", "change_point"]);
    assert_eq!(r.incidents[1].first_alert_ms, None);

    let text = r.to_string();
    assert!(text.contains("backdated"), "{text}");
    assert!(text.contains("MISSED"), "{text}");
    assert!(
        text.contains("band: /search latency_p50_ms (also change_point)"),
        "{text}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["overall"]["mtta_median_ms"], 120_000);

    // Without slack, the errors alert 5 s in still counts; a band alert
    // just before the start would not.
    let strict = ScoreOptions {
        slack_ms: 0,
        grace_ms: 0,
        ..ScoreOptions::default()
    };
    let r = quality::score(&alerts, &incidents, span, &strict);
    assert_eq!(r.overall.detected, 2);
}

#[test]
fn a_false_positive_right_after_an_incident_costs_less_than_one_before() {
    let incidents = quality::load_labels(&fixture("incidents.json")).unwrap();
    let saved = quality::load_alerts(&fixture("alerts_acked.json")).unwrap();
    let span = (shop_log::START_MS, shop_log::START_MS + 45 * MIN);
    // The slow-search alert moved past the incident's window.
    let at = |ms: i64| {
        let mut a = saved[0].clone();
        a.starts_at_ms = ms;
        vec![RaisedAlert::saved(a)]
    };
    let score = |alerts: &[RaisedAlert]| {
        quality::score(alerts, &incidents[..1], span, &ScoreOptions::default())
            .overall
            .nab
    };
    let none = score(&[]);
    assert_eq!(none, 0.0);
    let early = score(&at(shop_log::START_MS));
    let tail = score(&at(shop_log::START_MS + 16 * MIN + 10_000));
    let later = score(&at(shop_log::START_MS + 40 * MIN));
    assert!(early < tail && tail < none, "{early} {tail} {none}");
    assert!((early - (-0.11 / 2.0 * 100.0)).abs() < 1e-9, "{early}");
    assert!((later - early).abs() < 1e-9, "{later}");
}

fn shop(dir: &Path) -> WatchConfig {
    let log = dir.join("shop.jsonl");
    shop_log::write(&log);
    WatchConfig::parse(&shop_log::config(&log, &dir.join("state")), "watch.toml").unwrap()
}

#[test]
fn replay_with_defaults_catches_every_incident_and_pages_for_the_noise() {
    let dir = tempfile::tempdir().unwrap();
    // The config follows its log and has a webhook: a replay does neither
    // (this would not end, or would fail to deliver, otherwise).
    let cfg = shop(dir.path());
    let replay = Replay::load(&cfg).unwrap();
    assert_eq!(replay.events, 27_000);
    assert_eq!(
        replay.span,
        (shop_log::START_MS, shop_log::START_MS + 45 * MIN)
    );
    let incidents = quality::load_labels(&fixture("incidents.json")).unwrap();
    let run = replay.run(&cfg.detectors).unwrap();
    let r = quality::score(
        &run.alerts,
        &incidents,
        replay.span,
        &ScoreOptions::default(),
    );
    assert!(r.raised_times);
    assert_eq!(r.overall.missed, 0, "{r}");
    // Band breach on two windows far outside the band (its fast path):
    // raised as the second slow window ends. Errors: as the first window
    // with them ends.
    for i in &r.incidents[..2] {
        assert_eq!(i.mttd_ms, Some(20_000), "{r}");
        assert_eq!(i.first_detector.as_deref(), Some("band"), "{r}");
    }
    assert_eq!(r.incidents[2].mttd_ms, Some(10_000), "{r}");
    assert_eq!(
        r.incidents[2].first_detector.as_deref(),
        Some("error_burst")
    );

    // Every 30-second spike pages through the band as it ends: one
    // incident each (the latency features of /search and of the service
    // together), not one alert per feature and detector.
    let fp: Vec<i64> = run
        .alerts
        .iter()
        .filter(|a| {
            !incidents
                .iter()
                .any(|i| (i.start_ms - MIN..=i.end_ms + MIN).contains(&a.at_ms()))
        })
        .map(|a| a.at_ms())
        .collect();
    assert_eq!(fp.len(), shop_log::SPIKES.len(), "{fp:?}\n{r}");
    for s in shop_log::SPIKES {
        let end = shop_log::START_MS + (s + 30) * 1000;
        assert!(
            fp.iter().any(|t| (end - 10_000..=end).contains(t)),
            "no page for the spike at {s} s: {fp:?}\n{r}"
        );
    }
    assert_eq!(r.overall.false_positives, 4, "{r}");
    assert_eq!(r.overall.true_positives, 3, "{r}");
    assert_eq!(
        r.overall.true_positives + r.overall.false_positives,
        run.alerts.len()
    );
    // A spike's incident holds the quantiles of /search and of the service.
    let spike = run
        .alerts
        .iter()
        .find(|a| a.at_ms() == fp[0])
        .expect("the first spike's incident");
    let features: Vec<&str> = spike
        .alert
        .findings
        .iter()
        .map(|f| f.feature.as_str())
        .collect();
    assert!(
        features.iter().any(|f| f.starts_with("/search latency"))
            && features.iter().any(|f| f.starts_with("latency")),
        "{features:?}"
    );
    let text = r.to_string();
    assert!(text.contains("slow search"), "{text}");
    assert!(!text.contains("MISSED"), "{text}");
}

#[test]
fn several_logs_replay_as_one_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = shop(dir.path());
    // The same requests split across two files by endpoint.
    let text = std::fs::read_to_string(&cfg.logs[0].path).unwrap();
    let (a, b): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.contains("/search"));
    let (pa, pb) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&pa, a.join("\n")).unwrap();
    std::fs::write(&pb, b.join("\n")).unwrap();
    let mut split = cfg.clone();
    split.logs = vec![cfg.logs[0].clone(), cfg.logs[0].clone()];
    split.logs[0].path = pa;
    split.logs[1].path = pb;
    let (one, span_one) = quality::replay(&cfg, &cfg.detectors).unwrap();
    let (two, span_two) = quality::replay(&split, &cfg.detectors).unwrap();
    assert_eq!(span_one, span_two);
    let key = |v: &[RaisedAlert]| -> Vec<(String, i64)> {
        v.iter().map(|a| (a.alert.id.clone(), a.at_ms())).collect()
    };
    assert_eq!(key(&one), key(&two));
}

#[test]
fn a_config_without_logs_cannot_be_replayed() {
    let cfg = WatchConfig::parse(
        "[[prometheus]]\nurl = \"http://127.0.0.1:9\"\nfeatures = []\n",
        "w.toml",
    )
    .unwrap();
    let err = Replay::load(&cfg).err().unwrap().to_string();
    assert!(err.contains("no [[logs]]"), "{err}");
}

#[test]
fn a_replay_raises_what_the_watch_loop_raises() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = shop(dir.path());
    cfg.logs[0].follow = false;
    cfg.alerts.webhooks.clear();
    cfg.state_dir = None;
    let engine = cfg.engine().unwrap();
    let mut fired: Vec<String> = Vec::new();
    perfpilot_baseline::watch::run(&cfg, engine, Arc::new(AtomicBool::new(false)), &mut |l| {
        if let Some(rest) = l.strip_prefix("firing: incident ") {
            // "ID shop: summary"
            fired.push(rest.split(':').next().unwrap_or("").to_string());
        }
    })
    .unwrap();
    let (alerts, _) = quality::replay(&cfg, &cfg.detectors).unwrap();
    let mut replayed: Vec<String> = alerts
        .iter()
        .map(|a| format!("{} {}", a.alert.id, a.alert.service))
        .collect();
    fired.sort();
    replayed.sort();
    assert_eq!(fired, replayed);
}
