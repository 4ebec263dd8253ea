//! The file operations durability rests on, in one place: appends that
//! either complete or leave the file as it was, atomic replacement of a
//! whole file, directory syncs, and the test of whether an error means the
//! disk is full.
//!
//! Every write, sync, truncation, rename, link and file creation the store
//! (and the autopilot's audit log) makes goes through here, so that tests
//! can make any one of them fail (see [`faults`], compiled for the crate's
//! own tests and with the `failpoints` feature). A small layer of our own
//! rather than a global failpoint registry: faults are scoped to a
//! directory, so tests running in parallel in one process never see each
//! other's faults, and an injected write failure writes half its bytes
//! first, as a disk filling up mid-write does.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Whether an I/O error means the file system has no room left: no space
/// (ENOSPC) or a quota reached (EDQUOT).
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// The kinds of operation a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Write,
    Sync,
    Truncate,
    Rename,
    Link,
}

#[inline]
fn check(op: Op, path: &Path) -> io::Result<()> {
    #[cfg(any(test, feature = "failpoints"))]
    {
        faults::check(op, path)
    }
    #[cfg(not(any(test, feature = "failpoints")))]
    {
        let _ = (op, path);
        Ok(())
    }
}

/// Opens `path` for appending, creating it if needed.
pub fn open_append(path: &Path) -> io::Result<File> {
    check(Op::Create, path)?;
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// Creates (or truncates) `path` for writing.
pub fn create(path: &Path) -> io::Result<File> {
    check(Op::Create, path)?;
    File::create(path)
}

/// Writes all of `buf` to `file` (at `path`). On failure some of it may
/// have been written: callers cut it off with [`set_len`].
pub fn write_all(file: &mut File, path: &Path, buf: &[u8]) -> io::Result<()> {
    if let Err(e) = check(Op::Write, path) {
        // A disk filling up mid-write leaves part of it behind.
        let _ = file.write_all(&buf[..buf.len() / 2]);
        return Err(e);
    }
    file.write_all(buf)
}

pub fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    check(Op::Sync, path)?;
    file.sync_data()
}

pub fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    check(Op::Sync, path)?;
    file.sync_all()
}

pub fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    check(Op::Truncate, path)?;
    file.set_len(len)
}

pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    check(Op::Rename, to)?;
    std::fs::rename(from, to)
}

pub fn hard_link(from: &Path, to: &Path) -> io::Result<()> {
    check(Op::Link, to)?;
    std::fs::hard_link(from, to)
}

/// Syncs a directory, making the names created, renamed or removed in it
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    check(Op::Sync, dir)?;
    File::open(dir)?.sync_all()
}

/// The directory `path` is in (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A writer over a file whose writes go through the fault layer; for
/// files written through a `BufWriter`.
pub struct FileWriter {
    file: File,
    path: PathBuf,
}

