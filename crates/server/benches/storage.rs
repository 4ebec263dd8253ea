//! On-disk bytes per sample after compaction, on a 24 h dataset of 50
//! services (see `common/dataset.rs`): generated, ingested with explicit
//! times (no background maintenance; flushed every 10 minutes of data),
//! compacted at the dataset's "now". Then a copy is compacted two days
//! later, when the whole day has aged into the 1-minute tier.
//!
//! The dataset is left in `target/perfpilot-bench/` for the query
//! benchmark.
//!
//!     cargo bench -p perfpilot-server --bench storage [-- --quick | --samples N] [--uniform-values]

mod common;

use std::path::Path;
use std::time::Instant;

use common::dataset::{self, Spec, HOUR_MS};
use common::{mib, si, verdict};
use perfpilot_store::embedded::block::Block;
use perfpilot_store::embedded::{EmbeddedStore, Options, StoreStats};

const GOAL_BYTES_PER_SAMPLE: f64 = 30.0;

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(
        dir,
        Options {
            background: false,
            ..Default::default()
        },
    )
    .expect("opening the store")
}

/// (chunks, header + directory bytes) of the blocks in `dir`.
fn block_overhead(dir: &Path) -> (u64, u64) {
    let mut chunks = 0u64;
    let mut overhead = 0u64;
    for e in std::fs::read_dir(dir.join("blocks")).expect("listing blocks") {
        let path = e.expect("listing blocks").path();
        if path.extension().is_some_and(|x| x == "blk") {
            let b = Block::open(&path).expect("opening a block");
            chunks += b.dir.len() as u64;
            // Header, one directory entry per chunk, job record and CRC.
            overhead += 68
                + 44 * b.dir.len() as u64
                + 12
                + 8 * (b.siblings.len() + b.replaces.len()) as u64;
        }
    }
    (chunks, overhead)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a directory");
    for e in std::fs::read_dir(from).expect("listing a directory") {
        let e = e.expect("listing a directory");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copying a file");
        }
    }
}

fn row(name: &str, value: String, goal: &str) {
    println!("  {name:<44} {value:>16}   {goal}");
}

fn report(title: &str, dir: &Path, stats: &StoreStats, ingested: u64) {
    let (chunks, overhead) = block_overhead(dir);
    let per = |b: u64| b as f64 / ingested as f64;
    let total = stats.block_bytes + stats.symbol_bytes;
    println!("{title}");
    row("samples ingested", si(ingested as f64), "");
    row(
        "rows after merging/downsampling",
        format!(
            "{} ({:.1}%)",
            si(stats.block_rows as f64),
            100.0 * stats.block_rows as f64 / ingested as f64
        ),
        "",
    );
    row(
        "blocks / series chunks",
        format!("{} / {}", stats.blocks, chunks),
        "",
    );
    row(
        "rows per chunk (mean)",
        format!("{:.0}", stats.block_rows as f64 / chunks.max(1) as f64),
        "",
    );
    row("bytes of blocks", mib(stats.block_bytes), "");
    row("  of which headers + chunk directories", mib(overhead), "");
    row("bytes of symbols.log", mib(stats.symbol_bytes), "");
    row(
        "series / stacks / function names",
        format!("{} / {} / {}", stats.series, stats.stacks, stats.functions),
        "",
    );
    row(
        "bytes/sample, blocks only",
        format!("{:.2}", per(stats.block_bytes)),
        "",
    );
    row(
        "bytes/stored row, blocks only",
        format!(
            "{:.2}",
            stats.block_bytes as f64 / stats.block_rows.max(1) as f64
        ),
        "",
    );
    let bps = per(total);
    row(
        "bytes/sample, blocks + symbols.log",
        format!("{bps:.2}"),
        &format!(
            "goal <= {GOAL_BYTES_PER_SAMPLE} (Parca: 60)  {}",
            verdict(bps <= GOAL_BYTES_PER_SAMPLE)
        ),
    );
    println!();
}

fn main() {
    let quick = common::quick();
    let spec = Spec::new(quick);
    println!(
        "storage: on-disk bytes per sample, {} h of {} services, a profile per thread every 10 s{}",
        spec.hours,
        spec.services,
        if quick { " (--quick)" } else { "" }
    );
    println!(
        "  a sample = one (series, stack, time) row handed to Store::ingest, i.e. one pprof sample of one sample type"
    );
    let (dir, meta, built) = dataset::cached(&spec, true);
    let built = built.expect("the storage benchmark always generates");
    let secs = |d: std::time::Duration| d.as_secs_f64();
    println!(
        "  dataset: {} samples in {} series ({} profiles, {:.1} samples/profile), {} distinct stacks, {} function names",
        si(meta.samples as f64),
        meta.series,
        si(meta.profiles as f64),
        meta.samples as f64 / meta.profiles.max(1) as f64,
        built.stacks,
        built.functions
    );
    println!(
        "  built in {:.1} s: catalog {:.1} s, generation {:.1} s, store.ingest {:.1} s ({} batches of <= {} samples, {}/s), flush {:.1} s, compact {:.1} s",
        secs(built.catalog + built.generate + built.ingest + built.flush + built.compact),
        secs(built.catalog),
        secs(built.generate),
        secs(built.ingest),
        built.batches,
        built.max_batch_samples,
        si(meta.samples as f64 / secs(built.ingest)),
        secs(built.flush),
        secs(built.compact)
    );
    println!("  stacks: {}", built.catalog_summary);
    let v = built.values;
    let pct = |n: u64| 100.0 * n as f64 / meta.samples.max(1) as f64;
    println!(
        "  sample values ({}):",
        if spec.uniform_values {
            "uniform in 1-50, --uniform-values"
        } else {
            "99 Hz ticks in 10 s"
        }
    );
    println!(
        "    1: {:.0}%, 2-5: {:.0}%, 6-20: {:.0}%, 21-50: {:.0}%, >50: {:.1}%",
        pct(v[0]),
        pct(v[1]),
        pct(v[2]),
        pct(v[3]),
        pct(v[4])
    );
    println!("  kept in {} for the query benchmark", dir.display());
    println!();

    let stats = open(&dir).stats();
    if (stats.block_rows, stats.block_bytes) != (built.stats.block_rows, built.stats.block_bytes) {
        println!(
            "  WARNING: reopening the store changed it: {} rows in {} blocks before closing, {} rows in {} blocks after reopening",
            built.stats.block_rows, built.stats.blocks, stats.block_rows, stats.blocks
        );
    } else {
        println!(
            "  reopened intact: {} rows in {} blocks",
            stats.block_rows, stats.blocks
        );
    }
    println!();
    report(
        "after compaction at the end of the day (10 s resolution, 1 h blocks):",
        &dir,
        &stats,
        meta.samples,
    );

    // Two days on, the whole day is in the 1-minute tier (1-day blocks).
    let aged = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&dir, aged.path());
    let store = open(aged.path());
    let c0 = Instant::now();
    store
        .compact(meta.end_ms + 48 * HOUR_MS)
        .expect("compacting the aged copy");
    let took = c0.elapsed();
    let aged_stats = store.stats();
    drop(store);
    let reopened = open(aged.path()).stats();
    if reopened.block_rows != aged_stats.block_rows {
        println!(
            "  WARNING: reopening the aged copy changed it: {} rows before closing, {} after",
            aged_stats.block_rows, reopened.block_rows
        );
    }
    report(
        &format!(
            "two days later (1-minute resolution, 1-day blocks; compaction took {:.1} s):",
            took.as_secs_f64()
        ),
        aged.path(),
        &aged_stats,
        meta.samples,
    );
}
