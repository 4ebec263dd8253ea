//! Flame graphs in the layout Pyroscope returns (`querier.v1.FlameGraph` in
//! grafana/pyroscope `api/querier/v1/querier.proto`, built by
//! `pkg/model/flamegraph.go`; the same `names`/`levels` are the
//! `flamebearer` of `/render`):
//!
//! * `names[0]` is `"total"`, the root; the other names are the functions,
//!   each once.
//! * `levels[d]` holds the nodes at depth `d` (level 0 is the root), left to
//!   right, as 4-tuples `[x, total, self, name index]`, where `x` is
//!   delta-encoded: the distance from the end (`x + total`) of the previous
//!   node of the same level, or from 0 for the first one.
//! * Within a node, its own `self` comes first, then its children, which are
//!   merged by name and ordered by name (byte order), as Pyroscope's tree
//!   keeps them.
//! * `total` is the root's total, `max_self` the largest `self` of any node.
//!
//! With `max_nodes` > 0, only nodes whose total is at least the
//! `max_nodes`-th largest node total are kept (Pyroscope's `minValue`);
//! because a child's total never exceeds its parent's, the kept nodes stay
//! connected. What a kept node's dropped children add up to becomes one
//! `"other"` child placed after the kept ones. Unlike Pyroscope, a real
//! function named `other` is kept as it is rather than folded into that
//! node. Stacks with a non-positive value are left out (a flame graph
//! cannot show them).
//!
//! The tree is the one perfpilot's native flame graphs use
//! ([`perfpilot_query::flat_flame`]), with Pyroscope's options.

use perfpilot_model::series::StackTable;
use perfpilot_query::{flat_flame, FlameOptions};

/// The node limit Pyroscope applies when a request sets none (or 0):
/// `querier.max-flamegraph-nodes-default`.
pub const DEFAULT_MAX_NODES: i64 = 8 << 10;

/// A flame graph as `querier.v1.FlameGraph` carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlameGraph {
    pub names: Vec<String>,
    pub levels: Vec<Vec<i64>>,
    pub total: i64,
    pub max_self: i64,
}

