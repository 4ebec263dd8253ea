//! Feature windows: placement by event time, bounded lateness, gaps,
//! clock resets, and the features themselves.

use std::sync::Arc;

use perfpilot_baseline::logs::Event;
use perfpilot_baseline::window::{windows, FeatureWindow, WindowConfig, Windower, ALL_ENDPOINTS};

fn ev(ts_ms: i64, endpoint: &str, latency_ms: f64, status: u16) -> Event {
    Event {
        ts_ms,
        latency_ms,
        status,
        endpoint: Arc::from(endpoint),
        service: Arc::from("api"),
    }
}

fn find<'a>(ws: &'a [FeatureWindow], start: i64, endpoint: &str) -> &'a FeatureWindow {
    ws.iter()
        .find(|w| w.start_ms == start && &*w.endpoint == endpoint)
        .unwrap_or_else(|| panic!("no window {start} {endpoint}"))
}

const T0: i64 = 1_772_460_000_000; // a multiple of 10 s

#[test]
fn out_of_order_within_lateness_lands_in_its_window() {
    let mut w = Windower::new(WindowConfig::default()).unwrap();
    let mut out = Vec::new();
    w.push(&ev(T0 + 1_000, "/a", 10.0, 200), &mut out);
    w.push(&ev(T0 + 12_000, "/a", 10.0, 200), &mut out);
    // 11 s behind the newest, but 5 s lateness keeps [T0, T0+10s) open
    // until the watermark reaches T0+10s, i.e. until an event at T0+15s.
    w.push(&ev(T0 + 9_999, "/a", 30.0, 200), &mut out);
    assert!(out.is_empty());
    w.push(&ev(T0 + 15_000, "/a", 10.0, 200), &mut out);
    // That event moved the watermark to T0+10s: the first window closed.
    assert_eq!(out.len(), 2, "{out:?}");
    let first = find(&out, T0, "/a");
    assert_eq!(first.count, 2);
    assert_eq!(first.end_ms, T0 + 10_000);
    assert_eq!(first.sketch.max(), Some(30.0));
    assert_eq!(w.dropped_late(), 0);
}

#[test]
fn too_late_is_counted_and_dropped() {
    let mut w = Windower::new(WindowConfig::default()).unwrap();
    let mut out = Vec::new();
    w.push(&ev(T0 + 1_000, "/a", 10.0, 200), &mut out);
    w.push(&ev(T0 + 16_000, "/a", 10.0, 200), &mut out);
    assert_eq!(out.len(), 2);
    // Its window has been emitted: dropped, not re-opened.
    w.push(&ev(T0 + 2_000, "/a", 10.0, 200), &mut out);
    assert_eq!(w.dropped_late(), 1);
    assert_eq!(w.accepted(), 2);
    w.flush(&mut out);
    assert_eq!(out.iter().filter(|x| x.start_ms == T0).count(), 2);
    assert_eq!(find(&out, T0, ALL_ENDPOINTS).count, 1);
}

#[test]
fn a_gap_produces_no_windows() {
    let events = vec![
        ev(T0 + 1_000, "/a", 5.0, 200),
        ev(T0 + 11_000, "/a", 5.0, 200),
        // Ten minutes without traffic.
        ev(T0 + 611_000, "/a", 5.0, 200),
    ];
    let (ws, w) = windows(&events, WindowConfig::default()).unwrap();
    let starts: Vec<i64> = ws
        .iter()
        .filter(|x| x.is_aggregate())
        .map(|x| x.start_ms)
        .collect();
    assert_eq!(starts, [T0, T0 + 10_000, T0 + 610_000]);
    assert_eq!(w.dropped_late(), 0);
    assert_eq!(w.clock_resets(), 0);
}

