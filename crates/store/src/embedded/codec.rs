//! Byte-level encodings shared by the engine's files: varints, framed
//! records with checksums, and the write-ahead log's batch encoding.

use crate::types::{Batch, BatchProfile};

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads varints from a byte slice; every read is bounds-checked.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            if shift >= 64 {
                return None;
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
            shift += 7;
        }
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }

    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

// Log records (the WAL's and symbols.log's) are framed as
//   magic "PPr\xe7" | len u32 | crc32(payload) u32 | crc32(the 12 bytes before) u32 | payload
// The magic and the header's own checksum let recovery find the next
// record after damaged bytes without trusting a damaged length; the
// magic read as a length is over 3.8 GB, so it never starts a record of
// the earlier format (`len u32 | crc32 u32 | payload`), which is still
// read.

pub const RECORD_MAGIC: [u8; 4] = *b"PPr\xe7";
pub const RECORD_HEADER: usize = 16;

/// Frames a record (see above).
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out[start..start + 12]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The payload of an intact record starting at `pos`.
fn record_at(buf: &[u8], pos: usize) -> Option<&[u8]> {
    let header = buf.get(pos..pos.checked_add(RECORD_HEADER)?)?;
    if header[..4] != RECORD_MAGIC || crc32fast::hash(&header[..12]) != le32(header, 12)? {
        return None;
    }
    let len = le32(header, 4)? as usize;
    let start = pos + RECORD_HEADER;
    let payload = buf.get(start..start.checked_add(len)?)?;
    (crc32fast::hash(payload) == le32(header, 8)?).then_some(payload)
}

/// What a log file holds.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    /// Intact records and where each starts, in order.
    pub records: Vec<(usize, &'a [u8])>,
    /// Damaged bytes with intact records after them.
    pub damaged: Vec<std::ops::Range<usize>>,
    /// Where the last intact record ends; bytes after it are a torn tail
    /// (a write that never completed).
    pub end: usize,
    /// The file is in the earlier record format.
    pub legacy: bool,
}

/// Reads a log: every intact record, wherever it is. Damage is skipped
/// up to the next intact record, so nothing after it is lost.
pub fn scan(buf: &[u8]) -> Scan<'_> {
    let mut out = Scan::default();
    let mut pos = 0;
    while pos < buf.len() {
        if let Some(payload) = record_at(buf, pos) {
            out.records.push((pos, payload));
            pos += RECORD_HEADER + payload.len();
            out.end = pos;
            continue;
        }
        let next = memchr::memmem::find_iter(&buf[pos + 1..], &RECORD_MAGIC)
            .map(|i| pos + 1 + i)
            .find(|&q| record_at(buf, q).is_some());
        match next {
            Some(q) => {
                out.damaged.push(pos..q);
                pos = q;
            }
            None => break,
        }
    }
    if out.records.is_empty() {
        let legacy = scan_legacy(buf);
        if !legacy.records.is_empty() {
            return legacy;
        }
    }
    out
}

/// A record of the earlier format at `pos`. Every payload either log
/// wrote starts with a byte from 1 to 5 (the WAL's version, a kind of
/// symbols entry), which rules out most positions cheaply.
fn legacy_record_at(buf: &[u8], pos: usize) -> Option<&[u8]> {
    let len = le32(buf, pos)? as usize;
    let crc = le32(buf, pos + 4)?;
    let start = pos + 8;
    let payload = buf.get(start..start.checked_add(len)?)?;
    let first = *payload.first()?;
    ((1..=5).contains(&first) && crc32fast::hash(payload) == crc).then_some(payload)
}

/// The earlier format has no marker to find a record by after damage. The
/// damage it meets in practice is a torn record (a failed append) with
/// whole ones after it; a torn record's header, when whole, says how far
/// it could reach, and the next record starts within that.
fn scan_legacy(buf: &[u8]) -> Scan<'_> {
    let mut out = Scan {
        legacy: true,
        ..Scan::default()
    };
    let mut pos = 0;
    while pos < buf.len() {
        if let Some(payload) = legacy_record_at(buf, pos) {
            out.records.push((pos, payload));
            pos += 8 + payload.len();
            out.end = pos;
            continue;
        }
        let reach = le32(buf, pos)
            .and_then(|len| (pos + 8).checked_add(len as usize))
            .map_or(buf.len(), |end| end.min(buf.len()));
        match (pos + 1..reach).find(|&q| legacy_record_at(buf, q).is_some()) {
            Some(q) => {
                out.damaged.push(pos..q);
                pos = q;
            }
            None => break,
        }
    }
    out
}

// The write-ahead log stores batches in a compact varint encoding written
// straight from the borrowed batch (no intermediate copies):
//   version 1 | id flag [len bytes] | strings | stacks | profiles
// where every count and length is a varint and signed values are zigzag.

const WAL_VERSION: u8 = 1;

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + batch.strings.iter().map(|s| s.len() + 2).sum::<usize>() + batch.sample_count() * 4,
    );
    out.push(WAL_VERSION);
    match &batch.id {
        Some(id) => {
            out.push(1);
            put_str(&mut out, id);
        }
        None => out.push(0),
    }
    put_varint(&mut out, batch.strings.len() as u64);
    for s in &batch.strings {
        put_str(&mut out, s);
    }
    put_varint(&mut out, batch.stacks.len() as u64);
    for st in &batch.stacks {
        put_varint(&mut out, st.len() as u64);
        for &f in st {
            put_varint(&mut out, f as u64);
        }
    }
    put_varint(&mut out, batch.profiles.len() as u64);
    for p in &batch.profiles {
        put_varint(&mut out, p.labels.len() as u64);
        for (k, v) in &p.labels {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        put_varint(&mut out, zigzag(p.time_ms));
        put_varint(&mut out, p.samples.len() as u64);
        for &(stack, value) in &p.samples {
            put_varint(&mut out, stack as u64);
            put_varint(&mut out, zigzag(value));
        }
    }
    out
}

