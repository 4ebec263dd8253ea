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
//! The tree is never materialized: stacks are sorted by their frame names
//! (an MSD radix sort over name ranks, which also yields how many frames
//! each stack shares with the previous one), and then every tree node is a
//! run of consecutive stacks sharing a prefix, its total a difference of
//! prefix sums, its children the sub-runs that share one more frame. The `max_nodes`
//! threshold is found as Pyroscope does, with a min-heap of the largest
//! totals and a depth-first walk that skips subtrees that cannot reach it;
//! only the nodes that are shown are visited when emitting. 200k stacks
//! with a 16384-node limit take about 60 ms (release build, 2 cores).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use perfpilot_model::series::StackTable;

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

/// The stacks, sorted by frame names, with prefix sums of their values
/// and the common-prefix length of each with the one before it.
struct Sorted<'a> {
    names: Vec<&'a str>,
    /// Function index → rank of its name in `names`.
    ranks: Vec<u32>,
    unknown: u32,
    /// The frames (function indices) of the stacks, sorted; stacks with a
    /// non-positive value are left out.
    stacks: Vec<&'a [u32]>,
    /// Frame count of each sorted stack.
    len: Vec<u32>,
    /// `lcp[i]`: frames sorted stack `i` shares with stack `i - 1`.
    lcp: Vec<u32>,
    /// `prefix[i]` = sum of the values of the first `i` sorted stacks.
    prefix: Vec<i64>,
}

/// Buckets this small are sorted by comparing whole stacks.
const SMALL_BUCKET: usize = 16;

fn depth_u32(d: usize) -> u32 {
    u32::try_from(d).unwrap_or(u32::MAX)
}

/// Sorts stack indices by their name ranks (shorter first on a common
/// prefix) and fills `lcp`: an MSD radix sort over frame depths, so a
/// shared prefix is read once per stack and depth rather than once per
/// comparison. `frames(i)` gives stack `i`'s name ranks as an iterator
/// source: its function indices, mapped by `rank`.
fn sort_stacks<'f>(
    order: &mut [u32],
    lcp: &mut [u32],
    frames: impl Fn(u32) -> &'f [u32],
    rank: impl Fn(u32) -> u32,
) {
    // Key at depth d: 0 once the stack has ended, else rank + 1.
    let key = |i: u32, d: usize| -> u64 { frames(i).get(d).map_or(0, |&f| u64::from(rank(f)) + 1) };
    let tail = |i: u32, d: usize| {
        let f = frames(i);
        f.get(d.min(f.len())..)
            .unwrap_or(&[])
            .iter()
            .map(|&f| rank(f))
    };
    let mut tmp: Vec<u64> = Vec::new();
    let mut work: Vec<(usize, usize, usize)> = vec![(0, order.len(), 0)];
    while let Some((lo, hi, d)) = work.pop() {
        let Some(bucket) = order.get_mut(lo..hi) else {
            continue;
        };
        if bucket.len() <= 1 {
            continue;
        }
        if bucket.len() <= SMALL_BUCKET {
            bucket.sort_unstable_by(|&a, &b| tail(a, d).cmp(tail(b, d)));
            for (j, pair) in bucket.windows(2).enumerate() {
                if let (Some(&a), Some(&b), Some(slot)) =
                    (pair.first(), pair.get(1), lcp.get_mut(lo + j + 1))
                {
                    let common = tail(a, d)
                        .zip(tail(b, d))
                        .take_while(|(x, y)| x == y)
                        .count();
                    *slot = depth_u32(d + common);
                }
            }
            continue;
        }
        tmp.clear();
        tmp.extend(bucket.iter().map(|&i| key(i, d) << 32 | u64::from(i)));
        let first = tmp.first().map_or(0, |k| k >> 32);
        if tmp.iter().all(|k| k >> 32 == first) {
            if first != 0 {
                // One shared frame: go one level deeper.
                work.push((lo, hi, d + 1));
            } else {
                // Identical stacks, all ending here.
                for slot in lcp.get_mut(lo + 1..hi).unwrap_or(&mut []) {
                    *slot = depth_u32(d);
                }
            }
            continue;
        }
        tmp.sort_unstable();
        for (slot, k) in bucket.iter_mut().zip(&tmp) {
            *slot = *k as u32;
        }
        let mut run = 0;
        while run < tmp.len() {
            let k = tmp.get(run).map_or(0, |k| k >> 32);
            let mut next = run + 1;
            while tmp.get(next).is_some_and(|n| n >> 32 == k) {
                next += 1;
            }
            // Runs part at depth d, and the stacks of a run that ends here
            // are equal; a deeper run sets its own inner values.
            let from = if run > 0 { run } else { run + 1 };
            let to = if k == 0 { next } else { run + 1 };
            for slot in lcp.get_mut(lo + from..lo + to.max(from)).unwrap_or(&mut []) {
                *slot = depth_u32(d);
            }
            if k != 0 && next - run > 1 {
                work.push((lo + run, lo + next, d + 1));
            }
            run = next;
        }
    }
}

