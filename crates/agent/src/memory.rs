//! Giving freed memory back to the system.
//!
//! glibc's malloc keeps freed memory in its arenas and returns only the
//! top of each heap, and the size from which a block gets a mapping of
//! its own (returned when freed) rises after every such free, up to
//! 32 MiB: the agent's transient large blocks (a table's FDE list, a
//! drain's batch, an encoded profile) would otherwise stay resident after
//! use. The threshold is fixed once, and free pages are released
//! periodically.

/// Blocks from this size up get a mapping of their own.
const MMAP_THRESHOLD: i32 = 256 << 10;

/// Fixes malloc's mmap threshold (process-wide; once, at start).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's own parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Releases the free pages of every malloc arena.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and shrinks the allocator's own
    // free lists; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
