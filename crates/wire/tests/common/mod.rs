//! Payload builders shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::{Compress, Compression, FlushCompress};
use perfpilot_model::series::Batch;
use perfpilot_model::{pprof, Function, Line, Location, Mapping, Profile, ValueType};

/// 2023-11-14T22:13:20Z.
pub const NOW_MS: i64 = 1_700_000_000_000;

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

/// A Go-like CPU profile: `samples/count` and `cpu/nanoseconds`, period
/// `cpu/nanoseconds`; an inlined frame; samples with per-process labels.
pub fn go_cpu_profile(time_nanos: i64) -> Profile {
    let mut p = Profile::new(vec![
        ValueType::new("samples", "count"),
        ValueType::new("cpu", "nanoseconds"),
    ]);
    p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
    p.period = 10_000_000;
    p.time_nanos = time_nanos;
    p.duration_nanos = 10_000_000_000;
    let m = p.add_mapping(Mapping {
        start: 0x40_0000,
        limit: 0x80_0000,
        file: "/usr/bin/app".into(),
        ..Default::default()
    });
    let main = p.add_function(Function {
        name: "main.main".into(),
        system_name: "main.main".into(),
        file: "main.go".into(),
        start_line: 1,
    });
    let work = p.add_function_named("main.work");
    let inlined = p.add_function_named("main.hash");
    let l_main = p.add_location(Location {
        mapping: Some(m),
        address: 0x40_1000,
        lines: vec![Line {
            function: main,
            line: 3,
        }],
    });
    // main.hash inlined into main.work.
    let l_work = p.add_location(Location {
        mapping: Some(m),
        address: 0x40_2000,
        lines: vec![
            Line {
                function: inlined,
                line: 9,
            },
            Line {
                function: work,
                line: 20,
            },
        ],
    });
    let s_work = p.add_stack(&[l_work, l_main]);
    let s_main = p.add_stack(&[l_main]);
    let a = p.add_label_set([("pid", "42")]);
    let b = p.add_label_set([("pid", "43"), ("thread_name", "worker")]);
    p.add_sample(s_work, a, &[3, 30_000_000]);
    p.add_sample(s_main, a, &[1, 10_000_000]);
    p.add_sample(s_work, b, &[2, 20_000_000]);
    p.add_sample(s_main, b, &[0, 0]);
    p
}

/// A Go-like heap profile (period `space/bytes`).
pub fn go_heap_profile(time_nanos: i64, alloc_objects: i64, inuse: i64) -> Profile {
    let mut p = Profile::new(vec![
        ValueType::new("alloc_objects", "count"),
        ValueType::new("alloc_space", "bytes"),
        ValueType::new("inuse_objects", "count"),
        ValueType::new("inuse_space", "bytes"),
    ]);
    p.period_type = Some(ValueType::new("space", "bytes"));
    p.period = 512 * 1024;
    p.time_nanos = time_nanos;
    let f_main = p.add_function_named("main.main");
    let f_alloc = p.add_function_named("main.alloc");
    let l_main = p.add_function_location(f_main);
    let l_alloc = p.add_function_location(f_alloc);
    let s = p.add_stack(&[l_alloc, l_main]);
    let none = p.add_label_set(Vec::<(String, String)>::new());
    p.add_sample(
        s,
        none,
        &[alloc_objects, alloc_objects * 64, inuse, inuse * 64],
    );
    p
}

pub fn encode(p: &Profile) -> Vec<u8> {
    pprof::encode(p).unwrap()
}

/// What a batch holds, readably: (sorted labels, time) → root-first folded
/// stack → value.
pub type Readable = BTreeMap<(Vec<(String, String)>, i64), BTreeMap<String, i64>>;

pub fn readable(b: &Batch) -> Readable {
    let mut out = Readable::new();
    for p in &b.profiles {
        let entry = out.entry((p.labels.clone(), p.time_ms)).or_default();
        for &(stack, value) in &p.samples {
            let names: Vec<&str> = b.stacks[stack as usize]
                .iter()
                .map(|&s| b.strings[s as usize].as_str())
                .collect();
            *entry.entry(names.join(";")).or_insert(0) += value;
        }
    }
    out
}

pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

pub fn stacks(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(s, v)| (s.to_string(), *v)).collect()
}

/// Asserts that every profile's labels are sorted and unique and that it
/// has `service_name` and `__profile_type__`, the store's contract.
pub fn assert_store_contract(b: &Batch) {
    for p in &b.profiles {
        let mut sorted = p.labels.clone();
        sorted.sort();
        sorted.dedup_by(|a, b| a.0 == b.0);
        assert_eq!(sorted, p.labels, "labels not sorted/unique");
        assert!(p
            .labels
            .iter()
            .any(|(k, v)| k == "service_name" && !v.is_empty()));
        assert!(p.labels.iter().any(|(k, v)| k == "__profile_type__"
            && perfpilot_model::series::ProfileType::parse(v).is_some()));
        assert!(p
            .samples
            .iter()
            .all(|&(s, v)| v != 0 && (s as usize) < b.stacks.len()));
    }
}

/// CRC-32 of 2^30 zero bytes, as the gzip trailer of the bomb needs it
/// (computed once with Python's `zlib.crc32(bytes(1 << 30))`).
const CRC32_OF_1GIB_ZEROS: u32 = 0x5B64_C2B0;

/// A single-member gzip file that decompresses to 1 GiB of zeros, built
/// without compressing a gigabyte: one fully flushed (so self-contained)
/// deflate chunk of 1 MiB of zeros, repeated 1024 times.
pub fn gzip_bomb_1gib() -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut c = Compress::new(Compression::best(), false);
    let mut chunk = Vec::with_capacity(1 << 20);
    c.compress_vec(&zeros, &mut chunk, FlushCompress::Full)
        .unwrap();
    assert_eq!(c.total_in(), 1 << 20);
    let mut fin = Vec::with_capacity(64);
    c.compress_vec(&[], &mut fin, FlushCompress::Finish)
        .unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..1024 {
        out.extend_from_slice(&chunk);
    }
    out.extend_from_slice(&fin);
    out.extend_from_slice(&CRC32_OF_1GIB_ZEROS.to_le_bytes());
    out.extend_from_slice(&(1u32 << 30).to_le_bytes());
    out
}
