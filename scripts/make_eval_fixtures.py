#!/usr/bin/env python3
"""Write the evaluation parity references under tests/fixtures/eval/ (committed; CI never
runs this).

Usage:  python3 scripts/make_eval_fixtures.py       (from the repository root)

It runs in the same pinned throwaway venv as scripts/make_fixtures.py
(/tmp/xp-fixtures-venv, override with XP_FIXTURES_VENV) and uses the committed OPT
fixture models of tests/fixtures/opt/. For each model it draws seeded blocks of token ids
(no padding, as the `evaluate` kind scores them) and writes <model>.json with:

  - blocks: the ids, one list per block;
  - losses: per block, transformers' `model(ids, labels=ids).loss` (float32, as HF
    computes it), and per_sample_perplexity = exp(loss);
  - corpus_perplexity: exp(sum of NLL over every predicted token / number of them),
    from the float32 logits summed in float64;
  - batch_mean_perplexity: the authors' test perplexity, exp(mean over batches of
    `batch_size` blocks, in order, of each batch's `model(batch, labels=batch).loss`).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

VENV = Path(os.environ.get("XP_FIXTURES_VENV", "/tmp/xp-fixtures-venv"))
PINS = ["torch==2.5.1", "transformers==4.46.3", "safetensors==0.4.5", "numpy==1.26.4"]
ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "opt"
OUT = ROOT / "tests" / "fixtures" / "eval"

# (model fixture, number of blocks, block size, authors' batch size, seed)
CASES = [("pre_ln", 7, 12, 3, 11), ("post_ln_proj", 5, 9, 2, 12), ("fp16_bin", 6, 8, 4, 13)]


def ensure_venv_and_reexec() -> None:
    """Re-run this script inside the pinned venv, creating the venv on first use."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", *PINS])
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def main() -> None:
    ensure_venv_and_reexec()
    import torch
    import transformers
    from transformers import OPTForCausalLM

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, n_blocks, block_size, batch_size, seed in CASES:
        model = OPTForCausalLM.from_pretrained(
            MODELS / name, torch_dtype=torch.float32, attn_implementation="eager"
        ).eval()
        torch.manual_seed(seed)
        ids = torch.randint(3, model.config.vocab_size, (n_blocks, block_size), dtype=torch.int64)
        with torch.no_grad():
            losses = [model(input_ids=ids[i : i + 1], labels=ids[i : i + 1]).loss.item()
                      for i in range(n_blocks)]
            logits = model(input_ids=ids).logits.float()
            nll = -torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            corpus = math.exp(nll.double().sum().item() / nll.numel())
            batch_losses = [model(input_ids=ids[b : b + batch_size],
                                  labels=ids[b : b + batch_size]).loss.item()
                            for b in range(0, n_blocks, batch_size)]
        reference = {
            "model": name,
            "block_size": block_size,
            "batch_size": batch_size,
            "blocks": ids.tolist(),
            "losses": losses,
            "per_sample_perplexity": [math.exp(l) for l in losses],
            "corpus_perplexity": corpus,
            "batch_mean_perplexity": math.exp(sum(batch_losses) / len(batch_losses)),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(reference, indent=1) + "\n")
        print(f"{name}: corpus ppl {corpus:.4f}, batch-mean ppl "
              f"{reference['batch_mean_perplexity']:.4f} -> {path}")


if __name__ == "__main__":
    main()
