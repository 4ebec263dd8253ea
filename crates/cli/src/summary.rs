//! The end-of-run summary: what was recorded, what was lost, and why.

use perfpilot_agent::SessionReport;

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Lines describing a session's counters. Loss is always printed, even
/// when zero, so a clean run is visibly clean.
pub fn lines(r: &SessionReport) -> Vec<String> {
    let s = &r.sampler;
    let f = &r.flags;
    vec![
        format!(
            "frames named: {:.1}% of {} sampled frames ({} distinct addresses resolved, {} rejected as data symbols, {} object files named from their symbol table only: DWARF over --max-dwarf-mib)",
            r.named_share() * 100.0,
            thousands(r.frames),
            thousands(r.symbolizer.resolved),
            thousands(r.symbolizer.rejected_data),
            thousands(r.symbolizer.dwarf_over_limit),
        ),
        format!(
            "lost: {} samples (counts map full), {} stacks (stacks map full), {} stacks (no memory at the moment), {} stack hash collisions, {} events, {} drain errors",
            thousands(s.counts_full),
            thousands(s.stacks_full),
            thousands(s.stacks_nomem),
            thousands(s.stack_collisions),
            thousands(s.events_lost),
            thousands(s.drain_errors),
        ),
        format!(
            "unwinding: {} samples before their process was known (frame pointers only), {} truncated at 127 frames, {} stopped at unreadable stack memory, {} through code without unwind tables",
            thousands(f.fp_only),
            thousands(f.truncated),
            thousands(f.read_error),
            thousands(f.no_unwind_info),
        ),
        format!(
            "stacks copied before their tables were loaded: {} ({} KiB kept), unwound later {} with every table and {} with the tables there were ({:.3} s CPU); not copied: {} over --raw-stack-rate, {} ring buffer full; over --raw-stack-memory: {} kept without their stack, {} samples lost",
            thousands(s.raw_taken),
            thousands(r.late.received_bytes / 1024),
            thousands(r.late.unwound),
            thousands(r.late.unwound_early),
            r.late.cpu_ns as f64 / 1e9,
            thousands(s.raw_rate_limited),
            thousands(s.raw_ring_full),
            thousands(s.raw_trimmed),
            thousands(s.raw_dropped),
        ),
        format!(
            "processes read at exec or first copy: {} ({} read again as copies came), kept answers for {} reads after they exited",
            thousands(r.capture.captured),
            thousands(r.capture.reread),
            thousands(r.capture.used),
        ),
        format!(
            "processes: {} tracked, {} object files loaded ({} unreadable), {} unwind rows in the kernel, {} tables did not fit",
            thousands(r.tracker.processes_registered),
            thousands(r.tracker.objects_loaded),
            thousands(r.tracker.objects_failed),
            thousands(r.tracker.rows_uploaded),
            thousands(r.tracker.tables_dropped),
        ),
        format!(
            "memory caps: {} live processes forgotten over {} tracked (the longest tracked first), {} unwind tables of object files no process maps unloaded (least recently used first) and {} new ones left out (no room under --unwind-rows, or the build queue full), {} object files' symbols dropped over --symbol-cache-mib (least recently used first)",
            thousands(r.tracker.processes_evicted),
            thousands(perfpilot_agent::tracker::MAX_PROCESSES as u64),
            thousands(r.tracker.objects_evicted),
            thousands(r.tracker.tables_dropped),
            thousands(r.symbolizer.symbol_cache_evictions),
        ),
    ]
    .into_iter()
    .chain((s.offcpu_blocks + s.offcpu_short + s.offcpu_skipped > 0).then(|| {
        format!(
            "off-CPU: {} blocks counted, {} shorter than --offcpu-min-block-us left out, {} switches not sampled (--offcpu-sample-every), {} lost (no task storage)",
            thousands(s.offcpu_blocks),
            thousands(s.offcpu_short),
            thousands(s.offcpu_skipped),
            thousands(s.offcpu_no_storage),
        )
    }))
    .chain((r.alloc.calls + r.alloc.frees > 0 || r.alloc_libraries > 0).then(|| {
        let a = &r.alloc;
        format!(
            "allocations: {} allocator libraries probed, {} allocation calls and {} frees seen, {} sampled ({} counted with their stack), {} frees of sampled allocations; lost: {} returns seen on another CPU, {} not kept in use (live map full), {} failed calls; probes detached {} times for {:.1} s (--alloc-max-probe-rate)",
            thousands(r.alloc_libraries),
            thousands(a.calls),
            thousands(a.frees),
            thousands(a.sampled),
            thousands(a.recorded),
            thousands(a.freed),
            thousands(a.lost_return),
            thousands(a.live_full),
            thousands(a.failed),
            thousands(r.alloc_detached),
            r.alloc_detached_ns as f64 / 1e9,
        )
    }))
    .chain((s.lock_waits + s.lock_short + s.lock_skipped > 0).then(|| {
        format!(
            "lock: {} futex waits counted, {} shorter than --lock-min-wait-us or not sleeping left out, {} not sampled (--lock-sample-every), {} lost (no task storage)",
            thousands(s.lock_waits),
            thousands(s.lock_short),
            thousands(s.lock_skipped),
            thousands(s.lock_no_storage),
        )
    }))
    .chain(std::iter::once({
        let (cpu, rss) = own_cost();
        let bpf = r
            .bpf_run_nanos
            .map(|n| format!(" + {:.2} s in its BPF programs", n as f64 / 1e9))
            .unwrap_or_default();
        let shed = if r.shed_changes > 0 {
            format!(
                "; CPU budget: {} rate changes, shed factor now {:.2}",
                thousands(r.shed_changes),
                r.shed_factor
            )
        } else {
            String::new()
        };
        format!("perfpilot itself (not sampled): {cpu:.2} s CPU{bpf}, peak RSS {rss:.1} MiB{shed}")
    }))
    .collect()
}

/// perfpilot's own cost so far: CPU seconds (user + system) and peak RSS
/// in MiB. It does not sample itself, so this is where its cost shows.
pub fn own_cost() -> (f64, f64) {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

pub fn count(n: u64) -> String {
    thousands(n)
}

/// Bytes in the largest binary unit that keeps a whole part.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }

    #[test]
    fn byte_units() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(3 << 30), "3.0 GiB");
    }
}
