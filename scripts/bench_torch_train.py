#!/usr/bin/env python3
"""PyTorch CPU reference for benches/finetune_step.rs: one full training step
(forward, backward, torch.optim.AdamW step) on the OPT-125m shape, random weights,
batch 8 x 64; prints tokens/s and peak RSS.

Usage: python3 scripts/bench_torch_train.py [--threads 2] [--iters 3]
(uses the pinned venv of make_fixtures.py, created on first use)
"""

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import ensure_venv_and_reexec  # noqa: E402


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
    model = OPTForCausalLM(config).train()
    batch, seq = 8, 64
    ids = torch.randint(3, config.vocab_size, (batch, seq))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    seconds = (time.perf_counter() - start) / args.iters
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {torch.__version__} CPU, {args.threads} threads: optimizer step "
          f"{seconds:.2f} s, {batch * seq / seconds:.0f} tokens/s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
