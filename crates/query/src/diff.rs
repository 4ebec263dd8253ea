//! Comparing two stack tables: per-function share changes with their
//! statistical significance, and a merged call tree for diff flame graphs.

use std::cmp::Ordering;
use std::collections::HashMap;

use perfpilot_model::series::StackTable;
use serde::{Deserialize, Serialize};

use crate::error::QueryError;
use crate::stats::{benjamini_hochberg, two_proportion_test, TestMethod};
use crate::top::{percent, FunctionStats};
use crate::tree::{walk_preorder, CallTree, Names, OrdF64};

/// How [`diff_with`] tests changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffOptions {
    /// The value of one sample: values are divided by it (and rounded) to
    /// get the sample counts the test needs. 1 for sample counts; the
    /// sampling period in nanoseconds for CPU time, e.g. 10_000_000 at
    /// 100 Hz. Leaving it at 1 for nanosecond values makes every change
    /// look significant.
    pub sample_weight: f64,
    /// A change is significant when its q-value is below this.
    pub alpha: f64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            sample_weight: 1.0,
            alpha: 0.05,
        }
    }
}

impl DiffOptions {
    pub fn validate(&self) -> Result<(), QueryError> {
        if !(self.sample_weight.is_finite() && self.sample_weight > 0.0) {
            return Err(QueryError::InvalidOption {
                name: "sample_weight",
                reason: format!("must be a positive number, got {}", self.sample_weight),
            });
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(QueryError::InvalidOption {
                name: "alpha",
                reason: format!("must be in (0, 1], got {}", self.alpha),
            });
        }
        Ok(())
    }
}

/// One function's change from base to target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRow {
    pub name: String,
    pub base_self: i64,
    pub base_total: i64,
    /// Percent (0–100) of the base table total.
    pub base_self_percent: f64,
    pub base_total_percent: f64,
    pub target_self: i64,
    pub target_total: i64,
    /// Percent (0–100) of the target table total.
    pub target_self_percent: f64,
    pub target_total_percent: f64,
    /// `target_total_percent - base_total_percent`, in percentage points.
    pub total_percent_change: f64,
    /// Two-sided p-value for "the function's total share is the same in
    /// both", on sample counts.
    pub p_value: f64,
    /// Benjamini–Hochberg adjusted p-value over all rows of the diff.
    pub q_value: f64,
    /// `q_value < alpha`.
    pub significant: bool,
    pub test: TestMethod,
}

/// Per-function comparison of two tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub base_total: i64,
    pub target_total: i64,
    /// The totals in samples (value / `sample_weight`, rounded).
    pub base_samples: u64,
    pub target_samples: u64,
    pub options: DiffOptions,
    /// Significant rows first, then by absolute `total_percent_change`
    /// descending, then by name.
    pub rows: Vec<DiffRow>,
}

/// [`diff_with`] with default options (values are sample counts, alpha
/// 0.05).
pub fn diff(base: &StackTable, target: &StackTable) -> Diff {
    compute(base, target, DiffOptions::default())
}

/// Compares every function's total share of `base` and of `target`.
///
/// The test is on the share of samples whose stack contains the function
/// (its total, counted once per stack): Fisher's exact test when expected
/// counts are small, a two-proportion z-test otherwise (see
/// [`crate::stats::two_proportion_test`]). P-values are adjusted for the
/// number of functions tested with Benjamini–Hochberg.
pub fn diff_with(
    base: &StackTable,
    target: &StackTable,
    options: &DiffOptions,
) -> Result<Diff, QueryError> {
    options.validate()?;
    Ok(compute(base, target, *options))
}

