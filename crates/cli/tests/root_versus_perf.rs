//! perfpilot's stacks against perf's DWARF unwinding of the same process
//! at the same time. Needs root and linux-perf.

mod common;

#[test]
fn root_stacks_match_perf_dwarf_unwinding() {
    common::require_root();
    let c = common::compare_with_perf(499, 3.0);
    println!(
        "identical folded stacks: {:.1}% (perfpilot {} samples, perf {} samples)",
        c.identical_share * 100.0,
        c.perfpilot_samples,
        c.perf_samples
    );
    assert!(c.perfpilot_samples > 500 && c.perf_samples > 500);
    assert!(
        c.identical_share >= 0.95,
        "only {:.1}% of samples have the same stack as perf's; largest differences \
         (share perfpilot - share perf):\n{:#?}",
        c.identical_share * 100.0,
        c.differences
    );
}
