//! The dictionaries every block refers to: function names, stacks (as
//! function ids, root first) and series (label sets), each interned once,
//! plus the ids of batches already applied. Kept in memory ([`Symbols`]);
//! new entries are appended to `symbols.log` ([`SymbolsLog`]) before any
//! block that uses them is written.
//!
//! A record of the log is a run of entries. Each record starts with the
//! ids its first string, stack and series take (`KIND_BASE`), so a record
//! lost to damage leaves a hole of known size instead of shifting every id
//! after it, and a rewritten log can leave pruned series out.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use super::codec::{frame, put_varint, scan, Reader};
use crate::fsio;
use crate::types::{Labels, PROFILE_TYPE_LABEL};
use crate::StoreError;

const KIND_STRING: u8 = 1;
const KIND_STACK: u8 = 2;
const KIND_SERIES: u8 = 3;
const KIND_BATCH_ID: u8 = 4;
const KIND_BASE: u8 = 5;

/// What a name lost to a damaged `symbols.log` reads as.
pub const LOST_NAME: &str = "[name lost: symbols.log was damaged]";

/// Series ids stop here (a store would need a new series every
/// millisecond for a month to get there); what a log says past it is not
/// believed.
const MAX_SERIES_ID: usize = (u32::MAX / 2) as usize;

/// Records of a rewritten log are cut at about this size.
const REWRITE_RECORD: usize = 16 << 20;

/// A series and the span of time it has data in.
#[derive(Debug, Clone)]
pub struct SeriesInfo {
    pub labels: Labels,
    pub profile_type: String,
    pub min_t: i64,
    pub max_t: i64,
}

impl SeriesInfo {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }
}

/// How many of each kind of entry are in the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    strings: usize,
    stacks: usize,
    series: usize,
    batch_ids: usize,
}

/// Entries not yet in the log, encoded, and the marks to set once they
/// are.
pub struct Pending {
    pub records: Vec<Vec<u8>>,
    marks: Marks,
    rewrite: bool,
}

#[derive(Default)]
pub struct Symbols {
    pub strings: Vec<String>,
    string_ids: FxHashMap<String, u32>,
    pub stacks: Vec<Box<[u32]>>,
    stack_ids: FxHashMap<Box<[u32]>, u32>,
    /// Live series by id. Pruned ones leave it; ids are never reused
    /// (blocks may still hold rows under them), so this is sparse.
    series: BTreeMap<u32, SeriesInfo>,
    series_ids: FxHashMap<Labels, u32>,
    /// The id the next new series takes.
    next_series: u32,
    /// Applied batch ids and when they were applied (ms).
    batch_ids: HashMap<String, i64>,
    new_batch_ids: Vec<(String, i64)>,
    persisted: Marks,
    /// Entries the log file holds, dead ones included.
    log_entries: usize,
}

/// What loading the log found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Names and stacks whose record was damaged: placeholders now.
    pub lost: usize,
    /// Records that check but do not decode.
    pub undecodable: usize,
}

/// Encodes entries into records, each starting with the ids its entries
/// take.
struct Encoder {
    records: Vec<Vec<u8>>,
    cur: Vec<u8>,
    /// The ids the next entries of each kind take in `cur`.
    next: (usize, usize, usize),
    limit: usize,
}

impl Encoder {
    fn new(base: (usize, usize, usize), limit: usize) -> Encoder {
        let mut e = Encoder {
            records: Vec::new(),
            cur: Vec::new(),
            next: base,
            limit,
        };
        e.base();
        e
    }

    fn base(&mut self) {
        self.cur.push(KIND_BASE);
        put_varint(&mut self.cur, self.next.0 as u64);
        put_varint(&mut self.cur, self.next.1 as u64);
        put_varint(&mut self.cur, self.next.2 as u64);
    }

    /// Before an entry: start a new record when this one is full.
    fn room(&mut self) {
        if self.cur.len() >= self.limit {
            self.records.push(std::mem::take(&mut self.cur));
            self.base();
        }
    }

    fn string(&mut self, s: &str) {
        self.room();
        self.cur.push(KIND_STRING);
        put_varint(&mut self.cur, s.len() as u64);
        self.cur.extend_from_slice(s.as_bytes());
        self.next.0 += 1;
    }

