//! The embedded engine: a directory holding
//!
//! - `wal/`: every acknowledged batch, synced before the acknowledgement;
//! - `symbols.log`: function names, stacks and series, interned once;
//! - `blocks/`: immutable compressed columnar blocks (see [`block`]);
//! - `quarantine/`: damaged bytes recovery found, kept for inspection.
//!
//! What is promised, and how each fault is met, is in `docs/DURABILITY.md`.
//!
//! Ingest appends to the WAL and to an in-memory head. A background thread
//! flushes the head into blocks, compacts blocks per time partition,
//! lowers the resolution of old data (tiers) and drops data past the
//! retention. Compaction builds new blocks beside the old ones and swaps
//! them in under a short lock, so neither ingest nor queries wait for it.

pub mod block;
mod codec;
mod query;
pub mod symbols;
mod wal;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use block::{Block, BlockWriter, Job, Row};
use symbols::{Symbols, SymbolsLog};
use wal::Wal;

use crate::types::{
    Batch, Labels, Points, SeriesLimits, StackTable, TimeRange, PROFILE_TYPE_LABEL,
    SERVICE_NAME_LABEL,
};
use crate::{IngestOutcome, Selector, Store, StoreError};

/// How finely data is kept once it is at least `after_ms` old, and how
/// much time one block covers at that age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub after_ms: i64,
    pub resolution_ms: i64,
    pub partition_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Data older than this is deleted.
    pub retention_ms: i64,
    /// The head is flushed once its oldest row is this old...
    pub flush_after: Duration,
    /// ...or once it has this many rows.
    pub flush_rows: usize,
    /// Sorted by `after_ms`; the first must have `after_ms` 0.
    pub tiers: Vec<Tier>,
    /// Run flushes and compaction in a background thread.
    pub background: bool,
    /// How often the background thread looks for work.
    pub background_every: Duration,
    /// At most this many series (label sets) are stored at once; a batch
    /// that would add more is refused with [`StoreError::TooManySeries`].
    /// Series whose data is all past the retention are pruned, which makes
    /// room again.
    pub max_series: usize,
}

/// The default [`Options::max_series`]. A series costs the store about
/// 1.3 KiB of memory (its labels, kept by id and by content, and its
/// entry in a block's directory; `cargo bench -p perfpilot-store --bench
/// series`), so the default bounds that near 250 MiB, while leaving room
/// for a large fleet: 1,000 hosts each with 100 services and two profile
/// types.
pub const DEFAULT_MAX_SERIES: usize = 200_000;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

