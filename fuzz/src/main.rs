//! The one fuzzing binary: libFuzzer runs the target that
//! `PERFPILOT_FUZZ_TARGET` names (see `scripts/fuzz.sh`). One binary for
//! every target is one link instead of fifteen.
//!
//! An allocation over `PERFPILOT_FUZZ_MALLOC_MB` (512 by default) aborts
//! with the input saved, as libFuzzer's `-malloc_limit_mb` does; that flag
//! needs a sanitizer's allocator hooks, which a build without
//! AddressSanitizer lacks, so the limit is kept here instead.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use perfpilot_fuzz::targets;

struct Limited;

static MALLOC_LIMIT: AtomicUsize = AtomicUsize::new(512 << 20);

impl Limited {
    fn check(size: usize) {
        let limit = MALLOC_LIMIT.load(Ordering::Relaxed);
        if size > limit {
            // No allocation on this path: the message is formatted
            // straight into stderr, which is unbuffered.
            let _ = writeln!(
                std::io::stderr(),
                "==perfpilot-fuzz== ERROR: perfpilot-fuzz: out-of-memory (malloc({size})): one \
                 allocation over the limit of {} MB (--malloc-mb)",
                limit >> 20
            );
            std::process::abort();
        }
    }
}

// SAFETY: every call goes to the system allocator unchanged; the check
// before it only reads an atomic and may abort.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;

static TARGET: OnceLock<fn(&[u8])> = OnceLock::new();

fn init() {
    if let Some(mb) = std::env::var("PERFPILOT_FUZZ_MALLOC_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        MALLOC_LIMIT.store(mb.saturating_mul(1 << 20), Ordering::Relaxed);
    }
    let name = std::env::var("PERFPILOT_FUZZ_TARGET").unwrap_or_default();
    let Some(run) = targets::by_name(&name) else {
        let names: Vec<&str> = targets::ALL.iter().map(|t| t.0).collect();
        eprintln!(
            "perfpilot-fuzz: PERFPILOT_FUZZ_TARGET is {name:?}; set it to one of: {}",
            names.join(" ")
        );
        std::process::exit(2);
    };
    let _ = TARGET.set(run);
}

fuzz_target!(init: init(), |data: &[u8]| {
    if let Some(run) = TARGET.get() {
        run(data);
    }
});
