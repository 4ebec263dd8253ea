//! Failures of the file system at chosen points (through `fsio::faults`),
//! damaged files, and what must survive them: every acknowledged batch.

use super::*;
use crate::conformance::{batch, folded, CPU};
use crate::fsio::faults::{inject, Fault, EIO, ENOSPC};
use crate::fsio::Op;

fn opts() -> Options {
    Options {
        background: false,
        retention_ms: 30 * DAY,
        ..Options::default()
    }
}

fn now_min() -> i64 {
    now_ms() / MINUTE * MINUTE
}

/// A batch of service `svc` whose one stack names it: `main;<name>`.
fn marked(svc: &str, name: &str, t: i64) -> Batch {
    batch(svc, &[], CPU, t, &[(&format!("main;{name}"), 1)])
}

/// The marker functions stored for `svc`, sorted.
fn markers(store: &EmbeddedStore, svc: &str) -> Vec<String> {
    let s = Selector::parse(&format!("{{service_name=\"{svc}\"}}")).unwrap();
    let now = now_ms();
    let r = TimeRange {
        start_ms: now - 40 * DAY,
        end_ms: now + DAY,
    };
    let table = store.merge(&s, r).expect("the store answers");
    let mut v: Vec<String> = folded(&table)
        .into_iter()
        .map(|(stack, n)| {
            assert_eq!(n, 1, "{stack} is counted {n} times");
            stack.trim_start_matches("main;").to_string()
        })
        .collect();
    v.sort();
    v
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_failed_wal_write_leaves_no_tear_and_later_batches_survive() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b0", t)).unwrap();
        let g = inject(Fault::nth(&dir.path().join("wal"), Op::Write, 1, ENOSPC));
        store.ingest(&marked("svc", "b1", t)).unwrap_err();
        assert_eq!(g.fired(), 1);
        drop(g);
        store.ingest(&marked("svc", "b2", t)).unwrap();
        store.ingest(&marked("svc", "b3", t)).unwrap();
        // Dropped without a flush, as a kill -9 leaves it: the WAL is all.
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b2", "b3"]));
}

#[test]
fn a_wal_tear_that_cannot_be_cut_off_is_never_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let t = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b0", t)).unwrap();
        let w = inject(Fault::nth(&wal, Op::Write, 1, ENOSPC));
        let c = inject(Fault::nth(&wal, Op::Truncate, 1, EIO));
        store.ingest(&marked("svc", "b1", t)).unwrap_err();
        drop((w, c));
        store.ingest(&marked("svc", "b2", t)).unwrap();
        store.ingest(&marked("svc", "b3", t)).unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b2", "b3"]));
}

#[test]
fn a_failed_wal_sync_is_not_acknowledged_and_tears_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let t = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        let g = inject(Fault::nth(&wal, Op::Sync, 1, EIO).named(".wal"));
        let err = store.ingest(&marked("svc", "b1", t)).unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
        drop(g);
        store.ingest(&marked("svc", "b2", t)).unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b2"]));
}

#[test]
fn disk_full_is_an_error_of_its_own_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    let _g = inject(Fault::always(dir.path(), Op::Write, ENOSPC));
    let err = store.ingest(&marked("svc", "b1", now_min())).unwrap_err();
    match &err {
        StoreError::DiskFull { path, .. } => {
            assert!(path.starts_with(dir.path().join("wal")), "{err}")
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("disk is full"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
}

#[test]
fn while_the_disk_is_full_queries_answer_and_ingest_resumes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_min();
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    store.ingest(&marked("svc", "b0", t)).unwrap();
    store.flush().unwrap();
    store.ingest(&marked("svc", "b1", t)).unwrap();
    let full: Vec<_> = [
        Op::Create,
        Op::Write,
        Op::Sync,
        Op::Truncate,
        Op::Rename,
        Op::Link,
    ]
    .into_iter()
    .map(|op| inject(Fault::always(dir.path(), op, ENOSPC)))
    .collect();
    for i in 0..3 {
        let err = store
            .ingest(&marked("svc", &format!("x{i}"), t))
            .unwrap_err();
        assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
        let err = store.flush().unwrap_err();
        assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
        assert_eq!(markers(&store, "svc"), names(&["b0", "b1"]));
    }
    drop(full);
    // Space is back: the same store takes writes again.
    store.ingest(&marked("svc", "b2", t)).unwrap();
    store.flush().unwrap();
    store.ingest(&marked("svc", "b3", t)).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b1", "b2", "b3"]));
    drop(store);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b1", "b2", "b3"]));
}

#[test]
fn a_failed_symbols_write_tears_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b0", t)).unwrap();
        let g = inject(Fault::nth(dir.path(), Op::Write, 1, ENOSPC).named("symbols"));
        store.flush().unwrap_err();
        assert_eq!(g.fired(), 1);
        drop(g);
        store.ingest(&marked("svc", "b1", t)).unwrap();
        store.flush().unwrap();
        store.ingest(&marked("svc", "b2", t)).unwrap();
        store.flush().unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b1", "b2"]));
}

