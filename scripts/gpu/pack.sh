#!/usr/bin/env bash
# Packs the CUDA-enabled release binaries into .gpu/ for a GPU host that has the CUDA
# driver and NVRTC but no Rust toolchain (and no network): xp, the ml test binary
# (the parity tests' CUDA variants), and the finetune/generate benchmarks. Stripped and
# xz-compressed to travel light (about 9 MB each). Build first, e.g.:
#   CARGO_TARGET_DIR=/work/targets/cuda cargo build --release --features cuda --bin xp \
#     --test ml --bench finetune_step --bench generate_beam
# then: scripts/gpu/pack.sh /work/targets/cuda/release
set -euo pipefail
release=${1:?usage: pack.sh TARGET_DIR/release}
out=.gpu
rm -rf "$out" && mkdir -p "$out"
newest() { ls -t "$release"/deps/"$1"-* | grep -v '\.d$' | head -1; }
cp "$release/xp" "$out/xp"
for name in ml finetune_step generate_beam; do
    cp "$(newest "$name")" "$out/$name"
done
strip "$out"/*
xz -9 -T0 "$out"/*
ls -la "$out"
