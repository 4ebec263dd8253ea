#!/usr/bin/env bash
# Fuzzes every parser of outside input (the targets in fuzz/fuzz_targets)
# with cargo-fuzz and libFuzzer, each for a while, and prints a summary.
#
#   scripts/fuzz.sh [--seconds N] [TARGET...]
#
# Default: every target for 20 s (CI); a nightly run gives e.g.
# --seconds 3600. The stable toolchain is enough: RUSTC_BOOTSTRAP=1 lets it
# take cargo-fuzz's -Z flags (AddressSanitizer, coverage). cargo-fuzz is
# installed from crates.io when missing, into ~/.cache/perfpilot-tools
# (PERFPILOT_TOOLS_DIR overrides it).
#
# Inputs that grow the coverage are kept in fuzz/corpus/TARGET (not in git)
# and start the next run; fuzz/seeds/TARGET holds the committed seeds. A
# crash, a failed invariant, an allocation over --malloc-mb or an RSS over
# --rss-mb, or one input running over 10 s is a failure: its input is
# written to fuzz/artifacts/TARGET/, the script goes on with the other
# targets and exits 1 at the end. Reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
malloc_mb=512
rss_mb=2560
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --malloc-mb) malloc_mb="$2"; shift 2 ;;
    --rss-mb) rss_mb="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$seconds" in
  ''|*[!0-9]*) echo "fuzz: --seconds takes a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
cargo_fuzz_version=0.13.2
tools="${PERFPILOT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/perfpilot-tools}"
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  echo "fuzz: installing cargo-fuzz $cargo_fuzz_version into $tools" >&2
  cargo install --locked --quiet --version "$cargo_fuzz_version" --root "$tools" cargo-fuzz
fi

all=()
for f in fuzz/fuzz_targets/*.rs; do
  all+=("$(basename "$f" .rs)")
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${all[@]}")
fi
for t in "${targets[@]}"; do
  if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
    echo "fuzz: no target '$t'; the targets are: ${all[*]}" >&2
    exit 2
  fi
done

# One build for all targets (debug assertions and overflow checks on, as
# cargo-fuzz builds by default, and AddressSanitizer, which libFuzzer's
# -malloc_limit_mb needs).
echo "fuzz: building ${#targets[@]} target(s)" >&2
if [ ${#targets[@]} -eq ${#all[@]} ]; then
  cargo fuzz build --fuzz-dir fuzz
else
  for t in "${targets[@]}"; do cargo fuzz build --fuzz-dir fuzz "$t"; done
fi

logs=fuzz/target/logs
mkdir -p "$logs"
summary=()
failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="$logs/$t.log"
  echo "fuzz: $t for ${seconds}s" >&2
  status=0
  cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_runs: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    input="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    why="$(grep -m1 -oE "panicked at [^ ]+|ERROR: libFuzzer: [a-z-]+|ERROR: AddressSanitizer: [a-z-]+|SUMMARY: [^(]*" "$log" || true)"
    result="FAILED (${why:-exit $status}): ${input:-no input written, see $log}"
    failed+=("$t")
    echo "fuzz: $t failed; the end of $log:" >&2
    tail -40 "$log" >&2
  fi
  summary+=("$(printf '%-16s %12s %8s  %s' "$t" "${runs:-?}" "${cov:-?}" "$result")")
done

echo
printf '%-16s %12s %8s  %s\n' target runs coverage result
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
