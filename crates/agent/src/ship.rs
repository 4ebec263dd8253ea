//! Shipping profiles to a perfpilot server.
//!
//! Each interval's profile goes out as one batch: zstd-compressed pprof
//! (strings, functions, locations and stacks deduplicated by construction) with a
//! batch id that is unique per agent run. A batch the server cannot take
//! now — unreachable, busy, refusing the token, or without the ingest
//! route at this address — is kept in a spool on disk, bounded in bytes
//! (the oldest batches go first, counted), and resent in order later; the
//! server applies a batch id once, so a batch sent twice is counted once.
//! Only an answer that says the batch itself is bad (400, 413, 422) drops
//! it. Each distinct reason for keeping batches is reported once, as a
//! [`Notice`].

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use perfpilot_model::{pprof, Profile};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ShipError {
    #[error("encoding the profile: {0}")]
    Encode(String),
    #[error("spool directory {path}: {source}")]
    Spool {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:4040`.
    pub server: String,
    pub token: Option<String>,
    /// Where `token` was read from: read again while the server refuses
    /// the token, so fixing the file is enough.
    pub token_file: Option<PathBuf>,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipStats {
    /// Batches the server acknowledged.
    pub sent: u64,
    /// Batches written to the spool because the server could not take them.
    pub spooled: u64,
    /// Spooled batches deleted to stay within the spool's size.
    pub dropped: u64,
    /// Batches the server refused as invalid (not retried).
    pub rejected: u64,
    pub bytes_sent: u64,
}

/// Why batches are kept rather than sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// No answer: nothing listens, the network is down, or it timed out.
    Unreachable { url: String, error: String },
    /// 401 or 403: the token is missing or wrong.
    Token { status: u16, message: String },
    /// 404 or 405: no ingest route at this address (a wrong `--server`,
    /// or a proxy path in front of the server).
    NoRoute {
        status: u16,
        url: String,
        message: String,
    },
    /// Any other answer that does not blame the batch: 408, 429, 5xx (a
    /// busy or failing server) and the 4xx not listed above.
    Server { status: u16, message: String },
}

impl Cause {
    /// Causes with the same kind and status are one cause, reported once.
    fn same_as(&self, other: &Cause) -> bool {
        use Cause::*;
        match (self, other) {
            (Unreachable { .. }, Unreachable { .. }) => true,
            (Token { status: a, .. }, Token { status: b, .. })
            | (NoRoute { status: a, .. }, NoRoute { status: b, .. })
            | (Server { status: a, .. }, Server { status: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let answer = |f: &mut fmt::Formatter<'_>, status: &u16, message: &str| {
            if message.is_empty() {
                write!(f, "{status}")
            } else {
                write!(f, "{status}: {message}")
            }
        };
        match self {
            Cause::Unreachable { url, error } => write!(f, "cannot reach {url} ({error})"),
            Cause::Token { status, message } => {
                write!(f, "the server refused the token (")?;
                answer(f, status, message)?;
                write!(f, "): fix --auth-token-file")
            }
            Cause::NoRoute {
                status,
                url,
                message,
            } => {
                write!(f, "the server has no ingest route at {url} (")?;
                answer(f, status, message)?;
                write!(f, "): check --server")
            }
            Cause::Server { status, message } => {
                write!(f, "the server answered ")?;
                answer(f, status, message)
            }
        }
    }
}

/// Something the agent's user should hear about once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Batches are being kept for a reason not reported before.
    Held {
        cause: Cause,
        kept: usize,
        spool: PathBuf,
    },
    /// The server takes batches again; `resent` kept ones went out.
    Resumed { resent: usize },
    /// The spool reached its size: the oldest batches are being deleted.
    SpoolFull { limit_bytes: u64, spool: PathBuf },
    /// The server said a batch itself is bad: it was dropped.
    Dropped {
        id: String,
        status: u16,
        message: String,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Held { cause, kept, spool } => write!(
                f,
                "{cause}; {kept} batch{} kept in {}",
                if *kept == 1 { "" } else { "es" },
                spool.display()
            ),
            Notice::Resumed { resent } => write!(
                f,
                "the server takes batches again; {resent} kept batch{} sent",
                if *resent == 1 { "" } else { "es" }
            ),
            Notice::SpoolFull { limit_bytes, spool } => write!(
                f,
                "the spool in {} reached {} MiB (--spool-max-mib): the oldest batches are being deleted",
                spool.display(),
                limit_bytes >> 20
            ),
            Notice::Dropped {
                id,
                status,
                message,
            } => write!(
                f,
                "the server refused batch {id} as invalid ({status}: {message}); dropped it"
            ),
        }
    }
}

/// At most this many notices wait for [`Shipper::take_notices`].
const MAX_NOTICES: usize = 64;

pub struct Shipper {
    config: ShipperConfig,
    agent: ureq::Agent,
    run_id: String,
    seq: u64,
    pub stats: ShipStats,
    /// The last error talking to the server, for the status line.
    pub last_error: Option<String>,
    /// Why batches are held now; `None` while the server takes them.
    held: Option<Cause>,
    /// `held` changed to a cause not reported yet.
    announce: bool,
    /// A send succeeded after batches were held (reported once).
    resumed: bool,
    /// The spool overflowed during this episode of holding (reported once).
    spool_full_reported: bool,
    notices: Vec<Notice>,
}

enum Outcome {
    Sent,
    Held(Cause),
    /// The batch itself is bad.
    Rejected {
        status: u16,
        message: String,
    },
}

/// Statuses that blame the batch: resending it cannot help.
fn batch_is_bad(status: u16) -> bool {
    matches!(status, 400 | 413 | 422)
}

impl Shipper {
    pub fn new(config: ShipperConfig) -> Result<Shipper, ShipError> {
        fs::create_dir_all(&config.spool_dir).map_err(|source| ShipError::Spool {
            path: config.spool_dir.display().to_string(),
            source,
        })?;
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            // A redirect would turn the POST into a GET: report it instead.
            .max_redirects(0)
            .build()
            .into();
        Ok(Shipper {
            run_id: format!("{host}-{started:x}-{}", std::process::id()),
            config,
            agent,
            seq: 0,
            stats: ShipStats::default(),
            last_error: None,
            held: None,
            announce: false,
            resumed: false,
            spool_full_reported: false,
            notices: Vec::new(),
        })
    }

    /// Sends a profile (after any spooled batches, oldest first); spools
    /// it if the server cannot take it now.
    pub fn ship(&mut self, profile: &Profile) -> Result<(), ShipError> {
        let (id, body) = self.encode(profile)?;
        let resent = self.resend();
        if self.spooled_files().is_empty() {
            match self.send(&id, &body) {
                Outcome::Sent => {
                    self.report_resumed(resent);
                    return Ok(());
                }
                Outcome::Rejected { status, message } => {
                    self.reject(&id, status, message);
                    return Ok(());
                }
                Outcome::Held(cause) => self.hold(cause),
            }
        }
        let spooled = self.spool(&id, &body);
        self.report_resumed(resent);
        self.report_held();
        spooled
    }

    /// Puts a profile in the spool without trying the server: for a
    /// shutdown while the server is not taking batches, so each waiting
    /// profile does not wait out its own timeout. Sent later, in order.
    pub fn keep(&mut self, profile: &Profile) -> Result<(), ShipError> {
        let (id, body) = self.encode(profile)?;
        self.spool(&id, &body)
    }

    /// The next batch: its id and body.
    fn encode(&mut self, profile: &Profile) -> Result<(String, Vec<u8>), ShipError> {
        // zstd rather than gzip: the server inflates it several times faster.
        let raw =
            pprof::encode_uncompressed(profile).map_err(|e| ShipError::Encode(e.to_string()))?;
        let body = zstd::bulk::compress(&raw, 3).map_err(|e| ShipError::Encode(e.to_string()))?;
        self.seq += 1;
        Ok((format!("{}-{:08}", self.run_id, self.seq), body))
    }

    /// Resends spooled batches in order until one cannot be sent. Returns
    /// how many were sent.
    pub fn resend_spooled(&mut self) -> usize {
        let sent = self.resend();
        self.report_resumed(sent);
        self.report_held();
        sent
    }

    fn resend(&mut self) -> usize {
        self.reread_token();
        let mut sent = 0;
        for path in self.spooled_files() {
            let Some(id) = spooled_batch_id(&path) else {
                let _ = fs::remove_file(&path);
                continue;
            };
            let Ok(body) = fs::read(&path) else {
                let _ = fs::remove_file(&path);
                continue;
            };
            match self.send(&id, &body) {
                Outcome::Sent => {
                    let _ = fs::remove_file(&path);
                    sent += 1;
                }
                Outcome::Rejected { status, message } => {
                    self.reject(&id, status, message);
                    let _ = fs::remove_file(&path);
                }
                Outcome::Held(cause) => {
                    self.hold(cause);
                    break;
                }
            }
        }
        sent
    }

    pub fn spooled(&self) -> usize {
        self.spooled_files().len()
    }

    /// Why batches are kept now, if they are.
    pub fn held(&self) -> Option<&Cause> {
        self.held.as_ref()
    }

    /// Notices since the last call, oldest first.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    fn push_notice(&mut self, n: Notice) {
        if self.notices.len() < MAX_NOTICES {
            self.notices.push(n);
        }
    }

    fn hold(&mut self, cause: Cause) {
        if !self.held.as_ref().is_some_and(|h| h.same_as(&cause)) {
            self.announce = true;
        }
        self.last_error = Some(cause.to_string());
        self.held = Some(cause);
    }

    /// Reports a new cause once the batch is in the spool, with the count
    /// of batches kept.
    fn report_held(&mut self) {
        if !self.announce {
            return;
        }
        self.announce = false;
        if let Some(cause) = self.held.clone() {
            let kept = self.spooled();
            self.push_notice(Notice::Held {
                cause,
                kept,
                spool: self.config.spool_dir.clone(),
            });
        }
    }

    fn report_resumed(&mut self, resent: usize) {
        if std::mem::take(&mut self.resumed) {
            self.push_notice(Notice::Resumed { resent });
        }
    }

    fn reject(&mut self, id: &str, status: u16, message: String) {
        self.stats.rejected += 1;
        self.last_error = Some(format!("server answered {status}: {message}"));
        self.push_notice(Notice::Dropped {
            id: id.to_string(),
            status,
            message,
        });
    }

    /// While the server refuses the token, the token file is read again
    /// before each attempt.
    fn reread_token(&mut self) {
        if !matches!(self.held, Some(Cause::Token { .. })) {
            return;
        }
        let Some(path) = &self.config.token_file else {
            return;
        };
        if let Ok(text) = fs::read_to_string(path) {
            let token = text.trim();
            if !token.is_empty() {
                self.config.token = Some(token.to_string());
            }
        }
    }

    fn send(&mut self, id: &str, body: &[u8]) -> Outcome {
        let url = format!("{}/api/v1/ingest", self.config.server.trim_end_matches('/'));
        let mut req = self
            .agent
            .post(&url)
            .header("Content-Type", "application/vnd.google.protobuf")
            .header("Content-Encoding", "zstd")
            .header("X-Perfpilot-Batch-Id", id);
        if let Some(t) = &self.config.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        match req.send(body) {
            Ok(resp) => {
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    self.stats.sent += 1;
                    self.stats.bytes_sent += body.len() as u64;
                    self.last_error = None;
                    if self.held.take().is_some() {
                        self.resumed = true;
                        self.spool_full_reported = false;
                    }
                    return Outcome::Sent;
                }
                let message = resp
                    .into_body()
                    .read_to_string()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect::<String>()
                    .trim()
                    .to_string();
                if batch_is_bad(status) {
                    return Outcome::Rejected { status, message };
                }
                Outcome::Held(match status {
                    401 | 403 => Cause::Token { status, message },
                    404 | 405 => Cause::NoRoute {
                        status,
                        url,
                        message,
                    },
                    _ => Cause::Server { status, message },
                })
            }
            Err(e) => Outcome::Held(Cause::Unreachable {
                url,
                error: e.to_string(),
            }),
        }
    }

    fn spooled_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.config.spool_dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().ends_with(".pb.zst"))
                    .collect()
            })
            .unwrap_or_default();
        // Names start with a zero-padded sequence: lexical order is age.
        files.sort();
        files
    }

    fn spool(&mut self, id: &str, body: &[u8]) -> Result<(), ShipError> {
        let dir = self.config.spool_dir.clone();
        let err = |source| ShipError::Spool {
            path: dir.display().to_string(),
            source,
        };
        // Make room: the oldest batches go first.
        let mut files = self.spooled_files();
        let mut used: u64 = files
            .iter()
            .filter_map(|f| fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let mut dropped = 0;
        while !files.is_empty() && used + body.len() as u64 > self.config.spool_max_bytes {
            let oldest = files.remove(0);
            used = used.saturating_sub(fs::metadata(&oldest).map(|m| m.len()).unwrap_or(0));
            let _ = fs::remove_file(&oldest);
            dropped += 1;
        }
        let too_big = body.len() as u64 > self.config.spool_max_bytes;
        if too_big {
            dropped += 1;
        }
        if dropped > 0 {
            self.stats.dropped += dropped;
            if !self.spool_full_reported {
                self.spool_full_reported = true;
                self.push_notice(Notice::SpoolFull {
                    limit_bytes: self.config.spool_max_bytes,
                    spool: self.config.spool_dir.clone(),
                });
            }
        }
        if too_big {
            return Ok(());
        }
        let name = format!("{:020}-{id}.pb.zst", spool_clock());
        // Synced, renamed in and the directory synced: a spooled profile
        // survives a power loss, and a torn one is never seen (the reader
        // takes only `.pb.zst` names, not the `.tmp` beside them).
        perfpilot_fsio::write_atomically(&dir.join(&name), body).map_err(err)?;
        self.stats.spooled += 1;
        Ok(())
    }
}

/// Nanoseconds, strictly increasing within the process, for spool order.
fn spool_clock() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let prev = LAST.fetch_max(now, Ordering::SeqCst);
    let v = if now > prev {
        now
    } else {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    };
    v as u128
}

/// The batch id of a spooled file: its name after the ordering prefix.
pub fn spooled_batch_id(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_suffix(".pb.zst")?;
    rest.split_once('-').map(|(_, id)| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfpilot_model::ValueType;

    fn profile() -> Profile {
        let mut p = Profile::new(vec![ValueType::new("samples", "count")]);
        let f = p.add_function_named("work");
        let l = p.add_function_location(f);
        let s = p.add_stack(&[l]);
        let ls = p.add_label_set([("service_name", "x")]);
        p.add_sample(s, ls, &[1]);
        p
    }

    #[test]
    fn unreachable_server_spools_bounded_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Shipper::new(ShipperConfig {
            // Nothing listens on port 9 of localhost.
            server: "http://127.0.0.1:9".into(),
            token: None,
            token_file: None,
            spool_dir: dir.path().to_path_buf(),
            spool_max_bytes: 0,
            timeout: Duration::from_millis(500),
        })
        .unwrap();
        let raw = pprof::encode_uncompressed(&profile()).unwrap();
        let size = zstd::bulk::compress(&raw, 3).unwrap().len() as u64;
        s.config.spool_max_bytes = size * 3;
        for _ in 0..5 {
            s.ship(&profile()).unwrap();
        }
        assert_eq!(s.stats.sent, 0);
        assert_eq!(s.stats.spooled, 5);
        assert_eq!(s.spooled(), 3, "bounded to three batches");
        assert_eq!(s.stats.dropped, 2);
        // The oldest went: the spool holds batches 3, 4, 5.
        let ids: Vec<String> = s
            .spooled_files()
            .iter()
            .filter_map(|p| spooled_batch_id(p))
            .collect();
        assert!(
            ids[0].ends_with("-00000003") && ids[2].ends_with("-00000005"),
            "{ids:?}"
        );
        assert!(s
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot reach"));
    }

    #[test]
    fn kept_profiles_wait_in_the_spool_in_order_without_a_send() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Shipper::new(ShipperConfig {
            server: "http://127.0.0.1:9".into(),
            token: None,
            token_file: None,
            spool_dir: dir.path().to_path_buf(),
            spool_max_bytes: 1 << 20,
            timeout: Duration::from_millis(500),
        })
        .unwrap();
        s.keep(&profile()).unwrap();
        s.keep(&profile()).unwrap();
        assert_eq!(s.stats.spooled, 2);
        assert_eq!(s.last_error, None, "no send was tried");
        let ids: Vec<String> = s
            .spooled_files()
            .iter()
            .filter_map(|p| spooled_batch_id(p))
            .collect();
        assert!(
            ids[0].ends_with("-00000001") && ids[1].ends_with("-00000002"),
            "{ids:?}"
        );
    }
}

#[cfg(test)]
mod answers {
    //! The shipper against a listener that answers each request with the
    //! next status of a script and records the batch ids it acknowledged.

    use super::*;
    use perfpilot_model::ValueType;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    struct Scripted {
        url: String,
        script: Arc<Mutex<Vec<u16>>>,
        /// (batch id, Authorization header) of acknowledged requests.
        acknowledged: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl Scripted {
        fn start() -> Scripted {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let script: Arc<Mutex<Vec<u16>>> = Arc::default();
            let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
            let (s, a) = (Arc::clone(&script), Arc::clone(&acknowledged));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let mut reader = BufReader::new(conn);
                    // Requests on one connection, one after another.
                    loop {
                        let mut id = String::new();
                        let mut auth = String::new();
                        let mut len = 0usize;
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let l = line.trim_end();
                            if l.is_empty() {
                                break;
                            }
                            let (k, v) = l.split_once(':').unwrap_or((l, ""));
                            match k.to_ascii_lowercase().as_str() {
                                "content-length" => len = v.trim().parse().unwrap_or(0),
                                "x-perfpilot-batch-id" => id = v.trim().to_string(),
                                "authorization" => auth = v.trim().to_string(),
                                _ => {}
                            }
                        }
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            break;
                        }
                        let status = {
                            let mut s = s.lock().unwrap();
                            if s.is_empty() {
                                200
                            } else {
                                s.remove(0)
                            }
                        };
                        if status == 200 {
                            a.lock().unwrap().push((id, auth));
                        }
                        let text = format!("answer {status}");
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                            break;
                        }
                    }
                }
            });
            Scripted {
                url,
                script,
                acknowledged,
            }
        }

        fn answer(&self, statuses: &[u16]) {
            self.script.lock().unwrap().extend_from_slice(statuses);
        }

        /// The sequence numbers of the batches acknowledged, in order.
        fn acknowledged(&self) -> Vec<String> {
            let got = self.acknowledged.lock().unwrap();
            got.iter()
                .map(|(id, _)| id.rsplit('-').next().unwrap_or("").to_string())
                .collect()
        }

        fn tokens(&self) -> Vec<String> {
            let got = self.acknowledged.lock().unwrap();
            got.iter().map(|(_, auth)| auth.clone()).collect()
        }
    }

    fn profile() -> Profile {
        let mut p = Profile::new(vec![ValueType::new("samples", "count")]);
        let f = p.add_function_named("work");
        let l = p.add_function_location(f);
        let s = p.add_stack(&[l]);
        let ls = p.add_label_set([("service_name", "x")]);
        p.add_sample(s, ls, &[1]);
        p
    }

    fn shipper(server: &str, spool: &Path) -> Shipper {
        Shipper::new(ShipperConfig {
            server: server.into(),
            token: Some("wrong".into()),
            token_file: None,
            spool_dir: spool.to_path_buf(),
            spool_max_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
        })
        .unwrap()
    }

    #[test]
    fn refused_token_and_missing_route_keep_batches_until_they_are_taken() {
        let server = Scripted::start();
        let dir = tempfile::tempdir().unwrap();
        let mut s = shipper(&server.url, dir.path());

        // Batch 1: the token is refused. It is kept, not dropped.
        server.answer(&[401]);
        s.ship(&profile()).unwrap();
        assert_eq!(s.spooled(), 1, "{:?}", s.stats);
        assert_eq!(s.stats.rejected, 0);
        let notices = s.take_notices();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(
            notices[0].to_string(),
            format!(
                "the server refused the token (401: answer 401): fix --auth-token-file; \
                 1 batch kept in {}",
                dir.path().display()
            )
        );
        // Batch 2: batch 1 is refused again; both are kept, and the same
        // cause is not reported again.
        server.answer(&[401]);
        s.ship(&profile()).unwrap();
        assert_eq!(s.spooled(), 2);
        assert_eq!(s.take_notices(), []);
        // Batch 3: no ingest route at this address (a wrong --server).
        server.answer(&[404]);
        s.ship(&profile()).unwrap();
        assert_eq!(s.spooled(), 3);
        assert!(server.acknowledged().is_empty());
        let notices = s.take_notices();
        assert_eq!(notices.len(), 1, "{notices:?}");
        let text = notices[0].to_string();
        assert!(
            text.starts_with(&format!(
                "the server has no ingest route at {}/api/v1/ingest (404: answer 404): \
                 check --server; 3 batches kept in",
                server.url
            )),
            "{text}"
        );

        // Batch 4: the server takes batches again, but says batch 2
        // itself is bad: only that one is dropped.
        server.answer(&[200, 400]);
        s.ship(&profile()).unwrap();
        assert_eq!(s.spooled(), 0);
        assert_eq!(server.acknowledged(), ["00000001", "00000003", "00000004"]);
        assert_eq!(s.stats.rejected, 1);
        assert_eq!(s.stats.sent, 3);
        let notices: Vec<String> = s.take_notices().iter().map(|n| n.to_string()).collect();
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(
            notices[0].starts_with("the server refused batch ")
                && notices[0].ends_with("-00000002 as invalid (400: answer 400); dropped it"),
            "{notices:?}"
        );
        assert_eq!(
            notices[1],
            "the server takes batches again; 2 kept batches sent"
        );
    }

    #[test]
    fn a_fixed_token_file_is_read_again_while_the_token_is_refused() {
        let server = Scripted::start();
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "wrong\n").unwrap();
        let mut s = shipper(&server.url, &dir.path().join("spool"));
        s.config.token_file = Some(token.clone());
        server.answer(&[403]);
        s.ship(&profile()).unwrap();
        assert!(matches!(s.held(), Some(Cause::Token { status: 403, .. })));
        std::fs::write(&token, "right\n").unwrap();
        s.ship(&profile()).unwrap();
        assert_eq!(s.held(), None);
        assert_eq!(server.acknowledged(), ["00000001", "00000002"]);
        assert_eq!(server.tokens(), ["Bearer right", "Bearer right"]);
    }
}
