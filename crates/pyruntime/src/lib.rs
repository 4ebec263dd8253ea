//! CPython interpreter images: recognising one, its version, and where
//! the interpreter keeps the frames perfpilot's BPF Python unwinder walks.
//!
//! The BPF side walks `_PyRuntime` → thread state → current frame →
//! previous, recording code objects; names are read at sample time. Field
//! offsets differ between CPython minor versions and are listed here per
//! version (they do not change within one), from each version's headers
//! (`Include/internal/pycore_{runtime,interp,frame}.h`,
//! `Include/cpython/{pystate,code,frameobject,unicodeobject}.h`) and
//! checked against the DWARF of real builds. From 3.13 on the interpreter
//! publishes them itself in `_Py_DebugOffsets` at the start of
//! `_PyRuntime`; those are read from the binary and preferred.
//!
//! The version comes from the binary: the debug offsets' version (3.13+),
//! `Py_Version` (3.11+), or which API functions it exports (3.8–3.10);
//! the file name (`python3.9`, `libpython3.9.so.1.0`) only when none of
//! those answers.

use object::{Object, ObjectSegment, ObjectSymbol};

/// A CPython interpreter image (an executable or libpython).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interpreter {
    /// (major, minor).
    pub version: (u32, u32),
    /// Virtual address of `_PyRuntime` in the image.
    pub runtime: u64,
    /// None for a version whose layout perfpilot does not know.
    pub offsets: Option<PythonOffsets>,
}

/// Why `_Py_DebugOffsets` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebugOffsetsError {
    #[error("no _Py_DebugOffsets cookie")]
    NoCookie,
    #[error("_Py_DebugOffsets cut short at {0} bytes")]
    Short(usize),
    #[error("_Py_DebugOffsets of CPython {0}.{1}, whose layout is not known")]
    UnknownLayout(u32, u32),
    #[error("_Py_DebugOffsets field at {at} is {value}, not a field offset")]
    OutOfRange { at: usize, value: u64 },
}

const DEBUG_COOKIE: &[u8; 8] = b"xdebugpy";
/// Bytes of 3.13's `_Py_DebugOffsets` that are read (through
/// `unicode_object.asciiobject_size`).
const DEBUG_OFFSETS_LEN: usize = 568;

const CPYTHON_3_8_TO_3_10: u16 =
    PythonOffsets::PTHREAD_ID | PythonOffsets::FRAME_IN_TSTATE | PythonOffsets::ALL_ENTRY;

/// The CPython versions whose frame layout perfpilot knows.
pub fn offsets_for(major: u32, minor: u32) -> Option<PythonOffsets> {
    // 3.8–3.10: a PyFrameObject per call (f_back, f_code) hangs off the
    // thread state, whose id is pthread_self(); code objects have co_name
    // but no co_qualname.
    let old = PythonOffsets {
        runtime_interp_head: 32,
        runtime_tstate_current: 568,
        interp_threads_head: 8,
        tstate_next: 8,
        tstate_native_thread_id: 176,
        tstate_cframe: 24,
        frame_code: 32,
        frame_previous: 24,
        code_qualname: 112,
        code_filename: 104,
        code_firstlineno: 40,
        unicode_state: 32,
        unicode_ascii_data: 48,
        unicode_compact_data: 72,
        flags: CPYTHON_3_8_TO_3_10,
        ..PythonOffsets::default()
    };
    // 3.12+: _PyInterpreterFrame with f_code/f_executable first and an
    // owner byte; no wstr in str objects.
    let new = PythonOffsets {
        runtime_interp_head: 40,
        interp_threads_head: 72,
        tstate_next: 8,
        tstate_native_thread_id: 144,
        tstate_cframe: 56,
        cframe_current_frame: 0,
        frame_code: 0,
        frame_previous: 8,
        frame_owner: 70,
        code_qualname: 128,
        code_filename: 112,
        code_firstlineno: 68,
        unicode_state: 32,
        unicode_ascii_data: 40,
        unicode_compact_data: 56,
        flags: PythonOffsets::NO_TSTATE_CURRENT | PythonOffsets::SHIM_FRAMES,
        ..PythonOffsets::default()
    };
    match (major, minor) {
        (3, 8) => Some(PythonOffsets {
            runtime_tstate_current: 1368,
            ..old
        }),
        (3, 9) | (3, 10) => Some(old),
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
            frame_owner: 0,
            flags: 0,
        }),
        (3, 12) => Some(new),
        // No _PyCFrame: the thread state points at the frame.
        (3, 13) => Some(PythonOffsets {
            runtime_interp_head: 632,
            interp_threads_head: 7344,
            tstate_native_thread_id: 160,
            tstate_cframe: 72,
            flags: new.flags | PythonOffsets::FRAME_IN_TSTATE,
            ..new
        }),
        _ => None,
    }
}

