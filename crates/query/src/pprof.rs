//! Stack tables as profiles, so any query can be exported as pprof with
//! [`perfpilot_model::pprof::encode`].

use perfpilot_model::series::StackTable;
use perfpilot_model::{LocationId, Profile, ValueType};

use crate::tree::UNKNOWN_NAME;

/// A one-value profile holding `table`'s stacks.
///
/// Each function becomes a function and a location with no address or
/// mapping (functions with equal names become one); stacks are stored leaf
/// first as the model requires. Samples carry no labels. `time_range_ms`
/// (start, end) in ms since the epoch sets the profile's time and duration;
/// `period` and `period_type` describe the sampling (e.g. `("cpu",
/// "nanoseconds")` and 10_000_000 at 100 Hz).
///
/// Function indices out of range for `table.functions` become
/// `"[unknown]"`. Stacks that end up equal (by name) are merged, their
/// values added with saturation.
pub fn to_profile(
    table: &StackTable,
    sample_type: (&str, &str),
    period_type: Option<(&str, &str)>,
    period: i64,
    time_range_ms: (i64, i64),
) -> Profile {
    let mut p = Profile::new(vec![ValueType::new(sample_type.0, sample_type.1)]);
    p.period_type = period_type.map(|(kind, unit)| ValueType::new(kind, unit));
    p.period = period;
    let (start, end) = time_range_ms;
    p.time_nanos = start.saturating_mul(1_000_000);
    p.duration_nanos = end.saturating_sub(start).max(0).saturating_mul(1_000_000);

    let locations: Vec<LocationId> = table
        .functions
        .iter()
        .map(|name| {
            let f = p.add_function_named(name);
            p.add_function_location(f)
        })
        .collect();
    let mut unknown: Option<LocationId> = None;
    let labels = p.add_label_set(Vec::<(String, String)>::new());

    // Values per profile stack id, summed here (with saturation) so that
    // the profile never has to add two values that overflow.
    let mut values: Vec<i64> = Vec::new();
    let mut leaf_first: Vec<LocationId> = Vec::new();
    for (stack, value) in &table.stacks {
        leaf_first.clear();
        for &f in stack.iter().rev() {
            let loc = match locations.get(f as usize) {
                Some(&loc) => loc,
                None => *unknown.get_or_insert_with(|| {
                    let f = p.add_function_named(UNKNOWN_NAME);
                    p.add_function_location(f)
                }),
            };
            leaf_first.push(loc);
        }
        let id = p.add_stack(&leaf_first) as usize;
        if values.len() <= id {
            values.resize(id + 1, 0);
        }
        values[id] = values[id].saturating_add(*value);
    }
    for (id, value) in values.iter().enumerate() {
        if *value != 0 {
            p.add_sample(id as u32, labels, &[*value]);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use perfpilot_model::pprof::{decode, encode};

    use super::*;

    fn names_by_stack(p: &Profile) -> HashMap<Vec<String>, i64> {
        p.samples()
            .iter()
            .map(|s| {
                let names = p
                    .root_first_names(s.stack)
                    .into_iter()
                    .map(String::from)
                    .collect();
                (names, s.values[0])
            })
            .collect()
    }

    #[test]
    fn pprof_round_trip_keeps_totals_and_stack_order() {
        let table = StackTable {
            functions: vec!["main".into(), "parse".into(), "read".into(), "alloc".into()],
            stacks: vec![
                (vec![0, 1, 2], 30),
                (vec![0, 1, 3], 12),
                (vec![0, 2], 5),
                (vec![0], 1),
            ],
        };
        let p = to_profile(
            &table,
            ("cpu", "nanoseconds"),
            Some(("cpu", "nanoseconds")),
            10_000_000,
            (1_700_000_000_000, 1_700_000_060_000),
        );
        let bytes = encode(&p).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.total(0), 48);
        assert_eq!(
            back.sample_types,
            vec![ValueType::new("cpu", "nanoseconds")]
        );
        assert_eq!(back.period, 10_000_000);
        assert_eq!(back.period_type, Some(ValueType::new("cpu", "nanoseconds")));
        assert_eq!(back.time_nanos, 1_700_000_000_000_000_000);
        assert_eq!(back.duration_nanos, 60_000_000_000);

        let got = names_by_stack(&back);
        let want: HashMap<Vec<String>, i64> = [
            (vec!["main", "parse", "read"], 30),
            (vec!["main", "parse", "alloc"], 12),
            (vec!["main", "read"], 5),
            (vec!["main"], 1),
        ]
        .into_iter()
        .map(|(s, v)| (s.into_iter().map(String::from).collect(), v))
        .collect();
        assert_eq!(got, want);
        // The model stores leaf first: the first location of the deepest
        // stack is "read", the last "main".
        let deepest = back
            .samples()
            .iter()
            .find(|s| s.values[0] == 30)
            .map(|s| back.stack(s.stack).to_vec())
            .unwrap_or_default();
        assert_eq!(back.location_name(deepest[0]), "read");
        assert_eq!(back.location_name(deepest[2]), "main");
    }

    #[test]
    fn duplicate_names_merge_and_bad_indices_become_unknown() {
        let table = StackTable {
            functions: vec!["a".into(), "a".into()],
            stacks: vec![(vec![0], 2), (vec![1], 3), (vec![0, 9], 4)],
        };
        let p = to_profile(&table, ("samples", "count"), None, 0, (0, 0));
        let got = names_by_stack(&decode(&encode(&p).unwrap()).unwrap());
        assert_eq!(got.len(), 2);
        assert_eq!(got[&vec!["a".to_string()]], 5);
        assert_eq!(got[&vec!["a".to_string(), "[unknown]".to_string()]], 4);
    }
}
