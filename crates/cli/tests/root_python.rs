//! Python profiling under every CPython minor version from 3.8 to 3.13
//! that the machine has (scripts/python-versions.sh finds them,
//! scripts/setup-pythons.sh adds Debian's 3.9; in CI all six must be
//! there). Needs root (CI runs as
//! root): each interpreter runs workloads/work.py, whose leaf_heavy does
//! three times leaf_light's work, under `perfpilot record`; the Python
//! functions must be named and split 3:1 within 5 points. Then
//! workloads/threads.py checks that each thread gets its own Python
//! frames.

mod common;
use common::*;

/// PERFPILOT_TEST_PYTHONS (colon-separated), else what
/// scripts/python-versions.sh finds.
fn interpreters() -> Vec<String> {
    if let Ok(list) = std::env::var("PERFPILOT_TEST_PYTHONS") {
        return list
            .split(':')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/python-versions.sh"
    );
    let out = run_ok(std::process::Command::new("bash").arg(script));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Records work.py under `python`; None when it passed, else why not.
fn check(python: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.folded");
    let out = run_ok(
        perfpilot()
            .args(["record", "-F", "999", "-o"])
            .arg(&out_path)
            .arg("--")
            .arg(python)
            .arg(workload("work.py"))
            .arg("3"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let folded = std::fs::read_to_string(&out_path).unwrap();
    let lines = parse_folded(&folded);
    // The process is named after the interpreter's file (python3.N).
    let ours: Vec<_> = lines
        .iter()
        .filter(|(f, _)| f[0].starts_with("python"))
        .collect();
    let total: u64 = ours.iter().map(|(_, c)| c).sum();
    if total < 1000 {
        return Some(format!("only {total} samples:\n{stderr}\n{folded}"));
    }
    // Before 3.11 every Python call goes through C, so native frames sit
    // between the Python ones: the chain is checked on the Python frames.
    const PY: [&str; 6] = [
        "<module>",
        "main",
        "driver",
        "mid",
        "leaf_heavy",
        "leaf_light",
    ];
    let python_frames = |f: &[String]| -> Vec<String> {
        f.iter()
            .filter(|s| PY.contains(&s.as_str()))
            .cloned()
            .collect()
    };
    let count = |leaf: &str| -> u64 {
        ours.iter()
            .filter(|(f, _)| has_chain(&python_frames(f), &["main", "driver", "mid", leaf]))
            .map(|(_, c)| c)
            .sum()
    };
    // In place: under the interpreter's native frames, not hung at the
    // root because the eval loop's frames went unrecognised.
    let at_root: u64 = ours
        .iter()
        .filter(|(f, _)| f.get(1).is_some_and(|s| s == "<module>"))
        .map(|(_, c)| c)
        .sum();
    if at_root as f64 >= 0.15 * total as f64 {
        return Some(format!(
            "{at_root} of {total} samples have their Python frames at the root:\n{folded}"
        ));
    }
    let heavy = count("leaf_heavy");
    let light = count("leaf_light");
    let complete = (heavy + light) as f64 / total as f64;
    if complete < 0.90 {
        return Some(format!(
            "the Python chain main;driver;mid;leaf_* is in {:.1}% of {total} samples (want >= 90%)\n{stderr}\n{folded}",
            complete * 100.0
        ));
    }
    let split = heavy as f64 / (heavy + light) as f64;
    if (split - 0.75).abs() > 0.05 {
        return Some(format!(
            "leaf_heavy has {:.1}% of the leaf samples (want 75% +- 5)\n{folded}",
            split * 100.0
        ));
    }
    eprintln!(
        "{python}: {total} samples, chain in {:.1}%, leaf_heavy {:.1}%, {:.1}% at the root",
        complete * 100.0,
        split * 100.0,
        at_root as f64 * 100.0 / total as f64
    );
    None
}

/// Records workloads/threads.py under `python`: a thread hashing in C
/// without the GIL must carry its own Python frames, not those of the
/// thread that holds the GIL. None when it passed, else why not.
fn check_threads(python: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.folded");
    run_ok(
        perfpilot()
            .args(["record", "-F", "999", "-o"])
            .arg(&out_path)
            .arg("--")
            .arg(python)
            .arg(workload("threads.py"))
            .arg("2"),
    );
    let folded = std::fs::read_to_string(&out_path).unwrap();
    let lines = parse_folded(&folded);
    let ours: Vec<_> = lines
        .iter()
        .filter(|(f, _)| f[0].starts_with("python"))
        .collect();
    let total: u64 = ours.iter().map(|(_, c)| c).sum();
    let with = |name: &str| -> u64 {
        ours.iter()
            .filter(|(f, _)| f.iter().any(|s| s == name))
            .map(|(_, c)| c)
            .sum()
    };
    let hashing = |f: &[String]| {
        f.iter().any(|s| {
            let s = s.to_ascii_lowercase();
            s.contains("libcrypto") || s.contains("sha256") || s.contains("sha2_")
        })
    };
    let mixed: u64 = ours
        .iter()
        .filter(|(f, _)| {
            f.iter().any(|s| s == "py_spin") && (f.iter().any(|s| s == "hash_spin") || hashing(f))
        })
        .map(|(_, c)| c)
        .sum();
    let (py, hash) = (with("py_spin"), with("hash_spin"));
    if (py as f64) < 0.1 * total as f64 || (hash as f64) < 0.1 * total as f64 || mixed > 0 {
        return Some(format!(
            "threads: py_spin {py}, hash_spin {hash}, py_spin over hashing {mixed} of {total}\n{folded}"
        ));
    }
    eprintln!("{python}: threads: py_spin {py}, hash_spin {hash} of {total}, none mixed");
    None
}

#[test]
fn root_python_each_version() {
    require_root();
    let pythons = interpreters();
    assert!(
        !pythons.is_empty(),
        "no CPython 3.8-3.13 found (scripts/setup-pythons.sh installs them)"
    );
    // CI must cover every minor version; a developer's machine may have
    // fewer (each found is still tested).
    let missing: Vec<String> = (8..=13)
        .map(|m| format!("python3.{m}"))
        .filter(|name| !pythons.iter().any(|p| p.ends_with(&format!("/{name}"))))
        .collect();
    if std::env::var_os("CI").is_some() {
        assert!(
            missing.is_empty(),
            "no interpreter for {missing:?} in CI: {pythons:?}"
        );
    } else if !missing.is_empty() {
        eprintln!("not tested here, no interpreter: {missing:?}");
    }
    let failures: Vec<String> = pythons
        .iter()
        .filter_map(|p| {
            check(p)
                .or_else(|| check_threads(p))
                .map(|why| format!("== {p}: {why}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
