//! The audit log: appends with sequence numbers, queries, and recovery
//! from a torn last line, both simulated and from a process killed with
//! SIGKILL while appending.

use std::fs::OpenOptions;
use std::io::Write;
use std::process::{Command, Stdio};

use perfpilot_autopilot::audit::{AuditEvent, AuditFilter, AuditLog};

fn decision(policy: &str) -> AuditEvent {
    AuditEvent::Decision {
        decision: Some(7),
        policy: policy.into(),
        policy_version: "3".into(),
        action: "restart".into(),
        condition: "p99 > baseline.p99 * 1.3 for 3m".into(),
        readings: vec!["p99 = 0.9".into(), "baseline.p99 = 0.3".into()],
        outcome: "dry_run".into(),
        mode: Some("dry-run".into()),
        target: Some("Service/checkout".into()),
    }
}

fn run(policy: &str) -> AuditEvent {
    AuditEvent::ActionRun {
        decision: Some(7),
        policy: policy.into(),
        action: "restart".into(),
        operation: "exec /usr/bin/systemctl restart checkout".into(),
        dry_run: false,
        output: "a \"quoted\"\nline; $(not run)".into(),
        exit_status: Some(0),
        error: None,
        duration_ms: 120,
        attempts: 1,
    }
}

#[test]
fn appends_number_records_and_queries_filter_newest_first() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).expect("a new log");
    assert_eq!(log.next_seq(), 1);
    let a = log.append(decision("checkout")).expect("appended");
    let b = log.append(run("checkout")).expect("appended");
    let batch = log
        .append_all(vec![
            decision("search"),
            AuditEvent::Approval {
                decision: Some(8),
                policy: "search".into(),
                action: "restart".into(),
                by: "alice".into(),
                approved: true,
                reason: None,
            },
            AuditEvent::Impact {
                decision: Some(7),
                policy: "checkout".into(),
                action: "restart".into(),
                verdict: "worse".into(),
                detail: "p99 0.9 -> 1.4".into(),
                signal: Some("p99".into()),
                before: Some(0.9),
                after: Some(1.4),
            },
            AuditEvent::Rollback {
                decision: Some(7),
                policy: "checkout".into(),
                action: "restart".into(),
                reason: "impact worse".into(),
                operation: "exec /usr/bin/true".into(),
                output: String::new(),
                exit_status: Some(0),
                error: None,
            },
        ])
        .expect("appended");
    assert_eq!((a.seq, b.seq), (1, 2));
    assert_eq!(
        batch.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    let all = log.query(&AuditFilter::default()).expect("queried");
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6, 5, 4, 3, 2, 1]
    );
    assert_eq!(all[5], a, "records read back as written");
    assert_eq!(all[4], b);

    let checkout = log
        .query(&AuditFilter {
            policy: Some("checkout".into()),
            ..Default::default()
        })
        .expect("queried");
    assert_eq!(
        checkout.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6, 5, 2, 1]
    );
    let decisions = log
        .query(&AuditFilter {
            kind: Some("decision".into()),
            limit: Some(1),
            ..Default::default()
        })
        .expect("queried");
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].seq, 3);
    // The limit keeps the newest matches.
    let newest = |policy: Option<&str>, limit| {
        log.query(&AuditFilter {
            policy: policy.map(str::to_string),
            limit: Some(limit),
            ..Default::default()
        })
        .expect("queried")
        .iter()
        .map(|r| r.seq)
        .collect::<Vec<_>>()
    };
    assert_eq!(newest(None, 2), vec![6, 5]);
    assert_eq!(newest(Some("checkout"), 3), vec![6, 5, 2]);
    assert_eq!(newest(Some("checkout"), 10), vec![6, 5, 2, 1]);
    assert!(newest(None, 0).is_empty());
    // One decision's chain: its approval, or its decision, run, impact
    // and rollback; never another decision's or a policy change.
    let seqs = |f: AuditFilter| {
        log.query(&f)
            .expect("queried")
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(AuditFilter {
            decision: Some(8),
            ..Default::default()
        }),
        vec![4]
    );
    assert_eq!(
        seqs(AuditFilter {
            decision: Some(7),
            policy: Some("checkout".into()),
            ..Default::default()
        }),
        vec![6, 5, 2, 1]
    );
    assert!(seqs(AuditFilter {
        decision: Some(9),
        ..Default::default()
    })
    .is_empty());
    let future = log
        .query(&AuditFilter {
            since_ms: Some(a.at_ms + 86_400_000),
            ..Default::default()
        })
        .expect("queried");
    assert!(future.is_empty());

    // The file is JSON lines with a kind field.
    let text = std::fs::read_to_string(&path).expect("readable");
    assert_eq!(text.lines().count(), 6);
    assert!(text.lines().all(|l| l.contains("\"kind\":")));
    drop(log);
    let log = AuditLog::open(&path).expect("reopened");
    assert_eq!(log.next_seq(), 7, "numbering goes on after a reopen");
    assert!(log.recovered().is_none());
}

