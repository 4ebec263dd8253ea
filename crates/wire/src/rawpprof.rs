//! The ingest fast path: pprof straight from its protobuf messages into a
//! batch, without building a [`perfpilot_model::Profile`].
//!
//! The model interns every sample's labels and stack as owned values; at a
//! few hundred thousand samples a second that, not the protobuf, was the
//! cost of ingest. Here a sample's stack is looked up by its location ids
//! and its labels by their string-table indices (consecutive samples of
//! one process share them, so the previous sample's are tried first), and
//! names are interned once per string-table entry. The result is the same
//! batch [`crate::pprof::add_profile`] builds; both are tested against each
//! other.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use perfpilot_model::ValueType;

use crate::batch::BatchBuilder;
use crate::error::WireError;
use crate::limits::{check_label_len, too_many_labels, Limits};
use crate::pprof::{is_series_label, series_for_labels, Source};
use crate::profile_type::{metric_name_for, profile_type_id};

const NANOS_PER_MS: i64 = 1_000_000;
const MIN_TIME_NANOS: i64 = 365 * 24 * 3600 * 1_000_000_000;

/// Ids in a pprof are usually 1..=n; a table indexed by id then beats a
/// hash map.
enum IdIndex {
    Dense(Vec<u32>),
    Sparse(HashMap<u64, u32>),
}

impl IdIndex {
    fn build(ids: impl ExactSizeIterator<Item = u64> + Clone) -> IdIndex {
        let n = ids.len();
        if ids.clone().enumerate().all(|(i, id)| id == i as u64 + 1) {
            IdIndex::Dense((0..n as u32).collect())
        } else {
            IdIndex::Sparse(ids.enumerate().map(|(i, id)| (id, i as u32)).collect())
        }
    }

    fn get(&self, id: u64) -> Option<u32> {
        match self {
            IdIndex::Dense(v) => id.checked_sub(1).and_then(|i| v.get(i as usize).copied()),
            IdIndex::Sparse(m) => m.get(&id).copied(),
        }
    }
}

/// A sample's labels as string-table indices: (key, str, num, num_unit).
type RawLabels = Vec<(i64, i64, i64, i64)>;

/// A minimal protobuf reader: a pprof is read without allocating per
/// string, location or sample.
pub(crate) struct Wire<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Wire<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Wire<'a> {
        Wire { buf, pos: 0 }
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn skip(&mut self, wire_type: u64) -> Option<()> {
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => {
                self.pos = self.pos.checked_add(8).filter(|&p| p <= self.buf.len())?;
                Some(())
            }
            2 => self.bytes().map(|_| ()),
            5 => {
                self.pos = self.pos.checked_add(4).filter(|&p| p <= self.buf.len())?;
                Some(())
            }
            _ => None,
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// A sample label's value, read without building a string.
enum LabelValue<'a> {
    Str(&'a str),
    /// `num` with its unit: "12 bytes".
    Unit(i64, &'a str),
    Num(i64),
    Empty,
}

impl LabelValue<'_> {
    /// An upper bound of the value's length as a string.
    fn len(&self) -> usize {
        match self {
            LabelValue::Str(s) => s.len(),
            LabelValue::Unit(_, u) => 21 + u.len(),
            LabelValue::Num(_) => 20,
            LabelValue::Empty => 0,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            LabelValue::Str(s) => s.is_empty(),
            LabelValue::Empty => true,
            _ => false,
        }
    }

    fn to_owned_string(&self) -> String {
        match self {
            LabelValue::Str(s) => s.to_string(),
            LabelValue::Unit(n, u) => format!("{n} {u}"),
            LabelValue::Num(n) => n.to_string(),
            LabelValue::Empty => String::new(),
        }
    }
}

/// What the fast path needs of a Profile message, borrowed from its
/// bytes: ids and string-table indices as flat arrays, samples as slices
/// read later by [`read_sample`].
#[derive(Default)]
struct Tables<'a> {
    sample_types: Vec<(i64, i64)>,
    period_type: Option<(i64, i64)>,
    time_nanos: i64,
    strings: Vec<std::borrow::Cow<'a, str>>,
    /// (id, name string).
    functions: Vec<(u64, i64)>,
    /// (id, mapping id, first line, line count) into `lines`.
    locations: Vec<(u64, u64, u32, u32)>,
    /// Function ids of location lines, innermost first per location.
    lines: Vec<u64>,
    /// (id, filename string).
    mappings: Vec<(u64, i64)>,
    samples: Vec<&'a [u8]>,
}

