//! Immutable blocks: the samples of a time span, one compressed chunk per
//! series, with a directory so a query decompresses only the series it
//! selects.
//!
//! ```text
//! header   "PPBLK001" | level u32 | resolution_ms u32 | min_t i64 | max_t i64
//!          | rows u64 | series u32 | directory offset u64 | block id u64
//!          | covers WAL before u64                                  (68 bytes)
//! chunks   zstd( stack deltas | time deltas | values ), per series
//! dir      per series: id u32 | min_t i64 | max_t i64 | offset u64 | len u32
//!          | rows u32 | raw_len u32 | crc32 u32                      (44 bytes)
//! job      siblings u32 | sibling ids u64... | replaces u32 | replaced ids u64...
//!          | crc32 of directory and job u32
//! ```
//!
//! A flush or compaction writes one or more blocks (siblings) and may
//! replace others. Each output names all of them, so recovery can tell a
//! finished job (all siblings present: drop what they replace) from an
//! interrupted one (drop the outputs, keep the inputs).
//!
//! Within a chunk rows are sorted by (stack, time). Stack ids are stored
//! as deltas from the previous row, times as deltas from the previous row
//! of the same stack (else from the block start), in resolution units, and
//! values zigzag-encoded: a row is typically three one-byte varints before
//! compression.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::codec::{put_varint, unzigzag, zigzag, Reader};
use crate::StoreError;

const MAGIC: &[u8; 8] = b"PPBLK001";
const HEADER: usize = 68;
const DIR_ENTRY: usize = 44;
const ZSTD_LEVEL: i32 = 3;

/// One sample row of one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub stack: u32,
    pub t: i64,
    pub value: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct DirEntry {
    pub series: u32,
    pub min_t: i64,
    pub max_t: i64,
    offset: u64,
    len: u32,
    pub rows: u32,
    raw_len: u32,
    crc: u32,
}

/// An open block.
pub struct Block {
    pub path: PathBuf,
    pub id: u64,
    /// WAL segments before this one are contained in blocks.
    pub covers_wal_before: u64,
    pub siblings: Vec<u64>,
    pub replaces: Vec<u64>,
    pub level: u32,
    pub resolution_ms: i64,
    pub min_t: i64,
    pub max_t: i64,
    pub rows: u64,
    /// Sorted by series id.
    pub dir: Vec<DirEntry>,
    data: memmap2::Mmap,
    /// Whether a query met a damaged chunk here already (said once).
    damage_reported: AtomicBool,
}

fn corrupt(path: &Path, what: &str) -> StoreError {
    StoreError::Corrupt(format!("{}: {what}", path.display()))
}

impl Block {
    pub fn open(path: &Path) -> Result<Block, StoreError> {
        let file = File::open(path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        // SAFETY: block files are written once, renamed into place and
        // never modified; they are only deleted, which keeps the mapping.
        let data = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| StoreError::io(format!("mapping {}", path.display()), e))?;
        let mut r = Reader::new(&data);
        if r.bytes(8) != Some(&MAGIC[..]) {
            return Err(corrupt(path, "not a perfpilot block"));
        }
        let header = (|| {
            Some((
                r.u32()?,
                r.u32()?,
                r.u64()?,
                r.u64()?,
                r.u64()?,
                r.u32()?,
                r.u64()?,
                r.u64()?,
                r.u64()?,
            ))
        })();
        let Some((level, res, min_t, max_t, rows, nseries, dir_off, id, covers)) = header else {
            return Err(corrupt(path, "truncated header"));
        };
        let dir_len = nseries as usize * DIR_ENTRY;
        let tail = usize::try_from(dir_off)
            .ok()
            .and_then(|o| data.get(o..))
            .filter(|t| t.len() >= dir_len + 12)
            .ok_or_else(|| corrupt(path, "truncated directory"))?;
        let (checked, crc) = tail.split_at(tail.len() - 4);
        if crc32fast::hash(checked).to_le_bytes() != crc {
            return Err(corrupt(path, "directory checksum mismatch"));
        }
        let (entries, job) = checked.split_at(dir_len);
        let mut jr = Reader::new(job);
        let ids = |r: &mut Reader| -> Option<Vec<u64>> {
            let n = r.u32()? as usize;
            (0..n).map(|_| r.u64()).collect()
        };
        let (Some(siblings), Some(replaces)) = (ids(&mut jr), ids(&mut jr)) else {
            return Err(corrupt(path, "truncated job record"));
        };
        let mut r = Reader::new(entries);
        let mut dir = Vec::with_capacity(nseries as usize);
        for _ in 0..nseries {
            let e = (|| {
                Some(DirEntry {
                    series: r.u32()?,
                    min_t: r.u64()? as i64,
                    max_t: r.u64()? as i64,
                    offset: r.u64()?,
                    len: r.u32()?,
                    rows: r.u32()?,
                    raw_len: r.u32()?,
                    crc: r.u32()?,
                })
            })()
            .ok_or_else(|| corrupt(path, "truncated directory entry"))?;
            dir.push(e);
        }
        Ok(Block {
            path: path.to_path_buf(),
            id,
            covers_wal_before: covers,
            siblings,
            replaces,
            level,
            resolution_ms: res.max(1) as i64,
            min_t: min_t as i64,
            max_t: max_t as i64,
            rows,
            dir,
            data,
            damage_reported: AtomicBool::new(false),
        })
    }