/// Builds the flame graph of a stack table; `max_nodes` `None` or `<= 0`
/// shows every node (callers answering requests apply
/// [`DEFAULT_MAX_NODES`] first, as Pyroscope does).
pub fn flame_graph(table: &StackTable, max_nodes: Option<i64>) -> FlameGraph {
    // 0 keeps every node; a limit beyond usize keeps every node too.
    let max = max_nodes
        .filter(|&m| m > 0)
        .map_or(0, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let flat = flat_flame(table, &FlameOptions::pyroscope(max));
    FlameGraph {
        names: flat.names,
        levels: flat.levels,
        total: flat.total,
        max_self: flat.max_self,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn table(stacks: &[(&[&str], i64)]) -> StackTable {
        let mut functions: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for (frames, v) in stacks {
            let ids = frames
                .iter()
                .map(|f| match functions.iter().position(|x| x == f) {
                    Some(i) => i as u32,
                    None => {
                        functions.push(f.to_string());
                        functions.len() as u32 - 1
                    }
                })
                .collect();
            out.push((ids, *v));
        }
        StackTable {
            functions,
            stacks: out,
        }
    }

    /// Decodes levels back into (root-first names → self value), as
    /// Pyroscope's `buildStack` does: a node's parent is the node of the
    /// level above with the largest x not past it.
    fn stacks_of(fg: &FlameGraph) -> std::collections::BTreeMap<Vec<String>, i64> {
        let abs: Vec<Vec<[i64; 4]>> = fg
            .levels
            .iter()
            .map(|l| {
                let mut prev_end = 0;
                l.chunks(4)
                    .map(|c| {
                        let x = prev_end + c[0];
                        prev_end = x + c[1];
                        [x, c[1], c[2], c[3]]
                    })
                    .collect()
            })
            .collect();
        let mut out = std::collections::BTreeMap::new();
        for (depth, level) in abs.iter().enumerate().skip(1) {
            for node in level {
                if node[2] == 0 {
                    continue;
                }
                let mut path = vec![fg.names[node[3] as usize].clone()];
                let mut x = node[0];
                for up in (1..depth).rev() {
                    let parent = abs[up].iter().rfind(|n| n[0] <= x).unwrap();
                    path.push(fg.names[parent[3] as usize].clone());
                    x = parent[0];
                }
                path.reverse();
                *out.entry(path).or_insert(0) += node[2];
            }
        }
        out
    }

    fn hand_made() -> StackTable {
        table(&[
            (&["main", "a", "c"], 3),
            (&["main", "a"], 2),
            (&["main", "b"], 5),
            (&["main", "a", "d"], 1),
            (&["idle"], 4),
        ])
    }

    #[test]
    fn golden_levels_of_a_small_table() {
        // Tree: total 15 = idle 4 (self 4) + main 11 (self 0);
        // main = a 6 (self 2: c 3, d 1) + b 5. Children are ordered by
        // name, a node's self comes before its children.
        let fg = flame_graph(&hand_made(), None);
        assert_eq!(fg.names, vec!["total", "idle", "main", "a", "c", "d", "b"]);
        assert_eq!(
            fg.levels,
            vec![
                vec![0, 15, 0, 0],
                // idle at x=0; main at x=4, right after idle.
                vec![0, 4, 4, 1, 0, 11, 0, 2],
                // a at x=4 (under main); b at x=10, right after a.
                vec![4, 6, 2, 3, 0, 5, 5, 6],
                // c at x=6, after a's self of 2; d right after c.
                vec![6, 3, 3, 4, 0, 1, 1, 5],
            ]
        );
        assert_eq!((fg.total, fg.max_self), (15, 5));
    }

    #[test]
    fn golden_truncation_keeps_the_largest_connected_nodes() {
        // Totals 11 (main), 6 (a), 5 (b), 4 (idle), 3 (c), 1 (d): with 3
        // nodes the threshold is 5, so idle goes to the root's "other" and
        // c and d to a's.
        let fg = flame_graph(&hand_made(), Some(3));
        assert_eq!(fg.names, vec!["total", "main", "a", "other", "b"]);
        assert_eq!(
            fg.levels,
            vec![
                vec![0, 15, 0, 0],
                // main at x=0, then the root's other (idle) at x=11.
                vec![0, 11, 0, 1, 0, 4, 4, 3],
                vec![0, 6, 2, 2, 0, 5, 5, 4],
                // a's other: c + d = 4, after a's self, at x=2.
                vec![2, 4, 4, 3],
            ]
        );
        assert_eq!((fg.total, fg.max_self), (15, 5));
        // Nothing is lost: the totals still add up.
        assert_eq!(stacks_of(&fg).values().sum::<i64>(), 15);
    }

    #[test]
    fn levels_decode_back_to_the_stacks() {
        // Random tables, checked against an independent decoding.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..50 {
            let functions: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
            let stacks: Vec<(Vec<u32>, i64)> = (0..40)
                .map(|_| {
                    let depth = next(6) + 1;
                    (
                        (0..depth).map(|_| next(8) as u32).collect(),
                        next(100) as i64 + 1,
                    )
                })
                .collect();
            let t = StackTable { functions, stacks };
            let mut want = std::collections::BTreeMap::new();
            for (frames, v) in &t.stacks {
                let path: Vec<String> = frames
                    .iter()
                    .map(|&f| t.functions[f as usize].clone())
                    .collect();
                *want.entry(path).or_insert(0) += v;
            }
            let fg = flame_graph(&t, None);
            assert_eq!(stacks_of(&fg), want);
            assert_eq!(fg.total, t.total());
            for max in [1, 5, 20] {
                let fg = flame_graph(&t, Some(max));
                assert_eq!(stacks_of(&fg).values().sum::<i64>(), t.total());
                let shown = fg.levels.iter().map(|l| l.len() / 4).sum::<usize>() - 1;
                let others = fg
                    .levels
                    .iter()
                    .flat_map(|l| l.chunks(4))
                    .filter(|c| fg.names[c[3] as usize] == "other")
                    .count();
                assert!(
                    shown - others <= max as usize + 10,
                    "{shown} nodes for max {max}"
                );
            }
        }
    }

    #[test]
    fn empty_table_is_just_the_root() {
        let fg = flame_graph(&StackTable::default(), None);
        assert_eq!(fg.names, vec!["total"]);
        assert_eq!(fg.levels, vec![vec![0, 0, 0, 0]]);
        assert_eq!((fg.total, fg.max_self), (0, 0));
    }

    #[test]
    fn duplicate_function_names_merge_and_bad_indices_are_unknown() {
        let t = StackTable {
            functions: vec!["main".into(), "main".into()],
            stacks: vec![(vec![0], 1), (vec![1], 2), (vec![0, 7], 3), (vec![], 4)],
        };
        let fg = flame_graph(&t, None);
        assert_eq!(fg.names, vec!["total", "main", "[unknown]"]);
        // Root self is the empty stack's 4; main has self 3, child 3.
        assert_eq!(fg.levels[0], vec![0, 10, 4, 0]);
        assert_eq!(fg.levels[1], vec![4, 6, 3, 1]);
        assert_eq!(fg.levels[2], vec![7, 3, 3, 2]);
        assert_eq!(fg.max_self, 4);
    }

    #[test]
    fn deep_stacks_do_not_recurse() {
        let names: Vec<String> = (0..50_000).map(|i| format!("f{i}")).collect();
        let t = StackTable {
            functions: names,
            stacks: vec![((0..50_000).collect(), 1)],
        };
        let fg = flame_graph(&t, Some(100));
        assert_eq!(fg.levels.len(), 50_001);
    }
}
