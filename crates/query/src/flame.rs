//! Flame graphs: a merged call tree of a [`StackTable`], truncated to a node
//! budget, as a JSON tree and as a compact flamebearer-style encoding.

use std::collections::HashMap;

use perfpilot_model::series::StackTable;
use serde::{Deserialize, Serialize};

pub use crate::tree::NonPositive;
use crate::tree::{walk_preorder, CallTree, Label, Names};

/// One node of a [`FlameTree`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlameNode {
    /// Function name; `"total"` for the root, `"other"` for the node that
    /// stands for a parent's dropped children.
    pub name: String,
    /// Value of stacks ending at this node.
    pub self_value: i64,
    /// `self_value` plus the children's `total_value`s.
    pub total_value: i64,
    /// Indices into [`FlameTree::nodes`], in display order.
    pub children: Vec<u32>,
}

/// A call tree: stacks merged by function name level by level.
///
/// Nodes are stored flat, in pre-order, with `nodes[0]` the root and
/// children as indices: a nested JSON tree as deep as a real stack (100+
/// frames) would exceed serde_json's default recursion limit of 128 when
/// read back.
///
/// Children are in byte order of their names, "other" last. For every node
/// `self_value + Σ children total_value == total_value`, truncated or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlameTree {
    /// The table total; equal to the root's `total_value`.
    pub total: i64,
    /// True when nodes were dropped to stay within `max_nodes`.
    pub truncated: bool,
    pub nodes: Vec<FlameNode>,
}

/// A flame graph in Pyroscope's "flamebearer" layout, for fast rendering.
///
/// `levels[d]` holds the nodes at depth `d` (the root, "total", is alone at
/// depth 0) from left to right, 4 numbers per node:
///
/// ```text
/// [x_gap, total, self, name_index,  x_gap, total, self, name_index, ...]
/// ```
///
/// - `x_gap`: the node's left edge minus the right edge (`x + total`) of the
///   previous node on the same level, or minus 0 for the first node; so the
///   absolute `x` is a running sum of `x_gap + total` over the level. `x` is
///   in value units from the root's left edge: children are laid out left to
///   right from their parent's `x`, and a node's self value is the space
///   its children leave free on the right.
/// - `total`, `self`: the node's total and self values.
/// - `name_index`: an index into `names`.
///
/// The root's `total` equals `total`; `max_self` is the largest `self` of
/// any node (for color scaling).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlatFlame {
    pub names: Vec<String>,
    pub levels: Vec<Vec<i64>>,
    pub total: i64,
    pub max_self: i64,
}

/// Builds the call tree of `table` with at most `max_nodes` nodes.
///
/// The root is named "total" and its value is the table total. When the
/// tree has more than `max_nodes` nodes, the nodes with the largest total
/// values are kept (a kept node's parent is always kept, as totals never
/// grow from parent to child), and each kept node's dropped children are
/// summed into one child named "other". "other" nodes count toward
/// `max_nodes`. Values below 2 are treated as 2, since a root with children
/// needs at least an "other" child. A function actually named "other" is
/// not distinguished from that node.
///
/// Values are expected to be non-negative, as sample values are.
pub fn flame_tree(table: &StackTable, max_nodes: usize) -> FlameTree {
    let names = Names::new(&[table]);
    let tree = CallTree::build([table], &names);
    let kept = tree.select(max_nodes, |n| n.total[0]);
    let truncated = tree.truncated(&kept);
    let nodes: Vec<FlameNode> = tree
        .emit(&kept)
        .into_iter()
        .map(|n| FlameNode {
            name: n.label.text(&names).to_string(),
            self_value: n.self_value[0],
            total_value: n.total[0],
            children: n.children,
        })
        .collect();
    FlameTree {
        total: tree.nodes[0].total[0],
        truncated,
        nodes,
    }
}

/// Where a node's self value goes in a [`FlatFlame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Children from the node's left edge, self the space left on the
    /// right (perfpilot's native API).
    SelfLast,
    /// Self first, children after it (Pyroscope's flamebearer).
    SelfFirst,
}

/// Which nodes a flame graph keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// At most this many nodes, "other" nodes included (see
    /// [`flame_tree`]).
    Budget(usize),
    /// The nodes whose total is at least the n-th largest node total, ties
    /// included; "other" nodes do not count, and 0 keeps every node
    /// (Pyroscope's `max_nodes`).
    MinTotal(usize),
}

