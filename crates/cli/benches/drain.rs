//! Draining the kernel's sample counts: batched lookup-and-delete (what
//! the sampler does) against key by key (lookup-and-delete per key), at
//! 1k, 10k and 100k entries of the counts map's layout. Needs root.
//!
//!     cargo bench -p perfpilot --bench drain

#[path = "../tests/common/mod.rs"]
mod common;

use std::os::fd::AsFd;
use std::time::Instant;

use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};
use perfpilot_bpf::BatchDrainer;

const KEY: usize = 40;
const VALUE: usize = 24;

fn fill(map: &MapHandle, n: usize) {
    let mut keys = Vec::with_capacity(n * KEY);
    let mut values = Vec::with_capacity(n * VALUE);
    for i in 0..n as u64 {
        let mut k = [0u8; KEY];
        k[..8].copy_from_slice(&i.to_ne_bytes());
        k[8..16].copy_from_slice(&(i * 7919).to_ne_bytes());
        keys.extend_from_slice(&k);
        let mut v = [0u8; VALUE];
        v[..8].copy_from_slice(&1u64.to_ne_bytes());
        values.extend_from_slice(&v);
    }
    map.update_batch(&keys, &values, n as u32, MapFlags::ANY, MapFlags::ANY)
        .expect("filling the map");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    common::require_root();
    println!("drain: entries/s moving a hash map of {KEY}-byte keys and {VALUE}-byte values to user space (median of 7)");
    println!(
        "{:>8} {:>16} {:>16} {:>8}",
        "entries", "batched", "key by key", "ratio"
    );
    for n in [1_000usize, 10_000, 100_000] {
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            map_flags: libbpf_sys::BPF_F_NO_PREALLOC,
            ..Default::default()
        };
        let map = MapHandle::create(
            MapType::Hash,
            Some("pp_bench"),
            KEY as u32,
            VALUE as u32,
            n as u32,
            &opts,
        )
        .expect("creating a hash map");
        let mut drainer = BatchDrainer::new(KEY, VALUE, 1024);
        let mut rates = (Vec::new(), Vec::new());
        for _ in 0..7 {
            for batched in [true, false] {
                fill(&map, n);
                let mut sum = 0u64;
                let t = Instant::now();
                let got = if batched {
                    drainer.drain(map.as_fd(), |_, v| sum += v[0] as u64)
                } else {
                    drainer.drain_key_by_key(map.as_fd(), |_, v| sum += v[0] as u64)
                }
                .expect("draining");
                let secs = t.elapsed().as_secs_f64();
                assert_eq!((got, sum), (n, n as u64), "every entry drained once");
                let rate = n as f64 / secs;
                if batched {
                    rates.0.push(rate);
                } else {
                    rates.1.push(rate);
                }
            }
        }
        let (b, k) = (median(rates.0), median(rates.1));
        println!("{n:>8} {b:>16.0} {k:>16.0} {:>7.1}x", b / k);
    }
}
