#!/usr/bin/env python3
"""Lock contention profiling cost on a contended-mutex benchmark, side by side.

workloads/mutexbench.c in two modes: "handoff", two threads passing a turn
through two semaphores (every handoff a futex wait, so its rate falls
with whatever a wait costs: the cost measure), and "mutex", four threads
taking one pthread mutex in a loop (a little work inside and out: tens of
thousands of contended waits a second on two cores; its throughput
depends on how waits interleave, so slowing them can move it either
way). Each runs alone, under `perfpilot record --profiles lock` in a
few settings, and under the tools a user would otherwise reach for:
libbpf-tools' `offcputime` (every block with its stack, futex waits among
them; bcc's `klockstat` traces kernel mutexes through kprobes, not user
locks, and kprobes are unavailable here) and `perf trace -s -e futex`
(per-thread futex call counts and times, no stacks; needs tracefs
mounted). Each run prints handoffs or critical sections per second; the table gives
the median over rounds, its ratio to the run alone, and the profiler's
own CPU (user + system, as a share of one core over its run). The BPF
programs' time in the kernel is charged to the threads waiting, so it
shows as lost throughput, not as profiler CPU. The futex waits counted
per second are perfpilot's own count (its summary line).

Usage (as root): scripts/lock-bench.py [--rounds N] [--seconds S]
  [--perfpilot PATH]   (default: target/release/perfpilot)
"""

import argparse
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
WARMUP = 2.0
MODES = ["handoff", "mutex"]


def run(bench, mode, seconds, tool):
    """One run: (handoffs or sections per second, the tool's CPU share of a
    core, futex waits per second perfpilot counted or None)."""
    work = subprocess.Popen([bench, str(seconds), str(WARMUP), mode], stdout=subprocess.PIPE, text=True)
    if tool is None:
        out, _ = work.communicate()
        return float(out.strip()), None, None
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        prof = subprocess.Popen(tool(work.pid), stdout=subprocess.DEVNULL, stderr=err)
        out, _ = work.communicate()
        # record --pid and perf trace -p end with their process;
        # offcputime at SIGINT. The profiler is reaped by wait4 alone, for
        # its own rusage.
        if os.path.basename(prof.args[0]) == "offcputime":
            prof.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while os.waitid(os.P_PID, prof.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                prof.kill()
            time.sleep(0.05)
        _, status, usage = os.wait4(prof.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
        if code not in (0, -signal.SIGINT):
            sys.exit(f"{prof.args} failed ({code}):\n{text}")
    elapsed = time.monotonic() - started
    cpu_share = (usage.ru_utime + usage.ru_stime) / elapsed
    m = re.search(r"lock: ([\d,]+) futex waits counted", text)
    waits = int(m.group(1).replace(",", "")) / elapsed if m else None
    return float(out.strip()), cpu_share, waits


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--perfpilot", default=os.path.join(ROOT, "target/release/perfpilot"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the profilers load BPF programs")
    tmp = tempfile.mkdtemp(prefix="lock-bench.")
    bench = os.path.join(tmp, "mutexbench")
    subprocess.run(["gcc", "-O2", "-pthread", "-o", bench, os.path.join(ROOT, "workloads/mutexbench.c")], check=True)
    out = os.path.join(tmp, "out.pb.gz")

    def perfpilot(*extra):
        return lambda pid: [a.perfpilot, "record", "--profiles", "lock", *extra, "--pid", str(pid), "-o", out]

    configs = [
        ("alone", None),
        ("perfpilot lock (every wait)", perfpilot()),
        ("perfpilot lock (min wait 10 us)", perfpilot("--lock-min-wait-us", "10")),
        ("perfpilot lock (1 in 10 waits)", perfpilot("--lock-sample-every", "10")),
    ]
    offcputime = shutil.which("offcputime")
    if offcputime:
        configs.append(("offcputime (libbpf-tools, min 1 us)", lambda pid: [offcputime, "-p", str(pid)]))
        configs.append(("offcputime -m 10 (libbpf-tools)", lambda pid: [offcputime, "-m", "10", "-p", str(pid)]))
    else:
        print("offcputime not found: apt-get install libbpf-tools to compare", file=sys.stderr)
    perf = shutil.which("perf")
    if perf and os.path.isdir("/sys/kernel/tracing/events/syscalls"):
        configs.append(
            ("perf trace -s -e futex", lambda pid: [perf, "trace", "-s", "-e", "futex", "-o", os.devnull, "-p", str(pid)])
        )
    else:
        print("perf trace skipped: no perf, or tracefs not mounted (mount -t tracefs nodev /sys/kernel/tracing)",
              file=sys.stderr)

    results = {(mode, name): ([], [], []) for mode in MODES for name, _ in configs}
    # Rounds interleave the settings, so a machine's load drifting over
    # the run is shared between them.
    for r in range(a.rounds):
        for mode in MODES:
            for name, tool in configs:
                rate, cpu, waits = run(bench, mode, a.seconds, tool)
                res = results[(mode, name)]
                res[0].append(rate)
                if cpu is not None:
                    res[1].append(cpu)
                if waits is not None:
                    res[2].append(waits)
                print(f"round {r + 1}: {mode}: {name}: {rate:,.0f}/s", file=sys.stderr)

    for mode in MODES:
        what = "handoffs/s" if mode == "handoff" else "sections/s"
        print(f"\n{mode}")
        print(f"{'setting':38} {what:>11} {'vs alone':>9} {'profiler CPU':>13} {'waits/s':>9}")
        base = statistics.median(results[(mode, "alone")][0])
        for name, _ in configs:
            rates, cpus, waits = results[(mode, name)]
            med = statistics.median(rates)
            cpu = f"{statistics.median(cpus) * 100:.1f}%" if cpus else "-"
            w = f"{statistics.median(waits):,.0f}" if waits else "-"
            print(f"{name:38} {med:11,.0f} {med / base:9.3f} {cpu:>13} {w:>9}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
