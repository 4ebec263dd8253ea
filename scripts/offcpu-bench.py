#!/usr/bin/env python3
"""Off-CPU profiling cost on a context-switch-heavy benchmark, side by side.

A pipe ping-pong (workloads/pingpong.c: two threads passing a byte back and
forth, every read blocking) runs alone, under `perfpilot record --profiles
offcpu` in a few settings, and under libbpf-tools' `offcputime` (Debian
package libbpf-tools; bpfcc-tools' offcputime-bpfcc cannot run here: it
compiles its program at run time against kernel headers, and attaches a
kprobe). Each run prints the ping-pong's round trips per second; the table
gives the median over rounds, its ratio to the run alone, and the
profiler's own CPU (user + system, as a share of one core over its run).
The BPF programs' time in the kernel is charged to the threads switching,
so it shows as lost throughput, not as profiler CPU.

Usage (as root): scripts/offcpu-bench.py [--rounds N] [--seconds S]
  [--perfpilot PATH]   (default: target/release/perfpilot)
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 2.0


def run(pingpong, seconds, tool):
    """One run: (round trips per second, the tool's CPU share of a core)."""
    work = subprocess.Popen([pingpong, str(seconds), str(WARMUP)], stdout=subprocess.PIPE, text=True)
    if tool is None:
        out, _ = work.communicate()
        return float(out.strip()), None
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        prof = subprocess.Popen(tool(work.pid), stdout=subprocess.DEVNULL, stderr=err)
        out, _ = work.communicate()
        # record --pid ends with its process; offcputime at SIGINT. The
        # profiler is reaped by wait4 alone, for its own rusage.
        if os.path.basename(prof.args[0]) == "offcputime":
            prof.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while os.waitid(os.P_PID, prof.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                prof.kill()
            time.sleep(0.05)
        _, status, usage = os.wait4(prof.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        prof.returncode = code
        if code not in (0, -signal.SIGINT):
            err.seek(0)
            sys.exit(f"{prof.args} failed ({code}):\n{err.read().decode(errors='replace')}")
    cpu_share = (usage.ru_utime + usage.ru_stime) / (time.monotonic() - started)
    return float(out.strip()), cpu_share


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--perfpilot", default=os.path.join(ROOT, "target/release/perfpilot"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the profilers load BPF programs")
    tmp = tempfile.mkdtemp(prefix="offcpu-bench.")
    pingpong = os.path.join(tmp, "pingpong")
    subprocess.run(["gcc", "-O2", "-pthread", "-o", pingpong, os.path.join(ROOT, "workloads/pingpong.c")], check=True)
    out = os.path.join(tmp, "out.pb.gz")

    def perfpilot(*extra):
        return lambda pid: [a.perfpilot, "record", "-q", "--profiles", "offcpu", *extra, "--pid", str(pid), "-o", out]

    configs = [
        ("alone", None),
        ("perfpilot offcpu (min block 1 ms)", perfpilot()),
        ("perfpilot offcpu (min block 0)", perfpilot("--offcpu-min-block-us", "0")),
        ("perfpilot offcpu (1 in 10 switches)", perfpilot("--offcpu-sample-every", "10")),
    ]
    offcputime = shutil.which("offcputime")
    if offcputime:
        configs.append(("offcputime -m 1000 (libbpf-tools)", lambda pid: [offcputime, "-m", "1000", "-p", str(pid)]))
        configs.append(("offcputime (libbpf-tools, min 1 us)", lambda pid: [offcputime, "-p", str(pid)]))
    else:
        print("offcputime not found: apt-get install libbpf-tools to compare", file=sys.stderr)

    results = {name: ([], []) for name, _ in configs}
    # Rounds interleave the settings, so a machine's load drifting over
    # the run is shared between them.
    for r in range(a.rounds):
        for name, tool in configs:
            rate, cpu = run(pingpong, a.seconds, tool)
            results[name][0].append(rate)
            if cpu is not None:
                results[name][1].append(cpu)
            print(f"round {r + 1}: {name}: {rate:,.0f} round trips/s", file=sys.stderr)

    base = statistics.median(results["alone"][0])
    print(f"{'setting':40} {'round trips/s':>14} {'vs alone':>9} {'profiler CPU':>13}")
    for name, _ in configs:
        rates, cpus = results[name]
        med = statistics.median(rates)
        cpu = f"{statistics.median(cpus) * 100:.1f}%" if cpus else "-"
        print(f"{name:40} {med:14,.0f} {med / base:9.3f} {cpu:>13}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