impl FileWriter {
    pub fn new(file: File, path: &Path) -> FileWriter {
        FileWriter {
            file,
            path: path.to_path_buf(),
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn into_file(self) -> File {
        self.file
    }
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(e) = check(Op::Write, &self.path) {
            let _ = self.file.write_all(&buf[..buf.len() / 2]);
            return Err(e);
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl io::Seek for FileWriter {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// The name a file is written under before [`write_atomically`] renames
/// it in: beside it, so the rename stays in one file system.
pub fn temporary_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes`: written beside it, synced, renamed in and
/// the directory synced. A crash or a failure at any point leaves the old
/// file or the new one, never part of either, and a failure leaves no
/// temporary file behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temporary_name(path);
    let result = (|| {
        let mut f = create(&tmp)?;
        write_all(&mut f, &tmp, bytes)?;
        sync_all(&f, &tmp)?;
        rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is done: the new file is in place whatever the directory
    // sync says, so its failure is reported but nothing is undone.
    sync_dir(parent(path))
}

/// Fault injection for tests: make the Nth write, sync, truncation,
/// rename, link or creation of a file under a directory fail.
#[cfg(any(test, feature = "failpoints"))]
pub mod faults {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    pub use super::Op;

    /// ENOSPC: no space left on the device.
    pub const ENOSPC: i32 = 28;
    /// EIO: an I/O error.
    pub const EIO: i32 = 5;
    /// EDQUOT: a disk quota reached.
    pub const EDQUOT: i32 = 122;

    /// Fail `times` operations `op` on paths under `under` (the directory
    /// itself included), after letting `skip` of them succeed.
    #[derive(Debug, Clone)]
    pub struct Fault {
        pub under: PathBuf,
        pub op: Op,
        /// Only paths whose file name contains this (empty: any).
        pub name_contains: String,
        pub skip: u64,
        pub times: u64,
        pub errno: i32,
    }

    impl Fault {
        /// Every `op` under `under` fails with `errno` until removed.
        pub fn always(under: &Path, op: Op, errno: i32) -> Fault {
            Fault {
                under: under.to_path_buf(),
                op,
                name_contains: String::new(),
                skip: 0,
                times: u64::MAX,
                errno,
            }
        }

        /// The `nth` (1-based) `op` under `under` fails, once.
        pub fn nth(under: &Path, op: Op, nth: u64, errno: i32) -> Fault {
            Fault {
                skip: nth.saturating_sub(1),
                times: 1,
                ..Fault::always(under, op, errno)
            }
        }

        /// Only on files whose name contains `part`.
        pub fn named(mut self, part: &str) -> Fault {
            self.name_contains = part.to_string();
            self
        }
    }

    struct Armed {
        id: u64,
        fault: Fault,
        hits: u64,
    }

    static ACTIVE: AtomicUsize = AtomicUsize::new(0);
    static FAULTS: Mutex<Vec<Armed>> = Mutex::new(Vec::new());
    static NEXT_ID: Mutex<u64> = Mutex::new(0);

    /// Removes its fault when dropped.
    #[must_use = "the fault is removed when the guard is dropped"]
    pub struct Guard {
        id: u64,
    }

    impl Guard {
        /// How many times the fault fired so far.
        pub fn fired(&self) -> u64 {
            let faults = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
            faults
                .iter()
                .find(|a| a.id == self.id)
                .map(|a| a.hits.saturating_sub(a.fault.skip).min(a.fault.times))
                .unwrap_or(0)
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let mut faults = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
            let before = faults.len();
            faults.retain(|a| a.id != self.id);
            ACTIVE.fetch_sub(before - faults.len(), Ordering::SeqCst);
        }
    }

    /// Arms a fault until the guard is dropped.
    pub fn inject(fault: Fault) -> Guard {
        let id = {
            let mut n = NEXT_ID.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        FAULTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Armed { id, fault, hits: 0 });
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        Guard { id }
    }

    pub(super) fn check(op: Op, path: &Path) -> io::Result<()> {
        if ACTIVE.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let mut faults = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for a in faults.iter_mut() {
            let f = &a.fault;
            if f.op != op || !path.starts_with(&f.under) || !name.contains(&f.name_contains) {
                continue;
            }
            a.hits += 1;
            if a.hits > f.skip && a.hits - f.skip <= f.times {
                return Err(io::Error::from_raw_os_error(f.errno));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::faults::{inject, Fault, EIO, ENOSPC};
    use super::*;

    #[test]
    fn a_failed_atomic_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"old").unwrap();
        for op in [Op::Create, Op::Write, Op::Sync, Op::Rename] {
            let g = inject(Fault::nth(dir.path(), op, 1, ENOSPC));
            let err = write_atomically(&path, b"new and longer").unwrap_err();
            assert_eq!(g.fired(), 1, "{op:?}");
            assert!(is_disk_full(&err), "{op:?}: {err}");
            assert_eq!(std::fs::read(&path).unwrap(), b"old", "{op:?}");
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec!["state.json"], "{op:?}");
        }
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn faults_are_scoped_to_their_directory_and_count() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let g = inject(Fault::nth(a.path(), Op::Sync, 2, EIO));
        let fa = create(&a.path().join("x")).unwrap();
        let fb = create(&b.path().join("x")).unwrap();
        sync_data(&fb, &b.path().join("x")).unwrap();
        sync_data(&fa, &a.path().join("x")).unwrap();
        let err = sync_data(&fa, &a.path().join("x")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EIO));
        assert!(!is_disk_full(&err));
        sync_data(&fa, &a.path().join("x")).unwrap();
        assert_eq!(g.fired(), 1);
    }
}
