"""int8 CPU decoding (`lingvis.quant.quantize_int8`): weight-only (`activations="float"`, the default) and
W8A8 dynamic (`activations="int8"`: activations quantised per row at run time, fbgemm int8 GEMMs).

Speed: batch-1 greedy decoding tokens/s at the `gpt2` preset (random weights, KV cache), lingvis int8
against transformers fp32 `generate()` holding the same weights (exported by lingvis, loaded by
`GPT2LMHeadModel.from_pretrained`), and against lingvis fp32.
Quality, on a char-level gpt-micro trained on the embedded Shakespeare corpus (the demo's run folder
`runs/demo/gpt` when it exists, else trained here for a few hundred steps): greedy continuations of 20
held-out prompts compared token by token with fp32, and held-out perplexity change.

    python -m benchmarks.int8_decode [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import math
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from ._timing import median_seconds, row

DEMO_RUN = Path(__file__).resolve().parents[1] / "runs" / "demo" / "gpt"
PROMPT_LEN = 16


# ---- speed -----------------------------------------------------------------------------------------
def speed_rows(quick: bool) -> list[dict]:
    import transformers

    import lingvis
    from lingvis.quant import quantize_int8

    torch.manual_seed(0)
    ours = lingvis.build("gpt2").eval()
    with tempfile.TemporaryDirectory() as tmp:
        lingvis.save(ours, tmp)
        ref = transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=torch.float32).eval()
    q = quantize_int8(copy.deepcopy(ours))
    qa = quantize_int8(copy.deepcopy(ours), activations="int8")
    new, repeats = (24, 1) if quick else (64, 3)
    ids = torch.randint(0, 50257, (1, PROMPT_LEN), generator=torch.Generator().manual_seed(1))

    def hf():
        with torch.inference_mode():
            return ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                                do_sample=False, pad_token_id=0)

    fns = {"int8": lambda: q.generate(ids, max_new_tokens=new),
           "w8a8": lambda: qa.generate(ids, max_new_tokens=new),
           "fp32": lambda: ours.generate(ids, max_new_tokens=new), "hf": hf}
    assert fns["int8"]().shape == fns["w8a8"]().shape == fns["hf"]().shape == (1, PROMPT_LEN + new)  # warm-up
    t = median_seconds(fns, repeats=repeats, warmup=0)
    tps = {k: new / v for k, v in t.items()}
    return [row(f"gpt2 int8 batch-1 decode vs transformers fp32 generate ({new} new tokens)", tps["int8"],
                tps["hf"], "tokens/s"),
            row(f"gpt2 int8 batch-1 decode vs lingvis fp32 ({new} new tokens)", tps["int8"], tps["fp32"],
                "tokens/s"),
            row(f"gpt2 int8 W8A8-dynamic batch-1 decode vs transformers fp32 generate ({new} new tokens)",
                tps["w8a8"], tps["hf"], "tokens/s")]


# ---- quality ---------------------------------------------------------------------------------------
def trained_model(quick: bool):
    """(model, tokenizer, held-out texts): the demo's GPT if present, else a gpt-micro trained here."""
    import lingvis
    from lingvis.recipes.gpt import GPTPretrainArgs, load_corpus, pretrain_gpt
    from lingvis.train.config import TrainConfig

    args = GPTPretrainArgs(out="", preset="gpt-micro", tokenizer="char")
    _, val_texts = load_corpus(args)
    if (DEMO_RUN / "checkpoints").is_dir():
        return lingvis.load(DEMO_RUN), lingvis.load_tokenizer(DEMO_RUN), val_texts, f"demo run {DEMO_RUN}"
    with tempfile.TemporaryDirectory() as out:
        args.out = out
        args.block_size = 64  # short blocks keep the steps cheap; the quality check needs a fitted model
        steps = 80 if quick else 250  # a step budget, not a time budget: the model must not depend on load
        cfg = TrainConfig(max_steps=steps, batch_size=8, lr=3e-3,
                          warmup_steps=30, eval_every=10 ** 6, eval_batches=2, progress=False, seed=1337)
        summary = pretrain_gpt(args, cfg)
        source = f"gpt-micro trained {summary['step']} steps here"
        return lingvis.load(out), lingvis.load_tokenizer(out), val_texts, source


