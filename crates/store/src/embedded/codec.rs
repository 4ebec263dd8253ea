//! Byte-level encodings shared by the engine's files: varints, framed
//! records with checksums, and the write-ahead log's batch encoding.

use prost::Message;

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

// The write-ahead log stores batches as protobuf (prost derives): compact,
// and tolerant of fields added later.

#[derive(Clone, PartialEq, Message)]
struct WalBatch {
    #[prost(string, optional, tag = "1")]
    id: Option<String>,
    #[prost(string, repeated, tag = "2")]
    strings: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    stacks: Vec<WalStack>,
    #[prost(message, repeated, tag = "4")]
    profiles: Vec<WalProfile>,
}

#[derive(Clone, PartialEq, Message)]
struct WalStack {
    #[prost(uint32, repeated, tag = "1")]
    functions: Vec<u32>,
}

#[derive(Clone, PartialEq, Message)]
struct WalProfile {
    #[prost(string, repeated, tag = "1")]
    label_names: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    label_values: Vec<String>,
    #[prost(int64, tag = "3")]
    time_ms: i64,
    #[prost(uint32, repeated, tag = "4")]
    stacks: Vec<u32>,
    #[prost(int64, repeated, tag = "5")]
    values: Vec<i64>,
}

pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    let msg = WalBatch {
        id: batch.id.clone(),
        strings: batch.strings.clone(),
        stacks: batch
            .stacks
            .iter()
            .map(|s| WalStack {
                functions: s.clone(),
            })
            .collect(),
        profiles: batch
            .profiles
            .iter()
            .map(|p| WalProfile {
                label_names: p.labels.iter().map(|(k, _)| k.clone()).collect(),
                label_values: p.labels.iter().map(|(_, v)| v.clone()).collect(),
                time_ms: p.time_ms,
                stacks: p.samples.iter().map(|s| s.0).collect(),
                values: p.samples.iter().map(|s| s.1).collect(),
            })
            .collect(),
    };
    msg.encode_to_vec()
}

pub fn decode_batch(bytes: &[u8]) -> Option<Batch> {
    let msg = WalBatch::decode(bytes).ok()?;
    let profiles = msg
        .profiles
        .into_iter()
        .map(|p| {
            if p.label_names.len() != p.label_values.len() || p.stacks.len() != p.values.len() {
                return None;
            }
            Some(BatchProfile {
                labels: p.label_names.into_iter().zip(p.label_values).collect(),
                time_ms: p.time_ms,
                samples: p.stacks.into_iter().zip(p.values).collect(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Batch {
        id: msg.id,
        strings: msg.strings,
        stacks: msg.stacks.into_iter().map(|s| s.functions).collect(),
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
