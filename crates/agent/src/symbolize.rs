//! Naming addresses: user code through blazesym (ELF symbols, DWARF with
//! inlined functions, demangling), the kernel through kallsyms, the vDSO
//! from its own dynamic symbols. Results are cached per object and
//! address, so each distinct address is resolved once per session.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use blazesym::symbolize::evict::{Elf as EvictElf, Evict};
use blazesym::symbolize::source::{Elf, Kernel, Source};
use blazesym::symbolize::{Input, Sym, Symbolized, Symbolizer as Blaze};
use blazesym::MaybeDefault;
use object::{Object, ObjectSymbol};

use crate::objects::{ObjectInfo, ObjectKey};

/// Most addresses whose names are kept, per cache (user, kernel,
/// Python); a cache past it starts afresh before the next drain is
/// named (a few hundred bytes an entry).
pub const MAX_CACHED_ADDRESSES: usize = 1 << 17;

/// One function at an address; an address inside inlined code has several.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrameInfo {
    pub name: String,
    pub file: Option<String>,
    pub line: u32,
}

/// Names of an address, innermost (inlined callee) first; `None` when it
/// could not be named.
pub type Names = Option<Rc<[FrameInfo]>>;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SymbolizerStats {
    /// Distinct addresses resolved (cache misses).
    pub resolved: u64,
    pub named: u64,
    /// Resolved to a data symbol or outside code: left unnamed on purpose.
    pub rejected_data: u64,
    pub errors: u64,
    /// Time spent resolving (cache misses only).
    pub elapsed: std::time::Duration,
    /// Objects named from their symbol table only because their DWARF is
    /// larger than the limit (see [`Symbolizer::with_max_dwarf_bytes`]).
    pub dwarf_over_limit: u64,
    /// Objects whose parsed symbols blazesym dropped to stay within the
    /// cache's size (see [`Symbolizer::with_symbol_cache_bytes`]).
    pub symbol_cache_evictions: u64,
}

/// What blazesym keeps for objects (their symbol tables, DWARF and the
/// mapped pages it read) is bounded by default to this many bytes (an
/// object counts twice its symbol tables, plus the DWARF read).
pub const DEFAULT_SYMBOL_CACHE_BYTES: u64 = 32 << 20;

/// An object blazesym holds parsed: the paths it knows it by, what it
/// costs, when it was last used.
struct Held {
    paths: Vec<std::path::PathBuf>,
    bytes: u64,
    last_used: u64,
}

/// DWARF larger than this is not read by default: blazesym maps it and
/// keeps what it parsed, and a 120 MB binary with debug info took the
/// agent's memory past 200 MiB.
pub const DEFAULT_MAX_DWARF_BYTES: u64 = 16 << 20;

pub struct Symbolizer {
    blaze: Blaze,
    user: HashMap<(ObjectKey, u64), Names>,
    kernel: HashMap<u64, Names>,
    vdso_symbols: Option<Vec<(u64, u64, String)>>,
    /// Python code objects by (process, code object address).
    python: HashMap<(u32, u64), Names>,
    /// Where kernel symbols are read from, chosen on first use.
    kallsyms: Option<std::path::PathBuf>,
    max_dwarf_bytes: u64,
    /// Objects whose DWARF was left unread for its size (counted once).
    dwarf_skipped: HashSet<ObjectKey>,
    held: HashMap<ObjectKey, Held>,
    held_bytes: u64,
    cache_bytes: u64,
    clock: u64,
    pub stats: SymbolizerStats,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    pub fn new() -> Self {
        Symbolizer {
            blaze: Blaze::builder()
                .enable_inlined_fns(true)
                .enable_code_info(true)
                .enable_demangling(true)
                .build(),
            user: HashMap::new(),
            kernel: HashMap::new(),
            vdso_symbols: None,
            python: HashMap::new(),
            kallsyms: None,
            max_dwarf_bytes: DEFAULT_MAX_DWARF_BYTES,
            dwarf_skipped: HashSet::new(),
            held: HashMap::new(),
            held_bytes: 0,
            cache_bytes: DEFAULT_SYMBOL_CACHE_BYTES,
            clock: 0,
            stats: SymbolizerStats::default(),
        }
    }

