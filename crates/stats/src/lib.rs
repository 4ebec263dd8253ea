//! The statistics perfpilot shares between its profile diffs, its anomaly
//! detectors and its release gate: normal tails (through `libm`'s erfc,
//! which keeps full relative precision deep into the tail), tests for the
//! difference of two proportions, and the Benjamini–Hochberg correction
//! for testing many at once; the Mann–Kendall trend test and the
//! Theil–Sen slope (memory leak detectors).

use serde::{Deserialize, Serialize};

/// Which test produced a p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestMethod {
    /// Pooled two-proportion z-test (large counts).
    ZTest,
    /// Fisher's exact test, two-sided (small expected counts).
    FisherExact,
    /// Nothing to test: one side has no samples. The p-value is 1.
    None,
}

/// Below this expected count in any cell of the 2×2 table, the normal
/// approximation is poor (Cochran's rule) and the exact test is used.
const MIN_EXPECTED: f64 = 5.0;

/// The exact test costs one step per possible table; beyond this many the
/// z-test is used even for small expected counts. Only reached with very
/// unequal sample counts (small expected counts bound the support by about
/// √(5·N)).
const FISHER_MAX_SUPPORT: u64 = 1_000_000;

/// Two-sided test of `x1/n1 == x2/n2`: `x` of `n` samples contain the
/// function, on each side. Counts above their `n` are clamped to it.
///
/// Uses Fisher's exact test when some expected cell count is below 5 and
/// the pooled two-proportion z-test otherwise.
pub fn two_proportion_test(x1: u64, n1: u64, x2: u64, n2: u64) -> (f64, TestMethod) {
    if n1 == 0 || n2 == 0 {
        return (1.0, TestMethod::None);
    }
    let (x1, x2) = (x1.min(n1), x2.min(n2));
    let n = n1.saturating_add(n2);
    let k = x1 + x2;
    let min_row = n1.min(n2);
    let min_col = k.min(n - k);
    let min_expected = min_row as f64 * min_col as f64 / n as f64;
    if min_expected < MIN_EXPECTED && min_row.min(min_col) < FISHER_MAX_SUPPORT {
        (fisher_exact(x1, n1, x2, n2), TestMethod::FisherExact)
    } else {
        (z_test(x1, n1, x2, n2), TestMethod::ZTest)
    }
}

/// Pooled two-proportion z-test, two-sided p-value.
pub fn z_test(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    // Zero variance: the function is in no sample or in every sample on
    // both sides, so the proportions are equal.
    if variance.is_nan() || variance <= 0.0 {
        return 1.0;
    }
    let z = (x2 / n2 - x1 / n1) / variance.sqrt();
    normal_two_sided(z)
}

/// The complementary error function, `1 - erf(x)`.
pub fn erfc(x: f64) -> f64 {
    libm::erfc(x)
}

/// P(|Z| >= |z|) for a standard normal Z. erfc keeps full relative
/// precision deep into the tail, where `1 - cdf` would round to 0.
pub fn normal_two_sided(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

/// P(Z > z) for a standard normal Z (one-sided, upper tail).
pub fn normal_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Fisher's exact test, two-sided: the probability, given both margins, of
/// a table at most as likely as the observed one (with the usual relative
/// tolerance of 1e-7 so that ties are not lost to rounding).
pub fn fisher_exact(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    let (x1, x2) = (x1.min(n1), x2.min(n2));
    let k = x1 + x2;
    // x1 follows a hypergeometric distribution on lo..=hi.
    let lo = k.saturating_sub(n2);
    let hi = k.min(n1);
    // Log-probabilities up to a constant, by the ratio
    // P(x+1)/P(x) = (k-x)(n1-x) / ((x+1)(n2-(k-x-1))); no factorials, so
    // no overflow and no log-gamma.
    let mut log_w: Vec<f64> = Vec::with_capacity((hi - lo + 1) as usize);
    let mut acc = 0.0f64;
    log_w.push(acc);
    for x in lo..hi {
        let num = (k - x) as f64 * (n1 - x) as f64;
        let den = (x + 1) as f64 * (n2 - (k - x - 1)) as f64;
        acc += (num / den).ln();
        log_w.push(acc);
    }
    let observed = log_w[(x1 - lo) as usize];
    let threshold = observed + 1e-7f64.ln_1p();
    let max_all = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let max_tail = log_w
        .iter()
        .copied()
        .filter(|&w| w <= threshold)
        .fold(f64::NEG_INFINITY, f64::max);
    // Sums relative to each part's largest term, so a p-value far below
    // e^-745 relative to the mode is still computed rather than 0.
    let all: f64 = log_w.iter().map(|&w| (w - max_all).exp()).sum();
    let tail: f64 = log_w
        .iter()
        .filter(|&&w| w <= threshold)
        .map(|&w| (w - max_tail).exp())
        .sum();
    (max_tail - max_all + tail.ln() - all.ln()).exp().min(1.0)
}

/// Benjamini–Hochberg q-values (false discovery rate adjusted p-values), in
/// the order of `p_values`: `q(i) = min over j ranked at or above i of
/// p(j)·m/rank(j)`, capped at 1. NaN p-values are treated as 1.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let p: Vec<f64> = p_values
        .iter()
        .map(|&p| if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) })
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank0, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank0 + 1) as f64);
        q[i] = running;
    }
    q
}

