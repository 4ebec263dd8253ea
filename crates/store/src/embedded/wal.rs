//! The write-ahead log: every batch is appended and synced here before it
//! is acknowledged. Segments are rotated when the in-memory head is
//! flushed to a block, and deleted once that block is durable.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::block::sync_dir;
use super::codec::{frame, unframe};
use crate::StoreError;

/// WAL records with the number of the segment they are in.
pub type Records = Vec<(u64, Vec<u8>)>;

pub struct Wal {
    dir: PathBuf,
    current: File,
    seq: u64,
    scratch: Vec<u8>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:012}.wal"))
}

fn segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut seqs: Vec<u64> = std::fs::read_dir(dir)
        .map_err(|e| StoreError::io("listing the WAL", e))?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

impl Wal {
    /// Opens the log in `dir`, returning every intact record in order with
    /// its segment number. A torn record at the end of a segment (a crash
    /// mid-write) is cut off: it was never acknowledged.
    pub fn open(dir: &Path) -> Result<(Wal, Records), StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io("creating the WAL directory", e))?;
        let mut records = Vec::new();
        let seqs = segments(dir)?;
        for &seq in &seqs {
            let path = segment_path(dir, seq);
            let bytes = std::fs::read(&path).map_err(|e| StoreError::io("reading the WAL", e))?;
            let (recs, valid) = unframe(&bytes);
            records.extend(recs.into_iter().map(|r| (seq, r.to_vec())));
            if valid < bytes.len() {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(valid as u64))
                    .map_err(|e| StoreError::io("cutting a torn WAL record", e))?;
            }
        }
        let seq = seqs.last().map_or(0, |s| s + 1);
        let current = Self::create_segment(dir, seq)?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                current,
                seq,
                scratch: Vec::new(),
            },
            records,
        ))
    }

    fn create_segment(dir: &Path, seq: u64) -> Result<File, StoreError> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, seq))
            .map_err(|e| StoreError::io("creating a WAL segment", e))?;
        sync_dir(dir)?;
        Ok(f)
    }

    /// Appends a record and waits until it is on disk.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        self.scratch.clear();
        frame(&mut self.scratch, payload);
        self.current
            .write_all(&self.scratch)
            .and_then(|_| self.current.sync_data())
            .map_err(|e| StoreError::io("writing the WAL", e))
    }

    /// Starts a new segment; returns its number. Records in earlier
    /// segments are exactly those appended before this call.
    pub fn rotate(&mut self) -> Result<u64, StoreError> {
        let next = self.seq + 1;
        self.current = Self::create_segment(&self.dir, next)?;
        self.seq = next;
        Ok(next)
    }

    /// Deletes the segments before `seq` (their data is in durable blocks).
    pub fn remove_before(&self, seq: u64) -> Result<(), StoreError> {
        for s in segments(&self.dir)? {
            if s < seq {
                std::fs::remove_file(segment_path(&self.dir, s))
                    .map_err(|e| StoreError::io("removing a WAL segment", e))?;
            }
        }
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_order_and_cuts_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, recs) = Wal::open(dir.path()).unwrap();
        assert!(recs.is_empty());
        wal.append(b"a").unwrap();
        let next = wal.rotate().unwrap();
        wal.append(b"b").unwrap();
        drop(wal);
        // A torn write at the end of the last segment.
        let last = segment_path(dir.path(), next);
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(&[5, 0, 0, 0, 1]).unwrap();
        drop(f);
        let (wal, recs) = Wal::open(dir.path()).unwrap();
        assert_eq!(recs, vec![(0, b"a".to_vec()), (next, b"b".to_vec())]);
        wal.remove_before(next).unwrap();
        drop(wal);
        let (_, recs) = Wal::open(dir.path()).unwrap();
        assert_eq!(recs, vec![(next, b"b".to_vec())]);
    }
}
