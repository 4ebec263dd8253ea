#!/usr/bin/env bash
# Installs the CPython interpreters the Python tests profile, beside what
# the machine has (scripts/python-versions.sh lists them): Debian's
# python3.11 (scripts/test.sh installs it with apt), and Debian bullseye's
# python3.9 (a statically linked build, unlike pyenv's shared ones),
# unpacked with `dpkg -x` under target/pythons/debian-3.9 without
# installing it: its packages need only an older glibc. The other minor
# versions (3.8, 3.10, 3.12, 3.13) come from the machine's pyenv builds;
# no package source this project may use ships them for this glibc.
# Takes a few seconds; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/pythons/debian-3.9
if [ -x "$dest/bin/python3.9" ] && "$dest/bin/python3.9" -c pass 2>/dev/null; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
# The Debian archive this machine's apt already uses, asked for bullseye.
debian_archive() {
  apt-get indextargets --format '$(REPO_URI) $(ORIGIN) $(LABEL)' 'Created-By: Packages' 2>/dev/null |
    awk '$2 == "Debian" && $3 == "Debian" { print $1; exit }'
}
mirror="$(debian_archive)"
if [ -z "$mirror" ]; then
  apt-get update -q >/dev/null
  mirror="$(debian_archive)"
fi
if [ -z "$mirror" ]; then
  echo "setup-pythons: apt knows no Debian archive" >&2
  exit 1
fi
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main" >"$work/sources.list"
apt_opts=(-q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
  -o APT::Sandbox::User=root)
echo "setup-pythons: unpacking Debian bullseye's python3.9 into $dest" >&2
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$work/debs" && apt-get "${apt_opts[@]}" download python3.9-minimal libpython3.9-minimal libpython3.9-stdlib >/dev/null)
rm -rf "$dest"
mkdir -p "$dest/bin"
for deb in "$work"/debs/*.deb; do
  dpkg -x "$deb" "$dest/root"
done
# Built for prefix /usr: PYTHONHOME points it at the unpacked tree. exec
# keeps the process the interpreter itself (named python3.9).
cat >"$dest/bin/python3.9" <<WRAP
#!/bin/sh
PYTHONHOME="$PWD/$dest/root/usr" exec "$PWD/$dest/root/usr/bin/python3.9" "\$@"
WRAP
chmod +x "$dest/bin/python3.9"
"$dest/bin/python3.9" -c 'import sys, time; assert sys.version_info[:2] == (3, 9)'