impl Sorted<'_> {
    fn new(table: &StackTable) -> Sorted<'_> {
        let mut names: Vec<&str> = table.functions.iter().map(String::as_str).collect();
        names.push("[unknown]");
        names.sort_unstable();
        names.dedup();
        let rank = |name: &str| names.binary_search(&name).unwrap_or(0) as u32;
        let unknown = rank("[unknown]");
        let ranks: Vec<u32> = table.functions.iter().map(|f| rank(f)).collect();
        // Indices are 32-bit to keep sort keys in one u64; 2^32 stacks
        // would not fit in memory anyway.
        let mut order: Vec<u32> = table
            .stacks
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| *v > 0)
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        let mut lcp = vec![0u32; order.len()];
        // One slice per stack, read in order once, saves the sort a
        // pointer chase per key.
        let slices: Vec<&[u32]> = table.stacks.iter().map(|(s, _)| s.as_slice()).collect();
        let frames = |i: u32| slices.get(i as usize).copied().unwrap_or(&[]);
        sort_stacks(&mut order, &mut lcp, frames, |f| {
            ranks.get(f as usize).copied().unwrap_or(unknown)
        });
        let mut prefix = Vec::with_capacity(order.len() + 1);
        let mut len = Vec::with_capacity(order.len());
        let mut stacks = Vec::with_capacity(order.len());
        let mut sum = 0i64;
        prefix.push(0);
        for &i in &order {
            let (frames, v) = table
                .stacks
                .get(i as usize)
                .map_or((&[][..], 0), |(s, v)| (s.as_slice(), *v));
            len.push(depth_u32(frames.len()));
            stacks.push(frames);
            sum = sum.saturating_add(v);
            prefix.push(sum);
        }
        Sorted {
            names,
            ranks,
            unknown,
            stacks,
            len,
            lcp,
            prefix,
        }
    }

    fn count(&self) -> usize {
        self.stacks.len()
    }

    /// The name rank of sorted stack `i`'s frame at depth `d` (which must
    /// exist).
    fn frame(&self, i: usize, d: usize) -> u32 {
        match self.stacks.get(i).and_then(|s| s.get(d)) {
            Some(&f) => self.ranks.get(f as usize).copied().unwrap_or(self.unknown),
            None => u32::MAX,
        }
    }

    fn sum(&self, lo: usize, hi: usize) -> i64 {
        let at = |i: usize| self.prefix.get(i).copied().unwrap_or(0);
        at(hi).saturating_sub(at(lo))
    }

    /// The first stack of `[lo, hi)` that is longer than `d` frames: the
    /// ones of exactly `d` frames end at this node and sort first.
    fn children_start(&self, lo: usize, hi: usize, d: usize) -> usize {
        let d = depth_u32(d);
        let mut i = lo;
        while i < hi && self.len.get(i).is_some_and(|&l| l <= d) {
            i += 1;
        }
        i
    }

    /// The end of the run of stacks from `lo` (within `[lo, hi)`) that
    /// share their frame at depth `d` too: the next stack sharing at most
    /// `d` frames with its predecessor.
    fn group_end(&self, lo: usize, hi: usize, d: usize) -> usize {
        let d = depth_u32(d);
        let mut j = lo + 1;
        while j < hi && self.lcp.get(j).is_some_and(|&l| l > d) {
            j += 1;
        }
        j
    }
}