#[test]
fn a_torn_last_line_is_cut_off_and_every_complete_record_kept() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).expect("a new log");
    for _ in 0..10 {
        log.append(decision("checkout")).expect("appended");
    }
    drop(log);
    let complete = std::fs::metadata(&path).expect("stat").len();
    // Half a record, as a crash mid-write leaves it.
    let torn = br#"{"seq":11,"at_ms":1795342530000,"kind":"decision","policy":"chec"#;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(torn))
        .expect("appending garbage");

    let mut log = AuditLog::open(&path).expect("reopened after the torn write");
    let tail = log.recovered().expect("the torn tail is reported");
    assert_eq!(tail.offset, complete);
    assert_eq!(tail.bytes, torn.len() as u64);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), complete);
    let records = log.query(&AuditFilter::default()).expect("queried");
    assert_eq!(records.len(), 10);
    assert_eq!(log.next_seq(), 11);
    let r = log
        .append(run("checkout"))
        .expect("appended after recovery");
    assert_eq!(r.seq, 11);
    assert_eq!(log.query(&AuditFilter::default()).expect("q").len(), 11);
}

#[test]
fn a_damaged_last_line_ending_in_a_newline_is_a_torn_write_too() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).expect("a new log");
    log.append(decision("checkout")).expect("appended");
    drop(log);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(b"\0\0\0\0\n"))
        .expect("appending garbage");
    let log = AuditLog::open(&path).expect("reopened");
    assert_eq!(log.recovered().map(|t| t.bytes), Some(5));
    assert_eq!(log.query(&AuditFilter::default()).expect("q").len(), 1);
}

#[test]
fn damage_before_the_last_line_is_set_aside_and_the_records_after_it_kept() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).expect("a new log");
    log.append(decision("checkout")).expect("appended");
    log.append(decision("search")).expect("appended");
    drop(log);
    let text = std::fs::read_to_string(&path).expect("readable");
    let (first, second) = text.split_once('\n').expect("two lines");
    std::fs::write(&path, format!("{first}\nnot json\n{second}")).expect("writable");
    let mut log = AuditLog::open(&path).expect("opens: the damage is set aside");
    let damage = log.damaged().expect("the damage is reported");
    assert_eq!(damage.lines, vec![2]);
    let kept = damage.kept_as.clone().expect("a copy is kept");
    assert!(
        std::fs::read_to_string(&kept)
            .expect("the copy reads")
            .contains("not json\n"),
        "the damaged bytes are kept aside"
    );
    assert_eq!(log.query(&AuditFilter::default()).expect("q").len(), 2);
    let r = log
        .append(run("checkout"))
        .expect("appended after recovery");
    assert_eq!(r.seq, 3);
    drop(log);
    let log = AuditLog::open(&path).expect("reopened");
    assert!(log.damaged().is_none(), "the log is whole again");
    assert_eq!(log.query(&AuditFilter::default()).expect("q").len(), 3);
}

/// The child side of the killed-writer test: appends until killed, printing each
/// sequence number once `append` has returned.
#[test]
fn child_appender() {
    let Ok(path) = std::env::var("PERFPILOT_AUDIT_CHILD") else {
        return;
    };
    let mut log = AuditLog::open(&path).expect("the child opens the log");
    let mut out = std::io::stdout().lock();
    loop {
        let r = log.append(run(&"x".repeat(4096))).expect("appended");
        writeln!(out, "acked {}", r.seq).expect("stdout");
        out.flush().expect("stdout");
    }
}

