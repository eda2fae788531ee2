#!/usr/bin/env python3
"""PyTorch reference for benches/finetune_step.rs: one full training step
(forward, backward, torch.optim.AdamW step) on the OPT-125m shape, random weights,
batch 8 x 64 unless --batch/--seq say otherwise; prints tokens/s, the model FLOP
rate (the same count as the xp benchmark's; MFU given --peak-tflops) and peak memory.

On CUDA, --tf32 allows TF32 tensor cores for f32 products (xp's `precision = "tf32"`);
without it they are off, as xp's default exact f32. --attention eager is the attention
xp's CPU comparisons use; the default is transformers' own default (sdpa).

Usage: python3 scripts/bench_torch_train.py [--threads 2] [--iters 3] [--device cuda]
       [--batch 128 --seq 64] [--tf32] [--peak-tflops 67] [--attention eager]
(uses the reference venv of bench_reference.py, created on first use; on a GPU host without
network, XP_USE_CURRENT_PYTHON=1 uses the installed torch instead)
"""

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reference import ensure_venv_and_reexec, machine  # noqa: E402


def main() -> None:
    ensure_venv_and_reexec(__file__)
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 tensor cores (CUDA)")
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    ap.add_argument("--attention", default="eager", help="eager, or default (transformers')")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.manual_seed(0)
    config = OPTConfig()  # facebook/opt-125m's shape
    if args.attention != "default":
        config._attn_implementation = args.attention
    model = OPTForCausalLM(config).train().to(args.device)
    batch, seq = args.batch, args.seq
    ids = torch.randint(3, config.vocab_size, (batch, seq)).to(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()

    step()
    sync()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.iters
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    where = machine(args.threads) if args.device == "cpu" else torch.cuda.get_device_name()
    memory = f"peak RSS {rss:.0f} MiB"
    if args.device == "cuda":
        memory += f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    tflops = step_flops(config, seq, batch * seq) / seconds / 1e12
    mfu = f", MFU {100 * tflops / args.peak_tflops:.1f} % of {args.peak_tflops} TFLOP/s" \
        if args.peak_tflops > 0 else ""
    mode = "tf32" if args.tf32 else "f32"
    print(f"torch {torch.__version__} {where} {mode} batch {batch}x{seq} "
          f"({config._attn_implementation} attention): optimizer step {seconds:.4f} s, "
          f"{batch * seq / seconds:.0f} tokens/s, {tflops:.2f} TFLOP/s{mfu}, {memory}")


def step_flops(config, seq: int, tokens: int) -> float:
    """benches/finetune_step.rs's count: 6 per product weight per token (the tied
    embedding once), plus attention's 12 * seq * hidden per token and layer."""
    h, f, n_layers, v = (config.hidden_size, config.ffn_dim, config.num_hidden_layers,
                         config.vocab_size)
    weights = n_layers * (4 * h * h + 2 * h * f) + v * h
    return (6 * weights + n_layers * 12 * seq * h) * tokens


if __name__ == "__main__":
    main()
