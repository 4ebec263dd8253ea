//! speedscope's JSON file format
//! (<https://www.speedscope.app/file-format-schema.json>).
//!
//! Encoding writes one `"sampled"` profile per process: samples are grouped
//! by their `process_name` and `pid` labels and the profile is named
//! `NAME (pid PID)` (or `NAME`, or `(pid PID)` when one label is missing).
//! Samples without either label go to a profile named after the title when
//! they are the only ones, `other` otherwise. Frames are functions: name,
//! file and the function's start line. Weights are the profile's default
//! value ([`Profile::default_value_index`]); the unit is speedscope's name
//! for it when there is one (`nanoseconds`, `bytes`, ...), `none` otherwise.
//!
//! Decoding reads `"sampled"` and `"evented"` profiles into one model with a
//! single sample type: `("samples", "count")` for unit `none`,
//! `("time", "nanoseconds")` for the time units (converted, rounded to whole
//! nanoseconds) and `("space", "bytes")` for bytes; all profiles of a file
//! must agree. Other values are rounded to whole numbers. A missing
//! `weights` array counts each sample once. An evented profile becomes
//! weighted stacks: the time between two consecutive events goes to the
//! stack open during it. A frame's `line` becomes its function's start line
//! (so frames survive a round trip; py-spy's lines are the current line, so
//! one Python function can show up as several). Labels: a profile named
//! `NAME (pid PID)` gives its samples `process_name` and `pid`; otherwise,
//! when the file has several profiles, each profile's name becomes its
//! samples' `process_name` so they stay apart; a lone profile adds none.
//! Errors name the profile, sample or event and frame by 0-based index.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::profile::{Function, LabelSetId, LocationId};
use crate::{labels, ModelError, Profile, ValueType};

const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

#[derive(Serialize)]
struct OutFile<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    shared: OutShared<'a>,
    profiles: Vec<OutProfile>,
    name: &'a str,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    exporter: String,
}

#[derive(Serialize)]
struct OutShared<'a> {
    frames: Vec<OutFrame<'a>>,
}

#[derive(Serialize)]
struct OutFrame<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutProfile {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    start_value: i64,
    end_value: i64,
    samples: Vec<Vec<usize>>,
    weights: Vec<i64>,
}

/// A speedscope frame: function name, file and start line.
type FrameKey<'a> = (&'a str, &'a str, i64);

/// The samples of one process while encoding, stacks root first.
struct Group<'a> {
    process: Option<&'a str>,
    pid: Option<&'a str>,
    samples: Vec<Vec<FrameKey<'a>>>,
    weights: Vec<i64>,
    index: HashMap<Vec<FrameKey<'a>>, usize>,
}

/// speedscope's name for a model unit, `none` when it has none.
fn speedscope_unit(unit: &str) -> &'static str {
    match unit {
        "nanoseconds" => "nanoseconds",
        "microseconds" => "microseconds",
        "milliseconds" => "milliseconds",
        "seconds" => "seconds",
        "bytes" => "bytes",
        _ => "none",
    }
}

fn group_name(process: Option<&str>, pid: Option<&str>) -> Option<String> {
    match (process, pid) {
        (Some(name), Some(pid)) => Some(format!("{name} (pid {pid})")),
        (Some(name), None) => Some(name.to_string()),
        (None, Some(pid)) => Some(format!("(pid {pid})")),
        (None, None) => None,
    }
}

