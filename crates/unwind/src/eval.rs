//! Applying unwind rows to registers and stack memory, frame by frame.
//!
//! This is the user-space twin of the BPF unwinder (`unwind_step` in
//! `crates/bpf/src/bpf/profiler.bpf.c`): the same mapping and row
//! searches, the same rules, the same stopping conditions, so a stack
//! copied at sample time and unwound here later gives the frames the
//! kernel would have given with the same tables. Keep the two in step.

use crate::{CfaRule, RbpRule, UnwindRow, UnwindTable};

/// Binary-search steps over a table's rows, as in BPF (16M rows).
pub const ROW_SEARCH_STEPS: u32 = 24;
/// Binary-search steps over a process's mappings, as in BPF.
pub const MAP_SEARCH_STEPS: u32 = 9;

/// The registers an unwind starts from (the user registers at the sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registers {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

/// The unwound thread's memory.
pub trait Memory {
    /// The 8 bytes at `addr`, or `None` when they cannot be read.
    fn read_u64(&self, addr: u64) -> Option<u64>;
}

/// A copy of a stack: `bytes` were at `base` and upwards.
#[derive(Debug, Clone, Copy)]
pub struct StackCopy<'a> {
    pub base: u64,
    pub bytes: &'a [u8],
}

impl Memory for StackCopy<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let offset = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let b = self.bytes.get(offset..offset.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

/// An unwind table's rows, wherever they are kept (a vector, or a BPF
/// array mapped from the kernel).
pub trait Rows {
    fn row_count(&self) -> u32;
    fn row(&self, index: u32) -> Option<UnwindRow>;
    /// The index range the row applying at `target` lies in (when it is
    /// not before every row), for tables that index themselves so that a
    /// search reads few of their pages; the whole table by default.
    fn narrow(&self, _target: u64) -> (u32, u32) {
        (0, self.row_count())
    }
}

impl Rows for Vec<UnwindRow> {
    fn row_count(&self) -> u32 {
        u32::try_from(self.len()).unwrap_or(u32::MAX)
    }
    fn row(&self, index: u32) -> Option<UnwindRow> {
        self.get(index as usize).copied()
    }
}

impl Rows for UnwindTable {
    fn row_count(&self) -> u32 {
        self.rows.row_count()
    }
    fn row(&self, index: u32) -> Option<UnwindRow> {
        self.rows.row(index)
    }
}

/// One executable mapping of the unwound process.
#[derive(Clone, Copy)]
pub struct Mapping<'a> {
    pub start: u64,
    pub end: u64,
    /// Runtime address minus ELF virtual address.
    pub bias: u64,
    /// `None`: no table, frame pointers are followed through this code.
    pub rows: Option<&'a dyn Rows>,
}

impl std::fmt::Debug for Mapping<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("start", &format_args!("{:#x}", self.start))
            .field("end", &format_args!("{:#x}", self.end))
            .field("bias", &format_args!("{:#x}", self.bias))
            .field("rows", &self.rows.map(|r| r.row_count()))
            .finish()
    }
}

/// How an unwind ended, besides the frames it gave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// `max_frames` were taken and the stack went on.
    pub truncated: bool,
    /// Stack memory the next frame needed could not be read.
    pub read_error: bool,
    /// A frame was stepped over with the frame pointer (no table or no
    /// row for its code).
    pub no_unwind_info: bool,
    /// A rule the unwinder does not evaluate stopped it.
    pub unsupported: bool,
    /// A pc lay outside every mapping.
    pub unmapped: bool,
}

