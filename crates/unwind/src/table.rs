//! Compiling DWARF call frame information into flat unwind tables.

use gimli::{
    BaseAddresses, CieOrFde, DebugFrame, EhFrame, EndianSlice, LittleEndian, Register,
    RegisterRule, UnwindContext, UnwindSection,
};
use object::{Object, ObjectSection};
use thiserror::Error;

use crate::{CfaRule, RbpRule, UnwindRow};

const RBP: Register = Register(6);
const RSP: Register = Register(7);
const RA: Register = Register(16);

/// The expression binutils emits for lazy-binding PLT entries:
/// `rsp + 8 + ((rip & 15) >= N) << 3`, with N = 11 for .plt and 10 for
/// IBT-enabled .plt.sec. Byte 8 is `DW_OP_lit<N>`.
const PLT_EXPRESSION: [u8; 11] = [
    0x77, 0x08, // DW_OP_breg7 (rsp) 8
    0x80, 0x00, // DW_OP_breg16 (rip) 0
    0x3f, // DW_OP_lit15
    0x1a, // DW_OP_and
    0x30, // DW_OP_lit<N> (patched)
    0x2a, // DW_OP_ge
    0x33, // DW_OP_lit3
    0x24, // DW_OP_shl
    0x22, // DW_OP_plus
];

#[derive(Debug, Error)]
pub enum UnwindError {
    #[error("not an ELF file this unwinder supports: {0}")]
    Elf(String),
    #[error("unsupported architecture {0:?}: only x86-64 is supported")]
    Architecture(object::Architecture),
}

/// What went into a table, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// `.eh_frame`, `.debug_frame`, or `none`.
    pub source: &'static str,
    pub fdes: usize,
    /// FDEs or rows that could not be parsed (skipped).
    pub errors: usize,
    /// Rows whose CFA needs an expression other than the PLT one.
    pub unsupported_rows: usize,
    /// Rows past the 4 GiB of address space a table can describe.
    pub out_of_range_rows: usize,
}

/// A sorted unwind table for one object file.
#[derive(Debug, Clone, Default)]
pub struct UnwindTable {
    pub rows: Vec<UnwindRow>,
    pub stats: TableStats,
}

impl UnwindTable {
    /// The row that applies at `pc`, if any (for tests and diagnostics; the
    /// BPF side does the same search).
    pub fn lookup(&self, pc: u64) -> Option<&UnwindRow> {
        let pc = u32::try_from(pc).ok()?;
        let i = self.rows.partition_point(|r| r.pc <= pc);
        self.rows.get(i.checked_sub(1)?)
    }
}

/// Builds the unwind table of an ELF object from its `.eh_frame`, or from
/// `.debug_frame` when it has none. An object with neither gets an empty
/// table (the unwinder then follows frame pointers through it).
pub fn build_table(elf: &[u8]) -> Result<UnwindTable, UnwindError> {
    let mut entries = Collected {
        rows: Vec::new(),
        sorted: true,
    };
    let visited = visit(elf, false, &mut |start, cfa, rbp, stats| {
        entries.push(start, cfa, rbp, stats)
    })?;
    // Section order never gives up.
    let mut stats = visited.unwrap_or_default();
    Ok(UnwindTable {
        rows: flatten(entries, &mut stats),
        stats,
    })
}

/// An object's unwind table, counted but not kept: [`TableStream::for_each`]
/// evaluates the call frame information again and hands over the rows one
/// by one, so a table of millions of rows can be written where it goes
/// (the kernel) without ever being held in memory. FDEs are evaluated in
/// address order (sections list them in several runs: glibc's are not in
/// order); only objects whose FDEs overlap have their rows collected and
/// sorted, as [`build_table`] does.
pub struct TableStream<'a> {
    elf: &'a [u8],
    rows: usize,
    stats: TableStats,
    /// The rows of an object whose FDEs are out of order.
    collected: Option<Vec<UnwindRow>>,
}

/// Counts the rows of an object's unwind table (the same rows as
/// [`build_table`]'s), keeping none unless its FDEs overlap.
pub fn stream_table(elf: &[u8]) -> Result<TableStream<'_>, UnwindError> {
    let mut rows = 0usize;
    let mut merger = Merger::default();
    let visited = visit(elf, true, &mut |start, cfa, rbp, stats| {
        let Ok(pc) = u32::try_from(start) else {
            stats.out_of_range_rows += 1;
            return;
        };
        merger.push(UnwindRow { pc, cfa, rbp }, &mut |_| rows += 1);
    })?;
    if let Some(stats) = visited {
        merger.finish(&mut |_| rows += 1);
        return Ok(TableStream {
            elf,
            rows,
            stats,
            collected: None,
        });
    }
    let table = build_table(elf)?;
    Ok(TableStream {
        elf,
        rows: table.rows.len(),
        stats: table.stats,
        collected: Some(table.rows),
    })
}

