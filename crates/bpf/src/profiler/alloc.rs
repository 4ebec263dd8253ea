//! Allocation profiles: the uprobes on an allocator's entry points
//! (`alloc.bpf.h`), their sampling tables, counters and the addresses of
//! sampled allocations still live.

use std::collections::HashSet;
use std::mem::offset_of;
use std::path::Path;

use libbpf_rs::{MapCore, MapFlags, UprobeOpts};

use super::skel::types;
use super::{ProfilerSkel, Sampler};
use crate::BpfError;

/// An allocation record ([`RawSample::count`](super::RawSample) is bytes).
pub const SAMPLE_F_ALLOC: u32 = 1 << 12;
/// With [`SAMPLE_F_ALLOC`]: the count is objects, in 1/[`ALLOC_OBJECT_ONE`]ths.
pub const SAMPLE_F_ALLOC_OBJECTS: u32 = 1 << 16;
/// With [`SAMPLE_F_ALLOC`]: sampled allocations freed (what they had
/// counted, given back).
pub const SAMPLE_F_ALLOC_FREE: u32 = 1 << 17;
/// With [`SAMPLE_F_ALLOC`]: an allocation whose address could not be
/// kept (the live map was full): it counts as allocated, never in use.
pub const SAMPLE_F_ALLOC_UNTRACKED: u32 = 1 << 18;
/// One object in an objects count.
pub const ALLOC_OBJECT_ONE: u64 = 1024;

const LOG_STEPS: usize = 1024;
/// ln 2 in 2^24ths, as the kernel has it (ALLOC_LN2).
#[cfg(test)]
const LN2_24: u64 = 11629080;
const WEIGHT_STEPS: usize = 1024;
/// g(x) is tabulated at x = i / WEIGHT_PER_UNIT.
const WEIGHT_PER_UNIT: f64 = 64.0;
const FIXED_ONE: f64 = 65536.0;

/// Allocation profiling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocConfig {
    /// Mean bytes allocated between two samples (the rate knob: fewer
    /// samples, less map work; the uprobes' own cost does not change).
    pub sample_bytes: u64,
    /// Most sampled allocations kept live at once (their addresses, for
    /// in-use); past it new ones count as allocated only.
    pub max_live: u32,
    /// Most probe hits a second (each a trap into the kernel: an
    /// allocation's entry and return, a free's entry) before the probes
    /// are detached for a while to bring the average under it; 0: never.
    pub max_probe_rate: u64,
}

impl Default for AllocConfig {
    fn default() -> Self {
        AllocConfig {
            sample_bytes: 512 * 1024,
            max_live: 65536,
            max_probe_rate: 0,
        }
    }
}

/// The allocator's counters, summed over CPUs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AllocStats {
    /// Allocation entry points hit (every call pays a uprobe).
    pub calls: u64,
    /// free and realloc hits.
    pub frees: u64,
    pub sampled: u64,
    /// Sampled and counted with their stack.
    pub recorded: u64,
    /// Sampled, but the return was seen on another CPU (the thread
    /// migrated mid-call): not counted.
    pub lost_return: u64,
    /// Sampled, not kept in use: the live map was full.
    pub live_full: u64,
    /// Frees of sampled allocations.
    pub freed: u64,
    /// Sampled calls that returned no memory.
    pub failed: u64,
}

/// log2(1 + k/1024) in 2^24ths, k = 0..=1024: the kernel's logarithm.
fn log2_table() -> Vec<u32> {
    (0..=LOG_STEPS)
        .map(|k| ((1.0 + k as f64 / LOG_STEPS as f64).log2() * (1u64 << 24) as f64).round() as u32)
        .collect()
}

/// The kernel's countdown draw for the random `u`, in bytes for a mean
/// of `mean`: -ln(u / 2^32) times the mean, with the kernel's table and
/// fixed-point steps (tests check it against the exponential).
#[cfg(test)]
fn kernel_draw(u: u32, mean: u64, table: &[u32]) -> u64 {
    let u = u64::from(u | 1);
    let e = 63 - u.leading_zeros() as u64;
    let m = u << (31 - e);
    let k = ((m >> 21) as usize) & (LOG_STEPS - 1);
    let rest = (m >> 5) & 0xffff;
    let (a, b) = (u64::from(table[k]), u64::from(table[k + 1]));
    let lg = (e << 24) + a + (((b - a) * rest) >> 16);
    let x = (((32u64 << 24) - lg) * LN2_24) >> 24;
    (mean * x) >> 24
}

