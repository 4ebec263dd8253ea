//! `perfpilot record`.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use perfpilot_agent::command::PausedChild;
use perfpilot_agent::{Scope, Session, SessionConfig};

use crate::exit::{self, Failure};
use crate::{signals, summary, RecordArgs, SamplingArgs};

/// How often samples are moved out of the kernel.
const DRAIN_EVERY: Duration = Duration::from_secs(1);
/// Longest the end of a recording waits for unwind tables that copied
/// stacks need.
const FINAL_WAIT: Duration = Duration::from_secs(10);

pub fn session_config(s: &SamplingArgs, scope: Scope) -> SessionConfig {
    SessionConfig {
        frequency_hz: s.frequency,
        scope,
        include_idle: s.include_idle,
        kernel_stacks: !s.no_kernel,
        unwind_rows: s.unwind_rows,
        raw_stack_rate: s.raw_stack_rate,
        raw_stack_memory: s.raw_stack_memory as usize * 1024 * 1024,
        raw_stacks_always: false,
        max_dwarf_bytes: s.max_dwarf_mib << 20,
        symbol_cache_bytes: s.symbol_cache_mib << 20,
        pid_labels: true,
        cpu: s.wants(crate::ProfileKind::Cpu),
        offcpu: s.offcpu().filter(|_| s.wants(crate::ProfileKind::Offcpu)),
        wall: s.wants(crate::ProfileKind::Wall),
        max_cpu_percent: s.max_cpu_percent(false),
        alloc: s.alloc(),
        lock: s.lock(),
    }
}