impl TableStream<'_> {
    /// The number of rows [`for_each`](Self::for_each) hands over.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Hands over every row, in address order.
    pub fn for_each(&self, emit: &mut dyn FnMut(&UnwindRow)) -> Result<(), UnwindError> {
        if let Some(rows) = &self.collected {
            rows.iter().for_each(emit);
            return Ok(());
        }
        let mut merger = Merger::default();
        visit(self.elf, true, &mut |start, cfa, rbp, _| {
            if let Ok(pc) = u32::try_from(start) {
                merger.push(UnwindRow { pc, cfa, rbp }, &mut |r| emit(&r));
            }
        })?;
        merger.finish(&mut |r| emit(&r));
        Ok(())
    }
}

/// Evaluates an object's `.eh_frame` (or `.debug_frame` when it has no
/// FDEs) and hands every row start (FDE rows, then a gap at each FDE's
/// end) to `push`, in section order.
/// With `in_order`, FDEs are evaluated in address order, and `None` comes
/// back (with nothing pushed) when they overlap.
fn visit(elf: &[u8], in_order: bool, push: Push<'_>) -> Result<Option<TableStats>, UnwindError> {
    let file = object::File::parse(elf).map_err(|e| UnwindError::Elf(e.to_string()))?;
    if file.architecture() != object::Architecture::X86_64 {
        return Err(UnwindError::Architecture(file.architecture()));
    }
    let section_addr = |name: &str| file.section_by_name(name).map(|s| s.address());

    let mut bases = BaseAddresses::default();
    if let Some(a) = section_addr(".text") {
        bases = bases.set_text(a);
    }
    if let Some(a) = section_addr(".got") {
        bases = bases.set_got(a);
    }

    let mut stats = TableStats::default();
    if let Some(eh) = file.section_by_name(".eh_frame") {
        let data = eh.data().map_err(|e| UnwindError::Elf(e.to_string()))?;
        if !data.is_empty() {
            let mut section = EhFrame::new(data, LittleEndian);
            section.set_address_size(8);
            let bases = bases.clone().set_eh_frame(eh.address());
            stats.source = ".eh_frame";
            if !in_order {
                collect(&section, &bases, push, &mut stats);
            } else if !collect_in_order(&section, &bases, push, &mut stats) {
                return Ok(None);
            }
        }
    }
    // Rows are only pushed for FDEs: with none in .eh_frame, nothing was.
    if stats.fdes == 0 {
        if let Some(df) = file.section_by_name(".debug_frame") {
            let data = df
                .uncompressed_data()
                .map_err(|e| UnwindError::Elf(e.to_string()))?;
            let mut section = DebugFrame::new(&data, LittleEndian);
            section.set_address_size(8);
            stats = TableStats {
                source: ".debug_frame",
                ..Default::default()
            };
            if !in_order {
                collect(&section, &bases, push, &mut stats);
            } else if !collect_in_order(&section, &bases, push, &mut stats) {
                return Ok(None);
            }
        }
    }
    if stats.fdes == 0 {
        stats.source = "none";
    }
    Ok(Some(stats))
}

/// Merges rows as [`flatten`] does, for rows arriving in address order,
/// holding only the last few (the only ones a later row can replace or
/// make redundant).
#[derive(Default)]
struct Merger {
    tail: Vec<UnwindRow>,
}

impl Merger {
    fn push(&mut self, row: UnwindRow, emit: &mut dyn FnMut(UnwindRow)) {
        let same = |a: &UnwindRow, b: &UnwindRow| a.cfa == b.cfa && a.rbp == b.rbp;
        if let Some(last) = self.tail.last_mut() {
            if last.pc == row.pc {
                *last = row;
                let n = self.tail.len();
                if n > 1 && same(&self.tail[n - 2], &row) {
                    self.tail.pop();
                }
                return;
            }
            if same(last, &row) {
                return;
            }
        }
        self.tail.push(row);
        if self.tail.len() > 3 {
            emit(self.tail.remove(0));
        }
    }

    fn finish(&mut self, emit: &mut dyn FnMut(UnwindRow)) {
        for r in self.tail.drain(..) {
            emit(r);
        }
    }
}

