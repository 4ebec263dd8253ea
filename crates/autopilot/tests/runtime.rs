//! The runtime with fake sources: a policy, a baseline engine that
//! reports an alert, a clock that stands still; the engine decides.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use perfpilot_autopilot::door::Via;
use perfpilot_autopilot::executor::Mode;
use perfpilot_autopilot::inbox::parse_webhook;
use perfpilot_autopilot::runtime::sources::{
    BaselineAlert, BaselineSource, Clock, RaisedAlert, SourceError,
};
use perfpilot_autopilot::runtime::{lock, AutopilotHandle, Engine, Sources};

const NOW_MS: i64 = 1_790_000_000_000;

struct StillClock;

impl Clock for StillClock {
    fn now_ms(&self) -> i64 {
        NOW_MS
    }
}

/// A baseline engine with one firing alert and a p99 of 2 s.
#[derive(Default)]
struct FakeBaseline {
    raised: Mutex<Vec<RaisedAlert>>,
}

fn slow_labels() -> BTreeMap<String, String> {
    [
        ("alertname", "PerfpilotIncident"),
        ("service", "shop"),
        ("feature", "latency_p99_ms"),
        ("detector", "band"),
        ("severity", "warning"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl BaselineSource for FakeBaseline {
    fn alerts(&self) -> Vec<BaselineAlert> {
        vec![BaselineAlert {
            labels: slow_labels(),
            firing: true,
            starts_at_ms: NOW_MS - 60_000,
        }]
    }
    fn latest(&self, service: &str, feature: &str) -> Option<(i64, f64)> {
        (service == "shop" && feature == "latency_p99_ms").then_some((NOW_MS - 10_000, 2_000.0))
    }
    fn expected(&self, _: &str, _: &str, _: i64) -> Option<f64> {
        None
    }
    fn resolve_after(&self) -> u32 {
        3
    }
    fn raise(&self, alert: RaisedAlert) -> Result<(), SourceError> {
        self.raised.lock().unwrap().push(alert);
        Ok(())
    }
}

const POLICY: &str = "apiVersion: perfpilot.dev/v1alpha1
kind: AutopilotPolicy
metadata: {name: shop-latency}
spec:
  targetRef: {kind: SystemdUnit, name: shop.service}
  actions:
    - {name: restart, condition: 'alert(\"PerfpilotIncident\").firing and p99 > 1', operation: {type: restart}}
";

/// The alert as Alertmanager's webhook posts it back.
fn webhook() -> Vec<u8> {
    let labels = serde_json::to_value(slow_labels()).unwrap();
    serde_json::json!({
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "perfpilot",
        "groupLabels": {},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": {},
            "startsAt": "2026-09-21T14:12:20Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": perfpilot_autopilot::door::fingerprint(&slow_labels()),
        }],
    })
    .to_string()
    .into_bytes()
}

#[test]
fn a_policy_on_a_fake_alert_source_decides_once_for_an_alert_that_came_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("shop.yaml"), POLICY).unwrap();
    let handle = AutopilotHandle::open(&dir.path().join("autopilot")).unwrap();
    let baseline = Arc::new(FakeBaseline::default());
    let sources = Sources::new(
        Some(baseline.clone() as Arc<dyn BaselineSource>),
        None,
        None,
    )
    .with_clock(Arc::new(StillClock));
    let state_dir = lock(&handle.0).dir.clone();
    let engine = Engine::open(&handle, &policies, &state_dir, Mode::DryRun, sources).unwrap();

    // The same alert also arrives through Alertmanager's webhook.
    let payload = parse_webhook(&webhook()).unwrap();
    lock(&handle.0)
        .door
        .admit_webhook(&payload.alerts[0], NOW_MS);

    engine.tick(&handle);
    let recent = engine.recent();
    assert_eq!(recent.len(), 1, "{recent:#?}");
    let d = &recent[0];
    assert_eq!(d.policy, "shop-latency");
    assert_eq!(d.action, "restart");
    assert_eq!(d.status, "dry-run");
    assert!(d.readings.iter().any(|r| r.starts_with("p99")), "{d:#?}");

    // One alert at the door, known both ways.
    let ap = lock(&handle.0);
    let alerts: Vec<_> = ap.door.alerts().collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].via, [Via::Baseline, Via::Alertmanager]);
    assert!(baseline.raised.lock().unwrap().is_empty());
}