#[test]
fn a_symbols_tear_that_cannot_be_cut_off_is_never_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b0", t)).unwrap();
        store.flush().unwrap();
        store.ingest(&marked("svc", "b1", t)).unwrap();
        let w = inject(Fault::nth(dir.path(), Op::Write, 1, ENOSPC).named("symbols"));
        let c = inject(Fault::nth(dir.path(), Op::Truncate, 1, EIO).named("symbols"));
        store.flush().unwrap_err();
        drop((w, c));
        store.ingest(&marked("svc", "b2", t)).unwrap();
        store.flush().unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b1", "b2"]));
}

#[test]
fn a_failed_block_write_leaves_no_half_block() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = dir.path().join("blocks");
    let t = now_min();
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    store.ingest(&marked("svc", "b0", t)).unwrap();
    for op in [Op::Create, Op::Write, Op::Sync, Op::Rename] {
        let g = inject(Fault::nth(&blocks, op, 1, ENOSPC));
        store.flush().unwrap_err();
        assert_eq!(g.fired(), 1, "{op:?}");
        assert_eq!(files_in(&blocks), Vec::<String>::new(), "{op:?}");
        assert_eq!(store.stats().blocks, 0);
        assert_eq!(markers(&store, "svc"), names(&["b0"]), "{op:?}");
    }
    store.flush().unwrap();
    assert_eq!(store.stats().blocks, 1);
    drop(store);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0"]));
}

#[test]
fn a_block_whose_directory_sync_failed_is_never_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = dir.path().join("blocks");
    let t = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b0", t)).unwrap();
        // The block is renamed in, then syncing its directory fails.
        let g = inject(Fault::nth(&blocks, Op::Sync, 1, EIO).named("blocks"));
        store.flush().unwrap_err();
        assert_eq!(g.fired(), 1);
        drop(g);
        assert_eq!(markers(&store, "svc"), names(&["b0"]));
        store.ingest(&marked("svc", "b1", t)).unwrap();
        store.flush().unwrap();
        assert_eq!(markers(&store, "svc"), names(&["b0", "b1"]));
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b1"]));
}

/// Where each record of a log file starts, found by writing a log with
/// one record per flush and noting the length after each.
fn wal_with_three_records(dir: &Path) -> (PathBuf, Vec<u64>) {
    let t = now_min();
    let store = EmbeddedStore::open(dir, opts()).unwrap();
    let mut ends = Vec::new();
    let mut segment = PathBuf::new();
    for name in ["b0", "b1", "b2"] {
        store.ingest(&marked("svc", name, t)).unwrap();
        let seg = files_in(&dir.join("wal"))
            .into_iter()
            .filter(|n| n.ends_with(".wal"))
            .map(|n| dir.join("wal").join(n))
            .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .unwrap();
        ends.push(std::fs::metadata(&seg).unwrap().len());
        segment = seg;
    }
    (segment, ends)
}

#[test]
fn damage_in_the_middle_of_the_wal_keeps_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, ends) = wal_with_three_records(dir.path());
    // Flip a byte inside the second record.
    let mut bytes = std::fs::read(&segment).unwrap();
    let mid = (ends[0] + (ends[1] - ends[0]) / 2) as usize;
    bytes[mid] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b2"]));
    // The damaged bytes are kept aside for inspection.
    assert!(
        !files_in(&dir.path().join("quarantine")).is_empty(),
        "nothing quarantined"
    );
    drop(store);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b2"]));
}

#[test]
fn a_torn_record_followed_by_whole_ones_in_the_wal_keeps_them() {
    // The file an append after a torn write left (the bug this guards
    // against): half of the second record, then the third whole.
    let dir = tempfile::tempdir().unwrap();
    let (segment, ends) = wal_with_three_records(dir.path());
    let bytes = std::fs::read(&segment).unwrap();
    let (a, b) = (ends[0] as usize, ends[1] as usize);
    let mut torn = bytes[..a + (b - a) / 2].to_vec();
    torn.extend_from_slice(&bytes[b..]);
    std::fs::write(&segment, &torn).unwrap();
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b2"]));
}

#[test]
fn damage_in_symbols_log_keeps_what_follows_and_never_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_min();
    let log = dir.path().join("symbols.log");
    let mut ends = Vec::new();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        for name in ["b0", "b1", "b2"] {
            store.ingest(&marked("svc", name, t)).unwrap();
            store.flush().unwrap();
            ends.push(std::fs::metadata(&log).unwrap().len() as usize);
        }
    }
    let good = std::fs::read(&log).unwrap();
    // Garbage at the very start, then in the middle: each time what
    // follows is kept and every block still resolves.
    for at in [0, ends[0]] {
        let mut bad = good[..at].to_vec();
        bad.extend_from_slice(b"\x07garbage\x00\xff");
        bad.extend_from_slice(&good[at..]);
        std::fs::write(&log, &bad).unwrap();
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        assert_eq!(
            markers(&store, "svc"),
            names(&["b0", "b1", "b2"]),
            "garbage at {at}"
        );
        drop(store);
        assert!(std::fs::metadata(&log).unwrap().len() >= good.len() as u64);
    }
}

