#!/usr/bin/env bash
# `xp run --jobs N` against one job: wall time of a whole experiment in a fresh
# store, alternating the job counts ROUNDS times (default 2). Prints one line per
# run and the machine it ran on. Usage:
#   scripts/bench/jobs.sh [EXPERIMENT] [JOBS...]     (default: mini-accumulate, 1 2)
# Extra `xp run` arguments go in XP_BENCH_ARGS (e.g. "--set loop.replace.count=3").
set -euo pipefail
cd "$(dirname "$0")/../.."
experiment=${1:-experiments/mini-accumulate.toml}
[ $# -gt 0 ] && shift
jobs=("$@")
[ ${#jobs[@]} -eq 0 ] && jobs=(1 2)
rounds=${ROUNDS:-2}
cargo build --release --offline --quiet
xp=${CARGO_TARGET_DIR:-target}/release/xp
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) threads"
echo "experiment: $experiment ${XP_BENCH_ARGS:-}"
for round in $(seq "$rounds"); do
    for n in "${jobs[@]}"; do
        store=$(mktemp -d)
        start=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$xp" run "$experiment" --cache-dir "$store" --jobs "$n" ${XP_BENCH_ARGS:-} \
            > "$store.log" 2>&1 || { echo "failed: see $store.log"; exit 1; }
        end=$(date +%s.%N)
        printf 'round %s  --jobs %s  %.1f s\n' "$round" "$n" "$(echo "$end - $start" | bc)"
        rm -rf "$store" "$store.log"
    done
done
