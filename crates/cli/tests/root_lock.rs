//! Lock contention profiles end to end with real eBPF. Needs root (CI runs
//! as root): a C workload without frame pointers has a holder thread keep
//! one mutex 60 ms while a waiter blocks on it in `wait_long`, then
//! another 20 ms while a second waiter blocks in `wait_short`; `perfpilot
//! record --profiles lock` must put the time waited under
//! `wait_long;pthread_mutex_lock` (about loops x 60 ms) and split it 3:1
//! with `wait_short`, under complete stacks. A Rust workload
//! (std::sync::Mutex) does the same.

mod common;
use common::*;

/// glibc's exported pthread_mutex_lock, as its symbol table names it.
const MUTEX_LOCK: &str = "__GI___pthread_mutex_lock";

/// Values of the folded lines of `process` that pass through `chain`.
fn waited(lines: &[(Vec<String>, u64)], process: &str, chain: &[&str]) -> u64 {
    lines
        .iter()
        .filter(|(f, _)| f[0] == process && has_chain(f, chain))
        .map(|(_, ns)| ns)
        .sum()
}

/// Values of the folded lines through `chain`, whatever the process.
fn waited_any(lines: &[(Vec<String>, u64)], chain: &[&str]) -> u64 {
    lines
        .iter()
        .filter(|(f, _)| has_chain(f, chain))
        .map(|(_, ns)| ns)
        .sum()
}

#[test]
fn root_lock_delay_is_at_the_function_that_locked() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let argv = build("c-lock", dir.path());
    let out_path = dir.path().join("out.folded");
    let loops = 30;
    let out = run_ok(
        perfpilot()
            .args(["record", "--profiles", "lock", "-o"])
            .arg(&out_path)
            .arg("--")
            .args(&argv)
            .arg(loops.to_string())
            // The threads start once the process's unwind tables are
            // loaded: its first waits get complete stacks.
            .arg("500"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let folded = std::fs::read_to_string(&out_path).unwrap();
    let lines = parse_folded(&folded);

    // The whole chain, from the thread's start to the futex wait.
    let chain = |f: &'static str| ["start_thread", "waiter", f, MUTEX_LOCK, "__lll_lock_wait"];
    let long = waited(&lines, "c-lock", &chain("wait_long"));
    let short = waited(&lines, "c-lock", &chain("wait_short"));
    let ms = |ns: u64| ns as f64 / 1e6;
    // Each hold starts once the waiter is about to lock: at least 60 ms
    // waited per loop; the holder's wakeups on a loaded machine add a
    // little, not a third.
    let want_long = loops as f64 * 60.0;
    assert!(
        ms(long) >= want_long * 0.95 && ms(long) <= want_long * 1.35,
        "wait_long waited {:.0} ms, want about {want_long} ms\n{stderr}\n{folded}",
        ms(long)
    );
    let split = long as f64 / (long + short) as f64;
    assert!(
        (split - 0.75).abs() <= 0.05,
        "wait_long has {:.1}% of the mutex waits (want 75% +- 5)\n{stderr}\n{folded}",
        split * 100.0
    );
    // What was waited on elsewhere (the semaphores that pace the threads,
    // main joining them) keeps its own stacks.
    assert!(
        waited_any(&lines, &["main", "__pthread_clockjoin_ex"]) > 0,
        "{folded}"
    );
    assert!(stderr.contains("futex waits counted"), "{stderr}");
}

/// The same in Rust: std::sync::Mutex waits in its own futex path
/// (`lock_contended`), under the function that locked.
#[test]
fn root_lock_delay_of_a_rust_mutex_is_at_the_function_that_locked() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let argv = build("rust-lock", dir.path());
    let out_path = dir.path().join("out.folded");
    let loops = 30;
    let out = run_ok(
        perfpilot()
            .args(["record", "--profiles", "lock", "-o"])
            .arg(&out_path)
            .arg("--")
            .args(&argv)
            .arg(loops.to_string())
            // The threads start once the process's unwind tables are
            // loaded: its first waits get complete stacks.
            .arg("500"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let folded = std::fs::read_to_string(&out_path).unwrap();
    let lines = parse_folded(&folded);
    let chain = |f: &'static str| {
        [
            "lock::waiter",
            f,
            "std::sync::poison::mutex::Mutex<T>::lock",
            "<std::sys::sync::mutex::futex::Mutex>::lock",
            "<std::sys::sync::mutex::futex::Mutex>::lock_contended",
        ]
    };
    let long = waited(&lines, "rust-lock", &chain("lock::wait_long"));
    let short = waited(&lines, "rust-lock", &chain("lock::wait_short"));
    let ms = |ns: u64| ns as f64 / 1e6;
    let want_long = loops as f64 * 60.0;
    assert!(
        ms(long) >= want_long * 0.95 && ms(long) <= want_long * 1.35,
        "wait_long waited {:.0} ms, want about {want_long} ms\n{stderr}\n{folded}",
        ms(long)
    );
    let split = long as f64 / (long + short) as f64;
    assert!(
        (split - 0.75).abs() <= 0.05,
        "wait_long has {:.1}% of the mutex waits (want 75% +- 5)\n{stderr}\n{folded}",
        split * 100.0
    );
}

/// `record` writes the lock profile beside the CPU one, in pprof with Go's
/// mutex profile types, and says how it was collected.
#[test]
fn root_lock_profile_beside_the_cpu_profile_in_pprof() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let argv = build("c-lock", dir.path());
    let out_path = dir.path().join("out.pb.gz");
    let loops = 20;
    run_ok(
        perfpilot()
            .args([
                "record",
                "--profiles",
                "cpu,lock",
                "--lock-min-wait-us",
                "1000",
                "-o",
            ])
            .arg(&out_path)
            .arg("--")
            .args(&argv)
            .arg(loops.to_string())
            // The threads start once the process's unwind tables are
            // loaded: its first waits get complete stacks.
            .arg("500"),
    );
    let cpu = perfpilot_model::Format::Pprof
        .decode(&std::fs::read(&out_path).unwrap())
        .unwrap();
    assert_eq!(cpu.sample_types[0].kind, "samples");
    let lock = perfpilot_model::Format::Pprof
        .decode(&std::fs::read(dir.path().join("out.lock.pb.gz")).unwrap())
        .unwrap();
    let types: Vec<(&str, &str)> = lock
        .sample_types
        .iter()
        .map(|t| (t.kind.as_str(), t.unit.as_str()))
        .collect();
    assert_eq!(types, [("contentions", "count"), ("delay", "nanoseconds")]);
    let period = lock.period_type.as_ref().unwrap();
    assert_eq!(
        (period.kind.as_str(), period.unit.as_str()),
        ("contentions", "count")
    );
    let comments = lock.comments.join("\n");
    assert!(comments.contains("shorter than 1000000 ns"), "{comments}");
    // One contention per loop in wait_long: each blocks once.
    let in_wait_long: i64 = lock
        .samples()
        .iter()
        .filter(|s| lock.frames(s.stack).iter().any(|f| f.name == "wait_long"))
        .map(|s| s.values[0])
        .sum();
    assert_eq!(in_wait_long, loops, "contentions in wait_long");
}

