//! Object files mapped by sampled processes: identity, build id, layout,
//! and an open handle kept so frames can be named after the process exits.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSegment, SectionFlags, SegmentFlags};
use perfpilot_bpf::{BpfError, KernelUnwindTable};
use perfpilot_unwind::UnwindRow;

use crate::procfs::MapsEntry;

/// Identity of an object file: device and inode, as /proc/PID/maps names
/// them. The vDSO, which has neither, gets its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKey {
    File { dev: u64, inode: u64 },
    Vdso,
}

/// A loadable segment: file offset and virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub executable: bool,
}

/// What the agent knows about one object file.
#[derive(Debug)]
pub struct ObjectInfo {
    pub key: ObjectKey,
    /// The path as the first process that mapped it saw it.
    pub path: String,
    /// Open handle (via /proc/PID/map_files while the process lived), so
    /// symbolization works after the process exits or the file is replaced.
    pub file: Option<File>,
    pub build_id: Option<String>,
    pub segments: Vec<Segment>,
    /// Virtual address ranges of executable sections: a symbol outside
    /// them is data, never a frame's name.
    pub code_ranges: Vec<(u64, u64)>,
    pub is_go: bool,
    /// The object carries its own DWARF (.debug_info).
    pub has_dwarf: bool,
    /// Bytes of its DWARF sections, as they are once inflated: what
    /// naming from DWARF maps and reads.
    pub dwarf_bytes: u64,
    /// Bytes of its symbol tables (`.symtab`, `.dynsym`; not their
    /// strings, of which a lookup reads only the names it finds).
    pub symbol_bytes: u64,
    /// For a CPython interpreter or libpython: its version, where
    /// `_PyRuntime` is and the layout the Python unwinder needs.
    pub python: Option<crate::python::Interpreter>,
    /// For the vDSO, its image (it has no file).
    pub image: Option<Vec<u8>>,
}

impl ObjectInfo {
    /// The runtime-minus-ELF-virtual-address bias of a mapping of this
    /// object.
    pub fn bias(&self, map: &MapsEntry) -> u64 {
        // A page can hold the end of one segment and the start of the
        // next; the mapping's permissions and the latest start decide.
        let contains = |s: &&Segment| {
            let aligned = s.offset & !0xfff;
            map.offset >= aligned && map.offset < s.offset + s.filesz.max(1)
        };
        let seg = self
            .segments
            .iter()
            .filter(|s| s.executable == map.executable)
            .filter(contains)
            .max_by_key(|s| s.offset)
            .or_else(|| {
                self.segments
                    .iter()
                    .filter(contains)
                    .max_by_key(|s| s.offset)
            })
            .copied();
        match seg {
            Some(s) => map
                .start
                .wrapping_sub(map.offset)
                .wrapping_sub(s.vaddr.wrapping_sub(s.offset)),
            None => map.start.wrapping_sub(map.offset),
        }
    }

    /// Whether `vaddr` lies in an executable section (or, when the section
    /// headers are stripped, an executable segment).
    pub fn is_code(&self, vaddr: u64) -> bool {
        if self.code_ranges.is_empty() {
            return self
                .segments
                .iter()
                .any(|s| s.executable && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz);
        }
        self.code_ranges
            .iter()
            .any(|&(start, end)| vaddr >= start && vaddr < end)
    }

    /// A path blazesym can open for this object.
    pub fn symbol_path(&self) -> Option<PathBuf> {
        use std::os::fd::AsRawFd;
        match &self.file {
            Some(f) => Some(PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))),
            None if self.key == ObjectKey::Vdso => None,
            None => Some(PathBuf::from(&self.path)),
        }
    }

    /// The separate debug file a distribution installs for this object
    /// (`/usr/lib/debug/.build-id/xx/rest.debug`), if present.
    pub fn debug_file(&self) -> Option<PathBuf> {
        let id = self.build_id.as_deref()?;
        if id.len() < 3 {
            return None;
        }
        let path = PathBuf::from(format!(
            "/usr/lib/debug/.build-id/{}/{}.debug",
            &id[..2],
            &id[2..]
        ));
        path.exists().then_some(path)
    }

    pub fn display_name(&self) -> &str {
        &self.path
    }
}

