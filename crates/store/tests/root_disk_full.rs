//! The embedded store on a real file system that fills up: a small tmpfs
//! mounted for the test (root). Every acknowledged batch survives; queries
//! answer while the disk is full; the store opens on a full disk; ingest
//! resumes by itself once space is freed.

use std::path::{Path, PathBuf};
use std::process::Command;

use perfpilot_store::conformance::{batch, CPU};
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::{Selector, Store, StoreError, TimeRange};

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            ok.success(),
            "mounting a tmpfs on {} (the test needs root)",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn opts() -> Options {
    Options {
        background: false,
        ..Options::default()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A batch whose stacks all name batch `i` (and take room: 64 stacks
/// with long names).
fn numbered(i: usize, t: i64) -> perfpilot_store::Batch {
    let stacks: Vec<(String, i64)> = (0..64)
        .map(|k| (format!("main;batch_{i};{k}_{}", "f".repeat(120)), 1))
        .collect();
    let refs: Vec<(&str, i64)> = stacks.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    batch("disk", &[], CPU, t, &refs)
}

/// The batch numbers stored, each checked whole (all 64 stacks).
fn stored(store: &EmbeddedStore) -> Vec<usize> {
    let now = now_ms();
    let table = store
        .merge(
            &Selector::parse("{service_name=\"disk\"}").expect("a selector"),
            TimeRange {
                start_ms: now - 3_600_000,
                end_ms: now + 3_600_000,
            },
        )
        .expect("the store answers");
    let mut counts = std::collections::BTreeMap::<usize, i64>::new();
    for (frames, v) in &table.stacks {
        let name = &table.functions[frames[1] as usize];
        let n: usize = name
            .strip_prefix("batch_")
            .and_then(|n| n.parse().ok())
            .expect("a batch marker");
        *counts.entry(n).or_default() += v;
    }
    for (n, c) in &counts {
        assert_eq!(*c, 64, "batch {n} is not whole");
    }
    counts.into_keys().collect()
}

fn fill(path: &Path, bytes: usize) -> PathBuf {
    std::fs::write(path, vec![0x5au8; bytes]).expect("the filler");
    path.to_path_buf()
}

#[test]
fn root_a_full_disk_loses_nothing_acknowledged_and_ingest_resumes_by_itself() {
    let fs = Tmpfs::mount("2m");
    let data = fs.path().join("data");
    let filler = fill(&fs.path().join("filler"), 512 << 10);
    let t = now_ms();
    let mut acked = Vec::new();
    let mut full = 0;
    {
        let store = EmbeddedStore::open(&data, opts()).expect("opened");
        let mut i = 0;
        // Until the disk has been full for a while: flushes and ingests
        // fail there, at whatever write the disk ran out.
        while full < 20 {
            match store.ingest(&numbered(i, t)) {
                Ok(_) => acked.push(i),
                Err(StoreError::DiskFull { .. }) => full += 1,
                Err(e) => panic!("batch {i}: {e}"),
            }
            if i % 100 == 99 {
                match store.flush() {
                    Ok(()) | Err(StoreError::DiskFull { .. }) => {}
                    Err(e) => panic!("flush after batch {i}: {e}"),
                }
            }
            i += 1;
        }
        assert!(acked.len() > 20, "only {} batches fitted", acked.len());
        assert_eq!(stored(&store), acked, "queries answer on a full disk");
        // Dropped without a flush, as a crash leaves it.
    }
    let store = EmbeddedStore::open(&data, opts()).expect("opens on a full disk");
    assert_eq!(stored(&store), acked, "everything acknowledged is there");
    std::fs::remove_file(&filler).expect("space freed");
    // The same store takes writes again, with no restart.
    for i in 10_000..10_005 {
        store.ingest(&numbered(i, t)).expect("ingest resumes");
        acked.push(i);
    }
    store.flush().expect("flushes resume");
    drop(store);
    let store = EmbeddedStore::open(&data, opts()).expect("reopened");
    assert_eq!(stored(&store), acked);
    eprintln!(
        "acknowledged {}, refused for a full disk {full}, lost 0",
        acked.len()
    );
}
