#!/usr/bin/env python3
"""Write the OPT parity fixtures under tests/fixtures/opt/ (committed; CI never runs this).

Usage:  python3 scripts/make_fixtures.py            (from the repository root)

The script creates a throwaway virtual environment outside the repository
(/tmp/xp-fixtures-venv, override with XP_FIXTURES_VENV) with pinned torch (used on
the CPU only) and transformers from PyPI, re-runs itself inside it, and then, for
each fixture configuration:

  1. builds `OPTForCausalLM` from an `OPTConfig` with seeded random weights
     (scaled up from HF's std 0.02 so that logits are O(1) and a wrong layer shows),
  2. rounds the weights through the storage dtype (fp16/bf16/fp32) so the
     reference is computed from exactly the numbers the Rust loader upcasts,
  3. writes an HF-style directory: config.json + model.safetensors or
     pytorch_model.bin (key prefix and dtype as the fixture says, no lm_head.weight),
  4. writes reference.safetensors: input_ids, attention_mask (int64), logits
     (float32, eval mode, eager attention), losses (float64, per sequence),
     batch_loss and the gradient of embed_tokens under it (float32),
     and fixture.json (what the fixture exercises, in words and flags).

Per-sequence loss definition (shared with crates/ml/src/model/score.rs): the causal-LM loss
as HF computes it (logits[:, :-1] against input_ids[:, 1:]), averaged over the
target positions t where both token t and its predecessor t-1 are real tokens
(attention_mask == 1). With an all-ones mask this is exactly
`model(ids, labels=ids).loss` for that row; the script asserts so.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

VENV = Path(os.environ.get("XP_FIXTURES_VENV", "/tmp/xp-fixtures-venv"))
PINS = ["torch==2.5.1", "transformers==4.46.3", "safetensors==0.4.5", "numpy==1.26.4"]
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "opt"


def ensure_venv_and_reexec(script: str = __file__) -> None:
    """Re-run `script` inside the pinned venv, creating the venv on first use.

    XP_USE_CURRENT_PYTHON=1 skips this and uses the running interpreter's torch and
    transformers (for benchmarks on a machine without network, e.g. a GPU host)."""
    if Path(sys.prefix).resolve() == VENV.resolve() or os.environ.get("XP_USE_CURRENT_PYTHON") == "1":
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", *PINS])
    os.execv(str(python), [str(python), script, *sys.argv[1:]])


# Each fixture: a tiny OPT shape plus how it is stored.
FIXTURES = [
    {
        "name": "pre_ln",
        "about": "pre-LayerNorm like opt-125m (tiny); fp32 model.safetensors with `model.` prefix; "
        "batch 3 with left padding in two rows",
        "config": dict(
            vocab_size=96, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
            num_attention_heads=4, max_position_embeddings=24, do_layer_norm_before=True,
            word_embed_proj_dim=32, dropout=0.1, attention_dropout=0.0,
            activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2,
        ),
        "format": "safetensors", "dtype": "float32", "prefix": True,
        "batch": 3, "seq": 12, "pad_left": [0, 3, 7], "seed": 1,
    },
    {
        "name": "post_ln_proj",
        "about": "post-LayerNorm with project_in/project_out like opt-350m (tiny); "
        "bf16 model.safetensors with `model.` prefix; batch 2 with left padding in one row",
        "config": dict(
            vocab_size=80, hidden_size=32, num_hidden_layers=3, ffn_dim=48,
            num_attention_heads=2, max_position_embeddings=20, do_layer_norm_before=False,
            word_embed_proj_dim=16, dropout=0.1, attention_dropout=0.0,
            activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2,
        ),
        "format": "safetensors", "dtype": "bfloat16", "prefix": True,
        "batch": 2, "seq": 10, "pad_left": [0, 4], "seed": 2,
    },
    {
        "name": "fp16_bin",
        "about": "pre-LayerNorm; fp16 pytorch_model.bin WITHOUT the `model.` prefix "
        "(as the opt-125m hub checkpoint); batch 2, all-ones mask",
        "config": dict(
            vocab_size=72, hidden_size=24, num_hidden_layers=2, ffn_dim=40,
            num_attention_heads=3, max_position_embeddings=16, do_layer_norm_before=True,
            word_embed_proj_dim=24, dropout=0.1, attention_dropout=0.0,
            activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2,
        ),
        "format": "bin", "dtype": "float16", "prefix": False,
        "batch": 2, "seq": 9, "pad_left": [0, 0], "seed": 3,
    },
    {
        "name": "no_bias",
        "about": "pre-LayerNorm with enable_bias=false and _remove_final_layer_norm=true; "
        "fp32 model.safetensors without prefix; batch 2 with left padding",
        "config": dict(
            vocab_size=64, hidden_size=16, num_hidden_layers=2, ffn_dim=32,
            num_attention_heads=2, max_position_embeddings=16, do_layer_norm_before=True,
            word_embed_proj_dim=16, dropout=0.0, attention_dropout=0.0, enable_bias=False,
            _remove_final_layer_norm=True,
            activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2,
        ),
        "format": "safetensors", "dtype": "float32", "prefix": False,
        "batch": 2, "seq": 8, "pad_left": [2, 0], "seed": 4,
    },
]


def main() -> None:
    ensure_venv_and_reexec()
    import torch
    from safetensors.torch import save_file
    from transformers import OPTConfig, OPTForCausalLM

    torch.set_num_threads(1)
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

    for fx in FIXTURES:
        torch.manual_seed(fx["seed"])
        config = OPTConfig(**fx["config"])
        config._attn_implementation = "eager"
        model = OPTForCausalLM(config).eval()

        # Scale the weights up from init_std 0.02 so the logits are O(1); LayerNorm
        # gains around 1 and biases non-zero so every parameter matters.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("layer_norm.weight"):
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                elif name.endswith("bias"):
                    p.copy_(0.2 * torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5 * 1.5)
            # Round through the storage dtype: the reference uses the stored numbers.
            for p in model.parameters():
                p.copy_(p.to(dtypes[fx["dtype"]]).to(torch.float32))

        b, t = fx["batch"], fx["seq"]
        ids = torch.randint(3, config.vocab_size, (b, t), dtype=torch.int64)
        mask = torch.ones(b, t, dtype=torch.int64)
        for row, pad in enumerate(fx["pad_left"]):
            ids[row, :pad] = config.pad_token_id
            mask[row, :pad] = 0

        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            # Per-sequence loss (see the module docstring for the definition).
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            nll = -logp.gather(-1, ids[:, 1:, None])[..., 0]
            valid = (mask[:, 1:] * mask[:, :-1]).bool()
            losses = torch.stack([nll[r][valid[r]].double().mean() for r in range(b)])
            for r in range(b):
                if mask[r].all():
                    hf = model(input_ids=ids[r : r + 1], labels=ids[r : r + 1]).loss.double()
                    assert abs(hf - losses[r]) < 1e-5 * abs(hf), (fx["name"], r, hf, losses[r])

        # Gradient of the batch loss (mean over every counted position) for the tied
        # embedding: it gets gradient from the LM head and, through every layer, from
        # the lookup, so it checks the whole backward pass.
        model.zero_grad()
        logits_g = model(input_ids=ids, attention_mask=mask).logits
        logp_g = torch.log_softmax(logits_g[:, :-1], dim=-1)
        nll_g = -logp_g.gather(-1, ids[:, 1:, None])[..., 0]
        batch_loss = nll_g[valid].mean()
        batch_loss.backward()
        grads = {
            "grad.decoder.embed_tokens.weight": model.model.decoder.embed_tokens.weight.grad,
        }

        d = OUT / fx["name"]
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        config.save_pretrained(d)
        state = {k: v.to(dtypes[fx["dtype"]]).contiguous() for k, v in model.state_dict().items()
                 if k != "lm_head.weight"}  # tied to model.decoder.embed_tokens.weight
        if not fx["prefix"]:
            state = {k.removeprefix("model."): v for k, v in state.items()}
        if fx["format"] == "safetensors":
            save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})
        else:
            torch.save(state, d / "pytorch_model.bin")

        save_file(
            {"input_ids": ids, "attention_mask": mask, "logits": logits.contiguous(),
             "losses": losses.contiguous(), "batch_loss": batch_loss.detach().reshape(1),
             **{k: v.contiguous() for k, v in grads.items()}},
            str(d / "reference.safetensors"),
        )
        meta = {k: fx[k] for k in ("name", "about", "format", "dtype", "prefix", "pad_left")}
        meta["num_parameters"] = sum(p.numel() for p in model.parameters())
        meta["versions"] = {"torch": torch.__version__,
                            "transformers": __import__("transformers").__version__}
        (d / "fixture.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{fx['name']}: {meta['num_parameters']} parameters -> {d}")


if __name__ == "__main__":
    main()