impl Default for Options {
    fn default() -> Self {
        Options {
            retention_ms: 7 * DAY,
            flush_after: Duration::from_secs(60),
            flush_rows: 1_000_000,
            tiers: vec![
                Tier {
                    after_ms: 0,
                    resolution_ms: 10_000,
                    partition_ms: HOUR,
                },
                Tier {
                    after_ms: DAY,
                    resolution_ms: MINUTE,
                    partition_ms: DAY,
                },
                Tier {
                    after_ms: 7 * DAY,
                    resolution_ms: HOUR,
                    partition_ms: 7 * DAY,
                },
            ],
            background: true,
            background_every: Duration::from_secs(5),
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Head rows: (series, row).
type HeadRows = Vec<(u32, Row)>;

pub(crate) struct State {
    pub symbols: Symbols,
    pub head: HeadRows,
    head_since: Option<Instant>,
    /// Heads being written to blocks; still visible to queries.
    pub flushing: Vec<Arc<HeadRows>>,
    pub blocks: Vec<Arc<Block>>,
    next_block_id: u64,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    wal: Mutex<Wal>,
    state: RwLock<State>,
    /// One flush or compaction at a time.
    maintenance: Mutex<()>,
    /// Written only under `maintenance`.
    symlog: Mutex<SymbolsLog>,
    /// Blocks that are on disk but must not count: the output of a job
    /// that failed, which could not be removed. Every job names them in
    /// what it replaces (so recovery drops them) until they are removed.
    stale: Mutex<Vec<(u64, PathBuf)>>,
    /// The failures of the background work going on, each reported once:
    /// (what, the line logged).
    failing: Mutex<Vec<(&'static str, String)>>,
    stop: AtomicBool,
    wake: (Mutex<bool>, Condvar),
}

/// The embedded store. Cloning shares it.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    _worker: Arc<Worker>,
}

struct Worker {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.1.notify_all();
        if let Ok(mut t) = self.thread.lock() {
            if let Some(t) = t.take() {
                let _ = t.join();
            }
        }
    }
}

/// Figures about what the store holds, for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub blocks: usize,
    pub block_bytes: u64,
    pub block_rows: u64,
    pub head_rows: usize,
    pub series: usize,
    pub stacks: usize,
    pub functions: usize,
    pub symbol_bytes: u64,
    /// Files set aside in `quarantine/` by recovery.
    pub quarantined: usize,
}

fn lock_err<T>(_: T) -> StoreError {
    StoreError::Corrupt("a store lock was poisoned by a panic".into())
}

impl EmbeddedStore {
    /// Opens (or creates) a store in `dir`, recovering from a crash: torn
    /// log tails are left out, damaged bytes skipped (the records after
    /// them kept, the bytes kept in `quarantine/`), interrupted flushes and
    /// compactions rolled back, and the WAL replayed into the head.
    /// Recovery writes nothing it needs room for, so a store on a full
    /// disk opens and answers queries.
    pub fn open(dir: &Path, opts: Options) -> Result<EmbeddedStore, StoreError> {
        if opts.tiers.first().map(|t| t.after_ms) != Some(0) {
            return Err(StoreError::Invalid(
                "the first tier must start at age 0".into(),
            ));
        }
        let blocks_dir = dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir)
            .map_err(|e| StoreError::io("creating the data directory", e))?;
        let quarantine = dir.join(QUARANTINE);
        let (symlog, symbols) = SymbolsLog::open(&dir.join("symbols.log"), &quarantine)?;
        let (blocks, covered) = recover_blocks(&blocks_dir)?;
        // Ids come from file names: one at the largest number (a name no
        // store writes) would leave the next block no id of its own.
        let next_block_id = match blocks.iter().map(|b| b.id).max() {
            None => 1,
            Some(id) if id < u64::MAX => id + 1,
            Some(_) => {
                return Err(StoreError::Invalid(format!(
                    "{}: a block is numbered {}, leaving no number for the next one; \
                     move it out of the directory",
                    blocks_dir.display(),
                    u64::MAX
                )))
            }
        };
        let (wal, records) = Wal::open(&dir.join("wal"), &quarantine, covered)?;
        let mut state = State {
            symbols,
            head: Vec::new(),
            head_since: None,
            flushing: Vec::new(),
            blocks,
            next_block_id,
        };
        for b in &state.blocks {
            for e in &b.dir {
                state.symbols.note_time(e.series, e.min_t);
                state.symbols.note_time(e.series, e.max_t);
                state.symbols.reserve_series_ids(e.series.saturating_add(1));
            }
        }
        // Records in segments already covered by blocks are skipped.
        let mut replayed = 0usize;
        let mut undecodable = 0usize;
        for (seq, rec) in records {
            if seq < covered {
                continue;
            }
            // Intact (its checksum holds) but not a batch: only a bug or a
            // hand-made file does that; the rest is still worth having.
            let Some(batch) = codec::decode_batch(&rec).filter(|b| validate(b).is_ok()) else {
                undecodable += 1;
                continue;
            };
            apply(&mut state, &batch, now_ms());
            replayed += 1;
        }
        if undecodable > 0 {
            tracing::warn!(
                undecodable,
                "{undecodable} WAL record(s) in {} are intact but not batches; \
                 skipped",
                dir.join("wal").display()
            );
        }
        if replayed > 0 {
            state.head_since = Some(Instant::now());
        }
        // Series with no data left (all of it expired while the store was
        // closed) leave the index.
        state.symbols.prune_series(now_ms() - opts.retention_ms);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            opts,
            wal: Mutex::new(wal),
            state: RwLock::new(state),
            maintenance: Mutex::new(()),
            symlog: Mutex::new(symlog),
            stale: Mutex::new(Vec::new()),
            failing: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(false), Condvar::new()),
        });
        let worker = Arc::new(Worker {
            inner: Arc::clone(&inner),
            thread: Mutex::new(None),
        });
        if inner.opts.background {
            let bg = Arc::clone(&inner);
            let handle = std::thread::Builder::new()
                .name("pp-store-maintenance".into())
                .spawn(move || background(bg))
                .map_err(|e| StoreError::io("starting the maintenance thread", e))?;
            if let Ok(mut t) = worker.thread.lock() {
                *t = Some(handle);
            }
        }
        Ok(EmbeddedStore {
            inner,
            _worker: worker,
        })
    }

    /// Writes the head to a block now.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    /// Runs compaction, downsampling and retention until nothing is left
    /// to do (at `now_ms`).
    pub fn compact(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut jobs = 0;
        self.inner.retention(now_ms)?;
        while self.inner.compact_once(now_ms, true)? {
            jobs += 1;
        }
        Ok(jobs)
    }

    pub fn stats(&self) -> StoreStats {
        let Ok(st) = self.inner.state.read() else {
            return StoreStats::default();
        };
        StoreStats {
            blocks: st.blocks.len(),
            block_bytes: st.blocks.iter().map(|b| b.size()).sum(),
            block_rows: st.blocks.iter().map(|b| b.rows).sum(),
            head_rows: st.head.len(),
            series: st.symbols.live_series(),
            stacks: st.symbols.stacks.len(),
            functions: st.symbols.strings.len(),
            symbol_bytes: std::fs::metadata(self.inner.dir.join("symbols.log"))
                .map(|m| m.len())
                .unwrap_or(0),
            quarantined: std::fs::read_dir(self.inner.dir.join(QUARANTINE))
                .map(|d| d.count())
                .unwrap_or(0),
        }
    }
}

