//! Times flame_tree, flat_flame, top_functions, diff and diff_tree on a synthetic table
//! of 200k distinct stacks, 10–40 frames deep, with shared prefixes (and,
//! for the diffs, a target where a tenth of the stacks changed value).
//!
//! Run with: cargo run --release -p perfpilot-query --example flame_bench
//! [-- FILTER [RUNS]]: only benchmarks whose label contains FILTER, each
//! timed RUNS times (default 5), best time shown.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use perfpilot_model::series::StackTable;
use perfpilot_query::{diff, diff_tree, flame_tree, flat_flame, top_functions, FlameOptions};

/// xorshift64*: deterministic and dependency-free; quality is irrelevant.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Skewed toward 0, like call frequencies: the smaller of two draws.
    fn skewed(&mut self, n: u64) -> u64 {
        self.below(n).min(self.below(n))
    }
}

const FUNCTIONS: usize = 20_000;
const STACKS: usize = 200_000;

/// A program: each function calls a few others; stacks are random walks
/// from a handful of thread entry points, so the top frames are shared by
/// many stacks and the deep ones diverge.
fn synthetic_table(seed: u64) -> StackTable {
    let mut rng = Rng(seed);
    let functions: Vec<String> = (0..FUNCTIONS)
        .map(|i| format!("crate{}::module{}::function_name_{i}", i % 37, i % 101))
        .collect();
    let callees: Vec<Vec<u32>> = (0..FUNCTIONS)
        .map(|_| {
            // Wrappers and middleware call one function; others fan out.
            let n = if rng.below(10) < 4 {
                1
            } else {
                2 + rng.below(7)
            };
            (0..n).map(|_| rng.below(FUNCTIONS as u64) as u32).collect()
        })
        .collect();
    // Entry prefixes: runtime frames every thread of a kind starts with.
    let entries: Vec<Vec<u32>> = (0..8)
        .map(|_| {
            (0..3 + rng.below(4))
                .map(|_| rng.below(FUNCTIONS as u64) as u32)
                .collect()
        })
        .collect();

    let mut seen: HashSet<Vec<u32>> = HashSet::with_capacity(STACKS);
    let mut stacks = Vec::with_capacity(STACKS);
    while stacks.len() < STACKS {
        let mut stack = entries[rng.skewed(entries.len() as u64) as usize].clone();
        let depth = 10 + rng.below(31) as usize;
        while stack.len() < depth {
            let last = *stack.last().unwrap_or(&0) as usize;
            let options = &callees[last];
            stack.push(options[rng.skewed(options.len() as u64) as usize]);
        }
        if seen.insert(stack.clone()) {
            // Heavy-tailed values: most stacks are seen a few times.
            let r = rng.below(1000) as i64;
            stacks.push((stack, 1 + r * r * r / 10_000_000 + rng.below(3) as i64));
        }
    }
    StackTable { functions, stacks }
}

/// The best of `runs` timings, with the last result.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let start = Instant::now();
        let r = f();
        best = best.min(start.elapsed());
        out = Some(r);
    }
    match out {
        Some(r) => (best, r),
        None => panic!("runs must be positive"),
    }
}

fn main() {
    let start = Instant::now();
    let base = synthetic_table(0x9e37_79b9_7f4a_7c15);
    let mut target = base.clone();
    // The target: a tenth of the stacks change weight.
    let mut rng = Rng(42);
    for (_, v) in target.stacks.iter_mut() {
        if rng.below(10) == 0 {
            *v = *v * (1 + rng.below(4) as i64) / 2 + 1;
        }
    }
    let frames: usize = base.stacks.iter().map(|(s, _)| s.len()).sum();
    println!(
        "table: {} stacks, {} frames, {} functions, total {} (generated in {:?})",
        base.stacks.len(),
        frames,
        base.functions.len(),
        base.total(),
        start.elapsed()
    );
    #[cfg(debug_assertions)]
    println!("(debug build: use --release for meaningful timings)");

    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_default();
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let bench = |label: &str, f: &mut dyn FnMut() -> String| {
        if label.contains(filter.as_str()) {
            let (t, what) = time(runs, f);
            println!("{label:<24}{t:>10.2?}  ({what})");
        }
    };

    bench("flame_tree(max 1024)", &mut || {
        format!("{} nodes", flame_tree(&base, 1024).nodes.len())
    });
    bench("flame_tree(max 100k)", &mut || {
        format!("{} nodes", flame_tree(&base, 100_000).nodes.len())
    });
    bench("flame_tree(unlimited)", &mut || {
        format!("{} nodes", flame_tree(&base, usize::MAX).nodes.len())
    });
    let tree = flame_tree(&base, 100_000);
    bench("to_flat(100k nodes)", &mut || {
        format!("{} levels", tree.to_flat().levels.len())
    });
    bench("flat_flame(native 1024)", &mut || {
        let flat = flat_flame(&base, &FlameOptions::native(1024));
        format!("{} levels", flat.levels.len())
    });
    bench("flat_flame(pyro 16384)", &mut || {
        let flat = flat_flame(&base, &FlameOptions::pyroscope(16_384));
        format!("{} names", flat.names.len())
    });
    bench("top_functions", &mut || {
        format!("{} rows", top_functions(&base).len())
    });
    bench("diff", &mut || {
        let d = diff(&base, &target);
        let significant = d.rows.iter().filter(|r| r.significant).count();
        format!("{} rows, {significant} significant", d.rows.len())
    });
    bench("diff_tree(max 1024)", &mut || {
        format!("{} nodes", diff_tree(&base, &target, 1024).nodes.len())
    });
}
