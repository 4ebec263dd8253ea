//! pprof ingest, the path of perfpilot's agent and `/api/v1/pprof`:
//! `batch_from_pprof` (which reads uncompressed pprof through the fast
//! path, `add_raw_profile`). No panic, and an accepted profile is a batch
//! the store takes as it is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perfpilot_fuzz::{check_batch, small_limits, NOW_MS};

fuzz_target!(|data: &[u8]| {
    let limits = small_limits();
    let labels = [("region".to_string(), "eu".to_string())];
    if let Ok(b) = perfpilot_wire::batch_from_pprof(data, &labels, "svc", NOW_MS, &limits) {
        check_batch(&b, &limits);
    }
});
