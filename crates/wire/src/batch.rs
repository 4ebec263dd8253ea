//! Building a [`Batch`] from decoded profiles: strings and stacks interned
//! once per request, one [`BatchProfile`] per (labels, time), samples with
//! the same stack summed, zero sums dropped, limits checked as data arrives.

use rustc_hash::FxHashMap as HashMap;

use perfpilot_store::{Batch, BatchProfile, Labels, PROFILE_TYPE_LABEL, SERVICE_NAME_LABEL};

use crate::error::WireError;
use crate::limits::{check_series_labels, check_time, Limits};

pub(crate) struct BatchBuilder<'l> {
    limits: &'l Limits,
    now_ms: i64,
    /// Names and stacks are kept once, as the keys of their indexes, and
    /// laid out by id in [`finish`](Self::finish).
    string_index: HashMap<String, u32>,
    stack_index: HashMap<Vec<u32>, u32>,
    profiles: Vec<Profile>,
    profile_index: HashMap<(Labels, i64), usize>,
    samples: usize,
    scratch: Vec<u32>,
}

struct Profile {
    labels: Labels,
    time_ms: i64,
    samples: Vec<(u32, i64)>,
    by_stack: HashMap<u32, usize>,
}

fn id(len: usize, what: &str) -> Result<u32, WireError> {
    u32::try_from(len).map_err(|_| WireError::Invalid(format!("too many {what} in one request")))
}

impl<'l> BatchBuilder<'l> {
    pub(crate) fn new(limits: &'l Limits, now_ms: i64) -> Self {
        BatchBuilder {
            limits,
            now_ms,
            string_index: HashMap::default(),
            stack_index: HashMap::default(),
            profiles: Vec::new(),
            profile_index: HashMap::default(),
            samples: 0,
            scratch: Vec::new(),
        }
    }

