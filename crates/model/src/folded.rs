//! Folded stacks, as written by flamegraph.pl's and inferno's collapse tools:
//! one line per stack, `root;caller;...;leaf COUNT`.
//!
//! Encoding sums samples with the same line, drops lines whose sum is zero
//! and sorts the lines (by bytes) so output is deterministic. A sample with a
//! `process_name` label gets that name as an extra root frame.
//!
//! # Escaping
//!
//! Frame names are written as they are, except for the few characters that
//! would change how a line splits, which become backslash escapes:
//!
//! * `;` is written `\;`;
//! * ASCII control characters (newline, tab, ...) are written `\xHH`, two
//!   lowercase hex digits;
//! * a space ending the leaf frame is written `\x20` (it would be taken for
//!   the separator before the count), and a `#` starting a line `\x23` (the
//!   line would be taken for a comment);
//! * a backslash is written `\\` only where it would otherwise start one of
//!   these escapes: before `\`, `;`, a control character, an escaped space,
//!   `x` followed by two hex digits, or at the end of a name.
//!
//! Decoding turns `\\`, `\;` and `\xHH` back into what they stand for and
//! keeps any other backslash as it is, so folded files from other tools,
//! which do not escape, read correctly unless they happen to contain one of
//! those three sequences. The count is the last space- or tab-separated
//! token and must be an integer; blank lines and lines whose first character
//! is `#` are skipped; `\r\n` line ends are accepted. An empty stack (a line
//! that is just ` COUNT`) is a sample with no frames.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::num::IntErrorKind;

use crate::{labels, ModelError, Profile, ValueType};

/// Where a frame sits in its line; escaping depends on it.
#[derive(Clone, Copy)]
struct FramePosition {
    first: bool,
    last: bool,
}

/// How frame names are turned into line text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Style {
    /// Reversible escapes, for folded files.
    Escaped,
    /// Look-alike replacements, for a flame graph's labels, which are never
    /// parsed back: `;` → `；`, control characters → `�`, a leading `#` →
    /// `＃`, spaces in the leaf → no-break spaces (inferno would otherwise
    /// read a leaf ending in ` 12` as a second count).
    Display,
}

/// Encodes value `value_index` of `p` as folded stacks (see the module docs).
pub fn encode(p: &Profile, value_index: usize) -> Result<String, ModelError> {
    let mut out = String::new();
    for (stack, count) in lines(p, value_index, Style::Escaped)? {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{stack} {count}");
    }
    Ok(out)
}

/// The folded lines of `p` as (stack text, summed value), sorted by stack
/// text, zero sums left out.
pub(crate) fn lines(
    p: &Profile,
    value_index: usize,
    style: Style,
) -> Result<Vec<(String, i64)>, ModelError> {
    if value_index >= p.sample_types.len() {
        return Err(ModelError::NoSuchValue {
            index: value_index,
            count: p.sample_types.len(),
        });
    }
    let mut sums: HashMap<String, i64> = HashMap::new();
    let mut line = String::new();
    let mut names: Vec<&str> = Vec::new();
    for sample in p.samples() {
        let value = sample.values.get(value_index).copied().unwrap_or(0);
        if value == 0 {
            continue;
        }
        names.clear();
        if let Some(process) = p.label(sample, labels::PROCESS_NAME) {
            names.push(process);
        }
        names.extend(p.root_first_names(sample.stack));
        line.clear();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                line.push(';');
            }
            let position = FramePosition {
                first: i == 0,
                last: i + 1 == names.len(),
            };
            match style {
                Style::Escaped => escape_frame(name, position, &mut line),
                Style::Display => display_frame(name, position, &mut line),
            }
        }
        let sum = sums.entry(line.clone()).or_insert(0);
        *sum = sum.checked_add(value).ok_or_else(|| ModelError::Overflow {
            context: format!("the folded stack `{line}`"),
        })?;
    }
    let mut out: Vec<(String, i64)> = sums.into_iter().filter(|&(_, v)| v != 0).collect();
    out.sort_unstable();
    Ok(out)
}

