//! Limits every decoder enforces, and the checks shared by all of them:
//! bounded gzip decompression, label validation, timestamp validation.
//!
//! The label rules follow Pyroscope's distributor (`pkg/validation/validate.go`
//! in grafana/pyroscope): at most 30 labels per series, names up to 1024
//! bytes, values up to 2048 bytes, and label names made of
//! `[a-zA-Z_][a-zA-Z0-9_.]*` (Pyroscope accepts dots, e.g. the SDKs'
//! `otel.scope.name`). A label with an empty value is the same as no label
//! and is dropped, as Pyroscope's label builder does.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::error::{shorten, WireError};

/// What a single request may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes all decompression in one request may produce (the body
    /// and every embedded gzipped profile together).
    pub max_decompressed_bytes: usize,
    /// Labels per stored series, `service_name` and `__profile_type__`
    /// included.
    pub max_labels_per_series: usize,
    pub max_label_name_len: usize,
    pub max_label_value_len: usize,
    /// (stack, value) samples per request, over all series.
    pub max_samples_per_request: usize,
    /// How far past `now_ms` a profile's timestamp may be.
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 64 << 20,
            max_labels_per_series: 30,
            max_label_name_len: 1024,
            max_label_value_len: 2048,
            max_samples_per_request: 2_000_000,
            max_future_ms: 10 * 60 * 1000,
        }
    }
}

/// The decompression allowance left for one request.
#[derive(Debug)]
pub(crate) struct Budget {
    remaining: usize,
    limit: usize,
}

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses a zstd body (perfpilot's agent sends its batches so: it
/// inflates several times faster than gzip), stopping at the cap.
pub fn decompress_zstd(bytes: &[u8], limits: &Limits, what: &str) -> Result<Vec<u8>, WireError> {
    let cap = limits.max_decompressed_bytes;
    let decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| WireError::Gzip {
        what: what.to_string(),
        message: format!("not zstd: {e}"),
    })?;
    let mut out = Vec::new();
    decoder
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| WireError::Gzip {
            what: what.to_string(),
            message: format!("bad zstd data: {e}"),
        })?;
    if out.len() > cap {
        return Err(WireError::TooLarge {
            what: what.to_string(),
            limit: cap,
        });
    }
    Ok(out)
}

impl Budget {
    pub(crate) fn new(limits: &Limits) -> Budget {
        Budget {
            remaining: limits.max_decompressed_bytes,
            limit: limits.max_decompressed_bytes,
        }
    }

