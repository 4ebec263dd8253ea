//! CPython support: recognising a Python process and telling the BPF
//! Python unwinder where the interpreter keeps its frames.
//!
//! The BPF side walks `_PyRuntime` → thread state → current frame →
//! previous, recording code objects; names are read at sample time. Field
//! offsets differ between CPython minor versions and are listed here per
//! version (they do not change within one).

use std::os::unix::fs::MetadataExt;

use object::{Object, ObjectSymbol};
use perfpilot_bpf::PythonOffsets;

/// The CPython versions whose frame layout perfpilot knows.
pub fn offsets_for(major: u32, minor: u32) -> Option<PythonOffsets> {
    match (major, minor) {
        // Include/internal/pycore_{runtime,interp,frame}.h,
        // Include/cpython/{pystate,code,unicodeobject}.h of 3.11.
        (3, 11) => Some(PythonOffsets {
            runtime_interp_head: 40,
            runtime_tstate_current: 576,
            interp_threads_head: 16,
            tstate_next: 8,
            tstate_native_thread_id: 160,
            tstate_cframe: 56,
            cframe_current_frame: 8,
            frame_code: 32,
            frame_previous: 48,
            frame_is_entry: 68,
            code_qualname: 128,
            code_filename: 112,
            code_firstlineno: 72,
            unicode_state: 32,
            unicode_ascii_data: 48,
            unicode_compact_data: 72,
        }),
        _ => None,
    }
}

/// The CPython version an object file's name implies: `python3.11`,
/// `libpython3.11.so.1.0`, `python3.11d`.
pub fn version_from_path(path: &str) -> Option<(u32, u32)> {
    let base = path.rsplit('/').next()?;
    let rest = base
        .strip_prefix("libpython")
        .or_else(|| base.strip_prefix("python"))?;
    let (major, rest) = rest.split_once('.')?;
    let minor: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The virtual address of `_PyRuntime` in an ELF image, if it has one.
pub fn runtime_symbol(elf: &[u8]) -> Option<u64> {
    let file = object::File::parse(elf).ok()?;
    file.dynamic_symbols()
        .chain(file.symbols())
        .find(|s| s.name() == Ok("_PyRuntime"))
        .map(|s| s.address())
}

/// The pid namespace of `pid` as (device, inode) when it differs from
/// ours, else (0, 0).
pub fn pid_namespace(pid: u32) -> (u64, u64) {
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/pid"));
    let ours = std::fs::metadata("/proc/self/ns/pid");
    match (theirs, ours) {
        (Ok(t), Ok(o)) if t.ino() != o.ino() => (t.dev(), t.ino()),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_paths() {
        assert_eq!(version_from_path("/usr/bin/python3.11"), Some((3, 11)));
        assert_eq!(
            version_from_path("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0"),
            Some((3, 11))
        );
        assert_eq!(version_from_path("/opt/py/bin/python3.12d"), Some((3, 12)));
        assert_eq!(version_from_path("/usr/bin/python3"), None);
        assert_eq!(version_from_path("/usr/lib/libc.so.6"), None);
    }

    #[test]
    fn only_known_layouts() {
        assert!(offsets_for(3, 11).is_some());
        assert!(offsets_for(3, 13).is_none());
    }

    #[test]
    fn finds_the_runtime_symbol_in_debians_python() {
        let Ok(data) = std::fs::read("/usr/bin/python3.11") else {
            panic!("python3.11 is installed by scripts/test.sh; run it first");
        };
        assert!(runtime_symbol(&data).is_some_and(|a| a > 0));
        assert_eq!(runtime_symbol(b"not elf"), None);
    }
}