    /// What blazesym keeps parsed is bounded by the size of the sections
    /// it read for each object (symbol tables, and DWARF when used): past
    /// `bytes`, the least recently used objects are dropped, to be parsed
    /// again when they have new addresses. An object larger than the
    /// bound alone is dropped after each use.
    pub fn with_symbol_cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Bytes of sections blazesym holds parsed now.
    pub fn symbol_cache_held(&self) -> u64 {
        self.held_bytes
    }

    /// Objects whose DWARF is larger than `bytes` are named from their
    /// symbol table only: function names, without inlined functions,
    /// files or lines.
    pub fn with_max_dwarf_bytes(mut self, bytes: u64) -> Self {
        self.max_dwarf_bytes = bytes;
        self
    }

    /// Cached names of an address of `object`, if already resolved.
    pub fn cached(&self, key: ObjectKey, vaddr: u64) -> Option<&Names> {
        self.user.get(&(key, vaddr))
    }

    pub fn cached_kernel(&self, addr: u64) -> Option<&Names> {
        self.kernel.get(&addr)
    }

    pub fn cached_python(&self, pid: u32, code: u64) -> Option<&Names> {
        self.python.get(&(pid, code))
    }

    /// Names a Python code object once, from what `fetch` returns
    /// (qualified name, file, first line).
    pub fn resolve_python(
        &mut self,
        pid: u32,
        code: u64,
        fetch: impl FnOnce() -> Option<(String, String, u32)>,
    ) {
        if self.python.contains_key(&(pid, code)) {
            return;
        }
        self.stats.resolved += 1;
        let names: Names =
            fetch()
                .filter(|(name, _, _)| !name.is_empty())
                .map(|(name, file, line)| {
                    Rc::from(vec![FrameInfo {
                        name,
                        file: (!file.is_empty()).then_some(file),
                        line,
                    }])
                });
        self.count(&names);
        self.python.insert((pid, code), names);
    }

    /// Drops what is cached for a process's Python code objects.
    pub fn forget_process(&mut self, pid: u32) {
        self.python.retain(|(p, _), _| *p != pid);
    }

    /// Drops what is cached for objects the tracker released: their
    /// names, and blazesym's parsed symbols, DWARF and open file, which it
    /// keeps by path (the path of a handle another object can take next).
    /// Call while the objects' handles are still open.
    pub fn forget_objects(&mut self, objects: &[ObjectInfo]) {
        if objects.is_empty() {
            return;
        }
        let keys: HashSet<ObjectKey> = objects.iter().map(|o| o.key).collect();
        self.user.retain(|(k, _), _| !keys.contains(k));
        self.dwarf_skipped.retain(|k| !keys.contains(k));
        for k in &keys {
            if let Some(h) = self.held.remove(k) {
                self.held_bytes -= h.bytes;
            }
        }
        for o in objects {
            if o.key == ObjectKey::Vdso {
                self.vdso_symbols = None;
            }
            for path in [o.symbol_path(), o.debug_file()].into_iter().flatten() {
                // Evicting what is not cached is not an error.
                let _ = self.blaze.evict(&Evict::Elf(EvictElf::new(path)));
            }
        }
    }

    /// Keeps every cache within [`MAX_CACHED_ADDRESSES`]. Called before a
    /// drain's addresses are resolved, so none resolved for it is lost.
    pub fn trim(&mut self) {
        fn bound<K, V>(m: &mut HashMap<K, V>) {
            if m.len() > MAX_CACHED_ADDRESSES {
                *m = HashMap::new();
            }
        }
        bound(&mut self.user);
        bound(&mut self.kernel);
        bound(&mut self.python);
    }

    /// Entries in the user, kernel and Python caches.
    pub fn cache_sizes(&self) -> (usize, usize, usize) {
        (self.user.len(), self.kernel.len(), self.python.len())
    }

