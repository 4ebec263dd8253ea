//! How often perfpilot's stack for a sample is exactly perf's: the
//! no-frame-pointer C workload profiled by both at once, perf with
//! `--call-graph dwarf`. Needs root and linux-perf. Goal: >= 95%.
//!
//!     cargo bench -p perfpilot --bench versus_perf

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    common::require_root();
    let c = common::compare_with_perf(499, 10.0);
    println!(
        "versus perf --call-graph dwarf: {:.1}% of samples have the identical folded stack \
         (perfpilot {} samples, perf {} samples; goal >= 95%)",
        c.identical_share * 100.0,
        c.perfpilot_samples,
        c.perf_samples
    );
    println!("largest differences (share in perfpilot - share in perf):");
    for (stack, d) in &c.differences {
        println!("  {:+.2}%  {stack}", d * 100.0);
    }
}
