// Test workload: main -> driver -> mid -> {leaf_heavy, leaf_light}, where
// leaf_heavy does three times the work of leaf_light. Runs until it has
// used the number of CPU seconds in the first argument. Built by the tests
// in release mode without frame pointers, with plain rustc (no crates).
use std::hint::black_box;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of the process, in seconds.
fn cpu_seconds() -> f64 {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes the struct we pass.
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 / 1e9
}

#[inline(never)]
fn leaf_heavy(n: u64, x: u64) -> u64 {
    let mut x = x;
    for _ in 0..3 * black_box(n) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    x
}

#[inline(never)]
fn leaf_light(n: u64, x: u64) -> u64 {
    let mut x = x;
    for _ in 0..black_box(n) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    x
}

#[inline(never)]
fn mid(n: u64, x: u64) -> u64 {
    let a = leaf_heavy(n, x);
    let b = leaf_light(n, a);
    black_box(b) ^ 1
}

#[inline(never)]
fn driver(seconds: f64) -> u64 {
    let end = cpu_seconds() + seconds;
    let mut x = 1;
    while cpu_seconds() < end {
        x = mid(100_000, x);
    }
    black_box(x) + 1
}

fn main() {
    let secs = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let x = driver(secs);
    black_box(x);
}
