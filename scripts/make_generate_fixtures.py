#!/usr/bin/env python3
"""Write the generation parity fixtures under tests/fixtures/generate/ (committed; CI never runs this).

Usage:  python3 scripts/make_generate_fixtures.py        (from the repository root)

Reuses the pinned venv of scripts/make_fixtures.py (/tmp/xp-fixtures-venv, override with
XP_FIXTURES_VENV; created on first use with torch 2.5.1 + transformers 4.46.3 from PyPI).

Writes two tiny random OPT checkpoints (fp32 model.safetensors + config.json):
  - `tiny/`: weights scaled up from HF's std 0.02 so logits are O(1);
  - `eos/`:  the same shape, with the `</s>` (id 2) embedding row pushed along the final
    LayerNorm's bias so that EOS is a likely next token: with min_new_tokens < max_new_tokens
    some hypotheses finish early (the scale is searched so that some prompts end early and
    some do not, which exercises transformers' finished-hypothesis logic).
and `cases.json`: for each case the model, the `generate` settings, the prompts (unpadded
token ids; a batch with prompts of different lengths is left-padded with <pad>=1 exactly as
transformers expects) and the reference continuations: the ids transformers' `generate`
returned after the (padded) prompt, cut after the first EOS, i.e. the new tokens of each
prompt including the EOS that ended it, without batch padding.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import ensure_venv_and_reexec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "generate"
PAD, EOS = 1, 2

MODEL_CONFIG = dict(
    vocab_size=96, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
    num_attention_heads=4, max_position_embeddings=96, do_layer_norm_before=True,
    word_embed_proj_dim=32, dropout=0.1, attention_dropout=0.0,
    activation_function="relu", pad_token_id=PAD, bos_token_id=EOS, eos_token_id=EOS,
)

PAPER = dict(num_beams=5, max_new_tokens=64, min_new_tokens=64, repetition_penalty=3.0)


def cases(rng):
    """(name, model, settings, prompts); prompts start with </s> like OPT-tokenized rows."""
    def prompt(n):
        return [EOS] + rng.sample(range(3, 96), n - 1) if n > 1 else [EOS]

    same16 = [prompt(16) for _ in range(8)]
    mixed = [prompt(n) for n in (5, 16, 9, 12, 3, 14, 7, 16, 10)]
    eos_prompts = [prompt(n) for n in (8, 8, 12, 8, 10, 8, 8, 6)]
    return [
        ("paper_beam", "tiny", PAPER, same16),
        ("paper_beam_left_padded", "tiny",
         dict(num_beams=5, max_new_tokens=20, min_new_tokens=20, repetition_penalty=3.0), mixed),
        ("beam_no_penalty", "tiny",
         dict(num_beams=5, max_new_tokens=24, min_new_tokens=24, repetition_penalty=1.0), same16),
        ("greedy", "tiny",
         dict(num_beams=1, max_new_tokens=32, min_new_tokens=32, repetition_penalty=3.0), mixed),
        ("greedy_no_penalty", "tiny",
         dict(num_beams=1, max_new_tokens=24, min_new_tokens=24, repetition_penalty=1.0), same16),
        ("beam_no_repeat_ngram", "tiny",
         dict(num_beams=4, max_new_tokens=24, min_new_tokens=24, repetition_penalty=1.0,
              no_repeat_ngram_size=2), same16[:4]),
        ("beam_eos", "eos",
         dict(num_beams=5, max_new_tokens=24, min_new_tokens=4, repetition_penalty=3.0), eos_prompts),
        ("beam_eos_length_penalty", "eos",
         dict(num_beams=3, max_new_tokens=24, min_new_tokens=2, repetition_penalty=1.0,
              length_penalty=0.5), eos_prompts),
        ("beam_eos_early_stopping", "eos",
         dict(num_beams=4, max_new_tokens=24, min_new_tokens=3, repetition_penalty=1.0,
              early_stopping=True), eos_prompts),
        ("greedy_eos", "eos",
         dict(num_beams=1, max_new_tokens=24, min_new_tokens=4, repetition_penalty=1.0), eos_prompts),
    ]


def main() -> None:
    ensure_venv_and_reexec(__file__)
    import random

    import torch
    from safetensors.torch import save_file
    from transformers import OPTConfig, OPTForCausalLM

    torch.set_num_threads(1)

    def build(seed):
        torch.manual_seed(seed)
        config = OPTConfig(**MODEL_CONFIG)
        config._attn_implementation = "eager"
        model = OPTForCausalLM(config).eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("layer_norm.weight"):
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                elif name.endswith("bias"):
                    p.copy_(0.2 * torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5 * 1.5)
        return config, model

    def generate(model, prompts, settings):
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts], dtype=torch.int64)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.int64)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                 pad_token_id=PAD, eos_token_id=EOS, **settings)
        result = []
        for row in out[:, width:].tolist():
            if EOS in row:
                row = row[: row.index(EOS) + 1]
            result.append(row)
        return result

    rng = random.Random(5)
    all_cases = cases(rng)
    models = {"tiny": build(21)}
    config, eos_model = build(22)
    beta = eos_model.model.decoder.final_layer_norm.bias.detach().clone()
    base = eos_model.model.decoder.embed_tokens.weight[EOS].detach().clone()
    eos_cases = [c for c in all_cases if c[1] == "eos"]
    chosen = None
    for step in range(1, 30):
        scale = 0.1 * step
        with torch.no_grad():
            eos_model.model.decoder.embed_tokens.weight[EOS] = base + scale * beta / beta.norm()
        counts = []
        for _, _, settings, prompts in eos_cases:
            outs = generate(eos_model, prompts, settings)
            counts.append(sum(1 for o in outs if o and o[-1] == EOS))
        print(f"scale {scale:.1f}: early endings per EOS case {counts}")
        mixed_cases = sum(1 for c in counts if 1 <= c <= len(eos_cases[0][3]) - 1)
        if chosen is None or mixed_cases > chosen[1]:
            chosen = (scale, mixed_cases)
    print(f"chosen EOS scale {chosen[0]:.1f}: {chosen[1]} of {len(eos_cases)} cases mix endings")
    assert chosen[1] >= 2, "no EOS scale gives a mix of early and full-length endings"
    chosen = chosen[0]
    with torch.no_grad():
        eos_model.model.decoder.embed_tokens.weight[EOS] = base + chosen * beta / beta.norm()
    models["eos"] = (config, eos_model)

    OUT.mkdir(parents=True, exist_ok=True)
    for name, (config, model) in models.items():
        d = OUT / name
        d.mkdir(exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        config.save_pretrained(d)
        state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})

    records = []
    for name, model_name, settings, prompts in all_cases:
        outs = generate(models[model_name][1], prompts, settings)
        early = sum(1 for o in outs if o and o[-1] == EOS)
        print(f"{name}: {len(prompts)} prompts, {early} ended by EOS")
        records.append(dict(name=name, model=model_name, settings=settings, prompts=prompts,
                            outputs=outs))
    meta = dict(
        about="transformers generate() references; see scripts/make_generate_fixtures.py",
        eos_embedding_scale=chosen,
        versions={"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        cases=records,
    )
    (OUT / "cases.json").write_text(json.dumps(meta) + "\n")


if __name__ == "__main__":
    main()
