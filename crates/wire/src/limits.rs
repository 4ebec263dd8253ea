//! Limits every decoder enforces, and the checks shared by all of them:
//! bounded decompression, label validation, timestamp validation, and the
//! memory a request may take, alone ([`Limits::max_decoded_bytes`]) and
//! with every other request being decoded ([`MemoryPool`]).
//!
//! The label rules follow Pyroscope's distributor (`pkg/validation/validate.go`
//! in grafana/pyroscope): at most 30 labels per series, names up to 1024
//! bytes, values up to 2048 bytes, and label names made of
//! `[a-zA-Z_][a-zA-Z0-9_.]*` (Pyroscope accepts dots, e.g. the SDKs'
//! `otel.scope.name`). A label with an empty value is the same as no label
//! and is dropped, as Pyroscope's label builder does.
//!
//! Every limit is a `perfpilot server` flag of the same name (`max_x_y` is
//! `--max-x-y`; byte sizes in MiB are `--max-x-mib`), and its error names
//! that flag. Cheap checks come first: counts and lengths are checked as
//! they are read, before anything is sorted, merged or expanded.

use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use crate::error::{shorten, WireError};

/// What a single request may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes all decompression in one request may produce (the body
    /// and every embedded compressed profile together);
    /// `--max-decompressed-mib`.
    pub max_decompressed_bytes: usize,
    /// Memory the batch decoded from one request may take: 4 bytes a frame
    /// of every distinct stack, function names, and every series' labels
    /// (with 48 bytes of bookkeeping a label); `--max-decoded-mib`.
    pub max_decoded_bytes: usize,
    /// Labels per stored series, `service_name` and `__profile_type__`
    /// included. Each source of labels (a Push series, a pprof sample,
    /// `/ingest`'s tags) is counted before anything is merged.
    pub max_labels_per_series: usize,
    /// Bytes in a label name.
    pub max_label_name_len: usize,
    /// Bytes in a label value.
    pub max_label_value_len: usize,
    /// Bytes in a function name (an unsymbolized frame is named after its
    /// object file, so this bounds file names too).
    pub max_function_name_len: usize,
    /// (stack, value) samples per request, over all series.
    pub max_samples_per_request: usize,
    /// Frames of one stack after inlined functions are expanded.
    pub max_frames_per_stack: usize,
    /// Frames of every sample's stack in one request together, after
    /// inlined functions are expanded.
    pub max_frames_per_request: usize,
    /// How far past `now_ms` a profile's timestamp may be; `--max-future`.
    pub max_future_ms: i64,
    /// How far before `now_ms` a profile's timestamp may be: the store's
    /// retention (older data would be deleted unseen); `--retention`.
    pub max_age_ms: i64,
    /// The server-wide memory this request's decompression and decoding
    /// are charged to (see [`MemoryPool`]); `None` charges nothing.
    pub memory: Option<MemoryTicket>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 64 << 20,
            max_decoded_bytes: 128 << 20,
            max_labels_per_series: 30,
            max_label_name_len: 1024,
            max_label_value_len: 2048,
            max_function_name_len: 64 << 10,
            max_samples_per_request: 2_000_000,
            max_frames_per_stack: 4096,
            max_frames_per_request: 16 << 20,
            max_future_ms: 10 * 60 * 1000,
            max_age_ms: 7 * 24 * 3600 * 1000,
            memory: None,
        }
    }
}

/// `64 MiB` for whole mebibytes, else bytes: limits are set in MiB.
pub(crate) fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Memory shared by every request being decoded at once: decompressed
/// bytes and decoded batches are charged to it as they grow, through a
/// [`MemoryTicket`] per request, and given back when the request's last
/// ticket is dropped. A charge past the pool's size fails at once with
/// [`WireError::Busy`] (HTTP 503): decoding runs on blocking threads,
/// and a request that waited there holding its memory could wait for
/// others doing the same.
#[derive(Clone)]
pub struct MemoryPool(Arc<PoolInner>);

struct PoolInner {
    limit: usize,
    held: AtomicUsize,
    /// The most ever held at once (for tests and benchmarks).
    peak: AtomicUsize,
}

impl MemoryPool {
    pub fn new(limit: usize) -> MemoryPool {
        MemoryPool(Arc::new(PoolInner {
            limit,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }))
    }

