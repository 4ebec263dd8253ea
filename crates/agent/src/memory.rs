//! Giving freed memory back to the system.
//!
//! glibc's malloc keeps freed memory in its arenas and returns only the
//! top of each heap, and the size from which a block gets a mapping of
//! its own (returned when freed) rises after every such free, up to
//! 32 MiB: the agent's transient large blocks (a table's FDE list, a
//! drain's batch, an encoded profile) would otherwise stay resident after
//! use. The threshold is fixed once, and free pages are released
//! periodically.

/// Blocks from this size up get a mapping of their own.
const MMAP_THRESHOLD: i32 = 256 << 10;

/// Fixes malloc's mmap threshold (process-wide; once, at start).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's own parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Releases the free pages of every malloc arena.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and shrinks the allocator's own
    // free lists; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops this process's resident pages of the object files it maps only
/// to read them (symbol tables and DWARF the symbolizer keeps mapped):
/// they count in its RSS as long as they stay mapped, and a later lookup
/// faults the few it needs back in from the page cache. Only read-only
/// mappings of regular files this process does not also map executable
/// are touched: those hold nothing but the file's own bytes (its own
/// code's relocated read-only data is skipped with its code). Of a file
/// it does run (the agent profiling another copy of itself), a mapping of
/// the whole file from its start is the symbolizer's, not a segment the
/// loader mapped, and is released too.
pub fn release_file_pages() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let size = |path: &str| std::fs::metadata(path).ok().map(|m| m.len());
    for (start, end) in read_only_mappings(&maps, size) {
        // SAFETY: the range is a whole read-only file mapping, never
        // written (see read_only_mappings): MADV_DONTNEED drops its page
        // table entries and the next read maps the file's bytes again.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                (end - start) as usize,
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// The read-only mappings in `maps` (the text of /proc/PID/maps) of
/// regular files (not memfds, devices or shared memory) not mapped
/// executable there, or mapped whole from offset 0 (`file_size` of a
/// path: loaded images map segments, never the whole file at once).
fn read_only_mappings(maps: &str, file_size: impl Fn(&str) -> Option<u64>) -> Vec<(u64, u64)> {
    struct Line<'a> {
        start: u64,
        end: u64,
        perms: &'a [u8],
        offset: &'a str,
        file: (&'a str, &'a str),
        path: &'a str,
    }
    let lines: Vec<Line<'_>> = maps
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (start, end) = f.next()?.split_once('-')?;
            let perms = f.next()?.as_bytes();
            let offset = f.next()?;
            let dev = f.next()?;
            let inode = f.next()?;
            let path = f.next()?;
            let regular =
                path.starts_with('/') && !path.starts_with("/memfd:") && !path.starts_with("/dev/");
            (inode != "0" && regular && perms.len() == 4).then_some(())?;
            Some(Line {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                perms,
                offset,
                file: (dev, inode),
                path,
            })
        })
        .collect();
    let code: std::collections::HashSet<(&str, &str)> = lines
        .iter()
        .filter(|l| l.perms[2] == b'x')
        .map(|l| l.file)
        .collect();
    lines
        .iter()
        .filter(|l| {
            matches!(l.perms, b"r--p" | b"r--s")
                && l.end > l.start
                && (!code.contains(&l.file)
                    || (l.offset.bytes().all(|b| b == b'0')
                        && file_size(l.path).is_some_and(|n| n > 0 && l.end - l.start >= n)))
        })
        .map(|l| (l.start, l.end))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_mapped_just_for_reading_are_released() {
        let maps = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 100 /usr/bin/agent
55d0a0100000-55d0a0400000 r-xp 00100000 fd:01 100 /usr/bin/agent
55d0a0400000-55d0a0500000 r--p 00400000 fd:01 100 /usr/bin/agent
7f0000000000-7f0001000000 r--p 00000000 fd:01 200 /usr/lib/libbig.so
7f0001000000-7f0001001000 rw-p 00000000 fd:01 300 /tmp/written
7f0002000000-7f0002100000 r--s 00000000 00:1a 400 /dev/shm/shared
7f0002100000-7f0002200000 r--s 00000000 fd:01 401 /usr/lib/mapped-shared.so
7f0002200000-7f0002300000 r--s 00000000 00:01 402 /memfd:sealed (deleted)
7f0003000000-7f0003001000 r--p 00000000 00:00 0 
7f0004000000-7f0004002000 r--p 00000000 00:00 0 [vvar]
7f0005000000-7f0005400000 r--p 00000000 fd:01 500 /usr/lib/other.debug (deleted)
7f0006000000-7f0006800000 r--p 00000000 fd:01 100 /usr/bin/agent
7f0007000000-7f0007100000 r--p 00000000 fd:01 100 /usr/bin/agent
";
        // The agent's file is 0x7ff000 bytes: its whole mapping from 0 is
        // released, the partial one (like a loaded segment) is not.
        let size = |p: &str| (p == "/usr/bin/agent").then_some(0x7f_f000);
        assert_eq!(
            read_only_mappings(maps, size),
            vec![
                (0x7f00_0000_0000, 0x7f00_0100_0000),
                (0x7f00_0210_0000, 0x7f00_0220_0000),
                (0x7f00_0500_0000, 0x7f00_0540_0000),
                (0x7f00_0600_0000, 0x7f00_0680_0000)
            ]
        );
    }

    #[test]
    fn releasing_keeps_what_the_mappings_read() {
        let path = std::env::current_exe().unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: read-only private mapping of our own executable.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let before: u64 = map.iter().step_by(4096).map(|&b| b as u64).sum();
        release_file_pages();
        let after: u64 = map.iter().step_by(4096).map(|&b| b as u64).sum();
        assert_eq!(before, after);
    }
}
