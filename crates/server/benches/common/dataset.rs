//! The 24 h dataset the storage and query benchmarks use: every service's
//! pods, one series per thread (the agent's label sets), a profile every
//! 10 s, sample values the counts of 99 Hz ticks drawn from the thread's
//! stacks by hotness. Load follows a daily curve; pods are redeployed
//! every 12 h (new pod, pid, container and build: new series).
//!
//! Batches are built directly (one per minute of data, all services) and
//! ingested with their times into an [`EmbeddedStore`] without background
//! maintenance; the head is flushed every 10 minutes of data and the store
//! compacted at the end, at the dataset's "now".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perfpilot_store::embedded::{EmbeddedStore, Options, StoreStats};
use perfpilot_store::{Batch, BatchProfile, Labels, Store, PROFILE_TYPE_LABEL};

use super::catalog::Catalog;
use super::hostgen::thread_labels;
use super::{now_ms, Rng};

/// Bump when the generator changes: cached datasets are keyed by it.
pub const VERSION: &str = "v2";
pub const PROFILE_TYPE: &str = "process_cpu:samples:count:cpu:nanoseconds";
pub const STEP_MS: i64 = 10_000;
pub const HOUR_MS: i64 = 3_600_000;
const DEPLOY_MS: i64 = 12 * HOUR_MS;
const META: &str = "bench-meta.txt";

#[derive(Debug, Clone)]
pub struct Spec {
    pub services: usize,
    pub hours: i64,
    /// Samples ((series, stack, time) rows) to generate, roughly.
    pub target_samples: u64,
    pub seed: u64,
    /// Steps (10 s) of data per ingested batch (aligned to multiples of
    /// this much absolute time; must divide `flush_steps`).
    pub batch_steps: usize,
    /// Sample values uniform in 1–50 instead of tick counts.
    pub uniform_values: bool,
    /// Steps of data between flushes (aligned to multiples of this much
    /// absolute time).
    pub flush_steps: usize,
}

impl Spec {
    /// The default dataset (`--quick`: a small one); `--samples N` sets the
    /// number of samples.
    pub fn new(quick: bool) -> Spec {
        let samples = std::env::args()
            .skip_while(|a| a != "--samples")
            .nth(1)
            .and_then(|n| n.replace('_', "").parse().ok());
        Spec {
            services: 50,
            hours: 24,
            target_samples: samples.unwrap_or(if quick { 1_500_000 } else { 12_000_000 }),
            seed: 42,
            uniform_values: super::flag("--uniform-values"),
            batch_steps: 6,
            flush_steps: 60,
        }
    }

    pub fn key(&self) -> String {
        format!(
            "dataset-{VERSION}-{}svc-{}h-{}-seed{}{}",
            self.services,
            self.hours,
            self.target_samples,
            self.seed,
            if self.uniform_values { "-uniform" } else { "" }
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub start_ms: i64,
    pub end_ms: i64,
    pub samples: u64,
    pub series: u64,
    pub profiles: u64,
    /// (service, samples), in catalog order.
    pub services: Vec<(String, u64)>,
}

impl Meta {
    fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut s = format!(
            "start_ms {}\nend_ms {}\nsamples {}\nseries {}\nprofiles {}\n",
            self.start_ms, self.end_ms, self.samples, self.series, self.profiles
        );
        for (name, n) in &self.services {
            s.push_str(&format!("service {name} {n}\n"));
        }
        std::fs::write(path, s)
    }

    fn read(path: &Path) -> Option<Meta> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut m = Meta::default();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            match (parts.next()?, parts.next()?) {
                ("start_ms", v) => m.start_ms = v.parse().ok()?,
                ("end_ms", v) => m.end_ms = v.parse().ok()?,
                ("samples", v) => m.samples = v.parse().ok()?,
                ("series", v) => m.series = v.parse().ok()?,
                ("profiles", v) => m.profiles = v.parse().ok()?,
                ("service", name) => m
                    .services
                    .push((name.to_string(), parts.next()?.parse().ok()?)),
                _ => return None,
            }
        }
        (m.end_ms > 0).then_some(m)
    }

    /// The service with the most samples, and the median one.
    pub fn busiest_and_median(&self) -> ((String, u64), (String, u64)) {
        let mut v = self.services.clone();
        v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        (v[0].clone(), v[v.len() / 2].clone())
    }
}