/// Two-sided p-value of the Mann–Kendall test for a monotonic trend.
pub fn mann_kendall(points: &[(i64, f64)]) -> f64 {
    let n = points.len();
    if n < 3 {
        return 1.0;
    }
    let mut s: i64 = 0;
    for i in 0..n {
        let xi = points[i].1;
        for p in &points[i + 1..] {
            s += (p.1 > xi) as i64 - (p.1 < xi) as i64;
        }
    }
    let nf = n as f64;
    let var = nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0;
    // Continuity correction.
    let z = (s.abs() as f64 - 1.0).max(0.0) / var.sqrt();
    normal_two_sided(z)
}

/// Median of the pairwise slopes: a slope that outliers (a GC drop, a
/// spike) barely move.
pub fn theil_sen(points: &[(i64, f64)]) -> f64 {
    let n = points.len();
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for p in &points[i + 1..] {
            let dt = (p.0 - points[i].0) as f64;
            if dt > 0.0 {
                slopes.push((p.1 - points[i].1) / dt);
            }
        }
    }
    if slopes.is_empty() {
        return 0.0;
    }
    let mid = slopes.len() / 2;
    let (_, m, _) = slopes.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C(n, k) exactly, for small n.
    fn binom(n: u64, k: u64) -> u128 {
        (0..k).fold(1u128, |acc, i| acc * u128::from(n - i) / u128::from(i + 1))
    }

    #[test]
    fn normal_tail_matches_known_quantiles() {
        // Textbook values: P(|Z| > 1.959964) = 0.05, P(|Z| > 2.575829) = 0.01.
        assert!((normal_two_sided(1.959964) - 0.05).abs() < 1e-6);
        assert!((normal_two_sided(-2.575829) - 0.01).abs() < 1e-6);
        assert_eq!(normal_two_sided(0.0), 1.0);
        // Far tail: P(|Z| > 10) = 1.523971e-23.
        let p = normal_two_sided(10.0);
        assert!((p / 1.523971e-23 - 1.0).abs() < 1e-5, "{p}");
    }

    #[test]
    fn one_sided_tail_matches_known_values() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_tail(1.96) - 0.024_997_9).abs() < 1e-6);
        assert!((normal_tail(-1.0) - 0.841_344_7).abs() < 1e-6);
        // Far tail: P(Z > 6) = 9.865876e-10.
        let p = normal_tail(6.0);
        assert!((p / 9.865_876e-10 - 1.0).abs() < 1e-5, "{p}");
        assert_eq!(erfc(0.0), 1.0);
        assert!((erfc(-1.0) + erfc(1.0) - 2.0).abs() < 1e-15);
    }

    #[test]
    fn z_test_statistic_matches_hand_computation() {
        // 40/100 vs 60/100: pooled 0.5, se = sqrt(0.25 * 0.02) = 0.0707107,
        // z = 0.2 / 0.0707107 = 2.828427; P(|Z| > 2.828427) = 0.004677735.
        let p = z_test(40, 100, 60, 100);
        assert!((p - 0.004677735).abs() < 1e-8, "{p}");
        // Symmetric in the direction of the change.
        assert_eq!(p, z_test(60, 100, 40, 100));
        assert_eq!(z_test(0, 100, 0, 50), 1.0);
        assert_eq!(z_test(100, 100, 50, 50), 1.0);
    }

    #[test]
    fn fisher_matches_the_tea_tasting_example() {
        // Fisher's lady tasting tea, 3 of 4 right: the two-sided p-value is
        // (1 + 16 + 16 + 1) / 70 = 34/70 for tables as or less likely.
        let p = fisher_exact(3, 4, 1, 4);
        assert!((p - 34.0 / 70.0).abs() < 1e-12, "{p}");
        // Perfect split: 2/70.
        let p = fisher_exact(4, 4, 0, 4);
        assert!((p - 2.0 / 70.0).abs() < 1e-12, "{p}");
        // The observed table itself is the most likely: p = 1.
        assert!((fisher_exact(2, 4, 2, 4) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn fisher_matches_direct_enumeration() {
        // Enumerate the hypergeometric distribution with exact integers and
        // compare, over every table with these margins.
        let (n1, n2) = (13u64, 9u64);
        for k in 0..=(n1 + n2) {
            let lo = k.saturating_sub(n2);
            let hi = k.min(n1);
            let probs: Vec<f64> = (lo..=hi)
                .map(|x| (binom(n1, x) * binom(n2, k - x)) as f64 / binom(n1 + n2, k) as f64)
                .collect();
            for x1 in lo..=hi {
                let obs = probs[(x1 - lo) as usize];
                let expected: f64 = probs.iter().filter(|&&p| p <= obs * (1.0 + 1e-7)).sum();
                let got = fisher_exact(x1, n1, k - x1, n2);
                assert!(
                    (got - expected.min(1.0)).abs() < 1e-9,
                    "k={k} x1={x1}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn fisher_tiny_p_values_do_not_underflow_to_zero() {
        // 0/1000 vs 1000/1000: P = 2 / C(2000, 1000) ≈ 10^-600, below f64;
        // but 0/300 vs 300/300 is 2/C(600,300) ≈ 1.7e-179, representable.
        let p = fisher_exact(0, 300, 300, 300);
        assert!(p > 0.0 && p < 1e-170, "{p}");
        let log10 = p.log10();
        // log10(2) - log10(C(600, 300)); C(600,300) ≈ 1.35e179.
        assert!((log10 - (2f64.log10() - 179.13)).abs() < 0.01, "{log10}");
    }

    #[test]
    fn method_choice_follows_expected_counts() {
        // 2/20 vs 6/20: the smallest expected count is 20·8/40 = 4 < 5.
        assert_eq!(two_proportion_test(2, 20, 6, 20).1, TestMethod::FisherExact);
        // 200/2000 vs 600/2000: expected counts in the hundreds.
        assert_eq!(
            two_proportion_test(200, 2000, 600, 2000).1,
            TestMethod::ZTest
        );
        assert_eq!(two_proportion_test(1, 0, 1, 10), (1.0, TestMethod::None));
    }

    #[test]
    fn benjamini_hochberg_by_hand() {
        // Sorted: 0.005 (rank 1), 0.01 (2), 0.03 (3), 0.04 (4); m = 4.
        // Raw p·m/rank: 0.02, 0.02, 0.04, 0.04; already monotone.
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.02, 0.04, 0.04, 0.02];
        for (a, b) in q.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
        // The monotonicity step: raw values are 0.011·3/1 = 0.033 (rank 1),
        // 0.02·3/2 = 0.03 (rank 2), 0.9·3/3 = 0.9 (rank 3); rank 1 is
        // lowered to rank 2's 0.03.
        let q = benjamini_hochberg(&[0.9, 0.02, 0.011]);
        assert!((q[2] - 0.03).abs() < 1e-12 && (q[1] - 0.03).abs() < 1e-12);
        assert!((q[0] - 0.9).abs() < 1e-12);
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[f64::NAN]), vec![1.0]);
    }
}