/// The offsets a CPython 3.13 binary publishes at the start of
/// `_PyRuntime` (`_Py_DebugOffsets`), with its version. Later versions
/// change the structure, so they are refused rather than misread.
pub fn parse_debug_offsets(data: &[u8]) -> Result<((u32, u32), PythonOffsets), DebugOffsetsError> {
    if data.len() < 16 || &data[..8] != DEBUG_COOKIE {
        return Err(DebugOffsetsError::NoCookie);
    }
    let u64_at = |at: usize| -> Result<u64, DebugOffsetsError> {
        data.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_ne_bytes)
            .ok_or(DebugOffsetsError::Short(data.len()))
    };
    // PY_VERSION_HEX: 0xMMmmppLS.
    let hex = u64_at(8)?;
    let version = (((hex >> 24) & 0xff) as u32, ((hex >> 16) & 0xff) as u32);
    if version != (3, 13) {
        return Err(DebugOffsetsError::UnknownLayout(version.0, version.1));
    }
    if data.len() < DEBUG_OFFSETS_LEN {
        return Err(DebugOffsetsError::Short(data.len()));
    }
    let field = |at: usize| -> Result<u16, DebugOffsetsError> {
        let value = u64_at(at)?;
        u16::try_from(value).map_err(|_| DebugOffsetsError::OutOfRange { at, value })
    };
    let ascii_size = field(560)?;
    Ok((
        version,
        PythonOffsets {
            runtime_interp_head: field(40)?,
            runtime_tstate_current: 0,
            interp_threads_head: field(72)?,
            tstate_next: field(168)?,
            tstate_native_thread_id: field(200)?,
            tstate_cframe: field(184)?,
            cframe_current_frame: 0,
            frame_code: field(240)?,
            frame_previous: field(232)?,
            frame_is_entry: 0,
            code_qualname: field(296)?,
            code_filename: field(280)?,
            code_firstlineno: field(312)?,
            unicode_state: field(544)?,
            unicode_ascii_data: ascii_size,
            // Not published: a compact non-ASCII str adds utf8_length and
            // utf8 to the ASCII header.
            unicode_compact_data: ascii_size.saturating_add(16),
            frame_owner: field(264)?,
            flags: PythonOffsets::NO_TSTATE_CURRENT
                | PythonOffsets::FRAME_IN_TSTATE
                | PythonOffsets::SHIM_FRAMES,
        },
    ))
}