    fn stack(&mut self, frames: &[u32]) {
        self.room();
        self.cur.push(KIND_STACK);
        put_varint(&mut self.cur, frames.len() as u64);
        for &f in frames {
            put_varint(&mut self.cur, f as u64);
        }
        self.next.1 += 1;
    }

    fn series(&mut self, id: usize, labels: &Labels) {
        self.room();
        if id != self.next.2 {
            self.next.2 = id;
            self.base();
        }
        self.cur.push(KIND_SERIES);
        put_varint(&mut self.cur, labels.len() as u64);
        for (k, v) in labels {
            put_varint(&mut self.cur, k.len() as u64);
            self.cur.extend_from_slice(k.as_bytes());
            put_varint(&mut self.cur, v.len() as u64);
            self.cur.extend_from_slice(v.as_bytes());
        }
        self.next.2 += 1;
    }

    fn batch_id(&mut self, id: &str, t: i64) {
        self.room();
        self.cur.push(KIND_BATCH_ID);
        put_varint(&mut self.cur, super::codec::zigzag(t));
        put_varint(&mut self.cur, id.len() as u64);
        self.cur.extend_from_slice(id.as_bytes());
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.records.push(self.cur);
        self.records
    }
}

impl Symbols {
    /// Loads what the log's records hold (`file_len`: the size of the
    /// file they come from). The ids of a damaged record, skipped, become
    /// placeholders (names read [`LOST_NAME`], stacks are empty, series
    /// are gone). A record that checks but does not decode is skipped the
    /// same way.
    pub fn load(records: &[&[u8]], file_len: usize) -> (Symbols, Loaded) {
        let mut s = Symbols::default();
        let mut loaded = Loaded::default();
        for rec in records {
            if s.load_record(rec, file_len, &mut loaded).is_none() {
                loaded.undecodable += 1;
            }
        }
        s.fill_lost_names(file_len, &mut loaded);
        s.persisted = Marks {
            strings: s.strings.len(),
            stacks: s.stacks.len(),
            series: s.next_series as usize,
            batch_ids: 0,
        };
        (s, loaded)
    }

    /// A stack may name functions whose records were lost with no later
    /// name record to leave their hole: those names read [`LOST_NAME`],
    /// so that names interned later do not take their ids. A stack naming
    /// ids past what the file could have held is not believed and is
    /// lost itself.
    fn fill_lost_names(&mut self, file_len: usize, loaded: &mut Loaded) {
        let believable = self.strings.len() + file_len / 2;
        let wanted = self
            .stacks
            .iter()
            .flat_map(|f| f.iter())
            .map(|&f| f as usize + 1)
            .filter(|&n| n <= believable)
            .max()
            .unwrap_or(0);
        while self.strings.len() < wanted {
            loaded.lost += 1;
            let id = self.strings.len() as u32;
            self.string_ids.entry(LOST_NAME.to_string()).or_insert(id);
            self.strings.push(LOST_NAME.to_string());
        }
        let known = self.strings.len();
        for (id, frames) in self.stacks.iter_mut().enumerate() {
            if frames.iter().any(|&f| f as usize >= known) {
                loaded.lost += 1;
                if self.stack_ids.get(&**frames) == Some(&(id as u32)) {
                    self.stack_ids.remove(&**frames);
                }
                *frames = Box::new([]);
            }
        }
    }

