//! The behaviour every [`Store`] engine must have, as one suite: the
//! embedded engine runs it in its tests, and so will any other backend.
//!
//! Each check uses its own service name, so the suite runs against one
//! store (empty or not) in any order. Checks panic with a message saying
//! what differed.

use crate::types::{
    Batch, BatchProfile, SeriesLimit, SeriesLimits, StackTable, TimeRange, PROFILE_TYPE_LABEL,
    SERVICE_NAME_LABEL,
};
use crate::{IngestOutcome, Selector, Store, StoreError};

pub const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
pub const ALLOC: &str = "memory:alloc_space:bytes:space:bytes";

/// A batch of one profile: `stacks` are `;`-separated frames, root first.
pub fn batch(
    service: &str,
    extra: &[(&str, &str)],
    profile_type: &str,
    time_ms: i64,
    stacks: &[(&str, i64)],
) -> Batch {
    let mut strings: Vec<String> = Vec::new();
    let mut idx = |s: &str| -> u32 {
        match strings.iter().position(|x| x == s) {
            Some(i) => i as u32,
            None => {
                strings.push(s.to_string());
                (strings.len() - 1) as u32
            }
        }
    };
    let mut stack_list = Vec::new();
    let mut samples = Vec::new();
    for (i, (stack, v)) in stacks.iter().enumerate() {
        stack_list.push(stack.split(';').map(&mut idx).collect::<Vec<u32>>());
        samples.push((i as u32, *v));
    }
    let mut labels: Vec<(String, String)> = vec![
        (SERVICE_NAME_LABEL.into(), service.into()),
        (PROFILE_TYPE_LABEL.into(), profile_type.into()),
    ];
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    labels.sort();
    Batch {
        id: None,
        strings,
        stacks: stack_list,
        profiles: vec![BatchProfile {
            labels,
            time_ms,
            samples,
        }],
    }
}

/// A merged table as sorted (`a;b;c`, value) pairs, for comparisons.
pub fn folded(t: &StackTable) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = t
        .stacks
        .iter()
        .map(|(s, v)| {
            (
                s.iter()
                    .map(|&f| t.functions[f as usize].as_str())
                    .collect::<Vec<_>>()
                    .join(";"),
                *v,
            )
        })
        .collect();
    v.sort();
    v
}

/// Times are whole minutes, so engines that keep data at up to one-minute
/// resolution pass.
fn aligned(now: i64) -> i64 {
    now / 60_000 * 60_000
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("selector {s}: {e}"))
}

/// Runs every check. `now_ms` is the current time (data is written in the
/// hour before it, inside any sane retention).
pub fn run_all(store: &dyn Store, now_ms: i64) {
    merge_sums_matching_series(store, now_ms);
    ranges_and_selectors_filter(store, now_ms);
    labels_and_types(store, now_ms);
    time_series_steps_groups_and_functions(store, now_ms);
    time_series_limits(store, now_ms);
    duplicate_batch_ids_apply_once(store, now_ms);
    invalid_batches_write_nothing(store, now_ms);
}

pub fn merge_sums_matching_series(store: &dyn Store, now: i64) {
    let now = aligned(now);
    let t = now - 600_000;
    let svc = "conf-merge";
    store
        .ingest(&batch(
            svc,
            &[("pod", "a")],
            CPU,
            t,
            &[("main;work", 10), ("main;idle", 5)],
        ))
        .unwrap();
    store
        .ingest(&batch(
            svc,
            &[("pod", "b")],
            CPU,
            t + 10_000,
            &[("main;work", 7)],
        ))
        .unwrap();
    let got = store
        .merge(
            &sel(&format!("{{service_name=\"{svc}\"}}")),
            TimeRange {
                start_ms: t,
                end_ms: now,
            },
        )
        .unwrap();
    assert_eq!(
        folded(&got),
        vec![("main;idle".to_string(), 5), ("main;work".to_string(), 17)],
        "merge of two series"
    );
    assert_eq!(got.total(), 22);
}

