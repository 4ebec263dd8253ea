#!/usr/bin/env bash
# The whole test suite. Installs the test prerequisites (the toolchains
# the workloads are built with, perf and libbpf-tools' offcputime as the
# peers perfpilot is compared with, curl, Chromium for the web UI's
# browser tests, Prometheus and Alertmanager for the alerting tests, and the Pyroscope
# Python SDK from PyPI in a virtualenv, CPython 3.8-3.13 for the Python
# profiling tests: scripts/setup-pythons.sh), finds or fetches the NAB corpus
# (scripts/nab-corpus.sh), builds the web UI, then runs every step even
# when an earlier one failed: formatting, lints, every Rust test
# (`cargo test --no-fail-fast`), and the UI's end-to-end tests in
# headless Chromium, and a short fuzzing run of every parser of outside
# input (scripts/fuzz.sh --ci). It ends with a summary of every failure (each
# failing Rust test with the command that reruns it) and exits 1 if
# there was any. Logs go to target/test-logs/.
#
# Tests named root_* load BPF programs or make network namespaces, and
# need root; run this as root (CI does). The autopilot's tests run tc and
# ip (iproute2) and kubectl (kubernetes-client, unless a kubectl is
# installed already).
set -euo pipefail
cd "$(dirname "$0")/.."
kubectl=()
command -v kubectl >/dev/null || kubectl=(kubernetes-client)
./scripts/setup.sh g++ golang-go python3 python3-venv linux-perf libbpf-tools util-linux binutils curl chromium prometheus prometheus-alertmanager iproute2 "${kubectl[@]}"
if [ ! -x target/pyvenv/bin/python ] || ! target/pyvenv/bin/python -c 'import pyroscope' 2>/dev/null; then
  echo "test: installing pyroscope-io into target/pyvenv" >&2
  python3 -m venv target/pyvenv
  target/pyvenv/bin/pip install -q pyroscope-io
fi
export PERFPILOT_TEST_PYTHON="$PWD/target/pyvenv/bin/python"
# CPython 3.8-3.13 for the Python profiling tests (root_python, and the
# agent's layout tests on the real binaries).
./scripts/setup-pythons.sh || echo "test: could not unpack Debian's python3.9; root_python says what is missing" >&2
PERFPILOT_TEST_PYTHONS="$(./scripts/python-versions.sh | paste -sd:)"
export PERFPILOT_TEST_PYTHONS

target="$(mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)"
logs="$target/test-logs"
rm -rf "$logs"
mkdir -p "$logs"
: >"$logs/steps.tsv"

# step NAME COMMAND...: runs COMMAND with its output shown and kept in
# target/test-logs, and records its exit status; a failure does not stop
# the run, it is listed at the end.
step() {
  local name="$1"
  shift
  local log
  log="$logs/$(echo "$name" | tr -c 'a-z0-9\n' '-').log"
  echo "test: == $name ==" >&2
  set +e
  "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  printf '%s\t%s\t%s\n' "$name" "$status" "$log" >>"$logs/steps.tsv"
  return 0
}

# The Numenta Anomaly Benchmark corpus the NAB tests score against:
# PERFPILOT_NAB_DIR, ../shared/nab, or a verified download.
nab_corpus() {
  local dir
  dir="$(./scripts/nab-corpus.sh)" || return 1
  echo "$dir" >"$logs/nab-dir"
}
step "nab corpus" nab_corpus
if [ -s "$logs/nab-dir" ]; then
  PERFPILOT_NAB_DIR="$(cat "$logs/nab-dir")"
  export PERFPILOT_NAB_DIR
  echo "test: NAB corpus: $PERFPILOT_NAB_DIR" >&2
fi

step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test" cargo test --workspace --no-fail-fast

# The UI's unit tests (vitest), the API's golden answers among them
# (crates/server/tests/api-golden, written by the server's tests).
step "ui unit" sh -c 'cd ui && npm test --silent'

# The UI's end-to-end tests drive the perfpilot binary cargo test just
# built; node's TAP report names the failures for the summary.
e2e() {
  cargo build -q -p perfpilot || return 1
  (cd ui && PERFPILOT_BIN="$target/debug/perfpilot" \
    NODE_OPTIONS="--test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination=$logs/e2e.tap" \
    npm run e2e --silent)
}
step "ui e2e" e2e

# Every fuzz target for 10 s on a cheap build (no sanitizer), after its
# regression inputs and seeds are replayed; a crash fails the step and its
# input is kept under fuzz/artifacts/. Longer runs: scripts/fuzz.sh --help.
step "fuzz" ./scripts/fuzz.sh --ci

python3 scripts/test-summary.py "$logs"
