//! Query latency over the 24 h dataset of 50 services (see
//! `common/dataset.rs`; generated once into `target/perfpilot-bench/` and
//! reused while the generator's version and size are unchanged). Each query
//! is what the server's endpoint computes (`native.rs`): `Store::merge`,
//! then the flame tree (`flame_tree` + `to_flat`, 8192 nodes), the top
//! table, or the diff (`diff_with` + `diff_tree` + `to_flat`).
//!
//!     cargo bench -p perfpilot-server --bench query [-- --quick] [--regenerate] [--runs N] [--only TEXT]
//!         [--samples N] [--uniform-values]   (which dataset; see the storage benchmark)

mod common;

use std::time::{Duration, Instant};

use common::dataset::{self, Spec, HOUR_MS, PROFILE_TYPE};
use common::{percentile, si, verdict};
use perfpilot_query::DiffOptions;
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::{Selector, StackTable, Store, TimeRange};

const MAX_NODES: usize = 8192;
const FLAME_GOAL_MS: f64 = 150.0;
const DIFF_GOAL_MS: f64 = 300.0;

/// What one run of a query did.
struct Shape {
    /// Distinct stacks merged (both sides for a diff).
    stacks: usize,
    /// Total value merged.
    total: i64,
    /// Flame/diff tree nodes or top rows.
    out: usize,
}

/// One query, run once.
type Case<'a> = Box<dyn Fn() -> (Duration, Shape) + 'a>;

