//! The call-tree engine behind flame trees, diff trees and Pyroscope's
//! flame graphs (through [`crate::flat_flame`]).
//!
//! Stacks are renamed into one id space (ids in byte order of the names)
//! and the tree is built by grouping stacks on their next few frames at a
//! time (see [`CallTree::build`]): no hashing and no per-node allocation.
//! [`CallTree::select`] applies a node budget, [`CallTree::min_total`] and
//! [`CallTree::select_min_total`] Pyroscope's minimum total instead;
//! [`CallTree::walk`] visits the kept nodes in pre-order, children in name
//! order, and [`CallTree::emit`] collects them.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use perfpilot_model::series::StackTable;

/// The name given to function indices that are out of range for their
/// table's `functions`, so that bad input degrades instead of panicking.
pub(crate) const UNKNOWN_NAME: &str = "[unknown]";
/// The name of the node that stands for a kept node's dropped children.
pub(crate) const OTHER_NAME: &str = "other";
/// The name of the root node.
pub(crate) const ROOT_NAME: &str = "total";

/// Function names of one or more tables, merged by name.
pub(crate) struct Names<'a> {
    /// Distinct names, sorted by bytes; a name id is a position here.
    pub names: Vec<&'a str>,
    /// Per table: function index → name id.
    maps: Vec<Vec<u32>>,
    unknown: u32,
}

impl<'a> Names<'a> {
    pub fn new(tables: &[&'a StackTable]) -> Names<'a> {
        let count: usize = tables.iter().map(|t| t.functions.len()).sum();
        // (name, table, function index); `None` marks the unknown name.
        let mut all: Vec<(&'a str, Option<(usize, usize)>)> = Vec::with_capacity(count + 1);
        for (t, table) in tables.iter().enumerate() {
            all.extend(
                table
                    .functions
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.as_str(), Some((t, i)))),
            );
        }
        all.push((UNKNOWN_NAME, None));
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));

        let mut names: Vec<&'a str> = Vec::new();
        let mut maps: Vec<Vec<u32>> = tables.iter().map(|t| vec![0; t.functions.len()]).collect();
        let mut unknown = 0;
        for (name, origin) in all {
            if names.last() != Some(&name) {
                names.push(name);
            }
            let id = (names.len() - 1) as u32;
            match origin {
                Some((t, i)) => maps[t][i] = id,
                None => unknown = id,
            }
        }
        Names {
            names,
            maps,
            unknown,
        }
    }

    /// The name id of function `index` of table `table`.
    #[cfg(test)]
    pub fn id(&self, table: usize, index: u32) -> u32 {
        self.maps
            .get(table)
            .and_then(|m| m.get(index as usize))
            .copied()
            .unwrap_or(self.unknown)
    }

    /// Table `table`'s function index → name id map; indices beyond it
    /// are [`Names::unknown`].
    pub fn map(&self, table: usize) -> &[u32] {
        self.maps.get(table).map_or(&[], |m| m.as_slice())
    }

    /// The name id of out-of-range function indices.
    pub fn unknown(&self) -> u32 {
        self.unknown
    }

    pub fn name(&self, id: u32) -> &'a str {
        self.names.get(id as usize).copied().unwrap_or(UNKNOWN_NAME)
    }
}

/// What a tree does with stacks whose value is 0 or negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPositive {
    /// Merge them like the others (a diff or a native flame tree).
    Keep,
    /// Leave them out, as a flame graph cannot show them (Pyroscope).
    Drop,
}

/// One entry of a call tree: a path of one or more nodes where each node
/// but the last has exactly one child, the next (see [`CallTree`]). `N` is
/// the number of value slots: 1 for a flame tree, 2 (base, target) for a
/// diff tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<const N: usize> {
    /// Name id of the (first) node; unused for the root.
    pub name: u32,
    /// Index into `CallTree::chains`, or `NONE` for a single node.
    chain: u32,
    /// Child entries (of the last node) as a list in name order, `NONE`
    /// terminated.
    first_child: u32,
    next_sibling: u32,
    /// Self value of the last node; the others have none.
    pub self_value: [i64; N],
    /// Total value, the same for every node of the path.
    pub total: [i64; N],
}

const NONE: u32 = u32::MAX;

/// Where a path entry's names are in `CallTree::ids`; at least 2 long.
#[derive(Debug, Clone, Copy)]
struct Chain {
    start: usize,
    len: usize,
}

