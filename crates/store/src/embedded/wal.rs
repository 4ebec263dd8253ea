//! The write-ahead log: every batch is appended and synced here before it
//! is acknowledged. Segments are rotated when the in-memory head is
//! flushed to a block, and deleted once that block is durable.
//!
//! An append that fails is cut back off its segment, so the segment ends
//! as before it; if even that fails, the segment is abandoned (its torn
//! end stays its very end) and the next append starts a new one. A
//! segment is only ever appended to by the process that created it, so
//! recovery never has to write to one.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::codec::{frame, scan};
use crate::fsio;
use crate::StoreError;

/// WAL records with the number of the segment they are in.
pub type Records = Vec<(u64, Vec<u8>)>;

struct Segment {
    file: File,
    path: PathBuf,
    /// Bytes of whole records: where the next one goes.
    len: u64,
}

pub struct Wal {
    dir: PathBuf,
    /// The segment appends go to, created by the first of them.
    seq: u64,
    current: Option<Segment>,
    scratch: Vec<u8>,
}

/// The largest segment number a store opens with.
const MAX_SEGMENT: u64 = u64::MAX / 2;

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
    /// its segment number. Recovery changes no segment: a torn write at
    /// a segment's end (never acknowledged) is left out, and damage with
    /// intact records after it is skipped, those records kept, and the
    /// segment kept in `quarantine` as well. New segments are numbered
    /// from `covered` at least: the segments blocks already hold are
    /// skipped at replay, and may all have been deleted.
    pub fn open(dir: &Path, quarantine: &Path, covered: u64) -> Result<(Wal, Records), StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io("creating the WAL directory", e))?;
        let mut records = Vec::new();
        let seqs = segments(dir)?;
        for &seq in &seqs {
            let path = segment_path(dir, seq);
            let bytes = std::fs::read(&path)
                .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
            let found = scan(&bytes);
            if !found.damaged.is_empty() {
                let kept = super::quarantine_file(quarantine, &path);
                tracing::warn!(
                    file = %path.display(),
                    "{}: {} damaged byte range(s) ({} bytes) skipped, the {} \
                     records around them kept; {kept}",
                    path.display(),
                    found.damaged.len(),
                    found.damaged.iter().map(|r| r.len()).sum::<usize>(),
                    found.records.len(),
                );
            }
            if found.end < bytes.len() {
                tracing::warn!(
                    file = %path.display(),
                    "{}: a torn write of {} bytes at its end (never \
                     acknowledged) is left out",
                    path.display(),
                    bytes.len() - found.end
                );
            }
            records.extend(found.records.into_iter().map(|(_, r)| (seq, r.to_vec())));
        }
        // Numbers come from file names and block headers: one near the
        // largest number (none a store reaches) would leave no number for
        // the segments to come.
        let seq = seqs.last().map_or(0, |s| s.saturating_add(1)).max(covered);
        if seq > MAX_SEGMENT {
            return Err(StoreError::Invalid(format!(
                "{}: WAL segment number {seq} (from a segment's name or a block's header) \
                 leaves no number for the next segments; the data directory is damaged",
                dir.display()
            )));
        }
        let wal = Wal {
            dir: dir.to_path_buf(),
            seq,
            current: None,
            scratch: Vec::new(),
        };
        Ok((wal, records))
    }

    fn segment(&mut self) -> Result<&mut Segment, StoreError> {
        if self.current.is_none() {
            let path = segment_path(&self.dir, self.seq);
            let write = |e| StoreError::write("a WAL segment", &path, e);
            let file = fsio::open_append(&path).map_err(write)?;
            let len = file.metadata().map_err(write)?.len();
            // The segment's name must be durable before anything in it is
            // acknowledged.
            fsio::sync_dir(&self.dir).map_err(write)?;
            self.current = Some(Segment { file, path, len });
        }
        self.current
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("no WAL segment".into()))
    }

    /// Appends a record and waits until it is on disk. On failure nothing
    /// of it is left where a later record could follow it.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        let mut framed = std::mem::take(&mut self.scratch);
        framed.clear();
        frame(&mut framed, payload);
        let result = self.write(&framed);
        self.scratch = framed;
        result
    }

    fn write(&mut self, framed: &[u8]) -> Result<(), StoreError> {
        let seg = self.segment()?;
        let result = fsio::write_all(&mut seg.file, &seg.path, framed)
            .and_then(|()| fsio::sync_data(&seg.file, &seg.path));
        match result {
            Ok(()) => {
                seg.len += framed.len() as u64;
                Ok(())
            }
            Err(e) => {
                let err = StoreError::write("a WAL record", &seg.path, e);
                if let Err(cut) = fsio::set_len(&seg.file, &seg.path, seg.len) {
                    tracing::error!(
                        file = %seg.path.display(),
                        "cannot cut a failed write off {} ({cut}); the next \
                         record goes to a new segment",
                        seg.path.display()
                    );
                    self.current = None;
                    self.seq += 1;
                }
                Err(err)
            }
        }
    }

    /// Starts a new segment; returns its number. Records in earlier
    /// segments are exactly those appended before this call.
    pub fn rotate(&mut self) -> u64 {
        self.seq += 1;
        self.current = None;
        self.seq
    }

    /// Deletes the segments before `seq` (their data is in durable blocks).
    pub fn remove_before(&self, seq: u64) -> Result<(), StoreError> {
        for s in segments(&self.dir)? {
            if s < seq {
                std::fs::remove_file(segment_path(&self.dir, s))
                    .map_err(|e| StoreError::io("removing a WAL segment", e))?;
            }
        }
        fsio::sync_dir(&self.dir).map_err(|e| StoreError::io("syncing the WAL directory", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_numbers_near_the_largest_number_are_refused_not_overflowed() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("quarantine");
        let err = Wal::open(dir.path(), &q, u64::MAX).err().unwrap();
        assert!(err.to_string().contains("leaves no number"), "{err}");
        std::fs::write(segment_path(dir.path(), u64::MAX), b"").unwrap();
        assert!(Wal::open(dir.path(), &q, 0).is_err());
        std::fs::remove_file(segment_path(dir.path(), u64::MAX)).unwrap();
        let (mut wal, _) = Wal::open(dir.path(), &q, MAX_SEGMENT).unwrap();
        assert_eq!(wal.rotate(), MAX_SEGMENT + 1);
    }

    #[test]
    fn replays_in_order_and_leaves_torn_tails_out() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("quarantine");
        let (mut wal, recs) = Wal::open(dir.path(), &q, 0).unwrap();
        assert!(recs.is_empty());
        wal.append(b"a").unwrap();
        let next = wal.rotate();
        wal.append(b"b").unwrap();
        drop(wal);
        // A torn write at the end of the last segment.
        let last = segment_path(dir.path(), next);
        let mut f = fsio::open_append(&last).unwrap();
        fsio::write_all(&mut f, &last, &[5, 0, 0, 0, 1]).unwrap();
        drop(f);
        let (mut wal, recs) = Wal::open(dir.path(), &q, 0).unwrap();
        assert_eq!(recs, vec![(0, b"a".to_vec()), (next, b"b".to_vec())]);
        wal.remove_before(next).unwrap();
        wal.append(b"c").unwrap();
        drop(wal);
        let (_, recs) = Wal::open(dir.path(), &q, 0).unwrap();
        assert_eq!(
            recs,
            vec![(next, b"b".to_vec()), (next + 1, b"c".to_vec())],
            "a new segment after a reopen"
        );
    }
}
