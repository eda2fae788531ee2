#!/usr/bin/env python3
"""transformers reference for tests/generate_bench.rs: the paper's beam search
(num_beams=5, max_new_tokens=64, min_new_tokens=64, repetition_penalty=3.0) on random
weights, 4 prompts x 64 tokens, on the OPT-125m shape and on a tiny shape; prints new
tokens/s (4 x 64 new tokens / wall time of generate()).

Usage: python3 scripts/bench_generate_torch.py [--threads 2] [--iters 2]
(uses the pinned venv of make_fixtures.py, created on first use)
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import ensure_venv_and_reexec  # noqa: E402

SHAPES = {
    "opt-125m": {},
    "tiny": dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, ffn_dim=256,
                 num_attention_heads=4, word_embed_proj_dim=64, max_position_embeddings=256),
}


def main() -> None:
    ensure_venv_and_reexec(__file__)
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name, overrides in SHAPES.items():
        torch.manual_seed(0)
        config = OPTConfig(**overrides)
        config._attn_implementation = "eager"
        model = OPTForCausalLM(config).eval()
        ids = torch.randint(3, config.vocab_size, (4, 64))
        ids[:, 0] = 2

        def run():
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=5,
                               max_new_tokens=64, min_new_tokens=64, repetition_penalty=3.0,
                               do_sample=False, pad_token_id=1, eos_token_id=2)

        run()
        start = time.perf_counter()
        for _ in range(args.iters):
            run()
        secs = (time.perf_counter() - start) / args.iters
        print(f"{name}: transformers generate {4 * 64 / secs:.1f} new tokens/s ({secs:.2f} s per call, "
              f"{args.threads} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
