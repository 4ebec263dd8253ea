//! The one door through which alerts reach the autopilot.
//!
//! An alert can come twice: perfpilot's baseline engine hands its alerts
//! over in process, and sends them to Alertmanager, whose webhook posts
//! them back. Both enter through [`AlertDoor::admit`] and are told apart
//! only by [`fingerprint`]: Alertmanager's own hash of the labels (what
//! its webhook calls `fingerprint`). perfpilot sends an alert to
//! Alertmanager with exactly the labels it keeps, so the two copies of
//! one alert have one fingerprint and the autopilot sees it once.

use std::collections::BTreeMap;

use crate::inbox::{Labels, WebhookAlert};

/// FNV-1a, 64 bits, as Prometheus's `model.LabelSet.Fingerprint`: label
/// names sorted, each name and value followed by the byte 0xff (which
/// UTF-8 never holds), printed as 16 hex digits.
pub fn fingerprint(labels: &Labels) -> String {
    const SEPARATOR: u8 = 0xff;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    // A BTreeMap iterates in name order already.
    for (k, v) in labels {
        k.bytes().for_each(&mut add);
        add(SEPARATOR);
        v.bytes().for_each(&mut add);
        add(SEPARATOR);
    }
    format!("{h:016x}")
}

/// Where an alert came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// perfpilot's baseline engine, in process.
    Baseline,
    /// Alertmanager's webhook.
    Alertmanager,
}

/// One alert as the autopilot sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DoorAlert {
    pub fingerprint: String,
    pub labels: Labels,
    pub firing: bool,
    /// When this occurrence started (Unix ms): an older occurrence
    /// arriving late does not replace a newer one.
    pub starts_at_ms: i64,
    /// When it was last admitted from any source (Unix ms).
    pub seen_ms: i64,
    /// Every way it has come in.
    pub via: Vec<Via>,
}

impl DoorAlert {
    pub fn name(&self) -> Option<&str> {
        self.labels.get("alertname").map(String::as_str)
    }
}

/// What admitting an alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Not known, or a new occurrence (it fires again, or started later):
    /// the autopilot acts on it.
    New,
    /// Known, and its status changed (firing to resolved).
    Changed,
    /// Known as it is (the same alert by the other way, or a re-send):
    /// nothing to act on.
    Duplicate,
}

/// Resolved alerts kept (for `alert("X").firing` to read false rather
/// than unknown) before the oldest are forgotten.
const KEEP_RESOLVED: usize = 500;

/// Every alert known, by fingerprint.
#[derive(Debug, Default)]
pub struct AlertDoor {
    alerts: BTreeMap<String, DoorAlert>,
}

impl AlertDoor {
    pub fn new() -> AlertDoor {
        AlertDoor::default()
    }

    /// Lets an alert in: `labels` as its source has them, whether it
    /// fires, when this occurrence started and when it arrived.
    pub fn admit(
        &mut self,
        via: Via,
        labels: &Labels,
        firing: bool,
        starts_at_ms: i64,
        now_ms: i64,
    ) -> Admitted {
        let fp = fingerprint(labels);
        let admitted = match self.alerts.get_mut(&fp) {
            None => {
                self.alerts.insert(
                    fp.clone(),
                    DoorAlert {
                        fingerprint: fp,
                        labels: labels.clone(),
                        firing,
                        starts_at_ms,
                        seen_ms: now_ms,
                        via: vec![via],
                    },
                );
                Admitted::New
            }
            Some(a) => {
                if !a.via.contains(&via) {
                    a.via.push(via);
                    a.via.sort();
                }
                a.seen_ms = a.seen_ms.max(now_ms);
                let echo = via == Via::Alertmanager
                    && a.via.contains(&Via::Baseline)
                    && starts_at_ms == a.starts_at_ms;
                if starts_at_ms < a.starts_at_ms || echo {
                    // A late copy of an earlier occurrence, or the
                    // baseline's own alert coming back: the baseline has
                    // the last word on its occurrences, Alertmanager may
                    // be a post behind.
                    Admitted::Duplicate
                } else if starts_at_ms > a.starts_at_ms && firing {
                    a.starts_at_ms = starts_at_ms;
                    a.firing = true;
                    Admitted::New
                } else if a.firing != firing {
                    a.firing = firing;
                    if firing {
                        Admitted::New
                    } else {
                        Admitted::Changed
                    }
                } else {
                    Admitted::Duplicate
                }
            }
        };
        self.prune();
        admitted
    }

    /// A webhook alert (Alertmanager's).
    pub fn admit_webhook(&mut self, a: &WebhookAlert, now_ms: i64) -> Admitted {
        let ms = |t: time::OffsetDateTime| {
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        };
        self.admit(
            Via::Alertmanager,
            &a.labels,
            a.status == crate::inbox::AlertStatus::Firing,
            ms(a.starts_at),
            now_ms,
        )
    }

