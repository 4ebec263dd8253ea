//! SVG flame graphs, drawn by inferno from the profile's folded lines.
//!
//! The lines are those of [`crate::folded`] for the default value
//! ([`Profile::default_value_index`]), with frame names made safe for
//! inferno's parser by look-alike characters rather than escapes, since
//! nobody parses them back (see `folded::Style::Display`). Lines with a
//! negative sum are left out: a flame graph cannot draw them. Colours are
//! chosen by hashing function names, so the same profile always gives the
//! same bytes.

use inferno::flamegraph::{self, Options};

use crate::folded::{self, Style};
use crate::{ModelError, Profile};

/// Renders `p` as an interactive SVG flame graph titled `title`.
pub fn encode(p: &Profile, title: &str) -> Result<Vec<u8>, ModelError> {
    let value_index = p.default_value_index();
    let lines: Vec<String> = folded::lines(p, value_index, Style::Display)?
        .into_iter()
        .filter(|&(_, count)| count > 0)
        .map(|(stack, count)| format!("{stack} {count}"))
        .collect();
    if lines.is_empty() {
        return Err(ModelError::Svg(
            "the profile has no samples with a positive value to draw".into(),
        ));
    }

    let mut options = Options::default();
    options.title = title.to_string();
    options.hash = true;
    // The unit is what the widths measure; "count" says less than the kind.
    if let Some(t) = p.sample_types.get(value_index) {
        options.count_name = if t.unit == "count" || t.unit.is_empty() {
            t.kind.clone()
        } else {
            t.unit.clone()
        };
    }
    let mut out = Vec::new();
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut out)
        .map_err(|e| ModelError::Svg(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValueType;

    fn profile(names: &[&[&str]], value: i64) -> Profile {
        let mut p = Profile::new(vec![ValueType::new("cpu", "nanoseconds")]);
        for stack in names {
            let mut ids = Vec::new();
            for name in stack.iter().rev() {
                let f = p.add_function_named(name);
                ids.push(p.add_function_location(f));
            }
            let s = p.add_stack(&ids);
            let ls = p.add_label_set([("process_name", "app")]);
            p.add_sample(s, ls, &[value]);
        }
        p
    }

    #[test]
    fn draws_every_frame_with_title_and_unit() {
        let p = profile(&[&["main", "work"], &["main", "a<b; c>"]], 5);
        let svg = String::from_utf8(encode(&p, "My <title>").unwrap()).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..100]);
        assert!(svg.contains("My &lt;title&gt;"));
        for frame in ["app", "main", "work", "a&lt;b\u{ff1b}\u{a0}c&gt;"] {
            assert!(
                svg.contains(&format!("<title>{frame} (")),
                "missing {frame}"
            );
        }
        assert!(svg.contains("10 nanoseconds"), "total not shown");
        assert_eq!(encode(&p, "My <title>").unwrap(), svg.as_bytes());
    }

    #[test]
    fn empty_or_negative_profiles_are_an_error() {
        let p = profile(&[&["main"]], -3);
        assert_eq!(
            encode(&p, "t").unwrap_err().to_string(),
            "SVG rendering failed: the profile has no samples with a positive value to draw"
        );
        let p = Profile::new(vec![]);
        assert!(matches!(
            encode(&p, "t"),
            Err(ModelError::NoSuchValue { index: 0, count: 0 })
        ));
    }
}