/// The agent ships the lock profile; the server keeps it as Go's two mutex
/// types (the UI's type picker reads that list) and serves their flame
/// graphs.
#[test]
fn root_agent_ships_lock_as_mutex_profile_types() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let argv = build("c-lock", dir.path());
    let server = ServerProcess::start(dir.path(), &[] as &[&str]);
    // The threads start after 2 s, once the agent is attached.
    let list = server.agent_on(dir.path(), "lock", &argv, &["30", "2000"]);
    let delay = "mutex:delay:nanoseconds:contentions:count";
    let contentions = "mutex:contentions:count:contentions:count";
    assert!(list.iter().any(|t| t == delay), "{list:?}");
    assert!(list.iter().any(|t| t == contentions), "{list:?}");

    let query = |ty: &str| {
        let out = run_ok(perfpilot().args([
            "query",
            "flamegraph",
            "--server",
            &server.base,
            "--from",
            "now-10m",
            "--query",
            &format!("{ty}{{}}"),
        ]));
        parse_folded(&String::from_utf8_lossy(&out.stdout))
    };
    let lines = query(delay);
    let long = waited_any(&lines, &["wait_long", MUTEX_LOCK]);
    let short = waited_any(&lines, &["wait_short", MUTEX_LOCK]);
    let split = long as f64 / (long + short).max(1) as f64;
    assert!(
        (split - 0.75).abs() <= 0.05,
        "on the server wait_long has {:.1}% of the delay (want 75% +- 5)\n{lines:?}",
        split * 100.0
    );
    let counts = query(contentions);
    let long = waited_any(&counts, &["wait_long", MUTEX_LOCK]);
    let short = waited_any(&counts, &["wait_short", MUTEX_LOCK]);
    assert_eq!((long, short), (30, 30), "{counts:?}");
}

#[test]
fn root_top_shows_where_threads_wait_on_locks() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let argv = build("c-lock", dir.path());
    let args = ["--profiles", "lock", "--rows", "40", "--window", "3"];
    let last = top_last_snapshot(&argv, "1000", 3, &args);
    assert!(
        last.contains(" ms waited on locks in the last 3 s"),
        "{last}"
    );
    assert!(
        last.lines().any(|l| l.trim_end().ends_with("wait_long")),
        "{last}"
    );
}
