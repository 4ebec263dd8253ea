//! Reading what the agent needs from /proc.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsEntry {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub executable: bool,
    pub offset: u64,
    /// `major << 32 | minor` of the backing file's device.
    pub dev: u64,
    pub inode: u64,
    /// The backing file, `[vdso]`-style pseudo names, or empty.
    pub path: String,
    /// The file was deleted (or replaced) after being mapped.
    pub deleted: bool,
}

impl MapsEntry {
    /// Backed by a regular file (inode != 0 and a path that is not a pseudo
    /// name like `[heap]`).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }
}

/// Parses the text of `/proc/PID/maps`; lines that do not parse are
/// skipped (the kernel writes this file, so that only happens when a line
/// was cut by a concurrent change).
pub fn parse_maps(text: &str) -> Vec<MapsEntry> {
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<MapsEntry> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?.as_bytes();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let dev = fields.next()?;
    let inode: u64 = fields.next()?.parse().ok()?;
    let path = fields.next().unwrap_or("").trim_start();
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    let (path, deleted) = match path.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (path, false),
    };
    if perms.len() < 4 {
        return None;
    }
    Some(MapsEntry {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        readable: perms[0] == b'r',
        executable: perms[2] == b'x',
        offset,
        dev: (u64::from_str_radix(major, 16).ok()? << 32) | u64::from_str_radix(minor, 16).ok()?,
        inode,
        path: path.to_string(),
        deleted,
    })
}

/// What the agent reads about a process when it first samples it.
#[derive(Debug, Clone, Default)]
pub struct ProcessSnapshot {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<PathBuf>,
    pub cgroup: Option<String>,
    pub maps: Vec<MapsEntry>,
    /// Kernel threads have no user address space.
    pub kernel_thread: bool,
}

fn proc_path(pid: u32, rest: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{rest}"))
}

/// A process's /proc directory, open: its files are opened relative to it,
/// without looking the process up again for each (the agent reads four
/// files of every process that execs).
struct ProcDir(OwnedFd);

impl ProcDir {
    fn open(pid: u32) -> io::Result<ProcDir> {
        let path = std::ffi::CString::new(format!("/proc/{pid}"))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: a valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just opened and own.
        Ok(ProcDir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn read(&self, name: &std::ffi::CStr) -> io::Result<String> {
        use std::io::Read;
        // SAFETY: a directory descriptor we own and a valid C string.
        let fd = unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just opened and own.
        let file = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut text = String::new();
        // Through `take`: a plain read loop (a File's own would stat the
        // file first, and /proc files have no size).
        file.take(u64::MAX).read_to_string(&mut text)?;
        Ok(text)
    }

    fn read_link(&self, name: &std::ffi::CStr) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStringExt;
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: a directory descriptor we own, a valid C string, and a
        // buffer of the length given.
        let n = unsafe {
            libc::readlinkat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = usize::try_from(n).ok()?;
        buf.truncate(n);
        Some(PathBuf::from(std::ffi::OsString::from_vec(buf)))
    }
}

/// Reads a process's name, executable, cgroup and mappings. Fails with
/// `NotFound` when the process is gone.
pub fn snapshot(pid: u32) -> io::Result<ProcessSnapshot> {
    let dir = ProcDir::open(pid)?;
    let comm = dir.read(c"comm")?.trim_end_matches('\n').to_string();
    let maps_text = dir.read(c"maps")?;
    let maps = parse_maps(&maps_text);
    let exe = dir.read_link(c"exe");
    let cgroup = dir
        .read(c"cgroup")
        .ok()
        .and_then(|t| crate::cgroup::cgroup_path(&t));
    // No mappings and no executable: a kernel thread, or a process that
    // exited (a zombie) or is exiting, which is gone for the profiler.
    let kernel_thread = maps.is_empty() && exe.is_none() && {
        let stat = dir.read(c"stat")?;
        if !is_kernel_thread(&stat) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("process {pid} exited"),
            ));
        }
        true
    };
    Ok(ProcessSnapshot {
        pid,
        comm,
        exe,
        cgroup,
        maps,
        kernel_thread,
    })
}

/// Whether the text of `/proc/PID/stat` is a live kernel thread's
/// (`PF_KTHREAD` in its flags, the ninth field).
fn is_kernel_thread(stat: &str) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let alive = !matches!(fields.next(), Some("Z" | "X" | "x"));
    // After the state: ppid, pgrp, session, tty_nr, tpgid, flags.
    let flags = fields.nth(5).and_then(|f| f.parse::<u64>().ok());
    alive && flags.is_some_and(|f| f & PF_KTHREAD != 0)
}

/// Re-reads only the mappings.
pub fn read_maps(pid: u32) -> io::Result<Vec<MapsEntry>> {
    Ok(parse_maps(&fs::read_to_string(proc_path(pid, "maps"))?))
}

