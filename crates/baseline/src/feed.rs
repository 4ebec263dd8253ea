//! The baseline engine as seen from outside its owner (the watch
//! service): a feed of alert changes, a read-only snapshot, and commands.
//!
//! Nobody else locks the engine. Its owner publishes:
//! - every alert that fired or resolved, on a bounded channel per
//!   subscriber. A subscriber that falls behind loses the oldest changes,
//!   never blocks the engine; the losses are counted
//!   ([`Subscription::dropped`]) so it can catch up from the snapshot;
//! - an [`EngineSnapshot`] after every pass that changed something: the
//!   API and the autopilot read it instead of the engine.
//!
//! What others want changed (an acknowledgement, the autopilot's own
//! alerts) is a [`Command`] the owner applies between passes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::detectors::Finding;
use crate::engine::{Engine, EngineSnapshot};
use crate::incidents::{Incident, Transition};

/// Changes a subscriber may fall behind by before the oldest are dropped.
pub const FEED_CAPACITY: usize = 1024;
/// Commands waiting for the engine's owner; senders wait when it is full.
const COMMAND_CAPACITY: usize = 256;
/// How long an acknowledgement waits for the engine's owner.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// An incident that fired or resolved, as it was then.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    pub fired: bool,
    pub incident: Incident,
}

/// A change asked of the engine's owner.
#[derive(Debug)]
pub enum Command {
    /// Acknowledge an incident; the reply is the incident, or None when
    /// there is no such incident.
    Ack {
        id: String,
        by: String,
        now_ms: i64,
        reply: Sender<Option<Incident>>,
    },
    /// Findings from outside the detectors for (service, feature): see
    /// [`Engine::raise`].
    Raise {
        service: String,
        feature: String,
        labels: BTreeMap<String, String>,
        findings: Vec<Finding>,
        now_ms: i64,
    },
}

/// Why a command did not reach the engine or got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the baseline engine has stopped")]
    Stopped,
    #[error("the baseline engine did not answer within {0:?}")]
    Timeout(Duration),
}

struct Subscriber {
    tx: Sender<AlertChange>,
    /// The subscriber's own receiver, held to drop its oldest change
    /// when it is full.
    oldest: Receiver<AlertChange>,
    dropped: Arc<AtomicU64>,
}

struct Shared {
    snapshot: RwLock<Arc<EngineSnapshot>>,
    subscribers: Mutex<Vec<Subscriber>>,
}

/// The reading side: cloned into the API and the autopilot.
#[derive(Clone)]
pub struct FeedHandle {
    shared: Arc<Shared>,
    commands: Sender<Command>,
}

impl std::fmt::Debug for FeedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedHandle")
    }
}

/// The publishing side, held by the engine's owner.
pub struct Publisher {
    shared: Arc<Shared>,
    commands: Receiver<Command>,
}

/// A subscriber's end of the feed.
pub struct Subscription {
    rx: Receiver<AlertChange>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// The changes waiting, oldest first, without blocking.
    pub fn drain(&self) -> Vec<AlertChange> {
        self.rx.try_iter().collect()
    }

    /// The receiver, to wait on.
    pub fn receiver(&self) -> &Receiver<AlertChange> {
        &self.rx
    }

    /// Changes lost so far because this subscriber fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A feed for an engine: its publisher (for the owner) and a handle (for
/// everyone else), starting from `first`.
pub fn feed(first: EngineSnapshot) -> (Publisher, FeedHandle) {
    let shared = Arc::new(Shared {
        snapshot: RwLock::new(Arc::new(first)),
        subscribers: Mutex::new(Vec::new()),
    });
    let (tx, rx) = crossbeam_channel::bounded(COMMAND_CAPACITY);
    (
        Publisher {
            shared: Arc::clone(&shared),
            commands: rx,
        },
        FeedHandle {
            shared,
            commands: tx,
        },
    )
}

impl FeedHandle {
    /// The last published snapshot.
    pub fn snapshot(&self) -> Arc<EngineSnapshot> {
        let s = self
            .shared
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&s)
    }

    /// Alert changes from now on.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(FEED_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        lock(&self.shared.subscribers).push(Subscriber {
            tx,
            oldest: rx.clone(),
            dropped: Arc::clone(&dropped),
        });
        Subscription { rx, dropped }
    }

    /// Asks the owner to apply `command`; waits while its queue is full.
    pub fn send(&self, command: Command) -> Result<(), FeedError> {
        self.commands.send(command).map_err(|_| FeedError::Stopped)
    }

    /// Acknowledges an incident and returns it (None: no such incident).
    pub fn ack(&self, id: &str, by: &str, now_ms: i64) -> Result<Option<Incident>, FeedError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Ack {
            id: id.to_string(),
            by: by.to_string(),
            now_ms,
            reply,
        })?;
        answer.recv_timeout(ACK_WAIT).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Timeout => FeedError::Timeout(ACK_WAIT),
            crossbeam_channel::RecvTimeoutError::Disconnected => FeedError::Stopped,
        })
    }
}