/// Reads a message of two varint fields (tags 1 and 2), as ValueType is.
fn pair(bytes: &[u8]) -> Option<(i64, i64)> {
    let mut w = Wire { buf: bytes, pos: 0 };
    let mut out = (0i64, 0i64);
    while !w.done() {
        let k = w.varint()?;
        match (k >> 3, k & 7) {
            (1, 0) => out.0 = w.varint()? as i64,
            (2, 0) => out.1 = w.varint()? as i64,
            (_, t) => w.skip(t)?,
        }
    }
    Some(out)
}

fn read_tables(raw: &[u8]) -> Option<Tables<'_>> {
    let mut t = Tables::default();
    let mut w = Wire { buf: raw, pos: 0 };
    while !w.done() {
        let key = w.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => t.sample_types.push(pair(w.bytes()?)?),
            (2, 2) => t.samples.push(w.bytes()?),
            (3, 2) => {
                let mut m = Wire {
                    buf: w.bytes()?,
                    pos: 0,
                };
                let (mut id, mut file) = (0u64, 0i64);
                while !m.done() {
                    let k = m.varint()?;
                    match (k >> 3, k & 7) {
                        (1, 0) => id = m.varint()?,
                        (5, 0) => file = m.varint()? as i64,
                        (_, ty) => m.skip(ty)?,
                    }
                }
                t.mappings.push((id, file));
            }
            (4, 2) => {
                let mut l = Wire {
                    buf: w.bytes()?,
                    pos: 0,
                };
                let (mut id, mut mapping) = (0u64, 0u64);
                let first = u32::try_from(t.lines.len()).ok()?;
                while !l.done() {
                    let k = l.varint()?;
                    match (k >> 3, k & 7) {
                        (1, 0) => id = l.varint()?,
                        (2, 0) => mapping = l.varint()?,
                        (4, 2) => {
                            let (function, _line) = pair(l.bytes()?)?;
                            t.lines.push(function as u64);
                        }
                        (_, ty) => l.skip(ty)?,
                    }
                }
                let count = u32::try_from(t.lines.len()).ok()? - first;
                t.locations.push((id, mapping, first, count));
            }
            (5, 2) => {
                let mut f = Wire {
                    buf: w.bytes()?,
                    pos: 0,
                };
                let (mut id, mut name) = (0u64, 0i64);
                while !f.done() {
                    let k = f.varint()?;
                    match (k >> 3, k & 7) {
                        (1, 0) => id = f.varint()?,
                        (2, 0) => name = f.varint()? as i64,
                        (_, ty) => f.skip(ty)?,
                    }
                }
                t.functions.push((id, name));
            }
            (6, 2) => t.strings.push(String::from_utf8_lossy(w.bytes()?)),
            (9, 0) => t.time_nanos = w.varint()? as i64,
            (11, 2) => t.period_type = Some(pair(w.bytes()?)?),
            (_, ty) => w.skip(ty)?,
        }
    }
    Some(t)
}

/// Reads one sample into reused buffers (packed or unpacked repeated
/// fields, as protobuf allows both).
fn read_sample(
    bytes: &[u8],
    locations: &mut Vec<u64>,
    values: &mut Vec<i64>,
    labels: &mut RawLabels,
) -> Option<()> {
    locations.clear();
    values.clear();
    labels.clear();
    let mut w = Wire { buf: bytes, pos: 0 };
    while !w.done() {
        let key = w.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => locations.push(w.varint()?),
            (1, 2) => {
                let mut p = Wire {
                    buf: w.bytes()?,
                    pos: 0,
                };
                while !p.done() {
                    locations.push(p.varint()?);
                }
            }
            (2, 0) => values.push(w.varint()? as i64),
            (2, 2) => {
                let mut p = Wire {
                    buf: w.bytes()?,
                    pos: 0,
                };
                while !p.done() {
                    values.push(p.varint()? as i64);
                }
            }
            (3, 2) => {
                let mut l = Wire {
                    buf: w.bytes()?,
                    pos: 0,
                };
                let mut label = (0i64, 0i64, 0i64, 0i64);
                while !l.done() {
                    let k = l.varint()?;
                    match (k >> 3, k & 7) {
                        (1, 0) => label.0 = l.varint()? as i64,
                        (2, 0) => label.1 = l.varint()? as i64,
                        (3, 0) => label.2 = l.varint()? as i64,
                        (4, 0) => label.3 = l.varint()? as i64,
                        (_, t) => l.skip(t)?,
                    }
                }
                labels.push(label);
            }
            (_, t) => w.skip(t)?,
        }
    }
    Some(())
}

