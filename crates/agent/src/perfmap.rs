//! JIT symbol maps (`/tmp/perf-PID.map`): `START SIZE name` per line, hex
//! numbers. Read by the agent itself (not through the process) so the
//! names stay available after the process exits.

use std::time::SystemTime;

#[derive(Debug)]
pub struct PerfMap {
    /// (start, end, name) sorted by start.
    entries: Vec<(u64, u64, String)>,
    modified: Option<SystemTime>,
    len: u64,
}

impl PerfMap {
    pub fn load(path: &str) -> Option<PerfMap> {
        let meta = std::fs::metadata(path).ok()?;
        let text = std::fs::read_to_string(path).ok()?;
        let mut map = PerfMap::parse(&text);
        map.modified = meta.modified().ok();
        map.len = meta.len();
        Some(map)
    }

    pub fn parse(text: &str) -> PerfMap {
        let mut entries: Vec<(u64, u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut it = line.splitn(3, ' ');
                let start = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
                let size = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
                let name = it.next()?.trim();
                (!name.is_empty()).then(|| (start, start.saturating_add(size), name.to_string()))
            })
            .collect();
        // Later entries for the same address win (code was regenerated).
        entries.reverse();
        entries.sort_by_key(|e| e.0);
        entries.dedup_by_key(|e| e.0);
        PerfMap {
            entries,
            modified: None,
            len: 0,
        }
    }

    /// Whether the file still has the size and time it had when loaded.
    pub fn is_current(&self, path: &str) -> bool {
        match std::fs::metadata(path) {
            Ok(m) => m.len() == self.len && m.modified().ok() == self.modified,
            Err(_) => true, // deleted: keep what we read
        }
    }

    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self.entries.partition_point(|e| e.0 <= addr);
        let (start, end, name) = self.entries.get(i.checked_sub(1)?)?;
        (addr >= *start && addr < *end).then_some(name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up() {
        let m = PerfMap::parse(
            "7f0000001000 40 py::leaf:/app/x.py\n\
             7f0000000000 100 LazyCompile:~main app.js:1\n\
             bogus line\n\
             7f0000002000 10 Interpreter\n",
        );
        assert_eq!(m.lookup(0x7f0000000010), Some("LazyCompile:~main app.js:1"));
        assert_eq!(m.lookup(0x7f000000103f), Some("py::leaf:/app/x.py"));
        assert_eq!(m.lookup(0x7f0000001040), None);
        assert_eq!(m.lookup(0x10), None);
        assert_eq!(m.lookup(0x7f000000200f), Some("Interpreter"));
    }
}
