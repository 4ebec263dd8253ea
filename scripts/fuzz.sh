#!/usr/bin/env bash
# Fuzzes every parser of outside input (the targets in fuzz/src/targets/)
# with libFuzzer, each for a while, and prints a summary.
#
#   scripts/fuzz.sh --ci                       (CI: cheap build, 10 s a target)
#   scripts/fuzz.sh [--seconds N] [--malloc-mb N] [--rss-mb N] [TARGET...]
#   scripts/fuzz.sh [--ci] --replay INPUT... TARGET   (runs inputs, no fuzzing)
#
# All targets are one binary (fuzz/src/main.rs; PERFPILOT_FUZZ_TARGET picks
# the target), built with plain cargo and the flags libFuzzer needs: no
# cargo-fuzz to install, one link instead of fifteen. Before fuzzing, every
# input in fuzz/regressions/TARGET/ is replayed, and the seeds are replayed
# in strict mode (a seed the target refuses fails: seeds must keep reaching
# the code past the checks).
#
# --ci builds without a sanitizer (safe Rust: panics, failed invariants,
# the allocation and RSS limits are what a run catches) and fuzzes each
# target for 10 s (--seconds overrides). Without --ci the build has
# AddressSanitizer (the stable toolchain with RUSTC_BOOTSTRAP=1 takes its
# -Z flag) and each target runs for --seconds (default 20); a nightly run
# gives e.g. --seconds 3600. Both keep debug assertions and overflow checks.
# The builds go to ~/.cache/perfpilot-tools/fuzz-target/{ci,asan}
# (PERFPILOT_FUZZ_TARGET_DIR overrides the parent), outside the clone.
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

ci=0
seconds=
malloc_mb=512
rss_mb=2560
targets=()
replay=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) ci=1; shift ;;
    --seconds) seconds="${2-}"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --malloc-mb) malloc_mb="${2-}"; shift 2 ;;
    --rss-mb) rss_mb="${2-}"; shift 2 ;;
    --replay) replay+=("${2-}"); shift 2 ;;
    -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ -z "$seconds" ]; then
  if [ "$ci" -eq 1 ]; then seconds=10; else seconds=20; fi
fi
for n in "$seconds" "$malloc_mb" "$rss_mb"; do
  case "$n" in
    ''|*[!0-9]*) echo "fuzz: --seconds, --malloc-mb and --rss-mb take whole numbers, not '$n'" >&2; exit 2 ;;
  esac
done

if ! command -v cargo >/dev/null; then
  echo "fuzz: cargo is not on PATH; install Rust (rustup) first" >&2
  exit 2
fi
if ! command -v c++ >/dev/null && ! command -v clang++ >/dev/null; then
  echo "fuzz: no C++ compiler (c++ or clang++) to build libFuzzer; install clang or g++" >&2
  exit 2
fi

all=()
for f in fuzz/src/targets/*.rs; do
  all+=("$(basename "$f" .rs)")
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${all[@]}")
fi
for t in "${targets[@]}"; do
  if [ ! -f "fuzz/src/targets/$t.rs" ]; then
    echo "fuzz: no target '$t'; the targets are: ${all[*]}" >&2
    exit 2
  fi
done

# The coverage instrumentation libFuzzer needs (what cargo-fuzz passes), on
# the fuzz crate and its dependencies only: --target keeps RUSTFLAGS off
# build scripts and proc macros.
host="$(rustc -vV | sed -n 's/^host: //p')"
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  --cfg fuzzing
  -Cdebug-assertions
  -Coverflow-checks
)
target_root="${PERFPILOT_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/perfpilot-tools/fuzz-target}"
if [ "$ci" -eq 1 ]; then
  mode=ci
else
  mode=asan
  export RUSTC_BOOTSTRAP=1
  flags+=(-Zsanitizer=address)
fi
target_dir="$target_root/$mode"
bin="$target_dir/$host/release/perfpilot-fuzz"

echo "fuzz: building the fuzz binary ($mode) into $target_dir" >&2
build_start=$SECONDS
RUSTFLAGS="${flags[*]}" cargo build --release --locked --manifest-path fuzz/Cargo.toml \
  --target "$host" --target-dir "$target_dir" --bin perfpilot-fuzz
echo "fuzz: built in $((SECONDS - build_start)) s" >&2

limits=(-timeout=10 -rss_limit_mb="$rss_mb")
if [ "$mode" = asan ]; then
  limits+=(-malloc_limit_mb="$malloc_mb")
fi
export PERFPILOT_FUZZ_MALLOC_MB="$malloc_mb"
export RUST_BACKTRACE=1

# Runs the binary on target $1 with the rest as arguments.
run() {
  local t="$1"
  shift
  PERFPILOT_FUZZ_TARGET="$t" "$bin" "$@"
}

if [ ${#replay[@]} -gt 0 ]; then
  # Each input once, through each target given (no fuzzing).
  for t in "${targets[@]}"; do
    run "$t" "${limits[@]}" "${replay[@]}"
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
  status=0
  # The inputs of past findings once each, then the seeds in strict mode.
  : >"$log"
  for d in "fuzz/regressions/$t" "fuzz/seeds/$t"; do
    olds=()
    for f in "$d"/*; do
      [ -f "$f" ] && olds+=("$f")
    done
    strict=0
    [ "$d" = "fuzz/seeds/$t" ] && strict=1
    if [ "$status" -eq 0 ] && [ ${#olds[@]} -gt 0 ]; then
      PERFPILOT_FUZZ_STRICT=$strict run "$t" "${limits[@]}" -artifact_prefix="fuzz/artifacts/$t/" \
        "${olds[@]}" >>"$log" 2>&1 || status=$?
    fi
  done
  if [ "$status" -eq 0 ]; then
    echo "fuzz: $t for ${seconds}s" >&2
    run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -max_total_time="$seconds" -max_len=65536 \
      "${limits[@]}" -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >>"$log" 2>&1 ||
      status=$?
  fi
  runs="$(sed -n 's/^stat::number_of_executed_[a-z]*: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)"
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    input="$(sed -n -e 's/.*Test unit written to \(.*\)$/\1/p' -e 's/^Running: \(.*\)$/\1/p' "$log" | tail -1)"
    why="$(grep -m1 -oE "panicked at [^ ]+|ERROR: libFuzzer: [a-z-]+|ERROR: AddressSanitizer: [a-z-]+|ERROR: perfpilot-fuzz: [a-z-]+|SUMMARY: [^(]*" "$log" || true)"
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
  echo "fuzz: ${#failed[@]} target(s) FAILED: ${failed[*]}; replay an input with" \
    "scripts/fuzz.sh$([ "$ci" -eq 1 ] && echo ' --ci') --replay INPUT TARGET" >&2
  exit 1
fi
