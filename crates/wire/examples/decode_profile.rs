//! Times `batch_from_pprof` on an agent-like profile (for profiling the
//! ingest fast path): `cargo run --release -p perfpilot-wire --example decode_profile`.
use perfpilot_model::{Profile, ValueType};

fn main() {
    let mut p = Profile::new(vec![
        ValueType::new("samples", "count"),
        ValueType::new("cpu", "nanoseconds"),
    ]);
    p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
    p.time_nanos = 1_795_000_000_000_000_000;
    let funcs: Vec<u32> = (0..3000)
        .map(|i| p.add_function_named(&format!("crate::module{}::function_{i}", i % 40)))
        .collect();
    let locs: Vec<u32> = funcs.iter().map(|&f| p.add_function_location(f)).collect();
    let mut x = 12345u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let stacks: Vec<u32> = (0..4000)
        .map(|_| {
            let depth = 10 + rnd() % 40;
            let st: Vec<u32> = (0..depth).map(|_| locs[(rnd() % 3000) as usize]).collect();
            p.add_stack(&st)
        })
        .collect();
    let sets: Vec<u32> = (0..200)
        .map(|t| {
            p.add_label_set([
                ("service_name", format!("svc{}", t % 20)),
                ("pid", format!("{}", 1000 + t % 40)),
                ("tid", format!("{}", 5000 + t)),
                ("thread_name", format!("worker-{t}")),
                ("process_name", format!("svc{}", t % 20)),
                ("exe", format!("/usr/bin/svc{}", t % 20)),
                (
                    "build_id",
                    "0123456789abcdef0123456789abcdef01234567".to_string(),
                ),
                ("cgroup", format!("/system.slice/svc{}.service", t % 20)),
                ("systemd_unit", format!("svc{}.service", t % 20)),
            ])
        })
        .collect();
    for i in 0..5000u64 {
        let s = stacks[(rnd() % 4000) as usize];
        let l = sets[(i % 200) as usize];
        let c = 1 + (rnd() % 5) as i64;
        p.add_sample(s, l, &[c, c * 10_101_010]);
    }
    let bytes = perfpilot_model::pprof::encode(&p).unwrap();
    let limits = perfpilot_wire::Limits::default();
    let n = 400;
    let t = std::time::Instant::now();
    let mut samples = 0;
    for _ in 0..n {
        let b =
            perfpilot_wire::batch_from_pprof(&bytes, &[], "x", 1_795_000_000_000, &limits).unwrap();
        samples += b.sample_count();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} KiB pprof, {} samples/batch: {:.0} samples/s",
        bytes.len() / 1024,
        samples / n,
        samples as f64 / secs
    );
}