fn compute(base: &StackTable, target: &StackTable, options: DiffOptions) -> Diff {
    let names = Names::new(&[base, target]);
    let b = FunctionStats::compute(base, 0, &names);
    let t = FunctionStats::compute(target, 1, &names);
    let (base_total, target_total) = (base.total(), target.total());
    let count = |v: i64| to_count(v, options.sample_weight);
    let (base_samples, target_samples) = (count(base_total), count(target_total));

    let ids: Vec<u32> = (0..names.names.len() as u32)
        .filter(|&id| b.is_present(id) || t.is_present(id))
        .collect();
    let mut rows: Vec<DiffRow> = ids
        .iter()
        .map(|&id| {
            let (base_self, base_fn_total) = b.get(id);
            let (target_self, target_fn_total) = t.get(id);
            let (p_value, test) = two_proportion_test(
                count(base_fn_total),
                base_samples,
                count(target_fn_total),
                target_samples,
            );
            let base_total_percent = percent(base_fn_total, base_total);
            let target_total_percent = percent(target_fn_total, target_total);
            DiffRow {
                name: names.name(id).to_string(),
                base_self,
                base_total: base_fn_total,
                base_self_percent: percent(base_self, base_total),
                base_total_percent,
                target_self,
                target_total: target_fn_total,
                target_self_percent: percent(target_self, target_total),
                target_total_percent,
                total_percent_change: target_total_percent - base_total_percent,
                p_value,
                q_value: 1.0,
                significant: false,
                test,
            }
        })
        .collect();

    let p: Vec<f64> = rows.iter().map(|r| r.p_value).collect();
    for (row, q) in rows.iter_mut().zip(benjamini_hochberg(&p)) {
        row.q_value = q;
        row.significant = q < options.alpha;
    }
    rows.sort_by(|a, b| {
        b.significant
            .cmp(&a.significant)
            .then_with(|| desc_f64(a.total_percent_change.abs(), b.total_percent_change.abs()))
            .then_with(|| a.name.cmp(&b.name))
    });
    Diff {
        base_total,
        target_total,
        base_samples,
        target_samples,
        options,
        rows,
    }
}

/// `value / weight` rounded to a whole number of samples; negative values
/// (not expected from profiles) count as 0.
fn to_count(value: i64, weight: f64) -> u64 {
    let c = (value as f64 / weight).round();
    if c > 0.0 {
        // `as` saturates for values beyond u64.
        c as u64
    } else {
        0
    }
}

/// Descending order for floats, NaN last.
fn desc_f64(a: f64, b: f64) -> Ordering {
    b.partial_cmp(&a)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

/// One node of a [`DiffTree`]: a call path with its values on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffNode {
    /// Function name; `"total"` for the root, `"other"` for the node that
    /// stands for a parent's dropped children.
    pub name: String,
    pub base_self: i64,
    pub base_total: i64,
    pub target_self: i64,
    pub target_total: i64,
    /// Indices into [`DiffTree::nodes`], in display order.
    pub children: Vec<u32>,
}

/// The call trees of two tables merged into one, with both values per
/// node. Stored flat like [`crate::FlameTree`]: pre-order, `nodes[0]` the
/// root, children by index (name order, "other" last). For every node and
/// each side, `self + Σ children total == total`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffTree {
    pub base_total: i64,
    pub target_total: i64,
    /// True when nodes were dropped to stay within `max_nodes`.
    pub truncated: bool,
    pub nodes: Vec<DiffNode>,
}

/// A diff flame graph in the layout of Pyroscope's diff flamebearer.
///
/// `levels[d]` holds the nodes at depth `d` from left to right, 7 numbers
/// per node:
///
/// ```text
/// [x_gap_base, total_base, self_base, x_gap_target, total_target, self_target, name_index, ...]
/// ```
///
/// Base ("left") and target ("right") each have their own x axis, laid out
/// as in [`crate::FlatFlame`]: `x_gap_*` is the node's left edge minus the
/// right edge of the previous node on the level on that side (0 for the
/// first node), children start at their parent's `x` and self value is the
/// space left on the right. A node missing on one side has total and self
/// 0 there. `name_index` indexes `names`. `max_self` is the largest self
/// value of any node on either side.
///
/// `p_values`, `q_values` and `significant` hold one entry per node, in the
/// order of `levels` (level 0 first, each left to right): whether the
/// node's total share changed, tested as a [`DiffRow`] is, with q-values
/// adjusted over all nodes. Clients colour nodes by them rather than
/// testing again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatDiff {
    pub names: Vec<String>,
    pub levels: Vec<Vec<i64>>,
    pub base_total: i64,
    pub target_total: i64,
    pub max_self: i64,
    #[serde(default)]
    pub p_values: Vec<f64>,
    #[serde(default)]
    pub q_values: Vec<f64>,
    #[serde(default)]
    pub significant: Vec<bool>,
}