pub fn decode_batch(bytes: &[u8]) -> Option<Batch> {
    let mut r = Reader::new(bytes);
    if r.bytes(1)? != [WAL_VERSION] {
        return None;
    }
    let string = |r: &mut Reader| -> Option<String> {
        let n = r.varint()? as usize;
        String::from_utf8(r.bytes(n)?.to_vec()).ok()
    };
    // Counts are bounded by the bytes left, so a corrupt count cannot
    // make us reserve absurd amounts of memory.
    let count = |r: &mut Reader| -> Option<usize> {
        let n = r.varint()? as usize;
        (n <= r.buf.len() - r.pos).then_some(n)
    };
    let id = match r.bytes(1)?[0] {
        0 => None,
        1 => Some(string(&mut r)?),
        _ => return None,
    };
    let n = count(&mut r)?;
    let strings = (0..n).map(|_| string(&mut r)).collect::<Option<Vec<_>>>()?;
    let n = count(&mut r)?;
    let mut stacks = Vec::with_capacity(n);
    for _ in 0..n {
        let m = count(&mut r)?;
        stacks.push(
            (0..m)
                .map(|_| u32::try_from(r.varint()?).ok())
                .collect::<Option<Vec<_>>>()?,
        );
    }
    let n = count(&mut r)?;
    let mut profiles = Vec::with_capacity(n);
    for _ in 0..n {
        let m = count(&mut r)?;
        let labels = (0..m)
            .map(|_| Some((string(&mut r)?, string(&mut r)?)))
            .collect::<Option<Vec<_>>>()?;
        let time_ms = unzigzag(r.varint()?);
        let m = count(&mut r)?;
        let samples = (0..m)
            .map(|_| Some((u32::try_from(r.varint()?).ok()?, unzigzag(r.varint()?))))
            .collect::<Option<Vec<_>>>()?;
        profiles.push(BatchProfile {
            labels,
            time_ms,
            samples,
        });
    }
    r.done().then_some(Batch {
        id,
        strings,
        stacks,
        profiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag() {
        let mut out = Vec::new();
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, v);
        }
        let mut r = Reader::new(&out);
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.varint(), Some(v));
        }
        assert_eq!(r.varint(), None);
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    fn payloads<'a>(scan: &Scan<'a>) -> Vec<&'a [u8]> {
        scan.records.iter().map(|r| r.1).collect()
    }

    #[test]
    fn torn_tails_and_damage_in_the_middle() {
        let mut log = Vec::new();
        frame(&mut log, b"one");
        frame(&mut log, b"two");
        let good = log.len();
        frame(&mut log, b"three");
        log.truncate(log.len() - 2);
        let s = scan(&log);
        assert_eq!(payloads(&s), vec![&b"one"[..], &b"two"[..]]);
        assert_eq!((s.end, s.damaged.len(), s.legacy), (good, 0, false));
        // A flipped bit in a payload, then in a length: the records after
        // it are found all the same.
        for at in [RECORD_HEADER + 1, 5] {
            let mut bad = log.clone();
            bad[at] ^= 1;
            let s = scan(&bad);
            assert_eq!(payloads(&s), vec![&b"two"[..]], "flipped {at}");
            assert_eq!(s.damaged, vec![0..RECORD_HEADER + 3]);
            assert_eq!(s.end, good);
        }
        // Half a record, then whole ones.
        let mut torn = log[..RECORD_HEADER + 1].to_vec();
        torn.extend_from_slice(&log[..good]);
        let s = scan(&torn);
        assert_eq!(payloads(&s), vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(s.damaged, vec![0..RECORD_HEADER + 1]);
        // Nothing intact at all.
        let s = scan(b"\xff\xff\xff");
        assert!(s.records.is_empty() && s.end == 0);
    }

    #[test]
    fn the_earlier_format_is_read() {
        let mut log = Vec::new();
        for p in [&b"\x01one"[..], b"\x02two"] {
            log.extend_from_slice(&(p.len() as u32).to_le_bytes());
            log.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
            log.extend_from_slice(p);
        }
        log.extend_from_slice(&[9, 0, 0]);
        let s = scan(&log);
        assert!(s.legacy);
        assert_eq!(payloads(&s), vec![&b"\x01one"[..], &b"\x02two"[..]]);
        assert_eq!(s.end, log.len() - 3);
        // What an append after a torn write left: half a record, then a
        // whole one.
        let whole = log[..log.len() - 3].to_vec();
        let mut torn = whole[..9].to_vec();
        torn.extend_from_slice(&whole);
        let s = scan(&torn);
        assert_eq!(payloads(&s), vec![&b"\x01one"[..], &b"\x02two"[..]]);
        assert_eq!(s.damaged, vec![0..9]);
    }

    #[test]
    fn batches_round_trip() {
        let b = Batch {
            id: Some("b1".into()),
            strings: vec!["main".into(), "work".into()],
            stacks: vec![vec![0, 1], vec![0]],
            profiles: vec![BatchProfile {
                labels: vec![("service_name".into(), "x".into())],
                time_ms: 42,
                samples: vec![(0, 5), (1, -2)],
            }],
        };
        assert_eq!(decode_batch(&encode_batch(&b)), Some(b));
        assert_eq!(decode_batch(b"\xff\xff"), None);
    }
}