/// Opens every block, finishes or rolls back interrupted jobs, and returns
/// the blocks with the WAL segment number they cover.
fn recover_blocks(dir: &Path) -> Result<(Vec<Arc<Block>>, u64), StoreError> {
    let mut blocks = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io("listing blocks", e))? {
        let path = entry
            .map_err(|e| StoreError::io("listing blocks", e))?
            .path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("blk") => match Block::open(&path) {
                Ok(b) => blocks.push(b),
                Err(e) => {
                    // Keep it for inspection, out of the way.
                    tracing::warn!(file = %path.display(), "set aside {}: {e}", path.display());
                    let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                }
            },
            Some("tmp") => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    // A sibling is accounted for if it exists, or if a later job consumed
    // it (a block names it in `replaces`: inputs are deleted only after a
    // job has finished writing all its outputs).
    let mut ids: HashSet<u64> = blocks.iter().map(|b| b.id).collect();
    ids.extend(blocks.iter().flat_map(|b| b.replaces.iter().copied()));
    let complete = |b: &Block| b.siblings.iter().all(|s| ids.contains(s));
    let mut drop_ids: HashSet<u64> = HashSet::new();
    for b in &blocks {
        if complete(b) {
            drop_ids.extend(b.replaces.iter().copied());
        } else {
            drop_ids.insert(b.id);
        }
    }
    let mut kept = Vec::new();
    let mut covered = 0;
    let mut removed = false;
    for b in blocks {
        if drop_ids.contains(&b.id) {
            // Not counted either way: a block left here is dropped again
            // at the next open, as the job that replaces it still says so.
            match std::fs::remove_file(&b.path) {
                Ok(()) => removed = true,
                Err(e) => tracing::warn!(
                    file = %b.path.display(),
                    "cannot remove {} (not used): {e}",
                    b.path.display()
                ),
            }
        } else {
            covered = covered.max(b.covers_wal_before);
            kept.push(Arc::new(b));
        }
    }
    if removed {
        if let Err(e) = block::sync_dir(dir) {
            tracing::error!("{e}");
        }
    }
    Ok((kept, covered))
}