pub fn run(args: RecordArgs) -> exit::Result<()> {
    let format = crate::output_format(args.format, &args.output)?;
    if !args.command.is_empty() && !args.sampling.pids.is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("give either --pid or a command after --, not both"),
        ));
    }
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            return Err(Failure::new(
                exit::USAGE,
                anyhow::anyhow!("--duration must be a positive number of seconds, not {d}"),
            ));
        }
    }
    if args.sampling.profiles.is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("--profiles names no profile type (cpu, offcpu, wall, alloc, lock)"),
        ));
    }
    perfpilot_bpf::check_environment()?;

    let mut child = if args.command.is_empty() {
        None
    } else {
        let c = PausedChild::spawn(&args.command).map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                exit::COMMAND_NOT_FOUND
            } else {
                exit::FAILURE
            };
            Failure::new(
                code,
                anyhow::anyhow!("cannot start {:?}: {e}", args.command[0]),
            )
        })?;
        Some(c)
    };
    let scope = match &child {
        Some(c) => Scope::Tree(vec![c.pid()]),
        None if args.sampling.pids.is_empty() => Scope::Host,
        None => Scope::Pids(args.sampling.pids.clone()),
    };
    let mut session = Session::start(session_config(&args.sampling, scope))?;
    signals::install();
    if let Some(c) = &mut child {
        c.release().map_err(|e| {
            Failure::new(
                exit::COMMAND_NOT_FOUND,
                anyhow::anyhow!("cannot run {:?}: {e}", args.command[0]),
            )
        })?;
    }

    let started = Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let mut last_drain = Instant::now();
    let mut child_status = None;
    let mut leaks = LeakSeries::default();
    let alloc = args.sampling.wants(crate::ProfileKind::Alloc);
    loop {
        let now = Instant::now();
        if signals::stop_requested() || deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some(c) = &mut child {
            if let Some(status) = c.try_wait() {
                child_status = Some(status);
                break;
            }
        } else if !args.sampling.pids.is_empty()
            && args
                .sampling
                .pids
                .iter()
                .all(|&p| !perfpilot_agent::procfs::process_exists(p))
        {
            break;
        }
        let mut wait = Duration::from_millis(100);
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(now));
        }
        session.poll(wait);
        if last_drain.elapsed() >= DRAIN_EVERY {
            session.drain()?;
            last_drain = Instant::now();
            if alloc {
                leaks.add(&session.inuse_by_stack());
            }
            if progress {
                let r = session.report();
                eprint!(
                    "\rperfpilot: recording {:.0} s, {} samples, {} processes   ",
                    started.elapsed().as_secs_f64(),
                    summary::count(r.samples),
                    r.tracker.processes_registered
                );
            }
        }
    }
    if let Some(c) = &mut child {
        if child_status.is_none() {
            // Ended by duration or signal: the command does not outlive us.
            c.signal(libc::SIGTERM);
        }
    }
    // Copied stacks of the last moments still wait for their tables.
    session.drain_final(FINAL_WAIT)?;
    if alloc {
        leaks.add(&session.inuse_by_stack());
    }
    let elapsed = started.elapsed();
    let profiles = session.take_profiles();
    let title = match &child {
        Some(_) => format!("perfpilot record -- {}", args.command.join(" ")),
        None => "perfpilot record".to_string(),
    };
    // The first type goes to --output, the others beside it.
    let mut written = Vec::with_capacity(profiles.len());
    for (i, p) in profiles.iter().enumerate() {
        let kind = kind_of(p);
        let path = if i == 0 {
            args.output.clone()
        } else {
            sibling_output(&args.output, kind)
        };
        let title = match kind {
            "offcpu" => format!("{title} (off-CPU)"),
            "wall" => format!("{title} (wall)"),
            "alloc" => format!("{title} (allocations)"),
            "lock" => format!("{title} (lock)"),
            _ => title.clone(),
        };
        let bytes = format
            .encode(p, &title)
            .with_context(|| format!("encoding the profile as {format}"))?;
        write_atomically(&path, &bytes)?;
        written.push((path, kind));
    }
    let cpu = profiles.iter().find(|p| kind_of(p) == "cpu");
    let leak_report = if alloc {
        let found = leaks.find();
        let path = leaks_output(&args.output);
        let json = serde_json::json!({
            "snapshots": leaks.times.len(),
            "leaks": found,
        });
        let bytes = serde_json::to_vec_pretty(&json).context("encoding the leak report")?;
        write_atomically(&path, &bytes)?;
        Some((path, found))
    } else {
        None
    };

    if !args.quiet {
        if progress {
            eprintln!();
        }
        let r = session.report();
        let processes: std::collections::HashSet<&str> = cpu
            .map(|p| {
                p.samples()
                    .iter()
                    .filter_map(|s| p.label(s, perfpilot_model::labels::PID))
                    .collect()
            })
            .unwrap_or_default();
        for (path, kind) in &written {
            if *kind == "wall" {
                eprintln!(
                    "perfpilot: wrote {} ({format}, wall): on- and off-CPU time over {:.1} s",
                    path.display(),
                    elapsed.as_secs_f64(),
                );
            } else if *kind == "alloc" {
                eprintln!(
                    "perfpilot: wrote {} ({format}, allocations): {} allocated, {} in use at \
                     the end, over {:.1} s",
                    path.display(),
                    summary::bytes(r.alloc_bytes),
                    summary::bytes(r.inuse_bytes),
                    elapsed.as_secs_f64(),
                );
            } else if *kind == "lock" {
                eprintln!(
                    "perfpilot: wrote {} ({format}, lock): {} futex waits, {:.3} s waited, in {} \
                     records over {:.1} s",
                    path.display(),
                    summary::count(r.lock_waits),
                    r.lock_nanos as f64 / 1e9,
                    summary::count(r.lock_records),
                    elapsed.as_secs_f64(),
                );
            } else if *kind == "offcpu" {
                eprintln!(
                    "perfpilot: wrote {} ({format}, off-CPU): {:.3} s blocked in {} records \
                     over {:.1} s",
                    path.display(),
                    r.offcpu_nanos as f64 / 1e9,
                    summary::count(r.offcpu_records),
                    elapsed.as_secs_f64(),
                );
            } else {
                eprintln!(
                    "perfpilot: wrote {} ({format}): {} samples over {:.1} s from {} processes",
                    path.display(),
                    summary::count(r.samples),
                    elapsed.as_secs_f64(),
                    processes.len()
                );
            }
        }
        for line in summary::lines(&r) {
            eprintln!("  {line}");
        }
        if let Some((path, found)) = &leak_report {
            eprintln!(
                "perfpilot: wrote {}: {} stacks whose in-use bytes grew steadily over {} snapshots",
                path.display(),
                found.len(),
                leaks.times.len()
            );
            for l in found.iter().take(5) {
                let frames = l.stack.len();
                let tail = l.stack[frames.saturating_sub(3)..].join(";");
                eprintln!(
                    "  leak: {}/s, {} grown, {} in use (p = {:.1e}) at {}{}",
                    summary::bytes(l.growth_bytes_per_second.max(0.0) as u64),
                    summary::bytes(l.growth_bytes.max(0.0) as u64),
                    summary::bytes(l.inuse_bytes.max(0.0) as u64),
                    l.p_value,
                    if frames > 3 { "…;" } else { "" },
                    tail
                );
            }
        }
        if let Some(status) = child_status {
            eprintln!("  command exited with status {status}");
        }
    }
    Ok(())
}

