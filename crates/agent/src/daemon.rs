//! The continuous profiler as a service: a sampling thread that drains the
//! BPF sampler and cuts a profile every interval, and a shipping thread
//! that sends those profiles to a server (spooling them while it cannot).
//!
//! Shipping runs beside sampling, not inside it: a slow or absent server
//! (an HTTP timeout, a spool on a slow disk) holds up only the shipping
//! thread, while the sampling thread keeps the ring buffer drained. The two
//! are joined by a bounded queue of profiles. When the queue is full at the
//! end of an interval, the profile is not cut: the session keeps
//! aggregating, and the next profile covers both intervals. No samples are
//! lost and sampling never waits; each such interval is counted in
//! [`DaemonStats::deferred`]. Everything the queue hands over goes through
//! [`Shipper::ship`], so what is acknowledged, spooled and bounded is
//! exactly as docs/DURABILITY.md says; at a stop while the server takes
//! nothing, the profiles still queued go to the spool directly
//! ([`Shipper::keep`]) instead of each waiting out a timeout.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use perfpilot_model::Profile;

use crate::session::{AgentError, Session, SessionConfig, SessionReport};
use crate::ship::{Notice, ShipError, ShipStats, Shipper, ShipperConfig};

/// How the daemon samples and ships.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub session: SessionConfig,
    pub shipper: ShipperConfig,
    /// How often a profile is cut and queued for shipping.
    pub interval: Duration,
    /// How often samples are moved out of the kernel.
    pub drain_every: Duration,
    /// Most profiles waiting for the shipping thread.
    pub queue: usize,
}

impl DaemonConfig {
    /// A daemon with the usual cadence: a drain a second, at most four
    /// profiles waiting to be shipped.
    pub fn new(session: SessionConfig, shipper: ShipperConfig, interval: Duration) -> Self {
        DaemonConfig {
            session,
            shipper,
            interval,
            drain_every: Duration::from_secs(1),
            queue: 4,
        }
    }
}

/// What the shipping thread reports, as it happens.
#[derive(Debug, Clone)]
pub enum DaemonEvent {
    /// A new reason for keeping or dropping batches (also logged).
    Notice(Notice),
    /// A profile was handed to the shipper: the counts so far.
    Shipped(ShipStatus),
}

/// The shipper's counts after a profile, for a status line.
#[derive(Debug, Clone, Default)]
pub struct ShipStatus {
    pub stats: ShipStats,
    /// Batches in the spool now.
    pub spooled: usize,
    /// The last error talking to the server.
    pub last_error: Option<String>,
}

/// A whole run's counters.
#[derive(Debug, Clone, Default)]
pub struct DaemonStats {
    pub session: SessionReport,
    pub ship: ShipStats,
    /// Batches left in the spool at the end.
    pub spooled: usize,
    /// Profiles handed to the shipping thread.
    pub profiles: u64,
    /// Intervals whose profile was not cut because the queue was full
    /// (their samples went into the next profile).
    pub deferred: u64,
    /// Iterations of the sampling loop (a poll, and a drain or a cut when
    /// due), the last one at the stop left out.
    pub iterations: u64,
    /// The longest of them, and all of them together, poll wait included.
    pub longest_iteration: Duration,
    pub busy: Duration,
}

/// Starts daemons.
pub struct Daemon;

