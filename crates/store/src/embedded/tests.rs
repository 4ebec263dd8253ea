use super::*;
use crate::conformance::{self, batch, folded, CPU};

fn opts() -> Options {
    Options {
        background: false,
        retention_ms: 30 * DAY,
        ..Options::default()
    }
}

fn all_time(now: i64) -> TimeRange {
    TimeRange {
        start_ms: now - 40 * DAY,
        end_ms: now + 1,
    }
}

fn total(store: &EmbeddedStore, svc: &str, now: i64) -> Vec<(String, i64)> {
    let s = Selector::parse(&format!("{{service_name=\"{svc}\"}}")).unwrap();
    folded(&store.merge(&s, all_time(now)).unwrap())
}

#[test]
fn conformance_in_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    conformance::run_all(&store, now_ms());
}

/// Flushes after every ingest and compacts before every query, so the
/// suite runs against blocks and compaction output instead of the head.
struct Flushing(EmbeddedStore);

impl Store for Flushing {
    fn ingest(&self, b: &Batch) -> Result<IngestOutcome, StoreError> {
        let r = self.0.ingest(b);
        self.0.flush()?;
        r
    }
    fn profile_types(&self, r: TimeRange) -> Result<Vec<String>, StoreError> {
        self.0.compact(now_ms())?;
        self.0.profile_types(r)
    }
    fn label_names(&self, s: &Selector, r: TimeRange) -> Result<Vec<String>, StoreError> {
        self.0.compact(now_ms())?;
        self.0.label_names(s, r)
    }
    fn label_values(&self, n: &str, s: &Selector, r: TimeRange) -> Result<Vec<String>, StoreError> {
        self.0.compact(now_ms())?;
        self.0.label_values(n, s, r)
    }
    fn series(&self, s: &Selector, r: TimeRange) -> Result<Vec<Labels>, StoreError> {
        self.0.compact(now_ms())?;
        self.0.series(s, r)
    }
    fn merge(&self, s: &Selector, r: TimeRange) -> Result<StackTable, StoreError> {
        self.0.compact(now_ms())?;
        self.0.merge(s, r)
    }
    fn time_series(
        &self,
        s: &Selector,
        r: TimeRange,
        step: i64,
        g: &[String],
        f: Option<&str>,
        l: &SeriesLimits,
    ) -> Result<Vec<Points>, StoreError> {
        self.0.compact(now_ms())?;
        self.0.time_series(s, r, step, g, f, l)
    }
}

#[test]
fn conformance_in_blocks_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Flushing(EmbeddedStore::open(dir.path(), opts()).unwrap());
    conformance::run_all(&store, now_ms());
    assert!(store.0.stats().blocks >= 1);
    assert_eq!(store.0.stats().head_rows, 0);
}

#[test]
fn a_crash_before_flush_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / 60_000 * 60_000;
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store
            .ingest(&batch("svc", &[], CPU, now - 60_000, &[("a;b", 5)]))
            .unwrap();
        store.flush().unwrap();
        store
            .ingest(&batch(
                "svc",
                &[],
                CPU,
                now - 30_000,
                &[("a;b", 2), ("a;c", 1)],
            ))
            .unwrap();
        // Dropped without a flush: the second batch is only in the WAL.
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    // Flushed data is not replayed twice; WAL data is replayed once.
    assert_eq!(
        total(&store, "svc", now),
        vec![("a;b".into(), 7), ("a;c".into(), 1)]
    );
    store.flush().unwrap();
    drop(store);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(
        total(&store, "svc", now),
        vec![("a;b".into(), 7), ("a;c".into(), 1)]
    );
    assert_eq!(store.stats().head_rows, 0, "nothing left to replay");
}

#[test]
fn duplicate_ids_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / 60_000 * 60_000;
    let mut b = batch("svc", &[], CPU, now - 60_000, &[("x", 1)]);
    b.id = Some("agent-42".into());
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store.ingest(&b).unwrap();
        store.flush().unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(store.ingest(&b).unwrap(), IngestOutcome::Duplicate);
    assert_eq!(total(&store, "svc", now), vec![("x".into(), 1)]);
}