    /// A ticket for one request; clones share it, and its charges are
    /// given back when the last clone is dropped.
    pub fn ticket(&self) -> MemoryTicket {
        MemoryTicket(Arc::new(TicketInner {
            pool: Arc::clone(&self.0),
            held: AtomicUsize::new(0),
        }))
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes charged now.
    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::SeqCst)
    }

    /// The most ever charged at once.
    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for MemoryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryPool({} of {} bytes)", self.held(), self.limit())
    }
}

/// One request's share of a [`MemoryPool`].
#[derive(Clone)]
pub struct MemoryTicket(Arc<TicketInner>);

struct TicketInner {
    pool: Arc<PoolInner>,
    held: AtomicUsize,
}

impl MemoryTicket {
    /// Charges `bytes`, or fails when the pool has no room for them.
    pub fn charge(&self, bytes: usize) -> Result<(), WireError> {
        let pool = &self.0.pool;
        let mut held = pool.held.load(Ordering::Relaxed);
        loop {
            let next = held.saturating_add(bytes);
            if next > pool.limit {
                return Err(WireError::Busy { limit: pool.limit });
            }
            match pool
                .held
                .compare_exchange_weak(held, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    pool.peak.fetch_max(next, Ordering::SeqCst);
                    self.0.held.fetch_add(bytes, Ordering::SeqCst);
                    return Ok(());
                }
                Err(now) => held = now,
            }
        }
    }

    /// Bytes this request holds.
    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::SeqCst)
    }
}

impl Drop for TicketInner {
    fn drop(&mut self) {
        let held = *self.held.get_mut();
        self.pool.held.fetch_sub(held, Ordering::SeqCst);
    }
}

impl fmt::Debug for MemoryTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryTicket({} bytes)", self.held())
    }
}

/// Tickets are equal when they are the same request's.
impl PartialEq for MemoryTicket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MemoryTicket {}

/// The decompression allowance left for one request.
#[derive(Debug)]
pub(crate) struct Budget {
    remaining: usize,
    limit: usize,
    memory: Option<MemoryTicket>,
}

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

pub(crate) fn is_zstd(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// Decompresses a zstd body (perfpilot's agent sends its batches so: it
/// inflates several times faster than gzip), stopping at the cap and
/// charging what it produces to `limits.memory`.
pub fn decompress_zstd(bytes: &[u8], limits: &Limits, what: &str) -> Result<Vec<u8>, WireError> {
    Budget::new(limits).unzstd(bytes, what)
}

impl Budget {
    pub(crate) fn new(limits: &Limits) -> Budget {
        Budget {
            remaining: limits.max_decompressed_bytes,
            limit: limits.max_decompressed_bytes,
            memory: limits.memory.clone(),
        }
    }

    /// Decompresses gzip (one or more members).
    pub(crate) fn gunzip(&mut self, bytes: &[u8], what: &str) -> Result<Vec<u8>, WireError> {
        self.inflate(MultiGzDecoder::new(bytes), what, "gzip")
    }

    /// Decompresses zstd (one or more frames).
    pub(crate) fn unzstd(&mut self, bytes: &[u8], what: &str) -> Result<Vec<u8>, WireError> {
        let decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| WireError::Zstd {
            what: what.to_string(),
            message: e.to_string(),
        })?;
        self.inflate(decoder, what, "zstd")
    }

    /// Reads at most the remaining allowance plus one byte: a bomb is
    /// stopped as soon as it passes the cap, and the output buffer never
    /// grows past it. Every growth of the buffer is charged to the
    /// server-wide pool first.
    fn inflate(&mut self, reader: impl Read, what: &str, kind: &str) -> Result<Vec<u8>, WireError> {
        let cap = self.remaining;
        let mut reader = reader.take(cap as u64 + 1);
        let mut out: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        if let Some(m) = &self.memory {
            m.charge(chunk.len())?;
        }
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let (what, message) = (what.to_string(), e.to_string());
                    return Err(if kind == "gzip" {
                        WireError::Gzip { what, message }
                    } else {
                        WireError::Zstd { what, message }
                    });
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
                if let Some(m) = &self.memory {
                    m.charge(want - out.capacity())?;
                }
                out.reserve_exact(want - out.len());
            }
            out.extend_from_slice(data);
        }
        self.remaining -= out.len();
        Ok(out)
    }

    /// The body as it is, or decompressed when `encoding` says gzip or
    /// zstd.
    pub(crate) fn decode_content<'a>(
        &mut self,
        encoding: Option<&str>,
        body: &'a [u8],
        what: &str,
    ) -> Result<std::borrow::Cow<'a, [u8]>, WireError> {
        match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(std::borrow::Cow::Borrowed(body)),
            Some("gzip") | Some("x-gzip") => Ok(std::borrow::Cow::Owned(self.gunzip(body, what)?)),
            Some("zstd") => Ok(std::borrow::Cow::Owned(self.unzstd(body, what)?)),
            Some(other) => Err(WireError::Unsupported(format!(
                "Content-Encoding {other:?}; only gzip, zstd and identity are accepted"
            ))),
        }
    }

    /// Unwraps gzip and zstd (nested too), as long as the bytes start with
    /// either's magic number.
    pub(crate) fn unwrap<'a>(
        &mut self,
        bytes: &'a [u8],
        what: &str,
    ) -> Result<std::borrow::Cow<'a, [u8]>, WireError> {
        let mut out = std::borrow::Cow::Borrowed(bytes);
        loop {
            let next = if is_gzip(&out) {
                self.gunzip(&out, what)?
            } else if is_zstd(&out) {
                self.unzstd(&out, what)?
            } else {
                return Ok(out);
            };
            out = std::borrow::Cow::Owned(next);
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

/// Checks one label's lengths; `what` names the series in messages.
pub(crate) fn check_label_len(
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
                "name is {} bytes long; the limit is {} (--max-label-name-len)",
                name.len(),
                limits.max_label_name_len
            ),
        ));
    }
    if value.len() > limits.max_label_value_len {
        return Err(WireError::label(
            what,
            name,
            format!(
                "value {:?} is {} bytes long; the limit is {} (--max-label-value-len)",
                shorten(value),
                value.len(),
                limits.max_label_value_len
            ),
        ));
    }
    Ok(())
}