#[test]
fn features_per_endpoint_and_service() {
    let mut events = Vec::new();
    for i in 0..100 {
        events.push(ev(
            T0 + i * 50,
            "/a",
            1.0 + i as f64,
            if i % 10 == 0 { 503 } else { 200 },
        ));
        events.push(ev(T0 + i * 50, "/b", 100.0, 404));
    }
    let (ws, _) = windows(&events, WindowConfig::default()).unwrap();
    assert_eq!(ws.len(), 3);
    // The service's all-endpoints window comes first.
    assert!(ws[0].is_aggregate());
    let a = find(&ws, T0, "/a");
    assert_eq!(a.count, 100);
    assert_eq!(a.errors, 10);
    assert!((a.error_rate - 0.1).abs() < 1e-12);
    assert!((a.rate_per_s - 10.0).abs() < 1e-12);
    // Rank floor(0.5 * 99) = 49 holds 50.0; within 1%.
    assert!((a.p50 - 50.0).abs() <= 0.5, "{}", a.p50);
    assert!((a.p90 - 90.0).abs() <= 0.9, "{}", a.p90);
    // Rank floor(0.999 * 99) = 98 holds 99.0.
    assert!((a.p999 - 99.0).abs() <= 0.99, "{}", a.p999);
    let b = find(&ws, T0, "/b");
    assert_eq!(b.errors, 0, "4xx are not errors");
    let all = find(&ws, T0, ALL_ENDPOINTS);
    assert_eq!(all.count, 200);
    assert_eq!(all.errors, 10);
    assert_eq!(all.sketch.count(), 200);
    assert!((all.rate_per_s - 20.0).abs() < 1e-12);
}

#[test]
fn a_clock_stepping_back_restarts_time_instead_of_dropping_everything() {
    let cfg = WindowConfig::default();
    let mut w = Windower::new(cfg.clone()).unwrap();
    let mut out = Vec::new();
    w.push(&ev(T0 + 3_600_000, "/a", 1.0, 200), &mut out);
    for i in 0..10 {
        w.push(&ev(T0 + i * 1000, "/a", 1.0, 200), &mut out);
    }
    assert_eq!(w.clock_resets(), 1);
    assert_eq!(w.dropped_late(), 0);
    w.flush(&mut out);
    assert_eq!(find(&out, T0, "/a").count, 10);
    assert_eq!(find(&out, T0 + 3_600_000, "/a").count, 1);
}

#[test]
fn advance_closes_windows_of_a_quiet_stream() {
    let mut w = Windower::new(WindowConfig::default()).unwrap();
    let mut out = Vec::new();
    w.push(&ev(T0 + 1, "/a", 1.0, 200), &mut out);
    w.advance(T0 + 14_999, &mut out);
    assert!(out.is_empty());
    w.advance(T0 + 15_000, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(w.watermark(), Some(T0 + 10_000));
}

#[test]
fn windows_follow_the_configured_width() {
    let cfg = WindowConfig {
        width_ms: 60_000,
        lateness_ms: 0,
        ..WindowConfig::default()
    };
    let events: Vec<Event> = (0..180)
        .map(|s| ev(T0 + s * 1000, "/a", 1.0, 200))
        .collect();
    let (ws, w) = windows(&events, cfg).unwrap();
    let aggs: Vec<&FeatureWindow> = ws.iter().filter(|x| x.is_aggregate()).collect();
    assert_eq!(aggs.len(), 3);
    assert!(aggs
        .iter()
        .all(|x| x.count == 60 && (x.rate_per_s - 1.0).abs() < 1e-12));
    assert_eq!(w.dropped_late(), 0);
}

#[test]
fn invalid_configs_are_refused() {
    for cfg in [
        WindowConfig {
            width_ms: 0,
            ..WindowConfig::default()
        },
        WindowConfig {
            lateness_ms: -1,
            ..WindowConfig::default()
        },
        WindowConfig {
            clock_jump_ms: 1000,
            ..WindowConfig::default()
        },
        WindowConfig {
            relative_accuracy: 2.0,
            ..WindowConfig::default()
        },
    ] {
        let e = Windower::new(cfg).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
}
