//! Unwind tables for the BPF unwinder.
//!
//! The kernel can only follow frame pointers; most Linux binaries are built
//! without them. Their `.eh_frame` (or, for Go and some static binaries,
//! `.debug_frame`) says for every instruction how to find the caller. This
//! crate evaluates that DWARF call frame information ahead of time into a
//! flat, sorted array of [`UnwindRow`]s that BPF code can binary-search and
//! apply with a few loads: where the CFA is (rsp or rbp plus an offset, or
//! the PLT rule), where rbp was saved, and where the stack ends.
//!
//! [`unwind`] applies the same rows in user space, to stacks copied at
//! sample time before their tables were loaded, exactly as the BPF
//! unwinder applies them in the kernel.

mod eval;
mod table;

pub use eval::{
    find_mapping, unwind, Mapping, Memory, Outcome, Registers, Rows, StackCopy, MAP_SEARCH_STEPS,
    ROW_SEARCH_STEPS,
};
pub use table::{build_table, stream_table, TableStats, TableStream, UnwindError, UnwindTable};

/// How to find the canonical frame address (CFA) of a frame; the return
/// address is always at CFA - 8 on x86-64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CfaRule {
    /// No unwind information: follow the frame pointer.
    None,
    RspOffset(i32),
    RbpOffset(i32),
    /// A PLT stub: CFA = rsp + 8, plus 8 once (rip & 15) >= threshold.
    Plt {
        threshold: u8,
    },
    /// The return address is undefined: this is the outermost frame.
    End,
    /// A DWARF expression the BPF unwinder does not evaluate.
    Unsupported,
}

/// Where the caller's rbp is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RbpRule {
    Same,
    /// Saved at CFA + offset.
    Offset(i16),
}

/// One row of an unwind table, valid from `pc` (an ELF virtual address)
/// until the next row's `pc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnwindRow {
    pub pc: u32,
    pub cfa: CfaRule,
    pub rbp: RbpRule,
}
