#!/usr/bin/env bash
# Prints the CPython interpreters the Python tests profile, one path a
# line, the newest build of each minor version 3.8 to 3.13 that this
# machine has: Debian's /usr/bin/python3.N, pyenv's builds
# ($PYENV_ROOT/versions/3.N.*), and interpreters unpacked under
# target/pythons/ by scripts/setup-pythons.sh. With --require, fails
# naming each minor version it did not find.
set -euo pipefail
cd "$(dirname "$0")/.."
require=0
[ "${1:-}" = --require ] && require=1
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
missing=()
for minor in 8 9 10 11 12 13; do
  found=""
  for exe in /usr/bin/python3.$minor \
    $(ls -d "$pyenv_root"/versions/3.$minor.* 2>/dev/null | sort -V -r | sed "s|\$|/bin/python3.$minor|") \
    target/pythons/3.$minor/usr/bin/python3.$minor; do
    if [ -x "$exe" ] && "$exe" -c 'pass' 2>/dev/null; then
      found="$exe"
      break
    fi
  done
  if [ -n "$found" ]; then
    case "$found" in /*) echo "$found" ;; *) echo "$PWD/$found" ;; esac
  else
    missing+=("3.$minor")
  fi
done
if [ "$require" = 1 ] && [ "${#missing[@]}" -gt 0 ]; then
  echo "python-versions: no interpreter for ${missing[*]}" >&2
  exit 1
fi