impl Publisher {
    /// The commands waiting, to wait on beside other input.
    pub fn commands(&self) -> &Receiver<Command> {
        &self.commands
    }

    /// Applies a command. An acknowledgement is published before it is
    /// answered, so the asker's next read of the snapshot has it.
    pub fn apply(&self, command: Command, engine: &mut Engine) {
        match command {
            Command::Ack {
                id,
                by,
                now_ms,
                reply,
            } => {
                let acked = engine.ack(&id, &by, now_ms);
                if acked.is_some() {
                    self.publish_snapshot(engine.snapshot(now_ms));
                }
                // The asker may have given up waiting.
                let _ = reply.send(acked);
            }
            Command::Raise {
                service,
                feature,
                labels,
                findings,
                now_ms,
            } => engine.raise(&service, &feature, &labels, &findings, now_ms),
        }
    }

    /// Applies every waiting command; how many there were.
    pub fn apply_commands(&self, engine: &mut Engine) -> usize {
        let mut n = 0;
        for c in self.commands.try_iter() {
            self.apply(c, engine);
            n += 1;
        }
        n
    }

    /// Sends the alerts behind `transitions` to every subscriber, dropping
    /// a lagging subscriber's oldest change (counted) rather than waiting.
    pub fn publish_changes(&self, engine: &Engine, transitions: &[Transition]) {
        if transitions.is_empty() {
            return;
        }
        let mut subs = lock(&self.shared.subscribers);
        for t in transitions {
            let (fired, id) = match t {
                Transition::Fired(id) => (true, id),
                Transition::Resolved(id) => (false, id),
            };
            let Some(incident) = engine.incident(id) else {
                continue;
            };
            let change = AlertChange {
                fired,
                incident: incident.clone(),
            };
            subs.retain(|s| {
                let mut c = change.clone();
                loop {
                    match s.tx.try_send(c) {
                        Ok(()) => return true,
                        Err(TrySendError::Disconnected(_)) => return false,
                        Err(TrySendError::Full(back)) => {
                            if s.oldest.try_recv().is_ok() {
                                s.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            c = back;
                        }
                    }
                }
            });
        }
    }

    /// Replaces the snapshot readers see.
    pub fn publish_snapshot(&self, snapshot: EngineSnapshot) {
        let mut s = self
            .shared
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *s = Arc::new(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::Severity;
    use crate::engine::EngineConfig;

    fn finding(at_ms: i64) -> Finding {
        Finding {
            detector: "band".into(),
            feature: "latency_p99_ms".into(),
            score: 1.0,
            severity: Severity::Warning,
            observed: 1.0,
            expected: None,
            since_ms: at_ms,
            at_ms,
            message: "slow".into(),
        }
    }

    #[test]
    fn a_lagging_subscriber_loses_the_oldest_changes_counted() {
        let mut engine = Engine::new(EngineConfig::default());
        let (publisher, handle) = feed(engine.snapshot(0));
        let sub = handle.subscribe();
        let mut sent = 0;
        let mut last = None;
        for i in 0..(FEED_CAPACITY as i64 + 10) {
            // One feature per alert, so none resolves the others.
            let feature = format!("f{i}");
            engine.raise("svc", &feature, &BTreeMap::new(), &[finding(i)], i);
            let t = engine.drain_transitions();
            sent += t.len();
            publisher.publish_changes(&engine, &t);
            last = Some(feature);
        }
        assert_eq!(sent, FEED_CAPACITY + 10);
        assert_eq!(sub.dropped(), 10);
        let got = sub.drain();
        assert_eq!(got.len(), FEED_CAPACITY);
        // The newest are kept.
        assert_eq!(
            got.last().unwrap().incident.labels.get("feature"),
            last.as_ref()
        );
    }

    #[test]
    fn acks_are_applied_by_the_owner_and_answered() {
        let mut engine = Engine::new(EngineConfig::default());
        engine.raise("svc", "latency_p99_ms", &BTreeMap::new(), &[finding(1)], 1);
        let id = engine.incidents()[0].id.clone();
        let (publisher, handle) = feed(engine.snapshot(1));
        let asker = std::thread::spawn({
            let id = id.clone();
            move || handle.ack(&id, "alice", 2)
        });
        let c = publisher.commands().recv().unwrap();
        publisher.apply(c, &mut engine);
        let acked = asker.join().unwrap().unwrap().unwrap();
        assert_eq!(acked.ack.unwrap().by, "alice");
        assert_eq!(
            engine.incident(&id).unwrap().ack.as_ref().unwrap().by,
            "alice"
        );
    }
}