/// Merges the call trees of `base` and `target`, with at most `max_nodes`
/// nodes. Truncation works as in [`crate::flame_tree`] ("other" nodes count
/// toward the limit, at least 2 nodes), ranking nodes by the larger of
/// their base share and target share, so that a path that is small in one
/// profile but large in the other is kept.
pub fn diff_tree(base: &StackTable, target: &StackTable, max_nodes: usize) -> DiffTree {
    let names = Names::new(&[base, target]);
    let tree = CallTree::build([base, target], &names);
    let totals = tree.nodes[0].total;
    let share = |v: i64, total: i64| {
        if total == 0 {
            0.0
        } else {
            v as f64 / total as f64
        }
    };
    let kept = tree.select(max_nodes, |n| {
        OrdF64(share(n.total[0], totals[0]).max(share(n.total[1], totals[1])))
    });
    let truncated = tree.truncated(&kept);
    let nodes = tree
        .emit(&kept)
        .into_iter()
        .map(|n| DiffNode {
            name: n.label.text(&names).to_string(),
            base_self: n.self_value[0],
            base_total: n.total[0],
            target_self: n.self_value[1],
            target_total: n.total[1],
            children: n.children,
        })
        .collect();
    DiffTree {
        base_total: totals[0],
        target_total: totals[1],
        truncated,
        nodes,
    }
}

impl DiffTree {
    pub fn root(&self) -> Option<&DiffNode> {
        self.nodes.first()
    }

    /// [`DiffTree::to_flat_with`] with default options (values are sample
    /// counts, alpha 0.05).
    pub fn to_flat(&self) -> FlatDiff {
        self.to_flat_with(&DiffOptions::default())
    }

    /// The diff flamebearer encoding (see [`FlatDiff`]), each node tested
    /// with `options` as [`diff_with`] tests functions. Child indices that
    /// are out of range or repeat a node are ignored.
    pub fn to_flat_with(&self, options: &DiffOptions) -> FlatDiff {
        let count = |v: i64| to_count(v, options.sample_weight);
        let (base_samples, target_samples) = (count(self.base_total), count(self.target_total));
        // Per level, the p-value of each node in the level's order.
        let mut level_p: Vec<Vec<f64>> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut name_ids: HashMap<&str, i64> = HashMap::new();
        let mut levels: Vec<Vec<i64>> = Vec::new();
        // Per level and side: right edge of the last node placed.
        let mut level_end: Vec<[i64; 2]> = Vec::new();
        let mut x = vec![[0i64; 2]; self.nodes.len()];
        let mut max_self = 0;
        let children = |i: usize| -> Vec<usize> {
            self.nodes[i]
                .children
                .iter()
                .map(|&c| c as usize)
                .filter(|&c| c < self.nodes.len())
                .collect()
        };
        walk_preorder(self.nodes.len(), children, |i, depth| {
            let node = &self.nodes[i];
            let mut next = x[i];
            for &c in &node.children {
                if let Some(slot) = x.get_mut(c as usize) {
                    *slot = next;
                    let child = &self.nodes[c as usize];
                    next[0] += child.base_total;
                    next[1] += child.target_total;
                }
            }
            let name = *name_ids.entry(node.name.as_str()).or_insert_with(|| {
                names.push(node.name.clone());
                names.len() as i64 - 1
            });
            if levels.len() <= depth {
                levels.resize(depth + 1, Vec::new());
                level_end.resize(depth + 1, [0; 2]);
                level_p.resize(depth + 1, Vec::new());
            }
            let (p, _) = two_proportion_test(
                count(node.base_total),
                base_samples,
                count(node.target_total),
                target_samples,
            );
            level_p[depth].push(p);
            let end = level_end[depth];
            levels[depth].extend([
                x[i][0] - end[0],
                node.base_total,
                node.base_self,
                x[i][1] - end[1],
                node.target_total,
                node.target_self,
                name,
            ]);
            level_end[depth] = [x[i][0] + node.base_total, x[i][1] + node.target_total];
            max_self = max_self.max(node.base_self).max(node.target_self);
        });
        let p_values: Vec<f64> = level_p.into_iter().flatten().collect();
        let q_values = benjamini_hochberg(&p_values);
        let significant = q_values.iter().map(|&q| q < options.alpha).collect();
        FlatDiff {
            names,
            levels,
            base_total: self.base_total,
            target_total: self.target_total,
            max_self,
            p_values,
            q_values,
            significant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `main → name` stacks with the given values.
    fn table(leaves: &[(&str, i64)]) -> StackTable {
        let mut functions = vec!["main".to_string()];
        let mut stacks = Vec::new();
        for (i, (name, v)) in leaves.iter().enumerate() {
            functions.push(name.to_string());
            stacks.push((vec![0, i as u32 + 1], *v));
        }
        StackTable { functions, stacks }
    }

    fn row<'a>(d: &'a Diff, name: &str) -> &'a DiffRow {
        match d.rows.iter().find(|r| r.name == name) {
            Some(r) => r,
            None => panic!("no row {name}"),
        }
    }

