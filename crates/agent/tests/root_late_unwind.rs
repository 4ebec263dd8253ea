//! The user-space unwinder against the BPF one on the same samples. With
//! every sample's stack copied besides being unwound in the kernel
//! (`raw_stacks_always`), each copy unwound in user space with the rows
//! the kernel holds must give the kernel's frames. Needs root (CI runs as
//! root).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use perfpilot_agent::late::{mappings, open_tables, unwind_copy, OpenTables};
use perfpilot_agent::tables::TableTarget;
use perfpilot_agent::tracker::Tracker;
use perfpilot_bpf::{Drained, Event, RawStacks, Sampler, SamplerConfig};

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test loads BPF programs and must run as root (CI runs it as root)"
    );
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Default)]
struct Compared {
    samples: usize,
    identical: usize,
    /// The copy ended before the kernel's unwind did (a stack deeper than
    /// the copy); the frames it gave are the kernel's first ones.
    cut_short: usize,
    differences: Vec<(Vec<u64>, Vec<u64>)>,
}

/// Samples `argv` at 499 Hz until it has `samples` copies of its stacks
/// (however loaded the machine, within two minutes), every stack unwound
/// both ways.
fn compare(argv: &[String], samples: usize) -> Compared {
    let child = Killed(Command::new(&argv[0]).args(&argv[1..]).spawn().unwrap());
    let pid = child.0.id();
    // Past the dynamic loader: its libraries are mapped.
    std::thread::sleep(Duration::from_millis(200));
    let mut sampler = Sampler::load(&SamplerConfig {
        frequency_hz: 499,
        targets: Some(vec![pid]),
        raw_stacks_always: true,
        ..Default::default()
    })
    .unwrap();
    // As the session builds them: created in the kernel and streamed
    // there, the rows read back from it.
    let mut tracker = Tracker::with_table_target(4 << 20, TableTarget::Kernel);
    tracker.register(pid, &sampler);
    tracker.wait_for_tables(Duration::from_secs(120), &sampler);
    sampler.start_sampling().unwrap();

    let mut copies = RawStacks::default();
    let mut taken = RawStacks::default();
    let mut events = Vec::new();
    let end = Instant::now() + Duration::from_secs(120);
    let mut own = 0;
    while own < samples && Instant::now() < end {
        sampler.poll_events(Duration::from_millis(50), &mut events);
        for e in events.drain(..) {
            if let Event::MapsStale(p) = e {
                tracker.refresh(p, &sampler);
            }
        }
        tracker.poll_tables(Duration::ZERO, &sampler);
        sampler.take_raw_stacks(&mut taken);
        for r in taken.iter() {
            own += usize::from(r.tgid == pid);
            copies.push(r.record());
        }
    }
    sampler.take_raw_stacks(&mut taken);
    for r in taken.iter() {
        copies.push(r.record());
    }
    // Every copy held was taken before this drain's flip: its in-kernel
    // stack is in what it drains.
    let mut drained = Drained::default();
    sampler.drain(&mut drained).unwrap();

    let exec = tracker.exec_maps(pid).expect("the workload is tracked");
    let mut open = OpenTables::new();
    open_tables(&exec, &sampler, &mut open);
    let maps = mappings(&exec, &open);
    let mut c = Compared::default();
    let mut frames = Vec::new();
    for r in copies.iter().filter(|r| r.tgid == pid) {
        let Some(kernel) = drained.stacks.get(&r.user_stack) else {
            continue;
        };
        c.samples += 1;
        frames.clear();
        let outcome = unwind_copy(&r, &maps, &mut frames);
        if &frames == kernel {
            c.identical += 1;
        } else if outcome.read_error && kernel.starts_with(&frames) {
            c.cut_short += 1;
        } else {
            c.differences.push((kernel.clone(), frames.clone()));
        }
    }
    eprintln!(
        "{}: {} samples, {} identical, {} cut short, {} different",
        argv[0],
        c.samples,
        c.identical,
        c.cut_short,
        c.differences.len()
    );
    c
}

fn build_c(dir: &Path) -> String {
    let out = dir.join("c-nofp");
    let status = Command::new("gcc")
        .args(["-O2", "-g", "-fomit-frame-pointer", "-o"])
        .arg(&out)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workloads/work.c"))
        .status()
        .unwrap();
    assert!(status.success());
    out.to_string_lossy().into_owned()
}

#[test]
fn root_copied_stacks_unwind_in_user_space_as_in_the_kernel() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let c = compare(&[build_c(dir.path()), "120".into()], 300);
    assert!(c.samples > 200, "{c:?}");
    assert!(
        c.differences.is_empty() && c.cut_short == 0,
        "{} of {} samples unwound differently: {:x?}",
        c.differences.len() + c.cut_short,
        c.samples,
        &c.differences[..c.differences.len().min(5)]
    );
}

#[test]
fn root_copied_python_stacks_unwind_in_user_space_as_in_the_kernel() {
    require_root();
    // CPython without frame pointers, deep native stacks through the
    // interpreter, libc and the vDSO.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workloads/work.py");
    let c = compare(
        &[
            "/usr/bin/python3".into(),
            script.to_string_lossy().into_owned(),
            "120".into(),
        ],
        300,
    );
    assert!(c.samples > 200, "{c:?}");
    // Copies hold 16 KiB of stack: a deeper stack is cut short there, and
    // must be the kernel's up to that point.
    assert!(
        c.differences.is_empty(),
        "{} of {} samples unwound differently: {:x?}",
        c.differences.len(),
        c.samples,
        &c.differences[..c.differences.len().min(5)]
    );
    assert!(
        c.identical * 100 >= c.samples * 95,
        "only {} of {} identical ({} cut short)",
        c.identical,
        c.samples,
        c.cut_short
    );
}
