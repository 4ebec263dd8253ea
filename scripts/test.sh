#!/usr/bin/env bash
# The whole test suite. Installs the test prerequisites (the toolchains
# the workloads are built with, perf as a peer), checks formatting and
# lints, then runs every test. Tests named root_* load BPF programs and
# need root; run this as root (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
for pkg in golang-go python3 linux-perf; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "test: installing ${need[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