/// A call tree; entry 0 is the root, a single node. Child entries of an
/// entry hang off its last node, in name order.
///
/// Most nodes of a large tree lie on paths without branches (below the
/// point where only one stack goes on, or where base and target stacks of
/// a diff are equal), so such a path is stored as one entry referring to a
/// stack's frames. [`CallTree::select`] and [`CallTree::emit`] expand it as
/// far as needed. This keeps memory, and page faults, proportional to the
/// branching part of the tree.
pub(crate) struct CallTree<const N: usize> {
    pub nodes: Vec<Node<N>>,
    chains: Vec<Chain>,
    /// All stacks' frames as name ids, stack after stack.
    ids: Vec<u32>,
    /// Node count with paths expanded.
    expanded: usize,
}

/// A stack being placed.
#[derive(Clone, Copy)]
struct Work {
    /// Where its frames are in `ids`.
    start: usize,
    value: i64,
    /// The names of its next few frames packed for sorting (see `Packing`).
    key: u64,
    len: u32,
    slot: u32,
}

/// Several frames' name ids packed into one `u64`, first frame in the top
/// bits, each stored as id + 1 so that 0 marks the end of the stack: the
/// integer order of keys is then the order of the frame sequences, shorter
/// first. Sorting and grouping by such keys handles several levels of the
/// tree per pass over a group.
#[derive(Clone, Copy)]
struct Packing {
    bits: u32,
    /// Frames per key.
    levels: usize,
}

impl Packing {
    fn new(name_count: usize) -> Packing {
        let bits = (usize::BITS - name_count.leading_zeros()).max(1);
        Packing {
            bits,
            levels: (64 / bits).max(1) as usize,
        }
    }

    fn pack(&self, names: &[u32]) -> u64 {
        let mut key = 0u64;
        for (j, &id) in names.iter().take(self.levels).enumerate() {
            key |= u64::from(id + 1) << (64 - self.bits * (j as u32 + 1));
        }
        key
    }

    /// The name id at `level` of `key`, if the stack goes that deep.
    fn name(&self, key: u64, level: usize) -> Option<u32> {
        let shift = 64 - self.bits * (level as u32 + 1);
        let v = (key >> shift) & ((1u64 << self.bits) - 1);
        (v as u32).checked_sub(1)
    }

    /// Leading levels two keys share and both have.
    fn shared(&self, a: u64, b: u64, levels_a: usize, levels_b: usize) -> usize {
        let same = ((a ^ b).leading_zeros() / self.bits) as usize;
        same.min(levels_a).min(levels_b)
    }
}

/// How many stacks a group may have for the cheap "are they all equal from
/// here on" test that turns a diff's base/target stack pair into one path.
const SMALL_GROUP: usize = 4;

impl<const N: usize> CallTree<N> {
    /// Merges `tables[slot]` into value slot `slot` of one tree.
    ///
    /// The stacks under a node are grouped by their next few frames at
    /// once: pack those names into an integer key, sort the group by key,
    /// and walk it making the nodes of those levels (like building a trie
    /// from sorted strings). Groups that go deeper are done the same way
    /// later. A run of keys that only one stack (or a set of equal stacks)
    /// has becomes a path entry. Nothing is hashed, and each pass over a
    /// stack's frames covers several levels, which matters because those
    /// reads are cache misses.
    pub fn build(tables: [&StackTable; N], names: &Names<'_>) -> CallTree<N> {
        Self::build_with(tables, names, NonPositive::Keep)
    }

