//! pprof: gzipped protobuf in the `profile.proto` schema of google/pprof,
//! what `go tool pprof` and most profilers read.
//!
//! Model ids are 0-based table positions; pprof ids are 1-based, so encoding
//! writes `id = model id + 1`. Decoding accepts any non-zero ids (they need
//! not be dense or ordered) and checks every reference. Error messages name
//! entries by their 0-based position in the message's repeated field
//! ("sample 12", "location 3 (id 4)") and references by pprof id.
//!
//! Not kept by the model, so dropped on decode: `drop_frames`, `keep_frames`,
//! `default_sample_type` (the model's [`Profile::default_value_index`] rule
//! decides instead, and encoding writes that type as the default),
//! `Location.is_folded`, `Line.column` and the mapping `has_*` flags (encoding
//! recomputes them). A sample with several labels of the same key keeps the
//! last. Numeric labels become string labels: `"4096 bytes"` when they have a
//! unit, `"4096"` otherwise. A label whose string and number are both unset
//! decodes as the empty string, which is how an empty string label is written.

use std::collections::HashMap;
use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use crate::profile::{Function, Line, Location, LocationId, Mapping, MappingId, ValueType};
use crate::{FunctionId, ModelError, Profile};

/// Hand-written prost messages for `profile.proto`; the tags are the wire
/// format, so they must match google/pprof's schema exactly. Public for
/// readers that need the raw messages (a server's ingest fast path); they
/// carry no validation.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        /// Declared `string` in the schema; read as bytes because pprof
        /// writers do not all guarantee UTF-8 (symbol names are bytes).
        #[prost(bytes = "vec", repeated, tag = "6")]
        pub string_table: Vec<Vec<u8>>,
        #[prost(int64, tag = "7")]
        pub drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
        #[prost(int64, tag = "3")]
        pub column: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

/// Decompressed input larger than this is refused rather than read into
/// memory: a few kilobytes of gzip can otherwise expand to gigabytes.
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Encodes `p` as gzipped pprof protobuf.
pub fn encode(p: &Profile) -> Result<Vec<u8>, ModelError> {
    let raw = encode_uncompressed(p)?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&raw)
        .and_then(|()| gz.finish())
        .map_err(|e| ModelError::Pprof(format!("compressing the profile failed: {e}")))
}

/// The profile as pprof protobuf without gzip, for senders that compress
/// it some other way.
pub fn encode_uncompressed(p: &Profile) -> Result<Vec<u8>, ModelError> {
    Ok(to_proto(p)?.encode_to_vec())
}

/// Decodes pprof protobuf, gzipped or not.
pub fn decode(bytes: &[u8]) -> Result<Profile, ModelError> {
    let unzipped;
    let raw: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        unzipped = gunzip(bytes)?;
        &unzipped
    } else {
        bytes
    };
    let msg = proto::Profile::decode(raw).map_err(|e| ModelError::Protobuf(e.to_string()))?;
    from_proto(&msg)
}

/// Builds the model from a pprof message already decoded, for callers that
/// check the message first (the server's ingest counts sample labels on
/// it before the model builds them).
pub fn decode_message(msg: &proto::Profile) -> Result<Profile, ModelError> {
    from_proto(msg)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| ModelError::Gzip(e.to_string()))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(ModelError::Gzip(format!(
            "it decompresses to more than {MAX_DECOMPRESSED} bytes"
        )));
    }
    Ok(out)
}

/// The string table being built by the encoder; index 0 is "" as pprof
/// requires.
struct StringTable<'a> {
    strings: Vec<&'a str>,
    index: HashMap<&'a str, i64>,
}

impl<'a> StringTable<'a> {
    fn new() -> Self {
        StringTable {
            strings: vec![""],
            index: HashMap::from([("", 0)]),
        }
    }

    fn intern(&mut self, s: &'a str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s);
        self.index.insert(s, i);
        i
    }
}

#[derive(Clone, Copy, Default)]
struct MappingFlags {
    functions: bool,
    filenames: bool,
    line_numbers: bool,
    inline_frames: bool,
}

fn pprof_id(model_id: u32) -> u64 {
    u64::from(model_id) + 1
}