    /// C(n, k) exactly, for small n.
    fn binom(n: u64, k: u64) -> u128 {
        (0..k).fold(1u128, |acc, i| acc * u128::from(n - i) / u128::from(i + 1))
    }

    #[test]
    fn unchanged_function_is_not_significant() {
        // Same proportion (20%) at different sizes: the z statistic is 0.
        let d = diff(
            &table(&[("hot", 2000), ("cold", 8000)]),
            &table(&[("hot", 4000), ("cold", 16000)]),
        );
        let hot = row(&d, "hot");
        assert_eq!(hot.test, TestMethod::ZTest);
        assert!((hot.p_value - 1.0).abs() < 1e-12);
        assert!(hot.total_percent_change.abs() < 1e-12);
        assert!(d.rows.iter().all(|r| !r.significant));

        // Sampling noise: 20% vs 20.3% of 10,000 each. Pooled p = 0.2015,
        // se = sqrt(0.2015·0.7985·2/10000) = 0.005673, z = 0.53, p ≈ 0.6.
        let d = diff(
            &table(&[("hot", 2000), ("cold", 8000)]),
            &table(&[("hot", 2030), ("cold", 7970)]),
        );
        let hot = row(&d, "hot");
        assert!(hot.p_value > 0.5 && hot.p_value < 0.7, "{}", hot.p_value);
        assert!(!hot.significant);
    }

    #[test]
    fn growth_from_10_to_30_percent_at_10000_is_significant() {
        let d = diff(
            &table(&[("f", 1000), ("g", 9000)]),
            &table(&[("f", 3000), ("g", 7000)]),
        );
        let f = row(&d, "f");
        assert!((f.base_total_percent - 10.0).abs() < 1e-9);
        assert!((f.target_total_percent - 30.0).abs() < 1e-9);
        assert!((f.total_percent_change - 20.0).abs() < 1e-9);
        // Pooled p = 0.2, se = sqrt(0.2·0.8·2/10000) = 0.0056569,
        // z = 0.2/se = 35.355; P(|Z| > z) = erfc(25) ≈ 8.3e-274.
        assert_eq!(f.test, TestMethod::ZTest);
        let log10 = f.p_value.log10();
        assert!(log10 > -275.0 && log10 < -272.0, "p = {}", f.p_value);
        assert!(f.significant);
        assert!(f.q_value < 1e-250);
        // g shrank by the same amount; main is in every stack on both sides.
        assert!(row(&d, "g").significant);
        let main = row(&d, "main");
        assert!(!main.significant);
        assert_eq!(main.p_value, 1.0);
        // Significant first, then by |change| (f and g tie at 20 points;
        // name breaks the tie), unchanged main last.
        let order: Vec<&str> = d.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(order, vec!["f", "g", "main"]);
    }