/// What building the dataset took.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub meta: Meta,
    pub catalog: Duration,
    pub generate: Duration,
    pub ingest: Duration,
    pub flush: Duration,
    pub compact: Duration,
    pub batches: u64,
    pub max_batch_samples: usize,
    pub stacks: usize,
    pub functions: usize,
    /// [`Catalog::summary`].
    pub catalog_summary: String,
    /// The store's figures just after compaction, before it was closed.
    pub stats: StoreStats,
    /// Samples with value 1, 2–5, 6–20, 21–50, over 50.
    pub values: [u64; 5],
}

/// One series source: a thread of a pod of a service.
struct Slot {
    svc: usize,
    pod: usize,
    kind: usize,
    thread: usize,
    /// Mean ticks per 10 s at scale 1.
    load: f64,
    /// When its pod's redeploys happen.
    deploy_offset: i64,
}

fn slots(cat: &Catalog) -> Vec<Slot> {
    let mut out = Vec::new();
    for s in &cat.services {
        for pod in 0..s.pods {
            for (k, kind) in s.kinds.iter().enumerate() {
                for t in 0..kind.count {
                    out.push(Slot {
                        svc: s.index,
                        pod,
                        kind: k,
                        thread: t,
                        load: s.weight * kind.share / kind.count as f64,
                        deploy_offset: ((s.index as i64 * 7919 + pod as i64 * 5) * 60_000)
                            % DEPLOY_MS,
                    });
                }
            }
        }
    }
    out
}

fn diurnal(svc: usize, t: i64) -> f64 {
    let day = 24 * HOUR_MS;
    let phase = (t.rem_euclid(day)) as f64 / day as f64 + svc as f64 * 0.013;
    1.0 + 0.4 * (phase * std::f64::consts::TAU).sin()
}

/// Rows of one 10 s step: (slot, stack index within its service, ticks),
/// grouped by slot.
struct StepGen {
    dense: Vec<u32>,
    touched: Vec<u32>,
}

impl StepGen {
    fn new(cat: &Catalog) -> StepGen {
        let max = cat
            .services
            .iter()
            .map(|s| s.stacks.len())
            .max()
            .unwrap_or(0);
        StepGen {
            dense: vec![0; max],
            touched: Vec::new(),
        }
    }

    fn step(
        &mut self,
        cat: &Catalog,
        slots: &[Slot],
        scale: f64,
        t: i64,
        rng: &mut Rng,
        out: &mut Vec<(u32, u32, u32)>,
    ) {
        for (i, sl) in slots.iter().enumerate() {
            let svc = &cat.services[sl.svc];
            let lambda = scale * sl.load * diurnal(sl.svc, t);
            let x = lambda * (0.4 + 1.2 * rng.f64());
            let ticks = x as usize + usize::from(rng.f64() < x.fract());
            if ticks == 0 {
                continue;
            }
            let kind = &svc.kinds[sl.kind];
            for _ in 0..ticks {
                let s = kind.stacks[kind.zipf.sample(rng)];
                if self.dense[s as usize] == 0 {
                    self.touched.push(s);
                }
                self.dense[s as usize] += 1;
            }
            for &s in &self.touched {
                out.push((i as u32, s, self.dense[s as usize]));
                self.dense[s as usize] = 0;
            }
            self.touched.clear();
        }
    }
}