fn to_proto(p: &Profile) -> Result<proto::Profile, ModelError> {
    let mut st = StringTable::new();
    let sample_type: Vec<proto::ValueType> = p
        .sample_types
        .iter()
        .map(|t| proto::ValueType {
            r#type: st.intern(&t.kind),
            unit: st.intern(&t.unit),
        })
        .collect();

    let function: Vec<proto::Function> = p
        .functions()
        .iter()
        .zip(0u32..)
        .map(|(f, id)| proto::Function {
            id: pprof_id(id),
            name: st.intern(&f.name),
            system_name: st.intern(&f.system_name),
            filename: st.intern(&f.file),
            start_line: f.start_line,
        })
        .collect();

    let mut flags = vec![MappingFlags::default(); p.mappings().len()];
    let mut location = Vec::with_capacity(p.locations().len());
    for (loc, id) in p.locations().iter().zip(0u32..) {
        if let Some(m) = loc.mapping {
            let f = flags.get_mut(m as usize).ok_or_else(|| {
                ModelError::Pprof(format!(
                    "location {id} refers to mapping {m}, which does not exist"
                ))
            })?;
            f.functions |= !loc.lines.is_empty();
            f.inline_frames |= loc.lines.len() > 1;
            for line in &loc.lines {
                f.line_numbers |= line.line != 0;
                f.filenames |= p
                    .functions()
                    .get(line.function as usize)
                    .is_some_and(|func| !func.file.is_empty());
            }
        }
        let mut lines = Vec::with_capacity(loc.lines.len());
        for line in &loc.lines {
            if line.function as usize >= p.functions().len() {
                return Err(ModelError::Pprof(format!(
                    "location {id} refers to function {}, which does not exist",
                    line.function
                )));
            }
            lines.push(proto::Line {
                function_id: pprof_id(line.function),
                line: line.line,
                column: 0,
            });
        }
        location.push(proto::Location {
            id: pprof_id(id),
            mapping_id: loc.mapping.map_or(0, pprof_id),
            address: loc.address,
            line: lines,
            is_folded: false,
        });
    }

    let mapping: Vec<proto::Mapping> = p
        .mappings()
        .iter()
        .zip(flags)
        .zip(0u32..)
        .map(|((m, f), id)| proto::Mapping {
            id: pprof_id(id),
            memory_start: m.start,
            memory_limit: m.limit,
            file_offset: m.offset,
            filename: st.intern(&m.file),
            build_id: st.intern(&m.build_id),
            has_functions: f.functions,
            has_filenames: f.filenames,
            has_line_numbers: f.line_numbers,
            has_inline_frames: f.inline_frames,
        })
        .collect();

    let mut sample = Vec::with_capacity(p.samples().len());
    for (i, s) in p.samples().iter().enumerate() {
        if s.values.len() != p.sample_types.len() {
            return Err(ModelError::Pprof(format!(
                "sample {i} has {} values but the profile has {} sample types",
                s.values.len(),
                p.sample_types.len()
            )));
        }
        let stack = p.stacks().get(s.stack as usize).ok_or_else(|| {
            ModelError::Pprof(format!(
                "sample {i} refers to stack {}, which does not exist",
                s.stack
            ))
        })?;
        let labels = p.label_sets().get(s.labels as usize).ok_or_else(|| {
            ModelError::Pprof(format!(
                "sample {i} refers to label set {}, which does not exist",
                s.labels
            ))
        })?;
        sample.push(proto::Sample {
            location_id: stack.iter().map(|&l| pprof_id(l)).collect(),
            value: s.values.clone(),
            label: labels
                .iter()
                .map(|(k, v)| proto::Label {
                    key: st.intern(k),
                    str: st.intern(v),
                    num: 0,
                    num_unit: 0,
                })
                .collect(),
        });
    }

    let period_type = p.period_type.as_ref().map(|t| proto::ValueType {
        r#type: st.intern(&t.kind),
        unit: st.intern(&t.unit),
    });
    let comment = p.comments.iter().map(|c| st.intern(c)).collect();
    // Make `go tool pprof` show the same value folded output and flame
    // graphs count, instead of its own default (the last sample type).
    let default_sample_type = p
        .sample_types
        .get(p.default_value_index())
        .map_or(0, |t| st.intern(&t.kind));

    Ok(proto::Profile {
        sample_type,
        sample,
        mapping,
        location,
        function,
        string_table: st.strings.iter().map(|s| s.as_bytes().to_vec()).collect(),
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: p.time_nanos,
        duration_nanos: p.duration_nanos,
        period_type,
        period: p.period,
        comment,
        default_sample_type,
    })
}

