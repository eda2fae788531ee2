#!/usr/bin/env python3
"""PyTorch CPU reference for benches/opt_throughput.rs: OPT-125m shape, random weights,
batch 8 x 64, forward+backward and eval tokens/s.

Usage: python3 scripts/bench_torch.py [--threads 2] [--iters 3]
(uses the reference venv of bench_reference.py, created on first use)
"""

import argparse
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = OPTConfig()  # facebook/opt-125m's shape
    config._attn_implementation = "eager"
    model = OPTForCausalLM(config)
    batch, seq = 8, 64
    ids = torch.randint(3, config.vocab_size, (batch, seq))
    tokens = batch * seq

    model.train()  # dropout active, as on burn's autodiff backend

    def train_step():
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()

    train_step()
    start = time.perf_counter()
    for _ in range(args.iters):
        train_step()
    train_s = (time.perf_counter() - start) / args.iters

    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
        start = time.perf_counter()
        for _ in range(args.iters):
            model(input_ids=ids)
        eval_s = (time.perf_counter() - start) / args.iters

    print(
        f"torch {torch.__version__} opt-125m batch {batch}x{seq} threads {args.threads} "
        f"iters {args.iters}: fwd+bwd {tokens / train_s:.1f} tokens/s ({train_s:.3f} s/step), "
        f"eval {tokens / eval_s:.1f} tokens/s ({eval_s:.3f} s/step); {machine(args.threads)}"
    )


if __name__ == "__main__":
    main()