    /// [`CallTree::build`], leaving out stacks with a non-positive value
    /// when `non_positive` says so.
    pub fn build_with(
        tables: [&StackTable; N],
        names: &Names<'_>,
        non_positive: NonPositive,
    ) -> CallTree<N> {
        let frame_count: usize = tables
            .iter()
            .flat_map(|t| t.stacks.iter())
            .map(|(s, _)| s.len())
            .sum();
        let stack_count: usize = tables.iter().map(|t| t.stacks.len()).sum();
        let mut ids: Vec<u32> = Vec::with_capacity(frame_count);
        let mut work: Vec<Work> = Vec::with_capacity(stack_count);
        let mut root = Node {
            name: NONE,
            chain: NONE,
            first_child: NONE,
            next_sibling: NONE,
            self_value: [0; N],
            total: [0; N],
        };
        for (slot, table) in tables.iter().enumerate() {
            let map = names.map(slot);
            for (stack, value) in &table.stacks {
                if non_positive == NonPositive::Drop && *value <= 0 {
                    continue;
                }
                let total = &mut root.total[slot];
                *total = total.saturating_add(*value);
                work.push(Work {
                    start: ids.len(),
                    value: *value,
                    key: 0,
                    len: stack.len() as u32,
                    slot: slot as u32,
                });
                ids.extend(
                    stack
                        .iter()
                        .map(|&f| map.get(f as usize).copied().unwrap_or(names.unknown)),
                );
            }
        }

        let packing = Packing::new(names.names.len());
        let levels = packing.levels;
        let mut b = Builder {
            nodes: Vec::with_capacity(stack_count + 1),
            last_child: Vec::with_capacity(stack_count + 1),
            chains: Vec::new(),
            expanded: 1,
        };
        b.nodes.push(root);
        b.last_child.push(NONE);

        /// `work[lo..hi]` share their first `depth` frames, the path to
        /// node `parent`: make the nodes below.
        struct Group {
            lo: usize,
            hi: usize,
            depth: usize,
            parent: u32,
        }
        let mut todo = vec![Group {
            lo: 0,
            hi: work.len(),
            depth: 0,
            parent: 0,
        }];
        // Node ids of the current run's path, by level below `depth`.
        let mut path: Vec<u32> = vec![NONE; levels];
        while let Some(Group {
            lo,
            hi,
            depth,
            parent,
        }) = todo.pop()
        {
            let mut all_same = true;
            for i in lo..hi {
                let w = &mut work[i];
                let from = (w.start + depth).min(w.start + w.len as usize);
                let to = w.start + w.len as usize;
                w.key = packing.pack(&ids[from..to]);
                all_same &= w.key == work[lo].key;
            }
            if !all_same {
                work[lo..hi].sort_unstable_by_key(|w| w.key);
            }

            let mut prev: Option<(u64, usize)> = None;
            let mut a = lo;
            while a < hi {
                let key = work[a].key;
                let mut end = a + 1;
                while end < hi && work[end].key == key {
                    end += 1;
                }
                let run_levels = (0..levels)
                    .take_while(|&j| packing.name(key, j).is_some())
                    .count();
                let shared_prev = prev.map_or(0, |(k, l)| packing.shared(k, key, l, run_levels));
                let shared_next = if end < hi {
                    let next = work[end].key;
                    let next_levels = (0..levels)
                        .take_while(|&j| packing.name(next, j).is_some())
                        .count();
                    packing.shared(key, next, run_levels, next_levels)
                } else {
                    0
                };
                // Levels below `unique` belong to this run alone.
                let unique = shared_prev.max(shared_next);
                let mut sums = [0i64; N];
                for w in &work[a..end] {
                    let s = &mut sums[w.slot as usize];
                    *s = s.saturating_add(w.value);
                }

                // The path from `unique` down is one entry if the run's
                // stacks are all equal from there to their end.
                let first = work[a];
                let tail_from = first.start + depth + unique;
                let tail_to = first.start + first.len as usize;
                let chain = tail_to > tail_from + 1
                    && end - a <= SMALL_GROUP
                    && work[a + 1..end].iter().all(|w| {
                        w.len == first.len
                            && ids[w.start + depth + unique..w.start + w.len as usize]
                                == ids[tail_from..tail_to]
                    });
                let node_levels = if chain { unique } else { run_levels };

                for j in shared_prev..node_levels {
                    let up = if j == 0 { parent } else { path[j - 1] };
                    let name = packing.name(key, j).unwrap_or(NONE);
                    path[j] = b.add(up, name, NONE);
                }
                for &n in &path[..node_levels] {
                    b.add_total(n, sums);
                }
                let bottom = if node_levels == 0 {
                    parent
                } else {
                    path[node_levels - 1]
                };
                if chain {
                    let up = bottom;
                    let c = b.chains.len() as u32;
                    b.chains.push(Chain {
                        start: tail_from,
                        len: tail_to - tail_from,
                    });
                    b.expanded += tail_to - tail_from - 1;
                    let n = b.add(up, ids[tail_from], c);
                    b.add_total(n, sums);
                    b.add_self(n, sums);
                } else if run_levels < levels {
                    // Every stack of the run ends at this level.
                    b.add_self(bottom, sums);
                } else {
                    // Those that end here add self value; the others go on.
                    let cut = depth + levels;
                    let mut ended = a;
                    for i in a..end {
                        if work[i].len as usize == cut {
                            let w = work[i];
                            let mut v = [0; N];
                            v[w.slot as usize] = w.value;
                            b.add_self(bottom, v);
                            work.swap(ended, i);
                            ended += 1;
                        }
                    }
                    if ended < end {
                        todo.push(Group {
                            lo: ended,
                            hi: end,
                            depth: cut,
                            parent: bottom,
                        });
                    }
                }
                prev = Some((key, run_levels));
                a = end;
            }
        }
        CallTree {
            nodes: b.nodes,
            chains: b.chains,
            ids,
            expanded: b.expanded,
        }
    }

