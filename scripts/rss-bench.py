#!/usr/bin/env python3
"""perfpilot's peak memory on a host running large binaries.

Starts a large Rust binary with debug info (a debug build of perfpilot,
recording a spinner of its own) and Chromium headless (when installed),
then runs `perfpilot record` (whole host) for --seconds and prints
its peak RSS (VmHWM) and the smaps_rollup breakdown polled at the highest
RSS seen (anonymous vs file-backed), plus the summary's eviction counts.

Usage (as root): scripts/rss-bench.py [--rounds N] [--seconds S]
  [--perfpilot PATH] [--big-rust PATH] [--no-chromium] [-- extra record args]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        pass
    return out


def start_load(tmp, args):
    procs = []
    spin = os.path.join(tmp, "work-c")
    subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", "-o", spin, os.path.join(ROOT, "workloads/work.c")],
                   check=True)
    total = args.seconds * args.rounds + 120
    if args.big_rust and os.path.exists(args.big_rust):
        procs.append(subprocess.Popen(
            [args.big_rust, "record", "-F", "99", "--max-cpu", "off", "-q", "-o",
             os.path.join(tmp, "inner.pb.gz"), "--", spin, str(total)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    chromium = shutil.which("chromium")
    if chromium and not args.no_chromium:
        procs.append(subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--user-data-dir=" + os.path.join(tmp, "chromium"), "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    time.sleep(3)
    return procs


def stop_load(procs):
    for p in procs:
        if p.poll() is None:
            try:
                if "chromium" in p.args[0]:
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


def one(args, tmp, n):
    out = os.path.join(tmp, f"out{n}.pb.gz")
    argv = [args.perfpilot, "record", "-F", "99", "-o", out] + args.extra
    err = open(os.path.join(tmp, f"err{n}"), "w+")
    prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + args.seconds
    best, hwm = {}, 0
    while prof.poll() is None:
        if time.monotonic() > deadline:
            prof.send_signal(signal.SIGINT)
            deadline = float("inf")
        r = rollup(prof.pid)
        hwm = max(hwm, status_kib(prof.pid, "VmHWM"))
        if r.get("Rss", 0) > best.get("Rss", 0):
            best = r
        time.sleep(0.05)
    err.seek(0)
    text = err.read()
    if prof.returncode not in (0, 130, -2):
        sys.exit(f"{argv} failed ({prof.returncode}):\n{text}")
    return hwm, best, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--perfpilot", default=os.path.join(TARGET, "release/perfpilot"))
    ap.add_argument("--big-rust", default=os.path.join(TARGET, "debug/perfpilot"))
    ap.add_argument("--no-chromium", action="store_true")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs = start_load(tmp, args)
        try:
            for n in range(args.rounds):
                hwm, r, text = one(args, tmp, n)
                mib = lambda k: r.get(k, 0) / 1024
                print(f"round {n}: VmHWM {hwm / 1024:.1f} MiB; at max polled RSS {mib('Rss'):.1f}: "
                      f"anon {mib('Anonymous'):.1f}, file {mib('Rss') - mib('Anonymous'):.1f} MiB", flush=True)
                for line in text.splitlines():
                    if "evict" in line or "memory" in line:
                        print("   ", line.strip())
        finally:
            stop_load(procs)


if __name__ == "__main__":
    main()