/// g(x) = x / (1 - exp(-x)): an allocation of x means sampled with
/// probability 1 - exp(-x) stands for g(x) means.
pub fn expected_weight(x: f64) -> f64 {
    if x < 1e-12 {
        return 1.0;
    }
    x / -(-x).exp_m1()
}

/// What a sampled allocation of `size` bytes stands for, in bytes, with the
/// kernel's table and fixed-point arithmetic (for tests).
#[cfg(test)]
fn kernel_weight(size: u64, mean: u64, table: &[u32]) -> u64 {
    if size >= 16 * mean {
        return size;
    }
    let x = (size << 22) / mean;
    let i = (x >> 16) as usize;
    let f = x & 0xffff;
    if i >= WEIGHT_STEPS {
        return size;
    }
    let (a, b) = (table[i] as u64, table[i + 1] as u64);
    let g = a + (((b - a) * f) >> 16);
    (mean * g) >> 16
}

fn weight_table() -> Vec<u32> {
    (0..=WEIGHT_STEPS)
        .map(|i| (expected_weight(i as f64 / WEIGHT_PER_UNIT) * FIXED_ONE).round() as u32)
        .collect()
}

/// Names the uprobes attach to, and which program serves each.
const ENTRY_POINTS: &[(&str, Program)] = &[
    ("malloc", Program::Malloc),
    ("calloc", Program::Calloc),
    ("realloc", Program::Realloc),
    ("free", Program::Free),
    ("posix_memalign", Program::PosixMemalign),
    ("aligned_alloc", Program::Aligned),
    ("memalign", Program::Aligned),
    ("valloc", Program::Malloc),
    ("pvalloc", Program::Malloc),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    Malloc,
    Calloc,
    Realloc,
    Free,
    PosixMemalign,
    Aligned,
}

impl Program {
    fn returns(self) -> bool {
        !matches!(self, Program::Free)
    }
}

/// Writes the sampling settings into the programs' read-only data.
pub(super) fn configure(rodata: &mut types::rodata, config: &AllocConfig) {
    // The kernel multiplies the mean by 2^20-scaled factors in 64 bits.
    rodata.alloc_sample_bytes = config.sample_bytes.clamp(1, 1 << 31);
    for (slot, v) in rodata.alloc_log2_table.iter_mut().zip(log2_table()) {
        *slot = v;
    }
    for (slot, v) in rodata.alloc_weight_table.iter_mut().zip(weight_table()) {
        *slot = v;
    }
}

/// The allocation programs, for leaving them out of a session without
/// allocation profiles.
pub(super) fn set_autoload(open: &mut super::skel::OpenProfilerSkel<'_>, on: bool) {
    let progs = &mut open.progs;
    for p in [
        &mut progs.alloc_malloc,
        &mut progs.alloc_calloc,
        &mut progs.alloc_realloc,
        &mut progs.alloc_aligned,
        &mut progs.alloc_posix_memalign,
        &mut progs.alloc_return,
        &mut progs.alloc_free_probe,
    ] {
        p.set_autoload(on);
    }
}

fn program<'a>(
    skel: &'a ProfilerSkel<'static>,
    which: Program,
) -> &'a libbpf_rs::ProgramMut<'static> {
    let p = &skel.progs;
    match which {
        Program::Malloc => &p.alloc_malloc,
        Program::Calloc => &p.alloc_calloc,
        Program::Realloc => &p.alloc_realloc,
        Program::Free => &p.alloc_free_probe,
        Program::PosixMemalign => &p.alloc_posix_memalign,
        Program::Aligned => &p.alloc_aligned,
    }
}