    /// Child entries of entry `node`, in name order.
    pub fn children(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        let mut next = self.nodes[node as usize].first_child;
        std::iter::from_fn(move || {
            let child = next;
            next = self.nodes.get(child as usize)?.next_sibling;
            Some(child)
        })
    }

    fn chain(&self, node: u32) -> Option<&Chain> {
        self.chains.get(self.nodes[node as usize].chain as usize)
    }

    /// Number of nodes of entry `node`.
    fn len(&self, node: u32) -> usize {
        self.chain(node).map_or(1, |c| c.len)
    }

    /// How many nodes of each entry to keep (from the top of its path) so
    /// that the output has at most `max_nodes` nodes, "other" nodes
    /// included (but at least the root and one "other").
    ///
    /// Nodes are taken best first by `key`, starting from the root, and the
    /// first node that does not fit stops the selection. When a child's key
    /// never exceeds its parent's (true for totals and shares of
    /// non-negative values), this keeps exactly the nodes with the largest
    /// keys, and the kept set is connected by construction. The nodes of a
    /// path share one key and are taken top down.
    pub fn select<K: Ord + Copy>(&self, max_nodes: usize, key: impl Fn(&Node<N>) -> K) -> Vec<u32> {
        let n = self.nodes.len();
        if self.expanded <= max_nodes {
            return (0..n as u32).map(|i| self.len(i) as u32).collect();
        }
        let budget = max_nodes.max(2);
        let mut kept = vec![0u32; n];
        // For fully kept entries: child entries not (yet) kept, which an
        // "other" stands for.
        let mut unkept = vec![0u32; n];
        // (key, entry, parent entry); ties go to the earlier entry.
        let mut heap: BinaryHeap<(K, Reverse<u32>, u32)> = BinaryHeap::new();

        kept[0] = 1;
        for c in self.children(0) {
            unkept[0] += 1;
            heap.push((key(&self.nodes[c as usize]), Reverse(c), 0));
        }
        let mut cost = 1 + usize::from(unkept[0] > 0);
        'select: while let Some((k, Reverse(c), parent)) = heap.pop() {
            let (ci, pi) = (c as usize, parent as usize);
            let len = self.len(c);
            // The nodes of a path, one by one while nothing else in the
            // heap ranks higher (they all have key `k`).
            loop {
                let taken = kept[ci] as usize;
                let last = taken + 1 == len;
                // Keeping the next node adds it, adds an "other" under it if
                // it has children, and removes its parent's "other" if it
                // was the last child that "other" stood for. Within a path,
                // the parent is the previous node, whose only child this is.
                let has_children = !last || self.children(c).next().is_some();
                let parent_other_goes = taken > 0 || unkept[pi] == 1;
                let next = cost + 1 + usize::from(has_children) - usize::from(parent_other_goes);
                if next > budget {
                    break 'select;
                }
                cost = next;
                kept[ci] += 1;
                if taken == 0 {
                    unkept[pi] -= 1;
                }
                if last {
                    for g in self.children(c) {
                        unkept[ci] += 1;
                        heap.push((key(&self.nodes[g as usize]), Reverse(g), c));
                    }
                    break;
                }
                if heap.peek().is_some_and(|top| top.0 > k) {
                    heap.push((k, Reverse(c), parent));
                    break;
                }
            }
        }
        kept
    }

    /// Whether a selection from [`CallTree::select`] leaves nodes out.
    pub fn truncated(&self, kept: &[u32]) -> bool {
        kept.iter().map(|&k| k as usize).sum::<usize>() < self.expanded
    }

    /// The smallest total a node may have to be kept so that about
    /// `max_nodes` nodes are (Pyroscope's `minValue`): the `max_nodes`-th
    /// largest node total, the root left out, or 0 when the tree has no
    /// more nodes than that or `max_nodes` is 0. Nodes tying with it are
    /// kept too, so more than `max_nodes` may be; "other" nodes do not
    /// count.
    pub fn min_total(&self, max_nodes: usize) -> i64 {
        if max_nodes == 0 || self.expanded <= max_nodes {
            return 0;
        }
        let mut heap: BinaryHeap<Reverse<i64>> = BinaryHeap::with_capacity(max_nodes + 1);
        let mut todo: Vec<u32> = self.children(0).collect();
        while let Some(entry) = todo.pop() {
            let total = self.nodes[entry as usize].total[0];
            // The nodes of a path share one total: each is offered in turn.
            let mut all = true;
            for _ in 0..self.len(entry) {
                match heap.peek() {
                    Some(&Reverse(min)) if heap.len() >= max_nodes => {
                        if total > min {
                            heap.pop();
                        } else {
                            all = false;
                            break;
                        }
                    }
                    _ => {}
                }
                heap.push(Reverse(total));
            }
            // A child never has more than its parent: a node that cannot
            // enter the heap rules out its whole subtree.
            if all {
                todo.extend(self.children(entry));
            }
        }
        match heap.peek() {
            Some(&Reverse(min)) if heap.len() >= max_nodes => min,
            _ => 0,
        }
    }

    /// A selection for [`CallTree::walk`]: every node whose total is at
    /// least `min_total` (a path's nodes share one, so a path is kept
    /// whole or not at all). Kept nodes stay connected because a child
    /// never has more than its parent.
    pub fn select_min_total(&self, min_total: i64) -> Vec<u32> {
        (0..self.nodes.len() as u32)
            .map(|i| {
                if i == 0 || self.nodes[i as usize].total[0] >= min_total {
                    self.len(i) as u32
                } else {
                    0
                }
            })
            .collect()
    }

    /// Visits the kept nodes in pre-order as `visit(depth, label, self,
    /// total)`, each node's kept children in name order followed by an
    /// "other" node when some of its children were dropped. `kept` is what
    /// [`CallTree::select`] or [`CallTree::select_min_total`] returned.
    pub fn walk(&self, kept: &[u32], mut visit: impl FnMut(usize, Label, [i64; N], [i64; N])) {
        enum Item<const N: usize> {
            Entry(u32, usize),
            Other([i64; N], usize),
        }
        let taken = |c: u32| kept.get(c as usize).copied().unwrap_or(0) as usize;

        let mut todo: Vec<Item<N>> = vec![Item::Entry(0, 0)];
        let mut kids: Vec<u32> = Vec::new();
        while let Some(item) = todo.pop() {
            let (entry, depth) = match item {
                Item::Entry(entry, depth) => (entry, depth),
                Item::Other(sum, depth) => {
                    visit(depth, Label::Other, sum, sum);
                    continue;
                }
            };
            let n = &self.nodes[entry as usize];
            let chain = self.chain(entry);
            let len = self.len(entry);
            let keep = taken(entry).clamp(1, len);
            for k in 0..keep {
                let label = match chain {
                    Some(c) => Label::Name(self.ids[c.start + k]),
                    None if entry == 0 => Label::Root,
                    None => Label::Name(n.name),
                };
                let self_value = if k + 1 == len { n.self_value } else { [0; N] };
                visit(depth + k, label, self_value, n.total);
            }
            let below = depth + keep;
            if keep < len {
                // The rest of the path (and all below it) is dropped.
                todo.push(Item::Other(n.total, below));
                continue;
            }
            kids.clear();
            let mut dropped: Option<[i64; N]> = None;
            for c in self.children(entry) {
                if taken(c) > 0 {
                    kids.push(c);
                } else {
                    let sum = dropped.get_or_insert([0; N]);
                    for (acc, v) in sum.iter_mut().zip(self.nodes[c as usize].total) {
                        *acc = acc.saturating_add(v);
                    }
                }
            }
            // Pushed in reverse so they pop in order, "other" last.
            if let Some(sum) = dropped {
                todo.push(Item::Other(sum, below));
            }
            todo.extend(kids.iter().rev().map(|&c| Item::Entry(c, below)));
        }
    }

    /// The kept nodes of [`CallTree::walk`] as a list in pre-order, each
    /// with its children's indices.
    pub fn emit(&self, kept: &[u32]) -> Vec<OutNode<N>> {
        let mut out: Vec<OutNode<N>> = Vec::new();
        // The index of the last node seen at each depth: a node's parent
        // is the last one a level up.
        let mut at: Vec<usize> = Vec::new();
        self.walk(kept, |depth, label, self_value, total| {
            let idx = out.len();
            out.push(OutNode {
                label,
                self_value,
                total,
                children: Vec::new(),
            });
            if let Some(&p) = depth.checked_sub(1).and_then(|d| at.get(d)) {
                if let Some(parent) = out.get_mut(p) {
                    parent.children.push(idx as u32);
                }
            }
            at.truncate(depth);
            at.push(idx);
        });
        out
    }
}

