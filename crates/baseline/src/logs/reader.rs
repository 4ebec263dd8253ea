//! Lines of a log file or stdin, optionally following a file as `tail -F`
//! does: appended lines keep coming, a file replaced at the same path
//! (rotation by rename and create) is read to its end and then the new one
//! from its start, and a truncated file (copytruncate rotation) is read
//! again from its start.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::BaselineError;

/// How to follow a file.
///
/// Polling is adaptive: right after data arrived the file is looked at
/// again after `min_poll_interval`, and each look that finds nothing
/// doubles the wait up to `poll_interval`. A busy log's lines are seen
/// within milliseconds and a quiet one costs a few looks a second. Polling
/// rather than inotify keeps working on network and overlay filesystems,
/// which do not report other hosts' writes, and needs no platform code.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// The longest wait at the end of the file before looking again.
    pub poll_interval: Duration,
    /// The first wait after data arrived; set it to `poll_interval` for a
    /// fixed cadence.
    pub min_poll_interval: Duration,
    /// Raised to stop following: [`LogReader::next_line`] then returns
    /// what it holds and `None`.
    pub stop: Arc<AtomicBool>,
}

impl FollowOptions {
    pub fn new(stop: Arc<AtomicBool>) -> FollowOptions {
        FollowOptions {
            poll_interval: Duration::from_millis(200),
            min_poll_interval: Duration::from_millis(2),
            stop,
        }
    }
}

enum Input {
    File(BufReader<File>),
    Stdin(BufReader<io::Stdin>),
}

/// Device and inode: what tells a rotated file from its replacement.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> Option<FileId> {
    None
}

enum Change {
    None,
    Replaced,
    Truncated,
}

/// Reads lines from a file or stdin.
pub struct LogReader {
    /// `None` for stdin.
    path: Option<PathBuf>,
    input: Input,
    follow: Option<FollowOptions>,
    id: Option<FileId>,
    /// Bytes read from the current file.
    pos: u64,
    line_no: u64,
    /// A line read up to the current end of a followed file, waiting for
    /// its newline.
    pending: Vec<u8>,
    reopens: u64,
    /// The next wait at the end of a followed file.
    backoff: Duration,
}

impl LogReader {
    /// Opens a file, or stdin for `-`.
    pub fn open(path: &Path) -> Result<LogReader, BaselineError> {
        if path.as_os_str() == "-" {
            return Ok(LogReader::stdin());
        }
        let file = File::open(path).map_err(|e| BaselineError::io(path, e))?;
        let id = file
            .metadata()
            .map_err(|e| BaselineError::io(path, e))
            .map(|m| file_id(&m))?;
        Ok(LogReader {
            path: Some(path.to_path_buf()),
            input: Input::File(BufReader::with_capacity(1 << 16, file)),
            follow: None,
            id,
            pos: 0,
            line_no: 0,
            pending: Vec::new(),
            reopens: 0,
            backoff: Duration::ZERO,
        })
    }

    pub fn stdin() -> LogReader {
        LogReader {
            path: None,
            input: Input::Stdin(BufReader::with_capacity(1 << 16, io::stdin())),
            follow: None,
            id: None,
            pos: 0,
            line_no: 0,
            pending: Vec::new(),
            reopens: 0,
            backoff: Duration::ZERO,
        }
    }

    /// Follows the file (no effect on stdin, which ends when its writer
    /// closes it).
    pub fn follow(mut self, opts: FollowOptions) -> LogReader {
        if self.path.is_some() {
            self.backoff = opts.min_poll_interval;
            self.follow = Some(opts);
        }
        self
    }

    /// The file's path, `None` for stdin.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether a whole line is already in memory, so that the next
    /// [`LogReader::next_line`] returns without reading or waiting. A
    /// caller batching lines hands its batch on when this is false, rather
    /// than holding it while the input is quiet.
    pub fn has_buffered_line(&self) -> bool {
        let buffered = match &self.input {
            Input::File(r) => r.buffer(),
            Input::Stdin(r) => r.buffer(),
        };
        memchr::memchr(b'\n', buffered).is_some()
    }