/// Checks a batch before anything is written.
fn validate(batch: &Batch) -> Result<(), StoreError> {
    let nstrings = batch.strings.len();
    for (i, st) in batch.stacks.iter().enumerate() {
        if st.iter().any(|&f| f as usize >= nstrings) {
            return Err(StoreError::Invalid(format!(
                "stack {i} refers to a function name that is not in the batch"
            )));
        }
    }
    for (i, p) in batch.profiles.iter().enumerate() {
        if p.labels.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(StoreError::Invalid(format!(
                "profile {i}: labels must be sorted by name and unique"
            )));
        }
        for required in [SERVICE_NAME_LABEL, PROFILE_TYPE_LABEL] {
            if !p.labels.iter().any(|(k, v)| k == required && !v.is_empty()) {
                return Err(StoreError::Invalid(format!(
                    "profile {i}: label {required} is missing"
                )));
            }
        }
        if let Some((j, _)) = p
            .samples
            .iter()
            .enumerate()
            .find(|(_, s)| s.0 as usize >= batch.stacks.len())
        {
            return Err(StoreError::Invalid(format!(
                "profile {i}, sample {j}: stack index out of range"
            )));
        }
    }
    Ok(())
}

/// Interns a batch's symbols and adds its samples to the head.
fn apply(st: &mut State, batch: &Batch, now: i64) {
    let fn_ids: Vec<u32> = batch
        .strings
        .iter()
        .map(|s| st.symbols.intern_string(s))
        .collect();
    let mut mapped = Vec::new();
    let stack_ids: Vec<u32> = batch
        .stacks
        .iter()
        .map(|s| {
            mapped.clear();
            mapped.extend(s.iter().map(|&f| fn_ids[f as usize]));
            st.symbols.intern_stack(&mapped)
        })
        .collect();
    for p in &batch.profiles {
        let series = st.symbols.intern_series(&p.labels);
        st.symbols.note_time(series, p.time_ms);
        st.head.reserve(p.samples.len());
        for &(stack, value) in &p.samples {
            if value != 0 {
                st.head.push((
                    series,
                    Row {
                        stack: stack_ids[stack as usize],
                        t: p.time_ms,
                        value,
                    },
                ));
            }
        }
    }
    if let Some(id) = &batch.id {
        st.symbols.record_batch(id, now);
    }
}

fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

/// Where recovery keeps damaged bytes, under the store's directory.
const QUARANTINE: &str = "quarantine";

fn quarantine_name(quarantine: &Path, file: &Path, what: &str) -> PathBuf {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    quarantine.join(format!("{name}.{}.{what}", now_ms()))
}

/// Keeps a damaged file as it is, in `quarantine` (a hard link: no room
/// needed, and it outlives the file's removal or rewrite). Says where, or
/// why not, for the log line.
pub(crate) fn quarantine_file(quarantine: &Path, file: &Path) -> String {
    let dest = quarantine_name(quarantine, file, "damaged");
    let result = std::fs::create_dir_all(quarantine)
        .and_then(|()| crate::fsio::hard_link(file, &dest))
        .and_then(|()| crate::fsio::sync_dir(quarantine));
    match result {
        Ok(()) => format!("the file as it was is kept as {}", dest.display()),
        Err(e) => format!("no copy could be kept in {}: {e}", quarantine.display()),
    }
}

/// Keeps `bytes`, found at `offset` in `file`, in `quarantine`.
pub(crate) fn quarantine_bytes(
    quarantine: &Path,
    file: &Path,
    offset: usize,
    bytes: &[u8],
) -> String {
    let dest = quarantine_name(quarantine, file, &format!("at-{offset}"));
    let result = std::fs::create_dir_all(quarantine)
        .and_then(|()| crate::fsio::write_atomically(&dest, bytes));
    match result {
        Ok(()) => format!("its bytes are kept as {}", dest.display()),
        Err(e) => format!("no copy could be kept in {}: {e}", quarantine.display()),
    }
}

impl Inner {
    /// The partition (start, end, tier) a time falls in, given its age.
    fn partition_of(&self, t: i64, now: i64) -> (i64, i64, Tier) {
        // A partition's tier is decided by the age of its end, so all of
        // it is at one resolution.
        let mut tier = self.opts.tiers[0];
        for cand in &self.opts.tiers {
            let start = floor_to(t, cand.partition_ms);
            if now - (start + cand.partition_ms) >= cand.after_ms {
                tier = *cand;
            }
        }
        let start = floor_to(t, tier.partition_ms);
        (start, start + tier.partition_ms, tier)
    }

