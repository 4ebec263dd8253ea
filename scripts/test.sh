#!/usr/bin/env bash
# The whole test suite. Installs the test prerequisites (the toolchains
# the workloads are built with, perf as the peer perfpilot is compared
# with), checks formatting and lints, then runs every test. Tests named
# root_* load BPF programs and need root; run this as root (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh g++ golang-go python3 linux-perf util-linux binutils
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
