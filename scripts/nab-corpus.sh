#!/usr/bin/env bash
# The Numenta Anomaly Benchmark corpus the NAB tests score against.
#
#   scripts/nab-corpus.sh          prints the directory of a corpus:
#                                  $PERFPILOT_NAB_DIR, else ../shared/nab,
#                                  else /work/shared/nab, else a verified
#                                  download cached in
#                                  ${CARGO_TARGET_DIR:-target}/nab
#   scripts/nab-corpus.sh --fetch DIR
#                                  downloads and verifies into DIR (kept
#                                  there if it is already verified)
#
# The corpus is NAB's repository (MIT licensed: its LICENSE.txt comes
# with the files) at the commit pinned below. GitHub's tarballs are not
# byte-stable, so the files are checked, not the tarball: every file the
# tests read has its sha256 in scripts/nab-corpus.sha256, and a download
# that differs in any of them is refused. PERFPILOT_NAB_URL replaces the
# download's address (curl's, so file:// works).
set -euo pipefail

NAB_COMMIT=ea702d75cc2258d9d7dd35ca8e5e2539d71f3140
NAB_URL="${PERFPILOT_NAB_URL:-https://github.com/numenta/NAB/archive/$NAB_COMMIT.tar.gz}"

repo="$(cd "$(dirname "$0")/.." && pwd)"
manifest="$repo/scripts/nab-corpus.sha256"

die() {
  echo "nab-corpus: $*" >&2
  exit 1
}

has_corpus() {
  [ -f "$1/labels/combined_windows.json" ]
}

# A stamp naming the manifest a directory was verified against, so a
# changed manifest verifies it again.
stamp_of_manifest() {
  sha256sum <"$manifest" | cut -d' ' -f1
}

fetch() {
  local dest="$1"
  local stamp
  stamp="$(stamp_of_manifest)"
  if [ -f "$dest/.verified" ] && [ "$(cat "$dest/.verified")" = "$stamp" ]; then
    return 0
  fi
  command -v curl >/dev/null || die "curl is needed to download the NAB corpus (apt-get install curl)"
  mkdir -p "$(dirname "$dest")"
  local work
  work="$(mktemp -d "$dest.partial.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "nab-corpus: downloading NAB at commit $NAB_COMMIT from $NAB_URL" >&2
  if ! curl -fsSL --retry 3 --connect-timeout 20 -o "$work/nab.tar.gz" "$NAB_URL"; then
    die "cannot download the NAB corpus from $NAB_URL; set PERFPILOT_NAB_DIR to a copy of NAB (numenta/NAB at commit $NAB_COMMIT), or place one at ../shared/nab next to the repository"
  fi
  # Only the files of the manifest, whatever the top directory is called.
  local patterns=()
  while read -r _ path; do
    patterns+=("*/$path")
  done <"$manifest"
  mkdir "$work/corpus"
  if ! tar -xzf "$work/nab.tar.gz" -C "$work/corpus" --strip-components=1 --wildcards "${patterns[@]}" 2>"$work/tar.err"; then
    # Missing files are reported by the check below; anything else is not.
    if grep -v -e "Not found in archive" -e "Exiting with failure status" "$work/tar.err" >&2; then
      die "cannot unpack $NAB_URL"
    fi
  fi
  # GitHub's files are read-only in the tarball; the cache must be removable.
  chmod -R u+w "$work/corpus"
  local failed
  if ! failed="$(cd "$work/corpus" && sha256sum --quiet -c "$manifest" 2>/dev/null)"; then
    echo "$failed" | sed 's/^/nab-corpus:   /' >&2
    die "the download from $NAB_URL does not match scripts/nab-corpus.sha256 ($(echo "$failed" | grep -c .) file(s) above); nothing was kept"
  fi
  echo "$stamp" >"$work/corpus/.verified"
  rm -rf "$dest"
  mv "$work/corpus" "$dest"
  rm -rf "$work"
  trap - EXIT
  echo "nab-corpus: verified $(wc -l <"$manifest") files into $dest" >&2
}

case "${1:-}" in
  --fetch)
    [ $# -eq 2 ] || die "usage: $0 --fetch DIR"
    fetch "$2"
    echo "$2"
    ;;
  "")
    if [ -n "${PERFPILOT_NAB_DIR:-}" ]; then
      has_corpus "$PERFPILOT_NAB_DIR" || die "PERFPILOT_NAB_DIR=$PERFPILOT_NAB_DIR holds no NAB corpus (no labels/combined_windows.json)"
      (cd "$PERFPILOT_NAB_DIR" && pwd)
    elif has_corpus "$repo/../shared/nab"; then
      (cd "$repo/../shared/nab" && pwd)
    elif has_corpus /work/shared/nab; then
      # The shared copy of the machines the suite runs on (the tests look
      # there too), wherever the clone is.
      echo /work/shared/nab
    else
      cache="${CARGO_TARGET_DIR:-$repo/target}/nab/NAB-$NAB_COMMIT"
      fetch "$cache"
      echo "$cache"
    fi
    ;;
  *)
    die "usage: $0 [--fetch DIR]"
    ;;
esac