    /// Resolves the addresses (ELF virtual addresses of `object`) that are
    /// not cached yet, in one batch.
    pub fn resolve_object(&mut self, object: &ObjectInfo, vaddrs: &[u64]) {
        let started = std::time::Instant::now();
        if self.resolve_object_inner(object, vaddrs) {
            // What was read of the object's file stays resident while
            // blazesym keeps it mapped: dropped after each object, so
            // only one at a time counts in the agent's RSS.
            crate::memory::release_file_pages();
        }
        self.stats.elapsed += started.elapsed();
    }

    /// Whether blazesym read the object's file.
    fn resolve_object_inner(&mut self, object: &ObjectInfo, vaddrs: &[u64]) -> bool {
        let todo = uncached(vaddrs, |a| self.user.contains_key(&(object.key, a)));
        if todo.is_empty() {
            return false;
        }
        self.stats.resolved += todo.len() as u64;
        if object.key == ObjectKey::Vdso {
            let names: Vec<Names> = todo.iter().map(|&a| self.vdso_name(object, a)).collect();
            for (a, n) in todo.into_iter().zip(names) {
                self.count(&n);
                self.user.insert((object.key, a), n);
            }
            return false;
        }
        // DWARF embedded in the object (inlined functions, lines) is used;
        // a distribution's separate debug file only for its symbol table:
        // its compressed DWARF costs more to inflate than the rest of a
        // recording.
        let dwarf_fits = object.dwarf_bytes <= self.max_dwarf_bytes;
        if object.has_dwarf && !dwarf_fits && self.dwarf_skipped.insert(object.key) {
            self.stats.dwarf_over_limit += 1;
        }
        let (path, debug_syms) = match (object.has_dwarf, object.debug_file()) {
            (true, _) if dwarf_fits => (object.symbol_path(), true),
            (true, _) => (object.symbol_path(), false),
            (false, Some(debug)) => (Some(debug), false),
            (false, None) => (object.symbol_path(), false),
        };
        let Some(path) = path else {
            for a in todo {
                self.user.insert((object.key, a), None);
            }
            return false;
        };
        let mut elf = Elf::new(path.clone());
        elf.debug_syms = debug_syms;
        let src = Source::Elf(elf);
        let results = match self.blaze.symbolize(&src, Input::VirtOffset(&todo)) {
            Ok(r) => r,
            Err(_) => {
                self.stats.errors += 1;
                vec![Symbolized::Unknown(blazesym::symbolize::Reason::IgnoredError); todo.len()]
            }
        };
        // Measured: naming from a symbol table keeps about twice its size
        // (the table mapped and read whole, an index, the names found).
        let bytes = 2 * object.symbol_bytes + if debug_syms { object.dwarf_bytes } else { 0 };
        let mut named = Vec::with_capacity(todo.len());
        for (&addr, result) in todo.iter().zip(results) {
            let names = match result {
                Symbolized::Sym(sym) => {
                    // blazesym considers data symbols too; a sampled pc is
                    // code, so a symbol outside code means a bad address.
                    // A function in parts (hot and cold, as GCC splits
                    // CPython's eval loop) comes from DWARF's range list
                    // with no start or size: the address itself must then
                    // be code.
                    let start = match (sym.addr, sym.size) {
                        (0, None) => addr,
                        (start, _) => start,
                    };
                    if !object.is_code(start) || !within(&sym, addr, start) {
                        self.stats.rejected_data += 1;
                        None
                    } else {
                        Some(frames_of(&sym))
                    }
                }
                Symbolized::Unknown(_) => None,
            };
            named.push((addr, names));
        }
        for (addr, names) in named {
            self.count(&names);
            self.user.insert((object.key, addr), names);
        }
        self.hold(object.key, path, bytes);
        true
    }