/// Opens the file behind a mapping of `pid`: through the mapping itself
/// (works for deleted files and other mount namespaces), else through the
/// process's root, else by path. Checks the identity matches.
pub fn open_mapped_file(pid: u32, map: &MapsEntry) -> Option<File> {
    let candidates = [
        PathBuf::from(format!(
            "/proc/{pid}/map_files/{:x}-{:x}",
            map.start, map.end
        )),
        PathBuf::from(format!("/proc/{pid}/root{}", map.path)),
        PathBuf::from(&map.path),
    ];
    for path in candidates {
        if let Ok(f) = File::open(&path) {
            if let Ok(meta) = f.metadata() {
                if meta.ino() == map.inode {
                    return Some(f);
                }
            }
        }
    }
    None
}

/// Parses an object file from an open handle.
/// Maps a file read-only for parsing.
fn map_file(file: &File) -> Result<memmap2::Mmap, String> {
    // SAFETY: the mapping is read-only and private; if another process
    // truncates the file we may fault, as every profiler reading mapped
    // binaries may; the window is one parse.
    unsafe { memmap2::Mmap::map(file) }.map_err(|e| e.to_string())
}

/// Reads what the agent needs to know of an object file at once (its
/// headers: cheap); the unwind table is built separately, see
/// [`unwind_rows`].
pub fn load_file(key: ObjectKey, path: &str, file: File) -> Result<ObjectInfo, String> {
    let map = map_file(&file)?;
    let mut info = parse(key, path, &map)?;
    info.file = Some(file);
    Ok(info)
}

/// Parses an in-memory image (the vDSO).
pub fn load_image(key: ObjectKey, path: &str, image: Vec<u8>) -> Result<ObjectInfo, String> {
    let mut info = parse(key, path, &image)?;
    info.image = Some(image);
    Ok(info)
}

/// Where an unwind table is built from.
pub enum TableSource {
    File(File),
    Image(Vec<u8>),
}

impl ObjectInfo {
    /// A handle a table-building thread can own.
    pub fn table_source(&self) -> Option<TableSource> {
        match (&self.file, &self.image) {
            (Some(f), _) => f.try_clone().ok().map(TableSource::File),
            (None, Some(image)) => Some(TableSource::Image(image.clone())),
            (None, None) => None,
        }
    }
}

/// The object's unwind table created in the kernel, streamed there row by
/// row (a large library has millions: never held in memory); `None` when
/// it has no call frame information or cannot be read. Costly for large
/// objects: two passes over its call frame information, about a second
/// for a 200 MB library.
pub fn kernel_table(source: &TableSource) -> Result<Option<KernelUnwindTable>, BpfError> {
    let build = |data: &[u8]| {
        let Ok(stream) = perfpilot_unwind::stream_table(data) else {
            return Ok(None);
        };
        let Ok(rows) = u32::try_from(stream.rows()) else {
            return Ok(None);
        };
        if rows == 0 {
            return Ok(None);
        }
        let mut failed = None;
        let table = KernelUnwindTable::create(rows, |push| {
            if let Err(e) = stream.for_each(push) {
                failed = Some(e);
            }
        });
        match failed {
            // The second pass failed where the first did not (the file
            // changed under us): the row count is off and `create` said so.
            Some(_) => Ok(None),
            None => table.map(Some),
        }
    };
    match source {
        TableSource::File(f) => match map_file(f) {
            Ok(m) => build(&m),
            Err(_) => Ok(None),
        },
        TableSource::Image(image) => build(image),
    }
}

/// The object's unwind table in memory (empty when it has no call frame
/// information or cannot be read).
pub fn unwind_rows(source: &TableSource) -> Vec<UnwindRow> {
    let build = |data: &[u8]| {
        perfpilot_unwind::build_table(data)
            .map(|t| t.rows)
            .unwrap_or_default()
    };
    match source {
        TableSource::File(f) => map_file(f).map(|m| build(&m)).unwrap_or_default(),
        TableSource::Image(image) => build(image),
    }
}