/// A writer killed mid-append: the log reopens (a torn last line cut
/// off), keeps every record whose append returned, and its sequence
/// numbers have no gaps. This is torn-tail recovery, not durability: a
/// killed process leaves its writes in the page cache, so this passes
/// with or without the fsync; only losing power tests that.
#[test]
fn a_writer_killed_mid_append_leaves_a_log_that_reopens_without_gaps() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.jsonl");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_appender",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PERFPILOT_AUDIT_CHILD", &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child starts");
    // Let it append a while, then kill it mid-stream.
    let mut acked = 0u64;
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut last = 0u64;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("acked ") {
                last = n.trim().parse().unwrap_or(last);
            }
        }
        last
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    if let Ok(n) = reader.join() {
        acked = n;
    }
    assert!(acked > 0, "the child appended nothing");
    let log = AuditLog::open(&path).expect("reopened after SIGKILL");
    let records = log.query(&AuditFilter::default()).expect("queried");
    let kept = records.first().map(|r| r.seq).unwrap_or(0);
    assert!(kept >= acked, "acknowledged {acked}, kept {kept}");
    assert_eq!(records.len() as u64, kept, "no gaps");
    eprintln!(
        "acknowledged {acked}, kept {kept}, torn tail {:?}",
        log.recovered()
    );
}

mod faults {
    use super::*;
    use perfpilot_fsio::faults::{inject, Fault, EIO, ENOSPC};
    use perfpilot_fsio::Op;

    #[test]
    fn a_failed_append_whose_tear_cannot_be_cut_is_never_appended_after() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).expect("a new log");
        log.append(decision("a")).expect("appended");
        let w = inject(Fault::nth(dir.path(), Op::Write, 1, ENOSPC));
        let t = inject(Fault::nth(dir.path(), Op::Truncate, 1, EIO));
        log.append(decision("b")).expect_err("the disk is full");
        assert_eq!((w.fired(), t.fired()), (1, 1));
        drop((w, t));
        // Space is back: the log repairs its end before appending.
        let c = log
            .append(decision("c"))
            .expect("appended after the failure");
        assert_eq!(c.seq, 2, "the failed record used up no number");
        drop(log);
        let log = AuditLog::open(&path).expect("reopened");
        assert!(log.recovered().is_none(), "{:?}", log.recovered());
        let policies: Vec<String> = log
            .query(&AuditFilter::default())
            .expect("queried")
            .into_iter()
            .filter_map(|r| r.event.policy().map(str::to_string))
            .collect();
        assert_eq!(policies, vec!["c", "a"]);
    }

    #[test]
    fn appends_are_refused_while_a_tear_cannot_be_cut() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).expect("a new log");
        log.append(decision("a")).expect("appended");
        let w = inject(Fault::nth(dir.path(), Op::Write, 1, ENOSPC));
        let t = inject(Fault::always(dir.path(), Op::Truncate, EIO));
        log.append(decision("b")).expect_err("the disk is full");
        drop(w);
        log.append(decision("c"))
            .expect_err("refused: the end of the log cannot be repaired");
        drop(t);
        log.append(decision("d")).expect("appended once repaired");
        drop(log);
        let log = AuditLog::open(&path).expect("reopened");
        assert_eq!(log.query(&AuditFilter::default()).expect("q").len(), 2);
    }
}

#[test]
fn a_torn_record_glued_to_a_whole_one_keeps_the_whole_one() {
    // What an append after a torn write left before: half a record, then
    // a whole one on the same line.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).expect("a new log");
    log.append(decision("a")).expect("appended");
    log.append(decision("b")).expect("appended");
    drop(log);
    let text = std::fs::read_to_string(&path).expect("readable");
    let (first, second) = text.split_once('\n').expect("two lines");
    let glued = format!("{first}\n{}{second}", &first[..first.len() / 2]);
    std::fs::write(&path, glued).expect("writable");
    let log = AuditLog::open(&path).expect("reopened");
    let records = log.query(&AuditFilter::default()).expect("queried");
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(log.next_seq(), 3);
}
