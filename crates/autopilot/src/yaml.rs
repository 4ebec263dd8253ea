//! Reading typed fields out of YAML nodes that carry their positions,
//! collecting a diagnostic for everything wrong instead of stopping at the
//! first.

use std::collections::BTreeMap;
use std::time::Duration;

use saphyr::{MarkedYamlOwned, ScalarOwned, YamlDataOwned, YamlLoader};
use saphyr_parser::{Event, Marker, Parser, ScanError, Span, SpannedEventReceiver};

use crate::diag::{did_you_mean, Diagnostic, Severity};

pub(crate) type Node = MarkedYamlOwned;

/// How deep collections may nest in a policy file: far more than any
/// policy needs, and shallow enough that what recurses over the tree
/// (the loader's copies of anchors, the checks, dropping it) stays well
/// within a thread's stack.
pub const MAX_DEPTH: usize = 64;

/// Loads every document of `source`, with a diagnostic for each duplicate
/// key (the loader alone would stop at the first); `Err` for a syntax
/// error, which ends parsing, and for nesting deeper than [`MAX_DEPTH`].
///
/// The parser's events are read here one at a time, and depth is checked
/// before a collection is handed to the loader: `Parser::load` recurses
/// once per level, and a file thousands of levels deep overflowed the
/// stack of the thread reading it.
pub(crate) fn load(source: &str) -> Result<(Vec<Node>, Vec<Diagnostic>), Diagnostic> {
    let mut loader = YamlLoader::default();
    loader.allow_duplicate_keys(true);
    let mut receiver = Receiver {
        loader,
        frames: Vec::new(),
        anchors: BTreeMap::new(),
        duplicates: Vec::new(),
    };
    let at = |marker: Marker, message: String| Diagnostic {
        line: marker.line(),
        column: marker.col() + 1,
        severity: Severity::Error,
        message,
    };
    let too_deep =
        || format!("YAML nests more than {MAX_DEPTH} levels deep (the limit for a policy file)");
    let syntax = |e: &ScanError| {
        // The scanner's own limit, 255 levels of `[` and `{`: it reads
        // ahead of the events, so it can stop before they reach ours.
        let message = if e.info() == "recursion limit exceeded" {
            too_deep()
        } else {
            format!("YAML syntax: {}", e.info())
        };
        at(*e.marker(), message)
    };
    for event in Parser::new_from_str(source) {
        let (ev, span) = event.map_err(|e| syntax(&e))?;
        receiver.on_event(ev, span).map_err(|e| match e {
            Refused::TooDeep => at(span.start, too_deep()),
            Refused::ForeignAnchor => at(
                span.start,
                "YAML syntax: unknown anchor (an alias refers to an anchor of its own \
                     document)"
                    .into(),
            ),
        })?;
        if let Some(e) = receiver.loader.error() {
            return Err(syntax(e));
        }
    }
    Ok((receiver.loader.into_documents(), receiver.duplicates))
}

/// What a collection is: a mapping (its keys so far, and whether the next
/// node is a key) or a sequence.
enum Kind {
    Map {
        keys: BTreeMap<String, usize>,
        next_is_key: bool,
    },
    Seq,
}

/// A collection the event stream is in: its kind, its anchor (0 for
/// none), and how many levels of collections its children hold so far.
struct Frame {
    kind: Kind,
    anchor: usize,
    below: usize,
}

/// Why an event was not loaded.
enum Refused {
    TooDeep,
    /// An alias of an anchor in an earlier document.
    ForeignAnchor,
}

struct Receiver<'i> {
    loader: YamlLoader<'i, Node>,
    frames: Vec<Frame>,
    /// The levels of collections each anchored node of the document holds:
    /// an alias adds as many where it stands, as the loader copies the
    /// anchored node there.
    anchors: BTreeMap<usize, usize>,
    duplicates: Vec<Diagnostic>,
}