/// Encodes `p` as a speedscope file titled `title` (see the module docs).
pub fn encode(p: &Profile, title: &str) -> Result<Vec<u8>, ModelError> {
    let value_index = p.default_value_index();
    let value_type = p
        .sample_types
        .get(value_index)
        .ok_or(ModelError::NoSuchValue {
            index: value_index,
            count: p.sample_types.len(),
        })?;

    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut group_index: HashMap<(Option<&str>, Option<&str>), usize> = HashMap::new();
    for sample in p.samples() {
        let value = sample.values.get(value_index).copied().unwrap_or(0);
        if value == 0 {
            continue;
        }
        let stack: Vec<FrameKey<'_>> = p
            .frames(sample.stack)
            .iter()
            .rev()
            .map(|frame| {
                let function = frame.function.and_then(|f| p.functions().get(f as usize));
                (
                    frame.name,
                    function.map_or("", |f| f.file.as_str()),
                    function.map_or(0, |f| f.start_line),
                )
            })
            .collect();
        let key = (
            p.label(sample, labels::PROCESS_NAME),
            p.label(sample, labels::PID),
        );
        let g = *group_index.entry(key).or_insert_with(|| {
            groups.push(Group {
                process: key.0,
                pid: key.1,
                samples: Vec::new(),
                weights: Vec::new(),
                index: HashMap::new(),
            });
            groups.len() - 1
        });
        let group = &mut groups[g];
        match group.index.get(&stack) {
            Some(&j) => {
                let w = &mut group.weights[j];
                *w = w.checked_add(value).ok_or_else(|| ModelError::Overflow {
                    context: format!(
                        "a stack of {}",
                        group_name(key.0, key.1).unwrap_or_default()
                    ),
                })?;
            }
            None => {
                group.index.insert(stack.clone(), group.samples.len());
                group.samples.push(stack);
                group.weights.push(value);
            }
        }
    }
    // Numeric pids sort as numbers (3 before 20).
    groups.sort_by_cached_key(|g| {
        let pid = g.pid.map(|p| (p.parse::<u64>().ok(), p.to_string()));
        (g.process.map(str::to_string), pid)
    });

    // Frames are numbered in output order, so the file does not depend on
    // the order samples were added in.
    let mut frames: Vec<OutFrame<'_>> = Vec::new();
    let mut frame_index: HashMap<FrameKey<'_>, usize> = HashMap::new();
    let only_group = groups.len() == 1;
    let mut profiles = Vec::with_capacity(groups.len());
    for group in groups {
        let name = group_name(group.process, group.pid).unwrap_or_else(|| {
            if only_group {
                title.to_string()
            } else {
                "other".to_string()
            }
        });
        let mut samples = Vec::with_capacity(group.samples.len());
        let mut weights = Vec::with_capacity(group.samples.len());
        for (stack, weight) in group.samples.iter().zip(group.weights) {
            if weight == 0 {
                continue;
            }
            let indices = stack
                .iter()
                .map(|&key @ (name, file, line)| {
                    *frame_index.entry(key).or_insert_with(|| {
                        frames.push(OutFrame {
                            name,
                            file: (!file.is_empty()).then_some(file),
                            line: (line != 0).then_some(line),
                        });
                        frames.len() - 1
                    })
                })
                .collect();
            samples.push(indices);
            weights.push(weight);
        }
        let end_value = weights
            .iter()
            .try_fold(0i64, |acc, &w| acc.checked_add(w))
            .ok_or_else(|| ModelError::Overflow {
                context: format!("the total of {name}"),
            })?;
        profiles.push(OutProfile {
            kind: "sampled",
            name,
            unit: speedscope_unit(&value_type.unit),
            start_value: 0,
            end_value,
            samples,
            weights,
        });
    }

    let file = OutFile {
        schema: SCHEMA,
        shared: OutShared { frames },
        profiles,
        name: title,
        active_profile_index: 0,
        exporter: format!("perfpilot {}", env!("CARGO_PKG_VERSION")),
    };
    serde_json::to_vec(&file).map_err(|e| ModelError::Speedscope(e.to_string()))
}

#[derive(Deserialize)]
struct InFile {
    shared: InShared,
    profiles: Vec<InProfile>,
}

#[derive(Deserialize)]
struct InShared {
    frames: Vec<InFrame>,
}

#[derive(Deserialize)]
struct InFrame {
    name: String,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    line: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InProfile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    samples: Option<Vec<Vec<f64>>>,
    #[serde(default)]
    weights: Option<Vec<f64>>,
    #[serde(default)]
    events: Option<Vec<InEvent>>,
}

#[derive(Deserialize)]
struct InEvent {
    #[serde(rename = "type")]
    kind: String,
    frame: f64,
    at: f64,
}

fn invalid(message: String) -> ModelError {
    ModelError::Speedscope(message)
}