/// Rows as collected, before merging: FDE rows and, after each FDE, a
/// gap row (`CfaRule::None`) at its end.
#[derive(Default)]
struct Collected {
    rows: Vec<UnwindRow>,
    /// Every row so far starts at or after the previous one (true for
    /// linker-ordered .eh_frame; saves sorting millions of rows).
    sorted: bool,
}

impl Collected {
    fn push(&mut self, start: u64, cfa: CfaRule, rbp: RbpRule, stats: &mut TableStats) {
        let Ok(pc) = u32::try_from(start) else {
            stats.out_of_range_rows += 1;
            return;
        };
        if let Some(last) = self.rows.last() {
            if pc < last.pc {
                self.sorted = false;
            }
        }
        self.rows.push(UnwindRow { pc, cfa, rbp });
    }
}

type Push<'p> = &'p mut dyn FnMut(u64, CfaRule, RbpRule, &mut TableStats);

/// Evaluates every FDE in section order.
fn collect<'a, S>(section: &S, bases: &BaseAddresses, out: Push<'_>, stats: &mut TableStats)
where
    S: UnwindSection<EndianSlice<'a, LittleEndian>>,
{
    let mut ctx = Box::new(UnwindContext::new());
    let mut iter = section.entries(bases);
    loop {
        let entry = match iter.next() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            // The rest of the section cannot be found once an entry's
            // length is unreadable.
            Err(_) => {
                stats.errors += 1;
                break;
            }
        };
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        let fde = match partial.parse(|s, b, o| s.cie_from_offset(b, o)) {
            Ok(f) => f,
            Err(_) => {
                stats.errors += 1;
                continue;
            }
        };
        stats.fdes += 1;
        evaluate(section, bases, &mut ctx, &fde, out, stats);
    }
}

/// Evaluates every FDE in address order, so that rows come out sorted;
/// false (and nothing pushed) when FDEs overlap, which no order can sort.
/// The FDEs' addresses and offsets (24 bytes each) are all it keeps.
fn collect_in_order<'a, S>(
    section: &S,
    bases: &BaseAddresses,
    out: Push<'_>,
    stats: &mut TableStats,
) -> bool
where
    S: UnwindSection<EndianSlice<'a, LittleEndian>>,
{
    let mut fdes: Vec<(u64, u64, usize)> = Vec::new();
    let mut iter = section.entries(bases);
    loop {
        let entry = match iter.next() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(_) => {
                stats.errors += 1;
                break;
            }
        };
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        match partial.parse(|s, b, o| s.cie_from_offset(b, o)) {
            Ok(f) => {
                stats.fdes += 1;
                fdes.push((f.initial_address(), f.end_address(), f.offset()));
            }
            Err(_) => stats.errors += 1,
        }
    }
    // Stable: FDEs at the same address keep their section order.
    fdes.sort_by_key(|f| f.0);
    let mut end = 0;
    for f in &fdes {
        if f.0 < end {
            return false;
        }
        end = end.max(f.1);
    }
    let mut ctx = Box::new(UnwindContext::new());
    for &(_, _, offset) in &fdes {
        // Parsed once already: this cannot fail differently now.
        if let Ok(fde) = section.fde_from_offset(bases, S::Offset::from(offset), |s, b, o| {
            s.cie_from_offset(b, o)
        }) {
            evaluate(section, bases, &mut ctx, &fde, out, stats);
        }
    }
    true
}