fn parse(key: ObjectKey, path: &str, data: &[u8]) -> Result<ObjectInfo, String> {
    let file = object::File::parse(data).map_err(|e| format!("{path}: {e}"))?;
    let build_id = file
        .build_id()
        .ok()
        .flatten()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
    let segments = file
        .segments()
        .map(|s| {
            let (offset, filesz) = s.file_range();
            let executable =
                matches!(s.flags(), SegmentFlags::Elf { p_flags, .. } if p_flags.0 & 1 != 0);
            Segment {
                offset,
                vaddr: s.address(),
                filesz,
                executable,
            }
        })
        .collect();
    let code_ranges = file
        .sections()
        .filter(|s| matches!(s.flags(), SectionFlags::Elf { sh_flags, .. } if sh_flags.0 & 4 != 0))
        .map(|s| (s.address(), s.address() + s.size()))
        .collect();
    let has_dwarf = file
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0);
    let dwarf_bytes = file
        .sections()
        .filter(|s| {
            s.name()
                .is_ok_and(|n| n.starts_with(".debug_") || n.starts_with(".zdebug_"))
        })
        .map(|s| {
            s.compressed_file_range()
                .map_or(s.size(), |r| r.uncompressed_size)
        })
        .sum();
    let symbol_bytes = file
        .sections()
        .filter(|s| s.name().is_ok_and(|n| matches!(n, ".symtab" | ".dynsym")))
        .map(|s| s.size())
        .sum();
    let is_go = file.section_by_name(".gopclntab").is_some()
        || file.section_by_name(".go.buildinfo").is_some();
    let python = crate::python::inspect(path, data);
    Ok(ObjectInfo {
        key,
        path: path.to_string(),
        file: None,
        build_id,
        segments,
        code_ranges,
        is_go,
        has_dwarf,
        dwarf_bytes,
        symbol_bytes,
        python,
        image: None,
    })
}

/// The build id of an executable on disk, as hex.
pub fn build_id_of(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    // SAFETY: read-only private mapping, dropped before returning.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let obj = object::File::parse(&*map).ok()?;
    let id = obj.build_id().ok()??;
    Some(id.iter().map(|x| format!("{x:02x}")).collect())
}

/// This process's own vDSO image. Every process on the host maps the same
/// one, so it is read once from our own address space.
pub fn own_vdso() -> Option<Vec<u8>> {
    let maps = crate::procfs::read_maps(std::process::id()).ok()?;
    let vdso = maps.iter().find(|m| m.path == "[vdso]")?;
    let len = (vdso.end - vdso.start) as usize;
    // SAFETY: the [vdso] mapping is readable and mapped for the whole life
    // of the process; we copy it out.
    let bytes = unsafe { std::slice::from_raw_parts(vdso.start as *const u8, len) };
    Some(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps_entry(start: u64, offset: u64) -> MapsEntry {
        MapsEntry {
            start,
            end: start + 0x1000,
            readable: true,
            executable: true,
            offset,
            dev: 1,
            inode: 2,
            path: "/x".into(),
            deleted: false,
        }
    }

    #[test]
    fn bias_uses_the_segment_of_the_mapping() {
        let info = ObjectInfo {
            key: ObjectKey::Vdso,
            path: "x".into(),
            file: None,
            build_id: None,
            segments: vec![
                Segment {
                    offset: 0,
                    vaddr: 0,
                    filesz: 0x500,
                    executable: false,
                },
                // Non-PIE style: vaddr 0x401000 for offset 0x1000.
                Segment {
                    offset: 0x1000,
                    vaddr: 0x401000,
                    filesz: 0x2000,
                    executable: true,
                },
            ],
            code_ranges: vec![(0x401000, 0x402000)],
            is_go: false,
            has_dwarf: false,
            dwarf_bytes: 0,
            symbol_bytes: 0,
            python: None,
            image: None,
        };
        let m = maps_entry(0x401000, 0x1000);
        assert_eq!(info.bias(&m), 0);
        let m = maps_entry(0x7f0000001000, 0x1000);
        assert_eq!(0x7f0000001234u64.wrapping_sub(info.bias(&m)), 0x401234);
        assert!(info.is_code(0x401500));
        assert!(!info.is_code(0x400100));
    }

    #[test]
    fn own_vdso_parses_with_an_unwind_table() {
        let image = own_vdso().expect("this process has a vDSO");
        let info = load_image(ObjectKey::Vdso, "[vdso]", image).unwrap();
        assert!(!unwind_rows(&info.table_source().unwrap()).is_empty());
        assert!(!info.code_ranges.is_empty());
    }

    #[test]
    fn libc_has_build_id_and_table() {
        let me = std::process::id();
        let maps = crate::procfs::read_maps(me).unwrap();
        let libc = maps
            .iter()
            .find(|m| m.executable && m.path.contains("libc.so"))
            .expect("test binary links libc");
        let f = open_mapped_file(me, libc).unwrap();
        let key = ObjectKey::File {
            dev: libc.dev,
            inode: libc.inode,
        };
        let info = load_file(key, &libc.path, f).unwrap();
        assert!(info.build_id.as_ref().is_some_and(|b| b.len() == 40));
        assert!(unwind_rows(&info.table_source().unwrap()).len() > 1000);
        assert!(info.symbol_path().unwrap().starts_with("/proc/self/fd/"));
    }
}
