//! The sketch's relative-error bound against exact quantiles on random
//! data, and merging.

use perfpilot_baseline::sketch::Sketch;
use rand::{Rng, SeedableRng};

fn exact(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// Values from several shapes a latency takes: log-normal, a mixture with
/// a slow mode, uniform over decades, and a heavy Pareto tail.
fn samples(seed: u64, n: usize) -> Vec<Vec<f64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = move |rng: &mut rand::rngs::StdRng| {
        let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let lognormal: Vec<f64> = (0..n)
        .map(|_| 20.0 * (0.8 * normal(&mut rng)).exp())
        .collect();
    let mixture: Vec<f64> = (0..n)
        .map(|_| {
            if rng.gen_bool(0.05) {
                300.0 + 50.0 * normal(&mut rng).abs()
            } else {
                5.0 * (0.3 * normal(&mut rng)).exp()
            }
        })
        .collect();
    let decades: Vec<f64> = (0..n)
        .map(|_| 10f64.powf(rng.gen_range(-3.0..5.0)))
        .collect();
    let pareto: Vec<f64> = (0..n)
        .map(|_| 1.0 / rng.gen_range(1e-6f64..1.0).powf(1.0 / 1.2))
        .collect();
    vec![lognormal, mixture, decades, pareto]
}

#[test]
fn quantiles_are_within_the_relative_accuracy_of_exact_ones() {
    for accuracy in [0.01, 0.02, 0.05] {
        for mut data in samples(42, 50_000) {
            let mut s = Sketch::with_accuracy(accuracy).unwrap();
            for &v in &data {
                s.add(v);
            }
            data.sort_by(f64::total_cmp);
            for q in [
                0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0,
            ] {
                let want = exact(&data, q);
                let got = s.quantile(q).unwrap();
                let err = (got - want).abs() / want;
                // A hair of slack for the logarithm's rounding at bucket edges.
                assert!(
                    err <= accuracy * (1.0 + 1e-9),
                    "a={accuracy} q={q}: {got} vs {want} ({err})"
                );
            }
            assert_eq!(s.count(), data.len() as u64);
        }
    }
}

#[test]
fn merging_equals_adding_everything_to_one() {
    let data = &samples(7, 20_000)[0];
    let mut whole = Sketch::new();
    let mut parts = vec![Sketch::new(), Sketch::new(), Sketch::new()];
    for (i, &v) in data.iter().enumerate() {
        // One part far above the others, so merging widens the range.
        let v = if i % 3 == 2 { v * 1000.0 } else { v };
        whole.add(v);
        parts[i % 3].add(v);
    }
    let mut merged = Sketch::new();
    for p in &parts {
        merged.merge(p).unwrap();
    }
    assert_eq!(merged.count(), whole.count());
    for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
        assert_eq!(merged.quantile(q), whole.quantile(q), "q={q}");
    }
    assert_eq!(
        merged.bins().collect::<Vec<_>>(),
        whole.bins().collect::<Vec<_>>()
    );
    assert!((merged.sum() - whole.sum()).abs() < 1e-6 * whole.sum());
}

#[test]
fn merging_sketches_of_different_accuracy_is_refused() {
    let mut a = Sketch::with_accuracy(0.01).unwrap();
    let b = Sketch::with_accuracy(0.02).unwrap();
    assert!(a.merge(&b).is_err());
}

#[test]
fn buckets_are_exposed_and_bound_their_values() {
    let mut s = Sketch::new();
    for v in [0.5, 1.0, 2.0, 2.01, 1000.0] {
        s.add(v);
    }
    let bins: Vec<(i32, u64)> = s.bins().collect();
    assert_eq!(bins.iter().map(|b| b.1).sum::<u64>(), 5);
    for v in [0.5, 1.0, 2.0, 1000.0] {
        let k = s.key_of(v).unwrap();
        let (lo, hi) = s.bucket_bounds(k);
        assert!(lo < v && v <= hi * (1.0 + 1e-12), "{v} in ({lo}, {hi}]");
        assert!(bins.iter().any(|b| b.0 == k));
        assert!((s.bucket_value(k) - v).abs() / v <= 0.01 + 1e-9);
    }
}
