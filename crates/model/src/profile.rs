//! The in-memory profile: interned tables plus samples.

use std::collections::HashMap;

pub type MappingId = u32;
pub type FunctionId = u32;
pub type LocationId = u32;
pub type StackId = u32;
pub type LabelSetId = u32;

/// What a sample value measures, e.g. `("samples", "count")` or
/// `("cpu", "nanoseconds")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ValueType {
    pub kind: String,
    pub unit: String,
}

impl ValueType {
    pub fn new(kind: impl Into<String>, unit: impl Into<String>) -> Self {
        ValueType {
            kind: kind.into(),
            unit: unit.into(),
        }
    }
}

/// A mapped object file (executable, shared library, kernel, JIT region).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Mapping {
    pub start: u64,
    pub limit: u64,
    pub offset: u64,
    pub file: String,
    pub build_id: String,
}

/// A named function; `file` and `start_line` are empty/0 when unknown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Function {
    pub name: String,
    pub system_name: String,
    pub file: String,
    pub start_line: i64,
}

/// One source line of a location. A location has several when functions
/// were inlined into each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Line {
    pub function: FunctionId,
    pub line: i64,
}

/// A program counter, with the functions it belongs to. `lines` is ordered
/// innermost (the inlined callee) first, as in pprof; it is empty when the
/// address could not be named.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Location {
    pub mapping: Option<MappingId>,
    pub address: u64,
    pub lines: Vec<Line>,
}

/// A sample: a stack, a label set and one value per sample type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub stack: StackId,
    pub labels: LabelSetId,
    pub values: Vec<i64>,
}

/// One frame of an expanded stack, as a folded line or flame graph shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub location: LocationId,
    /// The function's name, or a `module+0xoffset` description when the
    /// location has no name.
    pub name: &'a str,
    pub function: Option<FunctionId>,
    pub line: i64,
}

/// A profile. All tables are interned: adding an equal function, location,
/// stack or label set twice returns the same id.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub sample_types: Vec<ValueType>,
    pub period_type: Option<ValueType>,
    pub period: i64,
    /// Start of the profile, nanoseconds since the Unix epoch.
    pub time_nanos: i64,
    pub duration_nanos: i64,
    pub comments: Vec<String>,
    mappings: Vec<Mapping>,
    functions: Vec<Function>,
    locations: Vec<Location>,
    /// Location ids, leaf first.
    stacks: Vec<Vec<LocationId>>,
    /// Sorted by key; keys are unique within a set.
    label_sets: Vec<Vec<(String, String)>>,
    samples: Vec<Sample>,
    /// Display names of unnamed locations, parallel to `locations`.
    unnamed: Vec<Option<String>>,
    index: Index,
}

#[derive(Debug, Clone, Default)]
struct Index {
    mappings: HashMap<Mapping, MappingId>,
    functions: HashMap<Function, FunctionId>,
    locations: HashMap<Location, LocationId>,
    stacks: HashMap<Vec<LocationId>, StackId>,
    label_sets: HashMap<Vec<(String, String)>, LabelSetId>,
    samples: HashMap<(StackId, LabelSetId), usize>,
}

fn id(len: usize) -> u32 {
    u32::try_from(len).expect("profile tables are limited to 2^32 entries")
}

