//! What a series costs the store's memory, the figure the default series
//! cap (`DEFAULT_MAX_SERIES`) is chosen from: series with the labels a
//! Kubernetes fleet's agent gives them are ingested, one sample each, and
//! flushed; the heap the store holds afterwards (counted by a global
//! allocator wrapper) is divided by their number. Then the same series
//! are left to expire, and what pruning gives back is measured.
//!
//!     cargo bench -p perfpilot-store --bench series [-- --series 200000]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use perfpilot_store::embedded::{EmbeddedStore, Options, DEFAULT_MAX_SERIES};
use perfpilot_store::{Batch, BatchProfile, Store};

/// The system allocator, counting the bytes in use.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// Series `i`'s labels, sorted: 7 labels, about 200 bytes of names and
/// values, as the agent gives a container's process.
fn labels(i: usize) -> Vec<(String, String)> {
    let mut l = vec![
        ("__profile_type__".to_string(), CPU.to_string()),
        ("service_name".to_string(), format!("service-{}", i % 500)),
        ("namespace".to_string(), format!("team-{}", i % 40)),
        (
            "pod".to_string(),
            format!("service-{}-7f9c5d{:04x}-{:05x}", i % 500, i % 65_536, i),
        ),
        ("container".to_string(), "app".to_string()),
        (
            "node".to_string(),
            format!("node-{:03}.eu-west-1.internal", i % 1000),
        ),
        ("process_name".to_string(), format!("worker-{}", i % 7)),
    ];
    l.sort();
    l
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--series")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let store = EmbeddedStore::open(
        dir.path(),
        Options {
            background: false,
            max_series: usize::MAX,
            retention_ms: 3_600_000,
            ..Options::default()
        },
    )
    .expect("opened");
    let base = IN_USE.load(Ordering::Relaxed);
    // Two hours old: past the retention at the end, not before.
    let t = now - 7_000_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let b = Batch {
            id: None,
            strings: vec!["main".into(), "work".into()],
            stacks: vec![vec![0, 1]],
            profiles: chunk
                .iter()
                .map(|&i| BatchProfile {
                    labels: labels(i),
                    time_ms: t,
                    samples: vec![(0, 1)],
                })
                .collect(),
        };
        store.ingest(&b).expect("ingested");
    }
    store.flush().expect("flushed");
    let held = IN_USE.load(Ordering::Relaxed).saturating_sub(base);
    let per = held as f64 / n as f64;
    assert_eq!(store.stats().series, n);
    store.compact(now).expect("retention");
    let after = IN_USE.load(Ordering::Relaxed).saturating_sub(base);
    println!(
        "series: {n}, heap held after a flush: {:.1} MiB",
        held as f64 / 1048576.0
    );
    println!(
        "per series: {per:.0} bytes; at the default cap of {DEFAULT_MAX_SERIES}: {:.0} MiB",
        per * DEFAULT_MAX_SERIES as f64 / 1048576.0
    );
    println!(
        "after they expire and are pruned: {} series, {:.1} MiB held ({:.0} bytes per series \
         pruned)",
        store.stats().series,
        after as f64 / 1048576.0,
        after as f64 / n as f64
    );
}
