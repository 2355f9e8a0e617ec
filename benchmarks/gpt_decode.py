"""Greedy decoding tokens/s, lingvis `model.generate` vs transformers `generate()`, same `gpt2`-preset
random weights (exported by lingvis, loaded by `GPT2LMHeadModel.from_pretrained`), fp32, KV cache on both
sides, batch 1 and batch 16, 128 new tokens each (HF: min_new_tokens = max_new_tokens); and a batch of 8
prompts of mixed lengths (8..256 tokens, left-padded for HF) where half the rows reach an eos early: lingvis
prefills without the padding and drops finished rows, `generate()` computes both.

    python -m benchmarks.gpt_decode [--quick]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from ._timing import median_seconds, print_rows, row

PROMPT_LEN = 16


def build_pair(tmp: str):
    """lingvis `gpt2` preset with random weights and the transformers model holding the same weights."""
    import transformers

    import lingvis

    torch.manual_seed(0)
    ours = lingvis.build("gpt2").eval()
    lingvis.save(ours, tmp)  # GPT-2 files through the production exporter
    ref = transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=torch.float32).eval()
    return ours, ref


def matmul_floor_seconds(model, batch: int, repeats: int) -> float:
    """Time of one decode step's weight matmuls alone (every Linear + the LM head, `batch` rows, through
    the kernels lingvis decodes with: MKL for one row, oneDNN packed weights for a few): no implementation
    doing these fp32 matmuls with these kernels can take less per generated token row."""
    import statistics
    import time

    from lingvis.nn.packed_linear import packed_linears

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    xs = {n: torch.randn(batch, n) for n in {m.in_features for m in layers}}
    times = []
    with torch.inference_mode(), packed_linears(model):
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            for m in layers:
                m(xs[m.in_features])
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def bench_batch(ours, ref, batch: int, new_tokens: int, repeats: int) -> dict:
    ids = torch.randint(0, ours.config.vocab_size, (batch, PROMPT_LEN), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    outputs = {}

    def run_ours():
        outputs["ours"] = ours.generate(ids, max_new_tokens=new_tokens)

    def run_ref():
        with torch.inference_mode():
            outputs["ref"] = ref.generate(ids, attention_mask=mask, max_new_tokens=new_tokens,
                                          min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                                          pad_token_id=0)

    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=0)
    a, b = outputs["ours"], outputs["ref"]
    assert a.shape == b.shape == (batch, PROMPT_LEN + new_tokens), (a.shape, b.shape)
    n = batch * new_tokens
    r = row(f"gpt2 greedy decode batch {batch} ({new_tokens} new tokens)", n / t["ours"], n / t["ref"], "tokens/s")
    r["identical_rows"] = float((a == b).all(dim=1).float().mean())  # greedy outputs agree
    floor = matmul_floor_seconds(ours, batch, repeats=5)
    r["matmul_bound"] = round(batch / floor, 1)  # tokens/s if a step were nothing but its weight matmuls
    r["max_possible_ratio"] = round(batch / floor / r["reference"], 2)
    return r


MIXED_LENGTHS = (8, 16, 32, 64, 96, 128, 192, 256)


def _until_eos(row: list[int], eos: set[int]) -> list[int]:
    return next((row[:i + 1] for i, t in enumerate(row) if t in eos), row)


def bench_mixed(ours, ref, new_tokens: int, repeats: int) -> dict:
    """Mixed prompt lengths and early eos: the padding-free prefill and finished-row removal at work."""
    from lingvis.generate import pad_left

    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, ours.config.vocab_size, (n,), generator=g).tolist() for n in MIXED_LENGTHS]
    ids, mask = pad_left(prompts)
    T = ids.shape[1]
    free = ours.generate(ids, attention_mask=mask, max_new_tokens=new_tokens)[:, T:].tolist()
    # rows 0, 2, 4, 6 end after a quarter of the new tokens: their token there is an eos id (for every row)
    eos = sorted({free[r][new_tokens // 4] for r in range(0, len(prompts), 2)})
    outputs = {}

    def run_ours():
        outputs["ours"] = ours.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, eos_id=eos)

    def run_ref():
        with torch.inference_mode():
            outputs["ref"] = ref.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                                          use_cache=True, eos_token_id=eos, pad_token_id=eos[0])

    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=0)
    a = [_until_eos(r, set(eos)) for r in outputs["ours"][:, T:].tolist()]
    b = [_until_eos(r, set(eos)) for r in outputs["ref"][:, T:].tolist()]
    n = sum(len(r) for r in b)  # tokens actually generated (up to and including each row's eos)
    r = row(f"gpt2 greedy decode batch 8, prompts of 8..256 tokens, half end early (<= {new_tokens} new)",
            n / t["ours"], n / t["ref"], "tokens/s")
    r["identical_rows"] = sum(x == y for x, y in zip(a, b)) / len(a)
    r["real_prompt_tokens_pct"] = round(100 * sum(MIXED_LENGTHS) / ids.numel(), 1)
    return r


def run(quick: bool = False, threads: int = 2) -> list[dict]:
    torch.set_num_threads(threads)
    new_tokens, repeats = (32, 1) if quick else (128, 3)
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp)
        rows = [bench_batch(ours, ref, b, new_tokens, repeats) for b in (1, 16)]
        return rows + [bench_mixed(ours, ref, new_tokens // 2, repeats)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32 new tokens, one timed repeat")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (both sides)")
    args = ap.parse_args()
    rows = run(args.quick, args.threads)
    print_rows(rows)


if __name__ == "__main__":
    main()
