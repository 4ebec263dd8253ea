//! What the fuzz targets share: the invariants a decoded batch must hold,
//! a selector printer for the round trip, and the container the store
//! recovery target unpacks into a data directory.

use std::path::Path;

use perfpilot_store::{Batch, MatchOp, Selector};
use perfpilot_wire::Limits;

/// A fixed "now" (2026-11-22, after the captured SDK requests in the
/// seeds), so a run is reproducible.
pub const NOW_MS: i64 = 1_795_400_000_000;

/// Limits smaller than the defaults, so a fuzzer reaches them with small
/// inputs, and an input that slips past one shows as an oversized batch.
pub fn small_limits() -> Limits {
    Limits {
        max_decompressed_bytes: 4 << 20,
        max_samples_per_request: 100_000,
        ..Limits::default()
    }
}

/// Panics unless `b` is a batch the store accepts as it is: every stack
/// names strings of the batch, every sample a stack of it, labels sorted,
/// unique, within the limits, with `service_name` and `__profile_type__`.
/// A decoder that returns `Ok` with less would turn bad input into a 500
/// (or a corrupt store) instead of a 400.
pub fn check_batch(b: &Batch, limits: &Limits) {
    let nstrings = b.strings.len();
    for (i, st) in b.stacks.iter().enumerate() {
        assert!(
            st.iter().all(|&f| (f as usize) < nstrings),
            "stack {i} refers to a missing string"
        );
    }
    assert!(
        b.sample_count() <= limits.max_samples_per_request,
        "{} samples pass a limit of {}",
        b.sample_count(),
        limits.max_samples_per_request
    );
    for (i, p) in b.profiles.iter().enumerate() {
        assert!(
            p.labels.windows(2).all(|w| w[0].0 < w[1].0),
            "profile {i}: labels not sorted and unique: {:?}",
            p.labels
        );
        for required in ["service_name", "__profile_type__"] {
            assert!(
                p.labels.iter().any(|(k, v)| k == required && !v.is_empty()),
                "profile {i}: no {required} in {:?}",
                p.labels
            );
        }
        assert!(
            p.labels.len() <= limits.max_labels_per_series,
            "profile {i}: {} labels pass the limit",
            p.labels.len()
        );
        for (k, v) in &p.labels {
            assert!(k.len() <= limits.max_label_name_len, "label name too long");
            assert!(
                v.len() <= limits.max_label_value_len,
                "label value too long"
            );
        }
        assert!(
            p.time_ms <= NOW_MS + limits.max_future_ms,
            "profile {i}: time {} is past the future limit",
            p.time_ms
        );
        for (j, &(s, _)) in p.samples.iter().enumerate() {
            assert!(
                (s as usize) < b.stacks.len(),
                "profile {i} sample {j}: no stack {s}"
            );
        }
    }
}

/// A selector as text the parser reads back to the same matchers.
pub fn print_selector(s: &Selector) -> String {
    let mut out = String::from("{");
    for (i, m) in s.matchers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&m.name);
        out.push_str(match m.op {
            MatchOp::Eq => "=",
            MatchOp::NotEq => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        });
        out.push('"');
        for c in m.value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
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

/// One file of a store's data directory in the recovery target's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFile {
    Symbols,
    Wal,
    Block,
}

/// Entry kinds of the recovery container.
const KIND_SYMBOLS: u8 = 0;
const KIND_WAL: u8 = 1;
const KIND_BLOCK: u8 = 2;
/// Flag: the file's checksums are made right before it is written, so
/// mutations reach the record decoders instead of stopping at a CRC.
const FLAG_FIX_CHECKSUMS: u8 = 1;

/// Packs files into the recovery target's input: per file, kind, flags,
/// u16 length, bytes. With `fix`, log files are given as their records
/// (u16 length, payload) and framed by [`unpack_store`].
pub fn pack_store(files: &[(StoreFile, bool, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, fix, bytes) in files {
        out.push(match kind {
            StoreFile::Symbols => KIND_SYMBOLS,
            StoreFile::Wal => KIND_WAL,
            StoreFile::Block => KIND_BLOCK,
        });
        out.push(if *fix { FLAG_FIX_CHECKSUMS } else { 0 });
        let len = u16::try_from(bytes.len()).expect("seed files are under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Log records as (u16 length, payload) pairs, for a `fix` entry.
pub fn records_of(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        let len = u16::try_from(p.len()).expect("seed records are under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// The store's log framing: length, CRC-32 of the payload, payload.
fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// CRC-32 (IEEE), as the store's files use.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Sets a block's chunk and directory checksums to match its bytes
/// (layout in `crates/store/src/embedded/block.rs`).
fn fix_block(b: &mut [u8]) {
    const HEADER: usize = 68;
    const DIR_ENTRY: usize = 44;
    if b.len() < HEADER {
        return;
    }
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]));
    let nseries = u32_at(b, 40) as usize;
    let dir_off = u64::from_le_bytes(b[44..52].try_into().unwrap_or([0; 8]));
    let Ok(dir_off) = usize::try_from(dir_off) else {
        return;
    };
    if dir_off
        .saturating_add(nseries.saturating_mul(DIR_ENTRY))
        .saturating_add(12)
        > b.len()
    {
        return;
    }
    for i in 0..nseries {
        let e = dir_off + i * DIR_ENTRY;
        let off = u64::from_le_bytes(b[e + 20..e + 28].try_into().unwrap_or([0; 8]));
        let len = u32_at(b, e + 28) as u64;
        let Some(end) = off.checked_add(len).filter(|&end| end <= b.len() as u64) else {
            continue;
        };
        let crc = crc32(&b[off as usize..end as usize]);
        b[e + 40..e + 44].copy_from_slice(&crc.to_le_bytes());
    }
    let n = b.len();
    let crc = crc32(&b[dir_off..n - 4]);
    b[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// Writes the container's files into `dir` as a store's data directory:
/// `symbols.log`, WAL segments numbered in order, blocks numbered in order.
pub fn unpack_store(mut data: &[u8], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("wal"))?;
    std::fs::create_dir_all(dir.join("blocks"))?;
    let mut wal_seq = 1u64;
    let mut block_id = 1u64;
    let mut symbols = Vec::new();
    while data.len() >= 2 {
        let (kind, flags) = (data[0], data[1]);
        data = &data[2..];
        let Some(len) = take_u16(&mut data) else {
            break;
        };
        let body = take(&mut data, len);
        let fix = flags & FLAG_FIX_CHECKSUMS != 0;
        let mut bytes = Vec::new();
        match kind % 3 {
            KIND_SYMBOLS | KIND_WAL if fix => {
                let mut rest = body;
                while let Some(n) = take_u16(&mut rest) {
                    frame(&mut bytes, take(&mut rest, n));
                }
            }
            KIND_BLOCK if fix => {
                bytes = body.to_vec();
                fix_block(&mut bytes);
            }
            _ => bytes = body.to_vec(),
        }
        match kind % 3 {
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
    fn crc32_is_ieee() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
