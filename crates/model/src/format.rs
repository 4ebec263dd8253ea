//! Choosing a codec by name, file extension or content.

use crate::{folded, pprof, speedscope, svg, ModelError, Profile};

/// A profile file format perfpilot reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Gzipped pprof protobuf (`.pb.gz`), what `go tool pprof` reads.
    Pprof,
    /// Folded stacks (`.folded`): `frame;frame;leaf COUNT` per line.
    Folded,
    /// speedscope's JSON file format (`.json`).
    Speedscope,
    /// An SVG flame graph (`.svg`); write only.
    Svg,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Pprof,
        Format::Folded,
        Format::Speedscope,
        Format::Svg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Pprof => "pprof",
            Format::Folded => "folded",
            Format::Speedscope => "speedscope",
            Format::Svg => "svg",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The format a file name implies: `.pb.gz`/`.pb`/`.pprof` → pprof,
    /// `.folded`/`.txt` → folded, `.json` → speedscope, `.svg` → SVG.
    pub fn from_file_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".pb.gz") || lower.ends_with(".pb") || lower.ends_with(".pprof") {
            Some(Format::Pprof)
        } else if lower.ends_with(".folded") || lower.ends_with(".txt") {
            Some(Format::Folded)
        } else if lower.ends_with(".json") || lower.ends_with(".speedscope") {
            Some(Format::Speedscope)
        } else if lower.ends_with(".svg") {
            Some(Format::Svg)
        } else {
            None
        }
    }

    /// Guesses the format of existing bytes: gzip or protobuf → pprof,
    /// a JSON object → speedscope, `<` → SVG, anything else → folded.
    pub fn sniff(bytes: &[u8]) -> Format {
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|i| bytes[i]);
        match (bytes.first(), start) {
            (Some(0x1f), _) if bytes.get(1) == Some(&0x8b) => Format::Pprof,
            (_, Some(b'{')) => Format::Speedscope,
            (_, Some(b'<')) => Format::Svg,
            // A serialized Profile starts with field 1 (sample_type, wire type 2).
            (Some(0x0a), _) => Format::Pprof,
            _ => Format::Folded,
        }
    }

    pub fn is_readable(self) -> bool {
        self != Format::Svg
    }

    /// Encodes `profile`; `title` is used by formats that show one.
    pub fn encode(self, profile: &Profile, title: &str) -> Result<Vec<u8>, ModelError> {
        match self {
            Format::Pprof => pprof::encode(profile),
            Format::Folded => {
                Ok(folded::encode(profile, profile.default_value_index())?.into_bytes())
            }
            Format::Speedscope => speedscope::encode(profile, title),
            Format::Svg => svg::encode(profile, title),
        }
    }

    pub fn decode(self, bytes: &[u8]) -> Result<Profile, ModelError> {
        match self {
            Format::Pprof => pprof::decode(bytes),
            Format::Folded => folded::decode(bytes),
            Format::Speedscope => speedscope::decode(bytes),
            Format::Svg => Err(ModelError::WriteOnly { format: "SVG" }),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_to_formats() {
        assert_eq!(Format::from_file_name("cpu.pb.gz"), Some(Format::Pprof));
        assert_eq!(Format::from_file_name("x.FOLDED"), Some(Format::Folded));
        assert_eq!(Format::from_file_name("x.json"), Some(Format::Speedscope));
        assert_eq!(Format::from_file_name("x.svg"), Some(Format::Svg));
        assert_eq!(Format::from_file_name("x.bin"), None);
    }

    #[test]
    fn sniffing_recognises_each_format() {
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8, 0]), Format::Pprof);
        assert_eq!(Format::sniff(b"  {\"a\":1}"), Format::Speedscope);
        assert_eq!(Format::sniff(b"main;leaf 3\n"), Format::Folded);
        assert_eq!(Format::sniff(b"<?xml"), Format::Svg);
    }
}
