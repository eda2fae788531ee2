#!/usr/bin/env python3
"""PyTorch CPU reference for benches/finetune_step.rs: one full training step
(forward, backward, torch.optim.AdamW step) on the OPT-125m shape, random weights,
batch 8 x 64; prints tokens/s and peak RSS.

Usage: python3 scripts/bench_torch_train.py [--threads 2] [--iters 3] [--device cuda]
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = OPTConfig()  # facebook/opt-125m's shape
    config._attn_implementation = "eager"
    model = OPTForCausalLM(config).train().to(args.device)
    batch, seq = 8, 64
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
    print(f"torch {torch.__version__} {where}: optimizer step "
          f"{seconds:.4f} s, {batch * seq / seconds:.0f} tokens/s, {memory}")


if __name__ == "__main__":
    main()