/// Recognises a CPython interpreter image: one that defines `_PyRuntime`.
/// Every object a process maps is asked, so only the dynamic symbols are
/// searched (interpreters export `_PyRuntime` for extension modules),
/// and the full symbol table only of a file named like an interpreter.
pub fn inspect(path: &str, elf: &[u8]) -> Option<Interpreter> {
    let file = object::File::parse(elf).ok()?;
    let find = |name: &str, deep: bool| {
        let wanted = |s: &object::Symbol<'_, '_>| s.name() == Ok(name) && s.address() != 0;
        file.dynamic_symbols()
            .find(wanted)
            .or_else(|| deep.then(|| file.symbols().find(wanted)).flatten())
            .map(|s| s.address())
    };
    let runtime = find("_PyRuntime", version_from_path(path).is_some())?;
    let symbol = |name: &str| find(name, true);
    let bytes_at = |addr: u64, len: u64| {
        file.segments()
            .find_map(|s| s.data_range(addr, len).ok().flatten())
    };
    if let Some(head) = bytes_at(runtime, DEBUG_OFFSETS_LEN as u64) {
        match parse_debug_offsets(head) {
            Ok((version, offsets)) => {
                return Some(Interpreter {
                    version,
                    runtime,
                    offsets: Some(offsets),
                })
            }
            Err(DebugOffsetsError::NoCookie) => {}
            Err(_) => {
                let version = debug_version(head)?;
                return Some(Interpreter {
                    version,
                    runtime,
                    offsets: None,
                });
            }
        }
    }
    let exported = |name: &str| symbol(name).is_some();
    let version = symbol("Py_Version")
        .and_then(|a| bytes_at(a, 4))
        .and_then(|b| Some(u32::from_ne_bytes(b.try_into().ok()?)))
        .map(|hex| (hex >> 24, (hex >> 16) & 0xff))
        .or_else(|| exported("PyModule_AddObjectRef").then_some((3, 10)))
        .or_else(|| exported("PyFrame_GetCode").then_some((3, 9)))
        .or_else(|| exported("Py_BytesMain").then_some((3, 8)))
        .or_else(|| version_from_path(path))?;
    Some(Interpreter {
        version,
        runtime,
        offsets: offsets_for(version.0, version.1),
    })
}

fn debug_version(head: &[u8]) -> Option<(u32, u32)> {
    let hex = u64::from_ne_bytes(head.get(8..16)?.try_into().ok()?);
    Some((((hex >> 24) & 0xff) as u32, ((hex >> 16) & 0xff) as u32))
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

/// Where CPython keeps the state the Python unwinder reads: byte offsets
/// of fields, for one CPython version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PythonOffsets {
    pub runtime_interp_head: u16,
    pub runtime_tstate_current: u16,
    pub interp_threads_head: u16,
    pub tstate_next: u16,
    pub tstate_native_thread_id: u16,
    pub tstate_cframe: u16,
    pub cframe_current_frame: u16,
    pub frame_code: u16,
    pub frame_previous: u16,
    pub frame_is_entry: u16,
    pub code_qualname: u16,
    pub code_filename: u16,
    pub code_firstlineno: u16,
    pub unicode_state: u16,
    pub unicode_ascii_data: u16,
    pub unicode_compact_data: u16,
    /// The frame's owner byte, read with [`PythonOffsets::SHIM_FRAMES`].
    pub frame_owner: u16,
    /// How this version's frame model differs from 3.11's (`PY_F_*`).
    pub flags: u16,
}

impl PythonOffsets {
    /// No current thread state in `_PyRuntime` (3.12+ keep it
    /// thread-local): the thread list is searched.
    pub const NO_TSTATE_CURRENT: u16 = 1 << 0;
    /// The thread state's id is `pthread_self()` rather than the kernel's
    /// thread id (before 3.11).
    pub const PTHREAD_ID: u16 = 1 << 1;
    /// `tstate_cframe` is the offset of the current frame itself, with no
    /// `_PyCFrame` between (before 3.11: `frame`; 3.13+: `current_frame`).
    pub const FRAME_IN_TSTATE: u16 = 1 << 2;
    /// Every frame runs in its own call of the C eval loop (before 3.11).
    pub const ALL_ENTRY: u16 = 1 << 3;
    /// Frames owned by the C stack are shims that mark where C called
    /// into the eval loop (3.12+); `frame_is_entry` is not read.
    pub const SHIM_FRAMES: u16 = 1 << 4;
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
    fn known_layouts() {
        for minor in 8..=13 {
            assert!(offsets_for(3, minor).is_some(), "3.{minor}");
        }
        assert!(offsets_for(3, 7).is_none());
        assert!(offsets_for(3, 14).is_none());
        // Only 3.11 has is_entry; 3.12+ mark entries with shim frames.
        let f = |m| offsets_for(3, m).map(|o| o.flags);
        assert_eq!(f(10), Some(CPYTHON_3_8_TO_3_10));
        assert_eq!(f(11), Some(0));
        assert_eq!(
            f(13)
                .map(|f| f & PythonOffsets::SHIM_FRAMES != 0
                    && f & PythonOffsets::FRAME_IN_TSTATE != 0),
            Some(true)
        );
    }

