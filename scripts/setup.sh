#!/usr/bin/env bash
# Installs what building and running perfpilot needs on Debian/Ubuntu:
# clang (compiles the BPF programs), libelf/zlib/pkg-config (libbpf),
# bpftool (dumps the kernel's BTF into vmlinux.h). Extra Debian packages
# given as arguments are installed too (scripts/test.sh passes its own).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
for pkg in clang llvm libelf-dev zlib1g-dev pkg-config bpftool make gcc "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
# The web UI is built with Node.js (Debian's, when the machine has none) and
# embedded into the binary by `cargo build`; running perfpilot needs no Node.
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs npm" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nodejs npm
fi
"$(dirname "$0")/build-ui.sh"
