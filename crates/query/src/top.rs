//! Top functions: self and total value per function name.

use perfpilot_model::series::StackTable;
use perfpilot_model::top::FunctionTally;
use serde::{Deserialize, Serialize};

use crate::tree::Names;

/// One function of a top table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopRow {
    pub name: String,
    /// Value of stacks whose leaf is this function.
    pub self_value: i64,
    /// Value of stacks containing this function anywhere, counted once per
    /// stack however often the function recurses.
    pub total_value: i64,
    /// `self_value` as a percentage (0–100) of the table total; 0 when the
    /// total is 0.
    pub self_percent: f64,
    /// `total_value` as a percentage (0–100) of the table total.
    pub total_percent: f64,
}

/// Self and total per distinct function name (functions with equal names
/// are merged), sorted by self value descending, then total value
/// descending, then name.
pub fn top_functions(table: &StackTable) -> Vec<TopRow> {
    let names = Names::new(&[table]);
    let stats = FunctionStats::compute(table, 0, &names);
    let total = table.total();
    let mut rows: Vec<TopRow> = stats
        .present()
        .map(|id| {
            let (self_value, total_value) = stats.get(id);
            TopRow {
                name: names.name(id).to_string(),
                self_value,
                total_value,
                self_percent: percent(self_value, total),
                total_percent: percent(total_value, total),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.self_value
            .cmp(&a.self_value)
            .then(b.total_value.cmp(&a.total_value))
            .then_with(|| a.name.cmp(&b.name))
    });
    rows
}

/// `part` as a percentage of `whole`, 0 when `whole` is 0.
pub(crate) fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Per name id: self and total value of one table, counted by the
/// model's [`FunctionTally`].
pub(crate) struct FunctionStats(FunctionTally);

impl FunctionStats {
    /// Stats of `table`, which is table number `slot` of `names`.
    pub fn compute(table: &StackTable, slot: usize, names: &Names<'_>) -> FunctionStats {
        let map = names.map(slot);
        let id = |f: &u32| map.get(*f as usize).copied().unwrap_or(names.unknown()) as usize;
        let mut tally = FunctionTally::with_ids(names.names.len());
        for (stack, value) in &table.stacks {
            tally.add(stack.iter().map(id), stack.last().map(id), *value);
        }
        FunctionStats(tally)
    }

    /// Name ids that occur in the table.
    pub fn present(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.present().map(|i| i as u32)
    }

    pub fn is_present(&self, id: u32) -> bool {
        self.0.is_present(id as usize)
    }

    /// (self, total) of name id `id`.
    pub fn get(&self, id: u32) -> (i64, i64) {
        self.0.get(id as usize)
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

    fn row<'a>(rows: &'a [TopRow], name: &str) -> &'a TopRow {
        match rows.iter().find(|r| r.name == name) {
            Some(r) => r,
            None => panic!("no row {name}"),
        }
    }

    #[test]
    fn self_and_total_with_recursion_counted_once() {
        // main → f → f → f (leaf), value 6; main → g, value 4.
        let t = table(&["main", "f", "g"], &[(&[0, 1, 1, 1], 6), (&[0, 2], 4)]);
        let rows = top_functions(&t);
        let f = row(&rows, "f");
        assert_eq!((f.self_value, f.total_value), (6, 6));
        assert!((f.total_percent - 60.0).abs() < 1e-9);
        let main = row(&rows, "main");
        assert_eq!((main.self_value, main.total_value), (0, 10));
        assert!((main.total_percent - 100.0).abs() < 1e-9);
        assert_eq!(row(&rows, "g").self_percent, 40.0);
    }

    #[test]
    fn sorted_by_self_then_total_then_name() {
        let t = table(
            &["root", "b", "a", "c"],
            &[(&[0, 1], 5), (&[0, 2], 5), (&[0, 3], 7), (&[0], 5)],
        );
        let names: Vec<String> = top_functions(&t).into_iter().map(|r| r.name).collect();
        // c self 7; root self 5 total 22 beats a and b (self 5, total 5);
        // a before b by name.
        assert_eq!(names, vec!["c", "root", "a", "b"]);
    }

    #[test]
    fn duplicate_names_merge() {
        let t = table(&["x", "x"], &[(&[0, 1], 3), (&[1], 2)]);
        let rows = top_functions(&t);
        assert_eq!(rows.len(), 1);
        // The first stack is x → x: once in total, self at the leaf.
        assert_eq!((rows[0].self_value, rows[0].total_value), (5, 5));
    }

    #[test]
    fn empty_table_has_no_rows_and_zero_total_gives_zero_percent() {
        assert!(top_functions(&StackTable::default()).is_empty());
        assert_eq!(percent(5, 0), 0.0);
    }
}
