//! A strict `multipart/form-data` (RFC 7578) reader for bodies already in
//! memory, as pyroscope-go and older Pyroscope SDKs post them to `/ingest`:
//!
//! ```text
//! Content-Type: multipart/form-data; boundary=XYZ
//!
//! --XYZ\r\n
//! Content-Disposition: form-data; name="profile"; filename="profile.pprof"\r\n
//! Content-Type: application/octet-stream\r\n
//! \r\n
//! <bytes>\r\n
//! --XYZ\r\n
//! Content-Disposition: form-data; name="sample_type_config"; filename="sample_type_config.json"\r\n
//! \r\n
//! {"alloc_objects":{"units":"objects"}}\r\n
//! --XYZ--\r\n
//! ```
//!
//! Why not a crate: `multer` is built on async streams (it would pull an
//! async runtime into a crate of pure functions), and the synchronous
//! `multipart` crate is unmaintained. The whole body is already in memory
//! and bounded by the server, so a focused parser that borrows the parts
//! from it, caps the number of parts and the size of part headers, and
//! rejects anything malformed with a message saying where, is small and
//! easier to audit than either.

use memchr::memmem;

use crate::error::WireError;

/// At most this many parts; Pyroscope's SDKs send three.
const MAX_PARTS: usize = 16;
/// At most this many bytes of headers per part.
const MAX_HEADER_BYTES: usize = 8 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub body: &'a [u8],
}

fn err(message: impl Into<String>) -> WireError {
    WireError::Multipart(message.into())
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, WireError> {
    let mut params = content_type.split(';');
    let mime = params.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(err(format!(
            "content type {mime:?} is not multipart/form-data"
        )));
    }
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty() || v.len() > 70 {
                return Err(err(format!(
                    "boundary {v:?} must be 1 to 70 characters long"
                )));
            }
            return Ok(v.to_string());
        }
    }
    Err(err("the content type has no boundary parameter"))
}

/// Splits a body into its parts. Part names must be unique.
pub fn parse<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, WireError> {
    let boundary = boundary(content_type)?;
    let dash_boundary = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let finder = memmem::Finder::new(delimiter.as_bytes());

    // The first boundary may start the body, or follow a preamble and CRLF.
    let mut pos = if body.starts_with(dash_boundary.as_bytes()) {
        dash_boundary.len()
    } else {
        match finder.find(body) {
            Some(i) => i + delimiter.len(),
            None => return Err(err(format!("no boundary {boundary:?} found"))),
        }
    };

    let mut parts: Vec<Part<'a>> = Vec::new();
    loop {
        let rest = body.get(pos..).unwrap_or(&[]);
        if rest.starts_with(b"--") {
            // The close delimiter; anything after it is epilogue.
            return Ok(parts);
        }
        // Transport padding (spaces/tabs) may follow a boundary.
        let skip = rest
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        let rest = rest.get(skip..).unwrap_or(&[]);
        let Some(after_crlf) = rest.strip_prefix(b"\r\n") else {
            return Err(err(format!(
                "part {}: expected CRLF after the boundary at byte {}",
                parts.len(),
                pos
            )));
        };
        if parts.len() == MAX_PARTS {
            return Err(err(format!("more than {MAX_PARTS} parts")));
        }
        let header_start = pos + skip + 2;
        let header_end = memmem::find(
            after_crlf.get(..MAX_HEADER_BYTES + 4).unwrap_or(after_crlf),
            b"\r\n\r\n",
        );
        let (headers, content_start) = match header_end {
            Some(i) => (after_crlf.get(..i).unwrap_or(&[]), header_start + i + 4),
            // A part with no headers at all starts with the empty line.
            None if after_crlf.starts_with(b"\r\n") => (&[][..], header_start + 2),
            None => {
                return Err(err(format!(
                "part {}: headers do not end with an empty line within {MAX_HEADER_BYTES} bytes",
                parts.len()
            )))
            }
        };
        let (name, filename, content_type) = part_headers(parts.len(), headers)?;
        let content = body.get(content_start..).unwrap_or(&[]);
        let Some(end) = finder.find(content) else {
            return Err(err(format!(
                "part {} ({name:?}) is not terminated by a boundary (truncated body?)",
                parts.len()
            )));
        };
        if parts.iter().any(|p| p.name == name) {
            return Err(err(format!("part {name:?} appears more than once")));
        }
        parts.push(Part {
            name,
            filename,
            content_type,
            body: content.get(..end).unwrap_or(&[]),
        });
        pos = content_start + end + delimiter.len();
    }
}