    /// How many times a followed file was reopened after rotation or read
    /// again after truncation.
    pub fn reopens(&self) -> u64 {
        self.reopens
    }

    fn err(&self, e: io::Error) -> BaselineError {
        match &self.path {
            Some(p) => BaselineError::io(p, e),
            None => BaselineError::io("<stdin>", e),
        }
    }

    /// The next line into `buf` (without its line ending), returning its
    /// 1-based number in the current file; `None` at the end of input, or
    /// when following, once the stop flag is raised.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>, BaselineError> {
        buf.clear();
        loop {
            let n = match &mut self.input {
                Input::File(r) => r.read_until(b'\n', &mut self.pending),
                Input::Stdin(r) => r.read_until(b'\n', &mut self.pending),
            }
            .map_err(|e| self.err(e))?;
            self.pos += n as u64;
            if n > 0 {
                // Data came: the next wait at the end starts short again.
                if let Some(f) = &self.follow {
                    self.backoff = f.min_poll_interval;
                }
            }
            if self.pending.last() == Some(&b'\n') {
                return Ok(Some(self.take_line(buf)));
            }
            let Some(follow) = &self.follow else {
                // End of input: a last line without a newline still counts.
                return Ok((!self.pending.is_empty()).then(|| self.take_line(buf)));
            };
            if n > 0 {
                // A partial line: look again at once, the rest may be there.
                continue;
            }
            if follow.stop.load(Ordering::Relaxed) {
                return Ok((!self.pending.is_empty()).then(|| self.take_line(buf)));
            }
            let wait = self.backoff.min(follow.poll_interval);
            let longest = follow.poll_interval;
            match self.change()? {
                Change::None => {
                    std::thread::sleep(wait);
                    // Never stuck at zero: a zero minimum still backs off.
                    self.backoff = wait
                        .saturating_mul(2)
                        .max(Duration::from_millis(1))
                        .min(longest);
                }
                Change::Replaced => {
                    // The old file was read to its end just now; what is left
                    // of its last line is final.
                    let last = (!self.pending.is_empty()).then(|| self.take_line(buf));
                    self.reopen()?;
                    if last.is_some() {
                        return Ok(last);
                    }
                }
                Change::Truncated => {
                    let last = (!self.pending.is_empty()).then(|| self.take_line(buf));
                    if let Input::File(r) = &mut self.input {
                        r.seek(SeekFrom::Start(0)).map_err(|e| self.err(e))?;
                    }
                    self.pos = 0;
                    self.line_no = 0;
                    self.reopens += 1;
                    if last.is_some() {
                        return Ok(last);
                    }
                }
            }
        }
    }

    fn take_line(&mut self, buf: &mut Vec<u8>) -> u64 {
        std::mem::swap(buf, &mut self.pending);
        self.pending.clear();
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        self.line_no += 1;
        self.line_no
    }

    /// Whether the followed path now names another file, or a shorter one.
    fn change(&self) -> Result<Change, BaselineError> {
        let Some(path) = &self.path else {
            return Ok(Change::None);
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            // Between the rename and the create of a rotation: keep waiting.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Change::None),
            Err(e) => return Err(BaselineError::io(path, e)),
        };
        let id = file_id(&meta);
        if id.is_some() && id != self.id {
            Ok(Change::Replaced)
        } else if meta.len() < self.pos {
            Ok(Change::Truncated)
        } else {
            Ok(Change::None)
        }
    }

    fn reopen(&mut self) -> Result<(), BaselineError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            // Gone again already: keep the old handle and look next time.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(BaselineError::io(&path, e)),
        };
        let meta = file.metadata().map_err(|e| BaselineError::io(&path, e))?;
        self.id = file_id(&meta);
        self.input = Input::File(BufReader::with_capacity(1 << 16, file));
        self.pos = 0;
        self.line_no = 0;
        self.reopens += 1;
        Ok(())
    }
}
