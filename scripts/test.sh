#!/usr/bin/env bash
# The whole test suite. Installs the test prerequisites (the toolchains
# the workloads are built with, perf as the peer perfpilot is compared
# with, curl, Chromium for the web UI's browser tests, Prometheus and
# Alertmanager for the alerting tests, and the Pyroscope
# Python SDK from PyPI in a virtualenv), builds the web UI, checks
# formatting and lints, then runs every test: Rust's, then the UI's
# end-to-end tests in headless Chromium. Tests named root_* load BPF
# programs or make network namespaces, and need root; run this as root
# (CI does). The autopilot's tests run tc and ip (iproute2) and kubectl
# (kubernetes-client, unless a kubectl is installed already).
set -euo pipefail
cd "$(dirname "$0")/.."
kubectl=()
command -v kubectl >/dev/null || kubectl=(kubernetes-client)
./scripts/setup.sh g++ golang-go python3 python3-venv linux-perf util-linux binutils curl chromium prometheus prometheus-alertmanager iproute2 "${kubectl[@]}"
if [ ! -x target/pyvenv/bin/python ] || ! target/pyvenv/bin/python -c 'import pyroscope' 2>/dev/null; then
  echo "test: installing pyroscope-io into target/pyvenv" >&2
  python3 -m venv target/pyvenv
  target/pyvenv/bin/pip install -q pyroscope-io
fi
export PERFPILOT_TEST_PYTHON="$PWD/target/pyvenv/bin/python"
# The Numenta Anomaly Benchmark corpus the NAB tests score against.
if [ -z "${PERFPILOT_NAB_DIR:-}" ]; then
  for d in ../shared/nab /work/shared/nab; do
    if [ -f "$d/labels/combined_windows.json" ]; then
      PERFPILOT_NAB_DIR="$(cd "$d" && pwd)"
      export PERFPILOT_NAB_DIR
      break
    fi
  done
fi
echo "test: NAB corpus: ${PERFPILOT_NAB_DIR:-not found (the NAB tests will fail and say where they looked)}" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The UI's end-to-end tests drive the perfpilot binary cargo test just built.
cargo build -q -p perfpilot
bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/perfpilot"
(cd ui && PERFPILOT_BIN="$bin" npm run e2e --silent)