#[test]
fn a_torn_symbols_record_followed_by_a_whole_one_keeps_it() {
    // What a failed append followed by a successful one left before: a
    // torn first record, then the whole of it again with more.
    let dir = tempfile::tempdir().unwrap();
    let t = now_min();
    let log = dir.path().join("symbols.log");
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b0", t)).unwrap();
        store.flush().unwrap();
    }
    let good = std::fs::read(&log).unwrap();
    let mut bad = good[..good.len() / 2].to_vec();
    bad.extend_from_slice(&good);
    std::fs::write(&log, &bad).unwrap();
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0"]));
}

#[test]
fn series_past_the_retention_leave_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("old", "x", now - 40 * DAY)).unwrap();
        store.ingest(&marked("new", "y", now)).unwrap();
        store.flush().unwrap();
        assert_eq!(store.stats().series, 2);
        store.compact(now).unwrap();
        assert_eq!(store.stats().series, 1, "the expired series is pruned");
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(store.stats().series, 1, "and stays pruned after a reopen");
    // The same label set coming back is a new series, without the old
    // data.
    store.ingest(&marked("old", "z", now)).unwrap();
    assert_eq!(markers(&store, "old"), names(&["z"]));
    assert_eq!(store.stats().series, 2);
    store.flush().unwrap();
    store.compact(now).unwrap();
    drop(store);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "old"), names(&["z"]));
    assert_eq!(markers(&store, "new"), names(&["y"]));
}

#[test]
fn the_series_cap_refuses_new_series_whole_and_names_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_min();
    let store = EmbeddedStore::open(
        dir.path(),
        Options {
            max_series: 2,
            ..opts()
        },
    )
    .unwrap();
    store.ingest(&marked("a", "a1", now - 40 * DAY)).unwrap();
    store.ingest(&marked("b", "b1", now)).unwrap();
    store.ingest(&marked("b", "b2", now)).unwrap();
    let err = store.ingest(&marked("c", "c1", now)).unwrap_err();
    match &err {
        StoreError::TooManySeries { limit, stored, new } => {
            assert_eq!((*limit, *stored, *new), (2, 2, 1))
        }
        other => panic!("expected TooManySeries, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("limit of 2") && text.contains("--max-series"),
        "{text}"
    );
    // A batch adding a series to known ones is refused whole.
    let mut two = marked("b", "b3", now);
    two.profiles.extend(marked("d", "d1", now).profiles);
    assert!(matches!(
        store.ingest(&two),
        Err(StoreError::TooManySeries { .. })
    ));
    assert_eq!(markers(&store, "b"), names(&["b1", "b2"]));
    // A retried batch is still recognised.
    let mut retried = marked("b", "b4", now);
    retried.id = Some("r1".into());
    assert_eq!(store.ingest(&retried).unwrap(), IngestOutcome::Applied);
    assert_eq!(store.ingest(&retried).unwrap(), IngestOutcome::Duplicate);
    // Pruning the expired series makes room.
    store.flush().unwrap();
    store.compact(now).unwrap();
    store.ingest(&marked("c", "c1", now)).unwrap();
    assert_eq!(markers(&store, "c"), names(&["c1"]));
}

#[test]
fn batches_after_a_restart_that_followed_a_flush_survive_a_crash() {
    // The flush leaves no WAL segment; the segments written after the
    // restart must still be numbered past those the block covers.
    let dir = tempfile::tempdir().unwrap();
    let t = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b0", t)).unwrap();
        store.flush().unwrap();
    }
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b1", t)).unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b1"]));
}

/// Rewrites a log file in the record format of earlier versions
/// (`len u32 | crc32 u32 | payload`), a torn copy of its first record's
/// start before it all when `torn`, as a failed append left it then.
fn to_legacy(path: &Path, torn: bool) {
    let bytes = std::fs::read(path).unwrap();
    let found = super::codec::scan(&bytes);
    let mut out = Vec::new();
    for (_, p) in &found.records {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
        out.extend_from_slice(p);
    }
    if torn && out.len() > 12 {
        let mut t = out[..12].to_vec();
        t.extend_from_slice(&out);
        out = t;
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_store_of_an_earlier_version_opens_with_a_tear_mended() {
    let dir = tempfile::tempdir().unwrap();
    let t = now_min();
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&marked("svc", "b0", t)).unwrap();
        store.flush().unwrap();
        store.ingest(&marked("svc", "b1", t)).unwrap();
        store.ingest(&marked("svc", "b2", t)).unwrap();
    }
    to_legacy(&dir.path().join("symbols.log"), true);
    for seg in files_in(&dir.path().join("wal")) {
        to_legacy(&dir.path().join("wal").join(seg), true);
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b1", "b2"]));
    store.ingest(&marked("svc", "b3", t)).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(markers(&store, "svc"), names(&["b0", "b1", "b2", "b3"]));
}