/// Checks one label: lengths, then the name's characters.
pub(crate) fn check_label(
    what: &str,
    name: &str,
    value: &str,
    limits: &Limits,
) -> Result<(), WireError> {
    check_label_len(what, name, value, limits)?;
    if !is_valid_label_name(name) {
        return Err(WireError::label(
            what,
            name,
            "invalid name; label names must match [a-zA-Z_][a-zA-Z0-9_.]*",
        ));
    }
    Ok(())
}

/// The error for `count` labels where at most the limit may be: the same
/// whether the count is of one source, before merging, or of the merged
/// set.
pub(crate) fn too_many_labels(what: &str, count: usize, limits: &Limits) -> WireError {
    WireError::TooManyLabels {
        what: what.to_string(),
        count,
        limit: limits.max_labels_per_series,
    }
}

/// Validates a finished label set: count, names, lengths, the required
/// labels. The set must already be sorted and unique.
pub(crate) fn check_series_labels(
    what: &str,
    labels: &[(String, String)],
    limits: &Limits,
) -> Result<(), WireError> {
    if labels.len() > limits.max_labels_per_series {
        return Err(too_many_labels(what, labels.len(), limits));
    }
    for (name, value) in labels {
        check_label(what, name, value, limits)?;
    }
    Ok(())
}

/// Rejects timestamps too far in the future, or older than the store
/// keeps.
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
    let age = now_ms.saturating_sub(time_ms);
    if age > limits.max_age_ms {
        return Err(WireError::OldTimestamp {
            what: what.to_string(),
            time_ms,
            age_ms: age,
            limit_ms: limits.max_age_ms,
        });
    }
    Ok(())
}

/// Rejects a function name longer than the limit.
pub(crate) fn check_function_name(
    what: &str,
    name: &str,
    limits: &Limits,
) -> Result<(), WireError> {
    if name.len() > limits.max_function_name_len {
        return Err(WireError::NameTooLong {
            what: what.to_string(),
            name: shorten(name),
            len: name.len(),
            limit: limits.max_function_name_len,
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
            "second decompresses to more than 1000 bytes (--max-decompressed-mib)"
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
