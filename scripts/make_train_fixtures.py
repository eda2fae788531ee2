#!/usr/bin/env python3
"""Write the training parity fixture under tests/fixtures/train/ (committed; CI never runs this).

Usage:  python3 scripts/make_train_fixtures.py      (from the repository root)

Reuses the pinned venv of scripts/make_fixtures.py (/tmp/xp-fixtures-venv, or
XP_FIXTURES_VENV). It builds a tiny OPTForCausalLM (dropout 0), takes 3 steps of
torch.optim.AdamW with the paper's optimizer settings except a larger lr (so that the
weights move measurably), on 3 fixed batches with the paper's loss (HF's causal-LM
loss: logits[:, :-1] against input_ids[:, 1:], mean over every position), and writes:

  adamw/model/       config.json + model.safetensors: the starting weights (fp32)
  adamw/reference.safetensors:
      batches  int64 [steps, batch, seq]   the input ids of each step
      losses   float64 [steps]             the loss before each step's update
      lrs      float64 [steps]
      final.<HF key>  float32              every parameter after the last step
  adamw/fixture.json  the optimizer settings, versions
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import ensure_venv_and_reexec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "train" / "adamw"

CONFIG = dict(
    vocab_size=64, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
    num_attention_heads=4, max_position_embeddings=32, do_layer_norm_before=True,
    word_embed_proj_dim=32, dropout=0.0, attention_dropout=0.0,
    activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2,
)
LR = 1e-3
BETAS = (0.9, 0.999)
EPS = 1e-8
WEIGHT_DECAY = 0.01
STEPS, BATCH, SEQ, SEED = 3, 4, 16, 7


def main() -> None:
    ensure_venv_and_reexec(__file__)
    import torch
    from safetensors.torch import save_file
    from transformers import OPTConfig, OPTForCausalLM

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    config = OPTConfig(**CONFIG)
    config._attn_implementation = "eager"
    model = OPTForCausalLM(config)
    # Larger weights than HF's std 0.02 so the loss and the gradients are O(1).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    model.train()

    OUT.mkdir(parents=True, exist_ok=True)
    mdir = OUT / "model"
    mdir.mkdir(exist_ok=True)
    config.save_pretrained(mdir)

    def hf_state():
        return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
                if k != "lm_head.weight"}

    save_file(hf_state(), str(mdir / "model.safetensors"), metadata={"format": "pt"})

    batches = torch.randint(3, config.vocab_size, (STEPS, BATCH, SEQ), dtype=torch.int64)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS,
                            weight_decay=WEIGHT_DECAY)
    losses = []
    for s in range(STEPS):
        opt.zero_grad()
        ids = batches[s]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())

    ref = {"batches": batches, "losses": torch.tensor(losses, dtype=torch.float64),
           "lrs": torch.tensor([LR] * STEPS, dtype=torch.float64)}
    for k, v in hf_state().items():
        ref["final." + k.removeprefix("model.")] = v.float()
    save_file(ref, str(OUT / "reference.safetensors"))
    meta = {"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY,
            "steps": STEPS, "batch": BATCH, "seq": SEQ, "seed": SEED, "losses": losses,
            "versions": {"torch": torch.__version__,
                         "transformers": __import__("transformers").__version__}}
    (OUT / "fixture.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"losses {losses} -> {OUT}")


if __name__ == "__main__":
    main()