/// Which `--profiles` type a profile is, by its sample type.
fn kind_of(p: &perfpilot_model::Profile) -> &'static str {
    use perfpilot_agent::aggregate::{ALLOC_OBJECTS, CONTENTIONS, OFF_CPU, WALL};
    match p.sample_types.first().map(|t| t.kind.as_str()) {
        Some(OFF_CPU) => "offcpu",
        Some(WALL) => "wall",
        Some(ALLOC_OBJECTS) => "alloc",
        Some(CONTENTIONS) => "lock",
        _ => "cpu",
    }
}

/// In-use bytes by stack, one point per drain, for the leak report.
#[derive(Default)]
struct LeakSeries {
    times: Vec<i64>,
    series: std::collections::HashMap<Vec<String>, Vec<(i64, f64)>>,
}

impl LeakSeries {
    fn add(&mut self, snapshot: &[(Vec<String>, i64)]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        // A stack seen first now held nothing at the earlier snapshots;
        // one no longer seen holds nothing now.
        let earlier = self.times.clone();
        for (stack, bytes) in snapshot {
            self.series
                .entry(stack.clone())
                .or_insert_with(|| earlier.iter().map(|&t| (t, 0.0)).collect())
                .push((now, *bytes as f64));
        }
        let n = earlier.len() + 1;
        for points in self.series.values_mut() {
            if points.len() < n {
                points.push((now, 0.0));
            }
        }
        self.times.push(now);
    }

    fn find(&self) -> Vec<perfpilot_query::leaks::Leak> {
        let series: Vec<perfpilot_query::leaks::StackSeries> = self
            .series
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        perfpilot_query::leaks::find_leaks(&series, &Default::default())
    }
}

/// `out.pb.gz` → `out.leaks.json`.
fn leaks_output(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = match name.find('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name.as_str(),
    };
    path.with_file_name(format!("{stem}.leaks.json"))
}

/// `out.pb.gz` → `out.offcpu.pb.gz`: the type goes before the first
/// extension, so the format is still told by the name.
fn sibling_output(path: &Path, kind: &str) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new = match name.find('.') {
        Some(i) if i > 0 => format!("{}.{kind}{}", &name[..i], &name[i..]),
        _ => format!("{name}.{kind}"),
    };
    path.with_file_name(new)
}

/// Writes through a temporary file, a sync and a rename (the store's
/// durable write), so a reader never sees a half-written profile.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> exit::Result<()> {
    perfpilot_store::fsio::write_atomically(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(Failure::from)
}

#[cfg(test)]
mod tests {
    use super::sibling_output;
    use std::path::Path;

    #[test]
    fn other_profile_types_are_written_beside_the_output() {
        let cases = [
            ("/tmp/out.pb.gz", "/tmp/out.offcpu.pb.gz"),
            ("run.folded", "run.offcpu.folded"),
            ("plain", "plain.offcpu"),
            (".hidden", ".hidden.offcpu"),
        ];
        for (given, want) in cases {
            assert_eq!(sibling_output(Path::new(given), "offcpu"), Path::new(want));
        }
    }
}