    /// 3.13's `_Py_DebugOffsets` as the table has it, to parse back.
    fn debug_offsets_313() -> Vec<u8> {
        let mut d = vec![0u8; DEBUG_OFFSETS_LEN];
        d[..8].copy_from_slice(DEBUG_COOKIE);
        let mut put = |at: usize, v: u64| d[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        put(8, 0x030d00f0);
        for (at, v) in [
            (40, 632),
            (72, 7344),
            (168, 8),
            (200, 160),
            (184, 72),
            (240, 0),
            (232, 8),
            (264, 70),
            (296, 128),
            (280, 112),
            (312, 68),
            (544, 32),
            (560, 40),
        ] {
            put(at, v);
        }
        d
    }

    #[test]
    fn debug_offsets_parse_and_refuse() {
        let d = debug_offsets_313();
        assert_eq!(
            parse_debug_offsets(&d),
            Ok(((3, 13), offsets_for(3, 13).unwrap()))
        );
        assert_eq!(
            parse_debug_offsets(&d[..100]),
            Err(DebugOffsetsError::Short(100))
        );
        assert_eq!(
            parse_debug_offsets(b"xdebugp"),
            Err(DebugOffsetsError::NoCookie)
        );
        let mut later = d.clone();
        later[8..16].copy_from_slice(&0x030e00f0u64.to_ne_bytes());
        assert_eq!(
            parse_debug_offsets(&later),
            Err(DebugOffsetsError::UnknownLayout(3, 14))
        );
        let mut wild = d;
        wild[40..48].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(
            parse_debug_offsets(&wild),
            Err(DebugOffsetsError::OutOfRange {
                at: 40,
                value: u64::MAX
            })
        );
        assert_eq!(inspect("/x/python3.11", b"not elf"), None);
    }

    #[test]
    fn truncated_debug_offsets_never_panic() {
        let d = debug_offsets_313();
        for n in 0..=d.len() {
            let _ = parse_debug_offsets(&d[..n]);
        }
    }

    /// PERFPILOT_TEST_PYTHONS (colon-separated), else what
    /// scripts/python-versions.sh finds.
    fn test_pythons() -> Vec<String> {
        if let Ok(list) = std::env::var("PERFPILOT_TEST_PYTHONS") {
            return list
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/python-versions.sh"
        );
        let out = std::process::Command::new("bash").arg(script).output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
    }

    /// Every interpreter the test environment has: its version as it
    /// reports it, and the image that holds `_PyRuntime` (its libpython
    /// when it maps one, else itself).
    fn interpreters() -> Vec<((u32, u32), String)> {
        const ASK: &str = "import os, sys\n\
            libs = [l.split()[-1] for l in open('/proc/self/maps') if '/libpython' in l]\n\
            print(sys.version_info[0], sys.version_info[1], \
            libs[0] if libs else os.path.realpath(sys.executable))";
        test_pythons()
            .iter()
            .filter_map(|exe| {
                let out = std::process::Command::new(exe)
                    .args(["-c", ASK])
                    .output()
                    .ok()?;
                let text = String::from_utf8(out.stdout).ok()?;
                let f: Vec<&str> = text.split_whitespace().collect();
                let version = (f.first()?.parse().ok()?, f.get(1)?.parse().ok()?);
                Some((version, f.get(2)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn recognises_each_installed_interpreter() {
        let found = interpreters();
        if found.is_empty() {
            eprintln!("SKIPPED: no CPython found (scripts/python-versions.sh lists them)");
            return;
        }
        for (version, image) in &found {
            let data = std::fs::read(image).unwrap_or_else(|e| panic!("{image}: {e}"));
            // A name that does not tell the version: the binary must.
            let got = inspect("/opt/x/bin/python", &data)
                .unwrap_or_else(|| panic!("{image} not recognised as CPython"));
            assert_eq!(got.version, *version, "{image}");
            assert!(got.runtime > 0, "{image}");
            assert_eq!(
                got.offsets,
                offsets_for(version.0, version.1),
                "{image}: the binary's own offsets differ from the table"
            );
            eprintln!("{image}: CPython {}.{} recognised", version.0, version.1);
        }
    }
}