    /// Like [`Block::scan`] for a query: a damaged chunk (a checksum that
    /// fails, bytes that do not decompress or decode) loses that series'
    /// rows in this block, said on stderr once per block, instead of
    /// failing every query that reads it for as long as the block lives.
    /// Compaction keeps to `scan`, and fails, rather than drop the rows
    /// for good.
    pub fn scan_lossy(&self, e: &DirEntry, each: impl FnMut(u32, i64, i64)) {
        if let Err(err) = self.scan(e, each) {
            if !self.damage_reported.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    series = e.series,
                    "{err}; series {} of this block is left out of queries \
                     (its rows there are lost unless the WAL still holds them)",
                    e.series
                );
            }
        }
    }

    pub fn entry(&self, series: u32) -> Option<&DirEntry> {
        self.dir
            .binary_search_by_key(&series, |e| e.series)
            .ok()
            .map(|i| &self.dir[i])
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// Decodes one series' rows, calling `each(stack, t, value)`.
    pub fn scan(
        &self,
        e: &DirEntry,
        mut each: impl FnMut(u32, i64, i64),
    ) -> Result<(), StoreError> {
        let start = e.offset as usize;
        let bytes = self
            .data
            .get(start..start.saturating_add(e.len as usize))
            .ok_or_else(|| corrupt(&self.path, "chunk out of bounds"))?;
        if crc32fast::hash(bytes) != e.crc {
            return Err(corrupt(&self.path, "chunk checksum mismatch"));
        }
        // The decompressor allocates `raw_len` up front: a directory saying
        // more than the chunk's bytes or its rows can make is not trusted.
        if let Some(why) = raw_len_impossible(e) {
            return Err(corrupt(
                &self.path,
                &format!(
                    "the chunk at offset {} ({} bytes, {} rows) claims {} bytes decompressed, {why}",
                    e.offset, e.len, e.rows, e.raw_len
                ),
            ));
        }
        // A decompression context per thread: creating one costs 18 µs on
        // these machines (it probes the CPU), reusing one costs nothing.
        thread_local! {
            static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        let raw = DCTX
            .with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new()?);
                }
                match slot.as_mut() {
                    Some(d) => d.decompress(bytes, e.raw_len as usize),
                    None => Err(std::io::Error::other("no decompressor")),
                }
            })
            .map_err(|err| corrupt(&self.path, &format!("chunk does not decompress: {err}")))?;
        decode_chunk(
            &raw,
            e.rows as usize,
            self.min_t,
            self.resolution_ms,
            &mut each,
        )
        .ok_or_else(|| corrupt(&self.path, "chunk does not decode"))
    }
}

