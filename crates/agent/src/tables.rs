//! Unwind tables: building them off the event loop, and bookkeeping for
//! the ones in the kernel (table slots, one per object file, and a budget
//! on the rows they hold together).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use perfpilot_bpf::{BpfError, KernelUnwindTable};
use perfpilot_unwind::UnwindRow;

use crate::objects::{kernel_table, unwind_rows, ObjectKey, TableSource};

/// Where tables are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableTarget {
    /// Rows in memory (tests, and callers without BPF).
    Memory,
    /// Created in the kernel and streamed there row by row.
    Kernel,
}

/// A table built off the event loop, waiting for a slot.
#[derive(Debug)]
pub enum BuiltTable {
    Rows(Vec<UnwindRow>),
    Kernel(KernelUnwindTable),
}

impl BuiltTable {
    pub fn rows(&self) -> usize {
        match self {
            BuiltTable::Rows(r) => r.len(),
            BuiltTable::Kernel(t) => t.rows() as usize,
        }
    }
}

fn build(source: &TableSource, target: TableTarget) -> Result<BuiltTable, BpfError> {
    match target {
        TableTarget::Memory => Ok(BuiltTable::Rows(unwind_rows(source))),
        TableTarget::Kernel => Ok(match kernel_table(source)? {
            Some(t) => BuiltTable::Kernel(t),
            None => BuiltTable::Rows(Vec::new()),
        }),
    }
}

type Done = (ObjectKey, Result<BuiltTable, BpfError>);

/// Objects up to this size are built on their own thread: their tables
/// take milliseconds, and a short-lived process's samples wait for them.
const SMALL_OBJECT: u64 = 4 << 20;

/// Whether an object's table is built on the small objects' thread (in
/// milliseconds, so samples through it are worth copying meanwhile).
pub fn is_small(source: &TableSource) -> bool {
    let size = match source {
        TableSource::File(f) => f.metadata().map_or(u64::MAX, |m| m.len()),
        TableSource::Image(image) => image.len() as u64,
    };
    size <= SMALL_OBJECT
}

/// Builds unwind tables off the event loop: a large library takes a few
/// hundred milliseconds, which must not delay registering the next
/// short-lived process. Two threads, one for small objects and one for
/// large, so that a new executable's table never waits behind a large
/// library's.
pub struct TableWorker {
    small: SyncSender<(ObjectKey, TableSource)>,
    large: SyncSender<(ObjectKey, TableSource)>,
    done: Receiver<Done>,
    pending: usize,
}

impl TableWorker {
    pub fn new(target: TableTarget) -> Self {
        let (done_tx, done) = mpsc::channel::<Done>();
        let lane = |name: &str| {
            let (jobs, job_rx) = mpsc::sync_channel::<(ObjectKey, TableSource)>(4096);
            let done_tx = done_tx.clone();
            // If the thread cannot start, jobs fail to send and objects
            // are unwound with frame pointers (counted by the tracker).
            let _ = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    for (key, source) in job_rx {
                        if done_tx.send((key, build(&source, target))).is_err() {
                            break;
                        }
                    }
                });
            jobs
        };
        TableWorker {
            small: lane("pp-tables-small"),
            large: lane("pp-tables-large"),
            done,
            pending: 0,
        }
    }

    /// Queues a table; false when the queue is full or the thread gone.
    pub fn submit(&mut self, key: ObjectKey, source: TableSource) -> bool {
        let lane = if is_small(&source) {
            &self.small
        } else {
            &self.large
        };
        match lane.try_send((key, source)) {
            Ok(()) => {
                self.pending += 1;
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    pub fn pending(&self) -> usize {
        self.pending
    }

    /// A finished table, waiting up to `timeout` for one.
    pub fn next(&mut self, timeout: Duration) -> Option<Done> {
        if self.pending == 0 {
            return None;
        }
        let got = if timeout.is_zero() {
            self.done.try_recv().ok()
        } else {
            match self.done.recv_timeout(timeout) {
                Ok(x) => Some(x),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
            }
        };
        if got.is_some() {
            self.pending -= 1;
        }
        got
    }
}

#[derive(Debug)]
pub struct TableBudget {
    max_tables: u32,
    max_rows: u64,
    rows_in_use: u64,
    /// Released slots, reused first.
    free: Vec<u32>,
    next: u32,
}

impl TableBudget {
    pub fn new(max_tables: u32, max_rows: u64) -> Self {
        TableBudget {
            max_tables,
            max_rows,
            rows_in_use: 0,
            free: Vec::new(),
            next: 0,
        }
    }

    pub fn rows_in_use(&self) -> u64 {
        self.rows_in_use
    }

    /// A slot for a table of `rows` rows, if both a slot and room remain.
    pub fn alloc(&mut self, rows: u32) -> Option<u32> {
        if self.rows_in_use + rows as u64 > self.max_rows {
            return None;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.next < self.max_tables => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.rows_in_use += rows as u64;
        Some(slot)
    }

    /// Whether a table of `rows` rows would get a slot now.
    pub fn fits(&self, rows: u32) -> bool {
        self.rows_in_use + rows as u64 <= self.max_rows
            && (!self.free.is_empty() || self.next < self.max_tables)
    }

    pub fn release(&mut self, slot: u32, rows: u32) {
        self.rows_in_use = self.rows_in_use.saturating_sub(rows as u64);
        self.free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_objects_table_does_not_wait_behind_large_ones() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(
            exe.len() as u64 > SMALL_OBJECT,
            "a debug test binary is large"
        );
        let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        assert!(libc.len() as u64 <= SMALL_OBJECT);
        let mut w = TableWorker::new(TableTarget::Memory);
        let large = |i| ObjectKey::File { dev: 1, inode: i };
        for i in 0..4 {
            assert!(w.submit(large(i), TableSource::Image(exe.clone())));
        }
        let small = ObjectKey::Vdso;
        assert!(w.submit(small, TableSource::Image(libc)));
        let mut order = Vec::new();
        while let Some((key, built)) = w.next(Duration::from_secs(120)) {
            assert!(built.unwrap().rows() > 0);
            order.push(key);
        }
        let at = order.iter().position(|k| *k == small).unwrap();
        assert!(
            at < 4,
            "the small table came back after every large one: {order:?}"
        );
    }

    #[test]
    fn slots_and_rows_are_bounded_and_reused() {
        let mut b = TableBudget::new(2, 100);
        let a = b.alloc(60).unwrap();
        assert!(b.alloc(50).is_none(), "row budget");
        let c = b.alloc(40).unwrap();
        assert_ne!(a, c);
        b.release(a, 60);
        assert_eq!(b.rows_in_use(), 40);
        assert_eq!(b.alloc(10), Some(a));
        assert!(b.alloc(1).is_none(), "slots");
    }
}