/// Finds the load scale that yields about `target` rows over `steps`, by
/// generating every 50th step.
fn calibrate(cat: &Catalog, slots: &[Slot], spec: &Spec, start: i64, steps: usize) -> f64 {
    let total_load: f64 = slots.iter().map(|s| s.load).sum();
    let mut scale = spec.target_samples as f64 / (steps as f64 * total_load);
    let mut gen = StepGen::new(cat);
    let mut rows = Vec::new();
    for _ in 0..10 {
        let mut rng = Rng::new(spec.seed ^ 0xCA11);
        let mut n = 0usize;
        let mut sampled = 0usize;
        for step in (0..steps).step_by(50) {
            rows.clear();
            gen.step(
                cat,
                slots,
                scale,
                start + step as i64 * STEP_MS,
                &mut rng,
                &mut rows,
            );
            n += rows.len();
            sampled += 1;
        }
        let est = n as f64 * steps as f64 / sampled as f64;
        let ratio = spec.target_samples as f64 / est.max(1.0);
        if (ratio - 1.0).abs() < 0.01 {
            break;
        }
        scale *= ratio.powf(1.25);
    }
    scale
}

/// Batch assembly: strings and stacks numbered per batch.
struct BatchAsm {
    batch: Batch,
    epoch: u32,
    fn_epoch: Vec<u32>,
    fn_local: Vec<u32>,
    stack_epoch: Vec<u32>,
    stack_local: Vec<u32>,
}

impl BatchAsm {
    fn new(cat: &Catalog) -> BatchAsm {
        BatchAsm {
            batch: Batch::default(),
            epoch: 1,
            fn_epoch: vec![0; cat.functions.names.len()],
            fn_local: vec![0; cat.functions.names.len()],
            stack_epoch: vec![0; cat.total_stacks],
            stack_local: vec![0; cat.total_stacks],
        }
    }

    fn stack(&mut self, cat: &Catalog, svc: usize, s: u32) -> u32 {
        let service = &cat.services[svc];
        let g = (service.stack_base + s) as usize;
        if self.stack_epoch[g] == self.epoch {
            return self.stack_local[g];
        }
        let frames: Vec<u32> = service.stacks[s as usize]
            .iter()
            .map(|&f| {
                let f = f as usize;
                if self.fn_epoch[f] != self.epoch {
                    self.fn_epoch[f] = self.epoch;
                    self.fn_local[f] = self.batch.strings.len() as u32;
                    self.batch.strings.push(cat.functions.names[f].clone());
                }
                self.fn_local[f]
            })
            .collect();
        let id = self.batch.stacks.len() as u32;
        self.batch.stacks.push(frames);
        self.stack_epoch[g] = self.epoch;
        self.stack_local[g] = id;
        id
    }

    fn take(&mut self) -> Batch {
        self.epoch += 1;
        std::mem::take(&mut self.batch)
    }
}