impl<'i> Receiver<'i> {
    /// Hands one event to the loader, or says why it must not.
    fn on_event(&mut self, ev: Event<'i>, span: Span) -> Result<(), Refused> {
        // A node this event completes: its levels and its anchor.
        let mut complete = None;
        match &ev {
            Event::DocumentStart(_) => self.anchors.clear(),
            Event::MappingStart(..) | Event::SequenceStart(..)
                if self.frames.len() >= MAX_DEPTH =>
            {
                return Err(Refused::TooDeep)
            }
            Event::Alias(id) => {
                // The parser knows the anchors of earlier documents too.
                let Some(&levels) = self.anchors.get(id) else {
                    return Err(Refused::ForeignAnchor);
                };
                if self.frames.len() + levels > MAX_DEPTH {
                    return Err(Refused::TooDeep);
                }
                complete = Some((levels, 0));
            }
            Event::Scalar(_, _, anchor, _) => complete = Some((0, *anchor)),
            _ => {}
        }
        let starts_node = matches!(
            ev,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        );
        // A node's start decides key or value for its parent, whatever it
        // holds, so nested content never disturbs the alternation.
        if starts_node {
            if let Some(Frame {
                kind: Kind::Map { keys, next_is_key },
                ..
            }) = self.frames.last_mut()
            {
                let is_key = *next_is_key;
                *next_is_key = !is_key;
                if let (true, Event::Scalar(key, ..)) = (is_key, &ev) {
                    let line = span.start.line();
                    if let Some(first) = keys.get(key.as_ref()) {
                        self.duplicates.push(Diagnostic {
                            line,
                            column: span.start.col() + 1,
                            severity: Severity::Error,
                            message: format!("duplicate key `{key}` (first at line {first})"),
                        });
                    } else {
                        keys.insert(key.to_string(), line);
                    }
                }
            }
        }
        match &ev {
            Event::MappingStart(anchor, _) => self.frames.push(Frame {
                kind: Kind::Map {
                    keys: BTreeMap::new(),
                    next_is_key: true,
                },
                anchor: *anchor,
                below: 0,
            }),
            Event::SequenceStart(anchor, _) => self.frames.push(Frame {
                kind: Kind::Seq,
                anchor: *anchor,
                below: 0,
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(f) = self.frames.pop() {
                    complete = Some((f.below + 1, f.anchor));
                }
            }
            _ => {}
        }
        if let Some((levels, anchor)) = complete {
            if anchor > 0 {
                self.anchors.insert(anchor, levels);
            }
            if let Some(parent) = self.frames.last_mut() {
                parent.below = parent.below.max(levels);
            }
        }
        self.loader.on_event(ev, span);
        Ok(())
    }
}

/// The source and the diagnostics found so far.
pub(crate) struct Ctx<'s> {
    lines: Vec<&'s str>,
    pub diags: Vec<Diagnostic>,
}

impl<'s> Ctx<'s> {
    pub fn new(source: &'s str) -> Self {
        Ctx {
            lines: source.lines().collect(),
            diags: Vec::new(),
        }
    }

    pub fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    pub fn push(&mut self, (line, column): (usize, usize), severity: Severity, message: String) {
        self.diags.push(Diagnostic {
            line,
            column,
            severity,
            message,
        });
    }

    pub fn error(&mut self, node: &Node, message: String) {
        self.push(pos(node), Severity::Error, message);
    }

    pub fn warn(&mut self, node: &Node, message: String) {
        self.push(pos(node), Severity::Warning, message);
    }

    /// The file position of the `offset`th character of a scalar's value
    /// (or of its end), when the scalar is on one line: plain, or quoted
    /// with its escapes accounted for. Block and multi-line scalars fold
    /// lines, so their columns do not map: `None`.
    pub fn position_in_scalar(
        &self,
        node: &Node,
        value: &str,
        offset: usize,
    ) -> Option<(usize, usize)> {
        let (start, end) = (node.span.start, node.span.end);
        if start.line() != end.line() {
            return None;
        }
        let line = self.lines.get(start.line().checked_sub(1)?)?;
        let raw: Vec<char> = line
            .chars()
            .skip(start.col())
            .take(end.col().saturating_sub(start.col()))
            .collect();
        let columns = value_columns(&raw)?;
        // One entry per value character, plus the end.
        if columns.len() != value.chars().count() + 1 {
            return None;
        }
        Some((start.line(), start.col() + columns.get(offset)? + 1))
    }
}

/// For each character of a one-line scalar's value, its index in the
/// scalar's text, then the index of the value's end.
fn value_columns(raw: &[char]) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    match raw.first() {
        Some('\'') => {
            let mut i = 1;
            while i < raw.len() {
                if raw[i] == '\'' {
                    if raw.get(i + 1) != Some(&'\'') {
                        break;
                    }
                    out.push(i);
                    i += 2;
                } else {
                    out.push(i);
                    i += 1;
                }
            }
            out.push(i);
        }
        Some('"') => {
            let mut i = 1;
            while i < raw.len() && raw[i] != '"' {
                out.push(i);
                i += match raw[i] {
                    '\\' => match raw.get(i + 1)? {
                        'x' => 4,
                        'u' => 6,
                        'U' => 10,
                        _ => 2,
                    },
                    _ => 1,
                };
            }
            out.push(i);
        }
        _ => out.extend(0..=raw.len()),
    }
    Some(out)
}