impl Profile {
    /// An empty profile with the given sample types.
    pub fn new(sample_types: Vec<ValueType>) -> Self {
        Profile {
            sample_types,
            ..Default::default()
        }
    }

    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }
    pub fn functions(&self) -> &[Function] {
        &self.functions
    }
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
    pub fn stack(&self, id: StackId) -> &[LocationId] {
        &self.stacks[id as usize]
    }
    pub fn stacks(&self) -> &[Vec<LocationId>] {
        &self.stacks
    }
    pub fn label_set(&self, id: LabelSetId) -> &[(String, String)] {
        &self.label_sets[id as usize]
    }
    pub fn label_sets(&self) -> &[Vec<(String, String)>] {
        &self.label_sets
    }

    /// The value of label `key` on `sample`, if set.
    pub fn label<'a>(&'a self, sample: &Sample, key: &str) -> Option<&'a str> {
        let set = &self.label_sets[sample.labels as usize];
        set.binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| set[i].1.as_str())
    }

    pub fn add_mapping(&mut self, mapping: Mapping) -> MappingId {
        if let Some(&id) = self.index.mappings.get(&mapping) {
            return id;
        }
        let new = id(self.mappings.len());
        self.index.mappings.insert(mapping.clone(), new);
        self.mappings.push(mapping);
        new
    }

    pub fn add_function(&mut self, function: Function) -> FunctionId {
        if let Some(&id) = self.index.functions.get(&function) {
            return id;
        }
        let new = id(self.functions.len());
        self.index.functions.insert(function.clone(), new);
        self.functions.push(function);
        new
    }

    /// Shorthand for a function known only by name.
    pub fn add_function_named(&mut self, name: &str) -> FunctionId {
        self.add_function(Function {
            name: name.to_string(),
            system_name: name.to_string(),
            ..Default::default()
        })
    }

    pub fn add_location(&mut self, location: Location) -> LocationId {
        if let Some(&id) = self.index.locations.get(&location) {
            return id;
        }
        let new = id(self.locations.len());
        self.unnamed.push(if location.lines.is_empty() {
            Some(self.describe_unnamed(&location))
        } else {
            None
        });
        self.index.locations.insert(location.clone(), new);
        self.locations.push(location);
        new
    }

    /// A location whose only line is `function` (no address, no mapping);
    /// what folded and speedscope inputs produce.
    pub fn add_function_location(&mut self, function: FunctionId) -> LocationId {
        self.add_location(Location {
            mapping: None,
            address: 0,
            lines: vec![Line { function, line: 0 }],
        })
    }

    /// Interns a stack given leaf first.
    pub fn add_stack(&mut self, leaf_first: &[LocationId]) -> StackId {
        if let Some(&id) = self.index.stacks.get(leaf_first) {
            return id;
        }
        let new = id(self.stacks.len());
        self.index.stacks.insert(leaf_first.to_vec(), new);
        self.stacks.push(leaf_first.to_vec());
        new
    }

    /// Interns a label set. Later duplicates of a key win.
    pub fn add_label_set<K, V>(&mut self, labels: impl IntoIterator<Item = (K, V)>) -> LabelSetId
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut set: Vec<(String, String)> = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // The last value of a repeated key wins: reversed, then sorted
        // stably by key, the last comes first in its run, and dedup keeps
        // the first (in n log n; a search per label was quadratic).
        set.reverse();
        set.sort_by(|a, b| a.0.cmp(&b.0));
        set.dedup_by(|later, first| later.0 == first.0);
        if let Some(&id) = self.index.label_sets.get(&set) {
            return id;
        }
        let new = id(self.label_sets.len());
        self.index.label_sets.insert(set.clone(), new);
        self.label_sets.push(set);
        new
    }

    /// Adds `values` to the sample with this stack and label set, creating
    /// it if needed. `values` must have one entry per sample type.
    pub fn add_sample(&mut self, stack: StackId, labels: LabelSetId, values: &[i64]) {
        debug_assert_eq!(values.len(), self.sample_types.len());
        match self.index.samples.get(&(stack, labels)) {
            Some(&i) => {
                for (acc, v) in self.samples[i].values.iter_mut().zip(values) {
                    *acc += v;
                }
            }
            None => {
                self.index
                    .samples
                    .insert((stack, labels), self.samples.len());
                self.samples.push(Sample {
                    stack,
                    labels,
                    values: values.to_vec(),
                });
            }
        }
    }

    /// [`Profile::add_sample`] for values read from untrusted input: returns
    /// false, leaving the profile unchanged, when `values` does not have one
    /// entry per sample type or when adding it to an existing sample would
    /// overflow, where `add_sample` would panic or silently truncate.
    #[must_use = "false means the sample was not added"]
    pub fn try_add_sample(&mut self, stack: StackId, labels: LabelSetId, values: &[i64]) -> bool {
        if values.len() != self.sample_types.len() {
            return false;
        }
        if let Some(&i) = self.index.samples.get(&(stack, labels)) {
            let sums: Option<Vec<i64>> = self.samples[i]
                .values
                .iter()
                .zip(values)
                .map(|(acc, v)| acc.checked_add(*v))
                .collect();
            match sums {
                Some(sums) => self.samples[i].values = sums,
                None => return false,
            }
        } else {
            self.add_sample(stack, labels, values);
        }
        true
    }

    /// Sum of value `index` over all samples.
    pub fn total(&self, index: usize) -> i64 {
        self.samples.iter().map(|s| s.values[index]).sum()
    }

    /// The index of the sample type named `kind`, if any.
    pub fn value_index(&self, kind: &str) -> Option<usize> {
        self.sample_types.iter().position(|t| t.kind == kind)
    }

    /// The value a folded line, a flame graph or a top table should count:
    /// `samples` if present, else `delay` (a contention profile), else the first.
    pub fn default_value_index(&self) -> usize {
        self.value_index("samples")
            .or_else(|| self.value_index("delay"))
            .unwrap_or(0)
    }

    /// The display name of a location's innermost frame.
    pub fn location_name(&self, location: LocationId) -> &str {
        let loc = &self.locations[location as usize];
        match loc.lines.first() {
            Some(line) => &self.functions[line.function as usize].name,
            None => self.unnamed[location as usize]
                .as_deref()
                .unwrap_or("[unknown]"),
        }
    }

    /// Expands a stack into frames, leaf first, inlined functions included
    /// (innermost first within each location).
    pub fn frames(&self, stack: StackId) -> Vec<Frame<'_>> {
        let mut out = Vec::new();
        for &loc_id in &self.stacks[stack as usize] {
            let loc = &self.locations[loc_id as usize];
            if loc.lines.is_empty() {
                out.push(Frame {
                    location: loc_id,
                    name: self.location_name(loc_id),
                    function: None,
                    line: 0,
                });
            }
            for line in &loc.lines {
                out.push(Frame {
                    location: loc_id,
                    name: &self.functions[line.function as usize].name,
                    function: Some(line.function),
                    line: line.line,
                });
            }
        }
        out
    }

    /// Frame names of a stack, root first, as folded stacks and flame graphs
    /// order them.
    pub fn root_first_names(&self, stack: StackId) -> Vec<&str> {
        let mut names: Vec<&str> = self.frames(stack).into_iter().map(|f| f.name).collect();
        names.reverse();
        names
    }

    /// Share of value `index` carried by samples where at least one frame
    /// has a name, counting frames: (named frames, all frames) weighted by
    /// sample value.
    pub fn named_frame_share(&self, index: usize) -> (u64, u64) {
        let mut named = 0u64;
        let mut all = 0u64;
        for s in &self.samples {
            let w = s.values[index].max(0) as u64;
            for &loc in &self.stacks[s.stack as usize] {
                all += w;
                if !self.locations[loc as usize].lines.is_empty() {
                    named += w;
                }
            }
        }
        (named, all)
    }

    /// Names an unnamed location after its object, `[libfoo.so]`: what
    /// matters in a flame graph or a top table is which object the time
    /// went to, and one frame per raw address would scatter it. The
    /// address itself stays in the location (and in pprof output).
    fn describe_unnamed(&self, location: &Location) -> String {
        match location.mapping.and_then(|m| self.mappings.get(m as usize)) {
            Some(m) if !m.file.is_empty() => {
                let base = m.file.rsplit('/').next().unwrap_or(&m.file);
                if base.starts_with('[') {
                    base.to_string()
                } else {
                    format!("[{base}]")
                }
            }
            _ => "[unknown]".to_string(),
        }
    }

    /// Keeps only samples for which `keep` returns true; tables are left as
    /// they are (unused entries are harmless to every codec).
    pub fn retain_samples(&mut self, mut keep: impl FnMut(&Profile, &Sample) -> bool) {
        let samples = std::mem::take(&mut self.samples);
        let kept: Vec<Sample> = samples.into_iter().filter(|s| keep(self, s)).collect();
        self.index.samples = kept
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.stack, s.labels), i))
            .collect();
        self.samples = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_frame_profile() -> (Profile, StackId) {
        let mut p = Profile::new(vec![ValueType::new("samples", "count")]);
        let main = p.add_function_named("main");
        let leaf = p.add_function_named("leaf");
        let l_main = p.add_function_location(main);
        let l_leaf = p.add_function_location(leaf);
        let stack = p.add_stack(&[l_leaf, l_main]);
        (p, stack)
    }

    #[test]
    fn interning_merges_equal_entries() {
        let (mut p, stack) = two_frame_profile();
        assert_eq!(p.add_function_named("main"), 0);
        let a = p.add_label_set([("pid", "1"), ("comm", "x")]);
        let b = p.add_label_set([("comm", "x"), ("pid", "1")]);
        assert_eq!(a, b);
        p.add_sample(stack, a, &[3]);
        p.add_sample(stack, b, &[4]);
        assert_eq!(p.samples().len(), 1);
        assert_eq!(p.total(0), 7);
        assert_eq!(p.label(&p.samples()[0], "pid"), Some("1"));
        assert_eq!(p.label(&p.samples()[0], "nope"), None);
    }

    #[test]
    fn frames_expand_inlined_lines_leaf_first() {
        let mut p = Profile::new(vec![ValueType::new("samples", "count")]);
        let outer = p.add_function_named("outer");
        let inner = p.add_function_named("inner");
        let m = p.add_mapping(Mapping {
            start: 0x1000,
            limit: 0x2000,
            offset: 0,
            file: "/usr/bin/app".into(),
            build_id: String::new(),
        });
        let loc = p.add_location(Location {
            mapping: Some(m),
            address: 0x1010,
            lines: vec![
                Line {
                    function: inner,
                    line: 7,
                },
                Line {
                    function: outer,
                    line: 3,
                },
            ],
        });
        let unnamed = p.add_location(Location {
            mapping: Some(m),
            address: 0x1abc,
            lines: vec![],
        });
        let stack = p.add_stack(&[unnamed, loc]);
        assert_eq!(p.root_first_names(stack), vec!["outer", "inner", "[app]"]);
    }

    #[test]
    fn named_frame_share_is_weighted_by_value() {
        let (mut p, _) = two_frame_profile();
        let unnamed = p.add_location(Location {
            address: 0x42,
            ..Default::default()
        });
        let main = p.add_function_named("main");
        let l_main = p.add_function_location(main);
        let stack = p.add_stack(&[unnamed, l_main]);
        let ls = p.add_label_set(Vec::<(String, String)>::new());
        p.add_sample(stack, ls, &[10]);
        assert_eq!(p.named_frame_share(0), (10, 20));
    }
}