    fn load_record(&mut self, rec: &[u8], file_len: usize, loaded: &mut Loaded) -> Option<()> {
        let mut r = Reader::new(rec);
        // Records of the earlier format carry no base: they follow on.
        let (mut ns, mut nk, mut nr) = (
            self.strings.len(),
            self.stacks.len(),
            self.next_series as usize,
        );
        while !r.done() {
            let kind = *r.bytes(1)?.first()?;
            self.log_entries += 1;
            match kind {
                KIND_BASE => {
                    ns = usize::try_from(r.varint()?).ok()?;
                    nk = usize::try_from(r.varint()?).ok()?;
                    nr = usize::try_from(r.varint()?).ok()?;
                    // Holes in names and stacks are only as large as the
                    // entries lost records held (two bytes or more each),
                    // so bases past what the file could hold are not
                    // believed. Series ids skip pruned series: any gap,
                    // short of ids no store reaches.
                    // Saturating: wrapped, two huge bases could sum to
                    // a small hole and be believed.
                    let holes = ns
                        .saturating_sub(self.strings.len())
                        .saturating_add(nk.saturating_sub(self.stacks.len()))
                        .saturating_add(loaded.lost);
                    if holes > file_len / 2 || nr > MAX_SERIES_ID {
                        return None;
                    }
                    self.log_entries -= 1;
                }
                KIND_STRING => {
                    let n = r.varint()? as usize;
                    let name = std::str::from_utf8(r.bytes(n)?).ok()?;
                    while self.strings.len() < ns {
                        loaded.lost += 1;
                        let id = self.strings.len() as u32;
                        self.string_ids.entry(LOST_NAME.to_string()).or_insert(id);
                        self.strings.push(LOST_NAME.to_string());
                    }
                    if ns == self.strings.len() {
                        self.strings.push(name.to_string());
                        self.string_ids.entry(name.to_string()).or_insert(ns as u32);
                    }
                    ns += 1;
                }
                KIND_STACK => {
                    let n = r.varint()? as usize;
                    let mut frames = Vec::with_capacity(n.min(4096));
                    for _ in 0..n {
                        frames.push(u32::try_from(r.varint()?).ok()?);
                    }
                    while self.stacks.len() < nk {
                        loaded.lost += 1;
                        self.stacks.push(Box::new([]));
                    }
                    if nk == self.stacks.len() {
                        let boxed: Box<[u32]> = frames.into();
                        self.stack_ids.entry(boxed.clone()).or_insert(nk as u32);
                        self.stacks.push(boxed);
                    }
                    nk += 1;
                }
                KIND_SERIES => {
                    let n = r.varint()? as usize;
                    let mut labels = Vec::with_capacity(n.min(256));
                    for _ in 0..n {
                        let kl = r.varint()? as usize;
                        let k = std::str::from_utf8(r.bytes(kl)?).ok()?.to_string();
                        let vl = r.varint()? as usize;
                        let v = std::str::from_utf8(r.bytes(vl)?).ok()?.to_string();
                        labels.push((k, v));
                    }
                    // Ids skipped are pruned series (or lost ones); ids
                    // seen already are not taken twice.
                    if nr >= self.next_series as usize && nr <= MAX_SERIES_ID {
                        // A label set again under a later id was pruned
                        // under the earlier one: the later one holds it.
                        if let Some(old) = self.series_ids.remove(&labels) {
                            self.series.remove(&old);
                        }
                        self.next_series = nr as u32;
                        self.insert_series(labels);
                    }
                    nr += 1;
                }
                KIND_BATCH_ID => {
                    let t = super::codec::unzigzag(r.varint()?);
                    let n = r.varint()? as usize;
                    let id = std::str::from_utf8(r.bytes(n)?).ok()?.to_string();
                    self.batch_ids.insert(id, t);
                }
                _ => return None,
            }
        }
        Some(())
    }