/// A string-table entry, or an error naming what referred to it.
fn table_string<'s>(
    strings: &'s [std::borrow::Cow<'s, str>],
    i: i64,
    what: &str,
    ctx: &dyn Fn() -> String,
) -> Result<&'s str, WireError> {
    usize::try_from(i)
        .ok()
        .and_then(|i| strings.get(i))
        .map(|s| s.as_ref())
        .ok_or_else(|| WireError::Profile {
            what: what.to_string(),
            message: format!(
                "{} refers to string {i}, past the string table ({} entries)",
                ctx(),
                strings.len()
            ),
        })
}

/// Sample `n`'s labels that become series labels, read by string-table
/// index. Cheap checks first: they are counted and their lengths checked
/// before any string is built, sorted or merged.
fn kept_labels<'s>(
    strings: &'s [std::borrow::Cow<'s, str>],
    raw: &RawLabels,
    n: usize,
    what: &str,
    limits: &Limits,
) -> Result<Vec<(&'s str, LabelValue<'s>)>, WireError> {
    let sample_what = || format!("{what} sample {n}");
    let mut kept: Vec<(&str, LabelValue)> = Vec::new();
    for (j, &(key, str_idx, num, num_unit)) in raw.iter().enumerate() {
        let ctx = || format!("sample {n} label {j}");
        let k = table_string(strings, key, what, &|| format!("{} key", ctx()))?;
        let v = if str_idx != 0 {
            LabelValue::Str(table_string(strings, str_idx, what, &|| {
                format!("{} str", ctx())
            })?)
        } else if num_unit != 0 {
            LabelValue::Unit(
                num,
                table_string(strings, num_unit, what, &|| format!("{} num_unit", ctx()))?,
            )
        } else if num != 0 {
            LabelValue::Num(num)
        } else {
            LabelValue::Empty
        };
        if !is_series_label(k) || v.is_empty() {
            continue;
        }
        if kept.len() == limits.max_labels_per_series {
            return Err(too_many_labels(&sample_what(), raw.len(), limits));
        }
        if k.len() > limits.max_label_name_len || v.len() > limits.max_label_value_len {
            check_label_len(&sample_what(), k, &v.to_owned_string(), limits)?;
        }
        kept.push((k, v));
    }
    Ok(kept)
}

/// The label checks of [`add_raw_profile`] alone, on a pprof's bytes, for
/// the path that builds the generic model (which would otherwise build
/// every string of a 100k-label sample before anything could count
/// them). Malformed protobuf is left to the decoder, which says what.
pub(crate) fn check_labels(raw: &[u8], limits: &Limits, what: &str) -> Result<(), WireError> {
    let Some(msg) = read_tables(raw) else {
        return Ok(());
    };
    let (mut locations, mut values, mut labels) = (Vec::new(), Vec::new(), RawLabels::new());
    for (n, bytes) in msg.samples.iter().enumerate() {
        if read_sample(bytes, &mut locations, &mut values, &mut labels).is_none() {
            return Ok(());
        }
        kept_labels(&msg.strings, &labels, n, what, limits)?;
    }
    Ok(())
}

fn malformed(what: &str, message: String) -> WireError {
    WireError::Profile {
        what: what.to_string(),
        message,
    }
}

/// What every sample of a profile shares: its profile type ids (one per
/// sample type) and its time.
struct Header {
    sample_types: usize,
    type_ids: Vec<String>,
    time_ms: i64,
}