impl Daemon {
    /// Starts the sampling session and the shipper, then runs them on
    /// their own threads until [`DaemonHandle::stop`]. Fails here, not
    /// later, when the session cannot start (permissions, the kernel) or
    /// the spool cannot be made. `on_event` is called on the shipping
    /// thread.
    pub fn spawn(
        config: DaemonConfig,
        on_event: impl FnMut(DaemonEvent) + Send + 'static,
    ) -> Result<DaemonHandle, AgentError> {
        let stop = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicUsize::new(0));
        let capacity = config.queue.max(1);
        let (tx, rx) = sync_channel::<Vec<Profile>>(capacity);
        // The BPF objects stay on the thread that made them: the session
        // starts there and says how it went.
        let (started_tx, started_rx) = sync_channel::<Result<(), AgentError>>(1);
        let sampler = {
            let stop = Arc::clone(&stop);
            let queued = Arc::clone(&queued);
            let config = config.clone();
            std::thread::Builder::new()
                .name("perfpilot-sample".into())
                .spawn(move || {
                    let session = match Session::start(config.session.clone()) {
                        Ok(s) => {
                            let _ = started_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return Err(None);
                        }
                    };
                    Sampling {
                        session,
                        config,
                        tx,
                        queued,
                        capacity,
                        stop,
                        stats: DaemonStats::default(),
                    }
                    .run()
                    .map_err(Some)
                })
                .map_err(AgentError::Thread)?
        };
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = sampler.join();
                return Err(e);
            }
            Err(_) => {
                return Err(match sampler.join() {
                    Ok(Err(Some(e))) => e,
                    _ => AgentError::Panicked("sampling"),
                })
            }
        }
        let shipper = match Shipper::new(config.shipper.clone()) {
            Ok(s) => s,
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                drop(rx);
                let _ = sampler.join();
                return Err(AgentError::SpoolSetup(e));
            }
        };
        let ship_error = Arc::new(Mutex::new(None));
        let shipping = {
            let stop = Arc::clone(&stop);
            let ship_error = Arc::clone(&ship_error);
            std::thread::Builder::new()
                .name("perfpilot-ship".into())
                .spawn(move || ship_loop(shipper, rx, queued, stop, ship_error, on_event))
        };
        let shipping = match shipping {
            Ok(h) => h,
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                let _ = sampler.join();
                return Err(AgentError::Thread(e));
            }
        };
        Ok(DaemonHandle {
            stop,
            sampler,
            shipping,
            ship_error,
        })
    }
}

/// A running daemon.
pub struct DaemonHandle {
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<Result<DaemonStats, Option<AgentError>>>,
    shipping: JoinHandle<(ShipStats, usize)>,
    ship_error: Arc<Mutex<Option<ShipError>>>,
}

impl DaemonHandle {
    /// Asks the daemon to stop: it drains once more, ships what it has,
    /// and ends. Returns at once; [`DaemonHandle::join`] waits.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The daemon ended by itself (an error) or after [`DaemonHandle::stop`].
    pub fn is_finished(&self) -> bool {
        self.sampler.is_finished() && self.shipping.is_finished()
    }

    /// Waits for both threads; the last profile has been shipped or
    /// spooled when this returns. The first error wins: the sampler's,
    /// else the shipper's.
    pub fn join(self) -> Result<DaemonStats, AgentError> {
        let sampled = self.sampler.join();
        let shipped = self.shipping.join();
        let mut stats = match sampled {
            Ok(Ok(s)) => s,
            Ok(Err(Some(e))) => return Err(e),
            Ok(Err(None)) | Err(_) => return Err(AgentError::Panicked("sampling")),
        };
        let Ok((ship, spooled)) = shipped else {
            return Err(AgentError::Panicked("shipping"));
        };
        if let Some(e) = self.ship_error.lock().ok().and_then(|mut e| e.take()) {
            return Err(AgentError::Ship(e));
        }
        stats.ship = ship;
        stats.spooled = spooled;
        Ok(stats)
    }
}

struct Sampling {
    session: Session,
    config: DaemonConfig,
    /// Each interval's profiles, one per enabled type.
    tx: SyncSender<Vec<Profile>>,
    /// Profiles sent and not yet taken by the shipping thread: never more
    /// than `capacity`, so a send never blocks.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    stop: Arc<AtomicBool>,
    stats: DaemonStats,
}

