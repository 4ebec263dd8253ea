//! Writes seeds for the `store_recovery` target: a real data directory
//! (batches flushed into a block, more in the WAL) packed as the target
//! reads it: as the files are, with the logs split into records and
//! checksums to be made right, the WAL alone, and the logs in the earlier
//! record framing.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example store_seeds -- fuzz/seeds/store_recovery`

use std::path::Path;

use perfpilot_fuzz::store_files::{pack, payloads, records_of, Framing, StoreFile};
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::{Batch, BatchProfile, Store};

fn batch(i: i64, now: i64) -> Batch {
    let service = if i % 2 == 0 { "checkout" } else { "search" };
    Batch {
        id: Some(format!("seed-{i}")),
        strings: vec!["main".into(), "handle".into(), format!("work_{i}")],
        stacks: vec![vec![0, 1, 2], vec![0, 1], vec![0]],
        profiles: vec![BatchProfile {
            labels: vec![
                (
                    "__profile_type__".into(),
                    "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
                ),
                ("pod".into(), format!("pod-{i}")),
                ("service_name".into(), service.into()),
            ],
            time_ms: now - 60_000 * (5 - i),
            samples: vec![(0, 10 + i), (1, 3), (2, 1)],
        }],
    }
}

/// The payloads of a log the store wrote, as (u16 length, payload)
/// records for a framed entry.
fn records(log: &[u8]) -> Vec<u8> {
    records_of(&payloads(log).expect("the store frames records as store_files does"))
}

fn files_in(dir: &Path, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn main() {
    let out = std::env::args().nth(1).expect("usage: store_seeds OUT_DIR");
    std::fs::create_dir_all(&out).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        background: false,
        ..Options::default()
    };
    let store = EmbeddedStore::open(dir.path(), opts).unwrap();
    for i in 0..3 {
        store.ingest(&batch(i, now)).unwrap();
    }
    store.flush().unwrap();
    for i in 3..5 {
        store.ingest(&batch(i, now)).unwrap();
    }
    drop(store);

    let symbols = std::fs::read(dir.path().join("symbols.log")).unwrap();
    let wals = files_in(&dir.path().join("wal"), "wal");
    let blocks = files_in(&dir.path().join("blocks"), "blk");
    let mut raw = vec![(StoreFile::Symbols, Framing::Raw, symbols.clone())];
    let mut fixed = vec![(StoreFile::Symbols, Framing::Fixed, records(&symbols))];
    for w in &wals {
        raw.push((StoreFile::Wal, Framing::Raw, w.clone()));
        fixed.push((StoreFile::Wal, Framing::Fixed, records(w)));
    }
    for b in &blocks {
        raw.push((StoreFile::Block, Framing::Raw, b.clone()));
        fixed.push((StoreFile::Block, Framing::Fixed, b.clone()));
    }
    let wal_only: Vec<_> = fixed
        .iter()
        .filter(|f| f.0 != StoreFile::Block)
        .cloned()
        .collect();
    // The same logs in the earlier record framing, which the store still reads.
    let legacy: Vec<_> = fixed
        .iter()
        .map(|(kind, framing, bytes)| match kind {
            StoreFile::Block => (*kind, *framing, bytes.clone()),
            _ => (*kind, Framing::Legacy, bytes.clone()),
        })
        .collect();
    for (name, files) in [
        ("raw", &raw),
        ("fixed", &fixed),
        ("wal-only", &wal_only),
        ("legacy", &legacy),
    ] {
        std::fs::write(Path::new(&out).join(name), pack(files)).unwrap();
    }
    println!(
        "{} WAL segments, {} blocks, {} bytes of symbols",
        wals.len(),
        blocks.len(),
        symbols.len()
    );
}