/// The smallest total a node may have to be shown: the `max_nodes`-th
/// largest node total, or 0 when the tree has no more nodes than that.
fn min_total(s: &Sorted<'_>, max_nodes: Option<i64>) -> i64 {
    let Some(max) = max_nodes.filter(|&m| m > 0) else {
        return 0;
    };
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut heap: BinaryHeap<Reverse<i64>> = BinaryHeap::new();
    // Nodes as (depth of their children, run of stacks), root's children first.
    let n = s.count();
    let mut todo: Vec<(usize, usize, usize)> = vec![(0, s.children_start(0, n, 0), n)];
    while let Some((d, mut lo, hi)) = todo.pop() {
        while lo < hi {
            let end = s.group_end(lo, hi, d);
            let total = s.sum(lo, end);
            let take = match heap.peek() {
                Some(&Reverse(min)) if heap.len() >= max => {
                    if total > min {
                        heap.pop();
                        true
                    } else {
                        false
                    }
                }
                _ => true,
            };
            // A child never has more than its parent: a node that cannot
            // enter the heap rules out its whole subtree.
            if take {
                heap.push(Reverse(total));
                let c = s.children_start(lo, end, d + 1);
                if c < end {
                    todo.push((d + 1, c, end));
                }
            }
            lo = end;
        }
    }
    match heap.peek() {
        Some(&Reverse(min)) if heap.len() >= max => min,
        _ => 0,
    }
}

/// Builds the flame graph of a stack table; `max_nodes` `None` or `<= 0`
/// shows every node (callers answering requests apply
/// [`DEFAULT_MAX_NODES`] first, as Pyroscope does).
pub fn flame_graph(table: &StackTable, max_nodes: Option<i64>) -> FlameGraph {
    let s = Sorted::new(table);
    let threshold = min_total(&s, max_nodes);

    let mut names: Vec<String> = vec!["total".to_string()];
    // Rank → index in `names`, assigned on first use.
    let mut name_index: Vec<u32> = vec![u32::MAX; s.names.len()];
    let mut other_index: Option<i64> = None;
    let mut levels: Vec<Vec<i64>> = Vec::new();
    let mut level_end: Vec<i64> = Vec::new();
    let mut max_self = 0i64;

    let mut emit = |level: usize, x: i64, total: i64, self_: i64, name: i64| {
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
            level_end.resize(level + 1, 0);
        }
        if let (Some(l), Some(end)) = (levels.get_mut(level), level_end.get_mut(level)) {
            l.extend_from_slice(&[x - *end, total, self_, name]);
            *end = x + total;
        }
        max_self = max_self.max(self_);
    };

    /// A shown node whose children are being emitted.
    struct Frame {
        /// Depth of the children = level of the node.
        depth: usize,
        next: usize,
        end: usize,
        /// Where the next child starts.
        cursor: i64,
        other: i64,
    }
    let n = s.count();
    let root_children = s.children_start(0, n, 0);
    let root_total = s.sum(0, n);
    let root_self = s.sum(0, root_children);
    emit(0, 0, root_total, root_self, 0);
    let mut stack = vec![Frame {
        depth: 0,
        next: root_children,
        end: n,
        cursor: root_self,
        other: 0,
    }];
    while let Some(top) = stack.last_mut() {
        if top.next >= top.end {
            if let Some(f) = stack.pop() {
                if f.other > 0 {
                    let idx = *other_index.get_or_insert_with(|| {
                        names.push("other".to_string());
                        names.len() as i64 - 1
                    });
                    emit(f.depth + 1, f.cursor, f.other, f.other, idx);
                }
            }
            continue;
        }
        let d = top.depth;
        let lo = top.next;
        let hi = s.group_end(lo, top.end, d);
        top.next = hi;
        let total = s.sum(lo, hi);
        if total < threshold {
            top.other += total;
            continue;
        }
        let x = top.cursor;
        top.cursor += total;
        let rank = s.frame(lo, d) as usize;
        let idx = match name_index.get(rank) {
            Some(&i) if i != u32::MAX => i64::from(i),
            _ => {
                let i = names.len();
                names.push(s.names.get(rank).copied().unwrap_or("").to_string());
                if let Some(slot) = name_index.get_mut(rank) {
                    *slot = i as u32;
                }
                i as i64
            }
        };
        let children = s.children_start(lo, hi, d + 1);
        let self_ = s.sum(lo, children);
        emit(d + 1, x, total, self_, idx);
        stack.push(Frame {
            depth: d + 1,
            next: children,
            end: hi,
            cursor: x + self_,
            other: 0,
        });
    }

    FlameGraph {
        names,
        levels,
        total: root_total,
        max_self,
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