type PartHeaders = (String, Option<String>, Option<String>);

fn part_headers(index: usize, raw: &[u8]) -> Result<PartHeaders, WireError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| err(format!("part {index}: headers are not UTF-8")))?;
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in text.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(err(format!("part {index}: malformed header line {line:?}")));
        };
        let key = key.trim();
        let value = value.trim();
        if key.eq_ignore_ascii_case("content-disposition") {
            let mut params = value.split(';');
            let kind = params.next().unwrap_or("").trim();
            if !kind.eq_ignore_ascii_case("form-data") {
                return Err(err(format!(
                    "part {index}: Content-Disposition is {kind:?}, not form-data"
                )));
            }
            for p in params {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = unquote(v.trim());
                match k.trim().to_ascii_lowercase().as_str() {
                    "name" => name = Some(v),
                    "filename" => filename = Some(v),
                    _ => {}
                }
            }
        } else if key.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_string());
        }
    }
    let name = name.ok_or_else(|| {
        err(format!(
            "part {index}: no Content-Disposition header with a name"
        ))
    })?;
    Ok((name, filename, content_type))
}

/// Removes quotes and the backslash escapes Go's and browsers' writers use.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=abc123";

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, data) in parts {
            b.extend_from_slice(b"--abc123\r\n");
            b.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}.bin\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--abc123--\r\n");
        b
    }

    #[test]
    fn parses_parts_with_binary_content() {
        let data: &[u8] = b"\x1f\x8b\r\n--abc12\r\n\0";
        let b = body(&[("profile", data), ("prev_profile", b"")]);
        let parts = parse(CT, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "profile");
        assert_eq!(parts[0].filename.as_deref(), Some("profile.bin"));
        assert_eq!(
            parts[0].content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(parts[0].body, data);
        assert_eq!(parts[1].body, b"");
    }

    #[test]
    fn boundary_parameter_forms() {
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; Boundary=\"a b\"").unwrap(),
            "a b"
        );
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary("application/json; boundary=x").is_err());
    }

    #[test]
    fn preamble_is_skipped() {
        let mut b = b"preamble text\r\n".to_vec();
        b.extend(body(&[("profile", b"x")]));
        assert_eq!(parse(CT, &b).unwrap()[0].body, b"x");
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let b = body(&[("profile", b"data")]);
        let truncated = &b[..b.len() - 16];
        assert_eq!(
            parse(CT, truncated).unwrap_err().to_string(),
            "multipart/form-data body: part 0 (\"profile\") is not terminated by a boundary (truncated body?)"
        );
        let dup = body(&[("profile", b"a"), ("profile", b"b")]);
        assert!(parse(CT, &dup)
            .unwrap_err()
            .to_string()
            .contains("more than once"));
        let no_name = b"--abc123\r\nContent-Type: x\r\n\r\ndata\r\n--abc123--".to_vec();
        assert!(parse(CT, &no_name)
            .unwrap_err()
            .to_string()
            .contains("no Content-Disposition"));
        assert!(parse(CT, b"no boundary here").is_err());
        let many: Vec<(&str, &[u8])> = (0..17)
            .map(|i| {
                (
                    [
                        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o",
                        "p", "q",
                    ][i],
                    &b"x"[..],
                )
            })
            .collect();
        assert!(parse(CT, &body(&many))
            .unwrap_err()
            .to_string()
            .contains("more than 16 parts"));
    }
}