/// Pushes an FDE's rows, then a gap at its end.
fn evaluate<'a, S>(
    section: &S,
    bases: &BaseAddresses,
    ctx: &mut UnwindContext<usize>,
    fde: &gimli::FrameDescriptionEntry<EndianSlice<'a, LittleEndian>>,
    out: Push<'_>,
    stats: &mut TableStats,
) where
    S: UnwindSection<EndianSlice<'a, LittleEndian>>,
{
    let mut table = match fde.rows(section, bases, ctx) {
        Ok(t) => t,
        Err(_) => {
            stats.errors += 1;
            return;
        }
    };
    loop {
        match table.next_row() {
            // A rule that starts at the FDE's end (a last advance past the
            // final instruction) applies to no code of it: the gap does.
            Ok(Some(row)) if row.start_address() >= fde.end_address() => {}
            Ok(Some(row)) => {
                let cfa = match row.cfa() {
                    gimli::CfaRule::RegisterAndOffset { register, offset } => {
                        match (*register, i32::try_from(*offset)) {
                            (RSP, Ok(o)) => CfaRule::RspOffset(o),
                            (RBP, Ok(o)) => CfaRule::RbpOffset(o),
                            _ => CfaRule::Unsupported,
                        }
                    }
                    gimli::CfaRule::Expression(expr) => match expr.get(section) {
                        Ok(e) => plt_threshold(e.0.slice())
                            .map(|threshold| CfaRule::Plt { threshold })
                            .unwrap_or(CfaRule::Unsupported),
                        Err(_) => CfaRule::Unsupported,
                    },
                };
                let cfa = match row.register(RA) {
                    Some(RegisterRule::Undefined) => CfaRule::End,
                    _ => cfa,
                };
                if cfa == CfaRule::Unsupported {
                    stats.unsupported_rows += 1;
                }
                let rbp = match row.register(RBP) {
                    Some(RegisterRule::Offset(o)) => match i16::try_from(o) {
                        Ok(o) => RbpRule::Offset(o),
                        Err(_) => RbpRule::Same,
                    },
                    _ => RbpRule::Same,
                };
                out(row.start_address(), cfa, rbp, stats);
            }
            Ok(None) => break,
            Err(_) => {
                stats.errors += 1;
                break;
            }
        }
    }
    // Code after this FDE has no information until the next FDE starts.
    out(fde.end_address(), CfaRule::None, RbpRule::Same, stats);
}

fn plt_threshold(expr: &[u8]) -> Option<u8> {
    if expr.len() != PLT_EXPRESSION.len() {
        return None;
    }
    for (i, (&got, &want)) in expr.iter().zip(PLT_EXPRESSION.iter()).enumerate() {
        if i == 6 {
            if !(0x30..=0x4f).contains(&got) {
                return None;
            }
        } else if got != want {
            return None;
        }
    }
    Some(expr[6] - 0x30)
}