/// Whether a process exists (and is not a zombie we cannot profile).
pub fn process_exists(pid: u32) -> bool {
    match fs::read_to_string(proc_path(pid, "stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(") ").map(|(_, r)| r.as_bytes().first()),
            Some(Some(b'Z' | b'X'))
        ),
        Err(_) => false,
    }
}

/// Where the main thread's stack began (`startstack` in /proc/PID/stat):
/// its arguments, environment and auxiliary vector lie above, no frame.
pub fn start_stack(pid: u32) -> Option<u64> {
    start_stack_of(&fs::read_to_string(proc_path(pid, "stat")).ok()?)
}

fn start_stack_of(stat: &str) -> Option<u64> {
    // The name, in parentheses, may hold spaces and parentheses itself;
    // field 3 follows the last ") ", and startstack is field 28.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace()
        .nth(28 - 3)?
        .parse()
        .ok()
        .filter(|&a| a != 0)
}

/// Whether a process is still there (a zombie counts: its exit was
/// reported when it became one). One system call, no /proc read.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    // EPERM: it exists, owned by someone we may not signal.
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Every process id currently in /proc.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let text = "\
5581a2400000-5581a2428000 r--p 00000000 fd:01 1048602 /usr/bin/python3.11
5581a2428000-5581a26f1000 r-xp 00028000 fd:01 1048602 /usr/bin/python3.11
7ffd1b9f2000-7ffd1ba13000 rw-p 00000000 00:00 0                          [stack]
7ffd1bbd8000-7ffd1bbda000 r-xp 00000000 00:00 0                          [vdso]
7f0000000000-7f0000001000 r-xp 00001000 103:02 77 /tmp/old lib.so (deleted)
garbage line
";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 5);
        assert_eq!(maps[1].start, 0x5581a2428000);
        assert_eq!(maps[1].end, 0x5581a26f1000);
        assert!(maps[1].executable && maps[1].readable);
        assert_eq!(maps[1].offset, 0x28000);
        assert_eq!(maps[1].dev, (0xfd << 32) | 1);
        assert_eq!(maps[1].inode, 1048602);
        assert_eq!(maps[1].path, "/usr/bin/python3.11");
        assert!(maps[1].is_file());
        assert!(!maps[0].executable);
        assert_eq!(maps[2].path, "[stack]");
        assert!(!maps[3].is_file());
        assert_eq!(maps[4].path, "/tmp/old lib.so");
        assert!(maps[4].deleted);
        assert_eq!(maps[4].dev, (0x103 << 32) | 2);
    }

    #[test]
    fn start_stack_is_field_28_after_the_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 \
                    100 1000 10 18446744073709551615 1 1 140720000000000 0 0";
        assert_eq!(start_stack_of(stat), Some(140720000000000));
        assert_eq!(start_stack_of("1 (x) S 1"), None);
        let me = start_stack(std::process::id()).unwrap();
        let here = 0u64;
        let sp = &here as *const u64 as u64;
        // This test runs on a thread of its own: its stack is elsewhere,
        // but the main thread's began in the [stack] mapping.
        let maps = read_maps(std::process::id()).unwrap();
        let stack = maps.iter().find(|m| m.path == "[stack]").unwrap();
        assert!(me > stack.start && me < stack.end, "{me:#x} {sp:#x}");
    }

    #[test]
    fn own_process_snapshot() {
        let me = std::process::id();
        let snap = snapshot(me).unwrap();
        assert!(!snap.comm.is_empty());
        assert!(snap.maps.iter().any(|m| m.executable && m.is_file()));
        assert_eq!(snap.exe, std::env::current_exe().ok());
        assert!(snap.cgroup.is_some());
        assert_eq!(
            snapshot(u32::MAX - 1).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(process_exists(me));
        assert!(!process_exists(u32::MAX - 1));
        assert!(process_alive(me));
        assert!(process_alive(1));
        assert!(!process_alive(u32::MAX - 1));
        assert!(!process_alive(0));
        assert!(all_pids().contains(&me));
    }

    #[test]
    fn an_exited_process_is_gone_not_a_kernel_thread() {
        // A zombie has no mappings and no executable, as a kernel thread;
        // taking it for one pushed it to the kernel's process map.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !fs::read_to_string(proc_path(pid, "stat"))
            .unwrap()
            .contains(") Z")
        {
            assert!(std::time::Instant::now() < end, "{pid} did not exit");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(snapshot(pid).unwrap_err().kind(), io::ErrorKind::NotFound);
        child.wait().unwrap();
        // A kernel thread (kthreadd) still is one.
        assert!(snapshot(2).unwrap().kernel_thread);
    }
}
