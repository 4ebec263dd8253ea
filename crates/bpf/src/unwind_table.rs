//! Unwind tables created in the kernel off the event loop.
//!
//! Creating and filling a table needs no sampler, only the BPF syscall, so
//! a worker thread can do it and hand the finished table over to be
//! installed in a slot ([`crate::Sampler::install_unwind_table`]). Rows are
//! written through a memory mapping of the array a window at a time: one
//! copy for millions of rows, without the whole table in the process's
//! memory at once (as a vector of rows or as one mapping).

use std::os::fd::{AsFd, AsRawFd, RawFd};

use libbpf_rs::{MapHandle, MapType};

use crate::profiler::{
    encode_row, BPF_F_INNER_MAP, BPF_F_MMAPABLE, UNWIND_ROW_SIZE, UNWIND_ROW_STRIDE,
};
use crate::{BpfError, UnwindRow};

/// Bytes of a table mapped at once while it is written (a multiple of the
/// page size and of the row stride).
const WINDOW_BYTES: usize = 1 << 20;

/// An unwind table in the kernel, filled and not yet in a slot.
pub struct KernelUnwindTable {
    map: MapHandle,
    rows: u32,
}

impl std::fmt::Debug for KernelUnwindTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelUnwindTable")
            .field("rows", &self.rows)
            .finish()
    }
}

impl KernelUnwindTable {
    /// Creates a table of exactly `rows` rows (its kernel memory is that)
    /// and fills it with the rows `fill` hands to the function it is
    /// given, in order; handing over more or fewer is an error.
    pub fn create(
        rows: u32,
        fill: impl FnOnce(&mut dyn FnMut(&UnwindRow)),
    ) -> Result<KernelUnwindTable, BpfError> {
        if rows == 0 {
            return Err(BpfError::map(
                "creating an unwind table",
                "a table needs at least one row",
            ));
        }
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            map_flags: BPF_F_INNER_MAP | BPF_F_MMAPABLE,
            ..Default::default()
        };
        let map = MapHandle::create(
            MapType::Array,
            Some("pp_unwind"),
            4,
            UNWIND_ROW_SIZE as u32,
            rows,
            &opts,
        )
        .map_err(|e| BpfError::map("creating an unwind table", e))?;
        let mut writer = Writer {
            fd: map.as_fd().as_raw_fd(),
            rows: rows as usize,
            written: 0,
            window: None,
            error: None,
            encoded: Vec::with_capacity(UNWIND_ROW_SIZE),
        };
        fill(&mut |row| writer.push(row));
        writer.unmap();
        if let Some(e) = writer.error.take() {
            return Err(BpfError::map("writing an unwind table", e));
        }
        if writer.written != rows as usize {
            return Err(BpfError::map(
                "writing an unwind table",
                format!("{} rows for a table of {rows}", writer.written),
            ));
        }
        Ok(KernelUnwindTable { map, rows })
    }

    pub fn rows(&self) -> u32 {
        self.rows
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.map.as_fd().as_raw_fd()
    }

    /// Row `index` as the unwinder reads it (for tests).
    #[cfg(test)]
    fn row_bytes(&self, index: u32) -> Option<Vec<u8>> {
        use libbpf_rs::{MapCore, MapFlags};
        self.map
            .lookup(&index.to_ne_bytes(), MapFlags::ANY)
            .ok()
            .flatten()
    }
}

/// Writes rows into the array through one mapped window at a time.
struct Writer {
    fd: RawFd,
    rows: usize,
    written: usize,
    /// The mapped window: its number, address and length.
    window: Option<(usize, *mut libc::c_void, usize)>,
    error: Option<String>,
    encoded: Vec<u8>,
}

