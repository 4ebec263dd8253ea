//! End-to-end profiling of real workloads with real eBPF. Needs root
//! (CI runs as root): each test builds a workload whose call chain is
//! known (main -> driver -> mid -> leaf_heavy | leaf_light, the heavy leaf
//! doing three times the light one's work), records it with perfpilot, and
//! checks the chain and the split.

mod common;
use common::*;

struct Expect<'a> {
    kind: &'a str,
    process: &'a str,
    chain: [&'a str; 3],
    heavy: &'a str,
    light: &'a str,
}

/// Records the workload, checks its chains and split, and returns the
/// folded profile.
fn check(e: Expect<'_>) -> String {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let argv = build(e.kind, dir.path());
    let out_path = dir.path().join("out.folded");
    let out = run_ok(
        perfpilot()
            .args(["record", "-F", "999", "-o"])
            .arg(&out_path)
            .arg("--")
            .args(&argv)
            .arg("3"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let folded = std::fs::read_to_string(&out_path).unwrap();
    let lines = parse_folded(&folded);
    let ours: Vec<&(Vec<String>, u64)> = lines.iter().filter(|(f, _)| f[0] == e.process).collect();
    let total: u64 = ours.iter().map(|(_, c)| c).sum();
    assert!(
        total > 1000,
        "only {total} samples of {}:\n{stderr}\n{folded}",
        e.process
    );

    let chain_heavy: Vec<&str> = e.chain.iter().copied().chain([e.heavy]).collect();
    let chain_light: Vec<&str> = e.chain.iter().copied().chain([e.light]).collect();
    let count = |chain: &[&str]| -> u64 {
        ours.iter()
            .filter(|(f, _)| has_chain(f, chain))
            .map(|(_, c)| c)
            .sum()
    };
    let heavy = count(&chain_heavy);
    let light = count(&chain_light);
    let complete = (heavy + light) as f64 / total as f64;
    assert!(
        complete >= 0.90,
        "{}: the full chain is in {:.1}% of {total} samples (want >= 90%)\n{stderr}\n{folded}",
        e.kind,
        complete * 100.0
    );
    let split = heavy as f64 / (heavy + light) as f64;
    assert!(
        (split - 0.75).abs() <= 0.05,
        "{}: {} has {:.1}% of the leaf samples (want 75% +- 5)\n{folded}",
        e.kind,
        e.heavy,
        split * 100.0
    );
    folded
}

#[test]
fn root_c_without_frame_pointers() {
    check(Expect {
        kind: "c-nofp",
        process: "c-nofp",
        chain: ["main", "driver", "mid"],
        heavy: "leaf_heavy",
        light: "leaf_light",
    });
}

#[test]
fn root_c_with_frame_pointers() {
    check(Expect {
        kind: "c-fp",
        process: "c-fp",
        chain: ["main", "driver", "mid"],
        heavy: "leaf_heavy",
        light: "leaf_light",
    });
}

#[test]
fn root_cpp_names_are_demangled() {
    check(Expect {
        kind: "cpp",
        process: "cpp-work",
        chain: [
            "main",
            "perfpilot_test::driver(double)",
            "perfpilot_test::Worker<unsigned long>::mid(long, unsigned long)",
        ],
        heavy: "perfpilot_test::Worker<unsigned long>::leaf_heavy(long, unsigned long)",
        light: "perfpilot_test::Worker<unsigned long>::leaf_light(long, unsigned long)",
    });
}

#[test]
fn root_rust_release_without_frame_pointers() {
    check(Expect {
        kind: "rust",
        process: "rust-work",
        chain: ["work::main", "work::driver", "work::mid"],
        heavy: "work::leaf_heavy",
        light: "work::leaf_light",
    });
}

#[test]
fn root_go() {
    check(Expect {
        kind: "go",
        process: "go-work",
        chain: ["main.main", "main.driver", "main.mid"],
        heavy: "main.leafHeavy",
        light: "main.leafLight",
    });
}

#[test]
fn root_python() {
    // Python functions, read from the interpreter's frames and placed where
    // the interpreter ran them among the native frames.
    let folded = check(Expect {
        kind: "python",
        process: "python3",
        chain: ["main", "driver", "mid"],
        heavy: "leaf_heavy",
        light: "leaf_light",
    });
    // In place means under the interpreter's native frames (_start ...
    // PyEval_EvalCode), not hung at the root because the eval loop's frame
    // went unnamed (then it is all of them). A few samples whose native
    // unwinding stopped early (before the process's tables loaded, or in
    // code without unwind information) keep their Python frames at the
    // root; they are counted in the summary.
    let lines = parse_folded(&folded);
    let ours: Vec<_> = lines.iter().filter(|(f, _)| f[0] == "python3").collect();
    let total: u64 = ours.iter().map(|(_, c)| c).sum();
    let at_root: u64 = ours
        .iter()
        .filter(|(f, _)| f.get(1).is_some_and(|s| s == "<module>"))
        .map(|(_, c)| c)
        .sum();
    assert!(
        (at_root as f64) < 0.15 * total as f64,
        "{at_root} of {total} samples have their Python frames at the root:\n{folded}"
    );
}
