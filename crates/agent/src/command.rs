//! Starting a command so that it is profiled from its first instruction:
//! the child blocks on a pipe until the sampler is attached, then execs.
//! (std's `Command::spawn` waits for the exec, so it cannot do this.)

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A child process stopped before `exec`.
pub struct PausedChild {
    pid: libc::pid_t,
    release_fd: Option<libc::c_int>,
    error_fd: libc::c_int,
    reaped: bool,
}

/// Finds `program` the way a shell would: as a path if it has a slash,
/// else in `$PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"))
}

fn pipe() -> io::Result<[libc::c_int; 2]> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fds)
}

impl PausedChild {
    /// Forks a child that will exec `argv` once released. Fails with
    /// `NotFound` when the program is not found.
    pub fn spawn(argv: &[String]) -> io::Result<PausedChild> {
        let program = argv
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command given"))?;
        let path = find_program(program).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{program}: command not found"),
            )
        })?;
        // Everything the child needs is allocated before fork: after it,
        // only async-signal-safe calls are allowed.
        let c_path = cstring(path.as_os_str().as_bytes())?;
        let c_args: Vec<CString> = argv
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let mut c_argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
        c_argv.push(std::ptr::null());
        let env: Vec<CString> = std::env::vars_os()
            .map(|(k, v)| {
                let mut b = k.as_bytes().to_vec();
                b.push(b'=');
                b.extend_from_slice(v.as_bytes());
                cstring(&b)
            })
            .collect::<Result<_, _>>()?;
        let mut c_env: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        c_env.push(std::ptr::null());

        let gate = pipe()?;
        let errors = pipe()?;
        // SAFETY: fork; the child branch only uses async-signal-safe calls
        // on memory prepared above.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: child side of fork, see above.
            unsafe {
                libc::close(gate[1]);
                libc::close(errors[0]);
                let mut byte = 0u8;
                libc::read(gate[0], (&mut byte as *mut u8).cast(), 1);
                libc::execve(c_path.as_ptr(), c_argv.as_ptr(), c_env.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(errors[1], (&errno as *const i32).cast(), 4);
                libc::_exit(127);
            }
        }
        // SAFETY: closing the child's ends in the parent.
        unsafe {
            libc::close(gate[0]);
            libc::close(errors[1]);
        }
        Ok(PausedChild {
            pid,
            release_fd: Some(gate[1]),
            error_fd: errors[0],
            reaped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Lets the child exec, and reports whether the exec failed.
    pub fn release(&mut self) -> io::Result<()> {
        if let Some(fd) = self.release_fd.take() {
            let byte = 1u8;
            // SAFETY: fd is our open write end of the gate pipe.
            unsafe {
                libc::write(fd, (&byte as *const u8).cast(), 1);
                libc::close(fd);
            }
        }
        let mut errno = 0i32;
        // SAFETY: reading at most 4 bytes into errno; EOF means exec worked.
        let n = unsafe { libc::read(self.error_fd, (&mut errno as *mut i32).cast(), 4) };
        if n == 4 {
            return Err(io::Error::from_raw_os_error(errno));
        }
        Ok(())
    }

    /// Non-blocking: the exit status once the child has exited.
    pub fn try_wait(&mut self) -> Option<i32> {
        if self.reaped {
            return None;
        }
        let mut status = 0;
        // SAFETY: waiting on our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == self.pid {
            self.reaped = true;
            if libc::WIFEXITED(status) {
                return Some(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Some(128 + libc::WTERMSIG(status));
            }
            return Some(1);
        }
        None
    }

    /// Sends a signal to the child.
    pub fn signal(&self, sig: libc::c_int) {
        if !self.reaped {
            // SAFETY: signalling our own, not yet reaped, child.
            unsafe {
                libc::kill(self.pid, sig);
            }
        }
    }
}

impl Drop for PausedChild {
    fn drop(&mut self) {
        // SAFETY: closing descriptors we own.
        unsafe {
            if let Some(fd) = self.release_fd.take() {
                libc::close(fd);
            }
            libc::close(self.error_fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("/bin/sh").is_some());
        assert!(find_program("no-such-program-perfpilot").is_none());
    }

    #[test]
    fn child_runs_only_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let argv = vec![
            "sh".into(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ];
        let mut child = PausedChild::spawn(&argv).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!marker.exists(), "child ran before release");
        assert_eq!(child.try_wait(), None);
        child.release().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait() {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(status, 0);
        assert!(marker.exists());
    }

    #[test]
    fn missing_command_is_not_found() {
        let err = PausedChild::spawn(&["no-such-program-perfpilot".into()])
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