    fn blocks_dir(&self) -> PathBuf {
        self.dir.join("blocks")
    }

    /// Writes what was interned since the last call to `symbols.log`.
    /// Blocks may refer to these ids only after this returns. Called
    /// under `maintenance`; the file is written with no state lock held.
    fn persist_symbols(&self) -> Result<(), StoreError> {
        let mut log = self.symlog.lock().map_err(lock_err)?;
        let pending = {
            let st = self.state.read().map_err(lock_err)?;
            st.symbols.pending(log.needs_rewrite())
        };
        let Some(pending) = pending else {
            return Ok(());
        };
        log.write(&pending)?;
        self.state
            .write()
            .map_err(lock_err)?
            .symbols
            .persisted(&pending);
        Ok(())
    }

    /// Removes a block file that must not count. If it cannot be removed,
    /// it is remembered as stale: every later job names it among the
    /// blocks it replaces, so recovery drops it, until it is gone.
    fn discard(&self, id: u64, path: &Path) {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(
                    file = %path.display(),
                    "cannot remove {} ({e}); later jobs replace it",
                    path.display()
                );
                if let Ok(mut stale) = self.stale.lock() {
                    stale.push((id, path.to_path_buf()));
                }
            }
        }
    }

    fn stale_ids(&self) -> Vec<u64> {
        self.stale
            .lock()
            .map(|s| s.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default()
    }

    /// Tries again to remove stale blocks; they stay named until their
    /// removal is known durable.
    fn retry_stale(&self) {
        let Ok(mut stale) = self.stale.lock() else {
            return;
        };
        let gone: Vec<u64> = stale
            .iter()
            .filter(|(_, path)| match std::fs::remove_file(path) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            })
            .map(|(id, _)| *id)
            .collect();
        if !gone.is_empty() && block::sync_dir(&self.blocks_dir()).is_ok() {
            stale.retain(|(id, _)| !gone.contains(id));
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        let _m = self.maintenance.lock().map_err(lock_err)?;
        self.retry_stale();
        let (rows, seq, id) = {
            let mut wal = self.wal.lock().map_err(lock_err)?;
            let mut st = self.state.write().map_err(lock_err)?;
            if st.head.is_empty() {
                return Ok(());
            }
            let seq = wal.rotate();
            let rows = Arc::new(std::mem::take(&mut st.head));
            st.head_since = None;
            st.flushing.push(Arc::clone(&rows));
            let id = st.next_block_id;
            st.next_block_id += 1;
            (rows, seq, id)
        };
        let result = (|| {
            // Ids the block uses must be durable before it is.
            self.persist_symbols()?;
            let res = self.opts.tiers[0].resolution_ms;
            let mut by_series: Vec<(u32, Row)> = rows
                .iter()
                .map(|&(s, r)| {
                    (
                        s,
                        Row {
                            t: floor_to(r.t, res),
                            ..r
                        },
                    )
                })
                .collect();
            let job = Job {
                id,
                covers_wal_before: seq,
                siblings: vec![id],
                replaces: self.stale_ids(),
            };
            self.write_block(&mut by_series, 0, res, &job)
        })();
        let mut st = self.state.write().map_err(lock_err)?;
        st.flushing.retain(|f| !Arc::ptr_eq(f, &rows));
        match result {
            Ok(block) => {
                if let Some(b) = block {
                    st.blocks.push(Arc::new(b));
                }
                drop(st);
                self.wal.lock().map_err(lock_err)?.remove_before(seq)
            }
            Err(e) => {
                // Keep the rows queryable and in the WAL; try again later.
                let rows = Arc::try_unwrap(rows).unwrap_or_else(|a| (*a).clone());
                st.head.extend(rows);
                st.head_since.get_or_insert_with(Instant::now);
                Err(e)
            }
        }
    }

    /// Sums rows equal in (series, stack, t) and drops those that sum to
    /// nothing; returns whether any are left.
    fn consolidate(rows: &mut Vec<(u32, Row)>) -> bool {
        rows.sort_unstable_by_key(|&(s, r)| (s, r.stack, r.t));
        rows.dedup_by(|b, a| {
            if a.0 == b.0 && a.1.stack == b.1.stack && a.1.t == b.1.t {
                a.1.value += b.1.value;
                true
            } else {
                false
            }
        });
        rows.retain(|(_, r)| r.value != 0);
        !rows.is_empty()
    }

    /// Consolidates rows, then writes one block. On failure no file of it
    /// is left that could count.
    fn write_block(
        &self,
        rows: &mut Vec<(u32, Row)>,
        level: u32,
        res: i64,
        job: &Job,
    ) -> Result<Option<Block>, StoreError> {
        if !Self::consolidate(rows) {
            return Ok(None);
        }
        let min_t = rows.iter().map(|(_, r)| r.t).min().unwrap_or(0);
        let dir = self.blocks_dir();
        let tmp = dir.join(format!("{:016}.tmp", job.id));
        let dest = dir.join(format!("{:016}.blk", job.id));
        let result = (|| {
            let mut w = BlockWriter::create(&tmp, level, res, min_t)?;
            let mut start = 0;
            let mut series_rows: Vec<Row> = Vec::new();
            while start < rows.len() {
                let series = rows[start].0;
                let end = start
                    + rows[start..]
                        .iter()
                        .take_while(|(s, _)| *s == series)
                        .count();
                series_rows.clear();
                series_rows.extend(rows[start..end].iter().map(|(_, r)| *r));
                w.add_series(series, &mut series_rows)?;
                start = end;
            }
            w.finish(&dest, job)?;
            Block::open(&dest)
        })();
        if result.is_err() {
            // Renamed in but not known durable (the directory sync
            // failed), or not readable back: it must not count.
            self.discard(job.id, &dest);
        }
        result.map(Some)
    }

    /// Deletes blocks wholly older than the retention, and prunes the
    /// series with no data left in it.
    fn retention(&self, now: i64) -> Result<(), StoreError> {
        let cutoff = now - self.opts.retention_ms;
        let expired: Vec<Arc<Block>> = {
            let _m = self.maintenance.lock().map_err(lock_err)?;
            let mut st = self.state.write().map_err(lock_err)?;
            let (old, keep): (Vec<_>, Vec<_>) = st.blocks.drain(..).partition(|b| b.max_t < cutoff);
            st.blocks = keep;
            st.symbols.prune_batch_ids(now - DAY);
            st.symbols.prune_series(cutoff);
            old
        };
        for b in expired {
            self.discard(b.id, &b.path);
        }
        Ok(())
    }

    /// Finds one partition that needs work and does it: merges its blocks
    /// into one at the resolution its age calls for. `force` also takes
    /// the partition still being written to. Returns whether it did work.
    fn compact_once(&self, now: i64, force: bool) -> Result<bool, StoreError> {
        let _m = self.maintenance.lock().map_err(lock_err)?;
        self.retry_stale();
        let blocks: Vec<Arc<Block>> = self.state.read().map_err(lock_err)?.blocks.clone();
        let open_after = now - self.opts.flush_after.as_millis() as i64;
        let mut candidates: Vec<(i64, i64, Tier)> = Vec::new();
        for b in &blocks {
            let (ps, pe, tier) = self.partition_of(b.min_t, now);
            let overlapping: Vec<&Arc<Block>> = blocks
                .iter()
                .filter(|x| x.min_t < pe && x.max_t >= ps)
                .collect();
            let closed = pe <= open_after;
            let needs = overlapping.len() > 1
                || b.resolution_ms < tier.resolution_ms
                || b.max_t >= pe
                || b.min_t < ps;
            if needs && (closed || force || overlapping.len() >= 8) {
                candidates.push((ps, pe, tier));
            }
        }
        let Some(&(ps, pe, _)) = candidates.iter().min_by_key(|c| c.0) else {
            return Ok(false);
        };
        let inputs: Vec<Arc<Block>> = blocks
            .iter()
            .filter(|x| x.min_t < pe && x.max_t >= ps)
            .cloned()
            .collect();
        if inputs.len() == 1
            && inputs[0].resolution_ms >= self.partition_of(inputs[0].min_t, now).2.resolution_ms
            && inputs[0].min_t >= ps
            && inputs[0].max_t < pe
        {
            return Ok(false);
        }
        // Rows of the inputs, re-bucketed into their partitions at each
        // partition's resolution: one output block per partition.
        let mut parts: std::collections::BTreeMap<i64, (Tier, Vec<(u32, Row)>)> =
            Default::default();
        for b in &inputs {
            for e in &b.dir {
                let series = e.series;
                let mut failed = None;
                b.scan(e, |stack, t, value| {
                    let (start, _, tier) = self.partition_of(t, now);
                    let entry = parts.entry(start).or_insert_with(|| (tier, Vec::new()));
                    entry.1.push((
                        series,
                        Row {
                            stack,
                            t: floor_to(t, tier.resolution_ms),
                            value,
                        },
                    ));
                })
                .unwrap_or_else(|err| failed = Some(err));
                if let Some(err) = failed {
                    return Err(err);
                }
            }
        }
        // Every sibling a job names must be written, or recovery takes the
        // job for unfinished: partitions whose rows sum to nothing get no
        // block, and no id.
        parts.retain(|_, (_, rows)| Self::consolidate(rows));
        let ids: Vec<u64> = {
            let mut st = self.state.write().map_err(lock_err)?;
            let first = st.next_block_id;
            st.next_block_id += parts.len() as u64;
            (first..first + parts.len() as u64).collect()
        };
        let replaces: Vec<u64> = inputs.iter().map(|b| b.id).collect();
        let covers = inputs
            .iter()
            .map(|b| b.covers_wal_before)
            .max()
            .unwrap_or(0);
        let mut job_replaces = replaces.clone();
        job_replaces.extend(self.stale_ids());
        let mut outputs = Vec::new();
        for ((_, (tier, mut rows)), &id) in parts.into_iter().zip(&ids) {
            let job = Job {
                id,
                covers_wal_before: covers,
                siblings: ids.clone(),
                replaces: job_replaces.clone(),
            };
            let level = inputs.iter().map(|b| b.level).max().unwrap_or(0) + 1;
            match self.write_block(&mut rows, level, tier.resolution_ms, &job) {
                Ok(Some(b)) => outputs.push(Arc::new(b)),
                Ok(None) => {}
                Err(e) => {
                    for o in &outputs {
                        self.discard(o.id, &o.path);
                    }
                    return Err(e);
                }
            }
        }
        // A job with no output at all deletes its inputs directly (nothing
        // of them survives anyway).
        {
            let mut st = self.state.write().map_err(lock_err)?;
            st.blocks.retain(|b| !replaces.contains(&b.id));
            st.blocks.extend(outputs);
        }
        for b in &inputs {
            self.discard(b.id, &b.path);
        }
        block::sync_dir(&self.blocks_dir())?;
        Ok(true)
    }

    fn head_due(&self) -> bool {
        let Ok(st) = self.state.read() else {
            return false;
        };
        !st.head.is_empty()
            && (st.head.len() >= self.opts.flush_rows
                || st
                    .head_since
                    .is_some_and(|t| t.elapsed() >= self.opts.flush_after))
    }

    /// Reports a failure of the background work once, not at every retry,
    /// and its end.
    fn report(&self, result: Result<(), StoreError>, what: &'static str) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        let known = failing.iter().position(|(w, _)| *w == what);
        match (result, known) {
            (Ok(()), Some(i)) => {
                failing.remove(i);
                tracing::info!(job = what, "{what} works again");
            }
            (Ok(()), None) => {}
            (Err(e), known) => {
                let line = format!(
                    "{what} failed (retrying every {:?}): {e}",
                    self.opts.background_every
                );
                if known.is_some_and(|i| failing[i].1 == line) {
                    return;
                }
                tracing::error!(job = what, "{line}");
                if let Some(i) = known {
                    failing.remove(i);
                }
                failing.push((what, line));
            }
        }
    }
}

