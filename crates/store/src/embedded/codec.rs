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

/// Frames a record as `len u32 | crc32 u32 | payload`, so a torn write at
/// the end of a log is detected and cut off at recovery.
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Splits a log into its complete, intact records; returns them and the
/// length of the valid prefix (anything after it is a torn write).
pub fn unframe(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos + 8 <= buf.len() {
        let len = u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        let crc = u32::from_le_bytes([buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]]);
        let Some(payload) = buf.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push(payload);
        pos += 8 + len;
    }
    (records, pos)
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

    #[test]
    fn torn_records_are_cut() {
        let mut log = Vec::new();
        frame(&mut log, b"one");
        frame(&mut log, b"two");
        let good = log.len();
        frame(&mut log, b"three");
        log.truncate(log.len() - 2);
        let (records, valid) = unframe(&log);
        assert_eq!(records, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(valid, good);
        // A flipped bit stops the log there too.
        let mut bad = log.clone();
        bad[9] ^= 1;
        assert_eq!(unframe(&bad).0.len(), 0);
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
