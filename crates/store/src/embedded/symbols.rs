//! The dictionaries every block refers to: function names, stacks (as
//! function ids, root first) and series (label sets), each interned once,
//! plus the ids of batches already applied. Kept in memory; new entries are
//! appended to `symbols.log` before any block that uses them is written.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::codec::{frame, put_varint, unframe, Reader};
use crate::types::{Labels, PROFILE_TYPE_LABEL};
use crate::StoreError;

const KIND_STRING: u8 = 1;
const KIND_STACK: u8 = 2;
const KIND_SERIES: u8 = 3;
const KIND_BATCH_ID: u8 = 4;

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

#[derive(Default)]
pub struct Symbols {
    pub strings: Vec<String>,
    string_ids: FxHashMap<String, u32>,
    pub stacks: Vec<Box<[u32]>>,
    stack_ids: FxHashMap<Box<[u32]>, u32>,
    pub series: Vec<SeriesInfo>,
    series_ids: FxHashMap<Labels, u32>,
    /// Applied batch ids and when they were applied (ms).
    batch_ids: HashMap<String, i64>,
    new_batch_ids: Vec<(String, i64)>,
    persisted: (usize, usize, usize),
    log: Option<File>,
}

impl Symbols {
    /// Loads `symbols.log` (cutting off a torn last record) and keeps it
    /// open for appending.
    pub fn open(path: &Path) -> Result<Symbols, StoreError> {
        let mut s = Symbols::default();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io("reading symbols.log", e)),
        };
        let (records, valid) = unframe(&bytes);
        for rec in records {
            s.load_record(rec).ok_or_else(|| {
                StoreError::Corrupt("symbols.log has an unreadable record".into())
            })?;
        }
        s.persisted = (s.strings.len(), s.stacks.len(), s.series.len());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StoreError::io("opening symbols.log", e))?;
        if (valid as u64) < file.metadata().map(|m| m.len()).unwrap_or(0) {
            file.set_len(valid as u64)
                .map_err(|e| StoreError::io("truncating a torn symbols.log", e))?;
        }
        s.log = Some(file);
        Ok(s)
    }

    fn load_record(&mut self, rec: &[u8]) -> Option<()> {
        let mut r = Reader::new(rec);
        while !r.done() {
            let kind = *r.bytes(1)?.first()?;
            match kind {
                KIND_STRING => {
                    let n = r.varint()? as usize;
                    let s = std::str::from_utf8(r.bytes(n)?).ok()?.to_string();
                    self.intern_string(&s);
                }
                KIND_STACK => {
                    let n = r.varint()? as usize;
                    let mut frames = Vec::with_capacity(n.min(4096));
                    for _ in 0..n {
                        frames.push(u32::try_from(r.varint()?).ok()?);
                    }
                    self.intern_stack(&frames);
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
                    self.intern_series(&labels);
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

    /// Interns a sorted label set.
    pub fn intern_series(&mut self, labels: &Labels) -> u32 {
        if let Some(&id) = self.series_ids.get(labels) {
            return id;
        }
        let id = self.series.len() as u32;
        let profile_type = labels
            .iter()
            .find(|(k, _)| k == PROFILE_TYPE_LABEL)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        self.series.push(SeriesInfo {
            labels: labels.clone(),
            profile_type,
            min_t: i64::MAX,
            max_t: i64::MIN,
        });
        self.series_ids.insert(labels.clone(), id);
        id
    }

    pub fn note_time(&mut self, series: u32, t: i64) {
        if let Some(s) = self.series.get_mut(series as usize) {
            s.min_t = s.min_t.min(t);
            s.max_t = s.max_t.max(t);
        }
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

    /// Appends everything interned since the last call to the log and
    /// syncs it. Blocks may refer to these ids only after this returns.
    pub fn persist(&mut self) -> Result<(), StoreError> {
        let (ps, pk, pr) = self.persisted;
        if ps == self.strings.len()
            && pk == self.stacks.len()
            && pr == self.series.len()
            && self.new_batch_ids.is_empty()
        {
            return Ok(());
        }
        let mut payload = Vec::new();
        for s in &self.strings[ps..] {
            payload.push(KIND_STRING);
            put_varint(&mut payload, s.len() as u64);
            payload.extend_from_slice(s.as_bytes());
        }
        for st in &self.stacks[pk..] {
            payload.push(KIND_STACK);
            put_varint(&mut payload, st.len() as u64);
            for &f in st.iter() {
                put_varint(&mut payload, f as u64);
            }
        }
        for se in &self.series[pr..] {
            payload.push(KIND_SERIES);
            put_varint(&mut payload, se.labels.len() as u64);
            for (k, v) in &se.labels {
                put_varint(&mut payload, k.len() as u64);
                payload.extend_from_slice(k.as_bytes());
                put_varint(&mut payload, v.len() as u64);
                payload.extend_from_slice(v.as_bytes());
            }
        }
        for (id, t) in &self.new_batch_ids {
            payload.push(KIND_BATCH_ID);
            put_varint(&mut payload, super::codec::zigzag(*t));
            put_varint(&mut payload, id.len() as u64);
            payload.extend_from_slice(id.as_bytes());
        }
        let mut framed = Vec::with_capacity(payload.len() + 8);
        frame(&mut framed, &payload);
        let log = self
            .log
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("symbols.log is not open".into()))?;
        log.write_all(&framed)
            .and_then(|_| log.sync_data())
            .map_err(|e| StoreError::io("writing symbols.log", e))?;
        self.persisted = (self.strings.len(), self.stacks.len(), self.series.len());
        self.new_batch_ids.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("symbols.log");
        let mut s = Symbols::open(&path).unwrap();
        let a = s.intern_string("main");
        let b = s.intern_string("work");
        let st = s.intern_stack(&[a, b]);
        let labels = vec![("service_name".to_string(), "x".to_string())];
        let se = s.intern_series(&labels);
        s.record_batch("batch-1", 1000);
        s.persist().unwrap();
        s.intern_string("not persisted");
        drop(s);
        // A torn append after the last good record.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[9, 0, 0, 0, 1, 2])
            .unwrap();
        let mut s = Symbols::open(&path).unwrap();
        assert_eq!(s.strings, vec!["main", "work"]);
        assert_eq!(s.intern_stack(&[a, b]), st);
        assert_eq!(s.intern_series(&labels), se);
        assert!(s.batch_applied("batch-1"));
        // New ids continue after the persisted ones and persist again.
        assert_eq!(s.intern_string("next"), 2);
        s.persist().unwrap();
        drop(s);
        let s = Symbols::open(&path).unwrap();
        assert_eq!(s.strings.len(), 3);
    }
}
