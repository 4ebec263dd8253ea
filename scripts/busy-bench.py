#!/usr/bin/env python3
"""perfpilot's cost on a busy host under its CPU budget, beside perf.

Loads every CPU with a mix: C spinners (workloads/work.c, no frame
pointers), a context-switch-heavy pipe ping-pong (workloads/pingpong.c), a
Python process (workloads/work.py), and large binaries: Chromium headless
(when installed) and a debug build of perfpilot (a large Rust binary with
debug info) recording a spinner of its own. Then, in rounds, profiles the
whole host for --seconds with `perfpilot record -F 99 --profiles ...
--max-cpu ...` for each budget asked, and with `perf record -F 99 -a -g`
(linux-perf) in the same round as the peer.

For each: the tool's CPU as a share of one core (user + system from
wait4), perfpilot's BPF programs' run time (from its summary; the kernel
charges it to the sampled threads, so it is part of the cost), peak RSS
(VmHWM, polled), and what the budget shed (the summary's rate changes and
shed factor; the CPU profile's comment). Figures are medians over rounds.

Usage (as root): scripts/busy-bench.py [--rounds N] [--seconds S]
  [--profiles cpu,offcpu,wall,lock] [--max-cpu 1,off] [--perfpilot PATH]
  [--big-rust PATH] [--no-chromium] [--no-perf]
"""

import argparse
import gzip
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*argv):
    subprocess.run(argv, check=True)


def build(tmp):
    c = os.path.join(tmp, "work-c")
    sh("gcc", "-O2", "-g", "-fomit-frame-pointer", "-o", c, os.path.join(ROOT, "workloads/work.c"))
    pp = os.path.join(tmp, "pingpong")
    sh("gcc", "-O2", "-pthread", "-o", pp, os.path.join(ROOT, "workloads/pingpong.c"))
    return c, pp


def start_load(tmp, args, c, pp, seconds):
    """Starts the mix; returns the processes to stop afterwards."""
    procs = []
    devnull = subprocess.DEVNULL
    ncpu = os.cpu_count() or 1
    for _ in range(ncpu):
        procs.append(subprocess.Popen([c, str(seconds)], stdout=devnull))
    procs.append(subprocess.Popen([pp, str(seconds), "0"], stdout=devnull))
    procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "workloads/work.py"), str(seconds)],
                                  stdout=devnull))
    if args.big_rust and os.path.exists(args.big_rust):
        procs.append(subprocess.Popen(
            [args.big_rust, "record", "-F", "999", "--max-cpu", "off", "-q", "-o",
             os.path.join(tmp, "inner.pb.gz"), "--", c, str(seconds)],
            stdout=devnull, stderr=devnull))
    chromium = shutil.which("chromium")
    if chromium and not args.no_chromium:
        procs.append(subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--user-data-dir=" + os.path.join(tmp, "chromium"), "--remote-debugging-port=0", "about:blank"],
            stdout=devnull, stderr=devnull, start_new_session=True))
    return procs


