//! Sandwich view: one function's callers above it and its callees below
//! it, each as a stack table rooted at the function.

use perfpilot_model::series::StackTable;

use crate::tree::UNKNOWN_NAME;

/// What calls a function and what it calls, over one table.
///
/// Both tables hold one stack per input stack containing the function,
/// with that stack's value, so each totals `total_value`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sandwich {
    /// Stacks from the function's innermost occurrence outwards: the
    /// function is the root frame, then its caller, then the caller's
    /// caller. Taking the innermost occurrence keeps recursion out of the
    /// callers view.
    pub callers: StackTable,
    /// Stacks from the function's outermost occurrence inwards: the
    /// function is the root frame, then what it calls. Taking the outermost
    /// occurrence keeps everything the function ran, recursion included.
    pub callees: StackTable,
    /// Value of stacks whose leaf is the function.
    pub self_value: i64,
    /// Value of stacks containing the function, counted once per stack
    /// however often it recurses (as in [`crate::top_functions`]).
    pub total_value: i64,
}

/// The sandwich of `function` (matched by exact name; several function
/// indices with that name count as one function). A function absent from
/// `table` gives empty tables and zero values.
///
/// Output tables name only the functions they use, the function itself
/// first. Function indices out of range of `table.functions` are named
/// `[unknown]`, as in flame trees. Equal output stacks are not merged:
/// flame trees merge them anyway.
pub fn sandwich(table: &StackTable, function: &str) -> Sandwich {
    let is_target: Vec<bool> = table.functions.iter().map(|f| f == function).collect();
    let target = |f: u32| is_target.get(f as usize).copied().unwrap_or(false);
    let mut callers = Renumber::new(table, function);
    let mut callees = Renumber::new(table, function);
    let mut self_value = 0i64;
    let mut total_value = 0i64;
    for (stack, value) in &table.stacks {
        let Some(first) = stack.iter().position(|&f| target(f)) else {
            continue;
        };
        // A stack holding the function at `first` has a last occurrence.
        let last = stack.iter().rposition(|&f| target(f)).unwrap_or(first);
        total_value = total_value.saturating_add(*value);
        if last + 1 == stack.len() {
            self_value = self_value.saturating_add(*value);
        }
        let up: Vec<u32> = stack[..=last]
            .iter()
            .rev()
            .map(|&f| callers.index(f, target(f)))
            .collect();
        callers.table.stacks.push((up, *value));
        let down: Vec<u32> = stack[first..]
            .iter()
            .map(|&f| callees.index(f, target(f)))
            .collect();
        callees.table.stacks.push((down, *value));
    }
    Sandwich {
        callers: callers.finish(),
        callees: callees.finish(),
        self_value,
        total_value,
    }
}

/// Builds an output table whose `functions` holds only the names its
/// stacks use, with the sandwiched function at index 0.
struct Renumber<'a> {
    input: &'a StackTable,
    /// Input function index → output index; `u32::MAX` when not yet used.
    map: Vec<u32>,
    /// Output index of out-of-range input indices, once one is seen.
    unknown: Option<u32>,
    table: StackTable,
}

