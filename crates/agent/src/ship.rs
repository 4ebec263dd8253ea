//! Shipping profiles to a perfpilot server.
//!
//! Each interval's profile goes out as one batch: zstd-compressed pprof
//! (strings, functions, locations and stacks deduplicated by construction) with a
//! batch id that is unique per agent run. When the server cannot be
//! reached the batch is spooled to disk, bounded in bytes (the oldest
//! batches go first, counted), and resent in order later; the server
//! applies a batch id once, so a batch sent twice is counted once.

use std::fs;
use std::io::Write;
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
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipStats {
    /// Batches the server acknowledged.
    pub sent: u64,
    /// Batches written to the spool because the server was unreachable.
    pub spooled: u64,
    /// Spooled batches deleted to stay within the spool's size.
    pub dropped: u64,
    /// Batches the server refused as invalid (not retried).
    pub rejected: u64,
    pub bytes_sent: u64,
}

pub struct Shipper {
    config: ShipperConfig,
    agent: ureq::Agent,
    run_id: String,
    seq: u64,
    pub stats: ShipStats,
    /// The last error talking to the server, for the status line.
    pub last_error: Option<String>,
}

enum Outcome {
    Sent,
    Retry(String),
    Rejected(String),
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
            .build()
            .into();
        Ok(Shipper {
            run_id: format!("{host}-{started:x}-{}", std::process::id()),
            config,
            agent,
            seq: 0,
            stats: ShipStats::default(),
            last_error: None,
        })
    }

    /// Sends a profile (after any spooled batches, oldest first); spools
    /// it if the server cannot take it now.
    pub fn ship(&mut self, profile: &Profile) -> Result<(), ShipError> {
        // zstd rather than gzip: the server inflates it several times faster.
        let raw =
            pprof::encode_uncompressed(profile).map_err(|e| ShipError::Encode(e.to_string()))?;
        let body = zstd::bulk::compress(&raw, 3).map_err(|e| ShipError::Encode(e.to_string()))?;
        self.seq += 1;
        let id = format!("{}-{:08}", self.run_id, self.seq);
        self.resend_spooled();
        if self.spooled_files().is_empty() {
            match self.send(&id, &body) {
                Outcome::Sent => return Ok(()),
                Outcome::Rejected(e) => {
                    self.stats.rejected += 1;
                    self.last_error = Some(e);
                    return Ok(());
                }
                Outcome::Retry(e) => self.last_error = Some(e),
            }
        }
        self.spool(&id, &body)
    }

    /// Resends spooled batches in order until one fails. Returns how many
    /// were sent.
    pub fn resend_spooled(&mut self) -> usize {
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
                Outcome::Rejected(e) => {
                    self.stats.rejected += 1;
                    self.last_error = Some(e);
                    let _ = fs::remove_file(&path);
                }
                Outcome::Retry(e) => {
                    self.last_error = Some(e);
                    break;
                }
            }
        }
        sent
    }

    pub fn spooled(&self) -> usize {
        self.spooled_files().len()
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
                    Outcome::Sent
                } else {
                    let text = resp
                        .into_body()
                        .read_to_string()
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect::<String>();
                    let msg = format!("server answered {status}: {}", text.trim());
                    // 4xx other than 408/429: the batch itself is at fault.
                    if (400..500).contains(&status) && status != 408 && status != 429 {
                        Outcome::Rejected(msg)
                    } else {
                        Outcome::Retry(msg)
                    }
                }
            }
            Err(e) => Outcome::Retry(format!("cannot reach {url}: {e}")),
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
        let dir = &self.config.spool_dir;
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
        while !files.is_empty() && used + body.len() as u64 > self.config.spool_max_bytes {
            let oldest = files.remove(0);
            used = used.saturating_sub(fs::metadata(&oldest).map(|m| m.len()).unwrap_or(0));
            let _ = fs::remove_file(&oldest);
            self.stats.dropped += 1;
        }
        if body.len() as u64 > self.config.spool_max_bytes {
            self.stats.dropped += 1;
            return Ok(());
        }
        let name = format!("{:020}-{id}.pb.zst", spool_clock());
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(body).and_then(|_| f.sync_all()).map_err(err)?;
        fs::rename(&tmp, dir.join(&name)).map_err(err)?;
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
}
