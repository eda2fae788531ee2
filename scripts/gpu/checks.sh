#!/usr/bin/env bash
# Runs on the GPU host from the repository root, with the binaries of pack.sh in
# .gpu/ and results written to $OUT (default ./gpu-out): the CUDA parity tests, the
# training and beam-search benchmarks side by side with PyTorch on the same GPU, and
# experiments/mini.toml end to end on the cuda backend.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
log() { echo "=== $* ($(date +%T))"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
# The test binaries find their fixtures through the path they were built at.
built_at=${XP_BUILT_AT:-/work/main}
if [ ! -e "$built_at" ]; then mkdir -p "$(dirname "$built_at")" && ln -s "$PWD" "$built_at"; fi
# Python's lzma, in case the host has no xz.
python3 - <<'PY'
import glob, lzma, os, shutil
for packed in glob.glob(".gpu/*.xz"):
    with lzma.open(packed) as src, open(packed[:-3], "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(packed[:-3], 0o755)
    os.remove(packed)
PY
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64
export XP_USE_CURRENT_PYTHON=1 PYTHONUNBUFFERED=1

log parity tests on cuda
for t in model_parity generate_parity finetune_parity; do
    timeout 240 .gpu/$t cuda --nocapture --test-threads 1 2>&1 | tail -25
done
log training step, OPT-125m batch 8x64
timeout 120 .gpu/finetune_step --backend cuda --iters 20
timeout 120 python3 scripts/bench_torch_train.py --device cuda --iters 20
log beam search, 4 prompts x 64, 5 beams
timeout 150 .gpu/generate_beam --backend cuda --iters 3
timeout 120 python3 scripts/bench_generate_torch.py --device cuda --iters 3
log mini.toml on cuda
start=$(date +%s)
timeout 300 .gpu/xp run experiments/mini.toml --backend cuda --cache-dir /tmp/xp-cache 2>&1 | grep -E '^(done|error|[0-9]+ executed)|failed'
echo "mini on cuda: $(( $(date +%s) - start )) s"
.gpu/xp show experiments/mini.toml --cache-dir /tmp/xp-cache > "$OUT/mini-show.txt" 2>&1
report=$(find /tmp/xp-cache/entries -name report.md | head -1)
[ -n "$report" ] && cp "$report" "$OUT/mini-report-cuda.md"
log done