fn escape_frame(name: &str, at: FramePosition, out: &mut String) {
    for (i, c) in name.char_indices() {
        let rest = &name[i + c.len_utf8()..];
        match c {
            ';' => out.push_str("\\;"),
            '\\' if backslash_needs_escape(rest, at.last) => out.push_str("\\\\"),
            '#' if at.first && i == 0 => out.push_str("\\x23"),
            ' ' if at.last && rest.is_empty() => out.push_str("\\x20"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Whether a backslash followed by `rest` (the remainder of its frame name)
/// would be read as the start of an escape if written bare.
fn backslash_needs_escape(rest: &str, last_frame: bool) -> bool {
    let mut chars = rest.chars();
    match chars.next() {
        // Followed by the `;` separator, or the end of the stack.
        None => true,
        Some('\\' | ';') => true,
        Some(c) if c.is_ascii_control() => true,
        Some(' ') => last_frame && chars.as_str().is_empty(),
        Some('x') => hex_pair(chars.as_str()).is_some(),
        Some(_) => false,
    }
}

/// The byte written as two hex digits at the start of `s`, if any.
fn hex_pair(s: &str) -> Option<u8> {
    let digits = s.get(..2)?;
    if digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(digits, 16).ok()
    } else {
        None
    }
}

fn display_frame(name: &str, at: FramePosition, out: &mut String) {
    for (i, c) in name.char_indices() {
        out.push(match c {
            ';' => '\u{ff1b}',
            '#' if at.first && i == 0 => '\u{ff03}',
            ' ' if at.last => '\u{a0}',
            c if c.is_ascii_control() => '\u{fffd}',
            c => c,
        });
    }
}

/// Splits a stack's text into unescaped frame names, root first.
fn split_frames(stack: &str) -> Vec<String> {
    if stack.is_empty() {
        return Vec::new();
    }
    let mut frames = Vec::new();
    let mut current = String::new();
    let mut rest = stack;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            ';' => frames.push(std::mem::take(&mut current)),
            '\\' => {
                if let Some(r) = rest.strip_prefix('\\') {
                    current.push('\\');
                    rest = r;
                } else if let Some(r) = rest.strip_prefix(';') {
                    current.push(';');
                    rest = r;
                } else if let Some((byte, r)) = rest
                    .strip_prefix('x')
                    .and_then(|r| Some((hex_pair(r)?, r.get(2..)?)))
                {
                    current.push(char::from(byte));
                    rest = r;
                } else {
                    current.push('\\');
                }
            }
            c => current.push(c),
        }
    }
    frames.push(current);
    frames
}

fn line_error(line: usize, message: impl Into<String>) -> ModelError {
    ModelError::Folded {
        line,
        message: message.into(),
    }
}

fn parse_count(text: &str, line: usize) -> Result<i64, ModelError> {
    match text.parse::<i64>() {
        Ok(v) => Ok(v),
        Err(e)
            if matches!(
                e.kind(),
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
            ) =>
        {
            Err(line_error(
                line,
                format!("sample count `{text}` does not fit in a 64-bit integer"),
            ))
        }
        Err(_) if text.bytes().any(|b| b.is_ascii_digit()) && text.parse::<f64>().is_ok() => Err(
            line_error(line, format!("sample count `{text}` is not a whole number")),
        ),
        Err(_) => Err(line_error(
            line,
            format!("`{text}` is not a sample count; expected `frame;frame;...;leaf COUNT`"),
        )),
    }
}

/// Decodes folded stacks into a profile with one sample type,
/// `("samples", "count")`, whose frames are function-only locations.
pub fn decode(bytes: &[u8]) -> Result<Profile, ModelError> {
    let mut p = Profile::new(vec![ValueType::new("samples", "count")]);
    let no_labels = p.add_label_set(Vec::<(String, String)>::new());
    let mut stack = Vec::new();
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = n + 1;
        let line = std::str::from_utf8(raw).map_err(|e| {
            line_error(
                line_no,
                format!(
                    "not valid UTF-8 (bad byte at column {})",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.trim_end_matches([' ', '\t', '\r']);
        let Some(sep) = line.rfind([' ', '\t']) else {
            return Err(line_error(
                line_no,
                "no sample count; expected `frame;frame;...;leaf COUNT`",
            ));
        };
        let count = parse_count(&line[sep + 1..], line_no)?;
        let text = line[..sep].trim_end_matches([' ', '\t']);
        stack.clear();
        for name in split_frames(text).iter().rev() {
            let f = p.add_function_named(name);
            stack.push(p.add_function_location(f));
        }
        let stack_id = p.add_stack(&stack);
        if !p.try_add_sample(stack_id, no_labels, &[count]) {
            return Err(line_error(
                line_no,
                "adding this count to the same stack on an earlier line overflows a 64-bit integer",
            ));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Location, Mapping};

    /// Root-first frame names, labels, value.
    type TestStack<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i64);

    fn profile_of(stacks: &[TestStack<'_>]) -> Profile {
        let mut p = Profile::new(vec![ValueType::new("samples", "count")]);
        for (names, labels, count) in stacks {
            let mut ids = Vec::new();
            for name in names.iter().rev() {
                let f = p.add_function_named(name);
                ids.push(p.add_function_location(f));
            }
            let stack = p.add_stack(&ids);
            let labels = p.add_label_set(labels.iter().copied());
            p.add_sample(stack, labels, &[*count]);
        }
        p
    }

    fn root_first_stacks(p: &Profile) -> Vec<(Vec<String>, i64)> {
        p.samples()
            .iter()
            .map(|s| {
                let names = p.root_first_names(s.stack).into_iter().map(String::from);
                (names.collect(), s.values[0])
            })
            .collect()
    }

    #[test]
    fn lines_are_summed_sorted_and_prefixed_by_process() {
        let p = profile_of(&[
            (&["main", "b"], &[("process_name", "app"), ("tid", "1")], 2),
            (&["main", "a"], &[], 5),
            (&["main", "b"], &[("process_name", "app"), ("tid", "2")], 3),
            (&["main", "c"], &[], 0),
            (&["main"], &[("process_name", "other")], 1),
        ]);
        assert_eq!(
            encode(&p, 0).unwrap(),
            "app;main;b 5\nmain;a 5\nother;main 1\n"
        );
    }

    #[test]
    fn inlined_and_unnamed_frames_are_expanded_root_first() {
        let mut p = Profile::new(vec![ValueType::new("samples", "count")]);
        let outer = p.add_function_named("outer");
        let inner = p.add_function_named("inner");
        let m = p.add_mapping(Mapping {
            start: 0x1000,
            limit: 0x2000,
            file: "/lib/libx.so".into(),
            ..Default::default()
        });
        let inlined = p.add_location(Location {
            mapping: Some(m),
            address: 0x1100,
            lines: vec![
                crate::Line {
                    function: inner,
                    line: 1,
                },
                crate::Line {
                    function: outer,
                    line: 2,
                },
            ],
        });
        let unnamed = p.add_location(Location {
            mapping: Some(m),
            address: 0x1234,
            lines: vec![],
        });
        let stack = p.add_stack(&[unnamed, inlined]);
        let ls = p.add_label_set(Vec::<(String, String)>::new());
        p.add_sample(stack, ls, &[4]);
        assert_eq!(encode(&p, 0).unwrap(), "outer;inner;[libx.so] 4\n");
    }

    #[test]
    fn missing_value_index_is_an_error() {
        let p = profile_of(&[(&["a"], &[], 1)]);
        assert_eq!(
            encode(&p, 1).unwrap_err().to_string(),
            "the profile has no sample type 1 (it has 1)"
        );
    }

    #[test]
    fn canonical_text_round_trips_byte_for_byte() {
        let text = " 4\na;b;c 3\na;b;d 1\nb 7\nx\\;y;z\\x0a 2\n";
        let p = decode(text.as_bytes()).unwrap();
        assert_eq!(encode(&p, 0).unwrap(), text);
        assert_eq!(p.total(0), 17);
    }

    #[test]
    fn decode_builds_function_only_locations_leaf_first() {
        let p = decode(b"main;work;leaf 3\n").unwrap();
        assert_eq!(p.sample_types, vec![ValueType::new("samples", "count")]);
        let stack = p.stack(p.samples()[0].stack);
        let leaf = &p.locations()[stack[0] as usize];
        assert_eq!(leaf.mapping, None);
        assert_eq!(leaf.address, 0);
        assert_eq!(leaf.lines.len(), 1);
        assert_eq!(p.functions()[leaf.lines[0].function as usize].name, "leaf");
    }

    #[test]
    fn tricky_names_survive_a_round_trip_in_every_position() {
        let alphabet = ['\\', ';', 'x', '4', 'f', ' ', '#', '\n', '\t', 'a'];
        let mut names = vec![String::new()];
        for a in alphabet {
            names.push(a.to_string());
            for b in alphabet {
                names.push(format!("{a}{b}"));
                for c in alphabet {
                    names.push(format!("{a}{b}{c}"));
                }
            }
        }
        names.push("C:\\x41\\x4".into());
        for name in &names {
            // Each name as root, middle and leaf; "m" keeps stacks non-empty.
            let stacks: [Vec<&str>; 3] = [vec![name, "m"], vec!["m", name, "m"], vec!["m", name]];
            for stack in stacks {
                let p = profile_of(&[(&stack, &[], 1)]);
                let text = encode(&p, 0).unwrap();
                assert_eq!(text.lines().count(), 1, "{name:?} made {text:?}");
                let back = decode(text.as_bytes()).unwrap();
                assert_eq!(
                    root_first_stacks(&back),
                    vec![(stack.iter().map(|s| s.to_string()).collect(), 1)],
                    "{name:?} encoded as {text:?}"
                );
                assert_eq!(encode(&back, 0).unwrap(), text);
            }
        }
    }

    #[test]
    fn unescaped_backslashes_from_other_tools_are_kept() {
        let p = decode(b"C:\\work\\app.exe;f\\g 2\n").unwrap();
        assert_eq!(
            root_first_stacks(&p),
            vec![(vec!["C:\\work\\app.exe".to_string(), "f\\g".to_string()], 2)]
        );
        assert_eq!(encode(&p, 0).unwrap(), "C:\\work\\app.exe;f\\g 2\n");
    }

    #[test]
    fn blank_comment_crlf_and_tab_separated_lines_are_read() {
        let p = decode(b"# comment\n\n  \nmain;a 2\r\nmain;a\t3\nmain;b one two 4  \n").unwrap();
        assert_eq!(encode(&p, 0).unwrap(), "main;a 5\nmain;b one two 4\n");
    }

    fn err(text: &[u8]) -> String {
        decode(text).unwrap_err().to_string()
    }

    #[test]
    fn float_counts_are_rejected_with_the_line() {
        assert_eq!(
            err(b"a 1\n# c\nmain;a 1.5\n"),
            "folded stacks, line 3: sample count `1.5` is not a whole number"
        );
    }

    #[test]
    fn a_line_without_a_count_is_named() {
        assert_eq!(
            err(b"a 1\nmain;a\n"),
            "folded stacks, line 2: no sample count; expected `frame;frame;...;leaf COUNT`"
        );
        assert_eq!(
            err(b"main;a lots\n"),
            "folded stacks, line 1: `lots` is not a sample count; expected `frame;frame;...;leaf COUNT`"
        );
        assert_eq!(
            err(b"main;a nan\n"),
            "folded stacks, line 1: `nan` is not a sample count; expected `frame;frame;...;leaf COUNT`"
        );
    }

    #[test]
    fn huge_counts_and_overflowing_sums_are_errors() {
        assert_eq!(
            err(b"a 99999999999999999999\n"),
            "folded stacks, line 1: sample count `99999999999999999999` does not fit in a 64-bit integer"
        );
        assert_eq!(
            err(b"a 9223372036854775807\nb 1\na 1\n"),
            "folded stacks, line 3: adding this count to the same stack on an earlier line \
             overflows a 64-bit integer"
        );
    }

    #[test]
    fn invalid_utf8_is_reported_with_line_and_column() {
        assert_eq!(
            err(b"a 1\nb 2\nma\xffin 3\n"),
            "folded stacks, line 3: not valid UTF-8 (bad byte at column 3)"
        );
    }

    #[test]
    fn no_prefix_of_escaped_text_makes_the_decoder_panic() {
        let text = "a\\x4;b\\;c\\x0a\\x20 5\n\\x23x;\u{e9}\u{1f600} -2\n 3\n# c\n";
        for end in 0..=text.len() {
            let _ = decode(&text.as_bytes()[..end]);
        }
    }

    #[test]
    fn display_style_keeps_lines_parseable_by_inferno() {
        let p = profile_of(&[(&["#root", "a;b", "leaf 12"], &[], 3)]);
        let lines = lines(&p, 0, Style::Display).unwrap();
        assert_eq!(
            lines,
            vec![("\u{ff03}root;a\u{ff1b}b;leaf\u{a0}12".to_string(), 3)]
        );
    }
}
