#!/usr/bin/env python3
"""transformers reference for benches/generate_beam.rs: the paper's beam search
(num_beams=5, max_new_tokens=64, min_new_tokens=64, repetition_penalty=3.0) on random
weights, 4 prompts x 64 tokens (--batch prompts otherwise), on the OPT-125m shape and
on a tiny shape; prints new tokens/s (prompts x 64 new tokens / wall time of generate()).
--attention eager is the attention of xp's CPU comparisons; default is transformers'.

Usage: python3 scripts/bench_generate_torch.py [--threads 2] [--iters 2] [--device cuda]
       [--batch 8] [--shape opt-125m] [--attention eager]
(uses the reference venv of bench_reference.py, created on first use; on a GPU host without
network, XP_USE_CURRENT_PYTHON=1 uses the installed torch and transformers instead)
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reference import ensure_venv_and_reexec, machine  # noqa: E402

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
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--shape", default="", help="only this shape: tiny or opt-125m")
    ap.add_argument("--attention", default="eager", help="eager, or default (transformers')")
    args = ap.parse_args()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    torch.set_num_threads(args.threads)
    for name, overrides in SHAPES.items():
        if args.shape and args.shape != name:
            continue
        torch.manual_seed(0)
        config = OPTConfig(**overrides)
        if args.attention != "default":
            config._attn_implementation = args.attention
        model = OPTForCausalLM(config).eval().to(args.device)
        ids = torch.randint(3, config.vocab_size, (args.batch, 64))
        ids[:, 0] = 2
        ids = ids.to(args.device)

        def run():
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=5,
                               max_new_tokens=64, min_new_tokens=64, repetition_penalty=3.0,
                               do_sample=False, pad_token_id=1, eos_token_id=2)

        run()
        sync()
        start = time.perf_counter()
        for _ in range(args.iters):
            run()
        sync()
        secs = (time.perf_counter() - start) / args.iters
        where = machine(args.threads) if args.device == "cpu" else torch.cuda.get_device_name()
        print(f"{name}: transformers generate, {args.batch} prompts "
              f"({config._attn_implementation} attention): {args.batch * 64 / secs:.1f} new "
              f"tokens/s ({secs:.3f} s per call, {where}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
