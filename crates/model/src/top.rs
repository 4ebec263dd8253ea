//! Top functions: self and total value per function, the table `perfpilot
//! top` shows, and [`FunctionTally`], the counting behind every top table
//! and diff (the query crate's on stack tables too).

use std::collections::HashMap;

use crate::Profile;

/// One row: a function, optionally split by a label (e.g. process name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionStat {
    pub name: String,
    /// The value of the grouping label, empty when not grouped.
    pub group: String,
    /// Value of samples where the function is the leaf.
    pub self_value: i64,
    /// Value of samples where the function is anywhere on the stack
    /// (counted once per sample, however often it recurses).
    pub total_value: i64,
}

/// Self and total of every function in `profile` for value `index`,
/// grouped by label `group_by` when given, sorted by self value (then
/// total, then name) descending.
pub fn top_functions(profile: &Profile, index: usize, group_by: Option<&str>) -> Vec<FunctionStat> {
    // (name, group) → tally id.
    let mut ids: HashMap<(&str, &str), usize> = HashMap::new();
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut tally = FunctionTally::default();
    let mut frames_ids: Vec<usize> = Vec::new();
    for s in profile.samples() {
        let v = s.values.get(index).copied().unwrap_or(0);
        if v == 0 {
            continue;
        }
        let group = group_by.and_then(|k| profile.label(s, k)).unwrap_or("");
        frames_ids.clear();
        for f in profile.frames(s.stack) {
            let id = *ids.entry((f.name, group)).or_insert_with(|| {
                keys.push((f.name, group));
                keys.len() - 1
            });
            frames_ids.push(id);
        }
        // Frames are leaf first.
        tally.add(frames_ids.iter().copied(), frames_ids.first().copied(), v);
    }
    let mut out: Vec<FunctionStat> = tally
        .present()
        .filter_map(|id| {
            let (name, group) = keys.get(id)?;
            let (self_value, total_value) = tally.get(id);
            Some(FunctionStat {
                name: name.to_string(),
                group: group.to_string(),
                self_value,
                total_value,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.self_value
            .cmp(&a.self_value)
            .then(b.total_value.cmp(&a.total_value))
            .then(a.name.cmp(&b.name))
            .then(a.group.cmp(&b.group))
    });
    out
}

/// Self and total value per function id over stacks added one at a time:
/// a function is in a stack's total once however often it recurses there,
/// and in its self value when it is the leaf. Ids are small integers the
/// caller assigns (the tables grow to fit).
#[derive(Debug, Clone, Default)]
pub struct FunctionTally {
    self_values: Vec<i64>,
    totals: Vec<i64>,
    /// Whether the id occurred on any stack (a row is due even if its
    /// values sum to 0).
    seen: Vec<bool>,
    /// The last stack (1-based) each id was counted in, so recursion
    /// counts once per stack without a per-stack set.
    stamp: Vec<usize>,
    stacks: usize,
}

impl FunctionTally {
    /// A tally with room for ids below `ids`.
    pub fn with_ids(ids: usize) -> FunctionTally {
        FunctionTally {
            self_values: vec![0; ids],
            totals: vec![0; ids],
            seen: vec![false; ids],
            stamp: vec![0; ids],
            stacks: 0,
        }
    }

    fn fit(&mut self, id: usize) {
        if id >= self.seen.len() {
            let n = id + 1;
            self.self_values.resize(n, 0);
            self.totals.resize(n, 0);
            self.seen.resize(n, false);
            self.stamp.resize(n, 0);
        }
    }

    /// Counts one stack: its frames' ids (in any order) and its leaf's.
    /// Sums saturate.
    pub fn add(
        &mut self,
        frames: impl IntoIterator<Item = usize>,
        leaf: Option<usize>,
        value: i64,
    ) {
        self.stacks += 1;
        let mark = self.stacks;
        for id in frames {
            self.fit(id);
            if self.stamp[id] != mark {
                self.stamp[id] = mark;
                self.seen[id] = true;
                self.totals[id] = self.totals[id].saturating_add(value);
            }
        }
        if let Some(id) = leaf {
            self.fit(id);
            self.self_values[id] = self.self_values[id].saturating_add(value);
        }
    }

    /// Ids that occurred on some stack, ascending.
    pub fn present(&self) -> impl Iterator<Item = usize> + '_ {
        self.seen
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| i)
    }

    pub fn is_present(&self, id: usize) -> bool {
        self.seen.get(id).copied().unwrap_or(false)
    }

    /// (self, total) of `id`; (0, 0) for ids never seen.
    pub fn get(&self, id: usize) -> (i64, i64) {
        (
            self.self_values.get(id).copied().unwrap_or(0),
            self.totals.get(id).copied().unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folded;

    #[test]
    fn self_and_total_with_recursion_and_groups() {
        let p = folded::decode(b"main;a;a;b 3\nmain;b 1\nmain 2\n").unwrap();
        let top = top_functions(&p, 0, None);
        let get = |n: &str| top.iter().find(|r| r.name == n).unwrap();
        assert_eq!((get("b").self_value, get("b").total_value), (4, 4));
        assert_eq!((get("a").self_value, get("a").total_value), (0, 3));
        assert_eq!((get("main").self_value, get("main").total_value), (2, 6));
        assert_eq!(top[0].name, "b");
        assert_eq!(top.iter().map(|r| r.self_value).sum::<i64>(), p.total(0));
    }

    #[test]
    fn grouping_by_label_splits_rows() {
        let mut p = Profile::new(vec![crate::ValueType::new("samples", "count")]);
        let f = p.add_function_named("work");
        let l = p.add_function_location(f);
        let s = p.add_stack(&[l]);
        let x = p.add_label_set([("process_name", "x")]);
        let y = p.add_label_set([("process_name", "y")]);
        p.add_sample(s, x, &[5]);
        p.add_sample(s, y, &[2]);
        let top = top_functions(&p, 0, Some("process_name"));
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].group.as_str(), top[0].self_value), ("x", 5));
        assert_eq!((top[1].group.as_str(), top[1].self_value), ("y", 2));
    }

    #[test]
    fn tally_counts_recursion_once_and_keeps_zero_rows() {
        let mut t = FunctionTally::with_ids(2);
        // 0 → 1 → 1 (leaf), value 6; then 0 → 3 (leaf, past the initial
        // size), value 4; then a zero-valued stack through 5.
        t.add([0, 1, 1], Some(1), 6);
        t.add([0, 3], Some(3), 4);
        t.add([5], Some(5), 0);
        assert_eq!(t.get(1), (6, 6));
        assert_eq!(t.get(0), (0, 10));
        assert_eq!(t.get(3), (4, 4));
        assert_eq!(t.present().collect::<Vec<_>>(), vec![0, 1, 3, 5]);
        assert!(t.is_present(5) && !t.is_present(2) && !t.is_present(99));
        assert_eq!(t.get(99), (0, 0));
        t.add([0], Some(0), i64::MAX);
        assert_eq!(t.get(0), (i64::MAX, i64::MAX));
    }
}
