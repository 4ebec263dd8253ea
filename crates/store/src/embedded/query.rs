//! Queries over the head, heads being flushed, and blocks.
//!
//! A query takes a consistent snapshot (head rows scanned, the block list
//! copied) under a short read lock, scans blocks without it, and resolves
//! stack ids to names under the lock again: ids only ever grow, so every
//! id seen is still valid.

use std::collections::{BTreeSet, HashMap};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::block::{Block, Row};
use super::{lock_err, State};
use crate::types::{Labels, Points, SeriesLimit, SeriesLimits, StackTable, TimeRange};
use crate::{Selector, StoreError};

fn live_series<'a>(
    st: &'a State,
    selector: &'a Selector,
    range: TimeRange,
) -> impl Iterator<Item = (u32, &'a super::symbols::SeriesInfo)> + 'a {
    st.symbols
        .all_series()
        .filter(move |(_, s)| {
            s.min_t <= s.max_t && range.overlaps(s.min_t, s.max_t.saturating_add(1))
        })
        .filter(move |(_, s)| selector.matches(&s.labels))
}

/// Whether a profile type is a gauge: each profile a snapshot of what is
/// held (in-use memory), not what happened in its interval. Over a range
/// its series are averaged per snapshot, not added up.
pub fn is_gauge(profile_type: &str) -> bool {
    profile_type
        .split(':')
        .nth(1)
        .is_some_and(|sample| sample.starts_with("inuse_"))
}

/// The selected series that are gauges, by id.
fn gauge_series(
    lock: &RwLock<State>,
    selector: &Selector,
    range: TimeRange,
) -> Result<std::collections::HashSet<u32>, StoreError> {
    let st = lock.read().map_err(lock_err)?;
    Ok(live_series(&st, selector, range)
        .filter(|(_, s)| is_gauge(&s.profile_type))
        .map(|(id, _)| id)
        .collect())
}

/// Sums of gauge rows per key, and the snapshots (distinct times) of
/// each key's series in which they fell.
#[derive(Default)]
struct Gauges<K: std::hash::Hash + Eq> {
    sums: HashMap<K, i64>,
    snapshots: HashMap<(u32, i64), BTreeSet<i64>>,
}

impl<K: std::hash::Hash + Eq + Copy> Gauges<K> {
    /// A row of `series` at `t`, in bucket `bucket` of the answer.
    fn add(&mut self, key: K, series: u32, bucket: i64, t: i64, v: i64) {
        *self.sums.entry(key).or_default() += v;
        self.snapshots
            .entry((series, bucket))
            .or_default()
            .insert(t);
    }

    /// Each sum over its series' snapshots in its bucket.
    fn averages(self, series_of: impl Fn(&K) -> (u32, i64)) -> impl Iterator<Item = (K, i64)> {
        let snapshots = self.snapshots;
        self.sums.into_iter().map(move |(k, sum)| {
            let n = snapshots.get(&series_of(&k)).map_or(1, |t| t.len().max(1)) as i64;
            (k, (sum + n / 2).div_euclid(n))
        })
    }
}

pub fn profile_types(st: &State, range: TimeRange) -> Vec<String> {
    let all = Selector::all();
    live_series(st, &all, range)
        .map(|(_, s)| s.profile_type.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

pub fn label_names(st: &State, selector: &Selector, range: TimeRange) -> Vec<String> {
    live_series(st, selector, range)
        .flat_map(|(_, s)| s.labels.iter().map(|(k, _)| k.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

pub fn label_values(st: &State, name: &str, selector: &Selector, range: TimeRange) -> Vec<String> {
    live_series(st, selector, range)
        .filter_map(|(_, s)| s.label(name).map(str::to_string))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

pub fn series(st: &State, selector: &Selector, range: TimeRange) -> Vec<Labels> {
    live_series(st, selector, range)
        .map(|(_, s)| s.labels.clone())
        .collect()
}

/// A value per series id: a table when ids are dense, else a map (ids
/// of pruned series are never reused, so they can be far apart).
enum IdMap<T> {
    Dense(Vec<T>),
    Sparse(rustc_hash::FxHashMap<u32, T>),
}

impl<T: Copy> IdMap<T> {
    /// For ids below `end` of which about `count` are set.
    fn new(end: usize, count: usize, none: T) -> IdMap<T> {
        if end <= count.saturating_mul(16).saturating_add(4096) {
            IdMap::Dense(vec![none; end])
        } else {
            IdMap::Sparse(Default::default())
        }
    }

    fn set(&mut self, id: u32, v: T) {
        match self {
            IdMap::Dense(t) => {
                if let Some(slot) = t.get_mut(id as usize) {
                    *slot = v;
                }
            }
            IdMap::Sparse(m) => {
                m.insert(id, v);
            }
        }
    }

    #[inline]
    fn get(&self, id: u32) -> Option<T> {
        match self {
            IdMap::Dense(t) => t.get(id as usize).copied(),
            IdMap::Sparse(m) => m.get(&id).copied(),
        }
    }
}

/// What a scan needs, taken under the read lock.
struct Snapshot {
    /// Selected series, as a membership table by series id.
    selected: IdMap<bool>,
    selected_ids: Vec<u32>,
    blocks: Vec<Arc<Block>>,
    nstacks: usize,
}

fn snapshot(
    lock: &RwLock<State>,
    selector: &Selector,
    range: TimeRange,
    mut head_row: impl FnMut(u32, &Row),
) -> Result<Snapshot, StoreError> {
    let st = lock.read().map_err(lock_err)?;
    let selected_ids: Vec<u32> = live_series(&st, selector, range)
        .map(|(id, _)| id)
        .collect();
    let mut selected = IdMap::new(st.symbols.series_ids_end(), selected_ids.len(), false);
    for &id in &selected_ids {
        selected.set(id, true);
    }
    for rows in std::iter::once(&st.head).chain(st.flushing.iter().map(|f| f.as_ref())) {
        for (s, r) in rows {
            if selected.get(*s).unwrap_or(false) && range.contains(r.t) {
                head_row(*s, r);
            }
        }
    }
    let blocks = st
        .blocks
        .iter()
        .filter(|b| range.overlaps(b.min_t, b.max_t.saturating_add(1)))
        .cloned()
        .collect();
    Ok(Snapshot {
        selected,
        selected_ids,
        blocks,
        nstacks: st.symbols.stacks.len(),
    })
}

/// Calls `each(series, stack, t, value)` for every block row of the
/// snapshot's series in the range.
fn scan_blocks(
    snap: &Snapshot,
    range: TimeRange,
    mut each: impl FnMut(u32, u32, i64, i64),
) -> Result<(), StoreError> {
    for b in &snap.blocks {
        for &series in &snap.selected_ids {
            let Some(e) = b.entry(series) else {
                continue;
            };
            if !range.overlaps(e.min_t, e.max_t.saturating_add(1)) {
                continue;
            }
            let whole = range.start_ms <= e.min_t && e.max_t < range.end_ms;
            b.scan_lossy(e, |stack, t, value| {
                if whole || range.contains(t) {
                    each(series, stack, t, value);
                }
            });
        }
    }
    let _ = &snap.selected;
    Ok(())
}

pub fn merge(
    lock: &RwLock<State>,
    selector: &Selector,
    range: TimeRange,
) -> Result<StackTable, StoreError> {
    let mut values: Vec<i64> = Vec::new();
    let gauges = gauge_series(lock, selector, range)?;
    let mut averaged: Gauges<(u32, u32)> = Gauges::default();
    let mut head: Vec<(u32, u32, i64, i64)> = Vec::new();
    let snap = snapshot(lock, selector, range, |s, r| {
        head.push((s, r.stack, r.t, r.value))
    })?;
    values.resize(snap.nstacks, 0);
    for (series, stack, t, v) in head {
        if gauges.contains(&series) {
            averaged.add((series, stack), series, 0, t, v);
        } else if let Some(slot) = values.get_mut(stack as usize) {
            *slot += v;
        }
    }
    // A block row naming a stack symbols.log no longer holds (its end
    // was lost) is lost with it: left out, said once per process, rather
    // than failing every merge over that block.
    let mut lost_rows = 0u64;
    scan_blocks(&snap, range, |series, stack, t, v| {
        if gauges.contains(&series) {
            averaged.add((series, stack), series, 0, t, v);
            return;
        }
        match values.get_mut(stack as usize) {
            Some(slot) => *slot += v,
            None => lost_rows += 1,
        }
    })?;
    // In use: each series' mean over its snapshots in the range.
    for ((series, stack), v) in averaged.averages(|&(series, _)| (series, 0)) {
        let _ = series;
        match values.get_mut(stack as usize) {
            Some(slot) => *slot += v,
            None => lost_rows += 1,
        }
    }
    static LOST_REPORTED: AtomicBool = AtomicBool::new(false);
    if lost_rows > 0 && !LOST_REPORTED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            lost_rows,
            "{lost_rows} block row(s) name stacks symbols.log no longer holds \
             (it was damaged); they are left out of queries"
        );
    }
    // Resolve ids to names, renumbering functions densely (a table indexed
    // by function id: hashing here was a tenth of a merge).
    let st = lock.read().map_err(lock_err)?;
    let mut table = StackTable::default();
    let mut fn_index: Vec<u32> = vec![u32::MAX; st.symbols.strings.len()];
    for (stack, &v) in values.iter().enumerate() {
        if v == 0 {
            continue;
        }
        let Some(frames) = st.symbols.stacks.get(stack) else {
            continue;
        };
        let mut mapped = Vec::with_capacity(frames.len());
        for &f in frames.iter() {
            let Some(slot) = fn_index.get_mut(f as usize) else {
                return Err(StoreError::Corrupt(format!(
                    "stack {stack} names unknown function {f}"
                )));
            };
            if *slot == u32::MAX {
                *slot = table.functions.len() as u32;
                table.functions.push(st.symbols.strings[f as usize].clone());
            }
            mapped.push(*slot);
        }
        table.stacks.push((mapped, v));
    }
    Ok(table)
}

pub fn time_series(
    lock: &RwLock<State>,
    selector: &Selector,
    range: TimeRange,
    step_ms: i64,
    group_by: &[String],
    function: Option<&str>,
    limits: &SeriesLimits,
) -> Result<Vec<Points>, StoreError> {
    // Checked before anything is scanned or allocated.
    let steps = (range.end_ms.saturating_sub(range.start_ms) as i128 + step_ms as i128 - 1)
        .div_euclid(step_ms as i128)
        .max(0);
    if steps > limits.max_points as i128 {
        return Err(StoreError::OverLimit {
            message: format!(
                "the range holds {steps} steps of {step_ms} ms, more than the {} points a \
                 time series may have: use a larger step or a shorter range",
                limits.max_points
            ),
            limit: SeriesLimit::Points,
        });
    }
    let steps = steps as usize;
    // Stacks containing the function, when filtering by one.
    let wanted: Option<Vec<bool>> = match function {
        None => None,
        Some(name) => {
            let st = lock.read().map_err(lock_err)?;
            let ids: Vec<u32> = st
                .symbols
                .strings
                .iter()
                .enumerate()
                .filter(|(_, s)| s.as_str() == name)
                .map(|(i, _)| i as u32)
                .collect();
            Some(
                st.symbols
                    .stacks
                    .iter()
                    .map(|frames| frames.iter().any(|f| ids.contains(f)))
                    .collect(),
            )
        }
    };
    // Group of each selected series.
    let (groups, group_labels) = {
        let st = lock.read().map_err(lock_err)?;
        let mut keys: HashMap<Vec<String>, usize> = HashMap::new();
        let mut labels: Vec<Labels> = Vec::new();
        let mut of_series = IdMap::new(
            st.symbols.series_ids_end(),
            st.symbols.live_series(),
            usize::MAX,
        );
        for (id, s) in live_series(&st, selector, range) {
            let key: Vec<String> = group_by
                .iter()
                .map(|g| s.label(g).unwrap_or("").to_string())
                .collect();
            let next = keys.len();
            if next >= limits.max_groups && !keys.contains_key(&key) {
                // Stops at the first group past the limit: the groups'
                // points are never allocated.
                return Err(StoreError::OverLimit {
                    message: format!(
                        "grouping by {} gives more than {} groups: group by fewer labels \
                         or select fewer series",
                        if group_by.is_empty() {
                            "nothing".to_string()
                        } else {
                            group_by.join(", ")
                        },
                        limits.max_groups
                    ),
                    limit: SeriesLimit::Groups,
                });
            }
            let g = *keys.entry(key.clone()).or_insert_with(|| {
                labels.push(group_by.iter().cloned().zip(key).collect());
                next
            });
            of_series.set(id, g);
        }
        (of_series, labels)
    };
    let cells = group_labels.len().saturating_mul(steps);
    if cells > limits.max_points {
        return Err(StoreError::OverLimit {
            message: format!(
                "{} groups × {steps} steps is {cells} points, more than the {} a time-series \
                 answer may have: use a larger step, a shorter range or fewer groups",
                group_labels.len(),
                limits.max_points
            ),
            limit: SeriesLimit::Points,
        });
    }
    let gauges = gauge_series(lock, selector, range)?;
    let mut averaged: Gauges<(u32, usize)> = Gauges::default();
    let mut sums: Vec<Vec<i64>> = vec![vec![0; steps]; group_labels.len()];
    let mut seen: Vec<Vec<bool>> = vec![vec![false; steps]; group_labels.len()];
    let mut add = |series: u32, stack: u32, t: i64, v: i64| {
        if let Some(w) = &wanted {
            if !w.get(stack as usize).copied().unwrap_or(false) {
                return;
            }
        }
        let Some(g) = groups.get(series) else {
            return;
        };
        if g == usize::MAX {
            return;
        }
        let step = ((t - range.start_ms) / step_ms) as usize;
        if step < steps {
            if gauges.contains(&series) {
                // Averaged per snapshot within the step, below.
                averaged.add((series, step), series, step as i64, t, v);
            } else {
                sums[g][step] += v;
            }
            seen[g][step] = true;
        }
    };
    let mut head = Vec::new();
    let snap = snapshot(lock, selector, range, |s, r| head.push((s, *r)))?;
    for (s, r) in head {
        add(s, r.stack, r.t, r.value);
    }
    scan_blocks(&snap, range, &mut add)?;
    for ((series, step), v) in averaged.averages(|&(series, step)| (series, step as i64)) {
        if let Some(g) = groups.get(series).filter(|&g| g != usize::MAX) {
            sums[g][step] += v;
        }
    }
    Ok(group_labels
        .into_iter()
        .zip(sums.into_iter().zip(seen))
        .map(|(labels, (sums, seen))| Points {
            labels,
            points: sums
                .into_iter()
                .zip(seen)
                .enumerate()
                .filter(|(_, (_, s))| *s)
                .map(|(i, (v, _))| (range.start_ms + i as i64 * step_ms, v))
                .collect(),
        })
        .collect())
}
