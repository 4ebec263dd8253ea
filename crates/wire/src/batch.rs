//! Building a [`Batch`] from decoded profiles: strings and stacks interned
//! once per request, one [`BatchProfile`] per (labels, time), samples with
//! the same stack summed, zero sums dropped, limits checked as data arrives.
//!
//! The builder also keeps the request's accounts: frames read (every
//! sample's stack, after inline expansion; callers charge them with
//! [`BatchBuilder::charge_frames`] before expanding) and the bytes the
//! batch takes, charged to the server-wide pool as it grows.

use rustc_hash::FxHashMap as HashMap;

use perfpilot_model::series::{
    Batch, BatchProfile, Labels, PROFILE_TYPE_LABEL, SERVICE_NAME_LABEL,
};

use crate::error::WireError;
use crate::limits::{check_function_name, check_series_labels, check_time, Limits};

/// Bookkeeping counted for each interned stack, name, label and sample
/// beyond their own bytes (hash table slots, vector headers).
const STACK_OVERHEAD: usize = 48;
const NAME_OVERHEAD: usize = 48;
const LABEL_OVERHEAD: usize = 48;
const PROFILE_OVERHEAD: usize = 96;
const SAMPLE_OVERHEAD: usize = 32;
/// The server-wide pool is charged in steps of this much, so that a
/// request does not touch the shared counter for every stack.
const POOL_STEP: usize = 1 << 20;

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
    /// Frames read so far (every sample's stack, expanded).
    frames: usize,
    /// Bytes the batch takes so far, and how much of that is charged to
    /// the server-wide pool already.
    decoded: usize,
    charged: usize,
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
            frames: 0,
            decoded: 0,
            charged: 0,
        }
    }

    pub(crate) fn limits(&self) -> &'l Limits {
        self.limits
    }

    /// Counts `n` frames read towards the request's limit. Callers charge
    /// a stack's frames before expanding it, or as they expand it.
    pub(crate) fn charge_frames(&mut self, n: usize) -> Result<(), WireError> {
        self.frames = self.frames.saturating_add(n);
        if self.frames > self.limits.max_frames_per_request {
            return Err(WireError::TooManyFramesInRequest {
                limit: self.limits.max_frames_per_request,
            });
        }
        Ok(())
    }

    /// The per-stack limit: `what` names the sample in the message.
    pub(crate) fn check_stack_len(
        &self,
        frames: usize,
        what: impl FnOnce() -> String,
    ) -> Result<(), WireError> {
        check_stack_len(self.limits, frames, what)
    }

    /// Counts `bytes` more of the batch, against the request's limit and
    /// the server-wide pool.
    fn grow(&mut self, bytes: usize) -> Result<(), WireError> {
        self.decoded = self.decoded.saturating_add(bytes);
        if self.decoded > self.limits.max_decoded_bytes {
            return Err(WireError::TooMuchDecoded {
                limit: self.limits.max_decoded_bytes,
            });
        }
        if self.decoded > self.charged {
            if let Some(memory) = &self.limits.memory {
                let step = (self.decoded - self.charged).max(POOL_STEP);
                memory.charge(step)?;
                self.charged += step;
            }
        }
        Ok(())
    }

    /// Interns a stack given root first, charging its frames to the
    /// request. Empty names are skipped: they carry nothing a flame graph
    /// could show (Pyroscope skips them too). `what` names the stack's
    /// sample or line in messages.
    pub(crate) fn stack<'a>(
        &mut self,
        root_first: impl IntoIterator<Item = &'a str>,
        what: &dyn Fn() -> String,
    ) -> Result<u32, WireError> {
        self.intern_stack(root_first, what, true)
    }

    /// [`stack`](Self::stack) for a caller that charged its frames
    /// already.
    pub(crate) fn stack_uncharged<'a>(
        &mut self,
        root_first: impl IntoIterator<Item = &'a str>,
        what: &dyn Fn() -> String,
    ) -> Result<u32, WireError> {
        self.intern_stack(root_first, what, false)
    }

    fn intern_stack<'a>(
        &mut self,
        root_first: impl IntoIterator<Item = &'a str>,
        what: &dyn Fn() -> String,
        charge: bool,
    ) -> Result<u32, WireError> {
        let mut frames = std::mem::take(&mut self.scratch);
        frames.clear();
        let mut result = Ok(());
        for name in root_first {
            if name.is_empty() {
                continue;
            }
            result = self
                .check_stack_len(frames.len() + 1, what)
                .and_then(|()| self.name(name, what))
                .map(|id| frames.push(id));
            if result.is_err() {
                break;
            }
        }
        if charge && result.is_ok() {
            result = self.charge_frames(frames.len());
        }
        let result = result.and_then(|()| self.stack_of_names(&frames, what));
        self.scratch = frames;
        result
    }

    /// Interns a function name (callers skip empty ones); `what` names
    /// where it is used in messages.
    pub(crate) fn name(&mut self, name: &str, what: &dyn Fn() -> String) -> Result<u32, WireError> {
        if let Some(&s) = self.string_index.get(name) {
            return Ok(s);
        }
        check_function_name(&what(), name, self.limits)?;
        self.grow(name.len() + NAME_OVERHEAD)?;
        let s = id(self.string_index.len(), "function names")?;
        self.string_index.insert(name.to_string(), s);
        Ok(s)
    }

    /// Interns a stack of names already interned with [`name`](Self::name),
    /// root first. Its frames must be charged already.
    pub(crate) fn stack_of_names(
        &mut self,
        frames: &[u32],
        what: &dyn Fn() -> String,
    ) -> Result<u32, WireError> {
        if let Some(&s) = self.stack_index.get(frames) {
            return Ok(s);
        }
        self.check_stack_len(frames.len(), what)?;
        self.grow(frames.len() * 4 + STACK_OVERHEAD)?;
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
        let label_bytes: usize = labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + LABEL_OVERHEAD)
            .sum();
        // Twice: the batch's profile and the index's key.
        self.grow(2 * label_bytes + PROFILE_OVERHEAD)?;
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
        let Some(existing) = self
            .profiles
            .get(profile)
            .map(|p| p.by_stack.get(&stack).copied())
        else {
            return Err(WireError::Invalid(format!(
                "internal: no profile {profile}"
            )));
        };
        if existing.is_none() {
            if self.samples >= self.limits.max_samples_per_request {
                return Err(WireError::TooManySamples {
                    limit: self.limits.max_samples_per_request,
                });
            }
            self.grow(SAMPLE_OVERHEAD)?;
            self.samples += 1;
        }
        let Some(p) = self.profiles.get_mut(profile) else {
            return Err(WireError::Invalid(format!(
                "internal: no profile {profile}"
            )));
        };
        match existing {
            Some(i) => {
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

/// The per-stack limit on frames after inline expansion.
fn check_stack_len(
    limits: &Limits,
    frames: usize,
    what: impl FnOnce() -> String,
) -> Result<(), WireError> {
    if frames > limits.max_frames_per_stack {
        return Err(WireError::TooManyFrames {
            what: what(),
            limit: limits.max_frames_per_stack,
        });
    }
    Ok(())
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
/// Callers bound the lists' lengths first.
pub(crate) fn merge_labels<'a>(
    sources: impl IntoIterator<Item = &'a [(String, String)]>,
) -> Labels {
    let mut out: Labels = sources
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    // Stable: among equal names the earliest source's comes first, and
    // dedup keeps the first of a run.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|later, earlier| later.0 == earlier.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn what() -> String {
        "line 1".to_string()
    }

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
        let s1 = b.stack(["main", "work"], &what).unwrap();
        let s2 = b.stack(["main", "", "work"], &what).unwrap();
        assert_eq!(s1, s2);
        let l = labels(&[("service_name", "a"), ("__profile_type__", "x:a:b:c:d")]);
        let p = b.profile("series 0", l.clone(), 5).unwrap();
        assert_eq!(b.profile("series 0", l, 5).unwrap(), p);
        b.add(p, s1, 3).unwrap();
        b.add(p, s1, 4).unwrap();
        b.add(p, s1, 0).unwrap();
        let s3 = b.stack(["main"], &what).unwrap();
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
        let s1 = b.stack(["a"], &what).unwrap();
        let s2 = b.stack(["b"], &what).unwrap();
        b.add(p, s1, 1).unwrap();
        let err = b.add(p, s2, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the request has more than 1 samples (--max-samples-per-request)"
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
