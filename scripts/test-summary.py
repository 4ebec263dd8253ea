#!/usr/bin/env python3
"""The end of scripts/test.sh: every failure of the run, one a line.

    test-summary.py LOGDIR

LOGDIR (target/test-logs) holds what test.sh wrote: `steps.tsv` (each
step's name, exit status and log file), `cargo-test.log` (the output of
`cargo test --workspace --no-fail-fast`) and `e2e.tap` (the UI's
end-to-end tests, in TAP). Failed Rust tests are named with the command
that reruns them alone, a test binary that died with its signal, failed
UI tests by file and name. Exits 1 when anything failed, 0 otherwise.
"""

import os
import re
import sys


def cargo_failures(text):
    """(what failed, why) for each failing test or test binary of a
    `cargo test --no-fail-fast` log."""
    out = []
    failed = []  # tests of the binary running now that failed
    last_target = None
    for line in text.splitlines():
        if re.match(r"^\s+(Running|Doc-tests) ", line):
            failed = []
            last_target = None
            continue
        m = re.match(r"^test (.+) \.\.\. FAILED$", line)
        if m:
            failed.append(m.group(1))
            continue
        m = re.match(r"^error: test failed, to rerun pass `(.+)`$", line)
        if m:
            last_target = m.group(1)
            for name in failed:
                out.append(["cargo test %s -- --exact '%s'" % (last_target, name), ""])
            if not failed:
                out.append(["cargo test %s" % last_target, "the test binary failed"])
            continue
        m = re.match(r"^\s+process didn't exit successfully: .* \((.+)\)$", line)
        if m and last_target is not None:
            cause = m.group(1)
            if cause.startswith("signal"):
                # A crash ends the tests still running with it and the
                # ones not yet started: none of them reports.
                why = "the test binary died (%s); the tests it was running did not report" % cause
                if failed:
                    out.append(["cargo test %s" % last_target, why])
                else:
                    out[-1][1] = why
            elif not failed:
                out[-1][1] = "the test binary exited with %s" % cause
            last_target = None
            continue
        m = re.match(r"^error(\[E\d+\])?: (could not compile .*)$", line)
        if m:
            out.append(["cargo test (build)", m.group(2)])
    return [tuple(f) for f in out]


def tap_failures(text):
    """`test > subtest (file:line)` of each failing leaf test in node's
    TAP."""
    out = []
    stack = []  # (indent, name) of "# Subtest:" lines still open
    previous_indent = None
    waiting = None  # the failure whose YAML block may give its place
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        m = re.match(r"^location: '(.*)'$", body)
        if m and waiting is not None:
            out[waiting] += " (%s)" % os.path.basename(m.group(1))
            waiting = None
            continue
        m = re.match(r"^# Subtest: (.*)$", body)
        if m:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m.group(1)))
            continue
        m = re.match(r"^(not ok|ok) \d+ - (.*?)(\s+# .*)?$", body)
        if not m:
            continue
        waiting = None
        # A result whose previous result is deeper closes a group: only
        # its failing children are named.
        is_group = previous_indent is not None and previous_indent > indent
        previous_indent = indent
        if m.group(1) == "not ok" and not is_group:
            names = [n for i, n in stack if i < indent] + [m.group(2)]
            out.append(" > ".join(names))
            waiting = len(out) - 1
        while stack and stack[-1][0] >= indent:
            stack.pop()
    return out


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    logs = sys.argv[1]
    print("test: ---- summary ----", file=sys.stderr)
    failures = []
    steps = read(os.path.join(logs, "steps.tsv")) or ""
    for row in steps.splitlines():
        name, status, log = row.split("\t")
        if status == "0":
            continue
        print("test: FAILED step %s (exit status %s; log %s)" % (name, status, log), file=sys.stderr)
        details = []
        if name == "cargo test":
            details = [what + (": " + why if why else "")
                       for what, why in cargo_failures(read(log) or "")]
        elif name == "ui e2e":
            tap = read(os.path.join(logs, "e2e.tap")) or ""
            details = ["ui e2e: " + n for n in tap_failures(tap)]
        elif name == "fuzz":
            # The table fuzz.sh ends with: target, runs, coverage, result.
            details = ["fuzz target " + " ".join(line.split()[:1] + line.split()[4:])
                       for line in (read(log) or "").splitlines()
                       if "  FAILED (" in line]
        for d in details:
            print("test:   FAILED " + d, file=sys.stderr)
        failures.append(max(len(details), 1))
    if not failures:
        print("test: every step passed", file=sys.stderr)
        return 0
    print(
        "test: %d step(s) failed, %d failure(s) in all" % (len(failures), sum(failures)),
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