/// The growing tree while [`CallTree::build`] runs.
struct Builder<const N: usize> {
    nodes: Vec<Node<N>>,
    /// Per node: its last child so far, for appending.
    last_child: Vec<u32>,
    chains: Vec<Chain>,
    expanded: usize,
}

impl<const N: usize> Builder<N> {
    /// Appends a child entry named `name` to `parent`'s children.
    fn add(&mut self, parent: u32, name: u32, chain: u32) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            name,
            chain,
            first_child: NONE,
            next_sibling: NONE,
            self_value: [0; N],
            total: [0; N],
        });
        self.last_child.push(NONE);
        let p = parent as usize;
        match self.last_child[p] {
            NONE => self.nodes[p].first_child = id,
            last => self.nodes[last as usize].next_sibling = id,
        }
        self.last_child[p] = id;
        self.expanded += 1;
        id
    }

    fn add_total(&mut self, node: u32, v: [i64; N]) {
        let n = &mut self.nodes[node as usize];
        for (acc, v) in n.total.iter_mut().zip(v) {
            *acc = acc.saturating_add(v);
        }
    }

    fn add_self(&mut self, node: u32, v: [i64; N]) {
        let n = &mut self.nodes[node as usize];
        for (acc, v) in n.self_value.iter_mut().zip(v) {
            *acc = acc.saturating_add(v);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Root,
    Name(u32),
    Other,
}

/// A node of a truncated tree, before names are attached.
pub(crate) struct OutNode<const N: usize> {
    pub label: Label,
    pub self_value: [i64; N],
    pub total: [i64; N],
    /// Indices into the emitted list.
    pub children: Vec<u32>,
}

impl Label {
    pub fn text<'a>(&self, names: &Names<'a>) -> &'a str {
        match self {
            Label::Root => ROOT_NAME,
            Label::Name(id) => names.name(*id),
            Label::Other => OTHER_NAME,
        }
    }
}