    /// Decompresses gzip (one or more members), reading at most the
    /// remaining allowance plus one byte: a gzip bomb is stopped as soon as
    /// it passes the cap, and the output buffer never grows past it.
    pub(crate) fn gunzip(&mut self, bytes: &[u8], what: &str) -> Result<Vec<u8>, WireError> {
        let cap = self.remaining;
        let mut reader = MultiGzDecoder::new(bytes).take(cap as u64 + 1);
        let mut out: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(WireError::Gzip {
                        what: what.to_string(),
                        message: e.to_string(),
                    })
                }
            };
            let data = chunk.get(..n).unwrap_or(&[]);
            if out.len() + data.len() > cap {
                return Err(WireError::TooLarge {
                    what: what.to_string(),
                    limit: self.limit,
                });
            }
            if out.capacity() < out.len() + data.len() {
                // Grow geometrically, but never beyond the cap.
                let want = (out.capacity() * 2).max(out.len() + data.len()).min(cap);
                out.reserve_exact(want - out.len());
            }
            out.extend_from_slice(data);
        }
        self.remaining -= out.len();
        Ok(out)
    }

    /// The body as it is, or decompressed when `encoding` says gzip.
    pub(crate) fn decode_content<'a>(
        &mut self,
        encoding: Option<&str>,
        body: &'a [u8],
        what: &str,
    ) -> Result<std::borrow::Cow<'a, [u8]>, WireError> {
        match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(std::borrow::Cow::Borrowed(body)),
            Some("gzip") | Some("x-gzip") => Ok(std::borrow::Cow::Owned(self.gunzip(body, what)?)),
            Some(other) => Err(WireError::Unsupported(format!(
                "Content-Encoding {other:?}; only gzip and identity are accepted"
            ))),
        }
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_.]*`
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Checks one label; `what` names the series in messages.
pub(crate) fn check_label(
    what: &str,
    name: &str,
    value: &str,
    limits: &Limits,
) -> Result<(), WireError> {
    if name.len() > limits.max_label_name_len {
        return Err(WireError::label(
            what,
            name,
            format!(
                "name is {} bytes long; the limit is {} (max_label_name_len)",
                name.len(),
                limits.max_label_name_len
            ),
        ));
    }
    if !is_valid_label_name(name) {
        return Err(WireError::label(
            what,
            name,
            "invalid name; label names must match [a-zA-Z_][a-zA-Z0-9_.]*",
        ));
    }
    if value.len() > limits.max_label_value_len {
        return Err(WireError::label(
            what,
            name,
            format!(
                "value {:?} is {} bytes long; the limit is {} (max_label_value_len)",
                shorten(value),
                value.len(),
                limits.max_label_value_len
            ),
        ));
    }
    Ok(())
}

/// Validates a finished label set: count, names, lengths, the required
/// labels. The set must already be sorted and unique.
pub(crate) fn check_series_labels(
    what: &str,
    labels: &[(String, String)],
    limits: &Limits,
) -> Result<(), WireError> {
    if labels.len() > limits.max_labels_per_series {
        return Err(WireError::TooManyLabels {
            what: what.to_string(),
            count: labels.len(),
            limit: limits.max_labels_per_series,
        });
    }
    for (name, value) in labels {
        check_label(what, name, value, limits)?;
    }
    Ok(())
}

/// Rejects timestamps too far in the future.
pub(crate) fn check_time(
    what: &str,
    time_ms: i64,
    now_ms: i64,
    limits: &Limits,
) -> Result<(), WireError> {
    let ahead = time_ms.saturating_sub(now_ms);
    if ahead > limits.max_future_ms {
        return Err(WireError::FutureTimestamp {
            what: what.to_string(),
            time_ms,
            ahead_ms: ahead,
            limit_ms: limits.max_future_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn label_names() {
        for ok in [
            "a",
            "_",
            "service_name",
            "otel.scope.name",
            "A9_.x",
            "__name__",
        ] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "9a", ".a", "a-b", "a b", "é", "a:b"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn budget_is_shared_by_all_decompressions_of_a_request() {
        let limits = Limits {
            max_decompressed_bytes: 1000,
            ..Limits::default()
        };
        let mut b = Budget::new(&limits);
        assert_eq!(b.gunzip(&gz(&[1; 600]), "first").unwrap().len(), 600);
        let err = b.gunzip(&gz(&[1; 600]), "second").unwrap_err();
        assert_eq!(
            err.to_string(),
            "second decompresses to more than the 1000-byte cap (max_decompressed_bytes)"
        );
        assert_eq!(b.gunzip(&gz(&[1; 400]), "third").unwrap().len(), 400);
    }

    #[test]
    fn corrupt_gzip_is_named() {
        let mut b = Budget::new(&Limits::default());
        let data = gz(b"hello world");
        let err = b.gunzip(&data[..data.len() - 4], "the body").unwrap_err();
        assert!(
            err.to_string().starts_with("the body is not valid gzip"),
            "{err}"
        );
    }

    #[test]
    fn unknown_content_encoding_is_unsupported() {
        let mut b = Budget::new(&Limits::default());
        let err = b.decode_content(Some("br"), b"x", "body").unwrap_err();
        assert_eq!(err.http_status(), 415);
        assert!(err.to_string().contains("\"br\""), "{err}");
    }
}