/// The model value type a speedscope unit becomes, and the factor that
/// converts a weight into it.
fn value_type_of(unit: &str) -> Option<(ValueType, f64)> {
    let time = |scale| Some((ValueType::new("time", "nanoseconds"), scale));
    match unit {
        "none" => Some((ValueType::new("samples", "count"), 1.0)),
        "nanoseconds" => time(1.0),
        "microseconds" => time(1e3),
        "milliseconds" => time(1e6),
        "seconds" => time(1e9),
        "bytes" => Some((ValueType::new("space", "bytes"), 1.0)),
        _ => None,
    }
}

/// `weight × scale` as a whole number, if it is finite and fits.
fn scaled(weight: f64, scale: f64) -> Option<i64> {
    let v = (weight * scale).round();
    // 2^63 is exact as an f64; anything at or above it does not fit.
    (v.is_finite() && v >= -(2f64.powi(63)) && v < 2f64.powi(63)).then_some(v as i64)
}

/// A JSON number used as a frame index, if it is one.
fn frame_at(value: f64, frame_count: usize) -> Option<usize> {
    (value >= 0.0 && value.fract() == 0.0 && value < frame_count as f64).then_some(value as usize)
}

/// Splits `NAME (pid PID)` or `(pid PID)`, what [`encode`] writes.
fn parse_process_name(name: &str) -> Option<(Option<&str>, &str)> {
    let inner = name.strip_suffix(')')?;
    let start = inner.rfind("(pid ")?;
    let pid = &inner[start + "(pid ".len()..];
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match &inner[..start] {
        "" => Some((None, pid)),
        prefix => Some((Some(prefix.strip_suffix(' ')?), pid)),
    }
}

/// Decodes a speedscope file (see the module docs).
pub fn decode(bytes: &[u8]) -> Result<Profile, ModelError> {
    let file: InFile =
        serde_json::from_slice(bytes).map_err(|e| ModelError::Speedscope(e.to_string()))?;

    let mut value_type: Option<(ValueType, f64, usize, String)> = None;
    for (i, prof) in file.profiles.iter().enumerate() {
        let unit = prof.unit.as_deref().unwrap_or("none");
        let (vt, scale) = value_type_of(unit).ok_or_else(|| {
            invalid(format!(
                "profile {i} has unit {unit:?}; expected none, nanoseconds, microseconds, \
                 milliseconds, seconds or bytes"
            ))
        })?;
        match &value_type {
            None => value_type = Some((vt, scale, i, unit.to_string())),
            Some((first, _, j, first_unit)) if *first != vt => {
                return Err(invalid(format!(
                    "profile {i} has unit {unit:?} but profile {j} has {first_unit:?}; \
                     all profiles of a file must measure the same thing"
                )))
            }
            Some(_) => {}
        }
    }
    let sample_type = value_type
        .as_ref()
        .map_or_else(|| ValueType::new("samples", "count"), |v| v.0.clone());
    let mut p = Profile::new(vec![sample_type]);

    let mut locations: Vec<LocationId> = Vec::with_capacity(file.shared.frames.len());
    for (i, frame) in file.shared.frames.iter().enumerate() {
        let start_line = match frame.line {
            None => 0,
            Some(line) => scaled(line, 1.0)
                .filter(|_| line.fract() == 0.0)
                .ok_or_else(|| invalid(format!("frame {i} has line {line}, not a whole number")))?,
        };
        let f = p.add_function(Function {
            name: frame.name.clone(),
            system_name: frame.name.clone(),
            file: frame.file.clone().unwrap_or_default(),
            start_line,
        });
        locations.push(p.add_function_location(f));
    }

    let several = file.profiles.len() > 1;
    for (i, prof) in file.profiles.iter().enumerate() {
        let scale = value_type_of(prof.unit.as_deref().unwrap_or("none")).map_or(1.0, |v| v.1);
        let name = prof.name.as_deref().unwrap_or("");
        let labels = match parse_process_name(name) {
            Some((process, pid)) => {
                let mut set = vec![(labels::PID, pid)];
                set.extend(process.map(|n| (labels::PROCESS_NAME, n)));
                p.add_label_set(set)
            }
            None if several && !name.is_empty() => p.add_label_set([(labels::PROCESS_NAME, name)]),
            None if several => p.add_label_set([(labels::PROCESS_NAME, format!("profile {i}"))]),
            None => p.add_label_set(Vec::<(String, String)>::new()),
        };
        let mut target = Target {
            p: &mut p,
            locations: &locations,
            labels,
            profile: i,
        };
        match prof.kind.as_str() {
            "sampled" => target.sampled(prof, scale)?,
            "evented" => target.evented(prof, scale)?,
            other => {
                return Err(invalid(format!(
                    "profile {i} has type {other:?}; expected \"sampled\" or \"evented\""
                )))
            }
        }
    }
    Ok(p)
}