/// Finds the mapping holding `pc` among `maps` (sorted by start), as the
/// BPF unwinder does.
pub fn find_mapping<'m, 'a>(maps: &'m [Mapping<'a>], pc: u64) -> Option<&'m Mapping<'a>> {
    let (mut lo, mut hi) = (0usize, maps.len());
    for _ in 0..MAP_SEARCH_STEPS {
        if lo >= hi {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        if maps[mid].start <= pc {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let m = maps.get(lo.checked_sub(1)?)?;
    (pc < m.end).then_some(m)
}

/// The row that applies at `target` (an ELF virtual address): the last
/// whose pc is at or below it. `Err(())` when a row cannot be read (the
/// BPF unwinder stops there).
fn find_row(rows: &dyn Rows, target: u64) -> Result<Option<UnwindRow>, ()> {
    let (mut lo, mut hi) = rows.narrow(target);
    hi = hi.min(rows.row_count());
    for _ in 0..ROW_SEARCH_STEPS {
        if lo >= hi {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        let Some(r) = rows.row(mid) else {
            break;
        };
        if r.pc as u64 <= target {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    match lo.checked_sub(1) {
        Some(i) => rows.row(i).map(Some).ok_or(()),
        None => Ok(None),
    }
}

/// Unwinds from `regs` through `maps` (sorted by start) reading `memory`,
/// appending return addresses (leaf first, the leaf's pc as is) to `out`,
/// at most `max_frames`.
pub fn unwind(
    regs: Registers,
    maps: &[Mapping<'_>],
    memory: &dyn Memory,
    max_frames: usize,
    out: &mut Vec<u64>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let (mut pc, mut sp, mut bp) = (regs.ip, regs.sp, regs.bp);
    let first = out.len();
    for index in 0..=max_frames {
        if pc == 0 {
            break;
        }
        if out.len() - first >= max_frames {
            outcome.truncated = true;
            break;
        }
        out.push(pc);
        // A return address points after the call; look up the call itself.
        let at = if index == 0 { pc } else { pc.wrapping_sub(1) };
        let mut rule = (CfaRule::None, RbpRule::Same);
        match find_mapping(maps, at) {
            None => outcome.unmapped = true,
            Some(m) => {
                let target = at.wrapping_sub(m.bias);
                if let Some(rows) = m.rows.filter(|r| r.row_count() > 0) {
                    if target <= u32::MAX as u64 {
                        match find_row(rows, target) {
                            Ok(Some(r)) => rule = (r.cfa, r.rbp),
                            Ok(None) => {}
                            Err(()) => break,
                        }
                    }
                }
            }
        }
        let (cfa, rbp) = match rule.0 {
            CfaRule::RspOffset(o) => (sp.wrapping_add_signed(o as i64), rule.1),
            CfaRule::RbpOffset(o) => (bp.wrapping_add_signed(o as i64), rule.1),
            CfaRule::Plt { threshold } => {
                let extra = if (pc & 15) >= threshold as u64 { 8 } else { 0 };
                (sp.wrapping_add(8 + extra), rule.1)
            }
            CfaRule::End => break,
            CfaRule::Unsupported => {
                outcome.unsupported = true;
                break;
            }
            CfaRule::None => {
                // No table for this code: follow the frame pointer chain.
                outcome.no_unwind_info = true;
                if bp == 0 || bp < sp {
                    break;
                }
                (bp.wrapping_add(16), RbpRule::Offset(-16))
            }
        };
        let Some(ra) = memory.read_u64(cfa.wrapping_sub(8)) else {
            outcome.read_error = true;
            break;
        };
        let mut next_bp = bp;
        if let RbpRule::Offset(o) = rbp {
            match memory.read_u64(cfa.wrapping_add_signed(o as i64)) {
                Some(v) => next_bp = v,
                None => {
                    outcome.read_error = true;
                    break;
                }
            }
        }
        // The caller's frame lies above ours; anything else is a corrupt
        // chain that could loop.
        if ra == 0 || cfa <= sp {
            break;
        }
        pc = ra;
        sp = cfa;
        bp = next_bp;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stack built downwards from `top`, as calls would build it.
    struct Stack {
        top: u64,
        words: Vec<u64>, // words[0] is at the lowest address
    }

    impl Stack {
        fn new(top: u64) -> Self {
            Stack {
                top,
                words: Vec::new(),
            }
        }
        fn push(&mut self, v: u64) -> u64 {
            self.words.insert(0, v);
            self.sp()
        }
        fn sp(&self) -> u64 {
            self.top - 8 * self.words.len() as u64
        }
        fn bytes(&self) -> Vec<u8> {
            self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
        }
    }

    fn row(pc: u32, cfa: CfaRule, rbp: RbpRule) -> UnwindRow {
        UnwindRow { pc, cfa, rbp }
    }

    #[test]
    fn unwinds_rsp_and_rbp_frames_to_the_end_of_the_stack() {
        // An object at bias 0x10000: _start (ends the stack) at 0x100,
        // main with an rbp frame at 0x200, leaf with rsp+16 at 0x300.
        let rows = vec![
            row(0x100, CfaRule::End, RbpRule::Same),
            row(0x200, CfaRule::RbpOffset(16), RbpRule::Offset(-16)),
            row(0x300, CfaRule::RspOffset(16), RbpRule::Same),
            row(0x400, CfaRule::None, RbpRule::Same),
        ];
        let bias = 0x10000;
        let maps = [Mapping {
            start: 0x10000,
            end: 0x11000,
            bias,
            rows: Some(&rows),
        }];
        let mut s = Stack::new(0x7fff_0000);
        s.push(0); // alignment
        s.push(bias + 0x110); // return into _start
        let saved_rbp_at = s.push(0xdead); // main saves the caller's rbp
        let main_rbp = saved_rbp_at;
        s.push(0x5555); // a local of main
        s.push(bias + 0x210); // return into main
        s.push(0x1); // leaf's local: CFA = rsp + 16
        let bytes = s.bytes();
        let mem = StackCopy {
            base: s.sp(),
            bytes: &bytes,
        };
        let regs = Registers {
            ip: bias + 0x305,
            sp: s.sp(),
            bp: main_rbp,
        };
        let mut out = Vec::new();
        let o = unwind(regs, &maps, &mem, 127, &mut out);
        assert_eq!(out, vec![bias + 0x305, bias + 0x210, bias + 0x110]);
        assert_eq!(o, Outcome::default());
    }

    #[test]
    fn code_without_a_table_is_stepped_with_frame_pointers() {
        let maps = [Mapping {
            start: 0x1000,
            end: 0x2000,
            bias: 0,
            rows: None,
        }];
        let mut s = Stack::new(0x8000);
        s.push(0); // outer frame's return address: the end
        let outer_bp = s.push(0); // outer frame's saved rbp
        s.push(0x1500); // return into the caller
        let bp = s.push(outer_bp);
        let bytes = s.bytes();
        let mem = StackCopy {
            base: s.sp(),
            bytes: &bytes,
        };
        let mut out = Vec::new();
        let o = unwind(
            Registers {
                ip: 0x1800,
                sp: s.sp(),
                bp,
            },
            &maps,
            &mem,
            127,
            &mut out,
        );
        assert_eq!(out, vec![0x1800, 0x1500]);
        assert!(o.no_unwind_info);
        assert!(!o.read_error);
    }

    #[test]
    fn stops_at_memory_outside_the_copy_and_at_unsupported_rules() {
        let rows = vec![
            row(0x0, CfaRule::RspOffset(64), RbpRule::Same),
            row(0x800, CfaRule::Unsupported, RbpRule::Same),
        ];
        let maps = [Mapping {
            start: 0x1000,
            end: 0x2000,
            bias: 0x1000,
            rows: Some(&rows),
        }];
        let bytes = [0u8; 32];
        let mem = StackCopy {
            base: 0x8000,
            bytes: &bytes,
        };
        let mut out = Vec::new();
        let regs = Registers {
            ip: 0x1100,
            sp: 0x8000,
            bp: 0,
        };
        let o = unwind(regs, &maps, &mem, 127, &mut out);
        assert_eq!(out, vec![0x1100]);
        assert!(o.read_error);

        out.clear();
        let o = unwind(Registers { ip: 0x1900, ..regs }, &maps, &mem, 127, &mut out);
        assert_eq!(out, vec![0x1900]);
        assert!(o.unsupported);
    }

    #[test]
    fn plt_rule_depends_on_the_low_bits_of_the_pc() {
        let rows = vec![row(0x0, CfaRule::Plt { threshold: 11 }, RbpRule::Same)];
        let maps = [Mapping {
            start: 0x1000,
            end: 0x2000,
            bias: 0x1000,
            rows: Some(&rows),
        }];
        let mut bytes = Vec::new();
        for w in [0x1_0000u64, 0x2_0000, 0] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        let mem = StackCopy {
            base: 0x8000,
            bytes: &bytes,
        };
        // Low bits 5 < 11: CFA = rsp + 8, the return address at rsp.
        let mut out = Vec::new();
        let regs = Registers {
            ip: 0x1005,
            sp: 0x8000,
            bp: 0,
        };
        let o = unwind(regs, &maps, &mem, 2, &mut out);
        assert_eq!(out, vec![0x1005, 0x1_0000]);
        assert!(o.unmapped && !o.truncated);
        // Low bits 12 >= 11: CFA = rsp + 16.
        out.clear();
        unwind(Registers { ip: 0x100c, ..regs }, &maps, &mem, 2, &mut out);
        assert_eq!(out, vec![0x100c, 0x2_0000]);
        // A frame past the limit is left out, and said to be.
        out.clear();
        let o = unwind(regs, &maps, &mem, 1, &mut out);
        assert_eq!(out, vec![0x1005]);
        assert!(o.truncated);
    }

    #[test]
    fn an_address_outside_every_mapping_is_reported() {
        let mut out = Vec::new();
        let o = unwind(
            Registers {
                ip: 0x42,
                sp: 0x8000,
                bp: 0,
            },
            &[],
            &StackCopy {
                base: 0,
                bytes: &[],
            },
            127,
            &mut out,
        );
        assert_eq!(out, vec![0x42]);
        assert!(o.unmapped && o.no_unwind_info);
    }

    #[test]
    fn mapping_search_finds_the_enclosing_mapping_only() {
        let m = |start, end| Mapping {
            start,
            end,
            bias: 0,
            rows: None,
        };
        let maps: Vec<Mapping> = (0..256u64)
            .map(|i| m(i * 0x1000, i * 0x1000 + 0x800))
            .collect();
        assert_eq!(find_mapping(&maps, 0x5432).map(|m| m.start), Some(0x5000));
        assert!(find_mapping(&maps, 0x5900).is_none());
        assert_eq!(find_mapping(&maps, 0xff7ff).map(|m| m.start), Some(0xff000));
        assert!(find_mapping(&maps, 0x100000).is_none());
    }

    #[test]
    fn rows_are_searched_like_the_table_lookup() {
        let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("glibc");
        let t = crate::build_table(&libc).unwrap();
        for pc in (0..0x20_0000u64).step_by(997) {
            assert_eq!(find_row(&t, pc).unwrap(), t.lookup(pc).copied(), "{pc:#x}");
        }
    }
}