    #[test]
    fn same_change_at_n_20_is_not_significant() {
        let d = diff(
            &table(&[("f", 2), ("g", 18)]),
            &table(&[("f", 6), ("g", 14)]),
        );
        let f = row(&d, "f");
        assert!((f.total_percent_change - 20.0).abs() < 1e-9);
        // Expected count 20·8/40 = 4 < 5, so the exact test. Under the null,
        // f's base count is hypergeometric (40 samples, 8 with f, 20 drawn):
        // P(x) = C(8,x)·C(32,20-x)/C(40,20), symmetric about 4; two-sided
        // p = P(x ≤ 2) + P(x ≥ 6) ≈ 0.235.
        assert_eq!(f.test, TestMethod::FisherExact);
        let p = |x: u64| (binom(8, x) * binom(32, 20 - x)) as f64 / binom(40, 20) as f64;
        let expected = 2.0 * (p(0) + p(1) + p(2));
        assert!(
            (f.p_value - expected).abs() < 1e-9,
            "{} vs {expected}",
            f.p_value
        );
        assert!((expected - 0.235).abs() < 0.001);
        assert!(!f.significant);
        assert!(f.q_value >= f.p_value);
    }

    #[test]
    fn q_values_follow_benjamini_hochberg() {
        // Many functions with changes from none to large.
        let base: Vec<(String, i64)> = (0..30).map(|i| (format!("f{i:02}"), 300)).collect();
        let target: Vec<(String, i64)> = (0..30)
            .map(|i| (format!("f{i:02}"), 300 + 12 * i as i64)) // up to +348
            .collect();
        let as_refs = |v: &[(String, i64)]| -> StackTable {
            table(&v.iter().map(|(n, x)| (n.as_str(), *x)).collect::<Vec<_>>())
        };
        let d = diff(&as_refs(&base), &as_refs(&target));
        assert_eq!(d.rows.len(), 31);
        let m = d.rows.len() as f64;
        let mut by_p: Vec<&DiffRow> = d.rows.iter().collect();
        by_p.sort_by(|a, b| a.p_value.total_cmp(&b.p_value));
        for (rank, r) in by_p.iter().enumerate() {
            assert!(
                r.q_value >= r.p_value,
                "{}: q {} < p {}",
                r.name,
                r.q_value,
                r.p_value
            );
            assert!(r.q_value <= 1.0);
            // BH's q is at most the row's own p·m/rank.
            assert!(r.q_value <= r.p_value * m / (rank + 1) as f64 * (1.0 + 1e-12));
            assert_eq!(r.significant, r.q_value < 0.05);
        }
        for pair in by_p.windows(2) {
            assert!(pair[0].q_value <= pair[1].q_value, "q not monotone in p");
        }
        // Some but not all changes survive the correction.
        let significant = d.rows.iter().filter(|r| r.significant).count();
        assert!(significant > 0 && significant < 31, "{significant}");
        // And the correction matters: some row has p < 0.05 but q >= 0.05.
        assert!(d.rows.iter().any(|r| r.p_value < 0.05 && !r.significant));
    }

    #[test]
    fn sample_weight_turns_nanoseconds_into_counts() {
        let ns = 10_000_000; // 10 ms per sample, i.e. 100 Hz.
        let counts = diff(
            &table(&[("f", 100), ("g", 900)]),
            &table(&[("f", 160), ("g", 840)]),
        );
        let options = DiffOptions {
            sample_weight: ns as f64,
            ..Default::default()
        };
        let nanos = diff_with(
            &table(&[("f", 100 * ns), ("g", 900 * ns)]),
            &table(&[("f", 160 * ns), ("g", 840 * ns)]),
            &options,
        )
        .unwrap();
        assert_eq!(nanos.base_samples, 1000);
        assert_eq!(row(&nanos, "f").p_value, row(&counts, "f").p_value);
        assert_eq!(row(&nanos, "f").base_total, 100 * ns);
        // Without the weight, 1e9 "samples" make the same change look far
        // more certain.
        let naive = diff(
            &table(&[("f", 100 * ns), ("g", 900 * ns)]),
            &table(&[("f", 160 * ns), ("g", 840 * ns)]),
        );
        assert!(row(&naive, "f").p_value < row(&nanos, "f").p_value);
    }