@contextlib.contextmanager
def packed_kernel_everywhere():
    """Route every row through the decode kernel (bf16 activations), as batch-1 decoding does."""
    from lingvis import quant

    saved = quant.PACKED_MAX_ROWS
    quant.PACKED_MAX_ROWS = 1 << 30
    try:
        yield
    finally:
        quant.PACKED_MAX_ROWS = saved


@torch.inference_mode()
def held_out_nll(model, blocks: torch.Tensor) -> float:
    """Mean next-token NLL over (N, T+1) id blocks."""
    total, n = 0.0, 0
    for chunk in blocks.split(16):
        logits = model(chunk[:, :-1])  # (B, T, V)
        total += float(F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum"))
        n += chunk[:, 1:].numel()
    return total / n


def greedy_agreement(model, q, ids: torch.Tensor, n_prompts: int = 20) -> tuple[int, float, int]:
    """Batch-1 greedy continuations of `n_prompts` held-out prompts: (identical continuations, mean share
    of tokens before the first difference, new tokens per prompt)."""
    prompt_len = 16
    new = min(48, model.config.block_size - prompt_len)
    same_seq, same_tok = 0, 0.0
    for i in range(n_prompts):
        p = ids[i * 997 % (len(ids) - 200):][:prompt_len]
        a = model.generate(p[None], max_new_tokens=new)[0, prompt_len:]
        b = q.generate(p[None], max_new_tokens=new)[0, prompt_len:]
        same_seq += bool(torch.equal(a, b))
        diverge = (a != b).nonzero()
        same_tok += (int(diverge[0]) if len(diverge) else new) / new
    return same_seq, same_tok / n_prompts, new


def quality_rows(quick: bool) -> list[dict]:
    from lingvis.data.packing import encode_documents
    from lingvis.quant import quantize_int8

    model, tok, val_texts, source = trained_model(quick)
    T = model.config.block_size
    ids = encode_documents(tok, val_texts)
    n_blocks = 16 if quick else 64
    blocks = torch.stack([ids[i * T:(i + 1) * T + 1] for i in range(n_blocks)])  # (N, T+1)
    ppl = math.exp(held_out_nll(model, blocks))
    n_tok = blocks[:, 1:].numel()
    print(f"[int8] quality model: {source}; held-out tokens {n_tok}")
    rows = []
    for activations, label in (("float", "int8"), ("int8", "int8 W8A8-dynamic")):
        q = quantize_int8(copy.deepcopy(model), activations=activations)
        with packed_kernel_everywhere():  # W8A8 quantises every row alike anyway
            qppl = math.exp(held_out_nll(q, blocks))
        same, share, new = greedy_agreement(model, q, ids)
        rows += [
            {"benchmark": f"{label} held-out perplexity vs fp32 (char GPT, {n_tok} tokens)",
             "lingvis": round(qppl, 4), "reference": round(ppl, 4), "unit": "perplexity",
             "ratio": round(qppl / ppl, 4), "change_pct": round(100 * (qppl / ppl - 1), 3)},
            {"benchmark": f"{label} greedy continuations identical to fp32 (20 prompts x {new} tokens)",
             "lingvis": same, "reference": 20, "unit": "prompts", "ratio": round(same / 20, 3),
             "tokens_before_divergence_pct": round(100 * share, 1)}]
    return rows


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    return speed_rows(quick) + quality_rows(quick)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens, blocks and training steps")
    for r in run(ap.parse_args().quick):
        extra = {k: v for k, v in r.items() if k not in ("benchmark", "lingvis", "reference", "unit", "ratio")}
        print(f"{r['benchmark']}: {r['lingvis']} vs {r['reference']} {r['unit']} -> ratio {r['ratio']}",
              extra or "")


if __name__ == "__main__":
    main()