def stop_load(procs):
    for p in procs:
        if p.poll() is None:
            try:
                if p.args[0].endswith("chromium"):
                    os.killpg(p.pid, signal.SIGTERM)
                else:
                    p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(argv, seconds, stop_with_signal):
    """Runs a profiler; returns (CPU share of a core, peak RSS MiB, stderr)."""
    with tempfile.TemporaryFile() as err:
        started = time.monotonic()
        prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        peak = 0
        deadline = started + seconds
        while time.monotonic() < deadline and prof.poll() is None:
            peak = max(peak, hwm_kib(prof.pid) or 0)
            time.sleep(0.2)
        if stop_with_signal and prof.poll() is None:
            peak = max(peak, hwm_kib(prof.pid) or 0)
            prof.send_signal(signal.SIGINT)
        # Reaped by wait4 alone, for its own rusage; VmHWM until it exits.
        while os.waitid(os.P_PID, prof.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            peak = max(peak, hwm_kib(prof.pid) or 0)
            if time.monotonic() > deadline + 60:
                prof.kill()
            time.sleep(0.05)
        _, status, usage = os.wait4(prof.pid, 0)
        prof.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        err.seek(0)
        text = err.read().decode(errors="replace")
        if prof.returncode not in (0, -signal.SIGINT):
            sys.exit(f"{argv} failed ({prof.returncode}):\n{text}")
    return (usage.ru_utime + usage.ru_stime) / elapsed, peak / 1024.0, text, elapsed


def profile_comment(path):
    """The budget's line in a pprof's comments (its strings, unparsed)."""
    try:
        data = gzip.open(path).read()
    except OSError:
        return ""
    m = re.search(rb"budget: [ -~]+", data)
    return m.group(0).decode() if m else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--profiles", default="cpu,offcpu,wall,lock",
                    help="perfpilot's --profiles (alloc probes every process's "
                         "malloc host-wide: add it to see that cost)")
    ap.add_argument("--max-cpu", default="1,off", help="budgets to compare, comma-separated")
    ap.add_argument("--perfpilot", default=os.path.join(ROOT, "target/release/perfpilot"))
    ap.add_argument("--big-rust", default=os.path.join(ROOT, "target/debug/perfpilot"),
                    help="a large Rust binary with debug info: a perfpilot debug build")
    ap.add_argument("--no-chromium", action="store_true")
    ap.add_argument("--no-perf", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: profiling loads BPF programs")
    perf = None if args.no_perf else shutil.which("perf")

    budgets = [b.strip() for b in args.max_cpu.split(",") if b.strip()]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        c, pp = build(tmp)
        for r in range(args.rounds):
            load = start_load(tmp, args, c, pp, args.seconds * (len(budgets) + 2) + 30)
            time.sleep(3)  # the big binaries start up
            try:
                for b in budgets:
                    out = os.path.join(tmp, "out.pb.gz")
                    cpu, rss, text, elapsed = measure(
                        [args.perfpilot, "record", "-F", "99", "--profiles", args.profiles,
                         "--max-cpu", b, "-d", str(args.seconds), "-o", out], args.seconds, False)
                    m = re.search(r"\+ ([0-9.]+) s in its BPF programs", text)
                    bpf = float(m.group(1)) / elapsed if m else float("nan")
                    m = re.search(r"CPU budget: ([0-9,]+) rate changes, shed factor now ([0-9.]+)", text)
                    shed = f"{m.group(1)} changes, factor {m.group(2)}" if m else "none"
                    comment = profile_comment(out)
                    m = re.search(r"sampled at ([0-9-]+ Hz)", comment)
                    rate = m.group(1) if m else "99 Hz"
                    rows.setdefault(f"perfpilot --max-cpu {b}", []).append((cpu, bpf, rss, f"{shed}; cpu {rate}"))
                if perf:
                    data = os.path.join(tmp, "perf.data")
                    cpu, rss, _, _ = measure([perf, "record", "-F", "99", "-a", "-g", "-o", data],
                                             args.seconds, True)
                    rows.setdefault("perf record -F 99 -a -g", []).append((cpu, float("nan"), rss, "-"))
            finally:
                stop_load(load)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    print(f"host: {os.cpu_count()} CPUs, busy; {args.seconds:g} s per run, {args.rounds} rounds, "
          f"profiles {args.profiles}; medians")
    print(f"{'tool':34} {'CPU %core':>10} {'BPF %core':>10} {'total':>8} {'peak RSS MiB':>13}  shed (last round)")
    for name, rs in rows.items():
        cpu = statistics.median(x[0] for x in rs) * 100
        bpf = statistics.median(x[1] for x in rs) * 100
        total = cpu + (0 if bpf != bpf else bpf)
        rss = statistics.median(x[2] for x in rs)
        bpf_s = "-" if bpf != bpf else f"{bpf:.2f}"
        print(f"{name:34} {cpu:10.2f} {bpf_s:>10} {total:8.2f} {rss:13.1f}  {rs[-1][3]}")


if __name__ == "__main__":
    main()