impl Sampler {
    /// Attaches the allocation probes to the allocator in `library` (a
    /// libc, or any object exporting malloc and free): for `pid` only, or
    /// every process mapping it (`None`). Entry points it lacks are
    /// skipped; returns how many were attached.
    pub fn attach_allocator(
        &mut self,
        library: &Path,
        pid: Option<u32>,
    ) -> Result<usize, BpfError> {
        if !self.alloc {
            return Ok(0);
        }
        let pid = pid.map_or(-1, |p| p as i32);
        // glibc's own calls of its malloc are counted there (see
        // ALLOC_COOKIE_GLIBC).
        let glibc = library
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "libc.so.6" || n.starts_with("libc-"));
        let mut attached = 0;
        for &(name, which) in ENTRY_POINTS {
            let opts = |retprobe| UprobeOpts {
                func_name: Some(name.to_string()),
                retprobe,
                cookie: u64::from(glibc),
                ..Default::default()
            };
            let entry = match program(&self.skel, which).attach_uprobe_with_opts(
                pid,
                library,
                0,
                opts(false),
            ) {
                Ok(l) => l,
                // Not every allocator has every entry point.
                Err(_) if !matches!(name, "malloc" | "free") => continue,
                Err(e) => {
                    return Err(BpfError::from_libbpf(
                        &format!("attaching a uprobe to {name} in {}", library.display()),
                        e,
                    ))
                }
            };
            self.alloc_links.push(entry);
            if which.returns() {
                let ret = self
                    .skel
                    .progs
                    .alloc_return
                    .attach_uprobe_with_opts(pid, library, 0, opts(true))
                    .map_err(|e| {
                        BpfError::from_libbpf(
                            &format!("attaching a uretprobe to {name} in {}", library.display()),
                            e,
                        )
                    })?;
                self.alloc_links.push(ret);
            }
            attached += 1;
        }
        let target = (library.to_path_buf(), u32::try_from(pid).ok());
        if !self.alloc_targets.contains(&target) {
            self.alloc_targets.push(target);
        }
        Ok(attached)
    }

    /// Whether the allocation probes are attached.
    pub fn allocator_attached(&self) -> bool {
        !self.alloc_links.is_empty()
    }

    /// Detaches every allocation probe: the processes stop paying their
    /// traps. The live addresses are forgotten: frees while detached go
    /// unseen, so what they held could not be told from a leak.
    pub fn detach_allocators(&mut self) {
        self.alloc_links.clear();
        let map = &self.skel.maps.alloc_live;
        let keys: Vec<Vec<u8>> = map.keys().collect();
        for k in keys {
            let _ = map.delete(&k);
        }
    }

    /// Attaches the allocation probes again where they were.
    pub fn reattach_allocators(&mut self) -> Result<(), BpfError> {
        if self.allocator_attached() {
            return Ok(());
        }
        for (library, pid) in self.alloc_targets.clone() {
            self.attach_allocator(&library, pid)?;
        }
        Ok(())
    }

    /// The allocation probes' counters.
    pub fn alloc_stats(&self) -> AllocStats {
        let mut s = [0u64; 8];
        let base = offset_of!(types::pp_alloc_cpu, stat);
        if let Ok(Some(per_cpu)) = self
            .skel
            .maps
            .alloc_cpu
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        {
            for cpu in per_cpu {
                for (i, slot) in s.iter_mut().enumerate() {
                    let at = base + 8 * i;
                    if let Some(b) = cpu.get(at..at + 8) {
                        *slot += u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
                    }
                }
            }
        }
        AllocStats {
            calls: s[0],
            frees: s[1],
            sampled: s[2],
            recorded: s[3],
            lost_return: s[4],
            live_full: s[5],
            freed: s[6],
            failed: s[7],
        }
    }

    /// Forgets the live allocations of processes that exited or exec'd:
    /// their memory went with them.
    pub fn forget_allocations(&self, pids: &HashSet<u32>) {
        if !self.alloc || pids.is_empty() {
            return;
        }
        let map = &self.skel.maps.alloc_live;
        let gone: Vec<Vec<u8>> = map
            .keys()
            .filter(|k| {
                k.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .is_some_and(|b| pids.contains(&u32::from_ne_bytes(b)))
            })
            .collect();
        for k in gone {
            let _ = map.delete(&k);
        }
    }
}

