//! Top functions: self and total value per function, the table `perfpilot
//! top` shows and the server's top query returns.

use std::collections::{HashMap, HashSet};

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
    let mut rows: HashMap<(String, String), (i64, i64)> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for s in profile.samples() {
        let v = s.values.get(index).copied().unwrap_or(0);
        if v == 0 {
            continue;
        }
        let group = group_by
            .and_then(|k| profile.label(s, k))
            .unwrap_or("")
            .to_string();
        let frames = profile.frames(s.stack);
        seen.clear();
        for (i, f) in frames.iter().enumerate() {
            let entry = rows.entry((f.name.to_string(), group.clone())).or_default();
            if i == 0 {
                entry.0 += v;
            }
            if seen.insert(f.name) {
                entry.1 += v;
            }
        }
    }
    let mut out: Vec<FunctionStat> = rows
        .into_iter()
        .map(|((name, group), (self_value, total_value))| FunctionStat {
            name,
            group,
            self_value,
            total_value,
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
}