    /// The whole current set from `via` (the baseline engine's alerts,
    /// as its snapshot has them): each is admitted, and one that came
    /// that way and is no longer among them firing has resolved (its
    /// labels changed, or it was forgotten). What each admission did.
    pub fn sync<'a>(
        &mut self,
        via: Via,
        current: impl IntoIterator<Item = (&'a Labels, bool, i64)>,
        now_ms: i64,
    ) -> Vec<(String, Admitted)> {
        let mut out = Vec::new();
        let mut firing = std::collections::BTreeSet::new();
        for (labels, is_firing, starts_at_ms) in current {
            let fp = fingerprint(labels);
            if is_firing {
                firing.insert(fp.clone());
            }
            out.push((fp, self.admit(via, labels, is_firing, starts_at_ms, now_ms)));
        }
        for a in self.alerts.values_mut() {
            if a.firing && a.via.contains(&via) && !firing.contains(&a.fingerprint) {
                a.firing = false;
                a.seen_ms = now_ms;
                out.push((a.fingerprint.clone(), Admitted::Changed));
            }
        }
        out
    }

    /// Every alert known, by fingerprint.
    pub fn alerts(&self) -> impl Iterator<Item = &DoorAlert> {
        self.alerts.values()
    }

    pub fn get(&self, fingerprint: &str) -> Option<&DoorAlert> {
        self.alerts.get(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Forgets alerts that came only from Alertmanager and resolved
    /// before `before_ms` (as the inbox does); the baseline's are kept
    /// up to [`KEEP_RESOLVED`], as its alert book keeps them.
    pub fn forget_resolved_before_ms(&mut self, before_ms: i64) -> usize {
        let n = self.alerts.len();
        self.alerts
            .retain(|_, a| a.firing || a.via.contains(&Via::Baseline) || a.seen_ms >= before_ms);
        n - self.alerts.len()
    }

    fn prune(&mut self) {
        let mut resolved: Vec<(i64, String)> = self
            .alerts
            .values()
            .filter(|a| !a.firing)
            .map(|a| (a.seen_ms, a.fingerprint.clone()))
            .collect();
        if resolved.len() <= KEEP_RESOLVED {
            return;
        }
        resolved.sort();
        let extra = resolved.len() - KEEP_RESOLVED;
        for (_, fp) in resolved.into_iter().take(extra) {
            self.alerts.remove(&fp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_synced_alert_missing_from_the_set_has_resolved() {
        let mut door = AlertDoor::new();
        let warning = labels(&[("alertname", "PerfpilotIncident"), ("severity", "warning")]);
        let critical = labels(&[("alertname", "PerfpilotIncident"), ("severity", "critical")]);
        door.sync(Via::Baseline, [(&warning, true, 1)], 1);
        // Its severity rose: to Alertmanager, another alert.
        let done = door.sync(Via::Baseline, [(&critical, true, 1)], 2);
        assert!(done.contains(&(fingerprint(&critical), Admitted::New)));
        assert!(done.contains(&(fingerprint(&warning), Admitted::Changed)));
        let firing: Vec<_> = door.alerts().filter(|a| a.firing).collect();
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].labels, critical);
    }

    #[test]
    fn the_fingerprint_is_alertmanagers() {
        // The empty set hashes to FNV's offset basis, as in Prometheus.
        assert_eq!(fingerprint(&Labels::new()), "cbf29ce484222325");
        // Order of insertion does not matter; values and names do.
        let a = labels(&[("alertname", "X"), ("service", "shop")]);
        let b = labels(&[("service", "shop"), ("alertname", "X")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&labels(&[("alertname", "Xs"), ("ervice", "shop")]))
        );
    }

    #[test]
    fn an_alert_that_comes_both_ways_is_admitted_once() {
        let mut door = AlertDoor::new();
        let l = labels(&[
            ("alertname", "PerfpilotIncident"),
            ("service", "shop"),
            ("severity", "warning"),
        ]);
        assert_eq!(
            door.admit(Via::Baseline, &l, true, 1_000, 1_000),
            Admitted::New
        );
        assert_eq!(
            door.admit(Via::Alertmanager, &l, true, 1_000, 2_000),
            Admitted::Duplicate
        );
        assert_eq!(door.len(), 1);
        let a = door.alerts().next().unwrap();
        assert_eq!(a.via, [Via::Baseline, Via::Alertmanager]);
        // Resolved by one way, it is resolved once.
        assert_eq!(
            door.admit(Via::Baseline, &l, false, 1_000, 3_000),
            Admitted::Changed
        );
        assert_eq!(
            door.admit(Via::Alertmanager, &l, false, 1_000, 4_000),
            Admitted::Duplicate
        );
        // A late firing copy of the same occurrence does not revive it;
        // a new occurrence does.
        assert_eq!(
            door.admit(Via::Alertmanager, &l, true, 1_000, 5_000),
            Admitted::Duplicate
        );
        assert_eq!(
            door.admit(Via::Alertmanager, &l, true, 500, 5_000),
            Admitted::Duplicate
        );
        assert_eq!(
            door.admit(Via::Alertmanager, &l, true, 6_000, 6_000),
            Admitted::New
        );
    }
}
