//! A per-boot copy of the kernel's text symbols.
//!
//! Reading /proc/kallsyms makes the kernel format every one of its
//! ~150,000 symbols; that was a third of a short recording's CPU time. The
//! kernel's own symbols do not move until reboot and module symbols not
//! until modules change, so the text symbols are kept in
//! `/var/cache/perfpilot/kallsyms`, valid while the boot id and
//! /proc/modules are the same. Anything the copy cannot name is looked up
//! in /proc/kallsyms itself (see `Symbolizer::resolve_kernel`).

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const PROC_KALLSYMS: &str = "/proc/kallsyms";
const CACHE_DIR: &str = "/var/cache/perfpilot";

/// What makes a copy valid: this boot, these modules at these addresses.
fn current_key() -> Option<String> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let modules = fs::read_to_string("/proc/modules").unwrap_or_default();
    let mut h = DefaultHasher::new();
    modules.hash(&mut h);
    Some(format!("{} {:016x}", boot.trim(), h.finish()))
}

/// Keeps text symbols (`T`, `t`, `W`, `w`) with a visible address, but
/// not the `__pfx_` symbols that mark the padding before each function
/// (half of all text symbols on recent kernels; no sample is ever there
/// that matters).
fn text_symbols(kallsyms: &str) -> String {
    let mut out = String::with_capacity(kallsyms.len() / 2);
    for line in kallsyms.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(addr), Some(kind)) = (it.next(), it.next()) else {
            continue;
        };
        let name = it.next().unwrap_or("");
        if matches!(kind, "T" | "t" | "W" | "w")
            && addr.bytes().any(|b| b != b'0')
            && !name.starts_with("__pfx_")
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The file to read kernel symbols from: a valid cached copy, a copy
/// written now, or /proc/kallsyms itself when no copy can be kept.
pub fn source() -> PathBuf {
    source_in(Path::new(CACHE_DIR))
}

fn source_in(dir: &Path) -> PathBuf {
    let Some(key) = current_key() else {
        return PathBuf::from(PROC_KALLSYMS);
    };
    let data = dir.join("kallsyms");
    let key_file = dir.join("kallsyms.key");
    if fs::read_to_string(&key_file).ok().as_deref() == Some(key.as_str()) && data.exists() {
        return data;
    }
    let Ok(text) = fs::read_to_string(PROC_KALLSYMS) else {
        return PathBuf::from(PROC_KALLSYMS);
    };
    let symbols = text_symbols(&text);
    if symbols.is_empty() {
        // Addresses are hidden from us (kptr_restrict): nothing to keep.
        return PathBuf::from(PROC_KALLSYMS);
    }
    let write = || -> std::io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = dir.join("kallsyms.tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(symbols.as_bytes())?;
        fs::rename(&tmp, &data)?;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_file)?
            .write_all(key.as_bytes())
    };
    match write() {
        Ok(()) => data,
        Err(_) => PathBuf::from(PROC_KALLSYMS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_visible_text_symbols() {
        let text = "ffffffff81000000 T _stext\n\
                    ffffffff82000000 D some_data\n\
                    0000000000000000 T hidden\n\
                    ffffffffc0000000 t mod_fn\t[mod]\n\
                    ffffffff81000100 W weak_fn\n\
                    ffffffff810000f0 t __pfx_weak_fn\n";
        assert_eq!(
            text_symbols(text),
            "ffffffff81000000 T _stext\nffffffffc0000000 t mod_fn\t[mod]\nffffffff81000100 W weak_fn\n"
        );
    }

    #[test]
    fn root_cache_is_written_once_and_reused() {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "reading kernel addresses needs root"
        );
        let dir = tempfile::tempdir().unwrap();
        let first = source_in(dir.path());
        assert_eq!(first, dir.path().join("kallsyms"));
        let written = fs::metadata(&first).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(source_in(dir.path()), first);
        assert_eq!(
            fs::metadata(&first).unwrap().modified().unwrap(),
            written,
            "rewritten"
        );
        // A different key (another boot or other modules) invalidates it.
        fs::write(dir.path().join("kallsyms.key"), "another boot").unwrap();
        source_in(dir.path());
        assert_eq!(
            fs::read_to_string(dir.path().join("kallsyms.key")).unwrap(),
            current_key().unwrap()
        );
    }
}
