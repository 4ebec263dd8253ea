#!/usr/bin/env bash
# Prints the CPython interpreters the Python tests profile, one path a
# line: Debian's /usr/bin/python3.N, the newest pyenv build of each minor
# version ($PYENV_ROOT/versions/3.N.*), and Debian bullseye's python3.9
# unpacked by scripts/setup-pythons.sh, for N from 8 to 13. With
# --require, fails naming each minor version it found no interpreter for.
set -euo pipefail
cd "$(dirname "$0")/.."
require=0
[ "${1:-}" = --require ] && require=1
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
missing=()
for minor in 8 9 10 11 12 13; do
  found=0
  pyenv_build="$(ls -d "$pyenv_root"/versions/3.$minor.* 2>/dev/null | sort -V | tail -1)"
  for exe in /usr/bin/python3.$minor "${pyenv_build:+$pyenv_build/bin/python3.$minor}" \
    "$PWD/target/pythons/debian-3.$minor/bin/python3.$minor"; do
    if [ -n "$exe" ] && [ -x "$exe" ] && "$exe" -c pass 2>/dev/null; then
      echo "$exe"
      found=1
    fi
  done
  [ "$found" = 1 ] || missing+=("3.$minor")
done
if [ "$require" = 1 ] && [ "${#missing[@]}" -gt 0 ]; then
  echo "python-versions: no interpreter for ${missing[*]}" >&2
  exit 1
fi