fn invalid(message: String) -> ModelError {
    ModelError::Pprof(message)
}

/// The decoded string table, with range-checked lookups.
struct Strings(Vec<String>);

impl Strings {
    fn get(&self, index: i64, what: impl FnOnce() -> String) -> Result<&str, ModelError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.0.get(i))
            .map(String::as_str)
            .ok_or_else(|| {
                invalid(format!(
                    "{} refers to string {index}, but the string table has {} entries",
                    what(),
                    self.0.len()
                ))
            })
    }

    fn value_type(
        &self,
        t: &proto::ValueType,
        what: impl Fn() -> String,
    ) -> Result<ValueType, ModelError> {
        Ok(ValueType::new(
            self.get(t.r#type, || format!("{} type", what()))?,
            self.get(t.unit, || format!("{} unit", what()))?,
        ))
    }
}

fn from_proto(msg: &proto::Profile) -> Result<Profile, ModelError> {
    let strings = Strings(
        msg.string_table
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    );
    match strings.0.first() {
        None => {
            return Err(invalid(
                "the string table is empty; entry 0 must be \"\"".into(),
            ))
        }
        Some(first) if !first.is_empty() => {
            return Err(invalid(format!(
                "string table entry 0 is {first:?}; it must be \"\""
            )))
        }
        Some(_) => {}
    }

    let sample_types = msg
        .sample_type
        .iter()
        .enumerate()
        .map(|(i, t)| strings.value_type(t, || format!("sample_type {i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut p = Profile::new(sample_types);

    p.period_type = msg
        .period_type
        .as_ref()
        .map(|t| strings.value_type(t, || "period_type".to_string()))
        .transpose()?;
    p.period = msg.period;
    p.time_nanos = msg.time_nanos;
    p.duration_nanos = msg.duration_nanos;
    p.comments = msg
        .comment
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            strings
                .get(c, || format!("comment {i}"))
                .map(str::to_string)
        })
        .collect::<Result<_, _>>()?;
    // Not kept, but a dangling index still means the file is corrupt.
    strings.get(msg.drop_frames, || "drop_frames".to_string())?;
    strings.get(msg.keep_frames, || "keep_frames".to_string())?;
    strings.get(msg.default_sample_type, || {
        "default_sample_type".to_string()
    })?;

    let mappings = decode_mappings(msg, &strings, &mut p)?;
    let functions = decode_functions(msg, &strings, &mut p)?;
    let locations = decode_locations(msg, &mappings, &functions, &mut p)?;
    decode_samples(msg, &strings, &locations, &mut p)?;
    Ok(p)
}

/// Inserts `id → value` into a pprof-id map, rejecting id 0 and reuse.
fn register<T>(
    map: &mut HashMap<u64, T>,
    what: &str,
    position: usize,
    id: u64,
    value: T,
) -> Result<(), ModelError> {
    if id == 0 {
        return Err(invalid(format!(
            "{what} {position} has id 0; ids must be non-zero"
        )));
    }
    if map.insert(id, value).is_some() {
        return Err(invalid(format!(
            "{what} {position} has id {id}, which an earlier {what} already uses"
        )));
    }
    Ok(())
}

fn decode_mappings(
    msg: &proto::Profile,
    strings: &Strings,
    p: &mut Profile,
) -> Result<HashMap<u64, MappingId>, ModelError> {
    let mut ids = HashMap::with_capacity(msg.mapping.len());
    for (i, m) in msg.mapping.iter().enumerate() {
        let what = || format!("mapping {i} (id {})", m.id);
        let mapping = Mapping {
            start: m.memory_start,
            limit: m.memory_limit,
            offset: m.file_offset,
            file: strings
                .get(m.filename, || format!("{} filename", what()))?
                .to_string(),
            build_id: strings
                .get(m.build_id, || format!("{} build_id", what()))?
                .to_string(),
        };
        let id = p.add_mapping(mapping);
        register(&mut ids, "mapping", i, m.id, id)?;
    }
    Ok(ids)
}

fn decode_functions(
    msg: &proto::Profile,
    strings: &Strings,
    p: &mut Profile,
) -> Result<HashMap<u64, FunctionId>, ModelError> {
    let mut ids = HashMap::with_capacity(msg.function.len());
    for (i, f) in msg.function.iter().enumerate() {
        let what = || format!("function {i} (id {})", f.id);
        let function = Function {
            name: strings
                .get(f.name, || format!("{} name", what()))?
                .to_string(),
            system_name: strings
                .get(f.system_name, || format!("{} system_name", what()))?
                .to_string(),
            file: strings
                .get(f.filename, || format!("{} filename", what()))?
                .to_string(),
            start_line: f.start_line,
        };
        let id = p.add_function(function);
        register(&mut ids, "function", i, f.id, id)?;
    }
    Ok(ids)
}

fn decode_locations(
    msg: &proto::Profile,
    mappings: &HashMap<u64, MappingId>,
    functions: &HashMap<u64, FunctionId>,
    p: &mut Profile,
) -> Result<HashMap<u64, LocationId>, ModelError> {
    let mut ids = HashMap::with_capacity(msg.location.len());
    for (i, l) in msg.location.iter().enumerate() {
        let mapping = match l.mapping_id {
            0 => None,
            m => Some(*mappings.get(&m).ok_or_else(|| {
                invalid(format!(
                    "location {i} (id {}) refers to mapping {m}, which does not exist",
                    l.id
                ))
            })?),
        };
        let lines = l
            .line
            .iter()
            .enumerate()
            .map(|(j, line)| {
                let function = *functions.get(&line.function_id).ok_or_else(|| {
                    invalid(format!(
                        "location {i} (id {}) line {j} refers to function {}, which does not exist",
                        l.id, line.function_id
                    ))
                })?;
                Ok(Line {
                    function,
                    line: line.line,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let id = p.add_location(Location {
            mapping,
            address: l.address,
            lines,
        });
        register(&mut ids, "location", i, l.id, id)?;
    }
    Ok(ids)
}

fn decode_samples(
    msg: &proto::Profile,
    strings: &Strings,
    locations: &HashMap<u64, LocationId>,
    p: &mut Profile,
) -> Result<(), ModelError> {
    let mut stack = Vec::new();
    for (i, s) in msg.sample.iter().enumerate() {
        if s.value.len() != p.sample_types.len() {
            return Err(invalid(format!(
                "sample {i} has {} values but the profile has {} sample types",
                s.value.len(),
                p.sample_types.len()
            )));
        }
        stack.clear();
        for &id in &s.location_id {
            stack.push(*locations.get(&id).ok_or_else(|| {
                invalid(format!(
                    "sample {i} refers to location {id}, which does not exist"
                ))
            })?);
        }
        let mut labels = Vec::with_capacity(s.label.len());
        for (j, l) in s.label.iter().enumerate() {
            let what = || format!("sample {i} label {j}");
            let key = strings.get(l.key, || format!("{} key", what()))?;
            let value = if l.str != 0 {
                strings
                    .get(l.str, || format!("{} str", what()))?
                    .to_string()
            } else if l.num_unit != 0 {
                let unit = strings.get(l.num_unit, || format!("{} num_unit", what()))?;
                format!("{} {unit}", l.num)
            } else if l.num != 0 {
                l.num.to_string()
            } else {
                String::new()
            };
            labels.push((key, value));
        }
        let stack_id = p.add_stack(&stack);
        let label_id = p.add_label_set(labels);
        if !p.try_add_sample(stack_id, label_id, &s.value) {
            return Err(ModelError::Overflow {
                context: format!(
                    "sample {i} adds to an earlier sample with the same stack and labels"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folded;

    /// Two sample types, a mapping, an inlined location, an unnamed one,
    /// labels, comments: every part of the model pprof carries.
    pub(crate) fn rich_profile() -> Profile {
        let mut p = Profile::new(vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ]);
        p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
        p.period = 10_000_000;
        p.time_nanos = 1_700_000_000_000_000_000;
        p.duration_nanos = 2_000_000_000;
        p.comments = vec!["captured by a test".into()];
        let m = p.add_mapping(Mapping {
            start: 0x40_0000,
            limit: 0x50_0000,
            offset: 0x1000,
            file: "/usr/bin/app".into(),
            build_id: "abc123".into(),
        });
        let main = p.add_function(Function {
            name: "main".into(),
            system_name: "main".into(),
            file: "main.c".into(),
            start_line: 10,
        });
        let work = p.add_function_named("work");
        let helper = p.add_function_named("helper");
        let l_main = p.add_location(Location {
            mapping: Some(m),
            address: 0x40_1000,
            lines: vec![Line {
                function: main,
                line: 12,
            }],
        });
        // helper inlined into work at one address.
        let l_work = p.add_location(Location {
            mapping: Some(m),
            address: 0x40_2000,
            lines: vec![
                Line {
                    function: helper,
                    line: 3,
                },
                Line {
                    function: work,
                    line: 30,
                },
            ],
        });
        let l_unnamed = p.add_location(Location {
            mapping: Some(m),
            address: 0x40_3abc,
            lines: vec![],
        });
        let a = p.add_label_set([("process_name", "app"), ("pid", "42")]);
        let b = p.add_label_set([("process_name", "app"), ("pid", "43"), ("tid", "44")]);
        let s1 = p.add_stack(&[l_work, l_main]);
        let s2 = p.add_stack(&[l_unnamed, l_work, l_main]);
        let s3 = p.add_stack(&[l_main]);
        p.add_sample(s1, a, &[5, 50_000_000]);
        p.add_sample(s2, a, &[2, 20_000_000]);
        p.add_sample(s1, b, &[1, 10_000_000]);
        p.add_sample(s3, b, &[7, 70_000_000]);
        p
    }

    fn raw(p: &proto::Profile) -> Vec<u8> {
        p.encode_to_vec()
    }

    fn decode_err(msg: &proto::Profile) -> String {
        decode(&raw(msg)).unwrap_err().to_string()
    }

    /// A valid one-sample profile to break in the error tests.
    fn minimal() -> proto::Profile {
        proto::Profile {
            sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
            sample: vec![proto::Sample {
                location_id: vec![1],
                value: vec![3],
                label: vec![proto::Label {
                    key: 4,
                    str: 5,
                    ..Default::default()
                }],
            }],
            location: vec![proto::Location {
                id: 1,
                line: vec![proto::Line {
                    function_id: 1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            function: vec![proto::Function {
                id: 1,
                name: 6,
                system_name: 6,
                ..Default::default()
            }],
            string_table: ["", "samples", "count", "", "pid", "7", "main"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            ..Default::default()
        }
    }

    fn sorted_label_sets(p: &Profile) -> Vec<Vec<(String, String)>> {
        let mut sets: Vec<_> = p
            .samples()
            .iter()
            .map(|s| p.label_set(s.labels).to_vec())
            .collect();
        sets.sort();
        sets
    }

    #[test]
    fn round_trip_keeps_stacks_values_labels_and_metadata() {
        let p = rich_profile();
        let back = decode(&encode(&p).unwrap()).unwrap();
        for i in 0..2 {
            assert_eq!(
                folded::encode(&back, i).unwrap(),
                folded::encode(&p, i).unwrap()
            );
            assert_eq!(back.total(i), p.total(i));
        }
        assert_eq!(sorted_label_sets(&back), sorted_label_sets(&p));
        assert_eq!(back.sample_types, p.sample_types);
        assert_eq!(back.period_type, p.period_type);
        assert_eq!(back.period, p.period);
        assert_eq!(back.time_nanos, p.time_nanos);
        assert_eq!(back.duration_nanos, p.duration_nanos);
        assert_eq!(back.comments, p.comments);
        assert_eq!(back.mappings(), p.mappings());
        assert_eq!(back.functions(), p.functions());
        assert_eq!(back.locations(), p.locations());
        assert_eq!(back.samples(), p.samples());
        // Re-encoding what was decoded gives the same bytes.
        assert_eq!(encode(&back).unwrap(), encode(&p).unwrap());
    }

    #[test]
    fn encoding_uses_one_based_ids_and_sets_the_default_type() {
        let p = rich_profile();
        let msg = to_proto(&p).unwrap();
        assert_eq!(msg.string_table[0], b"");
        assert_eq!(
            msg.function.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(msg.location[1].mapping_id, 1);
        assert_eq!(msg.location[1].line[0].function_id, 3); // helper, innermost
        assert_eq!(msg.sample[0].location_id, vec![2, 1]);
        let st = |i: i64| String::from_utf8(msg.string_table[i as usize].clone()).unwrap();
        assert_eq!(st(msg.default_sample_type), "samples");
        let m = &msg.mapping[0];
        assert!(m.has_functions && m.has_filenames && m.has_line_numbers && m.has_inline_frames);
    }

    #[test]
    fn uncompressed_protobuf_is_accepted() {
        let p = rich_profile();
        let back = decode(&raw(&to_proto(&p).unwrap())).unwrap();
        assert_eq!(back.total(1), p.total(1));
    }

    #[test]
    fn numeric_labels_become_strings() {
        let mut msg = minimal();
        msg.string_table.push(b"bytes".to_vec()); // 7
        msg.sample[0].label = vec![
            proto::Label {
                key: 4,
                num: 4096,
                num_unit: 7,
                ..Default::default()
            },
            proto::Label {
                key: 6,
                num: -3,
                ..Default::default()
            },
        ];
        let p = decode(&raw(&msg)).unwrap();
        let s = &p.samples()[0];
        assert_eq!(p.label(s, "pid"), Some("4096 bytes"));
        assert_eq!(p.label(s, "main"), Some("-3"));
    }

    #[test]
    fn missing_location_is_named_with_the_sample() {
        let mut msg = minimal();
        msg.sample.push(msg.sample[0].clone());
        msg.sample[1].location_id = vec![1, 99];
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: sample 1 refers to location 99, which does not exist"
        );
    }

    #[test]
    fn string_index_out_of_range_is_reported() {
        let mut msg = minimal();
        msg.function[0].name = 42;
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: function 0 (id 1) name refers to string 42, \
             but the string table has 7 entries"
        );
        let mut msg = minimal();
        msg.sample[0].label[0].str = -1;
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: sample 0 label 0 str refers to string -1, \
             but the string table has 7 entries"
        );
    }

    #[test]
    fn value_count_must_match_sample_types() {
        let mut msg = minimal();
        msg.sample[0].value = vec![1, 2];
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: sample 0 has 2 values but the profile has 1 sample types"
        );
    }

    #[test]
    fn dangling_function_and_mapping_references_are_reported() {
        let mut msg = minimal();
        msg.location[0].line[0].function_id = 5;
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: location 0 (id 1) line 0 refers to function 5, \
             which does not exist"
        );
        let mut msg = minimal();
        msg.location[0].mapping_id = 3;
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: location 0 (id 1) refers to mapping 3, which does not exist"
        );
    }

    #[test]
    fn ids_must_be_nonzero_and_unique() {
        let mut msg = minimal();
        msg.function.push(msg.function[0].clone());
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: function 1 has id 1, which an earlier function already uses"
        );
        let mut msg = minimal();
        msg.location[0].id = 0;
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: location 0 has id 0; ids must be non-zero"
        );
    }

    #[test]
    fn string_table_must_start_with_the_empty_string() {
        let mut msg = minimal();
        msg.string_table[0] = b"x".to_vec();
        assert_eq!(
            decode_err(&msg),
            "inconsistent pprof profile: string table entry 0 is \"x\"; it must be \"\""
        );
        assert_eq!(
            decode(&[]).unwrap_err().to_string(),
            "inconsistent pprof profile: the string table is empty; entry 0 must be \"\""
        );
    }

    #[test]
    fn overflowing_sums_are_an_error_not_a_panic() {
        let mut msg = minimal();
        msg.sample[0].value = vec![i64::MAX];
        msg.sample.push(msg.sample[0].clone());
        assert!(matches!(
            decode(&raw(&msg)),
            Err(ModelError::Overflow { context }) if context.starts_with("sample 1 ")
        ));
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error() {
        let gz = encode(&rich_profile()).unwrap();
        let err = decode(&gz[..gz.len() / 2]).unwrap_err();
        assert!(matches!(err, ModelError::Gzip(_)), "{err}");
        let err = decode(&[0x1f, 0x8b, 1, 2, 3]).unwrap_err();
        assert!(matches!(err, ModelError::Gzip(_)), "{err}");
        let err = decode(b"\x0a\xff\xff\xff\xff\x0f").unwrap_err();
        assert!(matches!(err, ModelError::Protobuf(_)), "{err}");
        let err = decode(b"main;leaf 3\n").unwrap_err();
        assert!(matches!(err, ModelError::Protobuf(_)), "{err}");
    }

    #[test]
    fn no_prefix_or_single_byte_change_makes_the_decoder_panic() {
        let bytes = raw(&to_proto(&rich_profile()).unwrap());
        for len in 0..bytes.len() {
            let _ = decode(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let _ = decode(&b);
            }
        }
    }

    #[test]
    fn non_utf8_strings_are_replaced_not_rejected() {
        let mut msg = minimal();
        msg.string_table[6] = b"ma\xffin".to_vec();
        let p = decode(&raw(&msg)).unwrap();
        assert_eq!(p.functions()[0].name, "ma\u{fffd}in");
    }
}