pub fn ranges_and_selectors_filter(store: &dyn Store, now: i64) {
    let now = aligned(now);
    let t = now - 1_200_000;
    let svc = "conf-filter";
    store
        .ingest(&batch(svc, &[("pod", "web-1")], CPU, t, &[("a", 1)]))
        .unwrap();
    store
        .ingest(&batch(
            svc,
            &[("pod", "web-2")],
            CPU,
            t + 60_000,
            &[("b", 2)],
        ))
        .unwrap();
    store
        .ingest(&batch(
            svc,
            &[("pod", "api-1")],
            CPU,
            t + 120_000,
            &[("c", 4)],
        ))
        .unwrap();
    store
        .ingest(&batch(
            svc,
            &[("pod", "web-1")],
            ALLOC,
            t,
            &[("alloc", 100)],
        ))
        .unwrap();
    let all = TimeRange {
        start_ms: t,
        end_ms: now,
    };
    let m = |s: &str, r: TimeRange| folded(&store.merge(&sel(s), r).unwrap());
    let base = format!("{{service_name=\"{svc}\", __profile_type__=\"{CPU}\"");
    assert_eq!(
        m(&format!("{base}, pod=~\"web-.*\"}}"), all),
        vec![("a".into(), 1), ("b".into(), 2)],
        "regex"
    );
    assert_eq!(
        m(&format!("{base}, pod!~\"web-.*\"}}"), all),
        vec![("c".into(), 4)],
        "negative regex"
    );
    assert_eq!(
        m(&format!("{base}, pod!=\"web-1\"}}"), all),
        vec![("b".into(), 2), ("c".into(), 4)],
        "not equal"
    );
    // Ranges are half-open: [start, end).
    let r = TimeRange {
        start_ms: t + 60_000,
        end_ms: t + 120_000,
    };
    assert_eq!(
        m(&format!("{base}}}"), r),
        vec![("b".into(), 2)],
        "time range"
    );
    // The profile type separates series.
    assert_eq!(
        m(&format!("{ALLOC}{{service_name=\"{svc}\"}}"), all),
        vec![("alloc".into(), 100)],
        "profile type prefix"
    );
    assert!(store
        .merge(&sel("{service_name=\"conf-nothing\"}"), all)
        .unwrap()
        .stacks
        .is_empty());
}

pub fn labels_and_types(store: &dyn Store, now: i64) {
    let now = aligned(now);
    let t = now - 1_800_000;
    let svc = "conf-labels";
    store
        .ingest(&batch(
            svc,
            &[("env", "prod"), ("pod", "p1")],
            CPU,
            t,
            &[("x", 1)],
        ))
        .unwrap();
    store
        .ingest(&batch(svc, &[("env", "dev")], ALLOC, t, &[("y", 1)]))
        .unwrap();
    let r = TimeRange {
        start_ms: t,
        end_ms: now,
    };
    let s = sel(&format!("{{service_name=\"{svc}\"}}"));
    let names = store.label_names(&s, r).unwrap();
    for n in ["env", "pod", SERVICE_NAME_LABEL, PROFILE_TYPE_LABEL] {
        assert!(
            names.contains(&n.to_string()),
            "label name {n} in {names:?}"
        );
    }
    assert_eq!(
        store.label_values("env", &s, r).unwrap(),
        vec!["dev", "prod"]
    );
    let types = store.profile_types(r).unwrap();
    assert!(
        types.contains(&CPU.to_string()) && types.contains(&ALLOC.to_string()),
        "{types:?}"
    );
    let series = store.series(&s, r).unwrap();
    assert_eq!(series.len(), 2, "{series:?}");
    assert!(
        series.iter().all(|l| l.windows(2).all(|w| w[0].0 < w[1].0)),
        "sorted labels"
    );
    // Out of range: nothing.
    let before = TimeRange {
        start_ms: t - 10_000,
        end_ms: t,
    };
    assert!(
        store.label_values("env", &s, before).unwrap().is_empty(),
        "range filters labels"
    );
}

pub fn time_series_steps_groups_and_functions(store: &dyn Store, now: i64) {
    let now = aligned(now);
    let t0 = (now - 3_000_000) / 60_000 * 60_000;
    let svc = "conf-series";
    for (i, pod) in ["a", "b"].iter().enumerate() {
        for k in 0..3 {
            let v = (i as i64 + 1) * 10 + k;
            store
                .ingest(&batch(
                    svc,
                    &[("pod", pod)],
                    CPU,
                    t0 + k * 60_000,
                    &[("main;hot", v), ("main;cold", 1)],
                ))
                .unwrap();
        }
    }
    let r = TimeRange {
        start_ms: t0,
        end_ms: t0 + 180_000,
    };
    let s = sel(&format!("{{service_name=\"{svc}\"}}"));
    let total = store
        .time_series(&s, r, 60_000, &[], None, &Default::default())
        .unwrap();
    assert_eq!(total.len(), 1);
    // Per minute: (10+k) + (20+k) + 2.
    assert_eq!(
        total[0].points,
        vec![(t0, 32), (t0 + 60_000, 34), (t0 + 120_000, 36)],
        "totals per step"
    );
    let grouped = store
        .time_series(&s, r, 180_000, &["pod".into()], None, &Default::default())
        .unwrap();
    let mut by_pod: Vec<(String, i64)> = grouped
        .iter()
        .map(|p| (p.labels[0].1.clone(), p.points.iter().map(|x| x.1).sum()))
        .collect();
    by_pod.sort();
    assert_eq!(
        by_pod,
        vec![("a".into(), 36), ("b".into(), 66)],
        "grouped by pod"
    );
    let hot = store
        .time_series(&s, r, 60_000, &[], Some("hot"), &Default::default())
        .unwrap();
    assert_eq!(
        hot[0].points,
        vec![(t0, 30), (t0 + 60_000, 32), (t0 + 120_000, 34)],
        "only stacks containing the function"
    );
}