#[test]
fn interrupted_jobs_roll_back_and_finished_ones_complete() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / 60_000 * 60_000;
    let (first, second);
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store
            .ingest(&batch("svc", &[], CPU, now - 120_000, &[("x", 1)]))
            .unwrap();
        store.flush().unwrap();
        store
            .ingest(&batch("svc", &[], CPU, now - 60_000, &[("x", 2)]))
            .unwrap();
        store.flush().unwrap();
        let st = store.inner.state.read().unwrap();
        first = st.blocks[0].id;
        second = st.blocks[1].id;
    }
    let blocks = dir.path().join("blocks");
    let write = |id: u64, siblings: Vec<u64>, value: i64| {
        let tmp = blocks.join("x.tmp");
        let mut w = BlockWriter::create(&tmp, 1, 10_000, now - 120_000).unwrap();
        w.add_series(
            0,
            &mut [Row {
                stack: 0,
                t: now - 120_000,
                value,
            }],
        )
        .unwrap();
        w.finish(
            &blocks.join(format!("{id:016}.blk")),
            &Job {
                id,
                covers_wal_before: 0,
                siblings,
                replaces: vec![first, second],
            },
        )
        .unwrap();
    };
    // An output whose sibling never got written: the job did not finish.
    write(100, vec![100, 101], 1000);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(
        total(&store, "svc", now),
        vec![("x".into(), 3)],
        "rolled back"
    );
    assert!(!blocks.join(format!("{:016}.blk", 100)).exists());
    drop(store);
    // A finished job (all siblings present): its inputs go.
    write(200, vec![200], 3);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(
        total(&store, "svc", now),
        vec![("x".into(), 3)],
        "completed"
    );
    assert_eq!(store.stats().blocks, 1);
}

#[test]
fn old_data_is_downsampled_and_expired() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / HOUR * HOUR;
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    // Two days old, every 10 s for ten minutes; sixteen days old (its whole
    // week partition is past seven days), likewise; forty days old: past
    // the 30-day retention.
    for (age, svc) in [
        (2 * DAY, "two-days"),
        (16 * DAY, "ten-days"),
        (40 * DAY, "forty-days"),
    ] {
        for k in 0..60 {
            let t = now - age + k * 10_000;
            store
                .ingest(&batch(svc, &[], CPU, t, &[("main;work", 1 + k % 3)]))
                .unwrap();
        }
        store.flush().unwrap();
    }
    let expect = (0..60).map(|k| 1 + k % 3).sum::<i64>();
    assert_eq!(
        total(&store, "two-days", now),
        vec![("main;work".into(), expect)]
    );
    let jobs = store.compact(now).unwrap();
    assert!(jobs >= 2, "{jobs} compaction jobs");
    // Totals are kept exactly; resolution is coarser.
    assert_eq!(
        total(&store, "two-days", now),
        vec![("main;work".into(), expect)]
    );
    assert_eq!(
        total(&store, "ten-days", now),
        vec![("main;work".into(), expect)]
    );
    assert!(
        total(&store, "forty-days", now).is_empty(),
        "past retention"
    );
    let res: Vec<i64> = {
        let st = store.inner.state.read().unwrap();
        let mut r: Vec<i64> = st.blocks.iter().map(|b| b.resolution_ms).collect();
        r.sort();
        r
    };
    assert_eq!(res, vec![MINUTE, HOUR]);
    // Per-minute points of the two-day-old data: 6 samples a minute.
    let s = Selector::parse("{service_name=\"two-days\"}").unwrap();
    let r = TimeRange {
        start_ms: now - 2 * DAY,
        end_ms: now - 2 * DAY + 10 * MINUTE,
    };
    let pts = store
        .time_series(&s, r, MINUTE, &[], None, &Default::default())
        .unwrap();
    assert_eq!(pts[0].points.len(), 10);
    assert_eq!(pts[0].points.iter().map(|p| p.1).sum::<i64>(), expect);
    // And all of it survives a restart.
    drop(store);
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(
        total(&store, "ten-days", now),
        vec![("main;work".into(), expect)]
    );
}

#[test]
fn many_small_flushes_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / HOUR * HOUR - 2 * HOUR;
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    for k in 0..12 {
        store
            .ingest(&batch("svc", &[], CPU, now + k * 60_000, &[("a", 1)]))
            .unwrap();
        store.flush().unwrap();
    }
    assert_eq!(store.stats().blocks, 12);
    store.compact(now_ms()).unwrap();
    assert_eq!(store.stats().blocks, 1);
    assert_eq!(total(&store, "svc", now + HOUR), vec![("a".into(), 12)]);
}