/// 1-based line and column of a node.
pub(crate) fn pos(node: &Node) -> (usize, usize) {
    (node.span.start.line(), node.span.start.col() + 1)
}

/// The node's data, through any tag (policies give tags no meaning).
fn data(node: &Node) -> &YamlDataOwned<Node> {
    match &node.data {
        YamlDataOwned::Tagged(_, inner) => data(inner),
        d => d,
    }
}

pub(crate) fn is_null(node: &Node) -> bool {
    matches!(data(node), YamlDataOwned::Value(ScalarOwned::Null))
}

pub(crate) fn is_mapping(node: &Node) -> bool {
    matches!(data(node), YamlDataOwned::Mapping(_))
}

/// A mapping's value for a string key, without reporting anything.
pub(crate) fn lookup<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    let YamlDataOwned::Mapping(map) = data(node) else {
        return None;
    };
    map.iter()
        .find(|(k, _)| as_str(k) == Some(key))
        .map(|(_, v)| v)
}

pub(crate) fn as_str(node: &Node) -> Option<&str> {
    match data(node) {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s),
        _ => None,
    }
}

pub(crate) fn as_seq(node: &Node) -> Option<&[Node]> {
    match data(node) {
        YamlDataOwned::Sequence(s) => Some(s),
        _ => None,
    }
}

/// What a node is, for "must be X, found Y".
pub(crate) fn describe(node: &Node) -> &'static str {
    match data(node) {
        YamlDataOwned::Value(ScalarOwned::Null) => "nothing",
        YamlDataOwned::Value(ScalarOwned::Boolean(_)) => "true/false",
        YamlDataOwned::Value(ScalarOwned::Integer(_)) => "an integer",
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(_)) => "a number",
        YamlDataOwned::Value(ScalarOwned::String(_)) => "a string",
        YamlDataOwned::Sequence(_) => "a list",
        YamlDataOwned::Mapping(_) => "a mapping",
        _ => "an unsupported value",
    }
}