    pub fn intern_string(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    pub fn intern_stack(&mut self, frames: &[u32]) -> u32 {
        if let Some(&id) = self.stack_ids.get(frames) {
            return id;
        }
        let id = self.stacks.len() as u32;
        let boxed: Box<[u32]> = frames.into();
        self.stacks.push(boxed.clone());
        self.stack_ids.insert(boxed, id);
        id
    }

    fn insert_series(&mut self, labels: Labels) -> u32 {
        let id = self.next_series;
        self.next_series = self.next_series.saturating_add(1);
        let profile_type = labels
            .iter()
            .find(|(k, _)| k == PROFILE_TYPE_LABEL)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        self.series_ids.insert(labels.clone(), id);
        self.series.insert(
            id,
            SeriesInfo {
                labels,
                profile_type,
                min_t: i64::MAX,
                max_t: i64::MIN,
            },
        );
        id
    }

    /// Interns a sorted label set.
    pub fn intern_series(&mut self, labels: &Labels) -> u32 {
        match self.series_ids.get(labels) {
            Some(&id) => id,
            None => self.insert_series(labels.clone()),
        }
    }

    /// Whether a label set is stored already.
    pub fn has_series(&self, labels: &Labels) -> bool {
        self.series_ids.contains_key(labels)
    }

    /// Series not pruned.
    pub fn live_series(&self) -> usize {
        self.series.len()
    }

    /// Makes sure no series id below `end` is given again: blocks hold
    /// rows under them even when the log lost the series (a damaged end
    /// of `symbols.log` reads as a torn write), and a new series under such
    /// an id would read those rows as its own.
    pub fn reserve_series_ids(&mut self, end: u32) {
        self.next_series = self.next_series.max(end);
    }

    /// One past the highest series id ever given.
    pub fn series_ids_end(&self) -> usize {
        self.next_series as usize
    }

    pub fn series(&self, id: u32) -> Option<&SeriesInfo> {
        self.series.get(&id)
    }

    /// Live series with their ids, in id order.
    pub fn all_series(&self) -> impl Iterator<Item = (u32, &SeriesInfo)> {
        self.series.iter().map(|(&id, s)| (id, s))
    }

    pub fn note_time(&mut self, series: u32, t: i64) {
        if let Some(s) = self.series.get_mut(&series) {
            s.min_t = s.min_t.min(t);
            s.max_t = s.max_t.max(t);
        }
    }

    /// Drops series with no data at or after `cutoff_ms` (past the
    /// retention, or with no data at all): they leave the index, and the
    /// next rewrite of the log leaves them out. Returns how many.
    pub fn prune_series(&mut self, cutoff_ms: i64) -> usize {
        let before = self.series.len();
        let ids = &mut self.series_ids;
        self.series.retain(|_, s| {
            let keep = s.max_t >= cutoff_ms;
            if !keep {
                ids.remove(&s.labels);
            }
            keep
        });
        // A hash table keeps its size: give the memory back after a wave
        // of series has gone.
        if self.series_ids.capacity() > 4 * self.series_ids.len() + 1024 {
            self.series_ids.shrink_to_fit();
        }
        before - self.series.len()
    }

    pub fn batch_applied(&self, id: &str) -> bool {
        self.batch_ids.contains_key(id)
    }

    pub fn record_batch(&mut self, id: &str, now_ms: i64) {
        if self.batch_ids.insert(id.to_string(), now_ms).is_none() {
            self.new_batch_ids.push((id.to_string(), now_ms));
        }
    }

    /// Forgets batch ids older than `cutoff_ms` (retries come within
    /// minutes; the window bounds memory).
    pub fn prune_batch_ids(&mut self, cutoff_ms: i64) {
        self.batch_ids.retain(|_, t| *t >= cutoff_ms);
    }

    /// Entries the log holds that are no longer needed (pruned series,
    /// forgotten batch ids): rewriting it pays once they outnumber the
    /// live ones.
    fn log_is_mostly_dead(&self) -> bool {
        let live =
            self.strings.len() + self.stacks.len() + self.series.len() + self.batch_ids.len();
        self.log_entries > 2 * live + 100_000
    }

    /// What to write to the log now: the entries interned since the last
    /// write, or the whole log again when `rewrite` (or when most of the
    /// file is dead). None when there is nothing new.
    pub fn pending(&self, rewrite: bool) -> Option<Pending> {
        let marks = Marks {
            strings: self.strings.len(),
            stacks: self.stacks.len(),
            series: self.next_series as usize,
            batch_ids: self.new_batch_ids.len(),
        };
        let rewrite = rewrite || self.log_is_mostly_dead();
        if rewrite {
            let mut e = Encoder::new((0, 0, 0), REWRITE_RECORD);
            self.strings.iter().for_each(|s| e.string(s));
            self.stacks.iter().for_each(|s| e.stack(s));
            for (id, s) in self.all_series() {
                e.series(id as usize, &s.labels);
            }
            for (id, t) in &self.batch_ids {
                e.batch_id(id, *t);
            }
            return Some(Pending {
                records: e.finish(),
                marks,
                rewrite,
            });
        }
        let p = self.persisted;
        if p == (Marks {
            batch_ids: 0,
            ..marks
        }) && marks.batch_ids == 0
        {
            return None;
        }
        let mut e = Encoder::new((p.strings, p.stacks, p.series), usize::MAX);
        self.strings[p.strings..].iter().for_each(|s| e.string(s));
        self.stacks[p.stacks..].iter().for_each(|s| e.stack(s));
        for (&id, s) in self.series.range(p.series as u32..) {
            e.series(id as usize, &s.labels);
        }
        for (id, t) in &self.new_batch_ids {
            e.batch_id(id, *t);
        }
        Some(Pending {
            records: e.finish(),
            marks,
            rewrite,
        })
    }

    /// Notes that `p` is in the log.
    pub fn persisted(&mut self, p: &Pending) {
        let m = p.marks;
        let written = (m.strings - self.persisted.strings.min(m.strings))
            + (m.stacks - self.persisted.stacks.min(m.stacks))
            + (m.series - self.persisted.series.min(m.series))
            + m.batch_ids;
        self.log_entries = if p.rewrite {
            m.strings + m.stacks + self.series.len() + self.batch_ids.len()
        } else {
            self.log_entries + written
        };
        self.new_batch_ids
            .drain(..m.batch_ids.min(self.new_batch_ids.len()));
        self.persisted = Marks { batch_ids: 0, ..m };
    }
}

/// The `symbols.log` file: appends that complete or leave it as it was.
pub struct SymbolsLog {
    path: PathBuf,
    /// None when the file must be rewritten whole before anything is
    /// appended: its end could not be cut back after a failed append, or
    /// recovery found damage or the earlier format in it.
    file: Option<File>,
    len: u64,
}

impl SymbolsLog {
    /// Opens the log at `path` and loads it. Damage is reported on stderr
    /// and its bytes kept in `quarantine`; the file is then rewritten at
    /// the next write, never cut.
    pub fn open(path: &Path, quarantine: &Path) -> Result<(SymbolsLog, Symbols), StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io(format!("reading {}", path.display()), e)),
        };
        let found = scan(&bytes);
        let records: Vec<&[u8]> = found.records.iter().map(|r| r.1).collect();
        let (symbols, loaded) = Symbols::load(&records, bytes.len());
        let torn = found.end < bytes.len();
        if !found.damaged.is_empty() || loaded.undecodable > 0 {
            let kept = super::quarantine_file(quarantine, path);
            tracing::warn!(
                file = %path.display(),
                "{}: {} damaged byte range(s) ({} bytes) and {} undecodable \
                 record(s) skipped, the records after them kept ({} names and stacks lost, \
                 shown as placeholders); {kept}",
                path.display(),
                found.damaged.len(),
                found.damaged.iter().map(|r| r.len()).sum::<usize>(),
                loaded.undecodable,
                loaded.lost,
            );
        } else if torn {
            let kept = super::quarantine_bytes(quarantine, path, found.end, &bytes[found.end..]);
            tracing::warn!(
                file = %path.display(),
                "{}: a torn write of {} bytes at its end (never acknowledged) \
                 is left out; {kept}",
                path.display(),
                bytes.len() - found.end
            );
        } else if loaded.lost > 0 {
            tracing::warn!(
                file = %path.display(),
                "{}: {} entries were lost to earlier damage (placeholders)",
                path.display(),
                loaded.lost
            );
        }
        let rewrite = found.legacy || torn || !found.damaged.is_empty() || loaded.undecodable > 0;
        let file = fsio::open_append(path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        let log = SymbolsLog {
            path: path.to_path_buf(),
            file: (!rewrite).then_some(file),
            len: bytes.len() as u64,
        };
        Ok((log, symbols))
    }

    /// Whether the next write must rewrite the file whole.
    pub fn needs_rewrite(&self) -> bool {
        self.file.is_none()
    }

    /// Writes `p` (appended, or the whole file replaced for a rewrite)
    /// and syncs it. On failure the file is as it was before.
    pub fn write(&mut self, p: &Pending) -> Result<(), StoreError> {
        if p.rewrite {
            return self.rewrite(&p.records);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::Corrupt(
                "symbols.log must be rewritten before it is appended to".into(),
            ));
        };
        let mut framed = Vec::new();
        for r in &p.records {
            frame(&mut framed, r);
        }
        let result = fsio::write_all(file, &self.path, &framed)
            .and_then(|()| fsio::sync_data(file, &self.path));
        if let Err(e) = result {
            if let Err(cut) = fsio::set_len(file, &self.path, self.len) {
                // Never append after a tear: the next write replaces the
                // file whole.
                tracing::error!(
                    file = %self.path.display(),
                    "cannot cut a failed write off {} ({cut}); it will be \
                     rewritten whole",
                    self.path.display()
                );
                self.file = None;
            }
            return Err(StoreError::write("symbols", &self.path, e));
        }
        self.len += framed.len() as u64;
        Ok(())
    }

    fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), StoreError> {
        let tmp = fsio::temporary_name(&self.path);
        let result = (|| {
            let mut f = fsio::create(&tmp)?;
            let mut framed = Vec::new();
            let mut len = 0u64;
            for r in records {
                framed.clear();
                frame(&mut framed, r);
                fsio::write_all(&mut f, &tmp, &framed)?;
                len += framed.len() as u64;
            }
            fsio::sync_all(&f, &tmp)?;
            fsio::rename(&tmp, &self.path)?;
            Ok(len)
        })();
        let len = match result {
            Ok(len) => len,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(StoreError::write("symbols", &self.path, e));
            }
        };
        // The new file is in place: appends go to it from now on.
        self.file = None;
        fsio::sync_dir(fsio::parent(&self.path))
            .map_err(|e| StoreError::write("symbols", &self.path, e))?;
        let file = fsio::open_append(&self.path)
            .map_err(|e| StoreError::write("symbols", &self.path, e))?;
        self.file = Some(file);
        self.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> (SymbolsLog, Symbols) {
        SymbolsLog::open(&dir.join("symbols.log"), &dir.join("quarantine")).unwrap()
    }

    fn persist(log: &mut SymbolsLog, s: &mut Symbols) {
        let p = s.pending(log.needs_rewrite()).unwrap();
        log.write(&p).unwrap();
        s.persisted(&p);
    }

    #[test]
    fn survives_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("symbols.log");
        let (mut log, mut s) = open(dir.path());
        let a = s.intern_string("main");
        let b = s.intern_string("work");
        let st = s.intern_stack(&[a, b]);
        let labels = vec![("service_name".to_string(), "x".to_string())];
        let se = s.intern_series(&labels);
        s.record_batch("batch-1", 1000);
        persist(&mut log, &mut s);
        assert!(s.pending(false).is_none(), "nothing new");
        s.intern_string("not persisted");
        drop((log, s));
        // A torn append after the last good record.
        let mut f = fsio::open_append(&path).unwrap();
        fsio::write_all(&mut f, &path, &[9, 0, 0, 0, 1, 2]).unwrap();
        let (mut log, mut s) = open(dir.path());
        assert!(
            log.needs_rewrite(),
            "a torn tail is rewritten, not appended to"
        );
        assert_eq!(s.strings, vec!["main", "work"]);
        assert_eq!(s.intern_stack(&[a, b]), st);
        assert_eq!(s.intern_series(&labels), se);
        assert!(s.batch_applied("batch-1"));
        // New ids continue after the persisted ones and persist again.
        assert_eq!(s.intern_string("next"), 2);
        persist(&mut log, &mut s);
        assert!(!log.needs_rewrite());
        s.intern_string("after");
        persist(&mut log, &mut s);
        drop((log, s));
        let (_, s) = open(dir.path());
        assert_eq!(s.strings, vec!["main", "work", "next", "after"]);
        assert!(s.batch_applied("batch-1"));
        let q = dir.path().join("quarantine");
        assert_eq!(
            std::fs::read_dir(q).unwrap().count(),
            1,
            "the tail kept aside"
        );
    }

    #[test]
    fn pruned_series_keep_their_ids_out_of_a_rewritten_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut s) = open(dir.path());
        let l = |v: &str| vec![("service_name".to_string(), v.to_string())];
        for (i, v) in ["a", "b", "c"].iter().enumerate() {
            let id = s.intern_series(&l(v));
            s.note_time(id, 1000 * i as i64);
        }
        persist(&mut log, &mut s);
        assert_eq!(s.prune_series(1500), 2);
        assert_eq!(s.live_series(), 1);
        assert!(!s.has_series(&l("a")));
        let p = s.pending(true).unwrap();
        log.write(&p).unwrap();
        s.persisted(&p);
        // A series new since: its id follows the pruned ones.
        assert_eq!(s.intern_series(&l("d")), 3);
        persist(&mut log, &mut s);
        drop((log, s));
        let (_, s) = open(dir.path());
        let live: Vec<(u32, String)> = s
            .all_series()
            .map(|(id, x)| (id, x.labels[0].1.clone()))
            .collect();
        assert_eq!(live, vec![(2, "c".into()), (3, "d".into())]);
        assert_eq!(s.series_ids_end(), 4);
    }

    #[test]
    fn a_lost_record_leaves_a_hole_not_a_shift() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("symbols.log");
        let (mut log, mut s) = open(dir.path());
        let mut ends = Vec::new();
        for name in ["a", "b", "c"] {
            s.intern_string(name);
            persist(&mut log, &mut s);
            ends.push(std::fs::metadata(&path).unwrap().len() as usize);
        }
        drop((log, s));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[ends[1] - 1] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, s) = open(dir.path());
        assert_eq!(s.strings, vec!["a", LOST_NAME, "c"]);
    }

    #[test]
    fn a_stack_whose_names_were_lost_names_them_as_lost_and_new_names_do_not_take_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("symbols.log");
        let (mut log, mut s) = open(dir.path());
        s.intern_string("main");
        persist(&mut log, &mut s);
        let first = std::fs::metadata(&path).unwrap().len() as usize;
        let (a, b) = (s.intern_string("lost_a"), s.intern_string("lost_b"));
        persist(&mut log, &mut s);
        let second = std::fs::metadata(&path).unwrap().len() as usize;
        let stack = s.intern_stack(&[0, a, b]);
        persist(&mut log, &mut s);
        drop((log, s));
        // The record of the two names is damaged; the stack's survives.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second - 1] ^= 0xff;
        assert!(second > first);
        std::fs::write(&path, &bytes).unwrap();
        let (mut log, mut s) = open(dir.path());
        assert_eq!(s.strings, vec!["main", LOST_NAME, LOST_NAME]);
        assert_eq!(&*s.stacks[stack as usize], &[0, a, b]);
        assert_eq!(s.intern_string("new"), 3, "a new name after the lost ones");
        persist(&mut log, &mut s);
        drop((log, s));
        let (_, s) = open(dir.path());
        assert_eq!(s.strings[3], "new");
    }

    #[test]
    fn bases_whose_holes_sum_past_the_largest_number_are_not_believed() {
        let mut rec = vec![KIND_BASE];
        put_varint(&mut rec, 1 << 63);
        put_varint(&mut rec, 1 << 63);
        put_varint(&mut rec, 0);
        rec.extend([KIND_STRING, 1, b'x']);
        let (s, loaded) = Symbols::load(&[&rec], 1000);
        assert!(s.strings.is_empty());
        assert_eq!(loaded.undecodable, 1);
    }

    #[test]
    fn a_stack_naming_ids_no_file_could_hold_is_lost() {
        let mut s = Symbols::default();
        s.strings.push("main".into());
        s.stacks.push(vec![0].into());
        s.stacks.push(vec![0, u32::MAX - 1].into());
        s.stack_ids.insert(vec![0, u32::MAX - 1].into(), 1);
        let mut loaded = Loaded::default();
        s.fill_lost_names(1000, &mut loaded);
        assert_eq!(s.strings.len(), 1, "no names made up for it");
        assert!(s.stacks[1].is_empty());
        assert_eq!(&*s.stacks[0], &[0]);
        assert!(s.stack_ids.values().all(|&id| id != 1));
        assert_eq!(loaded.lost, 1);
    }

    #[test]
    fn a_log_mostly_of_pruned_series_is_rewritten_smaller() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("symbols.log");
        let (mut log, mut s) = open(dir.path());
        let l = |i: usize| vec![("pid".to_string(), i.to_string())];
        for i in 0..120_000 {
            let id = s.intern_series(&l(i));
            s.note_time(id, i as i64);
        }
        persist(&mut log, &mut s);
        let before = std::fs::metadata(&path).unwrap().len();
        assert_eq!(s.prune_series(119_990), 119_990);
        s.intern_series(&l(1_000_000));
        let p = s.pending(false).unwrap();
        assert!(p.rewrite, "most of the log is dead");
        log.write(&p).unwrap();
        s.persisted(&p);
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after * 100 < before, "{before} -> {after} bytes");
        s.intern_series(&l(2_000_000));
        assert!(!s.pending(false).unwrap().rewrite);
        persist(&mut log, &mut s);
        drop((log, s));
        let (_, s) = open(dir.path());
        assert_eq!(s.live_series(), 12);
        assert_eq!(s.series_ids_end(), 120_002);
    }
}