/// An `f64` ordered by `total_cmp`, for heap keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrdF64(pub f64);

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Flamebearer-style level building shared by flame and diff encodings.
///
/// Walks a tree given as `children` lists from node 0 in pre-order and calls
/// `visit(node, depth)`; indices out of range or seen before are skipped, so
/// a malformed tree read back from JSON cannot loop or panic.
pub(crate) fn walk_preorder(
    count: usize,
    children: impl Fn(usize) -> Vec<usize>,
    mut visit: impl FnMut(usize, usize),
) {
    if count == 0 {
        return;
    }
    let mut seen = vec![false; count];
    let mut todo: Vec<(usize, usize)> = vec![(0, 0)];
    while let Some((node, depth)) = todo.pop() {
        match seen.get_mut(node) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        visit(node, depth);
        todo.extend(children(node).into_iter().rev().map(|c| (c, depth + 1)));
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

    #[test]
    fn names_merge_duplicates_and_sort() {
        let a = table(&["zeta", "alpha", "zeta"], &[]);
        let b = table(&["beta", "alpha"], &[]);
        let names = Names::new(&[&a, &b]);
        assert_eq!(names.names, vec!["[unknown]", "alpha", "beta", "zeta"]);
        assert_eq!(names.id(0, 0), names.id(0, 2));
        assert_eq!(names.id(0, 1), names.id(1, 1));
        assert_eq!(names.name(names.id(0, 99)), UNKNOWN_NAME);
    }

    #[test]
    fn build_merges_by_name_regardless_of_input_order() {
        // Function 2 duplicates function 0's name, so both stacks are one path.
        let t = table(
            &["main", "work", "main"],
            &[(&[0, 1], 3), (&[1], 2), (&[2, 1], 4), (&[0], 1)],
        );
        let names = Names::new(&[&t]);
        let tree = CallTree::build([&t], &names);
        // root, main, main/work, work
        assert_eq!(tree.expanded, 4);
        assert_eq!(tree.nodes[0].total, [10]);
        let kids: Vec<&str> = tree
            .children(0)
            .map(|c| names.name(tree.nodes[c as usize].name))
            .collect();
        assert_eq!(kids, vec!["main", "work"]);
        let main = tree.children(0).next().unwrap_or(0) as usize;
        assert_eq!(tree.nodes[main].self_value, [1]);
        assert_eq!(tree.nodes[main].total, [8]);
    }

    #[test]
    fn single_stack_paths_become_chains() {
        // a → b → c → d alone below b; a → x → y too.
        let t = table(
            &["a", "b", "c", "d", "x", "y"],
            &[(&[0, 1, 2, 3], 4), (&[0, 4, 5], 2), (&[0], 1)],
        );
        let names = Names::new(&[&t]);
        let tree = CallTree::build([&t], &names);
        // Entries: root, a, chain b-c-d, chain x-y.
        assert_eq!(tree.nodes.len(), 4);
        assert_eq!(tree.expanded, 7);
        assert_eq!(tree.chains.len(), 2);
        assert_eq!(tree.len(2), 3);
        assert_eq!(tree.nodes[2].total, [4]);
        let all = tree.select(usize::MAX, |n| n.total[0]);
        let out = tree.emit(&all);
        let labels: Vec<&str> = out.iter().map(|n| n.label.text(&names)).collect();
        assert_eq!(labels, vec!["total", "a", "b", "c", "d", "x", "y"]);
        assert_eq!(out[4].self_value, [4]);
        assert_eq!(out[3].self_value, [0]);
        assert_eq!(out[3].children, vec![4]);
    }

    use std::collections::BTreeMap;

    /// xorshift64: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A random table over `alphabet` names (some duplicated, so merging
    /// by name matters), with shared prefixes, recursion, empty stacks and
    /// the odd out-of-range function index.
    fn random_table(rng: &mut Rng, alphabet: usize, stacks: usize, max_depth: u64) -> StackTable {
        let functions: Vec<String> = (0..alphabet)
            .map(|i| format!("f{}", i % (alphabet - alphabet / 10).max(1)))
            .collect();
        let prefixes: Vec<Vec<u32>> = (0..4)
            .map(|_| {
                (0..rng.below(8))
                    .map(|_| rng.below(alphabet as u64) as u32)
                    .collect()
            })
            .collect();
        let stacks = (0..stacks)
            .map(|_| {
                let mut s = prefixes[rng.below(4) as usize].clone();
                for _ in 0..rng.below(max_depth + 1) {
                    // Mostly small names, so that stacks share paths.
                    let f = if rng.below(50) == 0 {
                        alphabet as u32 + 3
                    } else {
                        rng.below(alphabet as u64).min(rng.below(alphabet as u64)) as u32
                    };
                    s.push(f);
                }
                (s, 1 + rng.below(100) as i64)
            })
            .collect();
        StackTable { functions, stacks }
    }

    type PathValues<const N: usize> = BTreeMap<Vec<String>, ([i64; N], [i64; N])>;

    /// The call tree the slow, obvious way: every prefix of every stack,
    /// by name, with (self, total) per slot.
    fn reference<const N: usize>(tables: [&StackTable; N]) -> PathValues<N> {
        let mut out: PathValues<N> = BTreeMap::new();
        for (slot, t) in tables.iter().enumerate() {
            for (stack, v) in &t.stacks {
                let names: Vec<String> = stack
                    .iter()
                    .map(|&f| {
                        t.functions
                            .get(f as usize)
                            .cloned()
                            .unwrap_or_else(|| UNKNOWN_NAME.to_string())
                    })
                    .collect();
                for depth in 0..=names.len() {
                    let e = out
                        .entry(names[..depth].to_vec())
                        .or_insert(([0; N], [0; N]));
                    e.1[slot] += v;
                    if depth == names.len() {
                        e.0[slot] += v;
                    }
                }
            }
        }
        out
    }

    /// Paths of an emitted tree, checking on the way that children are in
    /// name order and that self + children == total.
    fn emitted<const N: usize>(out: &[OutNode<N>], names: &Names<'_>) -> PathValues<N> {
        let mut paths = BTreeMap::new();
        let mut todo = vec![(0usize, Vec::<String>::new())];
        while let Some((i, path)) = todo.pop() {
            let n = &out[i];
            let mut sum = n.self_value;
            let mut prev: Option<&str> = None;
            for &c in &n.children {
                let c = &out[c as usize];
                for (acc, v) in sum.iter_mut().zip(c.total) {
                    *acc += v;
                }
                let name = c.label.text(names);
                if !matches!(c.label, Label::Other) {
                    assert!(prev.is_none_or(|p| p < name), "{prev:?} before {name}");
                    prev = Some(name);
                }
            }
            assert_eq!(sum, n.total, "at {path:?}");
            for &c in &n.children {
                let mut p = path.clone();
                p.push(out[c as usize].label.text(names).to_string());
                todo.push((c as usize, p));
            }
            assert!(paths.insert(path, (n.self_value, n.total)).is_none());
        }
        paths
    }

    #[test]
    fn full_trees_match_the_obvious_construction() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        // Alphabets from 3 names (many frames per sort key) to 70k (3 per
        // key); depths beyond one key's worth force several rounds.
        for (alphabet, stacks, depth) in [
            (3, 40, 30),
            (12, 300, 25),
            (200, 500, 60),
            (70_000, 400, 12),
        ] {
            let base = random_table(&mut rng, alphabet, stacks, depth);
            let target = random_table(&mut rng, alphabet, stacks / 2, depth);
            let names = Names::new(&[&base]);
            let tree = CallTree::build([&base], &names);
            let all = tree.select(usize::MAX, |n| n.total[0]);
            assert!(!tree.truncated(&all));
            let got = emitted(&tree.emit(&all), &names);
            assert_eq!(got, reference([&base]), "alphabet {alphabet}");
            assert_eq!(got.len(), tree.expanded);

            let names = Names::new(&[&base, &target]);
            let tree = CallTree::build([&base, &target], &names);
            let all = tree.select(usize::MAX, |n| n.total[0]);
            let got = emitted(&tree.emit(&all), &names);
            assert_eq!(got, reference([&base, &target]), "alphabet {alphabet}");
            // Equal tables: every path is a base/target pair.
            let tree = CallTree::build([&base, &base], &names);
            let all = tree.select(usize::MAX, |n| n.total[0]);
            let got = emitted(&tree.emit(&all), &names);
            assert_eq!(got, reference([&base, &base]));
        }
    }

    #[test]
    fn truncated_trees_keep_the_largest_nodes_within_budget() {
        let mut rng = Rng(0x0fed_cba9_8765_4321);
        for (alphabet, stacks, depth) in [(5, 60, 12), (30, 200, 20)] {
            let t = random_table(&mut rng, alphabet, stacks, depth);
            let full = reference([&t]);
            let names = Names::new(&[&t]);
            let tree = CallTree::build([&t], &names);
            for budget in [2, 3, 5, 8, 13, 40, 100, 250, full.len() - 1] {
                let kept = tree.select(budget, |n| n.total[0]);
                assert!(tree.truncated(&kept));
                let out = tree.emit(&kept);
                assert!(out.len() <= budget, "{} > {budget}", out.len());
                let got = emitted(&out, &names);
                // Real nodes keep their values; find the smallest kept.
                let mut smallest = i64::MAX;
                for (path, values) in &got {
                    if path.last().is_some_and(|n| n == OTHER_NAME) {
                        continue;
                    }
                    assert_eq!(Some(values), full.get(path), "{path:?}");
                    smallest = smallest.min(values.1[0]);
                }
                // No dropped node is larger than a kept one.
                for (path, values) in &full {
                    if !got.contains_key(path) {
                        assert!(values.1[0] <= smallest, "dropped {path:?} {values:?}");
                    }
                }
            }
        }
    }
}