/// Why a chunk cannot decompress to `raw_len` bytes, if it cannot.
fn raw_len_impossible(e: &DirEntry) -> Option<&'static str> {
    let (raw, len, rows) = (u64::from(e.raw_len), u64::from(e.len), u64::from(e.rows));
    // A zstd block yields at most 128 KiB and takes at least 4 bytes (an
    // RLE block), so no frame expands more than 32768 times.
    if raw > len * 32_768 {
        return Some("more than its compressed bytes can hold");
    }
    // A row is three varints (stack delta up to 5 bytes, time delta and
    // value up to 10) after two varint lengths (up to 10 bytes each).
    if raw < 3 * rows + 2 || raw > 25 * rows + 20 {
        return Some("which does not fit its row count");
    }
    None
}

fn decode_chunk(
    raw: &[u8],
    rows: usize,
    base: i64,
    res: i64,
    each: &mut impl FnMut(u32, i64, i64),
) -> Option<()> {
    let mut r = Reader::new(raw);
    let stack_len = r.varint()? as usize;
    let time_len = r.varint()? as usize;
    let mut stacks = Reader::new(r.bytes(stack_len)?);
    let mut times = Reader::new(r.bytes(time_len)?);
    let mut values = Reader::new(r.bytes(raw.len() - r.pos)?);
    let mut stack = 0u32;
    let mut t = 0i64;
    for i in 0..rows {
        let ds = stacks.varint()?;
        let dt = times.varint()? as i64;
        if i == 0 || ds != 0 {
            stack = stack.checked_add(u32::try_from(ds).ok()?)?;
            t = base + dt * res;
        } else {
            t += dt * res;
        }
        each(stack, t, unzigzag(values.varint()?));
    }
    Some(())
}

/// Writes a block series by series.
pub struct BlockWriter {
    tmp: PathBuf,
    out: BufWriter<crate::fsio::FileWriter>,
    offset: u64,
    level: u32,
    res: i64,
    min_t: i64,
    max_t: i64,
    rows: u64,
    dir: Vec<DirEntry>,
    scratch: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
    /// Renamed in: the temporary file is gone.
    done: bool,
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // An unfinished block is never left behind, not even aside.
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl BlockWriter {
    /// `min_t` is the time all of the block's rows are at or after (times
    /// are stored relative to it, in units of `resolution_ms`).
    pub fn create(
        tmp: &Path,
        level: u32,
        resolution_ms: i64,
        min_t: i64,
    ) -> Result<BlockWriter, StoreError> {
        let file = crate::fsio::create(tmp).map_err(|e| StoreError::write("a block", tmp, e))?;
        let out = BufWriter::with_capacity(1 << 20, crate::fsio::FileWriter::new(file, tmp));
        let mut w = BlockWriter {
            tmp: tmp.to_path_buf(),
            out,
            offset: HEADER as u64,
            level,
            res: resolution_ms.max(1),
            min_t,
            max_t: i64::MIN,
            rows: 0,
            dir: Vec::new(),
            scratch: Vec::new(),
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)
                .map_err(|e| StoreError::io("creating a compressor", e))?,
            done: false,
        };
        w.out
            .write_all(&[0u8; HEADER])
            .map_err(|e| StoreError::write("a block", tmp, e))?;
        Ok(w)
    }

