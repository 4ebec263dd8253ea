#!/usr/bin/env python3
"""Allocation profiling cost, side by side, on two workloads
(workloads/allocbench.c):

  tight    malloc(64) + free in a loop (tens of millions a second alone):
           the worst case, where the per-call cost of any hook shows whole;
  service  requests of computing and 4 allocations (about 100k
           allocations a second alone on one core): a service-like mix.

Each runs alone, under `perfpilot record --profiles alloc --pid` (uprobes
on malloc, calloc, realloc, free, ... of the process's libc, byte-sampled
in the kernel) at the default mean of 512 KiB and at 8 MiB, and with
`--alloc-max-probe-rate 10000` (probes detached while over it), under the
peers a user would reach for, and prints allocations per second (median
over rounds), the ratio to the run alone, the profiler's CPU, and for the
tight loop the cost each probe hit adds (the added time per malloc+free
pair over the probes it hits: 3 for perfpilot, malloc's entry and return
and free's entry; 2 for perf's entry probes).

Peers:
  perf probe   `perf probe -x libc -a malloc -a free` then `perf record
               -e probe_libc:malloc -e probe_libc:free --pid`: the
               kernel's uprobes, every call recorded, no stacks;
  heaptrack    LD_PRELOAD-based (it starts the workload itself);
  memleak-bpfcc (bcc) cannot run on this machine: it compiles its BPF
               program at run time against the running kernel's headers,
               and there are none (no /lib/modules/$(uname -r)/build, no
               CONFIG_IKHEADERS kheaders module). It is tried, and said so.

Usage (as root): scripts/alloc-bench.py [--rounds N] [--seconds S]
  [--perfpilot PATH]   (default: target/release/perfpilot)
  [--modes tight,service]
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
PAUSE_MS = 1500
SERVICE_WORK = "20000"


def number(text):
    for line in text.splitlines():
        if line.strip().isdigit():
            return float(line.strip())
    raise ValueError(f"no rate in {text!r}")


def run(bench, mode, seconds, tool):
    """One run: (allocations per second, the tool's CPU share of a core)."""
    argv = [bench, mode, str(seconds), str(PAUSE_MS), SERVICE_WORK]
    if tool is not None and tool[0] == "wrap":
        out = subprocess.run(tool[1] + argv, capture_output=True, text=True)
        return number(out.stdout), None
    work = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    if tool is None:
        out, _ = work.communicate()
        return number(out), None
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        prof = subprocess.Popen(tool[1](work.pid), stdout=subprocess.DEVNULL, stderr=err)
        out, _ = work.communicate()
        deadline = time.monotonic() + 30
        while os.waitid(os.P_PID, prof.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                prof.send_signal(signal.SIGINT)
                deadline += 30
            time.sleep(0.05)
        _, status, usage = os.wait4(prof.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, -signal.SIGINT):
            err.seek(0)
            sys.exit(f"{prof.args} failed ({code}):\n{err.read().decode(errors='replace')}")
    cpu_share = (usage.ru_utime + usage.ru_stime) / (time.monotonic() - started)
    return number(out), cpu_share


def libc_path():
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[5]) == "libc.so.6":
                return parts[5]
    sys.exit("no libc.so.6 in our own mappings")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--perfpilot", default=os.path.join(ROOT, "target/release/perfpilot"))
    ap.add_argument("--modes", default="tight,service", help="comma-separated: tight, service")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the profilers load BPF programs and uprobes")
    tmp = tempfile.mkdtemp(prefix="alloc-bench.")
    bench = os.path.join(tmp, "allocbench")
    subprocess.run(["gcc", "-O2", "-o", bench, os.path.join(ROOT, "workloads/allocbench.c")], check=True)
    out = os.path.join(tmp, "out.pb.gz")

    def perfpilot(*extra):
        return ("attach", lambda pid: [a.perfpilot, "record", "-q", "--profiles", "alloc", *extra,
                                       "--pid", str(pid), "-o", out])

    configs = [
        ("alone", None, 0),
        ("perfpilot alloc (512 KiB mean)", perfpilot(), 3),
        ("perfpilot alloc (8 MiB mean)", perfpilot("--alloc-sample-bytes", str(8 << 20)), 3),
        ("perfpilot alloc (max 10k hits/s)", perfpilot("--alloc-max-probe-rate", "10000"), 3),
    ]
    perf = shutil.which("perf")
    probes = False
    if perf:
        libc = libc_path()
        subprocess.run([perf, "probe", "-q", "-d", "probe_libc:*"], capture_output=True)
        r = subprocess.run([perf, "probe", "-q", "-x", libc, "-a", "malloc", "-a", "free"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            probes = True
            data = os.path.join(tmp, "perf.data")
            configs.append(("perf probe malloc+free (record)",
                            ("attach", lambda pid: [perf, "record", "-q", "-e", "probe_libc:malloc",
                                                    "-e", "probe_libc:free", "-p", str(pid), "-o", data]), 2))
        else:
            print(f"perf probe failed: {r.stderr.strip()}", file=sys.stderr)
    heaptrack = shutil.which("heaptrack")
    if heaptrack:
        configs.append(("heaptrack (LD_PRELOAD)", ("wrap", [heaptrack, "-o", os.path.join(tmp, "ht")]), 0))
    memleak = shutil.which("memleak-bpfcc")
    if memleak:
        r = subprocess.run([memleak, "-p", str(os.getpid()), "1", "1"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            why = [l for l in r.stderr.splitlines() if "kernel headers" in l or "kheaders" in l]
            print(f"memleak-bpfcc cannot run here: {' / '.join(why) or r.stderr.strip()[-300:]}", file=sys.stderr)

    try:
        for mode in a.modes.split(","):
            results = {name: ([], []) for name, _, _ in configs}
            # Rounds interleave the settings, so a machine's load drifting
            # over the run is shared between them.
            for r in range(a.rounds):
                for name, tool, _ in configs:
                    rate, cpu = run(bench, mode, a.seconds, tool)
                    results[name][0].append(rate)
                    if cpu is not None:
                        results[name][1].append(cpu)
                    print(f"{mode} round {r + 1}: {name}: {rate:,.0f} allocations/s", file=sys.stderr)
            base = statistics.median(results["alone"][0])
            print(f"\n{mode}: alone {base:,.0f} allocations/s")
            print(f"{'setting':36} {'allocs/s':>12} {'vs alone':>9} {'profiler CPU':>13} {'per probe hit':>14}")
            for name, _, hits in configs:
                rates, cpus = results[name]
                med = statistics.median(rates)
                cpu = f"{statistics.median(cpus) * 100:.1f}%" if cpus else "-"
                per_hit = "-"
                if mode == "tight" and hits:
                    per_hit = f"{(1 / med - 1 / base) / hits * 1e6:.2f} us"
                print(f"{name:36} {med:12,.0f} {med / base:9.4f} {cpu:>13} {per_hit:>14}")
    finally:
        if probes:
            subprocess.run([perf, "probe", "-q", "-d", "probe_libc:*"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