/// Groups and groups × steps past the query's limits are refused with
/// `OverLimit`, saying which limit; at the limits the answer is complete.
pub fn time_series_limits(store: &dyn Store, now: i64) {
    let now = aligned(now);
    let t = now - 1_200_000;
    let svc = "conf-series-limits";
    for pod in ["a", "b", "c"] {
        store
            .ingest(&batch(svc, &[("pod", pod)], CPU, t, &[("main;x", 1)]))
            .unwrap();
    }
    let s = sel(&format!("{{service_name=\"{svc}\"}}"));
    let r = TimeRange {
        start_ms: t,
        end_ms: t + 600_000,
    };
    let pod = ["pod".to_string()];
    let limit = |max_groups, max_points| SeriesLimits {
        max_groups,
        max_points,
    };
    let which = |res: Result<_, StoreError>| match res {
        Err(StoreError::OverLimit { limit, .. }) => Some(limit),
        Err(e) => panic!("expected an OverLimit error, got {e}"),
        Ok(_) => None,
    };
    // 3 groups × 10 steps of a minute.
    let ok = store
        .time_series(&s, r, 60_000, &pod, None, &limit(3, 30))
        .unwrap();
    assert_eq!(ok.len(), 3, "three groups at a limit of three");
    assert_eq!(
        which(store.time_series(&s, r, 60_000, &pod, None, &limit(2, 1000))),
        Some(SeriesLimit::Groups),
        "three groups past a limit of two"
    );
    assert_eq!(
        which(store.time_series(&s, r, 60_000, &pod, None, &limit(10, 29))),
        Some(SeriesLimit::Points),
        "30 points past a limit of 29"
    );
    assert_eq!(
        which(store.time_series(&s, r, 1, &[], None, &limit(10, 1000))),
        Some(SeriesLimit::Points),
        "600,000 steps of 1 ms"
    );
}

pub fn duplicate_batch_ids_apply_once(store: &dyn Store, now: i64) {
    let now = aligned(now);
    let t = now - 900_000;
    let svc = "conf-dedup";
    let mut b = batch(svc, &[], CPU, t, &[("once", 3)]);
    b.id = Some(format!("conf-dedup-{now}"));
    assert_eq!(store.ingest(&b).unwrap(), IngestOutcome::Applied);
    assert_eq!(store.ingest(&b).unwrap(), IngestOutcome::Duplicate);
    let got = store
        .merge(
            &sel(&format!("{{service_name=\"{svc}\"}}")),
            TimeRange {
                start_ms: t,
                end_ms: now,
            },
        )
        .unwrap();
    assert_eq!(
        folded(&got),
        vec![("once".into(), 3)],
        "a retried batch counts once"
    );
}

pub fn invalid_batches_write_nothing(store: &dyn Store, now: i64) {
    let now = aligned(now);
    let t = now - 300_000;
    let svc = "conf-invalid";
    let mut b = batch(svc, &[], CPU, t, &[("x", 1)]);
    b.profiles[0]
        .labels
        .retain(|(k, _)| k != SERVICE_NAME_LABEL);
    let err = store.ingest(&b).unwrap_err().to_string();
    assert!(err.contains("service_name"), "{err}");
    let mut b = batch(svc, &[], CPU, t, &[("x", 1)]);
    b.profiles[0].samples.push((99, 1));
    assert!(store
        .ingest(&b)
        .unwrap_err()
        .to_string()
        .contains("out of range"));
    // A batch with one good and one bad profile is rejected whole.
    let mut b = batch(svc, &[], CPU, t, &[("good", 1)]);
    let mut bad = b.profiles[0].clone();
    bad.samples = vec![(7, 1)];
    b.profiles.push(bad);
    assert!(store.ingest(&b).is_err());
    let got = store
        .merge(
            &sel(&format!("{{service_name=\"{svc}\"}}")),
            TimeRange {
                start_ms: t,
                end_ms: now,
            },
        )
        .unwrap();
    assert!(
        got.stacks.is_empty(),
        "rejected batches left data: {:?}",
        folded(&got)
    );
}