impl Sampling {
    fn run(mut self) -> Result<DaemonStats, AgentError> {
        let mut next_ship = Instant::now() + self.config.interval;
        let mut next_drain = Instant::now() + self.config.drain_every;
        let mut behind = false;
        loop {
            let began = Instant::now();
            let done = self.stop.load(Ordering::SeqCst);
            self.session.poll(Duration::from_millis(100));
            let now = Instant::now();
            if now >= next_drain || done {
                self.session.drain()?;
                next_drain = now + self.config.drain_every;
            }
            if done {
                // The last profile waits for room: the shipping thread is
                // emptying the queue (or has ended, and the send fails).
                let profiles = self.session.take_profiles();
                self.queued.fetch_add(1, Ordering::SeqCst);
                if self.tx.send(profiles).is_ok() {
                    self.stats.profiles += 1;
                }
            } else if now >= next_ship {
                next_ship = now + self.config.interval;
                if self.queued.load(Ordering::SeqCst) < self.capacity {
                    behind = false;
                    let profiles = self.session.take_profiles();
                    self.queued.fetch_add(1, Ordering::SeqCst);
                    if self.tx.send(profiles).is_err() {
                        // The shipping thread ended on an error: stop.
                        self.stop.store(true, Ordering::SeqCst);
                    } else {
                        self.stats.profiles += 1;
                    }
                } else {
                    self.stats.deferred += 1;
                    // Once per episode: a hung server would repeat it
                    // every interval.
                    if !std::mem::replace(&mut behind, true) {
                        tracing::warn!(
                            queued = self.capacity,
                            "the shipper is behind: profiles cover more than one interval \
                             until it catches up"
                        );
                    }
                }
            }
            if done {
                break;
            }
            // The last iteration (which may wait for room in the queue)
            // is the shutdown, not sampling: it is not counted.
            let took = began.elapsed();
            self.stats.iterations += 1;
            self.stats.busy += took;
            self.stats.longest_iteration = self.stats.longest_iteration.max(took);
        }
        self.stats.session = self.session.report();
        Ok(self.stats)
    }
}

fn ship_loop(
    mut shipper: Shipper,
    rx: Receiver<Vec<Profile>>,
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    error: Arc<Mutex<Option<ShipError>>>,
    mut on_event: impl FnMut(DaemonEvent),
) -> (ShipStats, usize) {
    // Ends when the sampling thread has sent its last profile and dropped
    // its end of the queue.
    'intervals: for profiles in rx {
        queued.fetch_sub(1, Ordering::SeqCst);
        for profile in &profiles {
            // Stopping while the server takes nothing: what is left goes
            // straight to the spool, so shutdown waits out at most the send
            // in flight, not one timeout per queued profile.
            let shipped = if stop.load(Ordering::SeqCst) && shipper.held().is_some() {
                shipper.keep(profile)
            } else {
                shipper.ship(profile)
            };
            if let Err(e) = shipped {
                tracing::error!(error = %e, "cannot spool a profile");
                if let Ok(mut slot) = error.lock() {
                    *slot = Some(e);
                }
                stop.store(true, Ordering::SeqCst);
                break 'intervals;
            }
        }
        for notice in shipper.take_notices() {
            // The listener first: it may end a status line the log
            // would otherwise continue.
            on_event(DaemonEvent::Notice(notice.clone()));
            log_notice(&notice);
        }
        on_event(DaemonEvent::Shipped(ShipStatus {
            stats: shipper.stats,
            spooled: shipper.spooled(),
            last_error: shipper.last_error.clone(),
        }));
    }
    (shipper.stats, shipper.spooled())
}

fn log_notice(notice: &Notice) {
    match notice {
        Notice::Resumed { resent } => tracing::info!(resent, "{notice}"),
        Notice::Held { kept, spool, .. } => {
            tracing::warn!(kept, spool = %spool.display(), "{notice}")
        }
        Notice::SpoolFull { limit_bytes, spool } => {
            tracing::warn!(limit_bytes, spool = %spool.display(), "{notice}")
        }
        Notice::Dropped { id, status, .. } => tracing::warn!(batch = %id, status, "{notice}"),
    }
}