impl<'a> Renumber<'a> {
    fn new(input: &'a StackTable, function: &str) -> Renumber<'a> {
        Renumber {
            input,
            map: vec![u32::MAX; input.functions.len()],
            unknown: None,
            table: StackTable {
                functions: vec![function.to_string()],
                stacks: Vec::new(),
            },
        }
    }

    fn index(&mut self, f: u32, is_target: bool) -> u32 {
        if is_target {
            return 0;
        }
        let next = self.table.functions.len() as u32;
        match (
            self.map.get_mut(f as usize),
            self.input.functions.get(f as usize),
        ) {
            (Some(slot), Some(name)) => {
                if *slot == u32::MAX {
                    *slot = next;
                    self.table.functions.push(name.clone());
                }
                *slot
            }
            _ => *self.unknown.get_or_insert_with(|| {
                self.table.functions.push(UNKNOWN_NAME.to_string());
                next
            }),
        }
    }

    /// The table, or an empty one (no function names either) when no
    /// stack contained the function.
    fn finish(self) -> StackTable {
        if self.table.stacks.is_empty() {
            StackTable::default()
        } else {
            self.table
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

    /// A table's stacks as (names joined by ';', value), sorted.
    fn folded(t: &StackTable) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = t
            .stacks
            .iter()
            .map(|(s, v)| {
                let names: Vec<&str> = s
                    .iter()
                    .map(|&f| t.functions.get(f as usize).map_or("?", |n| n.as_str()))
                    .collect();
                (names.join(";"), *v)
            })
            .collect();
        out.sort();
        out
    }

    fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = v.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        out.sort();
        out
    }

    #[test]
    fn callers_and_callees_of_a_function_called_from_two_places() {
        // main;a;work;leaf 5, main;b;work 3, main;other 7
        let t = table(
            &["main", "a", "b", "work", "leaf", "other"],
            &[(&[0, 1, 3, 4], 5), (&[0, 2, 3], 3), (&[0, 5], 7)],
        );
        let s = sandwich(&t, "work");
        assert_eq!((s.self_value, s.total_value), (3, 8));
        assert_eq!(
            folded(&s.callers),
            pairs(&[("work;a;main", 5), ("work;b;main", 3)])
        );
        assert_eq!(folded(&s.callees), pairs(&[("work", 3), ("work;leaf", 5)]));
        assert_eq!(s.callers.total(), s.total_value);
        assert_eq!(s.callees.total(), s.total_value);
        // Only the names used, the function first.
        assert_eq!(s.callers.functions, vec!["work", "a", "main", "b"]);
        assert_eq!(s.callees.functions, vec!["work", "leaf"]);
    }

    #[test]
    fn recursion_counts_once_innermost_callers_outermost_callees() {
        // main;f;g;f;h 4: callers from the inner f, callees from the
        // outer f. main;f;f 2: a self stack.
        let t = table(
            &["main", "f", "g", "h"],
            &[(&[0, 1, 2, 1, 3], 4), (&[0, 1, 1], 2)],
        );
        let s = sandwich(&t, "f");
        assert_eq!((s.self_value, s.total_value), (2, 6));
        assert_eq!(
            folded(&s.callers),
            pairs(&[("f;g;f;main", 4), ("f;f;main", 2)])
        );
        assert_eq!(folded(&s.callees), pairs(&[("f;g;f;h", 4), ("f;f", 2)]));
        assert_eq!(s.callers.total(), 6);
        assert_eq!(s.callees.total(), 6);
    }

    #[test]
    fn the_root_and_the_leaf_function() {
        let t = table(&["main", "f"], &[(&[0, 1], 3), (&[0], 1)]);
        let root = sandwich(&t, "main");
        assert_eq!((root.self_value, root.total_value), (1, 4));
        assert_eq!(folded(&root.callers), pairs(&[("main", 3), ("main", 1)]));
        assert_eq!(folded(&root.callees), pairs(&[("main", 1), ("main;f", 3)]));
        let leaf = sandwich(&t, "f");
        assert_eq!((leaf.self_value, leaf.total_value), (3, 3));
        assert_eq!(folded(&leaf.callers), pairs(&[("f;main", 3)]));
        assert_eq!(folded(&leaf.callees), pairs(&[("f", 3)]));
    }

    #[test]
    fn duplicate_names_are_one_function() {
        // Two indices named "x": x(0);y;x(2) is recursion of one function.
        let t = table(&["x", "y", "x"], &[(&[0, 1, 2], 5)]);
        let s = sandwich(&t, "x");
        assert_eq!((s.self_value, s.total_value), (5, 5));
        assert_eq!(folded(&s.callers), pairs(&[("x;y;x", 5)]));
        assert_eq!(folded(&s.callees), pairs(&[("x;y;x", 5)]));
    }

    #[test]
    fn absent_function_gives_empty_tables_and_zero_values() {
        let t = table(&["main", "f"], &[(&[0, 1], 3)]);
        let s = sandwich(&t, "nope");
        assert_eq!(s, Sandwich::default());
        assert_eq!(sandwich(&StackTable::default(), "f"), Sandwich::default());
    }

    #[test]
    fn out_of_range_indices_are_unknown() {
        let t = table(&["main", "f"], &[(&[0, 9, 1, 7], 2)]);
        let s = sandwich(&t, "f");
        assert_eq!(folded(&s.callers), pairs(&[("f;[unknown];main", 2)]));
        assert_eq!(folded(&s.callees), pairs(&[("f;[unknown]", 2)]));
        assert_eq!(s.callers.functions, vec!["f", "[unknown]", "main"]);
    }

    #[test]
    fn flame_trees_of_both_sides_total_the_function() {
        let t = table(
            &["main", "a", "b", "work", "leaf"],
            &[(&[0, 1, 3, 4], 5), (&[0, 2, 3], 3)],
        );
        let s = sandwich(&t, "work");
        for side in [&s.callers, &s.callees] {
            let tree = crate::flame_tree(side, 100);
            assert_eq!(tree.total, 8);
            // total → work, the only child of the root.
            let root = &tree.nodes[0];
            assert_eq!(root.children.len(), 1);
            assert_eq!(tree.nodes[root.children[0] as usize].name, "work");
        }
    }
}