#[test]
fn a_sibling_compacted_away_later_does_not_undo_its_job() {
    // A flush that straddles two partitions is split by compaction into
    // two siblings; a later compaction of one partition replaces one of
    // them. Reopening must keep all the data.
    let dir = tempfile::tempdir().unwrap();
    let hour = now_ms() / HOUR * HOUR - 5 * HOUR;
    let expect = vec![("a".to_string(), 3)];
    {
        let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
        store
            .ingest(&batch("svc", &[], CPU, hour - 60_000, &[("a", 1)]))
            .unwrap();
        store
            .ingest(&batch("svc", &[], CPU, hour + 60_000, &[("a", 1)]))
            .unwrap();
        store.flush().unwrap();
        store.compact(now_ms()).unwrap();
        // More data in the second hour, then compact that hour again.
        store
            .ingest(&batch("svc", &[], CPU, hour + 120_000, &[("a", 1)]))
            .unwrap();
        store.flush().unwrap();
        store.compact(now_ms()).unwrap();
        assert_eq!(total(&store, "svc", now_ms()), expect);
    }
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(
        total(&store, "svc", now_ms()),
        expect,
        "data lost on reopen"
    );
}

/// Found by the `store_recovery` fuzz target: a WAL record with an intact
/// checksum whose batch names a function the batch does not have made
/// recovery index out of bounds. Such a record is skipped (and reported),
/// and the records around it are still replayed.
#[test]
fn a_wal_record_with_an_invalid_batch_is_skipped_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / 60_000 * 60_000;
    let good = batch("svc", &[], CPU, now - 60_000, &[("a;b", 5)]);
    let mut bad = batch("svc", &[], CPU, now - 60_000, &[("c;d", 7)]);
    let missing = bad.strings.len() as u32;
    bad.stacks[0].push(missing);
    let mut log = Vec::new();
    codec::frame(&mut log, &codec::encode_batch(&bad));
    codec::frame(&mut log, &codec::encode_batch(&good));
    std::fs::create_dir_all(dir.path().join("wal")).unwrap();
    std::fs::write(dir.path().join("wal").join("000000000001.wal"), &log).unwrap();
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store, "svc", now), vec![("a;b".to_string(), 5)]);
}

/// Found by the `store_recovery` fuzz target: one damaged byte in a
/// block's chunk (the block opens: only its directory is checked there)
/// made every merge over it fail with "chunk checksum mismatch", for as
/// long as the block lived. The damaged chunk's rows are lost; the other
/// series of the block, and the queries, are not.
#[test]
fn a_damaged_chunk_loses_its_rows_not_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / 60_000 * 60_000;
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    store
        .ingest(&batch("first", &[], CPU, now - 60_000, &[("a;b", 5)]))
        .unwrap();
    store
        .ingest(&batch("second", &[], CPU, now - 60_000, &[("c;d", 7)]))
        .unwrap();
    store.flush().unwrap();
    drop(store);
    let blocks: Vec<_> = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "blk"))
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    // The chunks start right after the 68-byte header, the first
    // series' first.
    let mut bytes = std::fs::read(&blocks[0]).unwrap();
    bytes[68 + 2] ^= 0x40;
    std::fs::write(&blocks[0], &bytes).unwrap();

    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    let all = Selector::all();
    let merged = store.merge(&all, all_time(now)).unwrap();
    assert_eq!(folded(&merged), vec![("c;d".to_string(), 7)]);
    assert_eq!(total(&store, "second", now), vec![("c;d".to_string(), 7)]);
    assert_eq!(total(&store, "first", now), vec![]);
}