/// `struct pp_alloc_cpu`'s counters are read at the offsets above.
const _: () = {
    type C = types::pp_alloc_cpu;
    assert!(std::mem::size_of::<C>() - offset_of!(C, stat) == 8 * 8);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_exponential_with_the_mean() {
        let table = log2_table();
        let mean = 1u64 << 20;
        // Exact at the ends and in between: -ln(u / 2^32) * mean.
        for u in [
            1u32,
            2,
            3,
            1000,
            1 << 20,
            123_456_789,
            1 << 31,
            u32::MAX - 2,
            u32::MAX,
        ] {
            let want = -((u | 1) as f64 / 4294967296.0).ln() * mean as f64;
            let got = kernel_draw(u, mean, &table) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * mean as f64,
                "{u}: {got} vs {want}"
            );
        }
        // A sweep of u: the mean and the share under a tenth of the mean.
        let n = 1u64 << 20;
        let draws: Vec<u64> = (0..n)
            .map(|i| kernel_draw((i * 4096 + 2048) as u32, mean, &table))
            .collect();
        let avg = draws.iter().sum::<u64>() as f64 / n as f64 / mean as f64;
        assert!((avg - 1.0).abs() < 1e-3, "{avg}");
        let small = draws.iter().filter(|&&d| d < mean / 10).count() as f64 / n as f64;
        assert!((small - (1.0 - (-0.1f64).exp())).abs() < 1e-3, "{small}");
    }

    #[test]
    fn weights_are_size_over_sampling_probability() {
        let mean = 512 * 1024;
        for size in [
            1u64,
            8,
            100,
            4096,
            65536,
            300_000,
            1 << 20,
            5 << 20,
            9 << 20,
        ] {
            let x = size as f64 / mean as f64;
            let want = size as f64 / -(-x).exp_m1();
            let got = kernel_weight(size, mean, &weight_table()) as f64;
            assert!((got / want - 1.0).abs() < 1e-3, "{size}: {got} vs {want}");
        }
        assert_eq!(kernel_weight(100 << 20, mean, &weight_table()), 100 << 20);
    }

    /// Simulates the kernel's sampling (per-CPU countdown from the
    /// tabulated draws, the tabulated weights) over a known mix of sizes:
    /// the estimates of bytes and objects per size class come out
    /// unbiased.
    #[test]
    fn poisson_sampling_is_unbiased() {
        let mean: u64 = 16 * 1024;
        let table = log2_table();
        let weights = weight_table();
        let mut rng: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let sizes = [16u64, 200, 4096, 100_000, 1 << 20];
        let (mut truth, mut est, mut objs) = ([0f64; 5], [0f64; 5], [0f64; 5]);
        let mut taken = [0u64; 5];
        let mut left = kernel_draw(next() as u32, mean, &table) as i64;
        for _ in 0..4_000_000 {
            let c = (next() % 5) as usize;
            let size = sizes[c];
            truth[c] += size as f64;
            left -= size as i64;
            if left >= 0 {
                continue;
            }
            left = kernel_draw(next() as u32, mean, &table) as i64;
            taken[c] += 1;
            let w = kernel_weight(size, mean, &weights);
            est[c] += w as f64;
            objs[c] += (w * ALLOC_OBJECT_ONE / size) as f64 / ALLOC_OBJECT_ONE as f64;
        }
        for c in 0..5 {
            // Four standard errors of a Poisson count of samples (a size
            // class sampled every time has next to none).
            let p = -(-(sizes[c] as f64 / mean as f64)).exp_m1();
            let tolerance = 4.0 * ((1.0 - p) / taken[c] as f64).sqrt() + 0.003;
            let r = est[c] / truth[c];
            assert!(
                (r - 1.0).abs() < tolerance,
                "size {}: ratio {r} ({tolerance})",
                sizes[c]
            );
            let n = truth[c] / sizes[c] as f64;
            let r = objs[c] / n;
            assert!(
                (r - 1.0).abs() < tolerance,
                "size {} objects: ratio {r}",
                sizes[c]
            );
        }
    }
}
