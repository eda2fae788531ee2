#!/usr/bin/env python3
"""Open a directory written by xp's `save_pretrained` with transformers and check it.

Usage:
  XP_KEEP_SAVED=/tmp/xp-saved cargo test --test ml model_checkpoint::save_pretrained_round_trips
  python3 scripts/check_saved_model.py /tmp/xp-saved

The test saves the `post_ln_proj` fixture model (post-LN, project_in/out, from bf16);
this script loads the directory with `OPTForCausalLM.from_pretrained`, requires that
no weight was missing or unexpected, and compares its logits on the fixture's inputs
with the fixture's reference logits (1e-4 max abs over unpadded positions).
Uses the same pinned venv as make_fixtures.py (created on first use).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import OUT, ensure_venv_and_reexec  # noqa: E402


def main() -> None:
    ensure_venv_and_reexec(__file__)
    import torch
    from safetensors.torch import load_file
    from transformers import OPTForCausalLM

    saved = Path(sys.argv[1])
    model, info = OPTForCausalLM.from_pretrained(saved, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"transformers reports: {problems}"
    model.eval()
    ref = load_file(str(OUT / "post_ln_proj" / "reference.safetensors"))
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
    real = ref["attention_mask"].bool()
    diff = (logits - ref["logits"]).abs()[real].max().item()
    tied = model.lm_head.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    print(f"loaded {saved} with transformers: max |logit diff| = {diff:.2e}, lm_head tied: {tied}")
    assert diff <= 1e-4 and tied


if __name__ == "__main__":
    main()
