"""Demo step: one English<->Chinese translation model on the built-in shapes corpus (about 1.5 minutes)."""
from __future__ import annotations

from pathlib import Path

from .. import api
from ..recipes.translate import (TranslateArgs, evaluate_translation, held_out_pairs, read_meta, tagged,
                                 train_translation)
from ..train.config import TrainConfig
from . import step


@step("translate")
def demo_translate(out: Path, minutes: float = 1.0) -> dict:
    run = out / "translate"
    args = TranslateArgs(out=str(run), preset="transformer-tiny", direction="both", n_train=6000, n_val=100)
    cfg = TrainConfig(max_steps=2000, max_minutes=minutes, batch_size=64, lr=1e-3, warmup_steps=50,
                      weight_decay=0.01, beta2=0.98, eval_every=1000, eval_batches=2, log_every=25)
    summary = train_translation(args, cfg)
    model, tok, meta = api.load(run), api.load_tokenizer(run), read_meta(run)
    test = held_out_pairs(args, "test")
    print(f"\n[translate] trained {summary['step']} steps in {summary['seconds']:.0f}s "
          f"({summary['parameters'] / 1e6:.1f}M parameters, one model for both directions)")
    result = {"steps": summary["step"], "run": str(run)}
    for direction in ("en-zh", "zh-en"):
        r = evaluate_translation(model, tok, tagged(test, direction), to=direction[-2:], meta=meta, num_beams=4)
        result[f"bleu_{direction}"] = round(r["bleu"], 2)
        print(f"[translate] {direction}: held-out BLEU {r['bleu']:.1f}, chrF {r['chrf']:.1f} "
              f"({r['n']} sentences, 4 beams)")
        for ex in r["examples"][:2]:
            print(f"    {ex['src']}\n    -> {ex['hyp']}\n    (ref {ex['ref']})")
    print(f"[translate] try: lingvis translate --model {run} --to zh \"a small red circle above a large blue star\"")
    return result
