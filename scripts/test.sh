#!/usr/bin/env bash
# The whole test suite. Installs the test prerequisites (the toolchains
# the workloads are built with, perf as the peer perfpilot is compared
# with, curl, and the Pyroscope Python SDK from PyPI in a virtualenv),
# checks formatting and lints, then runs every test. Tests named root_*
# load BPF programs and need root; run this as root (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh g++ golang-go python3 python3-venv linux-perf util-linux binutils curl
if [ ! -x target/pyvenv/bin/python ] || ! target/pyvenv/bin/python -c 'import pyroscope' 2>/dev/null; then
  echo "test: installing pyroscope-io into target/pyvenv" >&2
  python3 -m venv target/pyvenv
  target/pyvenv/bin/pip install -q pyroscope-io
fi
export PERFPILOT_TEST_PYTHON="$PWD/target/pyvenv/bin/python"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