/// Generates the dataset into `dir` (which must be empty or absent).
pub fn build(dir: &Path, spec: &Spec, log: bool) -> Built {
    let t0 = Instant::now();
    let cat = Catalog::new(spec.services, spec.seed);
    let catalog = t0.elapsed();
    let slots = slots(&cat);
    let steps = (spec.hours * HOUR_MS / STEP_MS) as usize;
    let end = now_ms() / STEP_MS * STEP_MS;
    let start = end - steps as i64 * STEP_MS;
    let scale = calibrate(&cat, &slots, spec, start, steps);

    std::fs::create_dir_all(dir).expect("creating the dataset directory");
    let store = EmbeddedStore::open(
        dir,
        Options {
            background: false,
            ..Default::default()
        },
    )
    .expect("opening the store");

    let mut built = Built {
        catalog,
        stacks: cat.total_stacks,
        functions: cat.functions.names.len(),
        catalog_summary: cat.summary(),
        ..Default::default()
    };
    let mut per_service = vec![0u64; cat.services.len()];
    let mut labels_cache: HashMap<(u32, i64), Labels> = HashMap::new();
    let mut rng = Rng::new(spec.seed ^ 0xDA7A);
    let mut gen = StepGen::new(&cat);
    let mut asm = BatchAsm::new(&cat);
    let mut rows = Vec::new();
    let mut gen_time = Duration::ZERO;
    let mut last_log = Instant::now();
    for step in 0..steps {
        let g0 = Instant::now();
        let t = start + step as i64 * STEP_MS;
        rows.clear();
        gen.step(&cat, &slots, scale, t, &mut rng, &mut rows);
        let mut i = 0;
        while i < rows.len() {
            let slot_id = rows[i].0;
            let sl = &slots[slot_id as usize];
            let deploy = (t - start + sl.deploy_offset).div_euclid(DEPLOY_MS);
            let labels = labels_cache
                .entry((slot_id, deploy))
                .or_insert_with(|| {
                    let mut l = vec![(PROFILE_TYPE_LABEL.to_string(), PROFILE_TYPE.to_string())];
                    l.extend(thread_labels(
                        &cat.services[sl.svc],
                        sl.pod,
                        deploy as u64,
                        sl.kind,
                        sl.thread,
                    ));
                    l
                })
                .clone();
            let mut samples = Vec::new();
            while i < rows.len() && rows[i].0 == slot_id {
                let (_, s, mut n) = rows[i];
                if spec.uniform_values {
                    n = 1 + rng.below(50) as u32;
                }
                samples.push((asm.stack(&cat, sl.svc, s), n as i64));
                built.values[match n {
                    1 => 0,
                    2..=5 => 1,
                    6..=20 => 2,
                    21..=50 => 3,
                    _ => 4,
                }] += 1;
                i += 1;
            }
            per_service[sl.svc] += samples.len() as u64;
            built.meta.profiles += 1;
            asm.batch.profiles.push(BatchProfile {
                labels,
                time_ms: t,
                samples,
            });
        }
        gen_time += g0.elapsed();
        let batch_every = spec.batch_steps as i64 * STEP_MS;
        if (t + STEP_MS) % batch_every == 0 || step + 1 == steps {
            let batch = asm.take();
            let n = batch.sample_count();
            built.max_batch_samples = built.max_batch_samples.max(n);
            built.meta.samples += n as u64;
            built.batches += 1;
            let i0 = Instant::now();
            store.ingest(&batch).expect("ingesting a batch");
            built.ingest += i0.elapsed();
        }
        // Flushes end on a multiple of 10 minutes of absolute time, so no
        // flushed block straddles an hour partition: a compaction of such a
        // block writes sibling outputs in two partitions, and the store's
        // recovery deletes the first when the second has since been
        // compacted again (data loss on reopen; see the benchmark report).
        let flush_every = spec.flush_steps as i64 * STEP_MS;
        if (t + STEP_MS) % flush_every == 0 || step + 1 == steps {
            let f0 = Instant::now();
            store.flush().expect("flushing");
            built.flush += f0.elapsed();
        }
        if log && last_log.elapsed() > Duration::from_secs(10) {
            last_log = Instant::now();
            eprintln!(
                "  ... {:.0}% of 24 h generated, {} samples",
                100.0 * (step + 1) as f64 / steps as f64,
                built.meta.samples
            );
        }
    }
    built.generate = gen_time;
    let c0 = Instant::now();
    store.compact(end).expect("compacting");
    built.compact = c0.elapsed();
    built.stats = store.stats();
    built.meta.start_ms = start;
    built.meta.end_ms = end;
    built.meta.series = labels_cache.len() as u64;
    built.meta.services = cat
        .services
        .iter()
        .zip(&per_service)
        .map(|(s, &n)| (s.name.clone(), n))
        .collect();
    drop(store);
    built
}

pub fn cache_dir(spec: &Spec) -> PathBuf {
    super::target_dir().join("perfpilot-bench").join(spec.key())
}

/// The dataset in its cache directory, generated unless already there
/// (or `regenerate`). Returns the build figures when it was generated.
pub fn cached(spec: &Spec, regenerate: bool) -> (PathBuf, Meta, Option<Built>) {
    let dir = cache_dir(spec);
    if !regenerate {
        if let Some(meta) = Meta::read(&dir.join(META)) {
            return (dir, meta, None);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let built = build(&dir, spec, true);
    built
        .meta
        .write(&dir.join(META))
        .expect("writing the dataset's description");
    (dir, built.meta.clone(), Some(built))
}