/// A mapping's fields, each taken by name; unknown ones are reported when
/// it is made.
pub(crate) struct Fields<'n> {
    node: &'n Node,
    path: String,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// `None` (reported) when `node` is not a mapping.
    pub fn new(ctx: &mut Ctx, node: &'n Node, path: &str, known: &[&str]) -> Option<Self> {
        let YamlDataOwned::Mapping(map) = data(node) else {
            ctx.error(
                node,
                format!("{path}: must be a mapping, found {}", describe(node)),
            );
            return None;
        };
        let mut entries = Vec::new();
        for (k, v) in map {
            let Some(key) = as_str(k) else {
                ctx.error(
                    k,
                    format!("{path}: keys must be strings, found {}", describe(k)),
                );
                continue;
            };
            if !known.contains(&key) {
                ctx.error(
                    k,
                    format!(
                        "{path}: unknown field `{key}`{}",
                        did_you_mean(key, known.iter().copied())
                    ),
                );
                continue;
            }
            entries.push((key, k, v));
        }
        Some(Fields {
            node,
            path: path.to_string(),
            entries,
        })
    }

    pub fn node(&self) -> &'n Node {
        self.node
    }

    /// The mapping's own path.
    pub fn here(&self) -> &str {
        &self.path
    }

    pub fn path(&self, field: &str) -> String {
        format!("{}.{field}", self.path)
    }

    /// A field's value; an explicit null counts as absent.
    pub fn get(&self, field: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, v)| *k == field && !is_null(v))
            .map(|(_, _, v)| *v)
    }

    /// The key node of a field, for errors about the field as a whole.
    pub fn key(&self, field: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == field)
            .map(|(_, k, _)| *k)
    }

    pub fn required(&self, ctx: &mut Ctx, field: &str) -> Option<&'n Node> {
        let v = self.get(field);
        if v.is_none() {
            let at = self.key(field).unwrap_or(self.node);
            ctx.error(
                at,
                format!("{}: missing required field `{field}`", self.path),
            );
        }
        v
    }

    pub fn string(&self, ctx: &mut Ctx, field: &str, required: bool) -> Option<String> {
        let node = if required {
            self.required(ctx, field)?
        } else {
            self.get(field)?
        };
        string(ctx, node, &self.path(field))
    }

    pub fn duration(&self, ctx: &mut Ctx, field: &str) -> Option<Duration> {
        duration(ctx, self.get(field)?, &self.path(field))
    }

    pub fn integer(&self, ctx: &mut Ctx, field: &str) -> Option<i64> {
        let node = self.get(field)?;
        match data(node) {
            YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(*i),
            _ => {
                let path = self.path(field);
                ctx.error(
                    node,
                    format!("{path}: must be an integer, found {}", describe(node)),
                );
                None
            }
        }
    }

    pub fn number(&self, ctx: &mut Ctx, field: &str) -> Option<f64> {
        let node = self.get(field)?;
        match data(node) {
            YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(*i as f64),
            YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(f.0),
            _ => {
                let path = self.path(field);
                ctx.error(
                    node,
                    format!("{path}: must be a number, found {}", describe(node)),
                );
                None
            }
        }
    }

    pub fn boolean(&self, ctx: &mut Ctx, field: &str) -> Option<bool> {
        let node = self.get(field)?;
        match data(node) {
            YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(*b),
            _ => {
                let path = self.path(field);
                ctx.error(
                    node,
                    format!("{path}: must be true or false, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// One of `known`, with a suggestion when it is not.
    pub fn choice(
        &self,
        ctx: &mut Ctx,
        field: &str,
        known: &[&'static str],
        required: bool,
    ) -> Option<&'static str> {
        let node = if required {
            self.required(ctx, field)?
        } else {
            self.get(field)?
        };
        choice(ctx, node, &self.path(field), known)
    }

    /// A mapping of strings to strings (labels, headers, environment).
    pub fn string_map(&self, ctx: &mut Ctx, field: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(node) = self.get(field) else {
            return out;
        };
        let path = self.path(field);
        let YamlDataOwned::Mapping(map) = data(node) else {
            ctx.error(
                node,
                format!("{path}: must be a mapping, found {}", describe(node)),
            );
            return out;
        };
        for (k, v) in map {
            match (as_str(k), as_str(v)) {
                (Some(k), Some(v)) => {
                    out.insert(k.to_string(), v.to_string());
                }
                (None, _) => ctx.error(
                    k,
                    format!("{path}: keys must be strings, found {}", describe(k)),
                ),
                (Some(k), None) => ctx.error(
                    v,
                    format!(
                        "{path}.{k}: must be a string, found {} (quote it)",
                        describe(v)
                    ),
                ),
            }
        }
        out
    }
}

pub(crate) fn string(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    match as_str(node) {
        Some(s) => Some(s.to_string()),
        None => {
            ctx.error(
                node,
                format!("{path}: must be a string, found {}", describe(node)),
            );
            None
        }
    }
}

pub(crate) fn choice(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    known: &[&'static str],
) -> Option<&'static str> {
    let s = string(ctx, node, path)?;
    if let Some(k) = known.iter().find(|k| **k == s) {
        return Some(k);
    }
    ctx.error(
        node,
        format!(
            "{path}: unknown value `{s}`{} (known: {})",
            did_you_mean(&s, known.iter().copied()),
            known.join(", ")
        ),
    );
    None
}

pub(crate) fn duration(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Duration> {
    match data(node) {
        YamlDataOwned::Value(ScalarOwned::String(s)) => match crate::duration::parse(s) {
            Ok(d) => Some(d),
            Err(why) => {
                ctx.error(
                    node,
                    format!("{path}: `{s}` is not a duration ({why}); write e.g. 30s, 10m, 1h30m"),
                );
                None
            }
        },
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => {
            ctx.error(node, format!("{path}: {i} needs a unit, like {i}s or {i}m"));
            None
        }
        _ => {
            ctx.error(
                node,
                format!(
                    "{path}: must be a duration like 10m, found {}",
                    describe(node)
                ),
            );
            None
        }
    }
}

/// Any YAML value as JSON (a webhook body, a flag value).
pub(crate) fn to_json(ctx: &mut Ctx, node: &Node, path: &str) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match data(node) {
        YamlDataOwned::Value(ScalarOwned::Null) => J::Null,
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => J::Bool(*b),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => J::from(*i),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => {
            match serde_json::Number::from_f64(f.0) {
                Some(n) => J::Number(n),
                None => {
                    ctx.error(node, format!("{path}: {} has no JSON form", f.0));
                    return None;
                }
            }
        }
        YamlDataOwned::Value(ScalarOwned::String(s)) => J::String(s.clone()),
        YamlDataOwned::Sequence(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.push(to_json(ctx, item, &format!("{path}[{i}]"))?);
            }
            J::Array(out)
        }
        YamlDataOwned::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let Some(key) = as_str(k) else {
                    ctx.error(
                        k,
                        format!("{path}: keys must be strings, found {}", describe(k)),
                    );
                    return None;
                };
                out.insert(key.to_string(), to_json(ctx, v, &format!("{path}.{key}"))?);
            }
            J::Object(out)
        }
        _ => {
            ctx.error(node, format!("{path}: unsupported value"));
            return None;
        }
    })
}
