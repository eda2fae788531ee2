#!/usr/bin/env bash
# GPU performance, side by side with the PyTorch the GPU host has, in the order of
# importance (issue 16; BENCHMARKS.md records the table). Each row prints as soon as it
# is measured, so a run cut off by BUDGET still yields the first rows:
#   1. training, OPT-125m, batch 128x64 (the paper's), exact f32: xp then torch with
#      TF32 off; tokens/s and MFU against FP32_PEAK. xp starts with an empty kernel
#      cache, so its "warm-up step 0" is a fresh process's first step without a cache.
#   2. the same with TF32 tensor cores (xp `--precision tf32`, torch allow_tf32), MFU
#      against TF32_PEAK.
#   3. beam search at the synthesize kind's batch size (8 prompts, 5 beams, 64 new
#      tokens): xp then transformers.
#   4. a second process on the cache that row 1 filled: its "warm-up step 0" is the
#      first step with a cache; then STEADY_STEPS steps with the GPU's memory sampled
#      every 0.5 s (it must stay flat).
#   5. the batch 8x64 rows (training, f32 and tf32) and beam search at 4 prompts, the
#      shapes of the CPU tables.
# torch runs with its default attention (sdpa) and `torch.set_float32_matmul_precision`
# set to match each xp mode.
#
# Runs on the GPU host from the repository root, with .gpu/finetune_step(.xz) and
# .gpu/generate_beam(.xz) built here by
#   CARGO_TARGET_DIR=/work/targets/cuda cargo build --release --features cuda \
#     --bench finetune_step --bench generate_beam
# and packed by scripts/gpu/pack.sh. Peaks default to an H100/H200 SXM's dense rates
# (FP32 67 TFLOP/s, TF32 494.7 TFLOP/s); set FP32_PEAK and TF32_PEAK for another GPU.
set -uo pipefail
BUDGET=${BUDGET:-540}
FP32_PEAK=${FP32_PEAK:-67}
TF32_PEAK=${TF32_PEAK:-494.7}
STEADY_STEPS=${STEADY_STEPS:-300}
OUT=${OUT:-gpu-out}
export XP_USE_CURRENT_PYTHON=${XP_USE_CURRENT_PYTHON:-1}
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
source "$(dirname "$0")/unpack.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | tail -1
# xp's kernel caches (autotune results, compiled kernels): empty at the start.
export XP_GPU_CACHE_DIR
XP_GPU_CACHE_DIR=$(mktemp -d)/cubecl
train=(--backend cuda --batch 128 --seq 64 --report-every 5)
torch_train=(python3 scripts/bench_torch_train.py --device cuda --batch 128 --seq 64 --attention default)

log "1. training 128x64, exact f32 (xp: fresh process, empty kernel cache)"
within 300 .gpu/finetune_step "${train[@]}" --iters 20 --peak-tflops "$FP32_PEAK"
within 60 "${torch_train[@]}" --iters 20 --peak-tflops "$FP32_PEAK"

log "2. training 128x64, TF32"
within 200 .gpu/finetune_step "${train[@]}" --iters 20 --precision tf32 --peak-tflops "$TF32_PEAK"
within 60 "${torch_train[@]}" --iters 20 --tf32 --peak-tflops "$TF32_PEAK"

log "3. beam search, synthesize's batch: 8 prompts x 64, 5 beams, 64 new tokens"
within 200 .gpu/generate_beam --backend cuda --shape opt-125m --batch 8 --iters 3
within 60 python3 scripts/bench_generate_torch.py --device cuda --shape opt-125m --batch 8 \
    --iters 3 --attention default

log "4. a second process with the kernel cache: first step, then $STEADY_STEPS steps' memory"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$OUT/memory.txt" &
sampler=$!
within 200 .gpu/finetune_step "${train[@]}" --iters "$STEADY_STEPS" --report-every 50 \
    --peak-tflops "$FP32_PEAK"
kill "$sampler" 2>/dev/null
# Memory in MiB over the run, by thirds: flat means the last third's maximum is the
# first third's (after the warm-up steps allocated what the steps reuse).
awk '{ v[NR] = $1 } END {
    if (NR < 6) { print "device memory: too few samples (" NR ")"; exit }
    t = int(NR / 3)
    for (i = 1; i <= NR; i++) { part = (i <= t) ? 1 : (i <= 2 * t ? 2 : 3)
        if (v[i] > max[part]) max[part] = v[i] }
    printf "device memory (MiB, %d samples): max of first third %d, middle %d, last %d\n",
        NR, max[1], max[2], max[3] }' "$OUT/memory.txt"

log "5. the 8x64 rows: training f32 and tf32, beam search at 4 prompts"
within 60 .gpu/finetune_step --backend cuda --iters 20 --peak-tflops "$FP32_PEAK"
within 40 python3 scripts/bench_torch_train.py --device cuda --iters 20 --attention default \
    --peak-tflops "$FP32_PEAK"
within 60 .gpu/finetune_step --backend cuda --iters 20 --precision tf32 --peak-tflops "$TF32_PEAK"
within 40 python3 scripts/bench_torch_train.py --device cuda --iters 20 --attention default \
    --tf32 --peak-tflops "$TF32_PEAK"
within 60 .gpu/generate_beam --backend cuda --shape opt-125m --iters 3
within 40 python3 scripts/bench_generate_torch.py --device cuda --shape opt-125m --iters 3 \
    --attention default
log done
