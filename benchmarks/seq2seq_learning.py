"""Learning runs of the encoder-decoder issue, each trained within a wall-clock budget on this CPU:

- translation: ONE `transformer-tiny` model for English->Chinese and Chinese->English (target-language
  tags) on the built-in shapes corpus; sacrebleu BLEU (Chinese tokenizer for Chinese) with 4 beams on the
  held-out `test` split (unseen sentences) and `test_unseen` split (held-out colour-shape pairs).
- captioning: `captioner-tiny` (ViT 64px + 3-layer decoder with cross-attention) on shapes scenes; CIDEr-D
  and BLEU-4, greedy and with 3 beams, on the held-out `test` and `test_unseen` scenes.

Rows compare the measured score with the acceptance target (BLEU 60, CIDEr 1.5): `ratio` >= 1 passes.

    python -m benchmarks.seq2seq_learning [--quick] [--minutes 9] [--out runs/seq2seq_learning]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

BLEU_TARGET, CIDER_TARGET = 60.0, 1.5


def learn_translation(out: Path, minutes: float, quick: bool) -> list[dict]:
    import lingvis
    from lingvis.recipes.translate import (TranslateArgs, evaluate_translation, held_out_pairs, read_meta, tagged,
                                           train_translation)
    from lingvis.train.config import TrainConfig

    args = TranslateArgs(out=str(out / "translate"), preset="transformer-tiny", direction="both",
                         n_train=4000 if quick else 20000, n_val=300)
    cfg = TrainConfig(max_steps=20000, max_minutes=minutes, batch_size=64, lr=1e-3, warmup_steps=100,
                      weight_decay=0.01, beta2=0.98, eval_every=500, eval_batches=4, log_every=50, progress=False)
    t0 = time.perf_counter()
    summary = train_translation(args, cfg)
    train_s = time.perf_counter() - t0
    model, tok, meta = lingvis.load(args.out), lingvis.load_tokenizer(args.out), read_meta(args.out)
    rows = []
    for split in ("test", "test_unseen"):
        pairs = held_out_pairs(args, split)[:100 if quick else 300]
        for direction in ("en-zh", "zh-en"):
            r = evaluate_translation(model, tok, tagged(pairs, direction), to=direction[-2:], meta=meta, num_beams=4)
            rows.append({"benchmark": f"translation {direction} BLEU, shapes {split} ({r['n']} sentences)",
                         "lingvis": round(r["bleu"], 2), "reference": BLEU_TARGET, "unit": "BLEU (target)",
                         "ratio": round(r["bleu"] / BLEU_TARGET, 3), "chrf": round(r["chrf"], 2),
                         "train_seconds": round(train_s), "steps": summary["step"], "example": r["examples"][0]})
    return rows


def learn_captioning(out: Path, minutes: float, quick: bool) -> list[dict]:
    import lingvis
    from lingvis.recipes.caption import CaptionArgs, evaluate_captions, shapes_split, train_captioner
    from lingvis.train.config import TrainConfig

    args = CaptionArgs(out=str(out / "caption"), preset="captioner-tiny", n_train=1000 if quick else 4000,
                       n_val=100)
    cfg = TrainConfig(max_steps=20000, max_minutes=minutes, batch_size=32, lr=1e-3, warmup_steps=100,
                      weight_decay=0.01, eval_every=500, eval_batches=3, log_every=50, progress=False)
    t0 = time.perf_counter()
    summary = train_captioner(args, cfg)
    train_s = time.perf_counter() - t0
    model, tok = lingvis.load(args.out), lingvis.load_tokenizer(args.out)
    rows = []
    for split, beams in (("test", 1), ("test", 3), ("test_unseen", 1), ("test_unseen", 3)):
        r = evaluate_captions(model, tok, shapes_split(split, 100 if quick else 300), num_beams=beams)
        decoding = "greedy" if beams == 1 else f"{beams} beams"
        rows.append({"benchmark": f"captioning CIDEr-D, shapes {split} ({r['n']} images, {decoding})",
                     "lingvis": round(r["cider"], 3), "reference": CIDER_TARGET, "unit": "CIDEr-D (target)",
                     "ratio": round(r["cider"] / CIDER_TARGET, 3), "bleu4": round(r["bleu4"], 3),
                     "train_seconds": round(train_s), "steps": summary["step"], "example": r["examples"][0]})
    return rows


def run(quick: bool = False, minutes: float | None = None, out: str | Path = "runs/seq2seq_learning") -> list[dict]:
    torch.set_num_threads(int(os.environ.get("LINGVIS_THREADS", "2")))
    budget = minutes if minutes is not None else (1.0 if quick else 9.0)
    out = Path(out)
    return learn_translation(out, budget, quick) + learn_captioning(out, budget, quick)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1-minute runs on smaller data (scores below target)")
    ap.add_argument("--minutes", type=float, help="training budget per run (default 9, quick 1)")
    ap.add_argument("--out", default="runs/seq2seq_learning")
    ns = ap.parse_args()
    for r in run(ns.quick, ns.minutes, ns.out):
        print(f"{r['benchmark']}: {r['lingvis']} vs target {r['reference']} -> ratio {r['ratio']:.2f} "
              f"({r['steps']} steps, {r['train_seconds']} s); e.g. {r['example']}", flush=True)
