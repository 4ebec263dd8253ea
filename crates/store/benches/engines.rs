//! Why the embedded engine keeps its own columnar blocks: the same samples
//! stored in perfpilot's engine and, row by row, in redb (a well-regarded
//! embedded B-tree store), compared on bytes on disk, ingest time and the
//! time to merge one service's stacks.
//!
//!     cargo bench -p perfpilot-store --bench engines [-- --rows 2000000]

use std::collections::HashMap;
use std::time::Instant;

use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::{Batch, BatchProfile, Selector, Store, TimeRange};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const ROWS: TableDefinition<(u32, u32, i64), i64> = TableDefinition::new("rows");

/// A deterministic xorshift generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A batch carrying only the names and stacks its samples use, as a real
/// sender's does.
fn batch_of(chunk: &[BatchProfile], strings: &[String], stacks: &[Vec<u32>]) -> Batch {
    let mut stack_ids: HashMap<u32, u32> = HashMap::new();
    let mut string_ids: HashMap<u32, u32> = HashMap::new();
    let mut b = Batch::default();
    for p in chunk {
        let mut q = p.clone();
        for s in &mut q.samples {
            let next = stack_ids.len() as u32;
            let id = *stack_ids.entry(s.0).or_insert_with(|| {
                let frames = stacks[s.0 as usize]
                    .iter()
                    .map(|&f| {
                        let n = string_ids.len() as u32;
                        *string_ids.entry(f).or_insert_with(|| {
                            b.strings.push(strings[f as usize].clone());
                            n
                        })
                    })
                    .collect();
                b.stacks.push(frames);
                next
            });
            s.0 = id;
        }
        b.profiles.push(q);
    }
    b
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target_rows: usize = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(2_000_000);
    // 50 services x 4 pods; each service has 2,000 stacks of depth 20-40
    // sharing prefixes; every 10 s each pod reports ~150 stacks, Zipf-ish.
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let services = 50u32;
    let pods = 4u32;
    let stacks_per_service = 2000u32;
    let mut strings: Vec<String> = Vec::new();
    let mut stacks: Vec<Vec<u32>> = Vec::new();
    for s in 0..services {
        let base = strings.len() as u32;
        for f in 0..400 {
            strings.push(format!("svc{s}::module{}::function_{f}", f % 17));
        }
        for k in 0..stacks_per_service {
            let depth = 20 + (k % 21);
            let mut st: Vec<u32> = (0..depth)
                .map(|d| base + ((d * 7 + (k >> (d % 5))) % 400))
                .collect();
            st[0] = base;
            stacks.push(st);
        }
    }
    let now = 1_800_000_000_000i64 / 10_000 * 10_000;
    let mut batches = Vec::new();
    let mut rows_made = 0usize;
    let mut t = now - 24 * 3_600_000;
    'outer: loop {
        for s in 0..services {
            for p in 0..pods {
                let mut samples = Vec::new();
                for _ in 0..150 {
                    let r = rng.next();
                    let k = ((r % 1000) * (r % 1000) / 1000) as u32 % stacks_per_service;
                    samples.push((s * stacks_per_service + k, 1 + (r >> 20) as i64 % 20));
                }
                rows_made += samples.len();
                batches.push(BatchProfile {
                    labels: vec![
                        (
                            "__profile_type__".into(),
                            "process_cpu:samples:count:cpu:nanoseconds".into(),
                        ),
                        ("pod".into(), format!("pod-{p}")),
                        ("service_name".into(), format!("svc{s}")),
                    ],
                    time_ms: t,
                    samples,
                });
                if rows_made >= target_rows {
                    break 'outer;
                }
            }
        }
        t += 10_000;
    }
    println!(
        "engines: {rows_made} samples, {} series, {} stacks, over {} minutes",
        services * pods,
        stacks.len(),
        (t - (now - 24 * 3_600_000)) / 60_000
    );

    // perfpilot's engine.
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let store = EmbeddedStore::open(
        dir.path(),
        Options {
            background: false,
            ..Options::default()
        },
    )
    .unwrap();
    for chunk in batches.chunks(200) {
        store.ingest(&batch_of(chunk, &strings, &stacks)).unwrap();
    }
    store.flush().unwrap();
    store.compact(now).unwrap();
    let ours_ingest = started.elapsed();
    let ours_bytes =
        dir_size(&dir.path().join("blocks")) + dir_size(&dir.path().join("symbols.log"));
    let sel = Selector::parse("{service_name=\"svc7\"}").unwrap();
    let range = TimeRange {
        start_ms: now - 25 * 3_600_000,
        end_ms: now + 1,
    };
    let started = Instant::now();
    let ours_total = store.merge(&sel, range).unwrap().total();
    let ours_query = started.elapsed();

    // redb: one row per sample, keyed (series, stack, time).
    let rdir = tempfile::tempdir().unwrap();
    let path = rdir.path().join("rows.redb");
    let started = Instant::now();
    let db = Database::create(&path).unwrap();
    let mut series_ids: HashMap<Vec<(String, String)>, u32> = HashMap::new();
    for chunk in batches.chunks(200) {
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(ROWS).unwrap();
            for p in chunk {
                let n = series_ids.len() as u32;
                let sid = *series_ids.entry(p.labels.clone()).or_insert(n);
                for &(stack, v) in &p.samples {
                    let key = (sid, stack, p.time_ms);
                    let old = table.get(key).unwrap().map(|g| g.value()).unwrap_or(0);
                    table.insert(key, old + v).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    let redb_ingest = started.elapsed();
    drop(db);
    let redb_bytes = std::fs::metadata(&path).unwrap().len();
    let db = Database::open(&path).unwrap();
    let started = Instant::now();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(ROWS).unwrap();
    let mut redb_total = 0i64;
    let mut per_stack: HashMap<u32, i64> = HashMap::new();
    for (labels, sid) in &series_ids {
        if labels
            .iter()
            .any(|(k, v)| k == "service_name" && v == "svc7")
        {
            for row in table
                .range((*sid, 0u32, i64::MIN)..=(*sid, u32::MAX, i64::MAX))
                .unwrap()
            {
                let (k, v) = row.unwrap();
                *per_stack.entry(k.value().1).or_default() += v.value();
                redb_total += v.value();
            }
        }
    }
    let redb_query = started.elapsed();
    assert_eq!(
        ours_total, redb_total,
        "both engines must hold the same data"
    );

    let per = |b: u64| b as f64 / rows_made as f64;
    println!(
        "{:<24} {:>14} {:>12} {:>14} {:>16}",
        "engine", "bytes on disk", "bytes/sample", "ingest", "merge 1 service"
    );
    println!(
        "{:<24} {:>14} {:>12.2} {:>12.2} s {:>13.1} ms",
        "perfpilot blocks",
        ours_bytes,
        per(ours_bytes),
        ours_ingest.as_secs_f64(),
        ours_query.as_secs_f64() * 1e3
    );
    println!(
        "{:<24} {:>14} {:>12.2} {:>12.2} s {:>13.1} ms",
        "redb, a row per sample",
        redb_bytes,
        per(redb_bytes),
        redb_ingest.as_secs_f64(),
        redb_query.as_secs_f64() * 1e3
    );
    println!(
        "perfpilot / redb: {:.3}x the bytes, {:.2}x the ingest time, {:.2}x the merge time",
        ours_bytes as f64 / redb_bytes as f64,
        ours_ingest.as_secs_f64() / redb_ingest.as_secs_f64(),
        ours_query.as_secs_f64() / redb_query.as_secs_f64()
    );
}