/// Sorts rows if needed, lets a real rule win over a gap marker at the
/// same address, and drops rows that repeat the previous rule; in place.
fn flatten(collected: Collected, _stats: &mut TableStats) -> Vec<UnwindRow> {
    let mut rows = collected.rows;
    if !collected.sorted {
        // Stable: at equal addresses a gap (pushed after its FDE's rows)
        // must come before the next FDE's first row.
        rows.sort_by_key(|r| (r.pc, r.cfa != CfaRule::None));
    }
    let mut out = 0usize;
    for i in 0..rows.len() {
        let row = rows[i];
        if out > 0 && rows[out - 1].pc == row.pc {
            rows[out - 1] = row;
            // The replacement may now repeat the row before it.
            if out > 1 && rows[out - 2].cfa == row.cfa && rows[out - 2].rbp == row.rbp {
                out -= 1;
            }
            continue;
        }
        if out > 0 && rows[out - 1].cfa == row.cfa && rows[out - 1].rbp == row.rbp {
            continue;
        }
        rows[out] = row;
        out += 1;
    }
    rows.truncate(out);
    rows.shrink_to_fit();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collected(
        entries: &[(u64, Option<(CfaRule, RbpRule)>)],
        stats: &mut TableStats,
    ) -> Collected {
        let mut c = Collected {
            rows: Vec::new(),
            sorted: true,
        };
        for &(start, rule) in entries {
            let (cfa, rbp) = rule.unwrap_or((CfaRule::None, RbpRule::Same));
            c.push(start, cfa, rbp, stats);
        }
        c
    }

    #[test]
    fn plt_expression_is_recognised() {
        let mut e = PLT_EXPRESSION;
        e[6] = 0x3b;
        assert_eq!(plt_threshold(&e), Some(11));
        e[6] = 0x3a;
        assert_eq!(plt_threshold(&e), Some(10));
        e[0] = 0x78;
        assert_eq!(plt_threshold(&e), None);
        assert_eq!(plt_threshold(&[0x77, 0x08]), None);
    }

    #[test]
    fn flatten_replaces_gaps_and_merges_repeats() {
        let rsp8 = Some((CfaRule::RspOffset(8), RbpRule::Same));
        let rsp16 = Some((CfaRule::RspOffset(16), RbpRule::Same));
        let mut stats = TableStats::default();
        let entries = [
            (0x100, rsp8),
            (0x101, rsp16),
            (0x110, None),
            // next FDE starts where the previous ended
            (0x110, rsp8),
            (0x120, None),
            (0x130, rsp8),
            (0x131, rsp8),
            (0x140, None),
            (0x1_0000_0000, rsp8),
        ];
        let c = collected(&entries, &mut stats);
        assert!(c.sorted);
        let rows = flatten(c, &mut stats);
        let got: Vec<(u32, CfaRule)> = rows.iter().map(|r| (r.pc, r.cfa)).collect();
        assert_eq!(
            got,
            vec![
                (0x100, CfaRule::RspOffset(8)),
                (0x101, CfaRule::RspOffset(16)),
                (0x110, CfaRule::RspOffset(8)),
                (0x120, CfaRule::None),
                (0x130, CfaRule::RspOffset(8)),
                (0x140, CfaRule::None),
            ]
        );
        assert_eq!(stats.out_of_range_rows, 1);
    }

    #[test]
    fn fdes_out_of_address_order_give_the_same_table() {
        let rsp8 = Some((CfaRule::RspOffset(8), RbpRule::Same));
        let rbp16 = Some((CfaRule::RbpOffset(16), RbpRule::Offset(-16)));
        let mut stats = TableStats::default();
        let in_order = [
            (0x100, rsp8),
            (0x104, rbp16),
            (0x110, None),
            (0x110, rsp8),
            (0x118, None),
        ];
        let shuffled = [
            (0x110, rsp8),
            (0x118, None),
            (0x100, rsp8),
            (0x104, rbp16),
            (0x110, None),
        ];
        let a = flatten(collected(&in_order, &mut stats), &mut stats);
        let c = collected(&shuffled, &mut stats);
        assert!(!c.sorted);
        let b = flatten(c, &mut stats);
        assert_eq!(a, b);
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn real_libc_table_is_sorted_and_ends_stacks() {
        let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("glibc");
        let t = build_table(&libc).unwrap();
        assert!(t.rows.len() > 10_000);
        assert!(t.rows.windows(2).all(|w| w[0].pc < w[1].pc));
        assert!(t
            .rows
            .windows(2)
            .all(|w| (w[0].cfa, w[0].rbp) != (w[1].cfa, w[1].rbp)));
        // Thread entry points mark the end of the stack.
        assert!(t.rows.iter().any(|r| r.cfa == CfaRule::End));
    }

    #[test]
    fn streaming_merges_rows_as_flatten_does() {
        // Sorted rows with repeated addresses (a gap at one FDE's end, the
        // next FDE's first row at the same address) and repeated rules.
        let rules = [
            (CfaRule::None, RbpRule::Same),
            (CfaRule::RspOffset(8), RbpRule::Same),
            (CfaRule::RspOffset(16), RbpRule::Same),
            (CfaRule::RbpOffset(16), RbpRule::Offset(-16)),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..2000 {
            let mut stats = TableStats::default();
            let mut pc = 0x1000u64;
            let mut entries = Vec::new();
            for _ in 0..next(40) {
                pc += next(3); // 0: the same address again
                let (cfa, rbp) = rules[next(rules.len() as u64) as usize];
                entries.push((pc, Some((cfa, rbp))));
            }
            let want = flatten(collected(&entries, &mut stats), &mut stats);
            let mut got = Vec::new();
            let mut m = Merger::default();
            for &(pc, rule) in &entries {
                let (cfa, rbp) = rule.unwrap();
                let row = UnwindRow {
                    pc: pc as u32,
                    cfa,
                    rbp,
                };
                m.push(row, &mut |r| got.push(r));
            }
            m.finish(&mut |r| got.push(r));
            assert_eq!(got, want, "{entries:?}");
        }
    }

    #[test]
    fn streamed_tables_of_real_objects_are_the_built_ones() {
        let own = std::env::current_exe().unwrap();
        for path in [
            std::path::Path::new("/lib/x86_64-linux-gnu/libc.so.6"),
            own.as_path(),
        ] {
            let elf = std::fs::read(path).unwrap();
            let built = build_table(&elf).unwrap();
            let stream = stream_table(&elf).unwrap();
            assert!(
                stream.collected.is_none(),
                "{}: FDEs in order",
                path.display()
            );
            assert_eq!(stream.rows(), built.rows.len(), "{}", path.display());
            assert_eq!(stream.stats(), &built.stats);
            let mut got = Vec::with_capacity(stream.rows());
            stream.for_each(&mut |r| got.push(*r)).unwrap();
            assert!(got == built.rows, "{}: rows differ", path.display());
        }
    }

    #[test]
    fn rejects_non_elf() {
        assert!(matches!(
            build_table(b"not an elf"),
            Err(UnwindError::Elf(_))
        ));
    }
}