impl Writer {
    fn push(&mut self, row: &UnwindRow) {
        if self.error.is_some() {
            return;
        }
        if self.written >= self.rows {
            // Counted, so the caller learns the count was wrong.
            self.written += 1;
            return;
        }
        let per_window = WINDOW_BYTES / UNWIND_ROW_STRIDE;
        let number = self.written / per_window;
        if self.window.map(|w| w.0) != Some(number) {
            self.unmap();
            let len = (self.rows - number * per_window).min(per_window) * UNWIND_ROW_STRIDE;
            // SAFETY: mapping part of the array's value area (`rows` slots
            // of UNWIND_ROW_STRIDE bytes), shared and writable, at a
            // page-aligned offset inside it.
            let area = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    self.fd,
                    (number * WINDOW_BYTES) as libc::off_t,
                )
            };
            if area == libc::MAP_FAILED {
                self.error = Some(format!("mapping it: {}", std::io::Error::last_os_error()));
                return;
            }
            self.window = Some((number, area, len));
        }
        let Some((_, area, len)) = self.window else {
            return;
        };
        let at = (self.written % per_window) * UNWIND_ROW_STRIDE;
        self.encoded.clear();
        encode_row(row, &mut self.encoded);
        if at + UNWIND_ROW_SIZE <= len {
            // SAFETY: `area` is our writable mapping of `len` bytes and the
            // slot lies inside it.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.encoded.as_ptr(),
                    area.cast::<u8>().add(at),
                    UNWIND_ROW_SIZE,
                )
            };
        }
        self.written += 1;
    }

    fn unmap(&mut self) {
        if let Some((_, area, len)) = self.window.take() {
            // SAFETY: unmapping a window mapped in `push`, no longer used.
            unsafe { libc::munmap(area, len) };
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.unmap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CfaRule, RbpRule};
    use libbpf_rs::MapCore;

    fn rows(n: u32) -> Vec<UnwindRow> {
        (0..n)
            .map(|i| UnwindRow {
                pc: i * 4,
                cfa: CfaRule::RspOffset((i % 1000) as i32),
                rbp: RbpRule::Offset(-((i % 300) as i16)),
            })
            .collect()
    }

    /// A table of several windows has every row where the unwinder looks.
    #[test]
    fn root_tables_are_written_whole_window_by_window() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "creates BPF maps: run as root"
        );
        let rows = rows(200_003);
        let table = KernelUnwindTable::create(rows.len() as u32, |push| rows.iter().for_each(push))
            .unwrap();
        assert_eq!(table.rows(), 200_003);
        let per_window = WINDOW_BYTES / UNWIND_ROW_STRIDE;
        for i in [
            0,
            per_window - 1,
            per_window,
            2 * per_window + 17,
            rows.len() - 1,
        ] {
            let mut want = Vec::new();
            encode_row(&rows[i], &mut want);
            assert_eq!(table.row_bytes(i as u32), Some(want), "row {i}");
        }
    }

    /// Read back for late unwinding, a table is searched a window at a
    /// time and finds the rows the whole table would.
    #[test]
    fn root_tables_are_read_back_a_window_at_a_time() {
        use perfpilot_unwind::Rows;
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "creates BPF maps: run as root"
        );
        let rows = rows(100_003);
        let table = KernelUnwindTable::create(rows.len() as u32, |push| rows.iter().for_each(push))
            .unwrap();
        let id = table.map.info().unwrap().info.id;
        let read = crate::KernelTable::open(MapHandle::from_map_id(id).unwrap()).unwrap();
        assert_eq!(read.row_count(), 100_003);
        for i in [0u32, 4095, 4096, 50_000, 100_002] {
            assert_eq!(read.row(i), Some(rows[i as usize]), "row {i}");
        }
        assert_eq!(read.row(100_003), None);
        // Row i has pc 4 * i: the row applying at a pc is the last at or
        // below it, and its window is all a search needs.
        for target in [
            0u64,
            3,
            4 * 4095 + 2,
            4 * 4096,
            4 * 77_777 + 1,
            4 * 100_002 + 9,
        ] {
            let (lo, hi) = read.narrow(target);
            let want = (target / 4).min(100_002) as u32;
            assert!(lo <= want && want < hi, "{target}: {lo}..{hi}");
            assert!(hi - lo <= 4096, "{target}: {lo}..{hi}");
        }
        assert_eq!(read.windows.borrow().len(), 4, "windows kept");
    }

    #[test]
    fn root_a_wrong_row_count_is_an_error() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "creates BPF maps: run as root"
        );
        let rows = rows(10);
        let few = KernelUnwindTable::create(11, |push| rows.iter().for_each(push));
        assert!(
            few.unwrap_err()
                .to_string()
                .contains("10 rows for a table of 11"),
            "too few"
        );
        let many = KernelUnwindTable::create(9, |push| rows.iter().for_each(push));
        assert!(
            many.unwrap_err()
                .to_string()
                .contains("10 rows for a table of 9"),
            "too many"
        );
        assert!(KernelUnwindTable::create(0, |_| {}).is_err());
    }
}