/// How a [`FlatFlame`]'s `names` are shared between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameIds {
    /// One entry per distinct text: a function named `other` or `total`
    /// shares the entry of the "other" nodes or the root.
    ByText,
    /// One entry per function, one for the root and one for "other" nodes,
    /// even when a function has the same name (as Pyroscope).
    ByNode,
}

/// How [`flat_flame`] builds a flame graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlameOptions {
    pub layout: Layout,
    pub truncation: Truncation,
    pub non_positive: NonPositive,
    pub names: NameIds,
}

impl FlameOptions {
    /// What `flame_tree(table, max_nodes).to_flat()` gives.
    pub fn native(max_nodes: usize) -> FlameOptions {
        FlameOptions {
            layout: Layout::SelfLast,
            truncation: Truncation::Budget(max_nodes),
            non_positive: NonPositive::Keep,
            names: NameIds::ByText,
        }
    }

    /// Pyroscope's flamebearer (`querier.v1.FlameGraph`): `max_nodes` 0
    /// keeps every node.
    pub fn pyroscope(max_nodes: usize) -> FlameOptions {
        FlameOptions {
            layout: Layout::SelfFirst,
            truncation: Truncation::MinTotal(max_nodes),
            non_positive: NonPositive::Drop,
            names: NameIds::ByNode,
        }
    }
}

/// The levels of a [`FlatFlame`] as nodes are placed, left to right on
/// each level.
#[derive(Default)]
struct Levels {
    levels: Vec<Vec<i64>>,
    /// Per level: right edge of the last node placed.
    level_end: Vec<i64>,
    max_self: i64,
}

impl Levels {
    fn place(&mut self, depth: usize, x: i64, total: i64, self_value: i64, name: i64) {
        if self.levels.len() <= depth {
            self.levels.resize_with(depth + 1, Vec::new);
            self.level_end.resize(depth + 1, 0);
        }
        if let (Some(level), Some(end)) =
            (self.levels.get_mut(depth), self.level_end.get_mut(depth))
        {
            level.extend_from_slice(&[x - *end, total, self_value, name]);
            *end = x + total;
        }
        self.max_self = self.max_self.max(self_value);
    }
}

/// Builds the flamebearer encoding of `table` directly, without the
/// [`FlameTree`] in between: only the shown nodes are visited.
pub fn flat_flame(table: &StackTable, options: &FlameOptions) -> FlatFlame {
    let names = Names::new(&[table]);
    let tree = CallTree::build_with([table], &names, options.non_positive);
    let kept = match options.truncation {
        Truncation::Budget(max) => tree.select(max, |n| n.total[0]),
        Truncation::MinTotal(max) => tree.select_min_total(tree.min_total(max)),
    };

    let mut levels = Levels::default();
    let mut out_names: Vec<String> = Vec::new();
    let mut by_text: HashMap<&str, i64> = HashMap::new();
    // Name id → index in `out_names`, for `NameIds::ByNode`.
    let mut by_id: Vec<i64> = vec![-1; names.names.len()];
    let mut root: Option<i64> = None;
    let mut other: Option<i64> = None;
    // Per depth: where the next child of the node at that depth goes.
    let mut cursor: Vec<i64> = Vec::new();
    tree.walk(&kept, |depth, label, [self_value], [total]| {
        let x = match depth.checked_sub(1).and_then(|d| cursor.get_mut(d)) {
            Some(c) => {
                let x = *c;
                *c += total;
                x
            }
            None => 0,
        };
        cursor.truncate(depth);
        cursor.push(match options.layout {
            Layout::SelfLast => x,
            Layout::SelfFirst => x + self_value,
        });
        let text = label.text(&names);
        let mut add = || {
            out_names.push(text.to_string());
            out_names.len() as i64 - 1
        };
        let name = match (options.names, label) {
            (NameIds::ByText, _) => *by_text.entry(text).or_insert_with(add),
            (NameIds::ByNode, Label::Root) => *root.get_or_insert_with(add),
            (NameIds::ByNode, Label::Other) => *other.get_or_insert_with(add),
            (NameIds::ByNode, Label::Name(id)) => match by_id.get_mut(id as usize) {
                Some(slot) if *slot >= 0 => *slot,
                Some(slot) => {
                    *slot = add();
                    *slot
                }
                None => add(),
            },
        };
        levels.place(depth, x, total, self_value, name);
    });
    FlatFlame {
        names: out_names,
        levels: levels.levels,
        total: tree.nodes[0].total[0],
        max_self: levels.max_self,
    }
}

impl FlameTree {
    pub fn root(&self) -> Option<&FlameNode> {
        self.nodes.first()
    }

