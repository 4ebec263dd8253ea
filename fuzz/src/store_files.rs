//! The recovery target's input: a store's data directory packed as
//! entries, per file: kind, flags, u16 length, bytes. The layouts whose
//! checksums the flags make right are the store's
//! (`crates/store/src/embedded/codec.rs` for logs, `block.rs` for blocks).

use std::path::Path;

/// One file of a store's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFile {
    Symbols,
    Wal,
    Block,
}

/// How an entry's bytes become the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// As they are.
    Raw,
    /// Logs: the bytes are records (u16 length, payload), framed as the
    /// store frames them, checksums made right, so mutations reach the
    /// record decoders instead of stopping at a checksum. Blocks: chunk
    /// and directory checksums made right.
    Fixed,
    /// Logs only: records framed as earlier versions of the store did
    /// (length, CRC-32, payload), which it still reads.
    Legacy,
}

const KIND_SYMBOLS: u8 = 0;
const KIND_WAL: u8 = 1;
const KIND_BLOCK: u8 = 2;
const FLAG_FIX: u8 = 1;
const FLAG_LEGACY: u8 = 2;

/// The store's log record framing: magic, length, CRC-32 of the payload,
/// CRC-32 of the 12 bytes before, payload.
const RECORD_MAGIC: [u8; 4] = *b"PPr\xe7";
const RECORD_HEADER: usize = 16;

/// Block layout: header and directory entry sizes, where the header
/// holds the series count and the directory's offset, where an entry
/// holds its chunk's offset, length and checksum.
const BLOCK_HEADER: usize = 68;
const DIR_ENTRY: usize = 44;

/// Packs files into the recovery target's input.
pub fn pack(files: &[(StoreFile, Framing, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, framing, bytes) in files {
        out.push(match kind {
            StoreFile::Symbols => KIND_SYMBOLS,
            StoreFile::Wal => KIND_WAL,
            StoreFile::Block => KIND_BLOCK,
        });
        out.push(match framing {
            Framing::Raw => 0,
            Framing::Fixed => FLAG_FIX,
            Framing::Legacy => FLAG_FIX | FLAG_LEGACY,
        });
        let len = u16::try_from(bytes.len()).expect("seed files are under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Log records as (u16 length, payload) pairs, for a framed entry.
pub fn records_of(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        let len = u16::try_from(p.len()).expect("seed records are under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// The payloads of a log the store wrote (every record whole), or None
/// if it is not framed as this module frames records.
pub fn payloads(log: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = log;
    while !rest.is_empty() {
        let header = rest.get(..RECORD_HEADER)?;
        let le = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        if header[..4] != RECORD_MAGIC || crc32fast::hash(&header[..12]) != le(12) {
            return None;
        }
        let payload = rest.get(RECORD_HEADER..RECORD_HEADER + le(4) as usize)?;
        if crc32fast::hash(payload) != le(8) {
            return None;
        }
        out.push(payload);
        rest = &rest[RECORD_HEADER + payload.len()..];
    }
    Some(out)
}

fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out[start..start + 12]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
}

fn frame_legacy(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Sets a block's chunk and directory checksums to match its bytes, as
/// far as its header and directory say where they are.
fn fix_block(b: &mut [u8]) -> Option<()> {
    if b.len() < BLOCK_HEADER {
        return None;
    }
    let nseries = u32_at(b, 40)? as usize;
    let dir_off = usize::try_from(u64_at(b, 44)?).ok()?;
    let dir_end = dir_off.checked_add(nseries.checked_mul(DIR_ENTRY)?)?;
    if dir_end.checked_add(12)? > b.len() {
        return None;
    }
    for i in 0..nseries {
        let e = dir_off + i * DIR_ENTRY;
        let off = usize::try_from(u64_at(b, e + 20)?).ok()?;
        let len = u32_at(b, e + 28)? as usize;
        let Some(chunk) = off.checked_add(len).and_then(|end| b.get(off..end)) else {
            continue;
        };
        let crc = crc32fast::hash(chunk);
        b[e + 40..e + 44].copy_from_slice(&crc.to_le_bytes());
    }
    let n = b.len();
    let crc = crc32fast::hash(&b[dir_off..n - 4]);
    b[n - 4..].copy_from_slice(&crc.to_le_bytes());
    Some(())
}

/// Reads a little-endian u16 from the front of `data`.
fn take_u16(data: &mut &[u8]) -> Option<usize> {
    let (head, rest) = data.split_first_chunk::<2>()?;
    *data = rest;
    Some(u16::from_le_bytes(*head) as usize)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(n.min(data.len()));
    *data = rest;
    head
}

/// Writes the entries into `dir` as a store's data directory:
/// `symbols.log` (the symbols entries one after another), WAL segments
/// numbered 1, 2, ... in order, blocks numbered 1, 2, ... in order.
pub fn unpack(mut data: &[u8], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("wal"))?;
    std::fs::create_dir_all(dir.join("blocks"))?;
    let mut wal_seq = 1u64;
    let mut block_id = 1u64;
    let mut symbols = Vec::new();
    while data.len() >= 2 {
        let (kind, flags) = (data[0] % 3, data[1]);
        data = &data[2..];
        let Some(len) = take_u16(&mut data) else {
            break;
        };
        let body = take(&mut data, len);
        let mut bytes = Vec::new();
        if flags & FLAG_FIX == 0 {
            bytes = body.to_vec();
        } else if kind == KIND_BLOCK {
            bytes = body.to_vec();
            let _ = fix_block(&mut bytes);
        } else {
            let mut rest = body;
            while let Some(n) = take_u16(&mut rest) {
                let payload = take(&mut rest, n);
                if flags & FLAG_LEGACY != 0 {
                    frame_legacy(&mut bytes, payload);
                } else {
                    frame(&mut bytes, payload);
                }
            }
        }
        match kind {
            KIND_SYMBOLS => symbols.extend_from_slice(&bytes),
            KIND_WAL => {
                std::fs::write(dir.join("wal").join(format!("{wal_seq:012}.wal")), &bytes)?;
                wal_seq += 1;
            }
            _ => {
                let name = format!("{block_id:016}.blk");
                std::fs::write(dir.join("blocks").join(name), &bytes)?;
                block_id += 1;
            }
        }
    }
    if !symbols.is_empty() {
        std::fs::write(dir.join("symbols.log"), &symbols)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_records_read_back() {
        let mut log = Vec::new();
        frame(&mut log, b"one");
        frame(&mut log, b"");
        assert_eq!(payloads(&log), Some(vec![&b"one"[..], &b""[..]]));
        log[RECORD_HEADER] ^= 1;
        assert_eq!(payloads(&log), None);
    }
}
