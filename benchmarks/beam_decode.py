"""4-beam decoding speed, lingvis `Seq2Seq.generate(num_beams=4)` vs transformers `MarianMTModel.generate(
num_beams=4)`, on the same random weights (exported by lingvis, loaded by `MarianMTModel.from_pretrained`),
fp32, KV caches on both sides, for two sizes: opus-mt (6+6 layers, width 512, FFN 2048, vocabulary 58101)
and small (3+3 layers, width 256, vocabulary 8000). Every hypothesis runs the full length on both sides
(min_new_tokens = max_new_tokens), and the tokens are checked to be identical. One more row: a decoder-only
`gpt-mini` (GPT-2 layout) with 192-token prompts, where lingvis runs each prompt once instead of once per beam.

    python -m benchmarks.beam_decode [--quick]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from ._timing import median_seconds, print_rows, row

SRC_LEN, BEAMS = 24, 4
SIZES = {"opus-mt": ("transformer-base", 58101), "small": ("transformer-small", 8000)}


def build_pair(tmp: str, size: str = "opus-mt"):
    """A Marian-compatible lingvis Seq2Seq with random weights and the MarianMTModel holding the same weights."""
    import transformers

    import lingvis

    preset, vocab = SIZES[size]
    torch.manual_seed(0)
    ours = lingvis.build(preset, vocab_size=vocab, activation="silu", final_logits_bias=True, pad_id=vocab - 1,
                         eos_id=0, decoder_start_id=vocab - 1, forced_eos_id=0, suppress_ids=[vocab - 1],
                         dropout=0.0, max_len=256).eval()
    lingvis.save(ours, tmp, format="hf")  # Marian files through the production exporter
    ref = transformers.MarianMTModel.from_pretrained(tmp, dtype=torch.float32).eval()
    return ours, ref


def bench_batch(ours, ref, size: str, batch: int, new_tokens: int, repeats: int) -> dict:
    g = torch.Generator().manual_seed(batch)
    vocab = ours.config.vocab_size
    src = torch.randint(1, vocab - 1, (batch, SRC_LEN), generator=g)
    mask = torch.ones_like(src)
    kw = dict(num_beams=BEAMS, max_new_tokens=new_tokens, min_new_tokens=new_tokens)

    def run_ours():
        return ours.generate(src, mask, **kw)

    def run_ref():
        with torch.inference_mode():
            return ref.generate(input_ids=src, attention_mask=mask, **kw)

    a, b = run_ours(), run_ref()
    assert a.shape == b.shape == (batch, 1 + new_tokens), (a.shape, b.shape)
    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=0)
    n = batch * new_tokens
    r = row(f"marian {size} {BEAMS}-beam decode batch {batch} ({new_tokens} new tokens)", n / t["ours"],
            n / t["ref"], "tokens/s")
    r["identical_rows"] = float((a == b).all(dim=1).float().mean())
    return r


def bench_gpt(new_tokens: int, repeats: int, prompt: int = 192) -> dict:
    import transformers

    import lingvis
    from lingvis.beam import BeamConfig, beam_search

    torch.manual_seed(0)
    ours = lingvis.build("gpt-mini").eval()
    with tempfile.TemporaryDirectory() as tmp:
        lingvis.save(ours, tmp)
        ref = transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, prompt), generator=torch.Generator().manual_seed(0))
    cfg = BeamConfig(num_beams=BEAMS, max_new_tokens=new_tokens, min_new_tokens=new_tokens, eos_ids=[50256])

    def run_ours():
        return beam_search(ours, ids, cfg).sequences[:, 0]

    def run_ref():
        with torch.inference_mode():
            return ref.generate(ids, attention_mask=torch.ones_like(ids), num_beams=BEAMS, max_new_tokens=new_tokens,
                                min_new_tokens=new_tokens, pad_token_id=0)

    a, b = run_ours(), run_ref()
    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=0)
    n = ids.shape[0] * new_tokens
    r = row(f"gpt-mini {BEAMS}-beam decode batch 2, {prompt}-token prompts ({new_tokens} new tokens)",
            n / t["ours"], n / t["ref"], "tokens/s")
    r["identical_rows"] = float((a == b).all(dim=1).float().mean())
    return r


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    new_tokens, repeats = (16, 1) if quick else (64, 3)
    rows = []
    for size in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            ours, ref = build_pair(tmp, size)
            rows += [bench_batch(ours, ref, size, b, new_tokens, repeats) for b in (1, 8)]
    return rows + [bench_gpt(new_tokens // 2, repeats)]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens, one repeat")
    rows = run(ap.parse_args().quick)
    print_rows(rows)
    print("identical tokens:", [r["identical_rows"] for r in rows])