    /// Adds a series. Rows must be at or after the block's `min_t` and on
    /// its resolution; they are sorted here. Series must come in
    /// increasing id order.
    pub fn add_series(&mut self, series: u32, rows: &mut [Row]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort_unstable_by_key(|r| (r.stack, r.t));
        let mut stacks = Vec::with_capacity(rows.len());
        let mut times = Vec::with_capacity(rows.len() * 2);
        let mut values = Vec::with_capacity(rows.len() * 2);
        let (mut prev_stack, mut prev_t) = (0u32, self.min_t);
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (i, r) in rows.iter().enumerate() {
            debug_assert!(r.t >= self.min_t && (r.t - self.min_t) % self.res == 0);
            if i == 0 || r.stack != prev_stack {
                put_varint(
                    &mut stacks,
                    (r.stack - if i == 0 { 0 } else { prev_stack }) as u64,
                );
                put_varint(&mut times, ((r.t - self.min_t) / self.res) as u64);
            } else {
                put_varint(&mut stacks, 0);
                put_varint(&mut times, ((r.t - prev_t) / self.res) as u64);
            }
            put_varint(&mut values, zigzag(r.value));
            prev_stack = r.stack;
            prev_t = r.t;
            lo = lo.min(r.t);
            hi = hi.max(r.t);
        }
        self.scratch.clear();
        put_varint(&mut self.scratch, stacks.len() as u64);
        put_varint(&mut self.scratch, times.len() as u64);
        self.scratch.extend_from_slice(&stacks);
        self.scratch.extend_from_slice(&times);
        self.scratch.extend_from_slice(&values);
        let compressed = self
            .compressor
            .compress(&self.scratch)
            .map_err(|e| StoreError::io("compressing a chunk", e))?;
        self.out
            .write_all(&compressed)
            .map_err(|e| StoreError::write("a block", &self.tmp, e))?;
        self.dir.push(DirEntry {
            series,
            min_t: lo,
            max_t: hi,
            offset: self.offset,
            len: compressed.len() as u32,
            rows: rows.len() as u32,
            raw_len: self.scratch.len() as u32,
            crc: crc32fast::hash(&compressed),
        });
        self.offset += compressed.len() as u64;
        self.rows += rows.len() as u64;
        self.max_t = self.max_t.max(hi);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Writes the directory, job record and header, syncs, and renames the
    /// file to `dest` (syncing the directory too), so the block is either
    /// whole on disk or absent. On failure the temporary file is removed;
    /// `dest` may exist when only the directory sync failed.
    pub fn finish(mut self, dest: &Path, job: &Job) -> Result<(), StoreError> {
        let tmp = self.tmp.clone();
        let io = |e| StoreError::write("a block", &tmp, e);
        let mut entries = Vec::with_capacity(self.dir.len() * DIR_ENTRY);
        for e in &self.dir {
            entries.extend_from_slice(&e.series.to_le_bytes());
            entries.extend_from_slice(&(e.min_t as u64).to_le_bytes());
            entries.extend_from_slice(&(e.max_t as u64).to_le_bytes());
            entries.extend_from_slice(&e.offset.to_le_bytes());
            entries.extend_from_slice(&e.len.to_le_bytes());
            entries.extend_from_slice(&e.rows.to_le_bytes());
            entries.extend_from_slice(&e.raw_len.to_le_bytes());
            entries.extend_from_slice(&e.crc.to_le_bytes());
        }
        for ids in [&job.siblings, &job.replaces] {
            entries.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for id in ids.iter() {
                entries.extend_from_slice(&id.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&entries);
        self.out.write_all(&entries).map_err(io)?;
        self.out.write_all(&crc.to_le_bytes()).map_err(io)?;
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&self.level.to_le_bytes());
        header.extend_from_slice(&(self.res as u32).to_le_bytes());
        header.extend_from_slice(&(self.min_t as u64).to_le_bytes());
        header.extend_from_slice(&(self.max_t.max(self.min_t) as u64).to_le_bytes());
        header.extend_from_slice(&self.rows.to_le_bytes());
        header.extend_from_slice(&(self.dir.len() as u32).to_le_bytes());
        header.extend_from_slice(&self.offset.to_le_bytes());
        header.extend_from_slice(&job.id.to_le_bytes());
        header.extend_from_slice(&job.covers_wal_before.to_le_bytes());
        self.out.flush().map_err(io)?;
        let file = self.out.get_mut();
        file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        crate::fsio::sync_all(file.file(), &tmp).map_err(io)?;
        crate::fsio::rename(&tmp, dest).map_err(io)?;
        self.done = true;
        sync_dir(crate::fsio::parent(dest))
    }
}

/// What a block's job says about it (see the module comment).
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub id: u64,
    pub covers_wal_before: u64,
    /// All outputs of the job, this one included.
    pub siblings: Vec<u64>,
    pub replaces: Vec<u64>,
}

pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::fsio::sync_dir(dir).map_err(|e| StoreError::write("a directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("b.tmp");
        let dest = dir.path().join("b.blk");
        let mut w = BlockWriter::create(&tmp, 0, 10, 1000).unwrap();
        let mut a = vec![
            Row {
                stack: 7,
                t: 1020,
                value: 3,
            },
            Row {
                stack: 2,
                t: 1000,
                value: -1,
            },
            Row {
                stack: 7,
                t: 1000,
                value: 5,
            },
        ];
        let mut b = vec![Row {
            stack: 1,
            t: 5000,
            value: 9,
        }];
        w.add_series(3, &mut a).unwrap();
        w.add_series(8, &mut b).unwrap();
        let job = Job {
            id: 5,
            covers_wal_before: 3,
            siblings: vec![5, 6],
            replaces: vec![1, 2],
        };
        w.finish(&dest, &job).unwrap();
        let block = Block::open(&dest).unwrap();
        assert_eq!((block.min_t, block.max_t, block.rows), (1000, 5000, 4));
        assert_eq!((block.id, block.covers_wal_before), (5, 3));
        assert_eq!(
            (block.siblings.clone(), block.replaces.clone()),
            (vec![5, 6], vec![1, 2])
        );
        let mut got = Vec::new();
        block
            .scan(block.entry(3).unwrap(), |s, t, v| got.push((s, t, v)))
            .unwrap();
        assert_eq!(got, vec![(2, 1000, -1), (7, 1000, 5), (7, 1020, 3)]);
        assert!(block.entry(4).is_none());
        let e8 = *block.entry(8).unwrap();
        assert_eq!((e8.min_t, e8.max_t), (5000, 5000));

        let mut bytes = std::fs::read(&dest).unwrap();
        bytes[HEADER + 2] ^= 0xff;
        std::fs::write(&dest, &bytes).unwrap();
        let block = Block::open(&dest).unwrap();
        let err = block
            .scan(block.entry(3).unwrap(), |_, _, _| {})
            .unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        std::fs::write(&dest, b"PPBLK001short").unwrap();
        assert!(Block::open(&dest).is_err());
    }

    /// Writes a block at `dest` of one row of series 3, then overwrites
    /// `value` at `at` bytes into its first directory entry and makes the
    /// directory's checksum right again.
    fn rewrite_first_entry(dest: &Path, at: usize, value: &[u8]) {
        let tmp = dest.with_extension("tmp");
        let mut w = BlockWriter::create(&tmp, 0, 10, 1000).unwrap();
        let mut rows = vec![Row {
            stack: 1,
            t: 1000,
            value: 9,
        }];
        w.add_series(3, &mut rows).unwrap();
        w.finish(dest, &Job::default()).unwrap();
        let mut bytes = std::fs::read(dest).unwrap();
        let dir_off = u64::from_le_bytes(bytes[44..52].try_into().unwrap()) as usize;
        bytes[dir_off + at..dir_off + at + value.len()].copy_from_slice(value);
        let end = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[dir_off..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(dest, &bytes).unwrap();
    }

    /// A directory entry (checksum made right) whose chunk offset plus
    /// length passes the largest number: out of bounds, not an overflow.
    #[test]
    fn a_chunk_offset_near_the_largest_number_is_out_of_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b.blk");
        // The entry's chunk offset is 20 bytes in.
        rewrite_first_entry(&dest, 20, &(u64::MAX - 2).to_le_bytes());

        let block = Block::open(&dest).unwrap();
        let err = block
            .scan(block.entry(3).unwrap(), |_, _, _| {})
            .unwrap_err();
        assert!(err.to_string().contains("chunk out of bounds"), "{err}");
    }

    /// A directory entry (checksums made right) claiming a chunk
    /// decompresses to far more than its compressed bytes can hold.
    #[test]
    fn a_raw_length_the_chunk_cannot_hold_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b.blk");
        // The value of the fuzz finding: 1.7 GiB asked for up front, in
        // the entry's raw length, 36 bytes in.
        rewrite_first_entry(&dest, 36, &1_849_324_912u32.to_le_bytes());

        let block = Block::open(&dest).unwrap();
        let err = block
            .scan(block.entry(3).unwrap(), |_, _, _| {})
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&dest.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("offset {HEADER}")), "{msg}");
        assert!(msg.contains("1849324912"), "{msg}");
    }
}