struct Timed {
    total: Vec<f64>,
    merge: Vec<f64>,
    shape: Shape,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn selector(service: Option<&str>) -> Selector {
    let text = match service {
        Some(s) => format!("{PROFILE_TYPE}{{service_name=\"{s}\"}}"),
        None => format!("{PROFILE_TYPE}{{}}"),
    };
    Selector::parse(&text).expect("a selector")
}

fn merge(store: &EmbeddedStore, sel: &Selector, r: TimeRange) -> StackTable {
    store.merge(sel, r).expect("merging")
}

fn flame(store: &EmbeddedStore, sel: &Selector, r: TimeRange) -> (Duration, Shape) {
    let t = Instant::now();
    let table = merge(store, sel, r);
    let m = t.elapsed();
    let flat = perfpilot_query::flame_tree(&table, MAX_NODES).to_flat();
    let nodes = flat.levels.iter().map(|l| l.len() / 4).sum();
    (
        m,
        Shape {
            stacks: table.stacks.len(),
            total: table.total(),
            out: nodes,
        },
    )
}

fn top(store: &EmbeddedStore, sel: &Selector, r: TimeRange) -> (Duration, Shape) {
    let t = Instant::now();
    let table = merge(store, sel, r);
    let m = t.elapsed();
    let mut rows = perfpilot_query::top_functions(&table);
    rows.truncate(100);
    (
        m,
        Shape {
            stacks: table.stacks.len(),
            total: table.total(),
            out: rows.len(),
        },
    )
}

fn diff(
    store: &EmbeddedStore,
    sel: &Selector,
    base: TimeRange,
    target: TimeRange,
) -> (Duration, Shape) {
    let t = Instant::now();
    let b = merge(store, sel, base);
    let tg = merge(store, sel, target);
    let m = t.elapsed();
    let options = DiffOptions {
        sample_weight: 1.0,
        ..Default::default()
    };
    let d = perfpilot_query::diff_with(&b, &tg, &options).expect("diffing");
    let flat = perfpilot_query::diff_tree(&b, &tg, MAX_NODES).to_flat();
    std::hint::black_box(&flat);
    (
        m,
        Shape {
            stacks: b.stacks.len() + tg.stacks.len(),
            total: b.total() + tg.total(),
            out: d.rows.len(),
        },
    )
}

fn time(runs: usize, mut f: impl FnMut() -> (Duration, Shape)) -> Timed {
    let _ = f();
    let mut total = Vec::with_capacity(runs);
    let mut merge = Vec::with_capacity(runs);
    let mut shape = None;
    for _ in 0..runs {
        let t = Instant::now();
        let (m, s) = f();
        total.push(ms(t.elapsed()));
        merge.push(ms(m));
        shape = Some(s);
    }
    total.sort_by(f64::total_cmp);
    merge.sort_by(f64::total_cmp);
    Timed {
        total,
        merge,
        shape: shape.expect("at least one run"),
    }
}

fn main() {
    let quick = common::quick();
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let spec = Spec::new(quick);
    println!(
        "query: latency over {} h of {} services{} ({} runs each after one warm-up)",
        spec.hours,
        spec.services,
        if quick { " (--quick)" } else { "" },
        runs
    );
    let t0 = Instant::now();
    let (dir, meta, built) = dataset::cached(&spec, common::flag("--regenerate"));
    match &built {
        Some(_) => println!(
            "  dataset generated in {:.1} s into {}",
            t0.elapsed().as_secs_f64(),
            dir.display()
        ),
        None => println!(
            "  dataset reused from {} (--regenerate to rebuild)",
            dir.display()
        ),
    }
    let o0 = Instant::now();
    let store = EmbeddedStore::open(
        &dir,
        Options {
            background: false,
            ..Default::default()
        },
    )
    .expect("opening the store");
    let stats = store.stats();
    println!(
        "  {} samples, {} series, {} stacks, {} blocks ({} rows); store opened in {:.2} s",
        si(meta.samples as f64),
        stats.series,
        stats.stacks,
        stats.blocks,
        si(stats.block_rows as f64),
        o0.elapsed().as_secs_f64()
    );
    if stats.block_rows < meta.samples * 9 / 10 {
        println!(
            "  WARNING: the store holds {} rows but {} samples were ingested: rerun with --regenerate",
            stats.block_rows, meta.samples
        );
    }
    let ((busy, busy_n), (median, median_n)) = meta.busiest_and_median();
    println!(
        "  busiest service: {busy} ({} samples/24 h); median service: {median} ({} samples/24 h)",
        si(busy_n as f64),
        si(median_n as f64)
    );
    println!();

    let day = TimeRange {
        start_ms: meta.start_ms,
        end_ms: meta.end_ms,
    };
    let hour = TimeRange {
        start_ms: meta.end_ms - HOUR_MS,
        end_ms: meta.end_ms,
    };
    let half = meta.start_ms + (meta.end_ms - meta.start_ms) / 2;
    let yesterday = TimeRange {
        start_ms: meta.start_ms,
        end_ms: half,
    };
    let today = TimeRange {
        start_ms: half,
        end_ms: meta.end_ms,
    };
    let sel_busy = selector(Some(&busy));
    let sel_median = selector(Some(&median));
    let sel_all = selector(None);

    println!(
        "  {:<44} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>10} | goal",
        "query", "stacks", "value", "out", "p50 ms", "p99 ms", "max ms", "merge p50"
    );
    let row = |name: &str, t: &Timed, goal: Option<f64>| {
        let p50 = percentile(&t.total, 50.0);
        let g = match goal {
            Some(g) => format!("p50 <= {g:.0} ms  {}", verdict(p50 <= g)),
            None => String::new(),
        };
        println!(
            "  {:<44} {:>8} {:>8} {:>8} | {:>8.1} {:>8.1} {:>8.1} | {:>10.1} | {}",
            name,
            t.shape.stacks,
            si(t.shape.total as f64),
            t.shape.out,
            p50,
            percentile(&t.total, 99.0),
            t.total.last().copied().unwrap_or(f64::NAN),
            percentile(&t.merge, 50.0),
            g
        );
    };
    let cases: Vec<(&str, Case, Option<f64>)> = vec![
        (
            "flame graph, busiest service, 24 h",
            Box::new(|| flame(&store, &sel_busy, day)),
            Some(FLAME_GOAL_MS),
        ),
        (
            "flame graph, median service, 24 h",
            Box::new(|| flame(&store, &sel_median, day)),
            Some(FLAME_GOAL_MS),
        ),
        (
            "flame graph, busiest service, last 1 h",
            Box::new(|| flame(&store, &sel_busy, hour)),
            Some(FLAME_GOAL_MS),
        ),
        (
            "flame graph, all services, last 1 h",
            Box::new(|| flame(&store, &sel_all, hour)),
            Some(FLAME_GOAL_MS),
        ),
        (
            "flame graph, all services, 24 h",
            Box::new(|| flame(&store, &sel_all, day)),
            None,
        ),
        (
            "top functions, busiest service, 24 h",
            Box::new(|| top(&store, &sel_busy, day)),
            None,
        ),
        (
            "diff, busiest service, 1st vs 2nd 12 h",
            Box::new(|| diff(&store, &sel_busy, yesterday, today)),
            Some(DIFF_GOAL_MS),
        ),
        (
            "diff, median service, 1st vs 2nd 12 h",
            Box::new(|| diff(&store, &sel_median, yesterday, today)),
            Some(DIFF_GOAL_MS),
        ),
    ];
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    for (name, f, goal) in &cases {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let t = time(runs, f);
        row(name, &t, *goal);
    }
    println!();
    println!("  stacks: distinct stacks merged (both sides for a diff); value: their total; out: flame nodes kept (max {MAX_NODES}), top rows or diff rows");
}