    #[test]
    fn invalid_options_are_errors() {
        let t = table(&[("f", 1)]);
        for (weight, alpha) in [(0.0, 0.05), (f64::NAN, 0.05), (-1.0, 0.05), (1.0, 0.0)] {
            let options = DiffOptions {
                sample_weight: weight,
                alpha,
            };
            let err = diff_with(&t, &t, &options).unwrap_err();
            assert!(matches!(err, QueryError::InvalidOption { .. }), "{err}");
        }
    }

    #[test]
    fn functions_on_one_side_only_and_empty_sides() {
        let d = diff(&table(&[("old", 10)]), &table(&[("new", 10)]));
        assert_eq!(row(&d, "old").target_total, 0);
        assert_eq!(row(&d, "new").base_total, 0);
        assert!((row(&d, "new").total_percent_change - 100.0).abs() < 1e-9);
        let d = diff(&StackTable::default(), &table(&[("new", 10)]));
        assert_eq!(row(&d, "new").test, TestMethod::None);
        assert_eq!(row(&d, "new").p_value, 1.0);
    }

    #[test]
    fn json_round_trips() {
        let d = diff(&table(&[("f", 10), ("g", 5)]), &table(&[("f", 3)]));
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"test\":\"fisher_exact\"") || json.contains("\"test\":\"z_test\""));
        let back: Diff = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }

    fn assert_tree_consistent(t: &DiffTree) {
        for n in &t.nodes {
            let (mut b, mut g) = (0, 0);
            for &c in &n.children {
                b += t.nodes[c as usize].base_total;
                g += t.nodes[c as usize].target_total;
            }
            assert_eq!(n.base_self + b, n.base_total, "{}", n.name);
            assert_eq!(n.target_self + g, n.target_total, "{}", n.name);
        }
        assert_eq!(t.nodes[0].base_total, t.base_total);
        assert_eq!(t.nodes[0].target_total, t.target_total);
    }

    #[test]
    fn diff_tree_merges_both_sides() {
        let base = table(&[("a", 60), ("b", 40)]);
        // Target names its functions in a different order and adds c.
        let target = StackTable {
            functions: vec!["c".into(), "b".into(), "main".into()],
            stacks: vec![(vec![2, 1], 30), (vec![2, 0], 70)],
        };
        let t = diff_tree(&base, &target, 100);
        assert!(!t.truncated);
        assert_tree_consistent(&t);
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["total", "main", "a", "b", "c"]);
        let vals: Vec<(i64, i64)> = t.nodes[2..]
            .iter()
            .map(|n| (n.base_total, n.target_total))
            .collect();
        assert_eq!(vals, vec![(60, 0), (40, 30), (0, 70)]);
    }

    #[test]
    fn diff_tree_truncates_by_larger_share() {
        // Shares (base of 1000, target of 10000): a 90%/50%, b 8%/5%,
        // c 1%/44%, d 1%/1%. Ranked by the larger share: main, a, c, b, d.
        // With 5 nodes: total, main, a, c and one "other" for b and d; c is
        // kept although it is only 1% of base, b dropped although it is
        // larger than c in base.
        let base = table(&[("a", 900), ("b", 80), ("c", 10), ("d", 10)]);
        let target = table(&[("a", 5000), ("b", 500), ("c", 4400), ("d", 100)]);
        let t = diff_tree(&base, &target, 5);
        assert!(t.truncated);
        assert_tree_consistent(&t);
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["total", "main", "a", "c", "other"]);
        assert_eq!((t.nodes[4].base_total, t.nodes[4].target_total), (90, 600));
    }

    #[test]
    fn flat_diff_has_documented_layout() {
        let base = table(&[("a", 60), ("b", 40)]);
        let target = table(&[("a", 10), ("b", 20), ("c", 30)]);
        let t = diff_tree(&base, &target, 100);
        let flat = t.to_flat();
        assert_eq!(flat.levels.len(), 3);
        assert_eq!(flat.levels[0][..6], [0, 100, 0, 0, 60, 0]);
        assert_eq!(flat.levels[1][..6], [0, 100, 0, 0, 60, 0]);
        // Level 2: a, b, c; base x: 0, 60, 100; target x: 0, 10, 30. Gaps
        // are from the previous node's right edge, so all 0 here.
        let l = &flat.levels[2];
        assert_eq!(l.len(), 21);
        assert_eq!(l[..6], [0, 60, 60, 0, 10, 10]);
        assert_eq!(l[7..13], [0, 40, 40, 0, 20, 20]);
        assert_eq!(l[14..20], [0, 0, 0, 0, 30, 30]);
        let name = |i: i64| flat.names[i as usize].as_str();
        assert_eq!((name(l[6]), name(l[13]), name(l[20])), ("a", "b", "c"));
        assert_eq!(flat.max_self, 60);
        let back: DiffTree = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn flat_diff_gaps_skip_self_space() {
        // Two top-level functions: p (a leaf: 5 in base, 1 in target) and
        // q → r. On level 2 only r exists; it sits under q, which starts
        // where p ends, so its gap from the level start is p's total on
        // each side.
        let base = StackTable {
            functions: vec!["p".into(), "q".into(), "r".into()],
            stacks: vec![(vec![0], 5), (vec![1, 2], 7)],
        };
        let target = StackTable {
            functions: vec!["p".into(), "q".into(), "r".into()],
            stacks: vec![(vec![0], 1), (vec![1, 2], 2)],
        };
        let flat = diff_tree(&base, &target, 100).to_flat();
        // Level 2 holds only r: x = 5 on base, 1 on target.
        assert_eq!(flat.levels[2][..6], [5, 7, 7, 1, 2, 2]);
    }

    #[test]
    fn flat_diff_nodes_are_tested_as_the_rows_are() {
        // f grows from 10% to 30% of 10,000 samples, g shrinks to match;
        // h stays at 5%.
        let base = table(&[("f", 1000), ("g", 8500), ("h", 500)]);
        let target = table(&[("f", 3000), ("g", 6500), ("h", 500)]);
        let d = diff(&base, &target);
        let flat = diff_tree(&base, &target, 100).to_flat();
        let nodes: usize = flat.levels.iter().map(|l| l.len() / 7).sum();
        assert_eq!(nodes, 5);
        assert_eq!(flat.p_values.len(), nodes);
        assert_eq!(flat.q_values.len(), nodes);
        assert_eq!(flat.significant.len(), nodes);
        // Nodes in level order: total, main, then f, g, h by name. One
        // node per function here, so the tests are the rows' tests.
        for (k, name) in [(2, "f"), (3, "g"), (4, "h")] {
            let r = row(&d, name);
            assert_eq!(flat.p_values[k], r.p_value, "{name}");
            assert_eq!(flat.significant[k], r.significant, "{name}");
        }
        assert_eq!(flat.significant, vec![false, false, true, true, false]);
        // The root and `main` hold every sample on both sides.
        assert_eq!((flat.p_values[0], flat.p_values[1]), (1.0, 1.0));
        // q-values are Benjamini–Hochberg over the nodes.
        assert_eq!(flat.q_values, benjamini_hochberg(&flat.p_values));
    }

    #[test]
    fn flat_diff_counts_samples_by_weight() {
        // 10 ms samples in nanoseconds: with the weight, 40 vs 60 of 100
        // samples is not significant after correction; as raw counts of
        // nanoseconds it would be.
        let ms10 = 10_000_000;
        let base = table(&[("f", 40 * ms10), ("g", 60 * ms10)]);
        let target = table(&[("f", 45 * ms10), ("g", 55 * ms10)]);
        let t = diff_tree(&base, &target, 100);
        let weighted = t.to_flat_with(&DiffOptions {
            sample_weight: ms10 as f64,
            alpha: 0.05,
        });
        assert!(weighted.significant.iter().all(|s| !s));
        assert!(t.to_flat().significant.iter().any(|&s| s));
        // JSON without the tests (from before they were sent) still reads.
        let json = r#"{"names":[],"levels":[],"base_total":0,"target_total":0,"max_self":0}"#;
        let old: FlatDiff = serde_json::from_str(json).unwrap();
        assert!(old.p_values.is_empty() && old.significant.is_empty());
    }
}
