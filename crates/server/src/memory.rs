//! Giving memory back to the system after a burst of large requests.
//!
//! glibc's malloc keeps freed memory in its arenas (one per thread that
//! allocated, up to 8 per core, and a query runs on any of tokio's
//! blocking threads), and returns only the top of each heap: after a burst
//! of merges the process kept gigabytes it no longer used. `malloc_trim`
//! releases every free page of every arena; and large blocks (a merge's
//! tables, an answer's bytes) are given their own mappings, returned as
//! soon as they are freed, by fixing malloc's mmap threshold (by default
//! it rises after every large free, up to 32 MiB, moving ever larger
//! blocks into the arenas). `malloc_trim` walks the heaps with their
//! locks held, so it runs once the server has been quiet for a moment
//! after activity, and otherwise (long uploads always in flight) at most
//! every `BUSY_PERIOD`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// How long the server must have had no request in flight before trimming.
const QUIET: Duration = Duration::from_millis(500);
/// How often memory is returned when the server is never quiet.
const BUSY_PERIOD: Duration = Duration::from_secs(30);

/// Requests in flight, and whether memory may be waiting to be returned.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    last_change_ms: AtomicU64,
    last_trim_ms: AtomicU64,
    dirty: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_change_ms: AtomicU64::new(0),
            last_trim_ms: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        self.last_change_ms.store(self.now_ms(), Ordering::Release);
    }

    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.dirty.store(true, Ordering::Release);
        self.touch();
    }

    pub(crate) fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.touch();
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Whether memory should be returned now: there was activity, and
    /// none for `QUIET` (or no trim for `BUSY_PERIOD`).
    fn due(&self) -> bool {
        let now = self.now_ms();
        let quiet_for = now.saturating_sub(self.last_change_ms.load(Ordering::Acquire));
        let since_trim = now.saturating_sub(self.last_trim_ms.load(Ordering::Acquire));
        let quiet =
            self.in_flight.load(Ordering::Acquire) == 0 && quiet_for >= QUIET.as_millis() as u64;
        self.dirty.load(Ordering::Acquire)
            && (quiet || since_trim >= BUSY_PERIOD.as_millis() as u64)
    }
}

/// Returns free heap memory to the system whenever the server goes quiet
/// after activity, until aborted.
pub(crate) fn spawn_trimmer(activity: Arc<Activity>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(QUIET / 2).await;
            if activity.due() {
                activity.dirty.store(false, Ordering::Release);
                activity
                    .last_trim_ms
                    .store(activity.now_ms(), Ordering::Release);
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    })
}

/// Blocks from this size up get a mapping of their own.
const MMAP_THRESHOLD: i32 = 256 << 10;

/// Sets the allocator up to return large blocks when they are freed; once,
/// before serving.
pub(crate) fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's own parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Releases free memory of every malloc arena.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and shrinks the allocator's own
    // free lists; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