    /// The flamebearer encoding of this tree (see [`FlatFlame`]). Child
    /// indices that are out of range or repeat a node are ignored.
    pub fn to_flat(&self) -> FlatFlame {
        let mut names: Vec<String> = Vec::new();
        let mut name_ids: HashMap<&str, i64> = HashMap::new();
        let mut levels = Levels::default();
        // Left edge of each node, set by its parent before it is visited.
        let mut x = vec![0i64; self.nodes.len()];
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
            let mut next_x = x[i];
            for &c in &node.children {
                if let Some(slot) = x.get_mut(c as usize) {
                    *slot = next_x;
                    next_x += self.nodes[c as usize].total_value;
                }
            }
            let name = *name_ids.entry(node.name.as_str()).or_insert_with(|| {
                names.push(node.name.clone());
                names.len() as i64 - 1
            });
            levels.place(depth, x[i], node.total_value, node.self_value, name);
        });
        FlatFlame {
            names,
            levels: levels.levels,
            total: self.total,
            max_self: levels.max_self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(functions: &[&str], stacks: &[(&[u32], i64)]) -> StackTable {
        StackTable {
            functions: functions.iter().map(|s| s.to_string()).collect(),
            stacks: stacks.iter().map(|(s, v)| (s.to_vec(), *v)).collect(),
        }
    }

    fn child<'a>(t: &'a FlameTree, node: &FlameNode, name: &str) -> &'a FlameNode {
        let found = node
            .children
            .iter()
            .map(|&c| &t.nodes[c as usize])
            .find(|n| n.name == name);
        match found {
            Some(n) => n,
            None => panic!("no child {name} under {}", node.name),
        }
    }

    fn assert_consistent(t: &FlameTree) {
        for n in &t.nodes {
            let kids: i64 = n
                .children
                .iter()
                .map(|&c| t.nodes[c as usize].total_value)
                .sum();
            assert_eq!(n.self_value + kids, n.total_value, "node {}", n.name);
        }
        assert_eq!(t.nodes[0].total_value, t.total);
    }

    /// main → {a → {x, y}, b}, plus a stack that is just `main`.
    fn sample() -> StackTable {
        table(
            &["main", "a", "b", "x", "y"],
            &[
                (&[0, 1, 3], 50),
                (&[0, 1, 4], 20),
                (&[0, 1], 5),
                (&[0, 2], 15),
                (&[0], 10),
            ],
        )
    }

    #[test]
    fn untruncated_tree_has_expected_values() {
        let t = flame_tree(&sample(), 100);
        assert!(!t.truncated);
        assert_eq!(t.total, 100);
        assert_eq!(t.nodes.len(), 6);
        let root = &t.nodes[0];
        assert_eq!(root.name, "total");
        assert_eq!(root.self_value, 0);
        let main = child(&t, root, "main");
        assert_eq!((main.self_value, main.total_value), (10, 100));
        let a = child(&t, main, "a");
        assert_eq!((a.self_value, a.total_value), (5, 75));
        assert_eq!(child(&t, a, "y").total_value, 20);
        assert_eq!(child(&t, main, "b").total_value, 15);
        assert_consistent(&t);
    }

    #[test]
    fn recursion_is_kept_as_separate_levels() {
        let t = flame_tree(&table(&["f"], &[(&[0, 0, 0], 7)]), 100);
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["total", "f", "f", "f"]);
        assert_eq!(t.nodes[3].self_value, 7);
        assert_eq!(t.nodes[1].total_value, 7);
    }

    #[test]
    fn truncation_keeps_largest_and_sums_the_rest_into_other() {
        // Full tree: total, main, a, x, y, b = 6 nodes; best first: main
        // (100), a (75), x (50). Counting "other" nodes: total + other = 2;
        // + main, whose children need an other, and the root's other goes
        // = 3; + a, needing its own other = 5; + x would be 6 (y is still
        // dropped, so a's other stays). So: total, main, a, other(x+y),
        // other(b).
        let t = flame_tree(&sample(), 5);
        assert!(t.truncated);
        assert!(t.nodes.len() <= 5);
        assert_consistent(&t);
        let main = child(&t, &t.nodes[0], "main");
        let a = child(&t, main, "a");
        assert_eq!(child(&t, main, "other").total_value, 15);
        let other = child(&t, a, "other");
        assert_eq!((other.self_value, other.total_value), (70, 70));
        assert!(other.children.is_empty());
    }

    #[test]
    fn other_is_replaced_when_its_last_child_is_kept() {
        // With 6 nodes everything fits: no other at all.
        let t = flame_tree(&sample(), 6);
        assert!(!t.truncated);
        assert!(t.nodes.iter().all(|n| n.name != "other"));
        // Budget 2: the root and an "other" holding everything.
        let t = flame_tree(&sample(), 0);
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[1].name, "other");
        assert_eq!(t.nodes[1].total_value, 100);
    }

    #[test]
    fn truncation_never_exceeds_budget_and_preserves_totals() {
        // A wide and deep tree; every budget must hold exactly.
        let mut stacks: Vec<(Vec<u32>, i64)> = Vec::new();
        for i in 0..40u32 {
            stacks.push((vec![0, 1 + i % 7, 10 + i % 5, 20 + i], i64::from(i) + 1));
            stacks.push((vec![0, 1 + i % 3], 3));
        }
        let functions = (0..60).map(|i| format!("f{i}")).collect();
        let table = StackTable { functions, stacks };
        let full = flame_tree(&table, usize::MAX);
        for budget in 2..full.nodes.len() + 2 {
            let t = flame_tree(&table, budget);
            assert!(
                t.nodes.len() <= budget,
                "budget {budget}: {}",
                t.nodes.len()
            );
            assert_eq!(t.truncated, budget < full.nodes.len());
            assert_eq!(t.total, table.total());
            assert_consistent(&t);
        }
    }

    #[test]
    fn a_long_single_stack_path_can_be_cut_short() {
        // a → b → c → d is one stack (10); x another (1). Budget 4: total,
        // a, an "other" under a for b → c → d, and one under the root for x.
        let t = flame_tree(
            &table(
                &["a", "b", "c", "d", "x"],
                &[(&[0, 1, 2, 3], 10), (&[4], 1)],
            ),
            4,
        );
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["total", "a", "other", "other"]);
        assert_eq!(t.nodes[1].children, vec![2]);
        assert_eq!(t.nodes[2].total_value, 10);
        assert_eq!(t.nodes[3].total_value, 1);
        assert_consistent(&t);
        // With 5: one more node of the path; its rest is the "other".
        let t = flame_tree(
            &table(
                &["a", "b", "c", "d", "x"],
                &[(&[0, 1, 2, 3], 10), (&[4], 1)],
            ),
            5,
        );
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["total", "a", "b", "other", "other"]);
        assert_consistent(&t);
        // With 6 everything fits.
        let t = flame_tree(
            &table(
                &["a", "b", "c", "d", "x"],
                &[(&[0, 1, 2, 3], 10), (&[4], 1)],
            ),
            6,
        );
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["total", "a", "b", "c", "d", "x"]);
        assert_eq!(t.nodes[4].self_value, 10);
        assert!(!t.truncated);
    }

    #[test]
    fn kept_nodes_are_the_largest() {
        let table = sample();
        let t = flame_tree(&table, 5);
        // Every real (non-"other") kept node must have a total at least as
        // large as any node summed into an "other": the smallest kept is a
        // (75); the dropped are x (50), y (20), b (15).
        let smallest_kept = t
            .nodes
            .iter()
            .filter(|n| n.name != "other")
            .map(|n| n.total_value)
            .min();
        assert_eq!(smallest_kept, Some(75));
    }

    #[test]
    fn empty_table_is_a_lone_root() {
        let t = flame_tree(&StackTable::default(), 10);
        assert_eq!(t.nodes.len(), 1);
        assert_eq!(t.total, 0);
        let flat = t.to_flat();
        assert_eq!(flat.levels, vec![vec![0, 0, 0, 0]]);
    }

    #[test]
    fn flat_encoding_has_documented_layout() {
        let t = flame_tree(&sample(), 100);
        let flat = t.to_flat();
        let name = |i: i64| flat.names[i as usize].as_str();
        assert_eq!(flat.total, 100);
        assert_eq!(flat.max_self, 50);
        assert_eq!(flat.levels.len(), 4);
        assert_eq!(flat.levels[0][..3], [0, 100, 0]);
        assert_eq!(name(flat.levels[0][3]), "total");
        assert_eq!(flat.levels[1][..3], [0, 100, 10]);
        // Level 2: a at x=0 (75), b right after it at x=75 (gap 0).
        assert_eq!(flat.levels[2].len(), 8);
        assert_eq!(flat.levels[2][..3], [0, 75, 5]);
        assert_eq!(name(flat.levels[2][3]), "a");
        assert_eq!(flat.levels[2][4..7], [0, 15, 15]);
        assert_eq!(name(flat.levels[2][7]), "b");
        // Level 3: x at 0 (50), y at 50 (20).
        assert_eq!(flat.levels[3][..3], [0, 50, 50]);
        assert_eq!(flat.levels[3][4..7], [0, 20, 20]);
    }

    #[test]
    fn flat_offsets_are_gaps_from_the_previous_node() {
        // main has self 10 and children a (30) and b (20): on level 3 the
        // children of a and b sit under them with gaps where a and b have
        // self value.
        let t = flame_tree(
            &table(
                &["main", "a", "b", "c", "d"],
                &[
                    (&[0], 10),
                    (&[0, 1], 20),
                    (&[0, 1, 3], 10),
                    (&[0, 2, 4], 20),
                ],
            ),
            100,
        );
        let flat = t.to_flat();
        // c under a: x = 0. d under b: b starts at 30, so d's x = 30 and its
        // gap from c's right edge (10) is 20.
        // Names are numbered in pre-order: total, main, a, c, b, d.
        assert_eq!(flat.levels[3], vec![0, 10, 10, 3, 20, 20, 20, 5]);
        assert_eq!(flat.names[3], "c");
        assert_eq!(flat.names[5], "d");
    }

    #[test]
    fn json_round_trips() {
        let t = flame_tree(&sample(), 4);
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"self_value\""));
        let back: FlameTree = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        let flat = t.to_flat();
        let back: FlatFlame = serde_json::from_str(&serde_json::to_string(&flat).unwrap()).unwrap();
        assert_eq!(back, flat);
    }

    #[test]
    fn deep_trees_survive_json() {
        let stack: Vec<u32> = (0..300).collect();
        let functions = (0..300).map(|i| format!("f{i}")).collect();
        let t = flame_tree(
            &StackTable {
                functions,
                stacks: vec![(stack, 1)],
            },
            1000,
        );
        let back: FlameTree = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.nodes.len(), 301);
        assert_eq!(back.to_flat().levels.len(), 301);
    }

    #[test]
    fn flat_flame_native_is_flame_tree_to_flat() {
        // Random tables with negative values, names equal to "other" and
        // "total", duplicates and out-of-range indices.
        let mut seed = 0x0bad_5eed_1234_5678u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let pool = ["other", "total", "a", "b", "a", "c"];
        for _ in 0..300 {
            let nf = 1 + next(pool.len() as u64) as usize;
            let functions = pool[..nf].iter().map(|s| s.to_string()).collect();
            let stacks = (0..next(40))
                .map(|_| {
                    let frames = (0..next(8)).map(|_| next(nf as u64 + 1) as u32).collect();
                    (frames, next(30) as i64 - 3)
                })
                .collect();
            let t = StackTable { functions, stacks };
            for max in [0, 2, 3, 7, 20, usize::MAX] {
                let direct = flat_flame(&t, &FlameOptions::native(max));
                assert_eq!(direct, flame_tree(&t, max).to_flat(), "{t:?} {max}");
            }
        }
    }

    #[test]
    fn pyroscope_options_put_self_first_and_keep_names_apart() {
        // total 12 = other (a real function) 6 (self 1: a 5) + total (a
        // real function) 4 + a 2; with 2 nodes the threshold is 5, so both
        // a 2 and total 4 join the root's "other".
        let t = table(
            &["other", "a", "total"],
            &[(&[0], 1), (&[0, 1], 5), (&[2], 4), (&[1], 2), (&[1], -7)],
        );
        let flat = flat_flame(&t, &FlameOptions::pyroscope(2));
        assert_eq!(flat.names, vec!["total", "other", "a", "other"]);
        assert_eq!(
            flat.levels,
            vec![
                vec![0, 12, 0, 0],
                // The function "other" at 0, the root's "other" after it.
                vec![0, 6, 1, 1, 0, 6, 6, 3],
                // a after its parent's self of 1.
                vec![1, 5, 5, 2],
            ]
        );
        assert_eq!((flat.total, flat.max_self), (12, 6));
        // Without a limit, the function "total" is its own name too.
        let flat = flat_flame(&t, &FlameOptions::pyroscope(0));
        assert_eq!(flat.names, vec!["total", "a", "other", "total"]);
    }

    #[test]
    fn malformed_tree_does_not_panic() {
        let t = FlameTree {
            total: 1,
            truncated: false,
            nodes: vec![FlameNode {
                name: "total".into(),
                self_value: 1,
                total_value: 1,
                children: vec![0, 7],
            }],
        };
        assert_eq!(t.to_flat().levels.len(), 1);
    }
}