/// Where one speedscope profile's samples go.
struct Target<'a> {
    p: &'a mut Profile,
    locations: &'a [LocationId],
    labels: LabelSetId,
    profile: usize,
}

impl Target<'_> {
    /// Adds a sample whose stack is `root_first` frame indices, already
    /// checked to be in range.
    fn add(&mut self, root_first: &[usize], value: i64, what: &str) -> Result<(), ModelError> {
        let stack: Vec<LocationId> = root_first
            .iter()
            .rev()
            .filter_map(|&f| self.locations.get(f).copied())
            .collect();
        let stack = self.p.add_stack(&stack);
        if self.p.try_add_sample(stack, self.labels, &[value]) {
            Ok(())
        } else {
            Err(ModelError::Overflow {
                context: format!("profile {} {what}", self.profile),
            })
        }
    }

    fn sampled(&mut self, prof: &InProfile, scale: f64) -> Result<(), ModelError> {
        let i = self.profile;
        let samples = prof
            .samples
            .as_ref()
            .ok_or_else(|| invalid(format!("profile {i} is \"sampled\" but has no \"samples\"")))?;
        if let Some(weights) = &prof.weights {
            if weights.len() != samples.len() {
                return Err(invalid(format!(
                    "profile {i} has {} samples but {} weights",
                    samples.len(),
                    weights.len()
                )));
            }
        }
        let mut stack = Vec::new();
        for (j, sample) in samples.iter().enumerate() {
            stack.clear();
            for (k, &f) in sample.iter().enumerate() {
                stack.push(frame_at(f, self.locations.len()).ok_or_else(|| {
                    invalid(format!(
                        "profile {i} sample {j} position {k}: frame index {f} is out of range \
                         (the file has {} frames)",
                        self.locations.len()
                    ))
                })?);
            }
            let weight = prof
                .weights
                .as_ref()
                .and_then(|w| w.get(j).copied())
                .unwrap_or(1.0);
            let value = scaled(weight, scale).filter(|&v| v >= 0).ok_or_else(|| {
                invalid(format!(
                    "profile {i} sample {j}: weight {weight} is not a non-negative number \
                     that fits in 64 bits"
                ))
            })?;
            self.add(&stack, value, &format!("sample {j}"))?;
        }
        Ok(())
    }

    fn evented(&mut self, prof: &InProfile, scale: f64) -> Result<(), ModelError> {
        let i = self.profile;
        let events = prof
            .events
            .as_ref()
            .ok_or_else(|| invalid(format!("profile {i} is \"evented\" but has no \"events\"")))?;
        let mut open: Vec<usize> = Vec::new();
        // Each event's time rounded once, so interval weights add up to
        // the rounded total instead of accumulating rounding errors.
        let mut previous: Option<(f64, i64)> = None;
        for (j, event) in events.iter().enumerate() {
            let frame = frame_at(event.frame, self.locations.len()).ok_or_else(|| {
                invalid(format!(
                    "profile {i} event {j}: frame index {} is out of range (the file has {} frames)",
                    event.frame,
                    self.locations.len()
                ))
            })?;
            let at = scaled(event.at, scale).ok_or_else(|| {
                invalid(format!(
                    "profile {i} event {j}: time {} does not fit in 64 bits",
                    event.at
                ))
            })?;
            if let Some((previous_at, previous_scaled)) = previous {
                if event.at < previous_at {
                    return Err(invalid(format!(
                        "profile {i} event {j}: time {} is before the previous event's {previous_at}",
                        event.at
                    )));
                }
                let weight = at.saturating_sub(previous_scaled);
                if !open.is_empty() && weight > 0 {
                    self.add(&open, weight, &format!("event {j}"))?;
                }
            }
            match event.kind.as_str() {
                "O" => open.push(frame),
                "C" => match open.last() {
                    Some(&top) if top == frame => {
                        open.pop();
                    }
                    Some(&top) => {
                        return Err(invalid(format!(
                            "profile {i} event {j} closes frame {frame}, but the innermost \
                             open frame is {top}"
                        )))
                    }
                    None => {
                        return Err(invalid(format!(
                            "profile {i} event {j} closes frame {frame}, but no frame is open"
                        )))
                    }
                },
                other => {
                    return Err(invalid(format!(
                        "profile {i} event {j} has type {other:?}; expected \"O\" or \"C\""
                    )))
                }
            }
            previous = Some((event.at, at));
        }
        if !open.is_empty() {
            return Err(invalid(format!(
                "profile {i}: {} frames are still open after the last event",
                open.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folded;
    use serde_json::{json, Value};

    /// Root-first frame names, labels, value.
    type TestStack<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i64);

    fn profile_of(unit: &str, stacks: &[TestStack<'_>]) -> Profile {
        let mut p = Profile::new(vec![ValueType::new("cpu", unit)]);
        for (names, labels, value) in stacks {
            let mut ids = Vec::new();
            for name in names.iter().rev() {
                let f = p.add_function(Function {
                    name: name.to_string(),
                    system_name: name.to_string(),
                    file: format!("{name}.py"),
                    start_line: 7,
                });
                ids.push(p.add_function_location(f));
            }
            let stack = p.add_stack(&ids);
            let labels = p.add_label_set(labels.iter().copied());
            p.add_sample(stack, labels, &[*value]);
        }
        p
    }

    fn two_processes() -> Profile {
        profile_of(
            "nanoseconds",
            &[
                (
                    &["main", "a"],
                    &[("process_name", "web"), ("pid", "20")],
                    30,
                ),
                (&["main", "b"], &[("process_name", "web"), ("pid", "3")], 10),
                (
                    &["main", "a"],
                    &[("process_name", "web"), ("pid", "20"), ("tid", "21")],
                    5,
                ),
                (&["main"], &[("process_name", "web"), ("pid", "3")], 2),
            ],
        )
    }

    #[test]
    fn one_sampled_profile_per_process_root_first() {
        let out: Value =
            serde_json::from_slice(&encode(&two_processes(), "title").unwrap()).unwrap();
        assert_eq!(
            out,
            json!({
                "$schema": SCHEMA,
                "shared": {"frames": [
                    {"name": "main", "file": "main.py", "line": 7},
                    {"name": "b", "file": "b.py", "line": 7},
                    {"name": "a", "file": "a.py", "line": 7},
                ]},
                "profiles": [
                    {"type": "sampled", "name": "web (pid 3)", "unit": "nanoseconds",
                     "startValue": 0, "endValue": 12, "samples": [[0, 1], [0]], "weights": [10, 2]},
                    {"type": "sampled", "name": "web (pid 20)", "unit": "nanoseconds",
                     "startValue": 0, "endValue": 35, "samples": [[0, 2]], "weights": [35]},
                ],
                "name": "title",
                "activeProfileIndex": 0,
                "exporter": format!("perfpilot {}", env!("CARGO_PKG_VERSION")),
            })
        );
    }

    #[test]
    fn unlabelled_samples_form_one_profile_named_after_the_title() {
        let p = profile_of("count", &[(&["main"], &[], 4)]);
        let out: Value = serde_json::from_slice(&encode(&p, "my run").unwrap()).unwrap();
        assert_eq!(out["profiles"][0]["name"], "my run");
        assert_eq!(out["profiles"][0]["unit"], "none");
        assert_eq!(out["profiles"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn round_trip_keeps_stacks_weights_and_process_labels() {
        let p = two_processes();
        let back = decode(&encode(&p, "t").unwrap()).unwrap();
        assert_eq!(
            back.sample_types,
            vec![ValueType::new("time", "nanoseconds")]
        );
        assert_eq!(
            folded::encode(&back, 0).unwrap(),
            folded::encode(&p, 0).unwrap()
        );
        assert_eq!(back.total(0), 47);
        let mut pids: Vec<_> = back
            .samples()
            .iter()
            .map(|s| (back.label(s, "process_name"), back.label(s, "pid")))
            .collect();
        pids.sort();
        pids.dedup();
        assert_eq!(
            pids,
            vec![(Some("web"), Some("20")), (Some("web"), Some("3"))]
        );
        // Frames keep file and line, so a second trip changes nothing.
        let again = String::from_utf8(encode(&back, "t").unwrap()).unwrap();
        assert_eq!(again, String::from_utf8(encode(&p, "t").unwrap()).unwrap());
    }

    #[test]
    fn process_names_are_parsed_only_in_the_encoder_form() {
        assert_eq!(parse_process_name("web (pid 3)"), Some((Some("web"), "3")));
        assert_eq!(parse_process_name("(pid 3)"), Some((None, "3")));
        assert_eq!(
            parse_process_name("a (b) (pid 12)"),
            Some((Some("a (b)"), "12"))
        );
        assert_eq!(parse_process_name("web(pid 3)"), None);
        assert_eq!(parse_process_name("web (pid x)"), None);
        assert_eq!(parse_process_name("Thread 5 \"main\""), None);
    }

    fn file_with(frames: usize, profiles: Value) -> Vec<u8> {
        let frames: Vec<Value> = (0..frames)
            .map(|i| json!({"name": format!("f{i}")}))
            .collect();
        serde_json::to_vec(&json!({"shared": {"frames": frames}, "profiles": profiles})).unwrap()
    }

    fn err(bytes: &[u8]) -> String {
        decode(bytes).unwrap_err().to_string()
    }

    #[test]
    fn evented_profiles_become_weighted_stacks() {
        let bytes = file_with(
            2,
            json!([{"type": "evented", "name": "x", "unit": "milliseconds",
                "startValue": 0, "endValue": 10, "events": [
                {"type": "O", "frame": 0, "at": 0},
                {"type": "O", "frame": 1, "at": 2},
                {"type": "C", "frame": 1, "at": 5.5},
                {"type": "C", "frame": 0, "at": 10},
                {"type": "O", "frame": 1, "at": 20},
                {"type": "C", "frame": 1, "at": 21},
            ]}]),
        );
        let p = decode(&bytes).unwrap();
        assert_eq!(
            folded::encode(&p, 0).unwrap(),
            "f0 6500000\nf0;f1 3500000\nf1 1000000\n"
        );
        assert!(p.label_set(p.samples()[0].labels).is_empty());
    }

    #[test]
    fn several_profiles_get_their_names_as_process_labels() {
        let bytes = file_with(
            1,
            json!([
                {"type": "sampled", "name": "Thread 1", "unit": "none", "samples": [[0]], "weights": [2]},
                {"type": "sampled", "unit": "none", "samples": [[0], []]},
            ]),
        );
        let p = decode(&bytes).unwrap();
        assert_eq!(
            folded::encode(&p, 0).unwrap(),
            "Thread 1;f0 2\nprofile 1 1\nprofile 1;f0 1\n"
        );
    }

    #[test]
    fn frame_index_out_of_range_names_profile_sample_and_position() {
        let bytes = file_with(
            2,
            json!([
                {"type": "sampled", "samples": [[0]], "weights": [1]},
                {"type": "sampled", "samples": [[0, 1], [1, 2]], "weights": [1, 1]},
            ]),
        );
        assert_eq!(
            err(&bytes),
            "speedscope JSON: profile 1 sample 1 position 1: frame index 2 is out of range \
             (the file has 2 frames)"
        );
        let bytes = file_with(2, json!([{"type": "sampled", "samples": [[0.5]]}]));
        assert_eq!(
            err(&bytes),
            "speedscope JSON: profile 0 sample 0 position 0: frame index 0.5 is out of range \
             (the file has 2 frames)"
        );
    }

    #[test]
    fn sample_and_weight_counts_must_match() {
        let bytes = file_with(
            1,
            json!([{"type": "sampled", "samples": [[0], [0]], "weights": [1]}]),
        );
        assert_eq!(
            err(&bytes),
            "speedscope JSON: profile 0 has 2 samples but 1 weights"
        );
    }

    #[test]
    fn unknown_types_units_and_bad_weights_are_named() {
        let bytes = file_with(
            1,
            json!([{"type": "sampled", "samples": []}, {"type": "stacked"}]),
        );
        assert_eq!(
            err(&bytes),
            "speedscope JSON: profile 1 has type \"stacked\"; expected \"sampled\" or \"evented\""
        );
        let bytes = file_with(
            1,
            json!([{"type": "sampled", "unit": "furlongs", "samples": []}]),
        );
        assert!(err(&bytes).starts_with("speedscope JSON: profile 0 has unit \"furlongs\""));
        let bytes = file_with(
            1,
            json!([{"type": "sampled", "unit": "seconds", "samples": []},
                   {"type": "sampled", "unit": "bytes", "samples": []}]),
        );
        assert_eq!(
            err(&bytes),
            "speedscope JSON: profile 1 has unit \"bytes\" but profile 0 has \"seconds\"; \
             all profiles of a file must measure the same thing"
        );
        let bytes = file_with(
            1,
            json!([{"type": "sampled", "samples": [[0], [0]], "weights": [1, -2]}]),
        );
        assert_eq!(
            err(&bytes),
            "speedscope JSON: profile 0 sample 1: weight -2 is not a non-negative number \
             that fits in 64 bits"
        );
    }

    #[test]
    fn badly_nested_or_unordered_events_are_named() {
        let ev = |events: Value| file_with(2, json!([{"type": "evented", "events": events}]));
        assert_eq!(
            err(&ev(
                json!([{"type": "O", "frame": 0, "at": 0}, {"type": "O", "frame": 1, "at": 1},
                          {"type": "C", "frame": 0, "at": 2}])
            )),
            "speedscope JSON: profile 0 event 2 closes frame 0, but the innermost open frame is 1"
        );
        assert_eq!(
            err(&ev(json!([{"type": "C", "frame": 0, "at": 0}]))),
            "speedscope JSON: profile 0 event 0 closes frame 0, but no frame is open"
        );
        assert_eq!(
            err(&ev(
                json!([{"type": "O", "frame": 0, "at": 5}, {"type": "C", "frame": 0, "at": 4}])
            )),
            "speedscope JSON: profile 0 event 1: time 4 is before the previous event's 5"
        );
        assert_eq!(
            err(&ev(json!([{"type": "O", "frame": 0, "at": 5}]))),
            "speedscope JSON: profile 0: 1 frames are still open after the last event"
        );
        assert_eq!(
            err(&ev(json!([{"type": "X", "frame": 0, "at": 5}]))),
            "speedscope JSON: profile 0 event 0 has type \"X\"; expected \"O\" or \"C\""
        );
    }

    #[test]
    fn no_prefix_of_a_file_makes_the_decoder_panic() {
        let bytes = encode(&two_processes(), "t").unwrap();
        for end in 0..bytes.len() {
            assert!(decode(&bytes[..end]).is_err());
        }
    }

    #[test]
    fn malformed_json_is_an_error_with_its_position() {
        let e = err(b"{\"shared\": {\"frames\": []}, \"profiles\": [");
        assert!(e.starts_with("speedscope JSON: EOF while parsing"), "{e}");
        assert!(e.contains("line 1 column"), "{e}");
        assert!(err(b"\xff\xfe").starts_with("speedscope JSON: "));
        let bytes = serde_json::to_vec(&json!({"shared": {"frames": []}, "profiles": [{"type": "sampled", "samples": [["a"]]}]})).unwrap();
        assert!(err(&bytes).contains("invalid type: string \"a\""));
    }
}