/// Found by the `store_recovery` fuzz target: with the end of
/// `symbols.log` lost (a damaged last record reads as a torn write), the
/// series a block holds rows of were forgotten and their ids given again
/// to new series, which then read the block's rows as theirs: every merge
/// failed with "a block refers to an unknown stack" (or counted another
/// series' samples). Ids the blocks use are never given again.
#[test]
fn series_ids_in_blocks_are_not_reused_after_symbols_are_lost() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / 60_000 * 60_000;
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    store
        .ingest(&batch(
            "old",
            &[],
            CPU,
            now - 60_000,
            &[("a;b;c", 5), ("a;x", 2)],
        ))
        .unwrap();
    store.flush().unwrap();
    drop(store);
    std::fs::write(dir.path().join("symbols.log"), b"").unwrap();

    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    store
        .ingest(&batch("new", &[], CPU, now - 60_000, &[("d", 7)]))
        .unwrap();
    store.flush().unwrap();
    let merged = store.merge(&Selector::all(), all_time(now)).unwrap();
    assert_eq!(folded(&merged), vec![("d".to_string(), 7)]);
    assert_eq!(total(&store, "new", now), vec![("d".to_string(), 7)]);
}

/// Found by the `store_recovery` fuzz target: with the last record of
/// `symbols.log` lost, a block's rows can name stacks the log no longer
/// holds, under a series it still does; every merge over them failed
/// with "a block refers to an unknown stack". Those rows are lost (and
/// said so); the rest of the answer is not.
#[test]
fn rows_of_lost_stacks_are_left_out_not_every_merge() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / 60_000 * 60_000;
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    store
        .ingest(&batch("svc", &[], CPU, now - 120_000, &[("a;b", 5)]))
        .unwrap();
    store.flush().unwrap();
    let first_record = std::fs::metadata(dir.path().join("symbols.log"))
        .unwrap()
        .len();
    store
        .ingest(&batch("svc", &[], CPU, now - 60_000, &[("c;d", 7)]))
        .unwrap();
    store.flush().unwrap();
    drop(store);
    let log = std::fs::read(dir.path().join("symbols.log")).unwrap();
    assert!(log.len() as u64 > first_record);
    std::fs::write(
        dir.path().join("symbols.log"),
        &log[..first_record as usize],
    )
    .unwrap();

    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store, "svc", now), vec![("a;b".to_string(), 5)]);
}

/// In-use memory is a snapshot per profile: over a range a series is
/// averaged per snapshot (a stack absent from one counts 0 there), while
/// allocations add up; in blocks as in the head, and per step of a time
/// series.
#[test]
fn inuse_types_average_per_snapshot_and_the_others_sum() {
    const INUSE: &str = "memory:inuse_space:bytes:space:bytes";
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms() / 60_000 * 60_000;
    let store = EmbeddedStore::open(dir.path(), opts()).unwrap();
    let (t1, t2) = (now - 120_000, now - 60_000);
    for (t, held, other) in [(t1, 100, 40), (t2, 300, 0)] {
        let mut rows = vec![("main;grow", held)];
        if other > 0 {
            rows.push(("main;gone", other));
        }
        store.ingest(&batch("svc", &[], INUSE, t, &rows)).unwrap();
        store
            .ingest(&batch(
                "svc",
                &[],
                conformance::ALLOC,
                t,
                &[("main;grow", held)],
            ))
            .unwrap();
    }
    let of = |ty: &str| Selector::parse(&format!("{{__profile_type__=\"{ty}\"}}")).unwrap();
    let check = |store: &EmbeddedStore| {
        let inuse = folded(&store.merge(&of(INUSE), all_time(now)).unwrap());
        assert_eq!(
            inuse,
            vec![
                ("main;gone".to_string(), 20),
                ("main;grow".to_string(), 200)
            ]
        );
        let alloc = folded(&store.merge(&of(conformance::ALLOC), all_time(now)).unwrap());
        assert_eq!(alloc, vec![("main;grow".to_string(), 400)]);
        // One step over both snapshots: their mean; one step each: each.
        let range = TimeRange {
            start_ms: t1,
            end_ms: t2 + 1,
        };
        let limits = SeriesLimits::default();
        let one = store
            .time_series(&of(INUSE), range, 120_001, &[], None, &limits)
            .unwrap();
        assert_eq!(one[0].points, vec![(t1, 220)]);
        let each = store
            .time_series(&of(INUSE), range, 60_000, &[], None, &limits)
            .unwrap();
        assert_eq!(each[0].points, vec![(t1, 140), (t2, 300)]);
    };
    check(&store);
    store.flush().unwrap();
    check(&store);
}
