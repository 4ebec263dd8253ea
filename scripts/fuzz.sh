#!/usr/bin/env bash
# Fuzzes every parser of outside input (the targets in fuzz/fuzz_targets)
# with cargo-fuzz and libFuzzer, each for a while, and prints a summary.
#
#   scripts/fuzz.sh [--seconds N] [--malloc-mb N] [--rss-mb N] [TARGET...]
#   scripts/fuzz.sh --replay INPUT TARGET       (runs one input, no fuzzing)
#
# Default: every target for 20 s (CI); a nightly run gives e.g.
# --seconds 3600. The stable toolchain is enough: RUSTC_BOOTSTRAP=1 lets it
# take cargo-fuzz's -Z flags (AddressSanitizer, coverage). cargo-fuzz is
# installed from crates.io when missing, into ~/.cache/perfpilot-tools
# (PERFPILOT_TOOLS_DIR overrides it). The build goes to
# ~/.cache/perfpilot-tools/fuzz-target (PERFPILOT_FUZZ_TARGET_DIR), outside
# the clone, so a machine's next run (CI's fresh clone too) rebuilds only
# the workspace's crates: a first build takes 13 minutes of CPU.
#
# Inputs go up to 64 KiB, so a small input that amplifies (a gzip bomb,
# frames multiplied by references) is within reach. Inputs that grow the
# coverage are kept in fuzz/corpus/TARGET (not in git) and start the next
# run; fuzz/seeds/TARGET holds the committed seeds. A crash, a failed
# invariant, an allocation over --malloc-mb (512) or an RSS over --rss-mb
# (2560), or one input running over 10 s is a failure: its input is
# written to fuzz/artifacts/TARGET/ and the log to fuzz/artifacts/logs/;
# the script goes on with the other targets and exits 1 at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
malloc_mb=512
rss_mb=2560
targets=()
replay=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --malloc-mb) malloc_mb="$2"; shift 2 ;;
    --rss-mb) rss_mb="$2"; shift 2 ;;
    --replay) replay+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
target_dir="${PERFPILOT_FUZZ_TARGET_DIR:-$tools/fuzz-target}"
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
  cargo fuzz build --fuzz-dir fuzz --target-dir "$target_dir"
else
  for t in "${targets[@]}"; do cargo fuzz build --fuzz-dir fuzz --target-dir "$target_dir" "$t"; done
fi
limits=(-timeout=10 -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb")

if [ ${#replay[@]} -gt 0 ]; then
  # Each input once, through each target given (no fuzzing).
  for t in "${targets[@]}"; do
    cargo fuzz run --fuzz-dir fuzz --target-dir "$target_dir" "$t" "${replay[@]}" -- "${limits[@]}"
  done
  exit 0
fi

logs=fuzz/artifacts/logs
mkdir -p "$logs"
summary=()
failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="$logs/$t.log"
  echo "fuzz: $t for ${seconds}s" >&2
  status=0
  cargo fuzz run --fuzz-dir fuzz --target-dir "$target_dir" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -max_len=65536 "${limits[@]}" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_[a-z]*: *//p' "$log" | tail -1)"
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