fn background(inner: Arc<Inner>) {
    while !inner.stop.load(Ordering::SeqCst) {
        if inner.head_due() {
            inner.report(inner.flush(), "flush");
        }
        let now = now_ms();
        if let Err(e) = inner.retention(now) {
            tracing::error!("retention failed: {e}");
        }
        match inner.compact_once(now, false) {
            Ok(worked) => {
                inner.report(Ok(()), "compaction");
                if worked {
                    continue;
                }
            }
            Err(e) => inner.report(Err(e), "compaction"),
        }
        let (lock, cv) = &inner.wake;
        if let Ok(mut woken) = lock.lock() {
            if !*woken {
                woken = cv
                    .wait_timeout(woken, inner.opts.background_every)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            *woken = false;
        }
    }
    // Leave nothing in the head: a clean shutdown needs no WAL replay.
    let _ = inner.flush();
}

impl Store for EmbeddedStore {
    fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError> {
        validate(batch)?;
        let payload = codec::encode_batch(batch);
        let inner = &self.inner;
        let mut wal = inner.wal.lock().map_err(lock_err)?;
        {
            let st = inner.state.read().map_err(lock_err)?;
            if let Some(id) = &batch.id {
                if st.symbols.batch_applied(id) {
                    return Ok(IngestOutcome::Duplicate);
                }
            }
            // Checked under the WAL lock, which every ingest holds: no
            // other batch adds series meanwhile.
            let mut new: Vec<&Labels> = batch
                .profiles
                .iter()
                .map(|p| &p.labels)
                .filter(|l| !st.symbols.has_series(l))
                .collect();
            new.sort_unstable();
            new.dedup();
            let stored = st.symbols.live_series();
            if !new.is_empty() && stored + new.len() > inner.opts.max_series {
                return Err(StoreError::TooManySeries {
                    limit: inner.opts.max_series,
                    stored,
                    new: new.len(),
                });
            }
        }
        wal.append(&payload)?;
        let due = {
            let mut st = inner.state.write().map_err(lock_err)?;
            apply(&mut st, batch, now_ms());
            st.head_since.get_or_insert_with(Instant::now);
            st.head.len() >= inner.opts.flush_rows
        };
        drop(wal);
        if due {
            let (lock, cv) = &inner.wake;
            if let Ok(mut w) = lock.lock() {
                *w = true;
                cv.notify_all();
            }
        }
        Ok(IngestOutcome::Applied)
    }

    fn profile_types(&self, range: TimeRange) -> Result<Vec<String>, StoreError> {
        let st = self.inner.state.read().map_err(lock_err)?;
        Ok(query::profile_types(&st, range))
    }

    fn label_names(
        &self,
        selector: &Selector,
        range: TimeRange,
    ) -> Result<Vec<String>, StoreError> {
        let st = self.inner.state.read().map_err(lock_err)?;
        Ok(query::label_names(&st, selector, range))
    }

    fn label_values(
        &self,
        name: &str,
        selector: &Selector,
        range: TimeRange,
    ) -> Result<Vec<String>, StoreError> {
        let st = self.inner.state.read().map_err(lock_err)?;
        Ok(query::label_values(&st, name, selector, range))
    }

    fn series(&self, selector: &Selector, range: TimeRange) -> Result<Vec<Labels>, StoreError> {
        let st = self.inner.state.read().map_err(lock_err)?;
        Ok(query::series(&st, selector, range))
    }

    fn merge(&self, selector: &Selector, range: TimeRange) -> Result<StackTable, StoreError> {
        query::merge(&self.inner.state, selector, range)
    }

    fn time_series(
        &self,
        selector: &Selector,
        range: TimeRange,
        step_ms: i64,
        group_by: &[String],
        function: Option<&str>,
        limits: &SeriesLimits,
    ) -> Result<Vec<Points>, StoreError> {
        if step_ms <= 0 {
            return Err(StoreError::Invalid("step must be positive".into()));
        }
        query::time_series(
            &self.inner.state,
            selector,
            range,
            step_ms,
            group_by,
            function,
            limits,
        )
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod durability_tests;