fn read_header(msg: &Tables<'_>, src: &Source<'_>) -> Result<Header, WireError> {
    let what = src.what;
    let strings = &msg.strings;
    if strings.first().is_some_and(|s| !s.is_empty()) {
        return Err(malformed(
            what,
            "string_table[0] must be the empty string".into(),
        ));
    }
    let string = |i: i64, ctx: &dyn Fn() -> String| table_string(strings, i, what, ctx);
    let value_type = |t: &(i64, i64), ctx: &str| -> Result<ValueType, WireError> {
        Ok(ValueType::new(
            string(t.0, &|| format!("{ctx} type"))?,
            string(t.1, &|| format!("{ctx} unit"))?,
        ))
    };
    let sample_types = msg
        .sample_types
        .iter()
        .enumerate()
        .map(|(i, t)| value_type(t, &format!("sample_type {i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let period_type = msg
        .period_type
        .as_ref()
        .map(|t| value_type(t, "period_type"))
        .transpose()?;
    let name = match src.name {
        Some(n) => n.to_string(),
        None => metric_name_for(&sample_types, src.configs),
    };
    let time_ms = if msg.time_nanos >= MIN_TIME_NANOS {
        msg.time_nanos / NANOS_PER_MS
    } else {
        src.fallback_time_ms
    };
    let type_ids = sample_types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            profile_type_id(&name, t, period_type.as_ref()).ok_or_else(|| {
                WireError::Invalid(format!(
                    "{what}: profile name {name:?} with sample type {i} ({}/{}) does not make a \
                 profile type id (no part may be empty-named or contain ':')",
                    t.kind, t.unit
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header {
        sample_types: sample_types.len(),
        type_ids,
        time_ms,
    })
}

/// Locations expanded into interned frame names, each once per profile.
struct Frames {
    functions: IdIndex,
    locations: IdIndex,
    /// Names interned once per string-table entry, on first use.
    name_ids: Vec<u32>,
    /// Each location's frames, root first (its lines are innermost first),
    /// as (start, len) into `frames`; start u32::MAX: not resolved yet.
    span: Vec<(u32, u32)>,
    frames: Vec<u32>,
}

impl Frames {
    fn new(msg: &Tables<'_>) -> Frames {
        Frames {
            functions: IdIndex::build(msg.functions.iter().map(|f| f.0)),
            locations: IdIndex::build(msg.locations.iter().map(|l| l.0)),
            name_ids: vec![u32::MAX; msg.strings.len()],
            span: vec![(u32::MAX, 0); msg.locations.len()],
            frames: Vec::new(),
        }
    }

    /// Sample `n`'s stack (location ids leaf first) as frame names, root
    /// first, into `out`.
    fn stack(
        &mut self,
        b: &mut BatchBuilder<'_>,
        msg: &Tables<'_>,
        loc_ids: &[u64],
        n: usize,
        what: &str,
        out: &mut Vec<u32>,
    ) -> Result<(), WireError> {
        out.clear();
        let sample_what = || format!("{what} sample {n}");
        for &loc_id in loc_ids.iter().rev() {
            let li = self.locations.get(loc_id).ok_or_else(|| {
                malformed(
                    what,
                    format!("sample {n} refers to location {loc_id}, which does not exist"),
                )
            })? as usize;
            if self.span[li].0 == u32::MAX {
                self.expand(b, msg, li, what, &sample_what)?;
            }
            let (start, len) = self.span[li];
            // Checked before the frames are copied: one location of many
            // inlined lines, referenced many times, must not expand.
            b.check_stack_len(out.len() + len as usize, sample_what)?;
            out.extend_from_slice(&self.frames[start as usize..(start + len) as usize]);
        }
        Ok(())
    }

    /// Resolves location `li` (an index into the location table).
    fn expand(
        &mut self,
        b: &mut BatchBuilder<'_>,
        msg: &Tables<'_>,
        li: usize,
        what: &str,
        sample_what: &dyn Fn() -> String,
    ) -> Result<(), WireError> {
        let string = |i: i64, ctx: &dyn Fn() -> String| table_string(&msg.strings, i, what, ctx);
        let start = self.frames.len();
        let (loc_id, mapping_id, first, count) = msg.locations[li];
        // A location's inlined lines are counted before they are
        // expanded, as every stack's frames are.
        b.check_stack_len(count as usize, sample_what)?;
        let loc_lines = &msg.lines[first as usize..(first + count) as usize];
        if loc_lines.is_empty() {
            // Named after its object, as the model names unsymbolized
            // locations.
            let file = msg
                .mappings
                .iter()
                .find(|m| m.0 == mapping_id && mapping_id != 0)
                .map(|m| string(m.1, &|| format!("mapping {}", m.0)))
                .transpose()?
                .filter(|f| !f.is_empty());
            let label = match file {
                Some(f) => {
                    let base = f.rsplit('/').next().unwrap_or(f);
                    if base.starts_with('[') {
                        base.to_string()
                    } else {
                        format!("[{base}]")
                    }
                }
                None => "[unknown]".to_string(),
            };
            self.frames.push(b.name(&label, sample_what)?);
        }
        for &function_id in loc_lines.iter().rev() {
            let fi = self.functions.get(function_id).ok_or_else(|| {
                malformed(
                    what,
                    format!(
                        "location {loc_id} refers to function {function_id}, which does not exist"
                    ),
                )
            })? as usize;
            let si = msg.functions[fi].1;
            let fname = string(si, &|| format!("function {function_id}"))?;
            if fname.is_empty() {
                continue;
            }
            let slot = &mut self.name_ids[si as usize];
            if *slot == u32::MAX {
                *slot = b.name(fname, sample_what)?;
            }
            self.frames.push(*slot);
        }
        self.span[li] = (start as u32, (self.frames.len() - start) as u32);
        Ok(())
    }
}

/// Label sets seen and their batch profiles (one per sample type).
/// Consecutive samples of one process share their labels, so the previous
/// sample's set is tried before the map.
#[derive(Default)]
struct SeriesOf {
    index: FxHashMap<RawLabels, usize>,
    profiles: Vec<Vec<usize>>,
    last_raw: RawLabels,
    last: Option<usize>,
}

impl SeriesOf {
    /// The batch profiles of sample `n`'s labels (`raw` is left with the
    /// previous sample's labels when they differ: the two are swapped).
    fn of(
        &mut self,
        b: &mut BatchBuilder<'_>,
        src: &Source<'_>,
        msg: &Tables<'_>,
        header: &Header,
        raw: &mut RawLabels,
        n: usize,
    ) -> Result<&[usize], WireError> {
        let i = match self.last {
            Some(i) if self.last_raw == *raw => i,
            _ => {
                let i = match self.index.get(raw) {
                    Some(&i) => i,
                    None => {
                        let kept = kept_labels(&msg.strings, raw, n, src.what, b.limits())?;
                        let mut labels: Vec<(String, String)> = kept
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_owned_string()))
                            .collect();
                        // As the model does: the last value of a repeated key wins.
                        labels.reverse();
                        labels.sort_by(|a, b| a.0.cmp(&b.0));
                        labels.dedup_by(|a, b| a.0 == b.0);
                        self.profiles.push(series_for_labels(
                            b,
                            src,
                            labels,
                            &header.type_ids,
                            header.time_ms,
                        )?);
                        self.index.insert(raw.clone(), self.profiles.len() - 1);
                        self.profiles.len() - 1
                    }
                };
                self.last = Some(i);
                std::mem::swap(&mut self.last_raw, raw);
                i
            }
        };
        Ok(&self.profiles[i])
    }
}

/// Adds a decoded (not gzipped) pprof to the batch.
pub(crate) fn add_raw_profile(
    b: &mut BatchBuilder<'_>,
    src: &Source<'_>,
    raw: &[u8],
) -> Result<(), WireError> {
    let what = src.what;
    let msg = read_tables(raw).ok_or_else(|| {
        malformed(
            what,
            "malformed pprof protobuf: a field is cut short or of the wrong type".into(),
        )
    })?;
    let header = read_header(&msg, src)?;
    let mut frames = Frames::new(&msg);
    let mut series = SeriesOf::default();
    let (mut stack, mut loc_ids, mut values, mut raw_labels) =
        (Vec::new(), Vec::new(), Vec::new(), RawLabels::new());
    for (n, bytes) in msg.samples.iter().enumerate() {
        read_sample(bytes, &mut loc_ids, &mut values, &mut raw_labels).ok_or_else(|| {
            malformed(
                what,
                format!("malformed pprof protobuf: sample {n} is cut short"),
            )
        })?;
        if values.len() != header.sample_types {
            return Err(malformed(
                what,
                format!(
                    "sample {n} has {} values but the profile has {} sample types",
                    values.len(),
                    header.sample_types
                ),
            ));
        }
        if values.iter().all(|&v| v == 0) {
            continue;
        }
        frames.stack(b, &msg, &loc_ids, n, what, &mut stack)?;
        b.charge_frames(stack.len())?;
        let stack = b.stack_of_names(&stack, &|| format!("{what} sample {n}"))?;
        let profiles = series
            .of(b, src, &msg, &header, &mut raw_labels, n)?
            .to_vec();
        for (&profile, &value) in profiles.iter().zip(&values) {
            b.add(profile, stack, value).map_err(|e| match e {
                WireError::Invalid(m) => WireError::Invalid(format!("{what} sample {n}: {m}")),
                other => other,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::pprof::add_profile;
    use perfpilot_model::pprof::proto;
    use perfpilot_model::series::Batch;
    use perfpilot_model::{Function, Line, Location, Mapping, Profile};
    use prost::Message;
    use std::collections::BTreeMap;

    type Canonical = BTreeMap<(Vec<(String, String)>, i64), BTreeMap<Vec<String>, i64>>;

    /// A batch as (labels, time) → (root-first names → value).
    fn canonical(b: &Batch) -> Canonical {
        let mut out: BTreeMap<_, BTreeMap<Vec<String>, i64>> = BTreeMap::new();
        for p in &b.profiles {
            let e = out.entry((p.labels.clone(), p.time_ms)).or_default();
            for &(s, v) in &p.samples {
                let names = b.stacks[s as usize]
                    .iter()
                    .map(|&f| b.strings[f as usize].clone())
                    .collect();
                *e.entry(names).or_default() += v;
            }
        }
        out
    }

    fn both(p: &Profile) -> (Batch, Batch) {
        let bytes = perfpilot_model::pprof::encode(p).unwrap();
        let limits = Limits::default();
        let labels = vec![("region".to_string(), "eu".to_string())];
        let src = Source {
            what: "test",
            name: None,
            labels: &labels,
            configs: None,
            fallback_time_ms: 1_800_000_000_000,
            default_service: Some("svc"),
        };
        let mut fast = BatchBuilder::new(&limits, 1_800_000_001_000);
        let raw = {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        };
        add_raw_profile(&mut fast, &src, &raw).unwrap();
        let mut slow = BatchBuilder::new(&limits, 1_800_000_001_000);
        let model = perfpilot_model::pprof::decode(&bytes).unwrap();
        add_profile(&mut slow, &src, &model, None).unwrap();
        (fast.finish(), slow.finish())
    }

    #[test]
    fn fast_path_builds_the_same_batch_as_the_model_path() {
        let mut p = Profile::new(vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ]);
        p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
        p.period = 10_000_000;
        p.time_nanos = 1_800_000_000_000_000_000;
        let m = p.add_mapping(Mapping {
            file: "/bin/app".into(),
            ..Default::default()
        });
        let f = |p: &mut Profile, n: &str| {
            p.add_function(Function {
                name: n.into(),
                system_name: n.into(),
                ..Default::default()
            })
        };
        let (main, work, inlined, empty) = (
            f(&mut p, "main"),
            f(&mut p, "work"),
            f(&mut p, "inlined"),
            f(&mut p, ""),
        );
        let l_main = p.add_function_location(main);
        let l_inl = p.add_location(Location {
            mapping: Some(m),
            address: 0x10,
            lines: vec![
                Line {
                    function: inlined,
                    line: 3,
                },
                Line {
                    function: work,
                    line: 9,
                },
            ],
        });
        let l_unnamed = p.add_location(Location {
            mapping: Some(m),
            address: 0x20,
            lines: vec![],
        });
        let l_empty = p.add_function_location(empty);
        let s1 = p.add_stack(&[l_inl, l_main]);
        let s2 = p.add_stack(&[l_unnamed, l_empty, l_main]);
        let a = p.add_label_set([("pid", "1"), ("service_name", "alpha"), ("__private", "x")]);
        let b = p.add_label_set([("pid", "2"), ("thread", "")]);
        p.add_sample(s1, a, &[3, 30]);
        p.add_sample(s2, a, &[1, 10]);
        p.add_sample(s1, b, &[2, 20]);
        p.add_sample(s2, b, &[0, 0]);
        let (fast, slow) = both(&p);
        assert_eq!(canonical(&fast), canonical(&slow));
        // Four series: two label sets x two sample types.
        assert_eq!(canonical(&fast).len(), 4);
        assert!(fast.strings.iter().all(|s| !s.is_empty()));
    }

    #[test]
    fn fast_path_errors_name_the_problem() {
        let limits = Limits::default();
        let src = Source {
            what: "the body",
            name: None,
            labels: &[],
            configs: None,
            fallback_time_ms: 0,
            default_service: Some("svc"),
        };
        let mut b = BatchBuilder::new(&limits, 0);
        let err = add_raw_profile(&mut b, &src, b"\x0a\xff")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the body") && err.contains("malformed"),
            "{err}"
        );
        // A sample pointing at a location that does not exist.
        let msg = proto::Profile {
            sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
            sample: vec![proto::Sample {
                location_id: vec![7],
                value: vec![1],
                label: vec![],
            }],
            string_table: vec![b"".to_vec(), b"samples".to_vec(), b"count".to_vec()],
            ..Default::default()
        };
        let err = add_raw_profile(&mut b, &src, &msg.encode_to_vec())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sample 0 refers to location 7"), "{err}");
    }
}
