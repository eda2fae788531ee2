#!/usr/bin/env bash
# Runs on the GPU host from the repository root, with the binaries of pack.sh in
# .gpu/ and results written to $OUT (default ./gpu-out): the CUDA parity tests, the
# training and beam-search benchmarks side by side with PyTorch on the same GPU, and
# experiments/mini.toml end to end on the cuda backend. Everything together stays
# within BUDGET seconds (default 480): each command gets at most what is left.
# On a fresh machine each binary's first kernels take minutes to compile and autotune
# (198 s before the first OPT-125m training step on an H200; BENCHMARKS.md), and the
# per-command caps below are shorter than that: give BUDGET room, or run once to fill
# cubecl's autotune cache (target/autotune/ under the repository) before timing.
set -uo pipefail
OUT=${OUT:-gpu-out}
BUDGET=${BUDGET:-480}
mkdir -p "$OUT"
start=$(date +%s)
log() { echo "=== $* (t=$(( $(date +%s) - start )) s)"; }
# within SECONDS CMD...: runs CMD for at most SECONDS, or what is left of the budget.
within() {
    local cap=$1 left=$(( BUDGET - ($(date +%s) - start) )); shift
    (( left < cap )) && cap=$left
    if (( cap <= 5 )); then echo "skipped (budget spent): $*"; return 0; fi
    timeout "$cap" "$@"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
# The test binaries find their fixtures through the path they were built at.
built_at=${XP_BUILT_AT:-/work/main}
if [ ! -e "$built_at" ]; then mkdir -p "$(dirname "$built_at")" && ln -s "$PWD" "$built_at"; fi
source "$(dirname "$0")/unpack.sh"

log logits parity on cuda
within 90 .gpu/ml model_parity::logits_match_transformers_on_every_fixture_on_cuda --nocapture --test-threads 1 2>&1 | tail -12
log training step, OPT-125m batch 8x64
within 60 .gpu/finetune_step --backend cuda --iters 20
within 60 python3 scripts/bench_torch_train.py --device cuda --iters 20
log beam search, 4 prompts x 64, 5 beams, 64 new tokens
within 90 .gpu/generate_beam --backend cuda --iters 3
within 60 python3 scripts/bench_generate_torch.py --device cuda --iters 3
log generation and AdamW parity on cuda
within 60 .gpu/ml generate_parity::every_case_matches_transformers_on_cuda --nocapture --test-threads 1 2>&1 | tail -8
within 60 .gpu/ml finetune_parity::three_adamw_steps_match_pytorch_on_cuda --nocapture --test-threads 1 2>&1 | tail -8
log mini.toml on cuda
# The mini of issue 17 (64-token blocks, 5 beams, 64 new tokens) generates about 2.5x
# what the earlier mini did, which had 150 s here.
t0=$(date +%s)
within 300 .gpu/xp run experiments/mini.toml --backend cuda --cache-dir /tmp/xp-cache 2>&1 \
    | grep -E '^(done|error|warning|[0-9]+ executed)|failed' | tee "$OUT/mini-run.txt"
echo "mini on cuda: $(( $(date +%s) - t0 )) s"
.gpu/xp show experiments/mini.toml --cache-dir /tmp/xp-cache > "$OUT/mini-show.txt" 2>&1
report=$(find /tmp/xp-cache/entries -name report.md 2>/dev/null | head -1)
[ -n "$report" ] && cp "$report" "$OUT/mini-report-cuda.md"
log done
