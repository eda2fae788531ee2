#!/usr/bin/env bash
# Runs on the GPU host from the repository root: the training-step and beam-search
# benchmarks on CUDA, each followed by its PyTorch counterpart on the same GPU. The
# xp benchmarks print every step as it ends, so a run cut short by its time cap still
# shows compile/autotune time (warm-up) apart from steady-state time.
# Binaries: .gpu/finetune_step(.xz) and .gpu/generate_beam(.xz), built with
#   CARGO_TARGET_DIR=/work/targets/cuda cargo build --release --features cuda \
#     --bench finetune_step --bench generate_beam
# Caps (seconds) come from TRAIN_CAP, BEAM_CAP and TORCH_CAP.
set -uo pipefail
TRAIN_CAP=${TRAIN_CAP:-170} BEAM_CAP=${BEAM_CAP:-150} TORCH_CAP=${TORCH_CAP:-70}
source "$(dirname "$0")/unpack.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
start=$(date +%s)
log() { echo "=== $* (t=$(( $(date +%s) - start )) s)"; }
log "training step, OPT-125m, batch 8x64"
timeout "$TRAIN_CAP" .gpu/finetune_step --backend cuda --iters 10 2>&1 | tail -15
timeout "$TORCH_CAP" python3 scripts/bench_torch_train.py --device cuda --iters 20 2>&1 | tail -3
log "beam search, OPT-125m, 4 prompts x 64, 5 beams, 64 new tokens"
timeout "$BEAM_CAP" .gpu/generate_beam --backend cuda --shape opt-125m --iters 2 2>&1 | tail -6
timeout "$TORCH_CAP" python3 scripts/bench_generate_torch.py --device cuda --iters 3 2>&1 | tail -4
log done