    /// Notes what blazesym now holds for an object, then drops the least
    /// recently used objects past the cache's size.
    fn hold(&mut self, key: ObjectKey, path: std::path::PathBuf, bytes: u64) {
        self.clock += 1;
        let h = self.held.entry(key).or_insert(Held {
            paths: Vec::new(),
            bytes: 0,
            last_used: 0,
        });
        h.last_used = self.clock;
        if !h.paths.contains(&path) {
            h.paths.push(path);
        }
        if bytes > h.bytes {
            self.held_bytes += bytes - h.bytes;
            h.bytes = bytes;
        }
        while self.held_bytes > self.cache_bytes {
            let Some(oldest) = self
                .held
                .iter()
                .min_by_key(|(_, h)| h.last_used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(h) = self.held.remove(&oldest) {
                self.held_bytes -= h.bytes;
                self.stats.symbol_cache_evictions += 1;
                for path in h.paths {
                    let _ = self.blaze.evict(&Evict::Elf(EvictElf::new(path)));
                }
            }
        }
    }

    /// Resolves kernel addresses not cached yet.
    pub fn resolve_kernel(&mut self, addrs: &[u64]) {
        let started = std::time::Instant::now();
        self.resolve_kernel_inner(addrs);
        self.stats.elapsed += started.elapsed();
    }

    fn resolve_kernel_inner(&mut self, addrs: &[u64]) {
        let todo = uncached(addrs, |a| self.kernel.contains_key(&a));
        if todo.is_empty() {
            return;
        }
        self.stats.resolved += todo.len() as u64;
        let source = self
            .kallsyms
            .get_or_insert_with(crate::kallsyms::source)
            .clone();
        let mut resolved = self.kernel_names(&source, &todo);
        // The per-boot copy lacks what appeared since (BPF programs,
        // new modules): ask the kernel itself for what it could not name.
        let missing: Vec<u64> = resolved
            .iter()
            .filter(|(_, n)| n.is_none())
            .map(|(a, _)| *a)
            .collect();
        let proc = std::path::PathBuf::from(crate::kallsyms::PROC_KALLSYMS);
        if !missing.is_empty() && source != proc {
            let again: HashMap<u64, Names> =
                self.kernel_names(&proc, &missing).into_iter().collect();
            for (a, n) in resolved.iter_mut() {
                if n.is_none() {
                    *n = again.get(a).cloned().flatten();
                }
            }
        }
        for (a, names) in resolved {
            self.count(&names);
            self.kernel.insert(a, names);
        }
    }

    fn kernel_names(&mut self, kallsyms: &std::path::Path, addrs: &[u64]) -> Vec<(u64, Names)> {
        // kallsyms is exact and cheap; vmlinux DWARF is rarely installed
        // and costly to parse.
        let kernel = Kernel {
            kallsyms: MaybeDefault::Some(kallsyms.to_path_buf()),
            vmlinux: MaybeDefault::None,
            debug_syms: false,
            ..Default::default()
        };
        let src = Source::Kernel(kernel);
        let results = match self.blaze.symbolize(&src, Input::AbsAddr(addrs)) {
            Ok(r) => r,
            Err(_) => {
                self.stats.errors += 1;
                vec![Symbolized::Unknown(blazesym::symbolize::Reason::IgnoredError); addrs.len()]
            }
        };
        addrs
            .iter()
            .zip(results)
            .map(|(&a, r)| (a, r.into_sym().map(|s| frames_of(&s))))
            .collect()
    }

    fn count(&mut self, names: &Names) {
        if names.is_some() {
            self.stats.named += 1;
        }
    }

    fn vdso_name(&mut self, object: &ObjectInfo, vaddr: u64) -> Names {
        if self.vdso_symbols.is_none() {
            let mut syms = Vec::new();
            if let Some(image) = &object.image {
                if let Ok(file) = object::File::parse(image.as_slice()) {
                    for s in file.dynamic_symbols() {
                        if s.kind() == object::SymbolKind::Text && s.size() > 0 {
                            if let Ok(name) = s.name() {
                                syms.push((s.address(), s.address() + s.size(), name.to_string()));
                            }
                        }
                    }
                }
            }
            syms.sort();
            self.vdso_symbols = Some(syms);
        }
        let syms = self.vdso_symbols.as_ref()?;
        let i = syms.partition_point(|s| s.0 <= vaddr);
        let (start, end, name) = syms.get(i.checked_sub(1)?)?;
        (vaddr >= *start && vaddr < *end).then(|| {
            Rc::from(vec![FrameInfo {
                name: name.clone(),
                file: None,
                line: 0,
            }])
        })
    }
}

/// The distinct addresses not resolved yet, sorted (blazesym resolves a
/// sorted batch fastest).
fn uncached(addrs: &[u64], cached: impl Fn(u64) -> bool) -> Vec<u64> {
    let mut todo: Vec<u64> = addrs.iter().copied().filter(|&a| !cached(a)).collect();
    todo.sort_unstable();
    todo.dedup();
    todo
}

/// Whether `addr` falls inside the symbol (when its size is known).
fn within(sym: &Sym<'_>, addr: u64, start: u64) -> bool {
    match sym.size {
        Some(size) if size > 0 => addr >= start && addr < start + size as u64,
        _ => true,
    }
}

fn frames_of(sym: &Sym<'_>) -> Rc<[FrameInfo]> {
    let info = |ci: &Option<blazesym::symbolize::CodeInfo<'_>>| match ci {
        Some(ci) => (
            Some(ci.to_path().to_string_lossy().into_owned()),
            ci.line.unwrap_or(0),
        ),
        None => (None, 0),
    };
    // blazesym lists inlined functions outermost first; each one's code
    // info is where in it the address is. The symbol itself is outermost.
    let mut frames = Vec::with_capacity(sym.inlined.len() + 1);
    for f in sym.inlined.iter().rev() {
        let (file, line) = info(&f.code_info);
        frames.push(FrameInfo {
            name: f.name.to_string(),
            file,
            line,
        });
    }
    let (file, line) = match &sym.code_info {
        Some(ci) => (
            Some(ci.to_path().to_string_lossy().into_owned()),
            ci.line.unwrap_or(0),
        ),
        None => (None, 0),
    };
    frames.push(FrameInfo {
        name: sym.name.to_string(),
        file,
        line,
    });
    Rc::from(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{load_file, open_mapped_file};

    /// A data object: an address inside it must never be named after it.
    static A_DATA_OBJECT: [u8; 4096] = [7; 4096];

    #[inline(never)]
    fn a_function_with_a_name() -> u64 {
        std::hint::black_box(7)
    }

    #[test]
    fn names_own_function_and_rejects_non_code() {
        let me = std::process::id();
        let maps = crate::procfs::read_maps(me).unwrap();
        let here = a_function_with_a_name as *const () as usize as u64;
        let m = maps
            .iter()
            .find(|m| m.executable && m.start <= here && here < m.end)
            .unwrap();
        let f = open_mapped_file(me, m).unwrap();
        let key = ObjectKey::File {
            dev: m.dev,
            inode: m.inode,
        };
        let obj = load_file(key, &m.path, f).unwrap();
        let vaddr = here - obj.bias(m);
        // The data object lives in another mapping of the same file.
        let data = std::hint::black_box(&A_DATA_OBJECT) as *const _ as u64 + 100;
        let dm = maps
            .iter()
            .find(|d| d.start <= data && data < d.end && d.inode == m.inode)
            .unwrap();
        let data_vaddr = data.wrapping_sub(obj.bias(dm));
        assert!(!obj.is_code(data_vaddr));
        let mut s = Symbolizer::new();
        s.resolve_object(&obj, &[vaddr + 1, 0, data_vaddr]);
        let names = s.cached(key, vaddr + 1).unwrap().clone().unwrap();
        assert!(
            names
                .last()
                .unwrap()
                .name
                .contains("a_function_with_a_name"),
            "{names:?}"
        );
        // Address 0 is not code; nor is a data object, whatever its symbol.
        assert_eq!(s.cached(key, 0), Some(&None));
        assert_eq!(s.cached(key, data_vaddr), Some(&None));
        assert!(s.stats.rejected_data >= 1, "{:?}", s.stats);
        assert_eq!(s.stats.named, 1);
    }

    #[test]
    fn dwarf_over_the_limit_is_left_for_the_symbol_table() {
        let me = std::process::id();
        let maps = crate::procfs::read_maps(me).unwrap();
        let here = a_function_with_a_name as *const () as usize as u64;
        let m = maps
            .iter()
            .find(|m| m.executable && m.start <= here && here < m.end)
            .unwrap();
        let key = ObjectKey::File {
            dev: m.dev,
            inode: m.inode,
        };
        let obj = load_file(key, &m.path, open_mapped_file(me, m).unwrap()).unwrap();
        assert!(
            obj.has_dwarf && obj.dwarf_bytes > 0,
            "a test build has DWARF"
        );
        let vaddr = here - obj.bias(m) + 1;

        let mut s = Symbolizer::new().with_max_dwarf_bytes(obj.dwarf_bytes);
        s.resolve_object(&obj, &[vaddr]);
        let names = s.cached(key, vaddr).unwrap().clone().unwrap();
        assert!(names.last().unwrap().file.is_some(), "{names:?}");
        assert_eq!(s.stats.dwarf_over_limit, 0);

        let mut s = Symbolizer::new().with_max_dwarf_bytes(obj.dwarf_bytes - 1);
        s.resolve_object(&obj, &[vaddr]);
        s.resolve_object(&obj, &[vaddr + 1]);
        let names = s.cached(key, vaddr).unwrap().clone().unwrap();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(
            names[0].name.contains("a_function_with_a_name"),
            "{names:?}"
        );
        assert_eq!(names[0].file, None);
        assert_eq!(s.stats.dwarf_over_limit, 1, "counted once per object");
    }

    /// The object mapped at `addr` in this process, and `addr`'s ELF
    /// virtual address in it.
    fn object_at(addr: u64) -> (ObjectInfo, u64) {
        let me = std::process::id();
        let maps = crate::procfs::read_maps(me).unwrap();
        let m = maps
            .iter()
            .find(|m| m.executable && m.start <= addr && addr < m.end)
            .unwrap();
        let key = ObjectKey::File {
            dev: m.dev,
            inode: m.inode,
        };
        let obj = load_file(key, &m.path, open_mapped_file(me, m).unwrap()).unwrap();
        let vaddr = addr - obj.bias(m);
        (obj, vaddr)
    }

    #[test]
    fn blazesym_holds_objects_within_the_cache_size() {
        let (own, own_addr) = object_at(a_function_with_a_name as *const () as usize as u64);
        let (libc, libc_addr) = object_at(libc::getpid as *const () as usize as u64);
        assert!(own.symbol_bytes > 0 && libc.symbol_bytes > 0);
        // Room for either, not both.
        let mut s = Symbolizer::new()
            .with_max_dwarf_bytes(0)
            .with_symbol_cache_bytes(2 * own.symbol_bytes.max(libc.symbol_bytes));
        s.resolve_object(&libc, &[libc_addr]);
        assert_eq!(s.symbol_cache_held(), 2 * libc.symbol_bytes);
        s.resolve_object(&own, &[own_addr]);
        assert_eq!(s.symbol_cache_held(), 2 * own.symbol_bytes, "libc dropped");
        assert_eq!(s.stats.symbol_cache_evictions, 1);
        // What was named stays named; a new address is parsed again.
        assert!(s.cached(libc.key, libc_addr).unwrap().is_some());
        s.resolve_object(&libc, &[libc_addr + 1]);
        assert!(s.cached(libc.key, libc_addr + 1).unwrap().is_some());
        assert_eq!(s.stats.symbol_cache_evictions, 2);
        // Larger than the cache alone: dropped after each use.
        let mut s = Symbolizer::new()
            .with_max_dwarf_bytes(0)
            .with_symbol_cache_bytes(2 * own.symbol_bytes - 1);
        s.resolve_object(&own, &[own_addr]);
        assert_eq!(s.symbol_cache_held(), 0);
        assert!(s.cached(own.key, own_addr).unwrap().is_some());
    }

    #[test]
    fn root_names_kernel_addresses_from_kallsyms() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "kernel addresses are visible to root only"
        );
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
        let Some(addr) = text.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let kind = it.next()?;
            let name = it.next()?;
            (name == "schedule" && (kind == "T" || kind == "t") && addr != 0).then_some(addr)
        }) else {
            panic!("no address for schedule in /proc/kallsyms");
        };
        let mut s = Symbolizer::new();
        s.resolve_kernel(&[addr + 4]);
        let names = s.cached_kernel(addr + 4).unwrap().clone().unwrap();
        assert_eq!(names[0].name, "schedule");
    }
}