    /// Interns a stack given root first. Empty names are skipped: they carry
    /// nothing a flame graph could show (Pyroscope skips them too).
    pub(crate) fn stack<'a>(
        &mut self,
        root_first: impl IntoIterator<Item = &'a str>,
    ) -> Result<u32, WireError> {
        let mut frames = std::mem::take(&mut self.scratch);
        frames.clear();
        for name in root_first {
            if name.is_empty() {
                continue;
            }
            frames.push(self.name(name)?);
        }
        let result = self.stack_of_names(&frames);
        self.scratch = frames;
        result
    }

    /// Interns a function name (callers skip empty ones).
    pub(crate) fn name(&mut self, name: &str) -> Result<u32, WireError> {
        if let Some(&s) = self.string_index.get(name) {
            return Ok(s);
        }
        let s = id(self.string_index.len(), "function names")?;
        self.string_index.insert(name.to_string(), s);
        Ok(s)
    }

    /// Interns a stack of names already interned with [`name`](Self::name),
    /// root first.
    pub(crate) fn stack_of_names(&mut self, frames: &[u32]) -> Result<u32, WireError> {
        if let Some(&s) = self.stack_index.get(frames) {
            return Ok(s);
        }
        let s = id(self.stack_index.len(), "stacks")?;
        self.stack_index.insert(frames.to_vec(), s);
        Ok(s)
    }

    /// The profile for this label set and time, created (and its labels and
    /// time validated) on first use. `labels` must be sorted and unique.
    pub(crate) fn profile(
        &mut self,
        what: &str,
        labels: Labels,
        time_ms: i64,
    ) -> Result<usize, WireError> {
        let key = (labels, time_ms);
        if let Some(&i) = self.profile_index.get(&key) {
            return Ok(i);
        }
        let (labels, time_ms) = key;
        check_required(what, &labels)?;
        check_series_labels(what, &labels, self.limits)?;
        check_time(what, time_ms, self.now_ms, self.limits)?;
        let i = self.profiles.len();
        self.profile_index.insert((labels.clone(), time_ms), i);
        self.profiles.push(Profile {
            labels,
            time_ms,
            samples: Vec::new(),
            by_stack: HashMap::default(),
        });
        Ok(i)
    }

    pub(crate) fn add(&mut self, profile: usize, stack: u32, value: i64) -> Result<(), WireError> {
        if value == 0 {
            return Ok(());
        }
        let Some(p) = self.profiles.get_mut(profile) else {
            return Err(WireError::Invalid(format!(
                "internal: no profile {profile}"
            )));
        };
        match p.by_stack.get(&stack) {
            Some(&i) => {
                if let Some(slot) = p.samples.get_mut(i) {
                    slot.1 = slot.1.checked_add(value).ok_or_else(|| {
                        WireError::Invalid(format!(
                            "sample values of one stack in series {:?} overflow a 64-bit integer",
                            p.labels
                        ))
                    })?;
                }
            }
            None => {
                if self.samples >= self.limits.max_samples_per_request {
                    return Err(WireError::TooManySamples {
                        limit: self.limits.max_samples_per_request,
                    });
                }
                self.samples += 1;
                p.by_stack.insert(stack, p.samples.len());
                p.samples.push((stack, value));
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Batch {
        let profiles = self
            .profiles
            .into_iter()
            .filter_map(|p| {
                let samples: Vec<(u32, i64)> =
                    p.samples.into_iter().filter(|&(_, v)| v != 0).collect();
                (!samples.is_empty()).then_some(BatchProfile {
                    labels: p.labels,
                    time_ms: p.time_ms,
                    samples,
                })
            })
            .collect();
        let mut strings = vec![String::new(); self.string_index.len()];
        for (name, i) in self.string_index {
            strings[i as usize] = name;
        }
        let mut stacks = vec![Vec::new(); self.stack_index.len()];
        for (frames, i) in self.stack_index {
            stacks[i as usize] = frames;
        }
        Batch {
            id: None,
            strings,
            stacks,
            profiles,
        }
    }
}

fn check_required(what: &str, labels: &Labels) -> Result<(), WireError> {
    let get = |name: &str| {
        labels
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .and_then(|i| labels.get(i))
            .map(|(_, v)| v.as_str())
    };
    if get(SERVICE_NAME_LABEL).is_none_or(str::is_empty) {
        return Err(WireError::Invalid(format!(
            "{what}: label {SERVICE_NAME_LABEL} is required"
        )));
    }
    if get(PROFILE_TYPE_LABEL).is_none_or(str::is_empty) {
        return Err(WireError::Invalid(format!(
            "{what}: label {PROFILE_TYPE_LABEL} is required"
        )));
    }
    Ok(())
}

/// Merges label lists into a sorted, unique set; earlier lists win on
/// conflicts, and empty values are dropped (an empty label is no label).
pub(crate) fn merge_labels<'a>(
    sources: impl IntoIterator<Item = &'a [(String, String)]>,
) -> Labels {
    let mut out: Labels = Vec::new();
    for source in sources {
        for (k, v) in source {
            if v.is_empty() || out.iter().any(|(name, _)| name == k) {
                continue;
            }
            out.push((k.clone(), v.clone()));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let mut v: Labels = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn interns_and_sums() {
        let limits = Limits::default();
        let mut b = BatchBuilder::new(&limits, 0);
        let s1 = b.stack(["main", "work"]).unwrap();
        let s2 = b.stack(["main", "", "work"]).unwrap();
        assert_eq!(s1, s2);
        let l = labels(&[("service_name", "a"), ("__profile_type__", "x:a:b:c:d")]);
        let p = b.profile("series 0", l.clone(), 5).unwrap();
        assert_eq!(b.profile("series 0", l, 5).unwrap(), p);
        b.add(p, s1, 3).unwrap();
        b.add(p, s1, 4).unwrap();
        b.add(p, s1, 0).unwrap();
        let s3 = b.stack(["main"]).unwrap();
        b.add(p, s3, 2).unwrap();
        b.add(p, s3, -2).unwrap();
        let batch = b.finish();
        assert_eq!(batch.strings, vec!["main", "work"]);
        assert_eq!(batch.stacks, vec![vec![0, 1], vec![0]]);
        assert_eq!(batch.profiles.len(), 1);
        assert_eq!(batch.profiles[0].samples, vec![(0, 7)]);
    }

    #[test]
    fn required_labels_and_sample_limit() {
        let limits = Limits {
            max_samples_per_request: 1,
            ..Limits::default()
        };
        let mut b = BatchBuilder::new(&limits, 0);
        let err = b
            .profile("series 2", labels(&[("__profile_type__", "x:a:b:c:d")]), 0)
            .unwrap_err();
        assert_eq!(err.to_string(), "series 2: label service_name is required");
        let l = labels(&[("service_name", "a"), ("__profile_type__", "x:a:b:c:d")]);
        let p = b.profile("s", l, 0).unwrap();
        let s1 = b.stack(["a"]).unwrap();
        let s2 = b.stack(["b"]).unwrap();
        b.add(p, s1, 1).unwrap();
        let err = b.add(p, s2, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the request has more than 1 samples (max_samples_per_request)"
        );
    }

    #[test]
    fn merge_prefers_earlier_sources_and_drops_empty_values() {
        let a = labels(&[("service_name", "svc"), ("env", "")]);
        let b = labels(&[("service_name", "other"), ("env", "prod"), ("pid", "1")]);
        assert_eq!(
            merge_labels([a.as_slice(), b.as_slice()]),
            labels(&[("env", "prod"), ("pid", "1"), ("service_name", "svc")])
        );
    }
}
