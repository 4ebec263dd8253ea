#!/usr/bin/env bash
# The scenario suite through the real command-line path, with default
# settings: for each seed, `perfpilot baseline scenarios generate`, then
# `perfpilot baseline replay` of every scenario (its heap.csv as a memory
# series where it has one) writing incidents.jsonl, then
# `perfpilot baseline scenarios score`. Prints each seed's table and the
# totals over all seeds.
#
#   scripts/scenarios-bench.sh            # the test seeds, 1001..1005
#   scripts/scenarios-bench.sh 1 20       # the tuning seeds
#
# PERFPILOT names the binary (default: a release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."
from=${1:-1001}
to=${2:-1005}
if [[ -z "${PERFPILOT:-}" ]]; then
    cargo build --release -q -p perfpilot
    PERFPILOT="${CARGO_TARGET_DIR:-target}/release/perfpilot"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for seed in $(seq "$from" "$to"); do
    dir="$work/$seed"
    "$PERFPILOT" baseline scenarios generate --seed "$seed" --out "$dir" 2>/dev/null
    for sub in "$dir"/*/; do
        series=()
        if [[ -f "$sub/heap.csv" ]]; then
            series=(--series "heap_bytes:memory=$sub/heap.csv")
        fi
        "$PERFPILOT" baseline replay "$sub/requests.log" "${series[@]}" \
            --alerts-out "$sub/incidents.jsonl" 2>/dev/null
    done
    echo "== seed $seed"
    "$PERFPILOT" baseline scenarios score "$dir" | tee "$work/score-$seed.txt"
    # Keep the disk free: a seed's logs are a few hundred MB.
    find "$dir" -name requests.log -delete
done
echo "== seeds $from..$to"
"$PERFPILOT" baseline scenarios score $(seq -f "$work/%g" "$from" "$to")
